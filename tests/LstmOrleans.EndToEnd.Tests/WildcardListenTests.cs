using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// Operators listen on every interface with Kestrel's wildcard URL (http://*:PORT): the silo host must accept it and
/// serve its API there, on loopback and on the machine's other addresses.
/// </summary>
public sealed class WildcardListenTests
{
    [Fact]
    public async Task The_silo_serves_its_API_on_a_wildcard_listen_URL()
    {
        var silo = new SiloProcess(apiKey: null, ["--Storage:Provider=memory"], httpHost: "*");
        try
        {
            // Ready (/readyz answered 200 on http://127.0.0.1:PORT), or it throws with the silo's output.
            await silo.InitializeAsync();
            using var http = silo.CreateHttpClient(withKey: false);
            using (var health = await http.GetAsync("/healthz"))
                Assert.True(health.StatusCode == HttpStatusCode.OK, $"{(int)health.StatusCode} on loopback\n{silo.Log}");

            // Loopback alone would also answer a loopback-only listener: where the machine has another IPv4 address,
            // the wildcard must answer there too.
            if (OtherIpv4Address() is { } other)
            {
                using var remote = new HttpClient { BaseAddress = new Uri($"http://{other}:{silo.HttpPort}"), Timeout = TimeSpan.FromSeconds(60) };
                using var health = await remote.GetAsync("/healthz");
                Assert.True(health.StatusCode == HttpStatusCode.OK, $"{(int)health.StatusCode} on {other}\n{silo.Log}");
            }
        }
        finally
        {
            await silo.DisposeAsync();
        }
    }

    private static IPAddress? OtherIpv4Address() => NetworkInterface.GetAllNetworkInterfaces()
        .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
        .SelectMany(n => n.GetIPProperties().UnicastAddresses)
        .Select(a => a.Address)
        .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
}
