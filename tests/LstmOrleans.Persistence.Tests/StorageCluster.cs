using System.Collections.Concurrent;
using Microsoft.Extensions.Configuration;
using Orleans.Hosting;
using Orleans.TestingHost;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

/// <summary>
/// Cluster tests start silos and share 2 cores: run them one class at a time. The collection also
/// shares one private PostgreSQL and one Redis server among its classes (tests keep apart through
/// their ServiceIds and table names).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection : ICollectionFixture<LstmOrleans.Tests.Shared.PostgresServerFixture>, ICollectionFixture<LstmOrleans.Tests.Shared.RedisServerFixture>
{
    public const string Name = "storage clusters";
}

/// <summary>Configuration keys the silo configurator reads to wire the store under test.</summary>
public static class StorageSettings
{
    public const string Kind = "Storage:Kind";
    public const string SqlitePath = "Storage:Sqlite:Path";
    public const string PostgresConnectionString = "Storage:Postgres:ConnectionString";
    public const string RedisConfiguration = "Storage:Redis:Configuration";
    public const string FaultKey = "Storage:FaultKey";
}

/// <summary>Starts real Orleans test clusters (in-process silos) against a chosen store.</summary>
public static class StorageCluster
{
    public static async Task<TestCluster> StartAsync(string serviceId, IReadOnlyDictionary<string, string?> settings, short silos = 1)
    {
        var builder = new TestClusterBuilder(silos);
        // Storage keys include the ServiceId; TestCluster would otherwise draw a random one per cluster.
        builder.Options.ServiceId = serviceId;
        builder.ConfigureHostConfiguration(configuration => configuration.AddInMemoryCollection(settings));
        builder.AddSiloBuilderConfigurator<StorageSiloConfigurator>();
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    public static string NewServiceId(string prefix) => $"{prefix}-{Guid.NewGuid():N}";
}

public sealed class StorageSiloConfigurator : ISiloConfigurator
{
    public void Configure(ISiloBuilder siloBuilder)
    {
        var configuration = siloBuilder.Configuration;
        var faultKey = configuration[StorageSettings.FaultKey];
        switch (configuration[StorageSettings.Kind])
        {
            case "sqlite":
                siloBuilder.AddSqliteGrainStorage(DurableTestGrain.StorageName, options =>
                {
                    options.DataSource = configuration[StorageSettings.SqlitePath];
                    options.OnBeforeCommit = CommitFaults.Hook(faultKey);
                });
                break;
            case "postgres":
                siloBuilder.AddPostgresGrainStorage(DurableTestGrain.StorageName, options =>
                {
                    options.ConnectionString = configuration[StorageSettings.PostgresConnectionString];
                    options.OnBeforeCommit = CommitFaults.Hook(faultKey);
                });
                break;
            case "redis":
                siloBuilder.AddRedisGrainStorage(DurableTestGrain.StorageName, options =>
                    options.ConfigurationOptions = StackExchange.Redis.ConfigurationOptions.Parse(configuration[StorageSettings.RedisConfiguration]!));
                break;
            default:
                throw new InvalidOperationException($"Unknown store '{configuration[StorageSettings.Kind]}'.");
        }
    }
}

/// <summary>
/// Fault switches the silo-side commit hook consults; tests arm them by key (the silo configurator is
/// created by TestCluster, so it cannot be handed an object directly).
/// </summary>
public static class CommitFaults
{
    private static readonly ConcurrentDictionary<string, CommitFault> Faults = new();

    public static CommitFault Get(string key) => Faults.GetOrAdd(key, _ => new CommitFault());

    public static Func<int, ValueTask>? Hook(string? key) => key is null ? null : Get(key).BeforeCommit;
}

public sealed class CommitFault
{
    private int _remainingFailures;

    /// <summary>The next <paramref name="count"/> commits throw inside their transaction.</summary>
    public void FailNextCommits(int count) => Volatile.Write(ref _remainingFailures, count);

    public int InjectedFailures { get; private set; }

    public ValueTask BeforeCommit(int batchSize)
    {
        if (Volatile.Read(ref _remainingFailures) > 0 && Interlocked.Decrement(ref _remainingFailures) >= 0)
        {
            InjectedFailures++;
            throw new IOException($"Injected commit failure (batch of {batchSize}).");
        }

        return ValueTask.CompletedTask;
    }
}
