using System.Net;
using System.Net.Sockets;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// Checks the silo and gateway ports before Orleans binds them. Orleans binds its listeners with
/// <see cref="SocketOptionName.ReuseAddress"/>, which .NET on Linux turns into SO_REUSEADDR and SO_REUSEPORT: a silo
/// whose port another Orleans process (any cluster's silo) already listens on then binds it too, starts without a
/// word, and the kernel splits the incoming connections between the two processes. This check binds a socket with
/// SO_REUSEADDR only: Linux refuses that while anything listens on the port, but not because of the TIME_WAIT
/// connections a silo that just stopped leaves behind (why Orleans reuses addresses), so a restart on the same
/// ports still works.
/// </summary>
internal static class OrleansPortCheck
{
    // Linux's SOL_SOCKET and SO_REUSEADDR: .NET has no option for SO_REUSEADDR alone.
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;

    /// <summary>A one-line reason naming the setting of the first port something already listens on (or of an advertised address this machine does not have), or null.</summary>
    public static string? FindTakenPort(ClusterSettings cluster)
    {
        // Where Orleans will listen (SiloHostingExtensions): the advertised address with Redis clustering, loopback otherwise.
        var address = cluster.IsRedis ? IPAddress.Parse(cluster.AdvertisedAddress) : IPAddress.Loopback;
        // Orleans' own bind reports only "Cannot assign requested address", naming neither the address nor its setting.
        if (cluster.IsRedis && !IsLocal(address))
            return $"Cluster:AdvertisedAddress {address} is not an address of this machine (with Redis clustering the silo listens on it).";
        if (IsTaken(address, cluster.SiloPort)) return Reason("Cluster:SiloPort", address, cluster.SiloPort);
        if (IsTaken(address, cluster.GatewayPort)) return Reason("Cluster:GatewayPort", address, cluster.GatewayPort);
        return null;
    }

    private static string Reason(string key, IPAddress address, int port) =>
        $"{key} {port} is taken by another process (something already listens on {address}:{port}).";

    private static bool IsLocal(IPAddress address)
    {
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(address, 0));
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressNotAvailable)
        {
            return false;
        }
    }

    internal static bool IsTaken(IPAddress address, int port)
    {
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (OperatingSystem.IsLinux()) socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
        try
        {
            socket.Bind(new IPEndPoint(address, port));
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            return true;
        }
        catch (SocketException)
        {
            // Any other failure (an address this machine does not have...) is left to Orleans' own bind to report.
            return false;
        }
    }
}
