using System.Collections.Concurrent;
using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Storage;
using LstmOrleans.Lstm;
using LstmOrleans.Persistence.GroupCommit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Hosting;
using Orleans.Runtime;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.TestingHost;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// Wraps the silo's <see cref="LocalMemoryGrainStorage"/> and fails writes and clears of chosen grains on demand, to
/// stand in for a crash at a chosen point (e.g. at the core's write, or after it, before a history record).
/// </summary>
public sealed class FaultingGrainStorage(IGrainStorage inner) : IGrainStorage
{
    /// <summary>(grain, state name) pairs whose writes and clears currently fail.</summary>
    public static readonly ConcurrentDictionary<(GrainId, string), bool> Failing = new();

    /// <summary>Successful writes per (grain, state name).</summary>
    public static readonly ConcurrentDictionary<(GrainId, string), int> Writes = new();

    /// <summary>
    /// (grain, state name) pairs whose next write is stored and then reported as a commit of unknown outcome, as SQLite
    /// and PostgreSQL report a failed COMMIT or fsync that may have reached the disk (one-shot; the value says whether the
    /// write is stored first or not at all).
    /// </summary>
    public static readonly ConcurrentDictionary<(GrainId, string), bool> OutcomeUnknown = new();

    /// <summary>The exception a store's caller gets for a commit of unknown outcome (an OrleansException around it).</summary>
    public static Exception UnknownOutcome(string stateName) =>
        new OrleansException($"injected commit of unknown outcome ({stateName})", new CommitOutcomeUnknownException("injected", new IOException("fsync failed")));

    /// <summary>One-shot actions run just before a write of (grain, state name) reaches the store (another writer's turn).</summary>
    public static readonly ConcurrentDictionary<(GrainId, string), Func<Task>> BeforeWrite = new();

    /// <summary>Successful writes of a grain's closed-history records (every slot).</summary>
    public static int HistoryWrites(GrainId grainId) =>
        Writes.Where(w => w.Key.Item1 == grainId && w.Key.Item2.StartsWith("history.", StringComparison.Ordinal)).Sum(w => w.Value);

    /// <summary>Reads per (grain, state name), found or not.</summary>
    public static readonly ConcurrentDictionary<(GrainId, string), int> Reads = new();

    /// <summary>The state names of a grain's reads since <paramref name="before"/> (a copy of <see cref="Reads"/>), with how many.</summary>
    public static Dictionary<string, int> ReadsSince(GrainId grainId, IReadOnlyDictionary<(GrainId, string), int> before) =>
        Reads.Where(r => r.Key.Item1 == grainId && r.Value > before.GetValueOrDefault(r.Key))
            .ToDictionary(r => r.Key.Item2, r => r.Value - before.GetValueOrDefault(r.Key));

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        Reads.AddOrUpdate((grainId, stateName), 1, (_, n) => n + 1);
        return inner.ReadStateAsync(stateName, grainId, grainState);
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (Failing.ContainsKey((grainId, stateName))) throw new IOException($"injected write failure ({stateName})");
        if (BeforeWrite.TryRemove((grainId, stateName), out var before)) await before();
        bool unknown = OutcomeUnknown.TryRemove((grainId, stateName), out bool stored);
        if (unknown && !stored) throw UnknownOutcome(stateName);
        await inner.WriteStateAsync(stateName, grainId, grainState);
        Writes.AddOrUpdate((grainId, stateName), 1, (_, n) => n + 1);
        if (unknown) throw UnknownOutcome(stateName);
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        Failing.ContainsKey((grainId, stateName)) ? throw new IOException($"injected clear failure ({stateName})") : inner.ClearStateAsync(stateName, grainId, grainState);
}

/// <summary>
/// The same, for a store that writes companion records with their guarded write (as SQLite, PostgreSQL and the
/// memory store do): a failing main write fails the whole unit before anything is stored.
/// </summary>
public sealed class FaultingCompanionGrainStorage(IGrainStorage inner) : IGrainStorage, ICompanionWriteGrainStorage
{
    private readonly FaultingGrainStorage _plain = new(inner);

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => _plain.ReadStateAsync(stateName, grainId, grainState);

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => _plain.WriteStateAsync(stateName, grainId, grainState);

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => _plain.ClearStateAsync(stateName, grainId, grainState);

    public async Task WriteStateWithCompanionsAsync<T, TCompanion>(string stateName, GrainId grainId, IGrainState<T> grainState,
        IReadOnlyList<KeyValuePair<string, TCompanion>> companions)
    {
        if (FaultingGrainStorage.Failing.ContainsKey((grainId, stateName))) throw new IOException($"injected write failure ({stateName} and its companions)");
        bool unknown = FaultingGrainStorage.OutcomeUnknown.TryRemove((grainId, stateName), out bool stored);
        if (unknown && !stored) throw FaultingGrainStorage.UnknownOutcome(stateName);
        await ((ICompanionWriteGrainStorage)inner).WriteStateWithCompanionsAsync(stateName, grainId, grainState, companions);
        FaultingGrainStorage.Writes.AddOrUpdate((grainId, stateName), 1, (_, n) => n + 1);
        foreach (var (name, _) in companions) FaultingGrainStorage.Writes.AddOrUpdate((grainId, name), 1, (_, n) => n + 1);
        if (unknown) throw FaultingGrainStorage.UnknownOutcome(stateName);
    }
}

/// <summary>
/// One silo; history capacity 20 and chunks of 8, so short tests cross several chunk boundaries. The store is the
/// memory store behind a fault-injecting wrapper: a plain <see cref="IGrainStorage"/> (so the stream takes the separate
/// path, as on Redis) or one that also writes companions atomically (as SQLite, PostgreSQL and the memory store).
/// </summary>
public abstract class HistoryLayoutFixture : IAsyncLifetime
{
    public const int Capacity = 20;
    public const int Chunk = 8;

    /// <summary>True when chunk records go with the core in one atomic write.</summary>
    public abstract bool Atomic { get; }

    /// <summary>Stream ids are prefixed with it: the fault switches are static, keyed by grain id, and both variants may run at once.</summary>
    public string Prefix => Atomic ? "atomic" : "fenced";

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.Options.ServiceId = $"lstm-history-layout-tests-{Prefix}";
        builder.Options.ClusterId = $"lstm-history-layout-cluster-{Prefix}";
        bool atomic = Atomic;
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddLocalMemoryGrainStorage("inner");
            silo.Services.AddGrainStorage<IGrainStorage>(LstmOrleansNames.StorageName, (sp, _) => atomic
                ? new FaultingCompanionGrainStorage(sp.GetRequiredKeyedService<IGrainStorage>("inner"))
                : new FaultingGrainStorage(sp.GetRequiredKeyedService<IGrainStorage>("inner")));
            silo.AddLstmOrleans(configureStreams: o =>
            {
                o.HistoryCapacity = Capacity;
                o.HistoryChunkSize = Chunk;
                o.OffloadMultiplyAdds = 4 * 2_856;   // 4 steps of TestSupport.SmallConfig
            });
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}

public sealed class FencedHistoryLayoutFixture : HistoryLayoutFixture
{
    public override bool Atomic => false;
}

public sealed class AtomicHistoryLayoutFixture : HistoryLayoutFixture
{
    public override bool Atomic => true;
}

public sealed class FencedHistoryLayoutTests(FencedHistoryLayoutFixture fixture) : HistoryLayoutTests(fixture), IClassFixture<FencedHistoryLayoutFixture>
{
    /// <summary>
    /// The copy of a chunk from a committed core into its slot meets another writer's record there (it wrote between
    /// this activation's read of the slot and its write). A newer chunk of the same generation (a later turn of the
    /// ring) is left alone; a record of an earlier generation is overwritten with the fresh ETag.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_slot_copy_that_meets_another_writer_keeps_the_newer_record(bool newer)
    {
        await CreateModelAsync("layout-copy-race");
        var stream = Client.GetGrain<IStreamGrain>($"fenced/layout/copy-race-{newer}");
        await stream.BindAsync("layout-copy-race");
        var grainId = stream.GetGrainId();
        var storage = Fixture.Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>("inner");
        for (long seq = 1; seq <= 3 * HistoryLayoutFixture.Chunk; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var core = new GrainState<StreamState>();
        await storage.ReadStateAsync("stream", grainId, core);
        var s = core.State!;

        // The other writer's record for slot 2: chunk 48..55 of this generation (slot 6 mod 4 = 2), or an old generation's.
        var theirs = ObservationChunk.Create(newer ? 6 * HistoryLayoutFixture.Chunk : 2 * HistoryLayoutFixture.Chunk, HistoryLayoutFixture.Chunk, s.InputSize, s.InputWidth);
        theirs.Count = HistoryLayoutFixture.Chunk;
        for (int i = 0; i < theirs.Count; i++) theirs.Sequences[i] = 1000 + i;
        FaultingGrainStorage.BeforeWrite[(grainId, "history.2")] = async () =>
        {
            var record = new GrainState<StreamHistory>();
            await storage.ReadStateAsync("history.2", grainId, record);
            record.State = new StreamHistory { Generation = newer ? s.Generation : s.Generation - 1, Closed = theirs };
            await storage.WriteStateAsync("history.2", grainId, record);
        };

        // Step 25 closes chunk 16..23 (sequences 17..24) into slot 2; the core is written first, then the copy.
        var result = await stream.IngestAsync(TestSupport.Obs(3 * HistoryLayoutFixture.Chunk + 1));
        Assert.False(result.Duplicate);
        Assert.False(FaultingGrainStorage.BeforeWrite.ContainsKey((grainId, "history.2")));   // the other writer did write
        var slot = new GrainState<StreamHistory>();
        await storage.ReadStateAsync("history.2", grainId, slot);
        var held = slot.State!.Closed;
        if (newer) Assert.Equal(theirs.Sequences, held.Sequences);
        else
        {
            Assert.Equal(s.Generation, slot.State.Generation);
            Assert.Equal(Enumerable.Range(17, 8).Select(i => (long)i), held.Sequences.Take(held.Count));
        }
    }

    /// <summary>
    /// Without companion writes the core goes first and carries the closed chunk; a failed write of the chunk's record
    /// after it does not fail the (durable) step, and the chunk is neither lost nor stuck: it is read from the core,
    /// survives a deactivation in the stored core, and is copied into its record by the next write.
    /// </summary>
    [Fact]
    public async Task A_failed_history_record_write_after_the_core_loses_nothing_and_is_retried()
    {
        var (config, model) = await CreateModelAsync("layout-copy");
        var reference = new ReferenceStream(config, TestSupport.ToEngine(await model.GetActiveWeightsAsync()));
        var stream = Client.GetGrain<IStreamGrain>("fenced/layout/copy");
        await stream.BindAsync("layout-copy");
        var grainId = stream.GetGrainId();
        var storage = Fixture.Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>("inner");
        var sent = new List<Observation>();
        async Task StepAsync(long seq)
        {
            var o = TestSupport.Obs(seq);
            var result = await stream.IngestAsync(o);
            Assert.False(result.Duplicate);
            Assert.Equal(reference.Step(o.Values), result.Predictions);
            sent.Add(o);
        }
        for (long seq = 1; seq <= 3 * HistoryLayoutFixture.Chunk; seq++) await StepAsync(seq);   // the tail (17..24) is full
        Assert.Equal([0, 1], (await TestSupport.ReadSlotsAsync(storage, grainId)).Keys.Order());

        // Step 25 closes chunk 16..23 (sequences 17..24, slot 2), whose record write fails: the step is still acknowledged.
        FaultingGrainStorage.Failing[(grainId, "history.2")] = true;
        try
        {
            await StepAsync(3 * HistoryLayoutFixture.Chunk + 1);
            Assert.Equal([0, 1], (await TestSupport.ReadSlotsAsync(storage, grainId)).Keys.Order());
            var core = new GrainState<StreamState>();
            await storage.ReadStateAsync("stream", grainId, core);
            Assert.True(core.State!.PersistPendingClosed);
            Assert.Equal(2 * HistoryLayoutFixture.Chunk, core.State.PendingClosed!.StartIndex);
            Assert.Equal(sent.Skip(2 * HistoryLayoutFixture.Chunk).Take(HistoryLayoutFixture.Chunk).Select(o => o.Sequence),
                core.State.PendingClosed.Sequences.Take(core.State.PendingClosed.Count));
            await AssertWindowsAsync(stream, sent, reference);

            // A new activation reads the chunk from the stored core (the record is still missing).
            await Fixture.Cluster.DeactivateAsync(stream);
            await Task.Delay(200);
            await AssertWindowsAsync(stream, sent, reference);
        }
        finally
        {
            FaultingGrainStorage.Failing.TryRemove((grainId, "history.2"), out _);
        }

        // The next write copies it; then the core no longer carries it.
        await StepAsync(3 * HistoryLayoutFixture.Chunk + 2);
        var slots = await TestSupport.ReadSlotsAsync(storage, grainId);
        Assert.Equal([0, 1, 2], slots.Keys.Order());
        Assert.Equal(sent.Skip(2 * HistoryLayoutFixture.Chunk).Take(HistoryLayoutFixture.Chunk).Select(o => o.Sequence),
            slots[2].State!.Closed.Sequences.Take(slots[2].State!.Closed.Count));
        await StepAsync(3 * HistoryLayoutFixture.Chunk + 3);
        var after = new GrainState<StreamState>();
        await storage.ReadStateAsync("stream", grainId, after);
        Assert.Null(after.State!.PendingClosed);
        await Fixture.Cluster.DeactivateAsync(stream);
        await Task.Delay(200);
        await AssertWindowsAsync(stream, sent, reference);
    }
}

public sealed class AtomicHistoryLayoutTests(AtomicHistoryLayoutFixture fixture) : HistoryLayoutTests(fixture), IClassFixture<AtomicHistoryLayoutFixture>;

public abstract class HistoryLayoutTests(HistoryLayoutFixture fixture)
{
    protected HistoryLayoutFixture Fixture => fixture;

    protected IClusterClient Client => fixture.Cluster.Client;

    protected async Task<(ModelConfig Config, IModelGrain Model)> CreateModelAsync(string name)
    {
        var model = Client.GetGrain<IModelGrain>(name);
        var info = await model.CreateAsync(TestSupport.SmallConfig(seed: 5));
        return (info.Config, model);
    }

    /// <summary>History and training window equal the last min(m, <paramref name="retained"/>) observations the reference saw (N unless a crash cost some).</summary>
    private protected static async Task AssertWindowsAsync(IStreamGrain stream, IReadOnlyList<Observation> sent, ReferenceStream reference, int retained = HistoryLayoutFixture.Capacity)
    {
        foreach (int m in new[] { 0, 1, HistoryLayoutFixture.Chunk - 1, HistoryLayoutFixture.Chunk, HistoryLayoutFixture.Chunk + 1, 13, HistoryLayoutFixture.Capacity, 1000 })
        {
            int take = Math.Min(Math.Min(m, retained), sent.Count);
            var history = await stream.GetHistoryAsync(m);
            var expected = sent.Skip(sent.Count - take).ToArray();
            Assert.Equal(expected.Select(o => o.Sequence), history.Select(o => o.Sequence));
            Assert.Equal(expected.Select(o => o.Timestamp), history.Select(o => o.Timestamp));
            Assert.Equal(expected.SelectMany(o => o.Values), history.SelectMany(o => o.Values));

            var window = await stream.GetTrainingWindowAsync(m);
            Assert.Equal(reference.Inputs.Skip(reference.Inputs.Count - take).SelectMany(x => x), window.Inputs);
            if (take > 0)
            {
                Assert.Equal(expected[0].Sequence, window.FirstSequence);
                Assert.Equal(expected[^1].Sequence, window.LastSequence);
            }
        }
    }

    [Fact]
    public async Task History_and_training_window_are_exactly_the_last_observations_across_chunk_boundaries()
    {
        var (config, model) = await CreateModelAsync("layout-window");
        var reference = new ReferenceStream(config, TestSupport.ToEngine(await model.GetActiveWeightsAsync()));
        var stream = Client.GetGrain<IStreamGrain>($"{fixture.Prefix}/layout/window");
        await stream.BindAsync("layout-window");
        var sent = new List<Observation>();
        long seq = 0;
        // Singles and batches of assorted sizes, checking after each, so every tail fill level and chunk boundary is seen.
        foreach (int size in new[] { 1, 1, 5, 1, 3, 7, 1, 8, 1, 17, 2, 30, 1, 1, 9, 41 })
        {
            var batch = Enumerable.Range(0, size).Select(_ => TestSupport.Obs(++seq * 2)).ToArray();
            if (size == 1) await stream.IngestAsync(batch[0]);
            else await stream.IngestBatchAsync(batch);
            foreach (var o in batch) { sent.Add(o); reference.Step(o.Values); }
            await AssertWindowsAsync(stream, sent, reference);
        }

        // The same after the activation is gone: the closed history comes back from storage.
        await fixture.Cluster.DeactivateAsync(stream);
        await AssertWindowsAsync(stream, sent, reference);
        var state = await stream.GetStateAsync();
        Assert.Equal(reference.H, state.Hidden);
        Assert.Equal(reference.C, state.Cell);
    }

    [Fact]
    public async Task A_crash_between_the_history_write_and_the_core_write_leaves_a_consistent_stream()
    {
        var (config, model) = await CreateModelAsync("layout-crash");
        var weights = TestSupport.ToEngine(await model.GetActiveWeightsAsync());
        var reference = new ReferenceStream(config, weights);
        var stream = Client.GetGrain<IStreamGrain>($"{fixture.Prefix}/layout/crash");
        await stream.BindAsync("layout-crash");
        var grainId = stream.GetGrainId();
        var sent = new List<Observation>();
        for (long seq = 1; seq <= 2 * HistoryLayoutFixture.Chunk + 3; seq++)
        {
            var o = TestSupport.Obs(seq);
            await stream.IngestAsync(o);
            sent.Add(o);
            reference.Step(o.Values);
        }
        var before = await TestSupport.FullState(stream);

        // Fill the tail, so the next step closes a chunk: its write stores the chunk's record with the core (atomic) or
        // after it (the core carrying the chunk until then).
        for (long seq = sent.Count + 1; seq <= 3 * HistoryLayoutFixture.Chunk; seq++)
        {
            var o = TestSupport.Obs(seq);
            await stream.IngestAsync(o);
            sent.Add(o);
            reference.Step(o.Values);
        }
        int historyWrites = FaultingGrainStorage.HistoryWrites(grainId);
        var ghost = TestSupport.Obs(sent.Count + 1, seed: 99);          // never acknowledged
        FaultingGrainStorage.Failing[(grainId, "stream")] = true;        // the core write "crashes"
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => stream.IngestAsync(ghost));
        Assert.IsNotType<ObservationRejectedException>(failure);
        // The chunk went nowhere, with its core: no record is written before the core is.
        Assert.Equal(historyWrites, FaultingGrainStorage.HistoryWrites(grainId));
        await fixture.Cluster.DeactivateAsync(stream);                   // the activation dies without saving its core
        await Task.Delay(200);
        FaultingGrainStorage.Failing.TryRemove((grainId, "stream"), out _);

        // The reloaded stream is the last acknowledged one: the ghost is neither stepped nor in the history.
        var summary = await stream.GetSummaryAsync();
        Assert.Equal(sent.Count, summary.StepCount);
        Assert.Equal(sent[^1].Sequence, summary.LastSequence);
        await AssertWindowsAsync(stream, sent, reference);

        // The same sequence number with other values is accepted as new; everything continues as the reference does.
        for (long seq = sent.Count + 1; seq <= 5 * HistoryLayoutFixture.Chunk + 2; seq++)
        {
            var o = TestSupport.Obs(seq, seed: 3);
            var result = await stream.IngestAsync(o);
            Assert.False(result.Duplicate);
            Assert.Equal(reference.Step(o.Values), result.Predictions);
            sent.Add(o);
        }
        await AssertWindowsAsync(stream, sent, reference);

        // A batch that closes several chunks, crashing at its core write, is also all-or-nothing: the stream is the
        // last acknowledged one, with its whole window (closed 0..39, tail 40..41: the window 22..41). No chunk record
        // of the failed batch was written (before, on the fenced path, the second one took the slot of chunk 16..23,
        // which the old core still held, and the reloaded window was 24..41).
        Assert.Equal(42, sent.Count);
        var batch = Enumerable.Range(1, 2 * HistoryLayoutFixture.Chunk + 1).Select(i => TestSupport.Obs(sent.Count + i, seed: 7)).ToArray();
        FaultingGrainStorage.Failing[(grainId, "stream")] = true;
        await Assert.ThrowsAnyAsync<Exception>(() => stream.IngestBatchAsync(batch));
        await fixture.Cluster.DeactivateAsync(stream);
        await Task.Delay(200);
        FaultingGrainStorage.Failing.TryRemove((grainId, "stream"), out _);
        await AssertWindowsAsync(stream, sent, reference);
        Assert.Equal(sent.Count, (await stream.GetSummaryAsync()).StepCount);

        // Going on with other values: the next chunk closes overwrite the stale entries the failed batch left behind.
        var resend = Enumerable.Range(1, 3 * HistoryLayoutFixture.Chunk).Select(i => TestSupport.Obs(sent.Count + i, seed: 11)).ToArray();
        var resendResults = await stream.IngestBatchAsync(resend);
        Assert.Equal(resend.Select(o => reference.Step(o.Values)), resendResults.Select(r => r.Predictions));
        sent.AddRange(resend);
        await AssertWindowsAsync(stream, sent, reference);
        await fixture.Cluster.DeactivateAsync(stream);
        await AssertWindowsAsync(stream, sent, reference);
        var state = await stream.GetStateAsync();
        Assert.Equal(reference.H, state.Hidden);
        Assert.Equal(reference.C, state.Cell);
        Assert.NotEqual(before, await TestSupport.FullState(stream));
    }

    /// <summary>
    /// A write whose commit has an unknown outcome (the store's COMMIT or fsync failed) fails the call, and the stream
    /// then answers from what the store holds: the observation's resend is a duplicate if the write did reach the store
    /// and is stepped if it did not. Restoring the state from before the call would step a stored observation again
    /// (and meet the store's newer ETag).
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task After_a_commit_of_unknown_outcome_the_stream_answers_from_what_the_store_holds(bool stored)
    {
        var (config, model) = await CreateModelAsync($"layout-unknown-{stored}");
        var reference = new ReferenceStream(config, TestSupport.ToEngine(await model.GetActiveWeightsAsync()));
        var stream = Client.GetGrain<IStreamGrain>($"{fixture.Prefix}/layout/unknown-{stored}");
        await stream.BindAsync($"layout-unknown-{stored}");
        var grainId = stream.GetGrainId();
        for (long seq = 1; seq <= 5; seq++)
        {
            var o = TestSupport.Obs(seq);
            Assert.Equal(reference.Step(o.Values), (await stream.IngestAsync(o)).Predictions);
        }

        // A batch: its path keeps the state from before the call, which a failed write used to restore.
        Observation[] batch = [TestSupport.Obs(6), TestSupport.Obs(7)];
        FaultingGrainStorage.OutcomeUnknown[(grainId, "stream")] = stored;
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => stream.IngestBatchAsync(batch));
        Assert.True(failure.ToString().Contains("injected commit of unknown outcome", StringComparison.Ordinal), failure.ToString());
        Assert.False(FaultingGrainStorage.OutcomeUnknown.ContainsKey((grainId, "stream")));   // the injected write did happen

        var resent = await stream.IngestBatchAsync(batch);
        Assert.All(resent, r => Assert.Equal(stored, r.Duplicate));
        var expected = batch.Select(o => reference.Step(o.Values)).ToArray();
        if (!stored) Assert.Equal(expected, resent.Select(r => r.Predictions));
        var summary = await stream.GetSummaryAsync();
        Assert.Equal(7, summary.StepCount);
        Assert.Equal(7, summary.LastSequence);
        var next = await stream.IngestAsync(TestSupport.Obs(8));
        Assert.False(next.Duplicate);
        Assert.Equal(reference.Step(TestSupport.Obs(8).Values), next.Predictions);
    }

    [Fact]
    public async Task Rewarm_after_a_version_change_equals_replaying_the_retained_inputs()
    {
        var (config, model) = await CreateModelAsync("layout-rewarm");
        var reference = new ReferenceStream(config, TestSupport.ToEngine(await model.GetActiveWeightsAsync()));
        var stream = Client.GetGrain<IStreamGrain>($"{fixture.Prefix}/layout/rewarm");
        await stream.BindAsync("layout-rewarm");
        for (long seq = 1; seq <= 37; seq++) { await stream.IngestAsync(TestSupport.Obs(seq)); reference.Step(TestSupport.Obs(seq).Values); }
        await fixture.Cluster.DeactivateAsync(stream);   // the re-warm has to read the closed history from storage

        var trained = LstmParameters.InitializeUniform(new LstmConfig(config.InputSize, config.HiddenSize, config.Layers, config.Horizons), 123);
        long v2 = await model.PublishAsync(new PublishRequest(trained.Data, "retrained"));
        var v2Weights = TestSupport.ToEngine(await model.GetActiveWeightsAsync());
        reference.Rewarm(v2Weights, window: HistoryLayoutFixture.Capacity);
        // The push to the silo cache is not awaited by PublishAsync: wait for it, or step 38 may still use version 1.
        var cache = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<ModelWeightsCache>();
        await TestSupport.Eventually(() => Task.FromResult(cache.TryGet("layout-rewarm", out var held) ? held.Version : 0), v => v == v2);
        var result = await stream.IngestAsync(TestSupport.Obs(38));
        Assert.Equal(v2, result.WeightsVersion);
        Assert.False(result.Duplicate);
        Assert.Equal(reference.Step(TestSupport.Obs(38).Values), result.Predictions);
        var state = await stream.GetStateAsync();
        Assert.Equal(reference.H, state.Hidden);
        Assert.Equal(reference.C, state.Cell);

        // And by batch: a second version, re-warmed inside IngestBatch, then 12 steps.
        var again = LstmParameters.InitializeUniform(new LstmConfig(config.InputSize, config.HiddenSize, config.Layers, config.Horizons), 321);
        long v3 = await model.PublishAsync(new PublishRequest(again.Data, "again"));
        await TestSupport.Eventually(() => stream.GetPredictionAsync(), _ => true);
        reference.Rewarm(TestSupport.ToEngine(await model.GetActiveWeightsAsync()), window: HistoryLayoutFixture.Capacity);
        var batch = Enumerable.Range(39, 12).Select(i => TestSupport.Obs(i)).ToArray();
        var expected = batch.Select(o => reference.Step(o.Values)).ToArray();
        await TestSupport.Eventually(async () => (await fixture.Cluster.Client.GetGrain<IModelGrain>("layout-rewarm").GetActiveWeightsAsync()).Version, v => v == v3);
        await Task.Delay(500);   // the silo cache catches the push
        var results = await stream.IngestBatchAsync(batch);
        Assert.All(results, r => Assert.Equal(v3, r.WeightsVersion));
        Assert.Equal(expected, results.Select(r => r.Predictions));
    }

    /// <summary>The closed-history records stored for a grain, by slot (the slots in use are a prefix; a few past it are probed too).</summary>
    [Fact]
    public async Task A_stale_activation_cannot_overwrite_the_history_record()
    {
        await CreateModelAsync("layout-fence");
        var stream = Client.GetGrain<IStreamGrain>($"{fixture.Prefix}/layout/fence");
        await stream.BindAsync("layout-fence");
        var grainId = stream.GetGrainId();
        var storage = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>("inner");
        // Two closed chunks (a history record exists) and a full tail: the next step closes the third chunk.
        const int steps = 3 * HistoryLayoutFixture.Chunk;
        for (long seq = 1; seq <= steps; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var historyBefore = await TestSupport.ReadSlotsAsync(storage, grainId);
        Assert.Equal(2, historyBefore.Count);

        // Another activation of the stream (say on another silo) writes the core behind this activation's back.
        var core = new GrainState<StreamState>();
        await storage.ReadStateAsync("stream", grainId, core);
        await storage.WriteStateAsync("stream", grainId, core);

        // This activation is now stale: its chunk-closing step fails and the history record is not touched.
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => stream.IngestAsync(TestSupport.Obs(steps + 1, seed: 4)));
        Assert.IsNotType<ObservationRejectedException>(failure);
        var historyAfter = await TestSupport.ReadSlotsAsync(storage, grainId);
        Assert.Equal(historyBefore.Keys.Order(), historyAfter.Keys.Order());
        foreach (var (slot, before) in historyBefore)
        {
            Assert.Equal(before.ETag, historyAfter[slot].ETag);
            Assert.Equal(before.State!.Closed.Sequences, historyAfter[slot].State!.Closed.Sequences);
        }

        // The stale activation went away; the stream reloads the stored core and takes the step.
        var result = await stream.IngestAsync(TestSupport.Obs(steps + 1));
        Assert.False(result.Duplicate);
        Assert.Equal(steps + 1, result.StepCount);
        Assert.Equal(Enumerable.Range(1, HistoryLayoutFixture.Capacity).Select(i => (long)(steps + 1 - HistoryLayoutFixture.Capacity + i)),
            (await stream.GetHistoryAsync(100)).Select(o => o.Sequence));
    }

    [Fact]
    public async Task A_history_record_of_the_old_single_record_layout_is_read_and_then_moved_into_slots()
    {
        var (config, model) = await CreateModelAsync("layout-legacy");
        var reference = new ReferenceStream(config, TestSupport.ToEngine(await model.GetActiveWeightsAsync()));
        var stream = Client.GetGrain<IStreamGrain>($"{fixture.Prefix}/layout/legacy");
        await stream.BindAsync("layout-legacy");
        var grainId = stream.GetGrainId();
        var storage = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>("inner");
        var sent = new List<Observation>();
        async Task SendAsync(long seq)
        {
            var o = TestSupport.Obs(seq);
            await stream.IngestAsync(o);
            sent.Add(o);
            reference.Step(o.Values);
        }
        for (long seq = 1; seq <= 3 * HistoryLayoutFixture.Chunk + 5; seq++) await SendAsync(seq);   // closed 0..23, tail 24..28
        await fixture.Cluster.DeactivateAsync(stream);

        // Store the closed history as an earlier build did: every closed observation in one "history" record, no slots.
        var slots = await TestSupport.ReadSlotsAsync(storage, grainId);
        long generation = slots.Values.First().State!.Generation;
        var chunks = slots.Values.Select(r => r.State!.Closed).OrderBy(c => c.StartIndex).ToList();
        Assert.Equal([0L, 8L, 16L], chunks.Select(c => c.StartIndex));
        var single = ObservationChunk.Create(0, chunks.Sum(c => c.Count), config.InputSize, config.ModelInputSize);
        foreach (var chunk in chunks)
            for (int i = 0; i < chunk.Count; i++) single.AppendFrom(chunk, i, config.InputSize, config.ModelInputSize);
        foreach (var (slot, record) in slots) await storage.ClearStateAsync($"history.{slot}", grainId, record);
        await storage.WriteStateAsync("history", grainId, new GrainState<StreamHistory>(new StreamHistory { Generation = generation, Closed = single }));

        // Reads use it (and change nothing) ...
        await AssertWindowsAsync(stream, sent, reference);
        Assert.Empty(await TestSupport.ReadSlotsAsync(storage, grainId));

        // ... and the next chunk close moves what is retained into slots and removes it.
        for (long seq = sent.Count + 1; seq <= 4 * HistoryLayoutFixture.Chunk + 1; seq++) await SendAsync(seq);
        var old = new GrainState<StreamHistory>();
        await storage.ReadStateAsync("history", grainId, old);
        Assert.False(old.RecordExists);
        // Moved: N before the old watermark (24), 4..23, then the new chunk 24..31.
        Assert.Equal([4L, 8L, 16L, 24L], (await TestSupport.ReadSlotsAsync(storage, grainId)).Values.Select(r => r.State!.Closed.StartIndex).Order());
        await AssertWindowsAsync(stream, sent, reference);
        await fixture.Cluster.DeactivateAsync(stream);
        await AssertWindowsAsync(stream, sent, reference);
        for (long seq = sent.Count + 1; seq <= 9 * HistoryLayoutFixture.Chunk; seq++) await SendAsync(seq);
        await AssertWindowsAsync(stream, sent, reference);
    }

    /// <summary>
    /// Delete of a stream in its first generation reads and clears exactly the history slots it wrote (it has no other
    /// records): none of the ring's unwritten slots, and no probe past the ring (it used to read 8 missing slots
    /// beyond it, and every unwritten slot of the ring). And it still removes everything.
    /// </summary>
    [Fact]
    public async Task Delete_of_a_never_reset_stream_touches_only_the_slots_it_wrote()
    {
        await CreateModelAsync("layout-delete-exact");
        var stream = Client.GetGrain<IStreamGrain>($"{fixture.Prefix}/layout/delete-exact");
        var grainId = stream.GetGrainId();
        await stream.BindAsync("layout-delete-exact");
        // Two chunks of 8 closed (slots 0 and 1 of a ring of 4), three observations in the tail.
        for (long seq = 1; seq <= 2 * HistoryLayoutFixture.Chunk + 3; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var storage = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>("inner");
        Assert.Equal([0, 1], (await TestSupport.ReadSlotsAsync(storage, grainId)).Keys.Order());

        var before = new Dictionary<(GrainId, string), int>(FaultingGrainStorage.Reads);
        await stream.DeleteAsync();
        var reads = FaultingGrainStorage.ReadsSince(grainId, before);
        Assert.Equal(["history.0", "history.1"], reads.Keys.Where(k => k.StartsWith("history.", StringComparison.Ordinal)).Order());
        Assert.Empty(await TestSupport.ReadSlotsAsync(storage, grainId));
        var core = new GrainState<StreamState>();
        await storage.ReadStateAsync("stream", grainId, core);
        Assert.False(core.RecordExists);
        Assert.Empty(await stream.GetHistoryAsync(100));
    }

    [Fact]
    public async Task Reset_and_rebind_start_a_new_history_and_delete_removes_it()
    {
        await CreateModelAsync("layout-reset");
        var stream = Client.GetGrain<IStreamGrain>($"{fixture.Prefix}/layout/reset");
        await stream.BindAsync("layout-reset");
        for (long seq = 1; seq <= 30; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        await stream.ResetAsync();
        Assert.Empty(await stream.GetHistoryAsync(100));
        for (long seq = 1; seq <= 3; seq++) await stream.IngestAsync(TestSupport.Obs(seq, seed: 1));
        await fixture.Cluster.DeactivateAsync(stream);
        Assert.Equal([1L, 2L, 3L], (await stream.GetHistoryAsync(100)).Select(o => o.Sequence));
        Assert.Equal(TestSupport.Obs(1, seed: 1).Values, (await stream.GetHistoryAsync(100))[0].Values);

        await stream.DeleteAsync();
        var storage = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>("inner");
        Assert.Empty(await TestSupport.ReadSlotsAsync(storage, stream.GetGrainId()));
        Assert.Empty(await stream.GetHistoryAsync(100));
    }
}

/// <summary>ETag semantics of <see cref="LocalMemoryGrainStorage"/>, on its own.</summary>
public sealed class LocalMemoryGrainStorageTests
{
    private static LocalMemoryGrainStorage NewStorage()
    {
        var services = new ServiceCollection().AddSerializer(b => b.AddAssembly(typeof(StreamState).Assembly)).BuildServiceProvider();
        var options = new LocalMemoryGrainStorageOptions { GrainStorageSerializer = new OrleansGrainStorageSerializer(services.GetRequiredService<Serializer>()) };
        return new LocalMemoryGrainStorage("test", options, NullLogger<LocalMemoryGrainStorage>.Instance);
    }

    private static readonly GrainId Grain = GrainId.Create("stream", "etag-test");

    [Fact]
    public async Task Writes_need_the_current_etag_and_clears_leave_a_versioned_tombstone()
    {
        var storage = NewStorage();
        var empty = new GrainState<StreamState>(new StreamState());
        await storage.ReadStateAsync("stream", Grain, empty);
        Assert.False(empty.RecordExists);
        Assert.Null(empty.ETag);

        var first = new GrainState<StreamState>(new StreamState { StepCount = 1 });
        await storage.WriteStateAsync("stream", Grain, first);
        Assert.True(first.RecordExists);
        var firstETag = first.ETag;
        Assert.NotNull(firstETag);

        // A second creator (no etag) and a stale or foreign etag all conflict, and change nothing.
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("stream", Grain, new GrainState<StreamState>(new StreamState { StepCount = 9 })));
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("stream", Grain, new GrainState<StreamState>(new StreamState { StepCount = 9 }) { ETag = "not-an-etag" }));
        first.State!.StepCount = 2;
        await storage.WriteStateAsync("stream", Grain, first);
        Assert.NotEqual(firstETag, first.ETag);
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("stream", Grain, new GrainState<StreamState>(new StreamState { StepCount = 9 }) { ETag = firstETag }));
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearStateAsync("stream", Grain, new GrainState<StreamState>(new StreamState()) { ETag = firstETag }));

        // What is stored is a copy: mutating the written object afterwards does not reach the store.
        first.State!.StepCount = 77;
        var read = new GrainState<StreamState>(new StreamState());
        await storage.ReadStateAsync("stream", Grain, read);
        Assert.Equal(2, read.State!.StepCount);
        Assert.Equal(first.ETag, read.ETag);
        Assert.NotSame(first.State, read.State);

        // Clear with the current etag: a tombstone whose etag still protects against writers from before the clear.
        await storage.ClearStateAsync("stream", Grain, read);
        Assert.False(read.RecordExists);
        var afterClear = new GrainState<StreamState>(new StreamState());
        await storage.ReadStateAsync("stream", Grain, afterClear);
        Assert.False(afterClear.RecordExists);
        Assert.Equal(read.ETag, afterClear.ETag);
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("stream", Grain, new GrainState<StreamState>(new StreamState()) { ETag = first.ETag }));
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("stream", Grain, new GrainState<StreamState>(new StreamState())));
        afterClear.State!.StepCount = 5;
        await storage.WriteStateAsync("stream", Grain, afterClear);
        var again = new GrainState<StreamState>(new StreamState());
        await storage.ReadStateAsync("stream", Grain, again);
        Assert.Equal(5, again.State!.StepCount);

        // State names are separate records.
        var other = new GrainState<StreamState>(new StreamState());
        await storage.ReadStateAsync("history", Grain, other);
        Assert.False(other.RecordExists);
    }

    /// <summary>A state object that lets the store keep its slot on it, as the stream grain's core record does.</summary>
    private sealed class CachingState(StreamState state) : IGrainState<StreamState>, ILocalMemorySlotCache
    {
        [System.Diagnostics.CodeAnalysis.AllowNull] public StreamState State { get; set; } = state;
        public string? ETag { get; set; }
        public bool RecordExists { get; set; }
        public object? LocalMemorySlot { get; set; }
    }

    private static async Task<GrainState<StreamState>> ReadAsync(LocalMemoryGrainStorage storage, string name, GrainId grain)
    {
        var state = new GrainState<StreamState>(new StreamState());
        await storage.ReadStateAsync(name, grain, state);
        return state;
    }

    /// <summary>
    /// The slot a state object caches is only a shortcut: the ETag rules are checked on it as on a looked-up slot, and
    /// the same object passed for another grain, another state name or to another store reaches that key's own record.
    /// </summary>
    [Fact]
    public async Task A_cached_slot_keeps_the_etag_rules_and_never_reaches_another_key()
    {
        var storage = NewStorage();
        var core = new CachingState(new StreamState { StepCount = 1 });
        await storage.WriteStateAsync("stream", Grain, core);
        var slot = core.LocalMemorySlot;
        Assert.NotNull(slot);
        core.State.StepCount = 2;
        await storage.WriteStateAsync("stream", Grain, core);                 // through the cached slot
        Assert.Same(slot, core.LocalMemorySlot);
        Assert.Equal(2, (await ReadAsync(storage, "stream", Grain)).State!.StepCount);

        // Another writer with the current ETag moves the record on: the cached path sees the version change and conflicts.
        var other = await ReadAsync(storage, "stream", Grain);
        other.State!.StepCount = 3;
        await storage.WriteStateAsync("stream", Grain, other);
        core.State.StepCount = 99;
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("stream", Grain, core));
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearStateAsync("stream", Grain, core));
        Assert.Equal(3, (await ReadAsync(storage, "stream", Grain)).State!.StepCount);

        // A read through the cached slot brings the object up to date; then its write applies.
        await storage.ReadStateAsync("stream", Grain, core);
        Assert.Equal(3, core.State.StepCount);
        core.State.StepCount = 4;
        await storage.WriteStateAsync("stream", Grain, core);
        Assert.Equal(4, (await ReadAsync(storage, "stream", Grain)).State!.StepCount);

        // The same object for another grain and for another state name: each its own record, the first one untouched.
        var otherGrain = GrainId.Create("stream", "etag-test-2");
        var reused = new CachingState(new StreamState { StepCount = 50 }) { LocalMemorySlot = core.LocalMemorySlot };
        await storage.WriteStateAsync("stream", otherGrain, reused);
        reused.State.StepCount = 60;
        reused.ETag = null;
        await storage.WriteStateAsync("history", Grain, reused);
        Assert.Equal(4, (await ReadAsync(storage, "stream", Grain)).State!.StepCount);
        Assert.Equal(50, (await ReadAsync(storage, "stream", otherGrain)).State!.StepCount);
        Assert.Equal(60, (await ReadAsync(storage, "history", Grain)).State!.StepCount);

        // Another store: its own record, created fresh (no ETag needed), the first store's left alone.
        var second = NewStorage();
        var carried = new CachingState(new StreamState { StepCount = 70 }) { LocalMemorySlot = core.LocalMemorySlot };
        await second.WriteStateAsync("stream", Grain, carried);
        Assert.Equal(70, (await ReadAsync(second, "stream", Grain)).State!.StepCount);
        Assert.Equal(4, (await ReadAsync(storage, "stream", Grain)).State!.StepCount);
        Assert.NotSame(core.LocalMemorySlot, carried.LocalMemorySlot);

        // A clear through the cached slot leaves the versioned tombstone: a creator without an ETag still conflicts.
        await storage.ClearStateAsync("stream", Grain, core);
        Assert.False((await ReadAsync(storage, "stream", Grain)).RecordExists);
        core.ETag = null;
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("stream", Grain, core));
    }

    /// <summary>Companion records are written with their guarded write, whatever is stored under them, or not at all.</summary>
    [Fact]
    public async Task Companions_are_written_with_their_guarded_write_or_not_at_all()
    {
        var storage = NewStorage();
        static KeyValuePair<string, StreamState>[] Companions(params (string Name, long Steps)[] items) =>
            items.Select(i => KeyValuePair.Create(i.Name, new StreamState { StepCount = i.Steps })).ToArray();
        async Task<GrainState<StreamState>> ReadAsync(string name)
        {
            var state = new GrainState<StreamState>(new StreamState());
            await storage.ReadStateAsync(name, Grain, state);
            return state;
        }

        var core = new GrainState<StreamState>(new StreamState { StepCount = 1 });
        await storage.WriteStateWithCompanionsAsync("stream", Grain, core, Companions(("h.0", 10), ("h.1", 11)));
        Assert.Equal(10, (await ReadAsync("h.0")).State!.StepCount);
        Assert.Equal(11, (await ReadAsync("h.1")).State!.StepCount);
        await storage.ClearStateAsync("h.1", Grain, await ReadAsync("h.1"));          // a tombstone is replaced too

        core.State!.StepCount = 2;
        await storage.WriteStateWithCompanionsAsync("stream", Grain, core, Companions(("h.0", 20), ("h.1", 21)));
        Assert.Equal(20, (await ReadAsync("h.0")).State!.StepCount);
        Assert.Equal(21, (await ReadAsync("h.1")).State!.StepCount);

        var stale = new GrainState<StreamState>(new StreamState { StepCount = 3 }) { ETag = "1" };
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateWithCompanionsAsync("stream", Grain, stale, Companions(("h.0", 30), ("h.2", 32))));
        await Assert.ThrowsAsync<ArgumentException>(() => storage.WriteStateWithCompanionsAsync("stream", Grain, core, Companions(("h.0", 40), ("h.0", 41))));
        Assert.Equal(20, (await ReadAsync("h.0")).State!.StepCount);
        Assert.False((await ReadAsync("h.2")).RecordExists);
        Assert.Equal(2, (await ReadAsync("stream")).State!.StepCount);
        Assert.Equal(core.ETag, (await ReadAsync("stream")).ETag);
    }

    /// <summary>
    /// A grain keeps its ETag until its next write, so the ETag strings of the first 65,536 versions are shared
    /// instances (those of the durable providers' format), not one new string per write. Versions from 300 up:
    /// .NET itself caches the strings of smaller numbers.
    /// </summary>
    [Fact]
    public async Task Etags_of_low_versions_are_shared_strings()
    {
        var storage = NewStorage();
        var (grainA, grainB) = (GrainId.Create("stream", "etag-shared-a"), GrainId.Create("stream", "etag-shared-b"));
        var a = new GrainState<StreamState>(new StreamState());
        var b = new GrainState<StreamState>(new StreamState());
        for (int write = 0; write < 1000; write++)
        {
            await storage.WriteStateAsync("stream", grainA, a);
            await storage.WriteStateAsync("stream", grainB, b);
        }

        Assert.Equal("1000", a.ETag);
        Assert.Same(a.ETag, b.ETag);
        Assert.Same(LstmOrleans.Persistence.GroupCommit.EtagFormat.Format(1000), a.ETag);
        var read = new GrainState<StreamState>(new StreamState());
        await storage.ReadStateAsync("stream", grainA, read);
        Assert.Same(a.ETag, read.ETag);
    }

    [Fact]
    public async Task Of_writers_holding_the_same_etag_exactly_one_wins()
    {
        var storage = NewStorage();
        var seed = new GrainState<StreamState>(new StreamState());
        await storage.WriteStateAsync("stream", Grain, seed);
        for (int round = 0; round < 50; round++)
        {
            var current = new GrainState<StreamState>(new StreamState());
            await storage.ReadStateAsync("stream", Grain, current);
            var writers = Enumerable.Range(0, 4).Select(i => new GrainState<StreamState>(new StreamState { StepCount = round * 10 + i }) { ETag = current.ETag }).ToArray();
            var outcomes = await Task.WhenAll(writers.Select(w => Task.Run(async () =>
            {
                try { await storage.WriteStateAsync("stream", Grain, w); return true; }
                catch (InconsistentStateException) { return false; }
            })));
            int winner = Assert.Single(Enumerable.Range(0, 4), i => outcomes[i]);
            var stored = new GrainState<StreamState>(new StreamState());
            await storage.ReadStateAsync("stream", Grain, stored);
            Assert.Equal(writers[winner].State!.StepCount, stored.State!.StepCount);
            Assert.Equal(writers[winner].ETag, stored.ETag);
        }
    }
}
