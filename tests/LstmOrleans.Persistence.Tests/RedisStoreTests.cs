using LstmOrleans.Tests.Shared;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

/// <summary>
/// Orleans' own Redis provider (AddRedisGrainStorage) against a private redis-server started by the
/// fixture: the same durability checks as the other stores.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class RedisDurabilityTests(RedisServerFixture redis) : GrainStorageDurabilityTests
{
    protected override string Prefix => "redis";

    protected override Dictionary<string, string?> Settings() => new()
    {
        [StorageSettings.Kind] = "redis",
        [StorageSettings.RedisConfiguration] = redis.ConfigurationString,
    };

    [RedisFact] public Task WriteDeactivateAndReadBack() => WriteDeactivateAndReadBackCore();

    [RedisFact] public Task WholeClusterRestartKeepsState() => WholeClusterRestartKeepsStateCore();

    [RedisFact] public Task StaleEtagLosesAcrossTwoSilos() => StaleEtagLosesAcrossTwoSilosCore();

    [RedisFact] public Task ClearRemovesState() => ClearRemovesStateCore();

    [RedisFact] public Task ManyGrainsWritingConcurrentlyAllPersist() => ManyGrainsWritingConcurrentlyAllPersistCore();

    [RedisFact]
    public void FixtureRunsAPrivateServer()
    {
        Assert.True(redis.IsRunning);
        Assert.NotEqual(6379, redis.Port);
    }
}
