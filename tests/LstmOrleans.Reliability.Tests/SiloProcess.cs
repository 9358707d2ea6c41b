using System.Diagnostics;
using System.Net;
using System.Text;
using LstmOrleans.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;

namespace LstmOrleans.Reliability.Tests;

/// <summary>
/// One real silo: <c>dotnet LstmOrleans.Silo.dll</c> with command-line configuration, its own silo, gateway and HTTP
/// ports. Can be SIGKILLed (no goodbye to the cluster), stopped gracefully (SIGTERM) and started again on the same ports.
/// </summary>
public sealed class SiloProcess : IAsyncDisposable
{
    private readonly string[] _arguments;
    private Process? _process;
    private StringBuilder _output = new();

    private readonly IReadOnlyDictionary<string, string> _environment;

    /// <param name="environment">Extra environment variables for the process (e.g. a secret that must not be on the command line).</param>
    public SiloProcess(string name, IEnumerable<string> settings, IReadOnlyDictionary<string, string>? environment = null)
    {
        Name = name;
        _environment = environment ?? new Dictionary<string, string>();
        SiloPort = ExternalServer.FreeLoopbackPort();
        GatewayPort = ExternalServer.FreeLoopbackPort();
        HttpPort = ExternalServer.FreeLoopbackPort();
        _arguments =
        [
            SiloDll,
            $"--Cluster:SiloPort={SiloPort}",
            $"--Cluster:GatewayPort={GatewayPort}",
            $"--Http:Urls=http://127.0.0.1:{HttpPort}",
            .. settings,
        ];
    }

    public string Name { get; }
    public int SiloPort { get; }
    public int GatewayPort { get; }
    public int HttpPort { get; }
    public IPEndPoint Gateway => new(IPAddress.Loopback, GatewayPort);
    public Uri BaseAddress => new($"http://127.0.0.1:{HttpPort}/");
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>Silo settings for a member of a Redis-clustered, Redis-stored cluster with fast failure detection.</summary>
    public static string[] RedisClusterSettings(string redis, string clusterId, bool tolerant = false, TimeSpan? probeTimeout = null, int missedProbes = 2) =>
    [
        "--Cluster:Clustering=redis",
        $"--Cluster:ClusterId={clusterId}",
        $"--Cluster:ServiceId={clusterId}",
        "--Storage:Provider=redis",
        $"--ConnectionStrings:Redis={redis}",
        // A SIGKILLed silo is declared dead after 2 missed 1 s probes voted by 2 silos (~2-3 s). The silo's own
        // default (500 ms) is faster but declares healthy silos dead on a machine as overloaded as a shared CI box.
        $"--Membership:ProbeTimeout={probeTimeout ?? TimeSpan.FromSeconds(1):c}",
        $"--Membership:NumMissedProbesLimit={missedProbes}",
        "--Membership:NumVotesForDeathDeclaration=2",
        "--Membership:TableRefreshTimeout=00:00:01",
        // Silos (re)joining under load need slack: a JIT-bound joiner missing 1 s probes gets voted dead.
        .. (tolerant ? (string[])["--Membership:ProbeTimeout=00:00:02", "--Membership:NumMissedProbesLimit=3"] : []),
    ];

    public static string SiloDll { get; } = LocateBuiltDll(Path.Combine("silo", "LstmOrleans.Silo"), "LstmOrleans.Silo.dll");
    public static string ClientDll { get; } = LocateBuiltDll(Path.Combine("client", "LstmOrleans.Client"), "lstmorleans.dll");

    private static string LocateBuiltDll(string project, string fileName)
    {
        // tests/LstmOrleans.Reliability.Tests/bin/<Configuration>/net10.0 -> same configuration of the silo.
        var bin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = bin.Parent!.Name;
        var directory = bin;
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "LstmOrleans.sln"))) directory = directory.Parent;
        if (directory is null) throw new InvalidOperationException($"LstmOrleans.sln not found above {AppContext.BaseDirectory}.");
        var dll = Path.Combine(directory.FullName, project, "bin", configuration, bin.Name, fileName);
        if (!File.Exists(dll)) throw new FileNotFoundException($"Build {project} first: {dll} is missing.", dll);
        return dll;
    }

    private static string DotnetHost =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    public void Start()
    {
        if (_process is { HasExited: false }) throw new InvalidOperationException($"{Name} is already running.");
        _process?.Dispose();
        (_process, _output) = ExternalServer.Start(DotnetHost, _arguments, _environment);
    }

    /// <summary>Runs <c>dotnet lstmorleans.dll ARGS</c> to completion (killed after <paramref name="timeout"/>): exit code and output.</summary>
    public static Task<(int ExitCode, string Output)> RunClientAsync(IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment, TimeSpan timeout) =>
        ExternalServer.RunToExitAsync(DotnetHost, [ClientDll, .. arguments], timeout, environment);

    /// <summary>Waits until GET /readyz answers 200 (the silo joined the cluster).</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (_process is null || _process.HasExited)
                throw new InvalidOperationException($"{Name} exited with {_process?.ExitCode} while starting. Output:\n{Output}");
            try
            {
                using var response = await http.GetAsync("readyz");
                if (response.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(200);
        }
        throw new TimeoutException($"{Name} was not ready within {timeout}. Output:\n{Output}");
    }

    /// <summary>
    /// Starts the process and waits until it is ready; if it dies while joining (a starved joiner can be voted dead),
    /// starts it again, as a process supervisor would. Returns how many extra starts it took.
    /// </summary>
    public async Task<int> StartUntilReadyAsync(TimeSpan timeout, int attempts = 3)
    {
        for (int attempt = 0; ; attempt++)
        {
            Start();
            try
            {
                await WaitReadyAsync(timeout);
                return attempt;
            }
            catch (InvalidOperationException) when (attempt + 1 < attempts && _process is { HasExited: true })
            {
            }
        }
    }

    /// <summary>Waits for a process that is expected to stop by itself (e.g. on bad configuration); returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process!.WaitForExitAsync(cts.Token);
        _process.WaitForExit(); // drain the output readers
        return _process.ExitCode;
    }

    /// <summary>SIGKILL: the process vanishes mid-flight, as in a crash or an OOM kill.</summary>
    public void Kill()
    {
        _process!.Kill(entireProcessTree: false); // SIGKILL on Unix
        _process.WaitForExit();
    }

    /// <summary>SIGTERM: the host shuts the silo down gracefully (leaves the cluster, hands grains off).</summary>
    public async Task StopGracefullyAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process!.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await kill!.WaitForExitAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            _process.Kill();
            throw new TimeoutException($"{Name} did not stop within {timeout} after SIGTERM. Output:\n{Output}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is null) return;
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    /// <summary>An Orleans client spread over the given gateways (static list), failing calls after <paramref name="responseTimeout"/>.</summary>
    public static async Task<IHost> ConnectClientAsync(IEnumerable<IPEndPoint> gateways, string clusterId, TimeSpan responseTimeout)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Critical);
        var list = gateways.ToArray();
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o => { o.ClusterId = clusterId; o.ServiceId = clusterId; });
            client.UseStaticClustering(list);
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = responseTimeout);
        });
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }
}
