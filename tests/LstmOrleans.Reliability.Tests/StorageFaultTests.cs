using System.Text.Json;
using LstmOrleans.Abstractions;
using LstmOrleans.Grains;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;
using Orleans.Hosting;
using Orleans.TestingHost;

namespace LstmOrleans.Reliability.Tests;

/// <summary>
/// A real Orleans cluster on the real SQLite provider whose commit can be made to fail or hang through its
/// fault-injection seam (<see cref="Persistence.Sqlite.SqliteGrainStorageOptions.OnBeforeCommit"/>).
/// </summary>
public sealed class SqliteFaultCluster : IAsyncLifetime
{
    public const string Model = "faults";
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"lstm-reliability-{Guid.NewGuid():N}");

    /// <summary>0 = commits succeed, 1 = commits throw, 2 = commits hang 300 ms and then time out, 3 = only <see cref="CommitBudget"/> more commits succeed.</summary>
    public static volatile int FaultMode;

    /// <summary>With <see cref="FaultMode"/> 3: commits still allowed; each takes one, the rest throw.</summary>
    public static int CommitBudget;

    public InProcessTestCluster Cluster { get; private set; } = null!;
    public IClusterClient Client => Cluster.Client;
    public IGrainStorage Storage => Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(LstmOrleansNames.StorageName);

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        var database = Path.Combine(_directory, "state.db");
        var builder = new InProcessTestClusterBuilder(1);
        builder.Options.ServiceId = "reliability-faults";
        builder.Options.ClusterId = "reliability-faults";
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddSqliteGrainStorage(LstmOrleansNames.StorageName, (Persistence.Sqlite.SqliteGrainStorageOptions o) =>
            {
                o.DataSource = database;
                o.OnBeforeCommit = async _ =>
                {
                    switch (FaultMode)
                    {
                        case 1: throw new IOException("injected storage failure");
                        case 3 when Interlocked.Decrement(ref CommitBudget) < 0: throw new IOException("injected storage failure (commit budget spent)");
                        case 2:
                            await Task.Delay(300);
                            throw new TimeoutException("injected storage timeout");
                    }
                };
            });
            silo.AddLstmOrleans(configureStreams: o => o.MaxBatchSize = 16);
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        await Client.GetGrain<IModelGrain>(Model).CreateAsync(Signals.Config());
    }

    public async Task DisposeAsync()
    {
        FaultMode = 0;
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}

public sealed class StorageFaultTests(SqliteFaultCluster fixture) : IClassFixture<SqliteFaultCluster>
{
    private IClusterClient Client => fixture.Client;

    private static async Task<string> FullState(IStreamGrain stream) =>
        JsonSerializer.Serialize(new { state = await stream.GetStateAsync(), history = await stream.GetHistoryAsync(int.MaxValue) });

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task FailingOrTimedOutStoreFailsTheCallChangesNothingAndARetryConverges(int faultMode)
    {
        var weights = await Client.GetGrain<IModelGrain>(SqliteFaultCluster.Model).GetActiveWeightsAsync();
        var reference = new ReferenceStream(weights.Config, ReferenceStream.ToEngine(weights));
        var stream = Client.GetGrain<IStreamGrain>($"faulty-store-{faultMode}");
        await stream.BindAsync(SqliteFaultCluster.Model);
        for (int seq = 1; seq <= 6; seq++)
        {
            await stream.IngestAsync(Signals.Obs(faultMode, seq));
            reference.Step(Signals.Obs(faultMode, seq).Values);
        }
        var before = await FullState(stream);

        SqliteFaultCluster.FaultMode = faultMode;
        try
        {
            // A single observation and a batch: both must fail (not be acknowledged) and must not be rejections.
            var single = await Assert.ThrowsAnyAsync<Exception>(() => stream.IngestAsync(Signals.Obs(faultMode, 7)));
            Assert.IsNotType<ObservationRejectedException>(single);
            var batch = await Assert.ThrowsAnyAsync<Exception>(() => stream.IngestBatchAsync([Signals.Obs(faultMode, 7), Signals.Obs(faultMode, 8)]));
            Assert.IsNotType<ObservationRejectedException>(batch);
        }
        finally
        {
            SqliteFaultCluster.FaultMode = 0;
        }
        Assert.Equal(before, await FullState(stream));

        // Retrying the same sequence numbers converges to the fault-free result, bit for bit.
        var seven = await stream.IngestAsync(Signals.Obs(faultMode, 7));
        Assert.False(seven.Duplicate);
        var rest = await stream.IngestBatchAsync(Enumerable.Range(7, 6).Select(s => Signals.Obs(faultMode, s)).ToArray());
        Assert.True(rest[0].Duplicate);
        Assert.All(rest[1..], r => Assert.False(r.Duplicate));
        float[] last = [];
        for (int seq = 7; seq <= 12; seq++) last = reference.Step(Signals.Obs(faultMode, seq).Values);
        var state = await stream.GetStateAsync();
        Assert.Equal(12, state.Summary.StepCount);
        Assert.Equal(12, state.Summary.LastSequence);
        Assert.Equal(Bits.Of(reference.H), Bits.Of(state.Hidden));
        Assert.Equal(Bits.Of(reference.C), Bits.Of(state.Cell));
        Assert.Equal(Bits.Of(last), Bits.Of(rest[^1].Predictions));
    }

    /// <summary>
    /// On SQLite a chunk-closing write is one atomic unit in one commit (the core plus the closed chunk's history
    /// record, see ICompanionWriteGrainStorage): a failed commit leaves neither, so no history record ever gets ahead
    /// of its core, and the retry writes both with a single commit.
    /// </summary>
    [Fact]
    public async Task AFailedChunkClosingCommitWritesNeitherTheCoreNorTheHistoryRecord()
    {
        var stream = Client.GetGrain<IStreamGrain>("faulty-chunk-close");
        await stream.BindAsync(SqliteFaultCluster.Model);
        int chunk = new StreamGrainOptions().HistoryChunkSize;                 // the default, which this silo uses
        for (int seq = 1; seq <= 2 * chunk; seq += 16)
            await stream.IngestBatchAsync(Enumerable.Range(seq, 16).Select(i => Signals.Obs(2, i)).ToArray());   // closed chunk 0, tail = chunk 1 (full)
        var before = await FullState(stream);
        var grainId = stream.GetGrainId();
        async Task<bool> SecondChunkStoredAsync()
        {
            var record = new GrainState<StreamHistory>();
            await fixture.Storage.ReadStateAsync("history.1", grainId, record);
            return record.RecordExists;
        }
        Assert.False(await SecondChunkStoredAsync());

        SqliteFaultCluster.FaultMode = 1;
        try
        {
            await Assert.ThrowsAnyAsync<Exception>(() => stream.IngestAsync(Signals.Obs(2, 2 * chunk + 1)));
            Assert.False(await SecondChunkStoredAsync());
            await Assert.ThrowsAnyAsync<Exception>(() => stream.IngestBatchAsync([Signals.Obs(2, 2 * chunk + 1), Signals.Obs(2, 2 * chunk + 2)]));
            Assert.False(await SecondChunkStoredAsync());
        }
        finally
        {
            SqliteFaultCluster.FaultMode = 0;
        }
        Assert.Equal(before, await FullState(stream));

        // And it is ONE commit: with a budget of one, the chunk-closing step succeeds and stores both (separate history
        // and core writes would spend the budget on the history record and fail at the core).
        SqliteFaultCluster.CommitBudget = 1;
        SqliteFaultCluster.FaultMode = 3;
        try
        {
            await stream.IngestAsync(Signals.Obs(2, 2 * chunk + 1));
        }
        finally
        {
            SqliteFaultCluster.FaultMode = 0;
        }
        Assert.Equal(0, SqliteFaultCluster.CommitBudget);
        Assert.True(await SecondChunkStoredAsync());
        var history = await stream.GetHistoryAsync(int.MaxValue);
        Assert.Equal(Enumerable.Range(1, 2 * chunk + 1).Select(i => (long)i), history.Select(o => o.Sequence));
        Assert.Equal(Signals.Obs(2, 40).Values, history[39].Values);
    }

    [Fact]
    public async Task TwoWritersWithTheSameEtagNeverBothSucceed()
    {
        var stream = Client.GetGrain<IStreamGrain>("etag-race");
        await stream.BindAsync(SqliteFaultCluster.Model);
        await stream.IngestBatchAsync([Signals.Obs(0, 1), Signals.Obs(0, 2)]);
        var grainId = stream.GetGrainId();
        for (int round = 0; round < 20; round++)
        {
            var a = new GrainState<StreamState>();
            var b = new GrainState<StreamState>();
            await fixture.Storage.ReadStateAsync("stream", grainId, a);
            await fixture.Storage.ReadStateAsync("stream", grainId, b);
            Assert.Equal(a.ETag, b.ETag);
            a.State!.StepCount += 1;
            b.State!.StepCount += 2;
            var outcomes = await Task.WhenAll(TryWrite(a), TryWrite(b));
            Assert.Single(outcomes, o => o is null);
            Assert.IsType<InconsistentStateException>(Assert.Single(outcomes, o => o is not null));
            var stored = new GrainState<StreamState>();
            await fixture.Storage.ReadStateAsync("stream", grainId, stored);
            var winner = outcomes[0] is null ? a : b;
            Assert.Equal(winner.ETag, stored.ETag);
            Assert.Equal(winner.State!.StepCount, stored.State!.StepCount);
        }

        async Task<Exception?> TryWrite(GrainState<StreamState> state)
        {
            try { await fixture.Storage.WriteStateAsync("stream", grainId, state); return null; }
            catch (Exception e) { return e; }
        }
    }

    [Fact]
    public async Task AnActivationWhoseStateAnotherWriterAdvancedCannotAdvanceIt()
    {
        var stream = Client.GetGrain<IStreamGrain>("etag-stale-activation");
        await stream.BindAsync(SqliteFaultCluster.Model);
        for (int seq = 1; seq <= 3; seq++) await stream.IngestAsync(Signals.Obs(1, seq));
        var grainId = stream.GetGrainId();

        // Another writer (a second activation in a split-brain moment) advances the stored stream to sequence 10.
        var other = new GrainState<StreamState>();
        await fixture.Storage.ReadStateAsync("stream", grainId, other);
        other.State!.LastSequence = 10;
        other.State!.StepCount = 10;
        other.State!.LastTimestamp = Signals.Start.AddSeconds(10);
        await fixture.Storage.WriteStateAsync("stream", grainId, other);

        // The live activation still holds the old etag: its step must not be acknowledged nor stored.
        var conflict = await Assert.ThrowsAnyAsync<Exception>(() => stream.IngestAsync(Signals.Obs(1, 4)));
        Assert.IsNotType<ObservationRejectedException>(conflict);
        var stored = new GrainState<StreamState>();
        await fixture.Storage.ReadStateAsync("stream", grainId, stored);
        Assert.Equal(10, stored.State!.StepCount);
        Assert.Equal(other.ETag, stored.ETag);

        // The retry reloads the winner's state: sequence 4 is now old, so it is a duplicate and nothing steps twice.
        var retry = await stream.IngestAsync(Signals.Obs(1, 4));
        Assert.True(retry.Duplicate);
        var summary = await stream.GetSummaryAsync();
        Assert.Equal(10, summary.StepCount);
        Assert.Equal(10, summary.LastSequence);
    }
}
