using Orleans;
using Orleans.Storage;
using Orleans.TestingHost;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

/// <summary>
/// Group-commit and fault-injection checks for the LstmOrleans providers (SQLite, PostgreSQL) on a
/// real Orleans cluster.
/// </summary>
public abstract class GroupCommitClusterTests : GrainStorageDurabilityTests
{
    protected abstract Dictionary<string, string?> Settings(string faultKey);

    protected override Dictionary<string, string?> Settings() => Settings(Guid.NewGuid().ToString("N"));

    protected abstract (long Batches, long Operations, int Largest, long Failed) Statistics(IGrainStorage storage);

    protected async Task ConcurrentWritesAreGroupCommittedCore()
    {
        await using var cluster = await StorageCluster.StartAsync(StorageCluster.NewServiceId(Prefix), Settings());
        const int Grains = 200;
        const int WritesPerGrain = 5;
        var grains = Enumerable.Range(0, Grains).Select(i => cluster.GrainFactory.GetGrain<IDurableTestGrain>($"gc-{i}")).ToArray();

        await Task.WhenAll(grains.Select(async (grain, index) =>
        {
            for (var step = 1; step <= WritesPerGrain; step++)
            {
                await grain.WriteAsync(Sample(index * 100 + step));
            }
        }));

        var (batches, operations, largest, failed) = Statistics(SiloStorage(cluster, cluster.Primary));
        Assert.Equal(0, failed);
        Assert.Equal(Grains * WritesPerGrain, operations);
        // Writes from different grains shared transactions: fewer commits than writes.
        Assert.True(largest > 1, $"largest batch was {largest}: no group commit happened");
        Assert.True(batches < operations, $"{batches} batches for {operations} writes");

        for (var index = 0; index < Grains; index += 17)
        {
            var stored = await StoredAsync(cluster, grains[index]);
            AssertSameState(Sample(index * 100 + WritesPerGrain), stored.State);
        }
    }

    protected async Task InjectedCommitFailureLeavesStateAndRetryConvergesCore()
    {
        var faultKey = Guid.NewGuid().ToString("N");
        await using var cluster = await StorageCluster.StartAsync(StorageCluster.NewServiceId(Prefix), Settings(faultKey));
        var grain = cluster.GrainFactory.GetGrain<IDurableTestGrain>("faulty");
        var first = await grain.WriteAsync(Sample(1));

        CommitFaults.Get(faultKey).FailNextCommits(1);
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => grain.WriteAsync(Sample(2)));
        Assert.Contains("Injected commit failure", failure.ToString());
        Assert.Equal(1, CommitFaults.Get(faultKey).InjectedFailures);

        // Neither the grain nor the store took the failed value, and the etag did not move.
        var inMemory = await grain.ReadAsync();
        AssertSameState(Sample(1), inMemory.State);
        Assert.Equal(first.Etag, inMemory.Etag);
        var stored = await StoredAsync(cluster, grain);
        AssertSameState(Sample(1), stored.State);
        Assert.Equal(first.Etag, stored.ETag);

        // A retry with the unchanged etag converges.
        var retried = await grain.WriteAsync(Sample(2));
        Assert.NotEqual(first.Etag, retried.Etag);
        await DeactivateAsync(cluster, grain);
        var reread = await grain.ReadAsync();
        AssertSameState(Sample(2), reread.State);
        Assert.Equal(1, Statistics(SiloStorage(cluster, cluster.Primary)).Failed);
    }

    protected async Task FailedBatchUnderLoadLeavesOnlyOldOrNewValuesCore()
    {
        var faultKey = Guid.NewGuid().ToString("N");
        await using var cluster = await StorageCluster.StartAsync(StorageCluster.NewServiceId(Prefix), Settings(faultKey));
        var grains = Enumerable.Range(0, 50).Select(i => cluster.GrainFactory.GetGrain<IDurableTestGrain>($"load-{i}")).ToArray();
        await Task.WhenAll(grains.Select((grain, i) => grain.WriteAsync(Sample(i))));

        CommitFaults.Get(faultKey).FailNextCommits(1);
        var results = await Task.WhenAll(grains.Select(async (grain, i) =>
        {
            try
            {
                await grain.WriteAsync(Sample(1000 + i));
                return true;
            }
            catch (Exception)
            {
                return false;
            }
        }));

        Assert.Contains(false, results);
        for (var i = 0; i < grains.Length; i++)
        {
            var stored = await StoredAsync(cluster, grains[i]);
            AssertSameState(results[i] ? Sample(1000 + i) : Sample(i), stored.State);
        }

        // Retrying the failed writes converges to every new value.
        await Task.WhenAll(grains.Where((_, i) => !results[i]).Select(grain => grain.WriteAsync(Sample(1000 + Array.IndexOf(grains, grain)))));
        for (var i = 0; i < grains.Length; i++)
        {
            AssertSameState(Sample(1000 + i), (await StoredAsync(cluster, grains[i])).State);
        }
    }
}
