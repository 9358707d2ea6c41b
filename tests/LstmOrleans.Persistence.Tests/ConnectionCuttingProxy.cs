using System.Net;
using System.Net.Sockets;

namespace LstmOrleans.Persistence.Tests;

/// <summary>
/// A TCP relay on a free loopback port between a client (Npgsql) and a server (the test's PostgreSQL) that can cut the
/// connection at the next message the client sends, the way a network failure or a server crash cuts a COMMIT: the
/// client sent it and never hears back. Cut with the message passed on first, the server still runs it (a COMMIT is then
/// committed although the client saw an error); cut before, the server never gets it (and rolls the transaction back
/// when it sees the connection close). Test-only: the provider's code is unchanged, its connection string points here.
/// </summary>
internal sealed class ConnectionCuttingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _sockets = [];
    private readonly Task _accepting;
    private int _armed;   // 0: relay; 1: cut before passing on; 2: pass on, then cut
    private int _cuts;

    public ConnectionCuttingProxy(int targetPort)
    {
        _target = new IPEndPoint(IPAddress.Loopback, targetPort);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    /// <summary>Connections cut so far.</summary>
    public int Cuts => Volatile.Read(ref _cuts);

    /// <summary>Cuts the connection that next sends anything, after passing that message on when <paramref name="passOn"/>.</summary>
    public void CutAtNextClientMessage(bool passOn) => Volatile.Write(ref _armed, passOn ? 2 : 1);

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                var server = new TcpClient();
                await server.ConnectAsync(_target, _stop.Token);
                lock (_sockets)
                {
                    _sockets.Add(client);
                    _sockets.Add(server);
                }

                _ = RelayAsync(client, server, fromClient: true);
                _ = RelayAsync(server, client, fromClient: false);
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
        }
    }

    private async Task RelayAsync(TcpClient from, TcpClient to, bool fromClient)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            var input = from.GetStream();
            var output = to.GetStream();
            int read;
            while ((read = await input.ReadAsync(buffer, _stop.Token)) > 0)
            {
                int armed = fromClient ? Interlocked.Exchange(ref _armed, 0) : 0;
                if (armed == 2) await output.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                if (armed != 0)
                {
                    Interlocked.Increment(ref _cuts);
                    // The server side closes gracefully, so what was passed on is delivered before the end of the stream.
                    to.Client.Shutdown(SocketShutdown.Send);
                    to.Close();
                    from.Close();
                    return;
                }

                await output.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception)
        {
            // The other direction was cut or the relay stopped: end both sides.
        }

        from.Close();
        to.Close();
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
        lock (_sockets)
        {
            foreach (var socket in _sockets) socket.Close();
        }

        _stop.Dispose();
    }
}
