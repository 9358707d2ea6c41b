using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Training;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.TestingHost;
using Xunit.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// A one-silo training cluster whose grain storage can hold a chosen grain's writes (<see cref="HeldWriteStorage"/>),
/// with a short per-stream pull timeout and call timeouts far longer than any test: a call that is waited for instead
/// of timed out by the training grain's own rule shows up as a wrong count, not as a lucky timeout.
/// </summary>
public sealed class HeldWritesFixture : IAsyncLifetime
{
    public static readonly TimeSpan PullTimeout = TimeSpan.FromSeconds(1);

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public IClusterClient Client => Cluster.Client;

    public async Task InitializeAsync()
    {
        string serviceId = "lstm-training-held-" + Guid.NewGuid().ToString("N")[..8];
        Cluster = await TrainingCluster.StartAsync(serviceId, silos: 1,
            configure: o => o.PullTimeout = PullTimeout,
            configureSilo: silo =>
            {
                // Registered after TrainingCluster's storage, so this decorator is the one the grains get.
                silo.Services.AddKeyedSingleton<IGrainStorage>(LstmOrleansNames.StorageName,
                    (sp, _) => new HeldWriteStorage(new SharedGrainStorage(serviceId, sp.GetRequiredService<Serializer>())));
                silo.Services.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(3));
            },
            configureClient: client => client.Services.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(3)));
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}

[Collection(TrainingCollection.Name)]
public sealed class TrainingRoundEdgeTests(HeldWritesFixture fixture, ITestOutputHelper output) : IClassFixture<HeldWritesFixture>
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private IClusterClient Client => fixture.Client;

    private static TrainingSettings Short => new(
        Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: 64, Epochs: 2, TimeBudget: TimeSpan.FromSeconds(2),
        LearningRate: 0.01f, WindowLength: 16, Stride: 8, BatchSize: 32, ValidationFraction: 0.25, ClipNorm: 1f,
        Patience: 0, MaxRowsPerStream: 128);

    [Fact]
    public async Task A_stream_that_does_not_answer_in_time_is_skipped_and_the_round_goes_on_without_it()
    {
        string model = "skip-" + Guid.NewGuid().ToString("N")[..8];
        const int streams = 4, rows = 120;
        await Client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
        await SineStreams.IngestAsync(Client, model, streams, from: 0, count: rows);
        await TrainingFixture.WaitForRegistryAsync(Client, model, streams);
        var training = Client.GetGrain<ITrainingGrain>(model);
        await training.ConfigureAsync(Short);

        // Stream 0 is busy: an ingest call is stuck in its state write, and the grain is not reentrant, so its
        // training-window request queues behind it. The hold is released by the test after the round, or after 60 s
        // at the latest; a round that waited for the stream would therefore see it answer (and count it as used).
        var slow = Client.GetGrain<IStreamGrain>(SineStreams.Id(model, 0));
        using var hold = HeldWriteStorage.Hold(slow.GetGrainId()).ReleaseAfter(TimeSpan.FromSeconds(60));
        var busy = slow.IngestAsync(new Observation(rows, Start.AddSeconds(rows), [SineStreams.Value(0, rows)]));
        await hold.Entered.WaitAsync(TimeSpan.FromSeconds(30));

        var round = await training.TrainNowAsync();
        output.WriteLine($"round {round.RoundId}: {round.Decision} sampled {round.StreamsSampled} used {round.StreamsUsed} " +
            $"unanswered {round.StreamsUnanswered} rows {round.Rows} in {round.Duration.TotalSeconds:F1} s; {round.Reason}");
        Assert.False(hold.Released, "The round returned only after the busy stream was let go: it waited for it.");
        Assert.False(busy.IsCompleted);
        Assert.Equal(streams, round.StreamsSampled);
        Assert.Equal(1, round.StreamsUnanswered);
        Assert.Equal(streams - 1, round.StreamsUsed);
        Assert.Equal((streams - 1) * TrainingCluster.UsedRows(rows), round.Rows);
        Assert.Contains(round.Decision, new[] { TrainingDecision.Accepted, TrainingDecision.Rejected });
        Assert.Equal(round, (await training.GetStatusAsync()).RecentRounds[^1]);

        // Let the stream go: its ingest completes normally, and the next round hears from every stream.
        hold.Release();
        var step = await busy;
        Assert.False(step.Duplicate);
        Assert.Equal(rows, step.Sequence);
        var next = await training.TrainNowAsync();
        Assert.Equal(0, next.StreamsUnanswered);
        Assert.Equal(streams, next.StreamsUsed);
        Assert.Equal((streams - 1) * TrainingCluster.UsedRows(rows) + TrainingCluster.UsedRows(rows + 1), next.Rows);   // stream 0 took one more step
    }

    [Fact]
    public async Task StartRound_after_a_rounds_record_is_stored_starts_a_new_round()
    {
        // No streams: every round is a quick Skipped round, which still writes its record.
        string model = "race-" + Guid.NewGuid().ToString("N")[..8];
        await Client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
        var training = Client.GetGrain<ITrainingGrain>(model);
        await training.ConfigureAsync(Short);

        // Hold the round's record write: the record is already in the grain's state (readable through GetRound, which
        // interleaves) while the round's task has not completed. That is the moment the fix is about.
        using var hold = HeldWriteStorage.Hold(training.GetGrainId()).ReleaseAfter(TimeSpan.FromSeconds(60));
        long first = await training.StartRoundAsync();
        await hold.Entered.WaitAsync(TimeSpan.FromSeconds(30));
        var firstRecord = await training.GetRoundAsync(first);
        Assert.NotNull(firstRecord);
        Assert.Equal(TrainingDecision.Skipped, firstRecord.Decision);
        Assert.True((await training.GetStatusAsync()).Running);   // the finished round's task is still in flight

        long second = await training.StartRoundAsync();
        Assert.Equal(first + 1, second);

        hold.Release();
        var secondRecord = await TestSupport.Eventually(() => training.GetRoundAsync(second), r => r is not null);
        Assert.NotNull(secondRecord);
        Assert.Equal(second, secondRecord.RoundId);
        Assert.True(secondRecord.StartedAt >= firstRecord.StartedAt);
        var status = await TestSupport.Eventually(training.GetStatusAsync, s => !s.Running);
        Assert.Equal(new[] { first, second }, status.RecentRounds.Select(r => r.RoundId));
    }
}
