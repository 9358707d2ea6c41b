using System.Net;
using LstmOrleans.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using LstmOrleans.Grains.Storage;
using LstmOrleans.Persistence.Postgres;
using LstmOrleans.Persistence.Sqlite;
using Orleans.Configuration;
using Orleans.Persistence;
using Orleans.Storage;
using StackExchange.Redis;

namespace LstmOrleans.Silo.Hosting;

/// <summary>The one place that turns <see cref="SiloSettings"/> into an Orleans silo (used by the silo host and the client's in-process demo silo).</summary>
public static class SiloHostingExtensions
{
    /// <summary>Grain storage provider name the grains persist their state under.</summary>
    public const string GrainStorageName = LstmOrleansNames.StorageName;

    public static ISiloBuilder UseLstmOrleansSilo(this ISiloBuilder silo, SiloSettings settings)
    {
        var cluster = settings.Cluster;
        silo.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = cluster.ClusterId;
            o.ServiceId = cluster.ServiceId;
        });

        if (cluster.IsRedis)
        {
            silo.UseRedisClustering(o => o.ConfigurationOptions = ConfigurationOptions.Parse(settings.ConnectionStrings.Redis!));
            silo.ConfigureEndpoints(IPAddress.Parse(cluster.AdvertisedAddress), cluster.SiloPort, cluster.GatewayPort, listenOnAnyHostAddress: false);
        }
        else
        {
            var primary = cluster.PrimarySiloPort == 0 ? null : new IPEndPoint(IPAddress.Loopback, cluster.PrimarySiloPort);
            silo.UseLocalhostClustering(cluster.SiloPort, cluster.GatewayPort, primary, cluster.ServiceId, cluster.ClusterId);
        }

        var membership = settings.Membership;
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = membership.ProbeTimeout;
            o.NumMissedProbesLimit = membership.NumMissedProbesLimit;
            o.NumVotesForDeathDeclaration = membership.NumVotesForDeathDeclaration;
            o.TableRefreshTimeout = membership.TableRefreshTimeout;
            o.IAmAliveTablePublishTimeout = membership.IAmAliveTablePublishTimeout;
        });

        // TLS on every Orleans connection of this silo: gateway (clients), silo-to-silo in and out.
        if (settings.Tls.Enabled)
            silo.UseTls(o => settings.Tls.Configure(o, isSilo: true));

        switch (settings.Storage.Provider.ToLowerInvariant())
        {
            case StorageSettings.Redis:
                silo.AddRedisGrainStorage(GrainStorageName, o => o.ConfigurationOptions = ConfigurationOptions.Parse(settings.ConnectionStrings.Redis!));
                silo.AddStreamStateCodec<RedisStorageOptions>(GrainStorageName);
                break;
            case StorageSettings.Memory:
                // Process-local (no grain hop per write); like Orleans' memory storage it does not survive the process.
                silo.AddLocalMemoryGrainStorage(GrainStorageName);
                silo.AddStreamStateCodec<LocalMemoryGrainStorageOptions>(GrainStorageName);
                break;
            case StorageSettings.Sqlite:
                var database = Path.Combine(Path.GetFullPath(settings.Storage.DataFolder), "lstmorleans.db");
                var synchronous = settings.Storage.SqliteSynchronousMode;
                int checkpointPages = settings.Storage.SqliteWalCheckpointPages;
                bool bufferWalWrites = settings.Storage.SqliteBufferWalWrites;
                silo.AddSqliteGrainStorage(GrainStorageName, o =>
                {
                    o.DataSource = database;
                    o.Synchronous = synchronous;
                    o.WalAutoCheckpointPages = checkpointPages;
                    o.BufferWalWrites = bufferWalWrites;
                });
                silo.AddStreamStateCodec<SqliteGrainStorageOptions>(GrainStorageName);
                break;
            case StorageSettings.Postgres:
                silo.AddPostgresGrainStorage(GrainStorageName, o => o.ConnectionString = settings.ConnectionStrings.Postgres!);
                silo.AddStreamStateCodec<PostgresGrainStorageOptions>(GrainStorageName);
                break;
        }
        // Every provider above writes the stream records (core state on every acknowledged step, closed history) with
        // the compact StreamStateCodec and everything else in Orleans' binary format; records of either format read back.

        // Providers that take the silo-wide default state serializer (memory, Redis) would otherwise write JSON;
        // the compact Orleans binary format is what the SQLite and PostgreSQL providers use too.
        silo.Services.AddSingleton<IGrainStorageSerializer, OrleansGrainStorageSerializer>();

        // Stream grains, model grains and the per-silo weights cache.
        // The weights cache renews its push subscriptions and catches up on missed versions every RefreshInterval;
        // 5 s (instead of 30 s) bounds how long a silo can lag behind a rollout or rollback.
        var streams = settings.Streams;
        silo.AddLstmOrleans(
            configureStreams: o =>
            {
                o.PersistEverySteps = streams.PersistEverySteps;
                o.PersistInterval = streams.PersistInterval;
                o.HistoryCapacity = streams.HistoryCapacity;
                o.HistoryChunkSize = streams.HistoryChunkSize;
                o.MaxBatchSize = streams.MaxBatchSize;
                o.IntervalZ = streams.IntervalZ;
                o.ErrorSmoothing = streams.ErrorSmoothing;
                o.OffloadMultiplyAdds = streams.OffloadMultiplyAdds;
                o.MaxTimestampAhead = streams.MaxTimestampAhead;
            },
            configureCache: o => o.RefreshInterval = TimeSpan.FromSeconds(5));
        // Training grains (scheduled by reminders) and stream-to-registry reporting.
        silo.AddLstmOrleansTraining();
        // Orleans-streams ingestion path (implicit subscriptions of the stream grains). Memory streams carry
        // messages between silos but keep no backlog; a durable queue provider can replace them.
        silo.AddMemoryStreams(LstmOrleansNames.StreamProviderName);
        silo.AddMemoryGrainStorage("PubSubStore");

        if (string.Equals(settings.Reminders.Provider, RemindersSettings.Redis, StringComparison.OrdinalIgnoreCase))
            silo.UseRedisReminderService(o => o.ConfigurationOptions = ConfigurationOptions.Parse(settings.ConnectionStrings.Redis!));
        else
            silo.UseInMemoryReminderService();

        return silo;
    }

    /// <summary>
    /// Keeps Orleans' own chatter at Warning unless configuration says otherwise (Logging:LogLevel:Orleans=...), and
    /// drops Orleans' false watchdog stall warning at start (<see cref="WatchdogStartRaceFilter"/>) and the errors of
    /// stream queue reads cancelled by their own pulling agent when a silo joins (<see cref="StreamReadCancellationFilter"/>).
    /// </summary>
    public static ILoggingBuilder AddLstmOrleansLogFilters(this ILoggingBuilder logging)
    {
        logging.AddFilter("Orleans", LogLevel.Warning);
        logging.AddFilter("Orleans.Runtime", LogLevel.Warning);
        logging.AddFilter("Microsoft.Orleans", LogLevel.Warning);
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Polly", LogLevel.Warning);
        // At most starts Orleans' watchdog warns of a "stall" as long as the machine's uptime (WatchdogStartRaceFilter),
        // and a silo joining a running cluster makes the others log their stream pulling agents' cancelled reads as
        // errors (StreamReadCancellationFilter). The factory is wrapped rather than each provider, so providers added
        // after this call are covered too.
        logging.Services.Replace(ServiceDescriptor.Singleton<ILoggerFactory>(sp => new StreamReadCancellationFilter(new WatchdogStartRaceFilter(
            new LoggerFactory(
                sp.GetServices<ILoggerProvider>(),
                sp.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<LoggerFilterOptions>>(),
                sp.GetService<Microsoft.Extensions.Options.IOptions<LoggerFactoryOptions>>(),
                sp.GetService<IExternalScopeProvider>())))));
        return logging;
    }

    /// <summary>
    /// The silo host's Program.cs explains a failed start in one line (a port in use, a configuration error, a stop
    /// requested before the start finished) and prints any other start failure whole, stack trace included. The same
    /// exception is logged before that, with its full stack trace, by whoever saw it fail: the generic host ("Hosting
    /// failed to start"), Orleans' silo, lifecycle and membership ("Exception during Silo.Start", "... failed to start due
    /// to errors at stage ...", "Membership failed to start", "Init: ... errored", "Error activating reminder service"). Those entries are left out: the host's below Critical
    /// always (it logs nothing else at Error; a failed background service that stops the host is logged at Critical with
    /// its exception), Orleans' only while <paramref name="starting"/>, since afterwards they report failures (a stage
    /// that failed to stop) that nothing rethrows. Once the start is <paramref name="abandoned"/> (failed, or a stop was
    /// requested during it), the retries and cancelled calls of the silo being torn down are not reported either.
    /// </summary>
    public static ILoggingBuilder AddSiloStartFailureLogFilters(this ILoggingBuilder logging, Func<bool> starting, Func<bool> abandoned)
    {
        logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        // Exact categories: a rule's category is a prefix, and "Orleans.Runtime.Silo" alone would cover SiloControl and more.
        // The grain storage and reminder service log their own failed start (an unreachable Redis) the same way.
        string[] startReporters = ["Orleans.Runtime.Silo", "Orleans.Runtime.SiloLifecycleSubject", "Orleans.Runtime.MembershipService.MembershipTableManager",
            "Orleans.Persistence.RedisGrainStorage", "Orleans.Runtime.ReminderService.LocalReminderService"];
        // Prefixes: what stopping a silo that never finished starting reports (connection retries to an unreachable
        // primary, stream queue reads and reminder reads cut short, calls cancelled or left without a target, and the
        // in-memory reminder table's Polly retries of its grain, which a stopping silo has no node for, and system
        // targets' timers that fire into the disposed service provider).
        string[] teardown = ["Orleans.Runtime.Messaging", "Orleans.Messaging", "Orleans.Runtime.GrainCallCancellationManager",
            "Orleans.Runtime.ReminderService", "Orleans.Streams", "Orleans.Providers", "Polly", "Orleans.Grain.InvokeException"];
        bool Keep(string? category, LogLevel level) =>
            level >= LogLevel.Critical
            || !(abandoned() && teardown.Any(p => category?.StartsWith(p, StringComparison.Ordinal) == true)
                 || starting() && level >= LogLevel.Error && startReporters.Contains(category));
        logging.Services.Configure<LoggerFilterOptions>(o =>
        {
            // At the Warning floor the "Orleans" and "Orleans.Runtime" rules give these categories otherwise.
            foreach (var category in startReporters.Concat(teardown))
                o.Rules.Add(new LoggerFilterRule(null, category, LogLevel.Warning, (_, name, level) => Keep(name, level)));
        });
        return logging;
    }
}
