using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Training;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;
using Xunit.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// The training grain's activation dies in the middle of a round: the only silo is killed (no deactivation, nothing
/// more written) while the round is held at its first step, and a new cluster comes up on the same ServiceId, the
/// grain's state coming back from the shared store as from a database.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class TrainingCrashTests(ITestOutputHelper output)
{
    // No schedule (so only the test starts rounds) and no streams (so every round is a quick Skipped round).
    private static TrainingSettings Manual => new(
        Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: 16, Epochs: 2, TimeBudget: TimeSpan.FromSeconds(2),
        LearningRate: 0.01f, WindowLength: 16, Stride: 8, MaxRowsPerStream: 128);

    private static Task<InProcessTestCluster> StartAsync(string serviceId) =>
        TrainingCluster.StartAsync(serviceId, silos: 1,
            configureSilo: silo =>
            {
                silo.AddOutgoingGrainCallFilter<HeldCallFilter>();
                silo.Services.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(3));
            },
            configureClient: client => client.Services.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(3)));

    /// <summary>
    /// A model with one round recorded and a second one started (its id handed out, shown as running) and held at its
    /// first step when the only silo is killed; then a new cluster on the same ServiceId. Returns the new cluster and the
    /// ids handed out before the crash (the interrupted round's last).
    /// </summary>
    private static async Task<(InProcessTestCluster Cluster, TestHold Hold, List<long> HandedOut)> CrashMidRoundAsync(string model)
    {
        string serviceId = "lstm-training-crash-" + Guid.NewGuid().ToString("N")[..8];
        var handedOut = new List<long>();
        var first = await StartAsync(serviceId);
        TestHold hold;
        try
        {
            var client = first.Client;
            await client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
            var training = client.GetGrain<ITrainingGrain>(model);
            await training.ConfigureAsync(Manual);
            handedOut.Add((await training.TrainNowAsync()).RoundId);   // a round recorded normally

            // The next round is held at its first step (the registry's counts): started, its id handed out and shown as
            // running, nothing of it recorded. Then the silo dies.
            var shard = client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(model, 0));
            hold = HeldCallFilter.Hold(shard.GetGrainId(), nameof(IStreamRegistryShardGrain.GetStatsAsync)).ReleaseAfter(TimeSpan.FromMinutes(2));
            long started = await training.StartRoundAsync();
            handedOut.Add(started);
            await hold.Entered.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(started, (await training.GetStatusAsync()).RunningRoundId);
        }
        catch
        {
            await first.DisposeAsync();
            throw;
        }
        await TrainingCluster.CrashAsync(first);
        return (await StartAsync(serviceId), hold, handedOut);
    }

    [Fact]
    public async Task A_round_id_handed_out_before_a_crash_is_never_given_to_another_round()
    {
        const string model = "crash";
        var (second, hold, handedOut) = await CrashMidRoundAsync(model);
        try
        {
            var training = second.Client.GetGrain<ITrainingGrain>(model);
            Assert.False((await training.GetStatusAsync()).Running);
            long next = await training.StartRoundAsync();
            var record = await TestSupport.Eventually(() => training.GetRoundAsync(next), r => r is not null, TimeSpan.FromSeconds(30));
            output.WriteLine($"handed out before the crash: {string.Join(", ", handedOut)}; after: {next} ({record?.Decision})");
            Assert.DoesNotContain(next, handedOut);
            Assert.True(next > handedOut.Max(), $"round {next} after rounds {string.Join(", ", handedOut)}");
            Assert.NotNull(record);
            Assert.Equal(TrainingDecision.Skipped, record.Decision);
        }
        finally
        {
            await second.StopAllSilosAsync();
            await second.DisposeAsync();
            // Only now: let go, the dead silo's round could still write its own record over the shared store.
            hold.Release();
        }
    }

    [Fact]
    public async Task A_round_that_published_its_version_just_before_a_crash_is_recorded_with_that_version()
    {
        const string model = "published-then-crashed";
        string serviceId = "lstm-training-crash-" + Guid.NewGuid().ToString("N")[..8];
        var first = await StartAsync(serviceId);
        TestHold answer;
        long round;
        ModelVersionInfo published;
        try
        {
            var client = first.Client;
            var modelGrain = client.GetGrain<IModelGrain>(model);
            await modelGrain.CreateAsync(SineStreams.Config);
            await SineStreams.IngestAsync(client, model, streams: 6, from: 0, count: 200);
            await TrainingFixture.WaitForRegistryAsync(client, model, 6);
            var training = client.GetGrain<ITrainingGrain>(model);
            // A first round from the untrained version 1, with epochs enough to beat it (as in the calendar test).
            await training.ConfigureAsync(new TrainingSettings(Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: 16, Epochs: 30,
                TimeBudget: TimeSpan.FromSeconds(4), LearningRate: 0.01f, WindowLength: 24, Stride: 4, BatchSize: 16,
                ValidationFraction: 0.25, Patience: 0, MaxRowsPerStream: 256));

            // The publish is made and stored, but the round does not hear back: it has published and not yet recorded
            // anything when the silo dies.
            answer = HeldCallFilter.HoldResponse(modelGrain.GetGrainId(), nameof(IModelGrain.PublishAsync)).ReleaseAfter(TimeSpan.FromMinutes(3));
            round = await training.StartRoundAsync();
            if (await Task.WhenAny(answer.Entered, Task.Delay(TimeSpan.FromSeconds(90))) != answer.Entered)
                Assert.Fail($"round {round} published nothing: {(await training.GetRoundAsync(round))?.Reason ?? "still running"}");
            published = (await modelGrain.ListVersionsAsync()).Single(v => v.Metadata.GetValueOrDefault("training.round") == round.ToString());
            Assert.Null(await training.GetRoundAsync(round));
        }
        catch
        {
            await first.DisposeAsync();
            throw;
        }
        await TrainingCluster.CrashAsync(first);

        var second = await StartAsync(serviceId);
        try
        {
            var training = second.Client.GetGrain<ITrainingGrain>(model);
            var record = await training.GetRoundAsync(round);
            Assert.NotNull(record);
            output.WriteLine($"round {record.RoundId}: {record.Decision} published {record.PublishedVersion}; {record.Reason}");
            Assert.Equal(TrainingDecision.Accepted, record.Decision);
            Assert.Equal(published.Version, record.PublishedVersion);
            Assert.Equal(1, record.ChampionVersion);
            Assert.Equal(TrainingTrigger.Manual, record.Trigger);
            Assert.Equal(double.Parse(published.Metadata["training.validationLoss"], System.Globalization.CultureInfo.InvariantCulture), record.ChallengerValidationLoss);
            Assert.True(record.ChallengerValidationLoss < record.ChampionValidationLoss);
            Assert.Equal(6, record.StreamsUsed);
            Assert.Contains($"version {published.Version}", record.Reason);
            Assert.Equal(published.Version, (await second.Client.GetGrain<IModelGrain>(model).GetInfoAsync()).ActiveVersion);
            Assert.False((await training.GetStatusAsync()).Running);
        }
        finally
        {
            await second.StopAllSilosAsync();
            await second.DisposeAsync();
            // Only now: let go, the dead silo's round could still write its own record over the shared store.
            answer.Release();
        }
    }

    [Fact]
    public async Task A_round_cut_short_by_a_crash_is_recorded_as_failed_so_its_id_does_not_stay_running_or_unknown()
    {
        const string model = "interrupted";
        var (second, hold, handedOut) = await CrashMidRoundAsync(model);
        try
        {
            var training = second.Client.GetGrain<ITrainingGrain>(model);
            long interrupted = handedOut[^1];
            var record = await training.GetRoundAsync(interrupted);
            Assert.NotNull(record);
            output.WriteLine($"round {record.RoundId}: {record.Decision}; {record.Reason}");
            Assert.Equal(TrainingDecision.Failed, record.Decision);
            Assert.Equal(TrainingTrigger.Manual, record.Trigger);
            Assert.Contains("Interrupted", record.Reason);
            Assert.Null(record.PublishedVersion);
            var status = await training.GetStatusAsync();
            Assert.False(status.Running);
            Assert.Equal(handedOut, status.RecentRounds.Select(r => r.RoundId));

            // Recorded once: the rounds after it are numbered on and recorded normally.
            var next = await training.TrainNowAsync();
            Assert.Equal(interrupted + 1, next.RoundId);
            Assert.Equal([.. handedOut, next.RoundId], (await training.GetStatusAsync()).RecentRounds.Select(r => r.RoundId));
        }
        finally
        {
            await second.StopAllSilosAsync();
            await second.DisposeAsync();
            // Only now: let go, the dead silo's round could still write its own record over the shared store.
            hold.Release();
        }
    }
}
