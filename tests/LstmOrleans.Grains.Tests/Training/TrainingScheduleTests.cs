using System.Diagnostics;
using LstmOrleans.Abstractions;
using Xunit.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

[Collection(TrainingCollection.Name)]
public sealed class TrainingScheduleTests(TrainingFixture fixture, ITestOutputHelper output)
{
    private IClusterClient Client => fixture.Client;

    private static TrainingSettings Small => new(Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: 16, Epochs: 3,
        TimeBudget: TimeSpan.FromSeconds(2), LearningRate: 0.01f, WindowLength: 16, Stride: 8, MaxRowsPerStream: 128);

    [Fact]
    public async Task New_observations_across_streams_trigger_a_round()
    {
        const string model = "observations";
        await Client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
        var training = Client.GetGrain<ITrainingGrain>(model);
        await training.ConfigureAsync(Small with { MinNewObservations = 500 });

        // 8 streams x 50 = 400 observations: below the threshold, no round across several ticks (2 s each).
        await SineStreams.IngestAsync(Client, model, streams: 8, from: 0, count: 50);
        await TrainingFixture.WaitForRegistryAsync(Client, model, 8);
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Empty((await training.GetStatusAsync()).RecentRounds);

        // 8 x 20 more = 560 in total: the next tick starts a round.
        await SineStreams.IngestAsync(Client, model, streams: 8, from: 50, count: 20);
        var round = await WaitForRoundAsync(training, 1, TimeSpan.FromSeconds(30));
        output.WriteLine($"{round.Trigger} {round.Decision}: {round.Reason}");
        Assert.Equal(TrainingTrigger.NewObservations, round.Trigger);
        Assert.NotEqual(TrainingDecision.Failed, round.Decision);
        var status = await training.GetStatusAsync();
        Assert.Equal(560, status.ObservationsAtLastRound);

        // The counter was consumed: no further round without new data.
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Single((await training.GetStatusAsync()).RecentRounds);
    }

    [Fact]
    public async Task Periodic_schedule_runs_rounds_on_its_own()
    {
        const string model = "periodic";
        await Client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
        await SineStreams.IngestAsync(Client, model, streams: 4, from: 0, count: 80);
        var training = Client.GetGrain<ITrainingGrain>(model);
        var configured = await training.ConfigureAsync(Small with { Period = TimeSpan.FromSeconds(3) });
        Assert.NotNull(configured.NextDueAt);

        var first = await WaitForRoundAsync(training, 1, TimeSpan.FromSeconds(30));
        var second = await WaitForRoundAsync(training, 2, TimeSpan.FromSeconds(30));
        Assert.Equal(TrainingTrigger.Schedule, first.Trigger);
        Assert.Equal(TrainingTrigger.Schedule, second.Trigger);
        Assert.True(second.StartedAt - first.StartedAt >= TimeSpan.FromSeconds(3));
        await training.PauseAsync();
    }

    [Fact]
    public async Task Status_and_ingestion_stay_responsive_while_a_round_trains()
    {
        const string model = "responsive";
        await Client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
        await SineStreams.IngestAsync(Client, model, streams: 16, from: 0, count: 200);
        await TrainingFixture.WaitForRegistryAsync(Client, model, 16);
        var training = Client.GetGrain<ITrainingGrain>(model);
        // Many epochs, no early stopping: the round runs until its 8 s budget (long enough that a multi-second stall of
        // a loaded test machine between the start and the status call below still finds it running).
        await training.ConfigureAsync(Small with { Epochs = 10_000, Patience = 0, TimeBudget = TimeSpan.FromSeconds(8), BatchSize = 4 });
        // A round the silo's default schedule may have started on the ingested observations (before the settings above)
        // would be joined below and could end within the half second: wait until none runs, so the round is ours.
        await WaitUntilIdleAsync(training, TimeSpan.FromSeconds(30));
        int roundsBefore = (await training.GetStatusAsync()).RecentRounds.Length;

        long id = await training.StartRoundAsync();
        Assert.Equal(id, await training.StartRoundAsync());   // joins the running round
        await Task.Delay(500);
        var clock = Stopwatch.StartNew();
        var status = await training.GetStatusAsync();
        var statusLatency = clock.Elapsed;
        Assert.True(status.Running);
        Assert.Equal(id, status.RunningRoundId);
        Assert.Null(await training.GetRoundAsync(id));

        clock.Restart();
        var step = await Client.GetGrain<IStreamGrain>(SineStreams.Id(model, 0))
            .IngestAsync(new Observation(200, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(200), [SineStreams.Value(0, 200)]));
        var ingestLatency = clock.Elapsed;
        Assert.False(step.Duplicate);
        output.WriteLine($"status in {statusLatency.TotalMilliseconds:F0} ms, ingest in {ingestLatency.TotalMilliseconds:F0} ms during the round");
        Assert.True(statusLatency < TimeSpan.FromSeconds(1), $"status took {statusLatency}");
        Assert.True(ingestLatency < TimeSpan.FromSeconds(1), $"ingest took {ingestLatency}");

        var record = await WaitForRoundAsync(training, roundsBefore + 1, TimeSpan.FromSeconds(30));
        Assert.Equal(id, record.RoundId);
        Assert.True(record.RanOutOfTime);
        Assert.Equal(record, await training.GetRoundAsync(id));
        Assert.False((await training.GetStatusAsync()).Running);
    }

    private static async Task WaitUntilIdleAsync(ITrainingGrain training, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while ((await training.GetStatusAsync()).Running)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"A training round was still running after {timeout}.");
            await Task.Delay(100);
        }
    }

    private static async Task<TrainingRoundRecord> WaitForRoundAsync(ITrainingGrain training, int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            var rounds = (await training.GetStatusAsync()).RecentRounds;
            if (rounds.Length >= count) return rounds[count - 1];
            await Task.Delay(250);
        }
        throw new TimeoutException($"Fewer than {count} rounds after {timeout}.");
    }
}
