using System.Net;
using LstmOrleans.Grains;
using Microsoft.Extensions.Configuration;
using SqliteOptions = LstmOrleans.Persistence.Sqlite.SqliteGrainStorageOptions;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// Everything that configures a LstmOrleans silo, bound from configuration (appsettings.json, environment
/// variables with the prefix <c>LSTMORLEANS_</c> and <c>__</c> as separator, command line <c>--Section:Key=value</c>).
/// The defaults run one silo on one machine with nothing installed.
/// </summary>
public sealed class SiloSettings
{
    public ClusterSettings Cluster { get; set; } = new();
    public StorageSettings Storage { get; set; } = new();
    public RemindersSettings Reminders { get; set; } = new();
    public ConnectionStringSettings ConnectionStrings { get; set; } = new();
    public HttpSettings Http { get; set; } = new();
    public TelemetrySettings Telemetry { get; set; } = new();
    public MembershipSettings Membership { get; set; } = new();
    public DashboardSettings Dashboard { get; set; } = new();
    public TlsSettings Tls { get; set; } = new();

    /// <summary>How every stream grain of this silo behaves: durability, history, batches, intervals (section <c>Streams</c>).</summary>
    public StreamGrainOptions Streams { get; set; } = new();

    /// <summary>Binds and validates; throws <see cref="SiloConfigurationException"/> listing every bad value.</summary>
    public static SiloSettings Load(IConfiguration configuration)
    {
        var settings = new SiloSettings();
        try
        {
            configuration.Bind(settings);
        }
        catch (InvalidOperationException ex)
        {
            // The binder names the key and the value it could not convert (e.g. a port that is not a number).
            throw new SiloConfigurationException([ex.InnerException?.Message is { } inner ? $"{ex.Message} {inner}" : ex.Message]);
        }
        var errors = UnknownKeys(configuration);
        errors.AddRange(settings.Validate());
        if (errors.Count > 0)
            throw new SiloConfigurationException(errors);
        return settings;
    }

    /// <summary>
    /// Keys inside our sections that no setting reads: the binder ignores them, so a misspelt key
    /// (--Storage:Provder=memory) would silently leave the default in force. ConnectionStrings is left out: by
    /// convention it may hold other components' connection strings.
    /// </summary>
    private static List<string> UnknownKeys(IConfiguration configuration)
    {
        var errors = new List<string>();
        foreach (var section in typeof(SiloSettings).GetProperties())
        {
            if (section.Name == nameof(ConnectionStrings)) continue;
            var known = section.PropertyType.GetProperties().Where(p => p.CanWrite).Select(p => p.Name).ToArray();
            foreach (var key in configuration.GetSection(section.Name).GetChildren())
                if (!known.Contains(key.Key, StringComparer.OrdinalIgnoreCase))
                    errors.Add($"{section.Name}:{key.Key} is not a setting; {section.Name} has {string.Join(", ", known)}.");
        }
        return errors;
    }

    public List<string> Validate()
    {
        var errors = new List<string>();
        Cluster.Validate(errors);
        Storage.Validate(errors);
        Reminders.Validate(errors);
        Http.Validate(errors);
        Telemetry.Validate(errors);
        Membership.Validate(errors);
        Dashboard.Validate(errors, Http);
        var tlsErrors = new List<string>();
        Tls.Validate(tlsErrors);
        errors.AddRange(tlsErrors);
        if (new StreamGrainOptionsValidator().Validate(null, Streams) is { Failed: true, Failures: { } streamErrors })
            errors.AddRange(streamErrors.Select(e => $"Streams:{e}"));
        // Choices are case-insensitive (CheckChoice, and the host switches on them lower-cased): 'Redis' needs the
        // connection string as much as 'redis' does, or the silo fails later on a null string.
        var needsRedis = Cluster.IsRedis || Is(Storage.Provider, StorageSettings.Redis) || Is(Reminders.Provider, RemindersSettings.Redis);
        if (needsRedis && string.IsNullOrWhiteSpace(ConnectionStrings.Redis))
            errors.Add("ConnectionStrings:Redis is required when Cluster:Clustering, Storage:Provider or Reminders:Provider is 'redis'.");
        else if (needsRedis)
            CheckConnectionString(errors, "ConnectionStrings:Redis", () =>
            {
                // Parse skips an endpoint it cannot read ('127.0.0.1:637x'); none left failed the start with
                // StackExchange.Redis' "No endpoints specified (Parameter 'config')" and a stack trace.
                var options = StackExchange.Redis.ConfigurationOptions.Parse(ConnectionStrings.Redis!);
                return options.EndPoints.Count > 0 ? options
                    : throw new ArgumentException($"no host:port endpoint in '{ConnectionStrings.Redis}'");
            });
        bool needsPostgres = Is(Storage.Provider, StorageSettings.Postgres);
        if (needsPostgres && string.IsNullOrWhiteSpace(ConnectionStrings.Postgres))
            errors.Add("ConnectionStrings:Postgres is required when Storage:Provider is 'postgres'.");
        else if (needsPostgres)
            CheckConnectionString(errors, "ConnectionStrings:Postgres", () => new Npgsql.NpgsqlConnectionStringBuilder(ConnectionStrings.Postgres));
        return errors;
    }

    /// <summary>A configured choice equals <paramref name="choice"/>, in any case (as <see cref="CheckChoice"/> accepts it).</summary>
    internal static bool Is(string? value, string choice) => string.Equals(value, choice, StringComparison.OrdinalIgnoreCase);

    /// <summary>A malformed connection string is listed with its key now, not thrown by the client library once the silo starts.</summary>
    private static void CheckConnectionString(List<string> errors, string key, Func<object> parse)
    {
        try { parse(); }
        catch (ArgumentException e) { errors.Add($"{key} is malformed: {e.Message}"); }
    }

    internal static void CheckPort(List<string> errors, string key, int port, bool allowZero = false)
    {
        if (port is < 0 or > 65535 || (port == 0 && !allowZero))
            errors.Add($"{key} must be a TCP port in 1..65535; got {port}.");
    }

    internal static void CheckChoice(List<string> errors, string key, string value, params string[] allowed)
    {
        if (!allowed.Contains(value, StringComparer.OrdinalIgnoreCase))
            errors.Add($"{key} must be one of {string.Join(", ", allowed)}; got '{value}'.");
    }
}

public sealed class ClusterSettings
{
    public const string Localhost = "localhost";
    public const string Redis = "redis";

    /// <summary>Silos with the same ClusterId form one cluster.</summary>
    public string ClusterId { get; set; } = "lstmorleans";
    /// <summary>Names the application's durable state: storage keys include it, so keep it stable across deployments.</summary>
    public string ServiceId { get; set; } = "lstmorleans";
    /// <summary>localhost (one machine, no dependencies) or redis (membership table in Redis).</summary>
    public string Clustering { get; set; } = Localhost;
    public int SiloPort { get; set; } = 11111;
    public int GatewayPort { get; set; } = 30000;
    /// <summary>Localhost clustering only: silo port of the primary silo when several silos share one machine (0 = this silo is the primary).</summary>
    public int PrimarySiloPort { get; set; }
    /// <summary>Address this silo advertises to the others (Redis clustering).</summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";

    internal bool IsRedis => SiloSettings.Is(Clustering, Redis);

    internal void Validate(List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(ClusterId)) errors.Add("Cluster:ClusterId must not be empty.");
        if (string.IsNullOrWhiteSpace(ServiceId)) errors.Add("Cluster:ServiceId must not be empty.");
        SiloSettings.CheckChoice(errors, "Cluster:Clustering", Clustering, Localhost, Redis);
        SiloSettings.CheckPort(errors, "Cluster:SiloPort", SiloPort);
        SiloSettings.CheckPort(errors, "Cluster:GatewayPort", GatewayPort);
        SiloSettings.CheckPort(errors, "Cluster:PrimarySiloPort", PrimarySiloPort, allowZero: true);
        if (SiloPort == GatewayPort) errors.Add($"Cluster:SiloPort and Cluster:GatewayPort must differ; both are {SiloPort}.");
        if (!IPAddress.TryParse(AdvertisedAddress, out _)) errors.Add($"Cluster:AdvertisedAddress must be an IP address; got '{AdvertisedAddress}'.");
    }
}

public sealed class StorageSettings
{
    public const string Sqlite = "sqlite";
    public const string Redis = "redis";
    public const string Postgres = "postgres";
    public const string Memory = "memory";

    /// <summary>sqlite (embedded file in DataFolder), redis, postgres or memory (lost at shutdown).</summary>
    public string Provider { get; set; } = Sqlite;
    /// <summary>Folder of the embedded SQLite database, relative to the working directory unless absolute.</summary>
    public string DataFolder { get; set; } = "./data";
    /// <summary>
    /// What an acknowledged SQLite write survives (PRAGMA synchronous): full (default) = process kill, OS crash and
    /// power loss; normal = process kill only (faster: no fsync per group commit, only at checkpoints).
    /// </summary>
    public string SqliteSynchronous { get; set; } = "full";
    /// <summary>
    /// WAL pages after which the SQLite writer checkpoints (PRAGMA wal_autocheckpoint; 4 KB each): larger means fewer
    /// commit stalls, a larger WAL file (~400 MB at the default) and a longer crash recovery.
    /// </summary>
    public int SqliteWalCheckpointPages { get; set; } = SqliteOptions.DefaultWalAutoCheckpointPages;
    /// <summary>
    /// Gather each commit's SQLite WAL writes into one write (SqliteGrainStorageOptions.BufferWalWrites): on by
    /// default, used only when SqliteSynchronous is full; false gives SQLite's own two writes per WAL frame.
    /// </summary>
    public bool SqliteBufferWalWrites { get; set; } = true;

    internal LstmOrleans.Persistence.Sqlite.SqliteSynchronousMode SqliteSynchronousMode =>
        string.Equals(SqliteSynchronous, "normal", StringComparison.OrdinalIgnoreCase)
            ? LstmOrleans.Persistence.Sqlite.SqliteSynchronousMode.Normal
            : LstmOrleans.Persistence.Sqlite.SqliteSynchronousMode.Full;

    internal void Validate(List<string> errors)
    {
        SiloSettings.CheckChoice(errors, "Storage:Provider", Provider, Sqlite, Redis, Postgres, Memory);
        SiloSettings.CheckChoice(errors, "Storage:SqliteSynchronous", SqliteSynchronous, "full", "normal");
        if (SqliteWalCheckpointPages is < SqliteOptions.MinWalAutoCheckpointPages or > SqliteOptions.MaxWalAutoCheckpointPages)
            errors.Add($"Storage:SqliteWalCheckpointPages must be in {SqliteOptions.MinWalAutoCheckpointPages}..{SqliteOptions.MaxWalAutoCheckpointPages}; got {SqliteWalCheckpointPages}.");
        if (string.Equals(Provider, Sqlite, StringComparison.OrdinalIgnoreCase) && string.IsNullOrWhiteSpace(DataFolder))
            errors.Add("Storage:DataFolder must not be empty when Storage:Provider is 'sqlite'.");
    }

    /// <summary>
    /// With SQLite, creates <see cref="DataFolder"/> now (the silo host calls it after validation), so a path that cannot
    /// be a folder (a file, a missing parent that is a file, a read-only place) stops startup naming the key, instead
    /// of failing later inside the storage provider with only the file system's words.
    /// </summary>
    public void CreateDataFolder()
    {
        if (!SiloSettings.Is(Provider, Sqlite)) return;
        var folder = Path.GetFullPath(DataFolder);
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new SiloConfigurationException([$"Storage:DataFolder: cannot create the folder '{folder}': {ex.Message}"]);
        }

        // A folder that exists but cannot be written (read-only mount, another owner) would otherwise fail the start
        // later, inside SQLite, with "unable to open database file" and a stack trace.
        try
        {
            using var probe = new FileStream(Path.Combine(folder, $".write-probe-{Environment.ProcessId}"), FileMode.Create,
                FileAccess.Write, FileShare.None, bufferSize: 1, FileOptions.DeleteOnClose);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new SiloConfigurationException([$"Storage:DataFolder: cannot write in the folder '{folder}': {ex.Message}"]);
        }
    }
}

public sealed class RemindersSettings
{
    public const string Memory = "memory";
    public const string Redis = "redis";

    /// <summary>memory (single silo, lost at shutdown) or redis.</summary>
    public string Provider { get; set; } = Memory;

    internal void Validate(List<string> errors) =>
        SiloSettings.CheckChoice(errors, "Reminders:Provider", Provider, Memory, Redis);
}

public sealed class ConnectionStringSettings
{
    /// <summary>StackExchange.Redis configuration string, e.g. <c>127.0.0.1:6379</c>.</summary>
    public string? Redis { get; set; }
    /// <summary>Npgsql connection string.</summary>
    public string? Postgres { get; set; }
}

public sealed class HttpSettings
{
    /// <summary>Where the HTTP API listens; loopback only by default.</summary>
    public string Urls { get; set; } = "http://127.0.0.1:5080";
    /// <summary>When set, every API call except /healthz and /readyz needs the header X-Api-Key with this value.</summary>
    public string? ApiKey { get; set; }
    /// <summary>Largest accepted request body; larger requests get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 4 * 1024 * 1024;
    /// <summary>Most observations in one ingest request.</summary>
    public int MaxBatchSize { get; set; } = 50_000;

    internal void Validate(List<string> errors)
    {
        var urls = ListenUrl.Split(Urls);
        // Empty would not mean "no API": Kestrel would fall back to its own default, http://localhost:5000.
        if (urls.Length == 0) errors.Add("Http:Urls must name at least one http(s) URL, e.g. http://127.0.0.1:5080.");
        foreach (var url in urls)
            // Read as Kestrel reads it: the wildcard forms (http://*:5080, http://+:5080, http://0.0.0.0:5080,
            // http://[::]:5080) listen on every interface; what Kestrel would throw on at start (a path, another scheme)
            // is a configuration error here.
            if (ListenUrl.Parse(url, out var problem) is null)
                errors.Add($"Http:Urls must be ';'-separated http(s) URLs without a path; got '{url}': {problem}.");
        if (MaxRequestBodyBytes is < 1024 or > 1L << 30) errors.Add($"Http:MaxRequestBodyBytes must be in 1024..1073741824; got {MaxRequestBodyBytes}.");
        if (MaxBatchSize is < 1 or > 10_000_000) errors.Add($"Http:MaxBatchSize must be in 1..10000000; got {MaxBatchSize}.");
        // HTTP trims a header value's surrounding whitespace and carries no control characters, so such a key could
        // never be matched: every call would be refused. Empty means no key.
        if (!string.IsNullOrEmpty(ApiKey) && (ApiKey.Trim().Length != ApiKey.Length || ApiKey.Any(char.IsControl)))
            errors.Add("Http:ApiKey must not be blank, start or end with whitespace, or hold control characters (leave it empty for no key).");
    }
}

/// <summary>
/// Failure detection. Orleans' defaults take ~18 s to declare a killed silo dead (10 s probe timeout, 3 missed
/// probes). These defaults (500 ms probes, 2 missed) declare a killed process dead in about 1-2 s on a loopback
/// or LAN cluster, at the cost of more false suspicions on a congested network: raise them there.
/// </summary>
public sealed class MembershipSettings
{
    /// <summary>ClusterMembershipOptions.ProbeTimeout: interval and timeout of each liveness probe.</summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromMilliseconds(500);
    /// <summary>ClusterMembershipOptions.NumMissedProbesLimit: missed probes before a silo votes its target dead.</summary>
    public int NumMissedProbesLimit { get; set; } = 2;
    /// <summary>ClusterMembershipOptions.NumVotesForDeathDeclaration (capped by Orleans at the number of live silos).</summary>
    public int NumVotesForDeathDeclaration { get; set; } = 2;
    /// <summary>ClusterMembershipOptions.TableRefreshTimeout: how often each silo re-reads the membership table.</summary>
    public TimeSpan TableRefreshTimeout { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>ClusterMembershipOptions.IAmAliveTablePublishTimeout.</summary>
    public TimeSpan IAmAliveTablePublishTimeout { get; set; } = TimeSpan.FromSeconds(10);

    internal void Validate(List<string> errors)
    {
        if (ProbeTimeout < TimeSpan.FromMilliseconds(100) || ProbeTimeout > TimeSpan.FromMinutes(5))
            errors.Add($"Membership:ProbeTimeout must be between 00:00:00.1 and 00:05:00; got {ProbeTimeout}.");
        if (NumMissedProbesLimit is < 1 or > 100) errors.Add($"Membership:NumMissedProbesLimit must be in 1..100; got {NumMissedProbesLimit}.");
        if (NumVotesForDeathDeclaration is < 1 or > 100) errors.Add($"Membership:NumVotesForDeathDeclaration must be in 1..100; got {NumVotesForDeathDeclaration}.");
        if (TableRefreshTimeout < TimeSpan.FromMilliseconds(100)) errors.Add($"Membership:TableRefreshTimeout must be at least 00:00:00.1; got {TableRefreshTimeout}.");
        if (IAmAliveTablePublishTimeout < TimeSpan.FromSeconds(1)) errors.Add($"Membership:IAmAliveTablePublishTimeout must be at least 00:00:01; got {IAmAliveTablePublishTimeout}.");
    }
}

/// <summary>Configuration that cannot run; the message lists every problem, one a line.</summary>
public sealed class SiloConfigurationException(IReadOnlyList<string> errors)
    : Exception("Invalid configuration:" + Environment.NewLine + string.Join(Environment.NewLine, errors.Select(e => "  - " + e)))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}

/// <summary>Metrics export. Off by default; the meters can always be read with dotnet-counters.</summary>
public sealed class TelemetrySettings
{
    /// <summary>OTLP endpoint (e.g. http://127.0.0.1:4317) to export the LstmOrleans, storage and Orleans meters to; empty = off.</summary>
    public string? OtlpEndpoint { get; set; }

    internal void Validate(List<string> errors)
    {
        if (!string.IsNullOrWhiteSpace(OtlpEndpoint)
            && (!Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https")))
            errors.Add($"Telemetry:OtlpEndpoint must be an absolute http(s) URL; got '{OtlpEndpoint}'.");
    }
}

/// <summary>
/// The Orleans dashboard (Microsoft.Orleans.Dashboard). It has no authentication of its own, so it is off by default,
/// gets its own listener on loopback when on, and asks for the silo's API key (Http:ApiKey) when one is configured.
/// </summary>
public sealed class DashboardSettings
{
    /// <summary>Serve the dashboard (and run its per-silo grain call profiler).</summary>
    public bool Enabled { get; set; }
    /// <summary>
    /// Where the dashboard listens: ';'-separated http(s) URLs with explicit ports that only serve the dashboard.
    /// Empty = on the HTTP API's own listener (Http:Urls) under <see cref="Path"/>.
    /// </summary>
    public string Urls { get; set; } = "http://127.0.0.1:5081";
    /// <summary>Path prefix of the dashboard.</summary>
    public string Path { get; set; } = "/dashboard";

    /// <summary>Path prefixes of the HTTP API that the dashboard must not shadow.</summary>
    private static readonly string[] ApiPrefixes = ["/streams", "/models", "/healthz", "/readyz", "/openapi"];

    internal bool HasOwnListener => !string.IsNullOrWhiteSpace(Urls);

    /// <summary>Ports of the dashboard's own listener (empty when it shares the API's).</summary>
    internal IReadOnlyList<int> Ports() => HasOwnListener
        ? [.. ListenUrl.Split(Urls).Select(u => ListenUrl.Parse(u, out _)?.Port ?? -1).Where(p => p > 0).Distinct()]
        : [];

    internal void Validate(List<string> errors, HttpSettings http)
    {
        if (string.IsNullOrEmpty(Path) || Path[0] != '/' || Path.Length < 2 || Path.EndsWith('/') || Path.Contains("//")
            || Path.IndexOfAny(['?', '#', '{', '}', '*', ' ']) >= 0)
            errors.Add($"Dashboard:Path must be a path like /dashboard (leading '/', no trailing '/'); got '{Path}'.");
        else if (ApiPrefixes.Any(p => Path.Equals(p, StringComparison.OrdinalIgnoreCase) || Path.StartsWith(p + "/", StringComparison.OrdinalIgnoreCase)))
            errors.Add($"Dashboard:Path must not shadow the HTTP API ({string.Join(", ", ApiPrefixes)}); got '{Path}'.");
        if (!Enabled || !HasOwnListener) return;
        // Read like Http:Urls (wildcard hosts included), so an API listening on http://*:5080 is seen to own port 5080.
        var apiPorts = ListenUrl.Split(http.Urls).Select(u => ListenUrl.Parse(u, out _)?.Port ?? -1).ToHashSet();
        foreach (var url in ListenUrl.Split(Urls))
        {
            // An explicit port is needed: requests are told apart from API requests by the port they arrive on.
            if (ListenUrl.Parse(url, out _) is not { HasExplicitPort: true, Port: >= 1 and <= 65535 } listen)
                errors.Add($"Dashboard:Urls must be ';'-separated http(s) URLs with an explicit port and no path (or empty to share Http:Urls); got '{url}'.");
            else if (apiPorts.Contains(listen.Port))
                errors.Add($"Dashboard:Urls port {listen.Port} is also an Http:Urls port; use another port, or leave Dashboard:Urls empty to serve the dashboard on the API listener.");
        }
    }
}
