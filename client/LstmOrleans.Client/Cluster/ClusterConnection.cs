using System.Net;
using System.Net.Sockets;
using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using StackExchange.Redis;

namespace LstmOrleans.Client.Cluster;

/// <summary>
/// A connection to a cluster: an Orleans client (static gateways or Redis membership), or — for the demo — a
/// silo started in this process with the silo host's default configuration.
/// </summary>
internal sealed class ClusterConnection : IAsyncDisposable
{
    private readonly IHost _host;

    private ClusterConnection(IHost host, string description)
    {
        _host = host;
        Description = description;
        Grains = host.Services.GetRequiredService<IGrainFactory>();
    }

    public IGrainFactory Grains { get; }
    public string Description { get; }

    /// <summary>
    /// Connects to a running cluster. <paramref name="spec"/>: "host:port[,host:port...]" gateways (default
    /// 127.0.0.1:30000) or "redis://host:port" for Redis membership.
    /// </summary>
    public static async Task<ClusterConnection> ConnectAsync(ClusterTarget target, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        ConfigureQuietLogging(builder.Logging);
        // The quiet logging hides Orleans' warnings, but they are what explains a connect timeout (a refused TLS
        // handshake, another cluster id): this provider keeps them for the error message.
        var failures = new ConnectFailureLog();
        builder.Logging.AddProvider(failures);
        builder.Logging.AddFilter<ConnectFailureLog>("Orleans", LogLevel.Warning);
        LeaveSignalsToTheCommand(builder.Services);
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = target.ClusterId;
                o.ServiceId = target.ServiceId;
            });
            if (target.Tls is { } tls)
                client.UseTls(o => tls.Configure(o, isSilo: false, ClusterTarget.TlsPrefix));
            if (target.ConnectionsPerGateway is { } connections)
                client.Configure<ConnectionOptions>(o => o.ConnectionsPerEndpoint = connections);
            if (target.ResponseTimeout is { } responseTimeout)
                client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = responseTimeout);
            if (target.RedisConfiguration is { } redis)
                client.UseRedisClustering(o => o.ConfigurationOptions = ConfigurationOptions.Parse(redis));
            else
                client.UseStaticClustering(target.Gateways.ToArray());
        });
        var host = builder.Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(target.ConnectTimeout);
        try
        {
            await host.StartAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            host.Dispose();
            if (ex is OperationCanceledException && failures.GatewayAnswered)
                throw new ClusterUnavailableException($"Cannot connect to the cluster at {target} within {target.ConnectTimeout.TotalSeconds:0.#} s: {failures.Reason}.", ex);
            var reason = ex is OperationCanceledException
                ? $"no gateway answered within {target.ConnectTimeout.TotalSeconds:0.#} s" + (failures.Reason is { } last ? $" ({last})." : ".")
                : ex.Message;
            throw new ClusterUnavailableException($"Cannot reach the cluster at {target}: {reason}" +
                " Start a silo (dotnet run --project silo/LstmOrleans.Silo) or pass --cluster.", ex);
        }
        return new ClusterConnection(host, target.ToString());
    }

    /// <summary>
    /// Starts a single silo in this process: localhost clustering on free ports, SQLite in <paramref name="dataFolder"/>;
    /// <paramref name="historyCapacity"/> overrides the observations each stream keeps (and so what a training round
    /// can see of it).
    /// </summary>
    public static async Task<ClusterConnection> StartLocalSiloAsync(string dataFolder, string storageProvider, CancellationToken cancellationToken,
        int? historyCapacity = null)
    {
        var settings = new SiloSettings();
        settings.Cluster.SiloPort = FreeTcpPort();
        settings.Cluster.GatewayPort = FreeTcpPort();
        settings.Storage.Provider = storageProvider;
        settings.Storage.DataFolder = dataFolder;
        var errors = settings.Validate();
        if (errors.Count > 0) throw new SiloConfigurationException(errors);

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        ConfigureQuietLogging(builder.Logging);
        LeaveSignalsToTheCommand(builder.Services);
        builder.UseOrleans(silo => silo.UseLstmOrleansSilo(settings));
        if (historyCapacity is { } capacity) builder.Services.Configure<LstmOrleans.Grains.StreamGrainOptions>(o => o.SetHistoryCapacity(capacity));
        var host = builder.Build();
        await host.StartAsync(cancellationToken);
        // The memory store keeps nothing in the folder: naming it would suggest data that is not there.
        var storage = string.Equals(storageProvider, "memory", StringComparison.OrdinalIgnoreCase)
            ? "storage memory"
            : $"storage {storageProvider} in {Path.GetFullPath(dataFolder)}";
        return new ClusterConnection(host, $"in-process silo ({storage})");
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            await _host.StopAsync(stop.Token);
        }
        finally
        {
            _host.Dispose();
        }
    }

    /// <summary>
    /// Without this the host's ConsoleLifetime takes Ctrl+C and SIGTERM: it swallows the signal and stops the host under
    /// the running command, which then never ends (watch, replay) or reports a cancelled connection as a timeout.
    /// System.CommandLine cancels the command's token instead, because Program.cs invokes it with a
    /// ProcessTerminationTimeout (<see cref="ClientCommandLine.Invocation"/>; without one it does not handle the signals
    /// at all), and the command stops the host when it ends (tested: ClientTests.Watch_stops_on_a_signal).
    /// </summary>
    private static void LeaveSignalsToTheCommand(IServiceCollection services) => services.AddSingleton<IHostLifetime, CommandLifetime>();

    private sealed class CommandLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static void ConfigureQuietLogging(ILoggingBuilder logging)
    {
        // A command-line tool: only problems, and on stderr so stdout stays parseable.
        logging.ClearProviders();
        logging.AddSimpleConsole(o => o.SingleLine = true);
        logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        logging.SetMinimumLevel(LogLevel.Error);
        logging.AddLstmOrleansLogFilters();
        // A failed connection is reported once, by the command, not as a host stack trace.
        logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
        logging.AddFilter("Orleans.OutsideRuntimeClient", LogLevel.None);
        // The in-process silo's stream pulling agents complain about cancelled reads while it shuts down.
        // Shutdown of the in-process silo also drops one-way registry reports in flight; placement retries are logged
        // by Polly. Failures that matter reach the command as exceptions.
        logging.AddFilter("Orleans", LogLevel.Critical);
        logging.AddFilter("Orleans.Runtime", LogLevel.Critical);
        logging.AddFilter("Orleans.Messaging", LogLevel.Critical);
        logging.AddFilter("Polly", LogLevel.None);
    }

    private static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Where a command connects.</summary>
internal sealed record ClusterTarget(IReadOnlyList<IPEndPoint> Gateways, string? RedisConfiguration, string ClusterId, string ServiceId, TimeSpan ConnectTimeout)
{
    public const string DefaultGateway = "127.0.0.1:30000";
    /// <summary>How TLS settings are named in the client's error messages.</summary>
    public const string TlsPrefix = "client TLS ";

    /// <summary>TLS to the gateways (null = plain TCP).</summary>
    public TlsSettings? Tls { get; init; }

    /// <summary>How long a grain call waits for its answer before failing (Orleans' ClientMessagingOptions.ResponseTimeout; null = Orleans' 30 s default).</summary>
    public TimeSpan? ResponseTimeout { get; init; }

    /// <summary>TCP connections to each gateway (Orleans' ConnectionOptions.ConnectionsPerEndpoint; null = Orleans' default, 1).</summary>
    public int? ConnectionsPerGateway { get; init; }

    public static ClusterTarget Parse(string? spec, string clusterId, string serviceId, TimeSpan connectTimeout)
    {
        spec = string.IsNullOrWhiteSpace(spec) ? DefaultGateway : spec.Trim();
        if (spec.StartsWith("redis://", StringComparison.OrdinalIgnoreCase))
        {
            var redis = spec["redis://".Length..];
            if (redis.Length == 0) throw new ArgumentException("--cluster redis:// needs host:port, e.g. redis://127.0.0.1:6379.");
            return new ClusterTarget([], redis, clusterId, serviceId, connectTimeout);
        }
        var gateways = new List<IPEndPoint>();
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var text = part.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? DefaultGateway : part.Replace("localhost", "127.0.0.1", StringComparison.OrdinalIgnoreCase);
            if (!IPEndPoint.TryParse(text, out var endpoint) && !TryResolve(text, out endpoint) || endpoint!.Port == 0)
                throw new ArgumentException($"--cluster: '{part}' is not a gateway address like 127.0.0.1:30000 or silo1:30000 (or use redis://host:port).");
            gateways.Add(endpoint);
        }
        if (gateways.Count == 0) throw new ArgumentException("--cluster names no gateway.");
        return new ClusterTarget(gateways, null, clusterId, serviceId, connectTimeout);
    }

    /// <summary>
    /// "name:port" with a host name (Orleans' static gateway list takes addresses only, so the name is looked up here;
    /// an IPv4 address first, as the silos listen on IPv4 by default). Throws when the name does not resolve.
    /// </summary>
    private static bool TryResolve(string text, out IPEndPoint? endpoint)
    {
        endpoint = null;
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > IPEndPoint.MaxPort || Uri.CheckHostName(text[..colon]) != UriHostNameType.Dns)
            return false;
        var host = text[..colon];
        IPAddress[] addresses;
        try
        {
            addresses = Dns.GetHostAddresses(host);
        }
        catch (SocketException ex)
        {
            throw new ArgumentException($"--cluster: the gateway host '{host}' does not resolve ({ex.Message}).", ex);
        }
        var address = addresses.OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1).FirstOrDefault()
            ?? throw new ArgumentException($"--cluster: the gateway host '{host}' has no address.");
        endpoint = new IPEndPoint(address, port);
        return true;
    }

    public override string ToString() => RedisConfiguration is { } redis
        ? $"redis://{redis} (cluster {ClusterId})"
        : $"{string.Join(",", Gateways)} (cluster {ClusterId})";
}

internal sealed class ClusterUnavailableException(string message, Exception inner) : Exception(message, inner);
