using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Xunit.Abstractions;

namespace LstmOrleans.Reliability.Tests;

/// <summary>
/// TLS between the command-line client and a silo, both real processes on loopback, with self-signed certificates
/// generated here: the silo requires TLS and a client certificate it trusts (mutual TLS, <c>--Tls:*</c> settings, the
/// PFX password only in an environment variable). A client with the right certificate works; one without TLS, with
/// another certificate, without a certificate, or not trusting the silo's certificate cannot connect (exit code 3) and
/// is told why.
/// The password appears in no output.
/// </summary>
public sealed class TlsTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(120);
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"lstmorleans-tls-{Guid.NewGuid():N}");
    // A secret that must never be printed: random, so finding it in an output cannot be a coincidence.
    private readonly string _password = "pw-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
    private readonly List<SiloProcess> _silos = [];

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_folder);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var silo in _silos) await silo.DisposeAsync();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    /// <summary>A self-signed certificate usable for TLS server and client authentication, written as .pfx (with the password) and .pem (public part).</summary>
    private (string Pfx, string Pem) CreateCertificate(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false)); // serverAuth, clientAuth
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var pfx = Path.Combine(_folder, $"{name}.pfx");
        var pem = Path.Combine(_folder, $"{name}.pem");
        File.WriteAllBytes(pfx, certificate.Export(X509ContentType.Pfx, _password));
        File.WriteAllText(pem, certificate.ExportCertificatePem());
        return (pfx, pem);
    }

    private SiloProcess TlsSilo(string name, (string Pfx, string Pem) certificate, string password) =>
        new(name,
            [
                "--Storage:Provider=memory",
                "--Tls:Enabled=true",
                $"--Tls:CertificatePath={certificate.Pfx}",
                $"--Tls:TrustedCertificatePath={certificate.Pem}",
            ],
            new Dictionary<string, string> { ["LSTMORLEANS_Tls__CertificatePassword"] = password });

    private async Task<(int ExitCode, string Output)> ClientAsync(string what, params string[] arguments)
    {
        var clock = Stopwatch.StartNew();
        var result = await SiloProcess.RunClientAsync(arguments,
            new Dictionary<string, string> { ["LSTMORLEANS_TLS_CERTIFICATE_PASSWORD"] = _password }, ClientTimeout);
        output.WriteLine($"{what}: exit {result.ExitCode} after {clock.ElapsedMilliseconds} ms: {result.Output.Trim().Split('\n').LastOrDefault()}");
        Assert.DoesNotContain(_password, result.Output);
        return result;
    }

    [Fact]
    public async Task OnlyAClientWithTlsAndATrustedCertificateReachesATlsSilo()
    {
        var silo = TlsCertificates();
        var other = CreateCertificate("intruder");
        var node = TlsSilo("tls-silo", silo, _password);
        _silos.Add(node);
        await node.StartUntilReadyAsync(TimeSpan.FromSeconds(240));
        string gateway = $"127.0.0.1:{node.GatewayPort}";
        // A successful connection returns as soon as the handshake is done, so a long timeout costs nothing here; it
        // only keeps a heavily loaded machine (the TLS handshake and the client's start under a load average of 60+
        // took over 15 s) from failing the positive case.
        string[] connect = ["--cluster", gateway, "--connect-timeout", "90"];

        // The right certificate, trusting the silo's: a grain call goes through and its effect is visible.
        var create = await ClientAsync("mutual TLS", ["create-model", "tls-model", "--hidden", "4", .. connect,
            "--tls-certificate", silo.Pfx, "--tls-trust", silo.Pem]);
        Assert.True(create.ExitCode == 0, create.Output);
        var list = await ClientAsync("mutual TLS, read back", ["models", "tls-model", .. connect, "--tls-certificate", silo.Pfx, "--tls-trust", silo.Pem]);
        Assert.True(list.ExitCode == 0, list.Output);
        Assert.Contains("tls-model", list.Output);

        // Refused attempts, side by side (each waits out its connect timeout): plain TCP to a TLS gateway; a
        // certificate the silo does not trust; no client certificate (Tls:RequireClientCertificate defaults to true);
        // a client that does not trust the silo's certificate (it trusts only another one).
        string[] refused = ["--cluster", gateway, "--connect-timeout", "10"];
        var attempts = await Task.WhenAll(
            ClientAsync("no TLS", ["models", .. refused]),
            ClientAsync("untrusted client certificate", ["models", .. refused, "--tls-certificate", other.Pfx, "--tls-trust", silo.Pem]),
            ClientAsync("no client certificate", ["models", .. refused, "--tls-trust", silo.Pem]),
            ClientAsync("silo certificate not trusted", ["models", .. refused, "--tls-certificate", silo.Pfx, "--tls-trust", other.Pem]));
        foreach (var attempt in attempts)
            Assert.True(attempt.ExitCode == 3, attempt.Output);
        // Each says what went wrong, not "no gateway answered ... Start a silo" as if none ran: the silo closes the
        // connection of a client it refuses (the client cannot see why; the silo logs it), and a client that does not
        // trust the silo's certificate names its own handshake failure.
        foreach (var refusedBySilo in attempts[..3])
        {
            Assert.Contains("Cannot connect to the cluster", refusedBySilo.Output);
            Assert.Contains("accepted the connection and closed it", refusedBySilo.Output);
            Assert.DoesNotContain("Start a silo", refusedBySilo.Output);
        }
        Assert.Contains("the TLS handshake with the gateway failed", attempts[3].Output);
        Assert.Contains("--tls-trust", attempts[3].Output);

        Assert.True(node.Output.Length > 0);
        Assert.DoesNotContain(_password, node.Output);
    }

    [Fact]
    public async Task ASiloWithAWrongCertificatePasswordRefusesToStartAndDoesNotPrintIt()
    {
        var certificate = TlsCertificates();
        string wrong = "wrong-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
        var node = TlsSilo("tls-bad-password", certificate, wrong);
        _silos.Add(node);
        node.Start();
        int exitCode = await node.WaitForExitAsync(TimeSpan.FromSeconds(120));
        output.WriteLine(node.Output);
        Assert.Equal(2, exitCode);
        Assert.Contains("Tls:CertificatePassword", node.Output);
        Assert.DoesNotContain(wrong, node.Output);
        Assert.DoesNotContain(_password, node.Output);
    }

    private (string Pfx, string Pem) TlsCertificates() => CreateCertificate("lstmorleans-silo");
}
