using LstmOrleans.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.Runtime;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.TestingHost;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// Holds reads of closed-history records while <see cref="Gate"/> is set, so a test can stop one activation between
/// its core write and its history records (or, in the order used before, between its fence read and its records).
/// </summary>
public sealed class GatedGrainStorage(IGrainStorage inner) : IGrainStorage
{
    public static volatile TaskCompletionSource? Gate;

    /// <summary>Completed when a history read first waits at the gate.</summary>
    public static TaskCompletionSource Entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (Gate is { } gate && stateName.StartsWith("history.", StringComparison.Ordinal))
        {
            Entered.TrySetResult();
            await gate.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        await inner.ReadStateAsync(stateName, grainId, grainState);
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.WriteStateAsync(stateName, grainId, grainState);

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.ClearStateAsync(stateName, grainId, grainState);
}

/// <summary>
/// Two one-silo clusters over one process-wide store without companion writes (the Redis path), so the same stream can
/// be active in both at once: a duplicate activation, as after a partition or a silo that was declared dead too early.
/// Cluster B's history reads go through <see cref="GatedGrainStorage"/>. History capacity 20 in chunks of 8.
/// </summary>
public sealed class DuplicateActivationFixture : IAsyncLifetime
{
    public InProcessTestCluster A { get; private set; } = null!;

    public InProcessTestCluster B { get; private set; } = null!;

    private static InProcessTestCluster Build(string name, bool gated)
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.Options.ServiceId = "lstm-duplicate-activation-tests";
        builder.Options.ClusterId = $"lstm-duplicate-activation-{name}";
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddGrainStorage(LstmOrleansNames.StorageName, (sp, _) =>
            {
                IGrainStorage store = new ProcessWideGrainStorage(sp.GetRequiredService<Serializer>());
                return gated ? new GatedGrainStorage(store) : store;
            });
            silo.AddLstmOrleans(configureStreams: o =>
            {
                o.HistoryCapacity = 20;
                o.HistoryChunkSize = 8;
            });
        });
        return builder.Build();
    }

    public async Task InitializeAsync()
    {
        A = Build("a", gated: false);
        B = Build("b", gated: true);
        await A.DeployAsync();
        await B.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var cluster in new[] { A, B })
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }
}

public sealed class DuplicateActivationTests(DuplicateActivationFixture fixture) : IClassFixture<DuplicateActivationFixture>
{
    /// <summary>
    /// Both activations hold the same core (24 observations, the tail 17..24 full) and each takes a different batch of
    /// 9 (sequences 25..33), which closes two chunks: 17..24, the same in both, and 25..32, from the batch. B is held
    /// just before it reads the chunks' records while A's call runs to the end. Exactly one of the two calls is
    /// acknowledged, and the stored history is the acknowledged one's. (With the records written before the core,
    /// behind a fence read of the core, both passed the fence, A won the core and B's records replaced A's: the stored
    /// history showed B's observations, which were never acknowledged, in place of A's.)
    /// </summary>
    [Fact]
    public async Task Of_two_activations_closing_the_same_chunk_the_history_is_the_acknowledged_ones()
    {
        await fixture.A.Client.GetGrain<IModelGrain>("duplicate-race").CreateAsync(TestSupport.SmallConfig(seed: 5));
        var inA = fixture.A.Client.GetGrain<IStreamGrain>("duplicate/race");
        var inB = fixture.B.Client.GetGrain<IStreamGrain>("duplicate/race");
        await inA.BindAsync("duplicate-race");
        var acknowledged = new List<Observation>();
        for (long seq = 1; seq <= 24; seq++)
        {
            var o = TestSupport.Obs(seq);
            await inA.IngestAsync(o);
            acknowledged.Add(o);
        }
        Assert.Equal(24, (await inB.GetSummaryAsync()).StepCount);   // B's activation loaded the same core

        var fromA = Enumerable.Range(25, 9).Select(seq => TestSupport.Obs(seq, seed: 3)).ToArray();
        var fromB = Enumerable.Range(25, 9).Select(seq => TestSupport.Obs(seq, seed: 4)).ToArray();
        Assert.NotEqual(fromA[0].Values, fromB[0].Values);
        GatedGrainStorage.Entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        GatedGrainStorage.Gate = gate;
        Task<StepResult[]> callB;
        Exception? failureA;
        try
        {
            callB = inB.IngestBatchAsync(fromB);
            await GatedGrainStorage.Entered.Task.WaitAsync(TimeSpan.FromSeconds(20));
            failureA = await Record.ExceptionAsync(() => inA.IngestBatchAsync(fromA));
        }
        finally
        {
            GatedGrainStorage.Gate = null;
            gate.TrySetResult();
        }
        var failureB = await Record.ExceptionAsync(() => callB);

        Assert.True(failureA is null ^ failureB is null, $"exactly one call is acknowledged (A: {failureA?.Message ?? "ok"}; B: {failureB?.Message ?? "ok"})");
        Assert.IsNotType<ObservationRejectedException>(failureA ?? failureB);
        acknowledged.AddRange(failureA is null ? fromA : fromB);

        // Fresh activations read what is stored: the last 20 acknowledged observations, values included.
        await fixture.A.DeactivateAsync(inA);
        await fixture.B.DeactivateAsync(inB);
        await Task.Delay(200);
        foreach (var stream in new[] { inA, inB })
        {
            var history = await stream.GetHistoryAsync(100);
            var expected = acknowledged.TakeLast(20).ToList();
            Assert.Equal(expected.Select(o => o.Sequence), history.Select(o => o.Sequence));
            Assert.Equal(expected.Select(o => o.Values), history.Select(o => o.Values));
            Assert.Equal(33, (await stream.GetSummaryAsync()).StepCount);
            await (stream == inA ? fixture.A : fixture.B).DeactivateAsync(stream);
        }
    }
}
