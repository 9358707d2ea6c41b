using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using LstmOrleans.Grains;
using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Storage;

namespace LstmOrleans.Client.Bench;

/// <summary>
/// The silo side of <c>lstmorleans bench</c>: a hidden subcommand (<c>bench silo-host</c>) that the bench starts as a
/// child process. It runs one silo configured exactly like the silo host (same <see cref="SiloSettings"/> and
/// <see cref="SiloHostingExtensions.UseLstmOrleansSilo"/>), on free loopback ports, prints <c>READY gatewayPort</c>
/// and then answers <c>stats</c> / <c>gcstats</c> lines on stdin with one <c>STATS {json}</c> line each. It stops
/// when stdin closes, so it never outlives the bench that started it.
/// </summary>
internal static class BenchSiloHost
{
    public const string CommandName = "silo-host";

    public static Command Create()
    {
        var store = new Option<string>("--store") { DefaultValueFactory = _ => StorageSettings.Memory };
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "./bench-data" };
        var redis = new Option<string?>("--redis");
        var postgres = new Option<string?>("--postgres");
        var serviceId = new Option<string>("--service-id") { DefaultValueFactory = _ => "lstmorleans-bench" };
        var history = new Option<int?>("--history");
        var persistEvery = new Option<int?>("--persist-every");
        var orleansSerializer = new Option<bool>("--orleans-storage-serializer");
        var collectionAge = new Option<double?>("--collection-age");
        var sqliteSynchronous = new Option<string?>("--sqlite-synchronous");
        var command = new Command(CommandName, "Internal: the silo process started by 'bench'.")
        {
            store, data, redis, postgres, serviceId, history, persistEvery, orleansSerializer, collectionAge, sqliteSynchronous,
        };
        command.Hidden = true;
        command.SetAction((result, ct) => RunAsync(
            result.GetValue(store)!, result.GetValue(data)!, result.GetValue(redis), result.GetValue(postgres),
            result.GetValue(serviceId)!, result.GetValue(history), result.GetValue(persistEvery), result.GetValue(orleansSerializer), ct, result.GetValue(collectionAge), result.GetValue(sqliteSynchronous)));
        return command;
    }

    private static async Task<int> RunAsync(string store, string dataFolder, string? redis, string? postgres, string serviceId,
        int? history, int? persistEvery, bool orleansSerializer, CancellationToken cancellationToken, double? collectionAgeSeconds = null, string? sqliteSynchronous = null)
    {
        // Silo settings from LSTMORLEANS_* environment variables, as the real silo host reads them (e.g.
        // --silo-env LSTMORLEANS_Storage__SqliteWalCheckpointPages=1000000); the bench's own choices below win.
        SiloSettings settings;
        try
        {
            settings = SiloSettings.Load(new ConfigurationBuilder().AddEnvironmentVariables("LSTMORLEANS_").Build());
        }
        catch (SiloConfigurationException ex)
        {
            Console.Error.WriteLine(ex.Message);
            return 2;
        }
        settings.Cluster.ClusterId = "lstmorleans-bench";
        settings.Cluster.ServiceId = serviceId;
        settings.Cluster.SiloPort = FreeTcpPort();
        settings.Cluster.GatewayPort = FreeTcpPort();
        settings.Storage.Provider = store;
        settings.Storage.DataFolder = dataFolder;
        settings.ConnectionStrings.Redis = redis;
        settings.ConnectionStrings.Postgres = postgres;
        if (sqliteSynchronous is not null) settings.Storage.SqliteSynchronous = sqliteSynchronous;
        var errors = settings.Validate();
        if (errors.Count > 0)
        {
            Console.Error.WriteLine(new SiloConfigurationException(errors).Message);
            return 2;
        }
        if (store == StorageSettings.Sqlite) Directory.CreateDirectory(dataFolder);

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        // stdout carries the READY/STATS protocol; every log line goes to stderr.
        builder.Logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddLstmOrleansLogFilters();
        builder.UseOrleans(silo =>
        {
            silo.UseLstmOrleansSilo(settings);
            silo.Services.Configure<StreamGrainOptions>(o =>
            {
                if (history is { } h) o.SetHistoryCapacity(h);
                if (persistEvery is { } p) o.PersistEverySteps = p;
            });
            // Experiment: the storage providers that take the silo-wide default IGrainStorageSerializer (memory,
            // redis) use Orleans' binary serializer instead of the default JSON one.
            if (orleansSerializer) silo.Services.AddSingleton<IGrainStorageSerializer, OrleansGrainStorageSerializer>();
            // The scale phase binds N streams over many minutes; Orleans' idle collection (15 min by default) would
            // deactivate the first ones before the last are bound, so it sets an age longer than the run.
            if (collectionAgeSeconds is { } age) silo.Services.Configure<Orleans.Configuration.GrainCollectionOptions>(o => o.CollectionAge = TimeSpan.FromSeconds(age));
        });
        using var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken);
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"silo failed to start: {ex.Message}");
            return 1;
        }

        Console.Out.WriteLine($"READY {settings.Cluster.GatewayPort}");
        Console.Out.Flush();
        while (await Console.In.ReadLineAsync(cancellationToken) is { } line)
        {
            line = line.Trim();
            if (line == "stop") break;
            if (line is "stats" or "gcstats")
            {
                if (line == "gcstats")
                {
                    GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                    GC.WaitForPendingFinalizers();
                    GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                }
                var stats = ProcessStats.Capture() with { Gc = RuntimeGcSettings.Describe() };
                Console.Out.WriteLine("STATS " + JsonSerializer.Serialize(stats, BenchJson.Options));
                Console.Out.Flush();
            }
        }
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try { await host.StopAsync(stop.Token); }
        catch (OperationCanceledException) { }
        return 0;
    }

    private static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>
/// Memory, GC and CPU figures of one process at one moment (GcPauseSeconds: total time the runtime was paused for GC so
/// far; Gc: the collector's settings, <see cref="RuntimeGcSettings.Describe()"/>, reported by the silo process).
/// </summary>
internal sealed record ProcessStats(
    long RssBytes,
    long? PeakRssBytes,
    long ManagedHeapBytes,
    long AllocatedBytes,
    int Gen0Collections,
    int Gen1Collections,
    int Gen2Collections,
    double CpuSeconds,
    double GcPauseSeconds = 0,
    string? Gc = null)
{
    public static ProcessStats Capture()
    {
        using var self = Process.GetCurrentProcess();
        return new ProcessStats(
            Environment.WorkingSet,
            ReadPeakRss(),
            GC.GetGCMemoryInfo().HeapSizeBytes,
            GC.GetTotalAllocatedBytes(precise: false),
            GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2),
            self.TotalProcessorTime.TotalSeconds,
            GC.GetTotalPauseDuration().TotalSeconds);
    }

    /// <summary>VmHWM (peak resident set) from /proc on Linux; null elsewhere.</summary>
    private static long? ReadPeakRss()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim()) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
