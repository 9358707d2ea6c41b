using System.Diagnostics;
using System.Text;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// The real silo host as a child process: free ports, a temporary SQLite data folder, an API key and small request
/// limits so the limit paths can be exercised cheaply. Ready once /readyz answers 200.
/// </summary>
public sealed class SiloProcess : IAsyncLifetime
{
    public const string ApiKey = "e2e-secret-key";
    public const int MaxBodyBytes = 64 * 1024;
    public const int MaxBatch = 2000;

    private Process? _process;
    private readonly StringBuilder _log = new();
    private readonly string? _apiKey;
    private readonly string[] _extraArgs;

    /// <summary>The shared fixture: API key on, SQLite storage, dashboard off.</summary>
    public SiloProcess() : this(ApiKey, []) { }

    /// <summary>
    /// A silo with another API key (null = none) and extra configuration, later arguments winning. The API listens on
    /// <paramref name="httpHost"/> (e.g. <c>*</c> for every interface) and <see cref="HttpPort"/>, and is always called on loopback.
    /// Without <paramref name="createDefaultModel"/> the cluster is left as the silo starts it: with no model at all.
    /// </summary>
    internal SiloProcess(string? apiKey, string[] extraArgs, string? dataFolder = null, string httpHost = "127.0.0.1", bool createDefaultModel = true)
    {
        _apiKey = apiKey;
        _createDefaultModel = createDefaultModel;
        _httpHost = httpHost;
        _extraArgs = extraArgs;
        _ownsDataFolder = dataFolder is null;
        DataFolder = dataFolder ?? Binaries.TempFolder("silo");
    }

    private readonly bool _ownsDataFolder;
    private readonly bool _createDefaultModel;
    private readonly string _httpHost;

    /// <summary>SIGKILL: the process dies at once, mid-request, with nothing flushed or closed. The data folder stays.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM, as an operator's clean stop: waits (up to <paramref name="timeout"/>) for the exit and returns its code, the output read to its end.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        var process = _process ?? throw new InvalidOperationException("The silo was not started.");
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
            await kill.WaitForExitAsync();
        await process.WaitForExitAsync().WaitAsync(timeout);
        process.WaitForExit();   // drains the output readers
        return process.ExitCode;
    }

    public int HttpPort { get; } = Binaries.FreeTcpPort();
    public int SiloPort { get; } = Binaries.FreeTcpPort();
    public int GatewayPort { get; } = Binaries.FreeTcpPort();
    public string DataFolder { get; }
    public Uri BaseAddress => new($"http://127.0.0.1:{HttpPort}");
    public string Gateway => $"127.0.0.1:{GatewayPort}";
    public string Log { get { lock (_log) return _log.ToString(); } }

    public HttpClient CreateHttpClient(bool withKey = true)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (withKey && _apiKey is not null) client.DefaultRequestHeaders.Add("X-Api-Key", _apiKey);
        return client;
    }

    public async Task InitializeAsync()
    {
        string[] args =
        [
            $"--Http:Urls=http://{_httpHost}:{HttpPort}",
            $"--Http:ApiKey={_apiKey}",
            $"--Http:MaxRequestBodyBytes={MaxBodyBytes}",
            $"--Http:MaxBatchSize={MaxBatch}",
            $"--Cluster:SiloPort={SiloPort}",
            $"--Cluster:GatewayPort={GatewayPort}",
            $"--Cluster:ServiceId=e2e",
            $"--Cluster:ClusterId=e2e",
            "--Storage:Provider=sqlite",
            $"--Storage:DataFolder={DataFolder}",
            .. _extraArgs,
        ];
        _process = new Process { StartInfo = Binaries.Dotnet(Binaries.SiloDll, args, DataFolder) };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        using var http = CreateHttpClient(withKey: false);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(90))
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"The silo exited with {_process.ExitCode} during startup:\n{Log}");
            try
            {
                using var response = await http.GetAsync("/readyz");
                if (response.IsSuccessStatusCode)
                {
                    if (!_createDefaultModel) return;
                    // Streams that were never bound use the default model; a fresh cluster has none until created.
                    using var admin = CreateHttpClient();
                    using var created = await admin.PostAsync("/models", new StringContent("""{"name":"default","hiddenSize":8}""", Encoding.UTF8, "application/json"));
                    if (!created.IsSuccessStatusCode)
                        throw new InvalidOperationException($"Creating the default model failed: {await created.Content.ReadAsStringAsync()}\n{Log}");
                    return;
                }
            }
            catch (HttpRequestException) { }
            await Task.Delay(250);
        }
        throw new TimeoutException($"The silo did not become ready within 90 s:\n{Log}");
    }

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
        if (_ownsDataFolder)
        {
            try { Directory.Delete(DataFolder, recursive: true); } catch (IOException) { }
        }
    }
}

[CollectionDefinition(Name)]
public sealed class SiloCollection : ICollectionFixture<SiloProcess>
{
    public const string Name = "real silo process";
}
