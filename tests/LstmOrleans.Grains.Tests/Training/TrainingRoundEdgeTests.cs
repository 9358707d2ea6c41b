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
/// A one-silo training cluster whose grain storage can hold a chosen grain's writes (<see cref="HeldWriteStorage"/>)
/// and whose grains' calls of a chosen method can be held before they are sent (<see cref="HeldCallFilter"/>), with a short per-stream pull timeout and call timeouts far longer than any test: a call that is waited for instead
/// of timed out by the training grain's own rule shows up as a wrong count, not as a lucky timeout.
/// </summary>
public class HeldWritesFixture : IAsyncLifetime
{
    public static readonly TimeSpan PullTimeout = TimeSpan.FromSeconds(1);

    private readonly Action<TrainingGrainOptions>? _configure;

    public HeldWritesFixture() : this(null) { }

    /// <param name="configure">Further training options, applied after the short pull timeout.</param>
    protected HeldWritesFixture(Action<TrainingGrainOptions>? configure) => _configure = configure;

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public IClusterClient Client => Cluster.Client;

    public async Task InitializeAsync()
    {
        string serviceId = "lstm-training-held-" + Guid.NewGuid().ToString("N")[..8];
        Cluster = await TrainingCluster.StartAsync(serviceId, silos: 1,
            configure: o =>
            {
                o.PullTimeout = PullTimeout;
                _configure?.Invoke(o);
            },
            configureSilo: silo =>
            {
                // Registered after TrainingCluster's storage, so this decorator is the one the grains get.
                silo.Services.AddKeyedSingleton<IGrainStorage>(LstmOrleansNames.StorageName,
                    (sp, _) => new HeldWriteStorage(new SharedGrainStorage(serviceId, sp.GetRequiredService<Serializer>())));
                silo.AddOutgoingGrainCallFilter<HeldCallFilter>();
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

/// <summary>Models, settings and held rounds for the tests on a <see cref="HeldWritesFixture"/> cluster.</summary>
public abstract class HeldWritesTests(HeldWritesFixture fixture)
{
    protected static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    protected HeldWritesFixture Fixture => fixture;

    protected IClusterClient Client => fixture.Client;

    protected static TrainingSettings Short => new(
        Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: 64, Epochs: 2, TimeBudget: TimeSpan.FromSeconds(2),
        LearningRate: 0.01f, WindowLength: 16, Stride: 8, BatchSize: 32, ValidationFraction: 0.25, ClipNorm: 1f,
        Patience: 0, MaxRowsPerStream: 128);

    /// <summary>
    /// A new model (named <paramref name="prefix"/> and a random suffix, so tests sharing the cluster never meet), created
    /// with <see cref="SineStreams.Config"/>, and its training grain configured with <paramref name="settings"/>;
    /// <paramref name="populate"/> (given the name) runs in between.
    /// </summary>
    protected async Task<(string Model, IModelGrain Grain, ITrainingGrain Training)> NewModelAsync(string prefix, TrainingSettings settings,
        Func<string, Task>? populate = null)
    {
        string model = prefix + Guid.NewGuid().ToString("N")[..8];
        var grain = Client.GetGrain<IModelGrain>(model);
        await grain.CreateAsync(SineStreams.Config);
        if (populate is not null) await populate(model);
        var training = Client.GetGrain<ITrainingGrain>(model);
        await training.ConfigureAsync(settings);
        return (model, grain, training);
    }

    /// <summary>A new model whose <paramref name="streams"/> streams have <paramref name="rows"/> observations each, registered and configured.</summary>
    protected Task<(string Model, IModelGrain Grain, ITrainingGrain Training)> ModelWithStreamsAsync(string prefix, int streams, int rows,
        TrainingSettings settings) =>
        NewModelAsync(prefix, settings, async model =>
        {
            await SineStreams.IngestAsync(Client, model, streams, from: 0, count: rows);
            await TrainingFixture.WaitForRegistryAsync(Client, model, streams);
        });

    /// <summary>
    /// Round <paramref name="round"/> shows as running and not recorded (reads interleave, and show only what is stored),
    /// and a start joins it rather than starting another.
    /// </summary>
    protected static async Task AssertRunningAndUnrecordedAsync(ITrainingGrain training, long round)
    {
        Assert.Null(await training.GetRoundAsync(round));
        var during = await training.GetStatusAsync();
        Assert.True(during.Running);
        Assert.Equal(round, during.RunningRoundId);
        Assert.Empty(during.RecentRounds);
        Assert.Equal(round, await training.StartRoundAsync());
    }

    /// <summary>A new model without streams (every round is a quick Skipped round) whose next round is held at its first step.</summary>
    private protected async Task<(ITrainingGrain Training, long Round, TestHold Step)> RoundHeldAtFirstStepAsync(string prefix)
    {
        var (model, _, training) = await NewModelAsync(prefix, Short);
        var shard = Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(model, 0));
        var step = HeldCallFilter.Hold(shard.GetGrainId(), nameof(IStreamRegistryShardGrain.GetStatsAsync)).ReleaseAfter(TimeSpan.FromSeconds(90));
        long round = await training.StartRoundAsync();
        await step.Entered.WaitAsync(TimeSpan.FromSeconds(30));
        return (training, round, step);
    }
}

[Collection(TrainingCollection.Name)]
public sealed class TrainingRoundEdgeTests(HeldWritesFixture fixture, ITestOutputHelper output) : HeldWritesTests(fixture), IClassFixture<HeldWritesFixture>
{
    [Fact]
    public async Task A_stream_that_does_not_answer_in_time_is_skipped_and_the_round_goes_on_without_it()
    {
        const int streams = 4, rows = 120;
        var (model, _, training) = await ModelWithStreamsAsync("skip-", streams, rows, Short);

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
    public async Task A_rounds_record_is_shown_only_once_stored_and_a_start_after_that_begins_a_new_round()
    {
        // No streams: every round is a quick Skipped round, which still writes its record.
        var (model, _, training) = await NewModelAsync("race-", Short);

        // Hold the round's record write (the round's id is stored when it starts, so the write hold is put in place
        // once the round is past that, held at its first step): the round is over but its record not yet durable.
        var shard = Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(model, 0));
        using var step = HeldCallFilter.Hold(shard.GetGrainId(), nameof(IStreamRegistryShardGrain.GetStatsAsync)).ReleaseAfter(TimeSpan.FromSeconds(60));
        long first = await training.StartRoundAsync();
        await step.Entered.WaitAsync(TimeSpan.FromSeconds(30));
        using var hold = HeldWriteStorage.Hold(training.GetGrainId()).ReleaseAfter(TimeSpan.FromSeconds(60));
        step.Release();
        await hold.Entered.WaitAsync(TimeSpan.FromSeconds(30));

        // Reads (which interleave) do not show what a crash now could still lose: the round is running, not recorded,
        // and a start joins it.
        await AssertRunningAndUnrecordedAsync(training, first);
        Assert.False(hold.Released);

        // Stored, the record is shown, and a start after it begins a new round, not a join of the finished one.
        hold.Release();
        var firstRecord = await TestSupport.Eventually(() => training.GetRoundAsync(first), r => r is not null);
        Assert.NotNull(firstRecord);
        Assert.Equal(TrainingDecision.Skipped, firstRecord.Decision);
        long second = await training.StartRoundAsync();
        Assert.Equal(first + 1, second);

        var secondRecord = await TestSupport.Eventually(() => training.GetRoundAsync(second), r => r is not null);
        Assert.NotNull(secondRecord);
        Assert.Equal(second, secondRecord.RoundId);
        Assert.True(secondRecord.StartedAt >= firstRecord.StartedAt);
        var status = await TestSupport.Eventually(training.GetStatusAsync, s => !s.Running);
        Assert.Equal(new[] { first, second }, status.RecentRounds.Select(r => r.RoundId));
    }

    [Fact]
    public async Task A_round_whose_record_write_fails_stays_running_until_the_retried_write_stores_it_and_no_round_starts_meanwhile()
    {
        // The round's id is stored (it is held at its first step); from now on every write of the training grain fails,
        // as with a store that is briefly down. Then the round runs on and ends (Skipped) with its record unwritable.
        var (training, first, step) = await RoundHeldAtFirstStepAsync("unstored-");
        using var _ = step;
        using var fault = HeldWriteStorage.Fail(training.GetGrainId()).ReleaseAfter(TimeSpan.FromSeconds(90));
        step.Release();
        await fault.Entered.WaitAsync(TimeSpan.FromSeconds(30));

        // A waiter is not given an outcome that is not stored: it waits (given time it would have been answered in, if
        // the round were treated as done). The round counts as running, its record is not shown, and a start joins it
        // instead of starting a round whose id write would leave this one unrecorded for ever.
        var wait = training.TrainNowAsync();
        await Task.WhenAny(wait, Task.Delay(TimeSpan.FromSeconds(3)));
        if (wait.IsCompleted)
        {
            var early = await Record.ExceptionAsync(() => wait);
            Assert.Fail(early is null
                ? $"TrainNow returned round {(await wait).RoundId} ({(await wait).Decision}), whose record was never stored"
                : $"TrainNow failed: {early.Message}");
        }
        await AssertRunningAndUnrecordedAsync(training, first);

        // The store is back: the retried write stores the record, which the waiter now gets, and is then shown.
        fault.Release();
        var record = await wait.WaitAsync(TimeSpan.FromSeconds(90));
        output.WriteLine($"round {record.RoundId}: {record.Decision}; {record.Reason}");
        Assert.Equal(first, record.RoundId);
        Assert.Equal(TrainingDecision.Skipped, record.Decision);
        Assert.Equal(record, await training.GetRoundAsync(first));

        // Rounds go on from there, each recorded once.
        var next = await training.TrainNowAsync();
        Assert.Equal(first + 1, next.RoundId);
        var status = await training.GetStatusAsync();
        Assert.False(status.Running);
        Assert.Equal(new[] { first, first + 1 }, status.RecentRounds.Select(r => r.RoundId));
    }

    [Fact]
    public async Task A_record_write_reported_failed_that_was_stored_is_found_on_retry_and_recorded_once()
    {
        // The round's record write reaches the store but is reported as failed (a commit of unknown outcome): the store's
        // ETag has moved on. The retry must read what is stored rather than write from the old ETag (refused as stale
        // for ever), find the record there, and not add it twice.
        var (training, first, step) = await RoundHeldAtFirstStepAsync("unknown-");
        using var _ = step;
        using var fault = HeldWriteStorage.Fail(training.GetGrainId(), storeFirst: true, once: true);
        step.Release();
        await fault.Entered.WaitAsync(TimeSpan.FromSeconds(30));

        var record = await TestSupport.Eventually(() => training.GetRoundAsync(first), r => r is not null, TimeSpan.FromSeconds(60));
        Assert.NotNull(record);
        Assert.Equal(TrainingDecision.Skipped, record.Decision);
        var status = await TestSupport.Eventually(training.GetStatusAsync, s => !s.Running, TimeSpan.FromSeconds(60));
        Assert.False(status.Running);
        Assert.Equal(new[] { first }, status.RecentRounds.Select(r => r.RoundId));

        // Later writes go through: the next round is numbered on and recorded.
        var next = await training.TrainNowAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(first + 1, next.RoundId);
        Assert.Equal(new[] { first, first + 1 }, (await training.GetStatusAsync()).RecentRounds.Select(r => r.RoundId));
    }

    [Fact]
    public async Task Settings_are_shown_only_once_stored_and_a_start_that_waited_for_a_pause_is_refused()
    {
        var (_, _, training) = await NewModelAsync("shown-", Short);

        // A pause whose write is in flight: status reads (which interleave) still show the stored, unpaused state.
        using var hold = HeldWriteStorage.Hold(training.GetGrainId()).ReleaseAfter(TimeSpan.FromSeconds(60));
        var pause = training.PauseAsync();
        await hold.Entered.WaitAsync(TimeSpan.FromSeconds(30));
        var during = await training.GetStatusAsync();
        Assert.False(during.Paused);
        Assert.Equal(Short, during.Settings);

        // A start that arrives meanwhile is not refused at once (the pause is not stored yet), but its round's id waits
        // for the write lock behind the pause, and then finds it stored: refused, nothing written. Given time to arrive
        // while the pause is held (on a slow machine it may arrive later and be refused at once, proving less, not failing).
        var start = training.StartRoundAsync();
        await Task.WhenAny(start, Task.Delay(TimeSpan.FromSeconds(2)));
        Assert.False(hold.Released);

        hold.Release();
        Assert.True((await pause).Paused);
        await Assert.ThrowsAsync<ModelOperationException>(() => start);
        var after = await training.GetStatusAsync();
        Assert.True(after.Paused);
        Assert.False(after.Running);
        Assert.Empty(after.RecentRounds);
    }

    [Fact]
    public async Task A_rollback_made_while_a_winning_challenger_is_on_its_way_to_be_published_is_not_undone()
    {
        var (_, grain, training) = await ModelWithStreamsAsync("rollback-", streams: 8, rows: 120,
            Short with { Epochs = 10, TimeBudget = TimeSpan.FromSeconds(5) });
        // Version 2 (a copy of the untrained version 1) is the champion the round measures its challenger against.
        long v2 = await grain.PublishAsync(new PublishRequest((await grain.GetActiveWeightsAsync()).Parameters, "champion"));

        // The round has checked that the champion is still active and sends its publish; the operator rolls back to
        // version 1 just before the publish arrives. The rollback must stand: the challenger was never compared with it.
        using var hold = HeldCallFilter.Hold(grain.GetGrainId(), nameof(IModelGrain.PublishAsync)).ReleaseAfter(TimeSpan.FromSeconds(60));
        long id = await training.StartRoundAsync();
        await hold.Entered.WaitAsync(TimeSpan.FromSeconds(30));
        await grain.ActivateAsync(1);
        hold.Release();

        var record = await TestSupport.Eventually(() => training.GetRoundAsync(id), r => r is not null, TimeSpan.FromSeconds(30));
        Assert.NotNull(record);
        output.WriteLine($"round {record.RoundId}: {record.Decision}; {record.Reason}");
        Assert.Equal(TrainingDecision.Rejected, record.Decision);
        Assert.Equal(v2, record.ChampionVersion);
        Assert.Null(record.PublishedVersion);
        Assert.Contains("active version changed", record.Reason);
        var info = await grain.GetInfoAsync();
        Assert.Equal(1, info.ActiveVersion);
        Assert.Equal(v2, info.LatestVersion);   // nothing was stored either
    }

    [Fact]
    public async Task Simultaneous_starts_share_one_round_and_publish_at_most_once()
    {
        var (model, grain, training) = await ModelWithStreamsAsync("twice-", streams: 4, rows: 120, Short);

        // The round is held at its first step (reading the registry's counts, which has no timeout), so every start
        // below arrives while it runs, however quickly an unheld round would finish on this machine.
        var shard = Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(model, 0));
        using var hold = HeldCallFilter.Hold(shard.GetGrainId(), nameof(IStreamRegistryShardGrain.GetStatsAsync)).ReleaseAfter(TimeSpan.FromSeconds(60));
        long first = await training.StartRoundAsync();
        await hold.Entered.WaitAsync(TimeSpan.FromSeconds(30));

        // StartRound and TrainNow interleave: all of these join the round in flight.
        var starts = Enumerable.Range(0, 5).Select(_ => training.StartRoundAsync()).ToArray();
        var waits = Enumerable.Range(0, 3).Select(_ => training.TrainNowAsync()).ToArray();
        long[] ids = [first, .. await Task.WhenAll(starts)];
        Assert.False(hold.Released, "the hold ended before every start was answered");
        hold.Release();
        var records = await Task.WhenAll(waits);

        long id = Assert.Single(ids.Distinct());
        Assert.All(records, r => Assert.Equal(id, r.RoundId));
        Assert.Single(records.Distinct());
        var status = await TestSupport.Eventually(training.GetStatusAsync, s => !s.Running);
        Assert.Equal(new[] { id }, status.RecentRounds.Select(r => r.RoundId));
        var info = await grain.GetInfoAsync();
        Assert.Equal(records[0].PublishedVersion ?? 1, info.ActiveVersion);
        Assert.Equal(records[0].PublishedVersion ?? 1, info.LatestVersion);
    }

    [Fact]
    public async Task Too_little_data_gives_one_skipped_round_per_trigger_that_says_how_much_is_needed()
    {
        // Windows of 16 with a quarter held out need 21 rows; the first MinStatisticsCount - 1 = 63 steps of a stream are
        // cut (their statistics cover too few observations), so a fresh stream needs 84 observations, and has 83.
        var settings = Short with { MinNewObservations = 200 };
        int needed = 21 + new TrainingGrainOptions().MinStatisticsCount - 1;
        const int streams = 3;
        var (model, grain, training) = await ModelWithStreamsAsync("little-", streams, rows: needed - 1, settings);

        // 249 new observations: the next tick starts a round, which has nothing to train on.
        var status = await TestSupport.Eventually(training.GetStatusAsync, s => s.RecentRounds.Length > 0 && !s.Running, TimeSpan.FromSeconds(20));
        var skipped = Assert.Single(status.RecentRounds);
        output.WriteLine($"round {skipped.RoundId}: {skipped.Decision} ({skipped.Trigger}); {skipped.Reason}");
        Assert.Equal(TrainingDecision.Skipped, skipped.Decision);
        Assert.Equal(TrainingTrigger.NewObservations, skipped.Trigger);
        Assert.Equal(streams, skipped.StreamsSampled);
        Assert.Equal(0, skipped.StreamsUsed);
        Assert.Contains($"at least {needed} observations", skipped.Reason);

        // No loop: the skipped round counted the observations it saw, so the following ticks start nothing.
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Single((await training.GetStatusAsync()).RecentRounds);
        Assert.Equal(1, (await grain.GetInfoAsync()).LatestVersion);

        // One more observation each is exactly enough.
        await SineStreams.IngestAsync(Client, model, streams, from: needed - 1, count: 1);
        var round = await training.TrainNowAsync();
        output.WriteLine($"round {round.RoundId}: {round.Decision}; {round.Reason}");
        Assert.Equal(streams, round.StreamsUsed);
        Assert.Contains(round.Decision, new[] { TrainingDecision.Accepted, TrainingDecision.Rejected });
    }

    [Fact]
    public async Task Streams_deleted_or_reset_after_they_registered_are_left_out_and_deleted_ones_leave_the_registry()
    {
        const int streams = 5, rows = 120;
        var (model, _, training) = await ModelWithStreamsAsync("gone-", streams, rows, Short);
        // Still listed in the registry when the round samples it, but gone (or empty) when the round pulls its window:
        // the same as a delete or reset that lands while the round runs. A delete unlists the stream at once, so the
        // race is staged by listing the deleted stream again, as a report sent just before the delete would.
        string deleted = SineStreams.Id(model, 0);
        await Client.GetGrain<IStreamGrain>(deleted).DeleteAsync();
        await TrainingFixture.WaitForRegistryAsync(Client, model, streams - 1);
        await Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(model, StreamRegistryKeys.ShardOf(deleted, 4))).ReportAsync(deleted, 1);
        await TrainingFixture.WaitForRegistryAsync(Client, model, streams);
        await Client.GetGrain<IStreamGrain>(SineStreams.Id(model, 1)).ResetAsync();

        var round = await training.TrainNowAsync();
        output.WriteLine($"round {round.RoundId}: {round.Decision} sampled {round.StreamsSampled} used {round.StreamsUsed}; {round.Reason}");
        Assert.Equal(streams, round.StreamsSampled);
        Assert.Equal(0, round.StreamsUnanswered);
        Assert.Equal(streams - 2, round.StreamsUsed);
        Assert.Equal((streams - 2) * TrainingCluster.UsedRows(rows), round.Rows);
        Assert.Contains(round.Decision, new[] { TrainingDecision.Accepted, TrainingDecision.Rejected });

        // The deleted stream is no longer this model's; the reset one still is (it is bound and will have data again).
        await TrainingFixture.WaitForRegistryAsync(Client, model, streams - 1);
        var next = await training.TrainNowAsync();
        Assert.Equal(streams - 1, next.StreamsSampled);
        Assert.Equal(streams - 2, next.StreamsUsed);
    }

    [Fact]
    public async Task Settings_changed_and_pause_during_a_round_take_effect_without_disturbing_it()
    {
        const int streams = 4, rows = 120;
        // No early stopping and the most epochs allowed: the round trains until its 3 s budget (10,000 epochs of these
        // few windows can take under 2 s).
        var during = Short with { Epochs = 100_000, Patience = 0, TimeBudget = TimeSpan.FromSeconds(3), BatchSize = 4 };
        var (_, grain, training) = await ModelWithStreamsAsync("pause-", streams, rows, during);
        long id = await training.StartRoundAsync();
        await Task.Delay(300);

        // Both controls answer while the round trains, and neither stops it.
        var changed = Short with { Period = TimeSpan.FromSeconds(2), WindowLength = 24 };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var configured = await training.ConfigureAsync(changed);
        var paused = await training.PauseAsync();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"the controls took {clock.Elapsed}");
        Assert.True(paused.Running);
        Assert.Equal(id, paused.RunningRoundId);
        Assert.Equal(changed, configured.Settings);
        Assert.Null(paused.NextDueAt);

        // The round finishes with the settings it started with (windows of 16, stride 8, a quarter of the rows held out).
        var record = await TestSupport.Eventually(() => training.GetRoundAsync(id), r => r is not null, TimeSpan.FromSeconds(30));
        Assert.NotNull(record);
        long trainRows = TrainingCluster.UsedRows(rows) - (long)Math.Floor(TrainingCluster.UsedRows(rows) * 0.25);
        Assert.Equal(streams * ((trainRows - 16) / 8 + 1), record.TrainWindows);

        // Paused stays paused: no scheduled round although the new period has long passed, manual ones refused.
        await Task.Delay(TimeSpan.FromSeconds(5));
        var status = await training.GetStatusAsync();
        Assert.True(status.Paused);
        Assert.False(status.Running);
        Assert.Equal(changed, status.Settings);
        Assert.Equal(new[] { id }, status.RecentRounds.Select(r => r.RoundId));
        await Assert.ThrowsAsync<ModelOperationException>(() => training.StartRoundAsync());
        Assert.Equal(record.PublishedVersion ?? 1, (await grain.GetInfoAsync()).ActiveVersion);
    }
}
