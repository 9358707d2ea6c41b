using Microsoft.Extensions.DependencyInjection;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;
using Orleans.TestingHost;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

/// <summary>
/// The same durability checks for every store (SQLite, PostgreSQL, Redis), run on a real Orleans
/// test cluster. Each store's subclass exposes them as facts (with its own skip attribute where a
/// server binary is needed).
/// </summary>
public abstract class GrainStorageDurabilityTests
{
    /// <summary>Silo configuration selecting and locating the store under test.</summary>
    protected abstract Dictionary<string, string?> Settings();

    protected abstract string Prefix { get; }

    internal static SensorTestState Sample(long sequence, int size = 8, string note = "") => new()
    {
        Sequence = sequence,
        Hidden = Enumerable.Range(0, size).Select(i => MathF.Sin(sequence * 0.37f + i)).ToArray(),
        Note = note,
    };

    internal static void AssertSameState(SensorTestState? expected, SensorTestState? actual)
    {
        Assert.NotNull(expected);
        Assert.NotNull(actual);
        Assert.Equal(expected.Sequence, actual.Sequence);
        Assert.Equal(expected.Hidden, actual.Hidden);
        Assert.Equal(expected.Note, actual.Note);
    }

    protected static async Task DeactivateAsync(TestCluster cluster, IDurableTestGrain grain)
    {
        await grain.DeactivateAsync();
        await cluster.WaitForDeactivationAsync(grain);
    }

    protected static IGrainStorage SiloStorage(TestCluster cluster, SiloHandle? silo)
    {
        Assert.NotNull(silo);
        return cluster.GetSiloServiceProvider(silo.SiloAddress).GetRequiredKeyedService<IGrainStorage>(DurableTestGrain.StorageName);
    }

    /// <summary>What the store holds for a test grain, read straight through the provider.</summary>
    protected static async Task<GrainState<SensorTestState>> StoredAsync(TestCluster cluster, IDurableTestGrain grain)
    {
        var state = new GrainState<SensorTestState>(new SensorTestState());
        await SiloStorage(cluster, cluster.Primary).ReadStateAsync("sensor", grain.GetGrainId(), state);
        return state;
    }

    protected async Task WriteDeactivateAndReadBackCore()
    {
        await using var cluster = await StorageCluster.StartAsync(StorageCluster.NewServiceId(Prefix), Settings());
        var grain = cluster.GrainFactory.GetGrain<IDurableTestGrain>("sensor-a");
        var expected = Sample(7, note: "after step 7");

        var written = await grain.WriteAsync(expected);
        Assert.True(written.RecordExists);
        Assert.NotNull(written.Etag);

        await DeactivateAsync(cluster, grain);
        var read = await grain.ReadAsync();

        Assert.True(read.RecordExists);
        Assert.Equal(written.Etag, read.Etag);
        AssertSameState(expected, read.State);
    }

    protected async Task WholeClusterRestartKeepsStateCore()
    {
        var serviceId = StorageCluster.NewServiceId(Prefix);
        var expected = Enumerable.Range(0, 16).ToDictionary(i => $"sensor-{i}", i => Sample(100 + i, size: 4 + i));
        await using (var first = await StorageCluster.StartAsync(serviceId, Settings()))
        {
            await Task.WhenAll(expected.Select(pair => first.GrainFactory.GetGrain<IDurableTestGrain>(pair.Key).WriteAsync(pair.Value)));
            await first.StopAllSilosAsync();
        }

        await using var second = await StorageCluster.StartAsync(serviceId, Settings());
        foreach (var (key, state) in expected)
        {
            var read = await second.GrainFactory.GetGrain<IDurableTestGrain>(key).ReadAsync();
            Assert.True(read.RecordExists, $"{key} lost its state across the restart");
            AssertSameState(state, read.State);
        }

        // Keys include the ServiceId: another service sharing the store sees none of it.
        await using var other = await StorageCluster.StartAsync(StorageCluster.NewServiceId(Prefix), Settings());
        var foreign = await other.GrainFactory.GetGrain<IDurableTestGrain>("sensor-0").ReadAsync();
        Assert.False(foreign.RecordExists);
        Assert.Equal(0, foreign.State.Sequence);
    }

    protected async Task StaleEtagLosesAcrossTwoSilosCore()
    {
        await using var cluster = await StorageCluster.StartAsync(StorageCluster.NewServiceId(Prefix), Settings(), silos: 2);
        var storageA = SiloStorage(cluster, cluster.Silos[0]);
        var storageB = SiloStorage(cluster, cluster.Silos[1]);
        Assert.NotSame(storageA, storageB);

        var grainId = GrainId.Create("etag-test", Guid.NewGuid().ToString("N"));
        var initial = new GrainState<SensorTestState>(Sample(1));
        await storageA.WriteStateAsync("direct", grainId, initial);
        Assert.NotNull(initial.ETag);

        // Both instances hold the same (soon stale) etag and write different values at once.
        var viaA = new GrainState<SensorTestState>(Sample(2, note: "A"), initial.ETag);
        var viaB = new GrainState<SensorTestState>(Sample(3, note: "B"), initial.ETag);
        var attempts = new[] { Attempt(storageA, grainId, viaA), Attempt(storageB, grainId, viaB) };
        var outcomes = await Task.WhenAll(attempts);

        Assert.Equal(1, outcomes.Count(outcome => outcome is null));
        Assert.Single(outcomes, outcome => outcome is InconsistentStateException);
        var winner = outcomes[0] is null ? viaA : viaB;
        var loser = outcomes[0] is null ? viaB : viaA;
        Assert.Equal(initial.ETag, loser.ETag); // the loser's etag was not advanced
        Assert.NotEqual(initial.ETag, winner.ETag);

        var stored = new GrainState<SensorTestState>(new SensorTestState());
        await storageB.ReadStateAsync("direct", grainId, stored);
        AssertSameState(winner.State, stored.State);
        Assert.Equal(winner.ETag, stored.ETag);

        static async Task<Exception?> Attempt(IGrainStorage storage, GrainId grainId, GrainState<SensorTestState> state)
        {
            try
            {
                await storage.WriteStateAsync("direct", grainId, state);
                return null;
            }
            catch (Exception exception)
            {
                return exception;
            }
        }
    }

    protected async Task ClearRemovesStateCore()
    {
        await using var cluster = await StorageCluster.StartAsync(StorageCluster.NewServiceId(Prefix), Settings());
        var grain = cluster.GrainFactory.GetGrain<IDurableTestGrain>("to-clear");
        await grain.WriteAsync(Sample(5));

        var cleared = await grain.ClearAsync();
        Assert.False(cleared.RecordExists);
        Assert.Equal(0, cleared.State.Sequence);

        await DeactivateAsync(cluster, grain);
        var afterClear = await grain.ReadAsync();
        Assert.False(afterClear.RecordExists);
        Assert.Equal(0, afterClear.State.Sequence);
        Assert.Empty(afterClear.State.Hidden);

        // The grain can start over after a clear.
        await grain.WriteAsync(Sample(6));
        await DeactivateAsync(cluster, grain);
        var rewritten = await grain.ReadAsync();
        Assert.True(rewritten.RecordExists);
        AssertSameState(Sample(6), rewritten.State);
    }

    protected async Task ManyGrainsWritingConcurrentlyAllPersistCore()
    {
        await using var cluster = await StorageCluster.StartAsync(StorageCluster.NewServiceId(Prefix), Settings());
        var grains = Enumerable.Range(0, 100).Select(i => cluster.GrainFactory.GetGrain<IDurableTestGrain>($"many-{i}")).ToArray();
        await Task.WhenAll(grains.Select(async (grain, index) =>
        {
            for (var step = 1; step <= 3; step++)
            {
                await grain.WriteAsync(Sample(index * 10 + step));
            }
        }));

        for (var index = 0; index < grains.Length; index++)
        {
            var stored = await StoredAsync(cluster, grains[index]);
            Assert.True(stored.RecordExists);
            AssertSameState(Sample(index * 10 + 3), stored.State);
        }
    }
}
