using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Training;
using Orleans.Runtime;
using Xunit.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

[Collection(TrainingCollection.Name)]
public sealed class TrainingGrainTests(TrainingFixture fixture, ITestOutputHelper output)
{
    private IClusterClient Client => fixture.Client;

    private static TrainingSettings Quick(float learningRate = 0.01f) => new(
        Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: 64, Epochs: 40, TimeBudget: TimeSpan.FromSeconds(5),
        LearningRate: learningRate, WindowLength: 24, Stride: 8, BatchSize: 32, ValidationFraction: 0.25, ClipNorm: 1f,
        Patience: 6, MaxRowsPerStream: 256);

    [Fact]
    public async Task Rounds_beat_persistence_and_every_silo_steps_with_the_published_version()
    {
        const string model = "sines";
        const int streams = 60;
        await Client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
        await SineStreams.IngestAsync(Client, model, streams, from: 0, count: 240);
        await TrainingFixture.WaitForRegistryAsync(Client, model, streams);

        var training = Client.GetGrain<ITrainingGrain>(model);
        await training.ConfigureAsync(Quick());
        TrainingRoundRecord? good = null;
        var records = new List<TrainingRoundRecord>();
        for (int round = 0; round < 6 && good is null; round++)
        {
            var r = await training.TrainNowAsync();
            records.Add(r);
            output.WriteLine($"round {r.RoundId}: {r.Decision} challenger {r.ChallengerValidationLoss:G4} champion {r.ChampionValidationLoss:G4} " +
                $"persistence {r.PersistenceValidationLoss:G4} train {r.ChallengerTrainLoss:G4}/{r.ChampionTrainLoss:G4} epochs {r.EpochsRun} " +
                $"streams {r.StreamsUsed}/{r.StreamsSampled} windows {r.TrainWindows} in {r.Duration.TotalSeconds:F1} s; {r.Reason}");
            Assert.NotEqual(TrainingDecision.Failed, r.Decision);
            Assert.Equal(streams, r.StreamsSampled);
            Assert.Equal(streams, r.StreamsUsed);
            Assert.Equal(streams * TrainingCluster.UsedRows(240), r.Rows);
            if (r.Decision == TrainingDecision.Accepted && r.ChallengerValidationLoss * 3 <= r.PersistenceValidationLoss) good = r;
        }
        Assert.NotNull(good);
        Assert.True(good.ChallengerValidationLoss < good.ChampionValidationLoss);

        // The accepted challenger is the active version, with the round in its metadata.
        var info = await Client.GetGrain<IModelGrain>(model).GetInfoAsync();
        Assert.Equal(good.PublishedVersion, info.ActiveVersion);
        var version = (await Client.GetGrain<IModelGrain>(model).ListVersionsAsync()).Single(v => v.Version == info.ActiveVersion);
        Assert.Equal(good.RoundId.ToString(), version.Metadata["training.round"]);

        // The rounds are recorded, in order.
        var status = await training.GetStatusAsync();
        Assert.Equal(records.Select(r => r.RoundId), status.RecentRounds.Select(r => r.RoundId));
        Assert.False(status.Running);

        // A further round measures the active version on the same held-out data as persistence: still 3x better.
        var check = await training.TrainNowAsync();
        Assert.Equal(info.ActiveVersion, check.ChampionVersion);
        Assert.True(check.ChampionValidationLoss * 3 <= check.PersistenceValidationLoss,
            $"active version {check.ChampionValidationLoss} vs persistence {check.PersistenceValidationLoss}");
        long active = (await Client.GetGrain<IModelGrain>(model).GetInfoAsync()).ActiveVersion;

        // Every stream, on every silo, steps with the active version (caches are pushed asynchronously: retry briefly).
        long t = 240;
        StepResult[] results = [];
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        do
        {
            long seq = t++;
            results = await Task.WhenAll(Enumerable.Range(0, streams).Select(s =>
                Client.GetGrain<IStreamGrain>(SineStreams.Id(model, s))
                    .IngestAsync(new Observation(seq, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(seq), [SineStreams.Value(s, seq)]))));
        } while (results.Any(r => r.WeightsVersion != active) && DateTime.UtcNow < deadline);
        Assert.All(results, r => Assert.Equal(active, r.WeightsVersion));

        var ids = Enumerable.Range(0, streams).Select(s => SineStreams.Id(model, s)).ToHashSet();
        var placements = await Client.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics();
        var silos = placements.Where(p => ids.Contains(p.GrainId.Key.ToString()!)).Select(p => p.SiloAddress).Distinct().Count();
        Assert.Equal(TrainingFixture.SiloCount, silos);
    }

    [Fact]
    public async Task Diverging_round_is_rejected_and_the_champion_stays()
    {
        const string model = "diverge";
        const int streams = 16;
        var modelGrain = Client.GetGrain<IModelGrain>(model);
        await modelGrain.CreateAsync(SineStreams.Config);
        await SineStreams.IngestAsync(Client, model, streams, from: 0, count: 160);
        await TrainingFixture.WaitForRegistryAsync(Client, model, streams);
        var before = await modelGrain.GetActiveWeightsAsync();

        var training = Client.GetGrain<ITrainingGrain>(model);
        await training.ConfigureAsync(Quick(learningRate: 1e6f) with { Epochs = 3, ClipNorm = 0f });
        var r = await training.TrainNowAsync();
        output.WriteLine($"{r.Decision}: {r.Reason} challenger {r.ChallengerValidationLoss} champion {r.ChampionValidationLoss}");

        Assert.Equal(TrainingDecision.Rejected, r.Decision);
        Assert.Null(r.PublishedVersion);
        Assert.True(double.IsFinite(r.ChampionValidationLoss));
        Assert.False(r.ChallengerValidationLoss < r.ChampionValidationLoss);
        var after = await modelGrain.GetActiveWeightsAsync();
        Assert.Equal(before.Version, after.Version);
        Assert.Equal(before.Parameters, after.Parameters);
        Assert.Single(await modelGrain.ListVersionsAsync());
        Assert.Equal(TrainingDecision.Rejected, (await training.GetStatusAsync()).RecentRounds.Single().Decision);

        var step = await Client.GetGrain<IStreamGrain>(SineStreams.Id(model, 0))
            .IngestAsync(new Observation(160, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(160), [1f]));
        Assert.Equal(before.Version, step.WeightsVersion);
    }

    [Fact]
    public async Task Controls_validate_settings_and_pause_removes_the_schedule()
    {
        const string model = "controls";
        await Assert.ThrowsAsync<ModelNotFoundException>(() => Client.GetGrain<ITrainingGrain>(model).GetStatusAsync());
        await Assert.ThrowsAsync<ModelNotFoundException>(() => Client.GetGrain<ITrainingGrain>(model).GetRoundAsync(1));
        await Client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
        var training = Client.GetGrain<ITrainingGrain>(model);
        var grainId = training.GetGrainId();

        var configured = await training.ConfigureAsync(Quick() with { Period = TimeSpan.FromHours(1) });
        Assert.NotNull(configured.NextDueAt);
        Assert.InRange(configured.NextDueAt!.Value - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(59), TimeSpan.FromHours(1));
        Assert.Single(SharedReminderTable.Of(TrainingFixture.ServiceId, grainId));

        foreach (var bad in new[]
        {
            Quick(float.NaN), Quick(-1f), Quick() with { WindowLength = 0 }, Quick() with { ValidationFraction = 0.95 },
            Quick() with { SampleSize = 0 }, Quick() with { Period = TimeSpan.FromSeconds(-1) }, Quick() with { TimeBudget = TimeSpan.Zero },
            Quick() with { MaxRowsPerStream = 10 },
            // No stream could ever be used (256 rows hold out none; 200 at 0.9 keep 20, less than a window of 24):
            // every round would be skipped, the first one never finishing its report.
            Quick() with { ValidationFraction = 1e-12 }, Quick() with { ValidationFraction = 0.9, MaxRowsPerStream = 200 },
            // Nor when the streams retain too few rows: this cluster's keep 256, 192 of them besides a held-out quarter,
            // fewer than a window of 240, however many rows a round would pull.
            Quick() with { WindowLength = 240, MaxRowsPerStream = 1000 },
            // The next round would be due past the end of the calendar.
            Quick() with { Period = TimeSpan.MaxValue }, Quick() with { Period = TrainingSettingsValidation.MaxPeriod + TimeSpan.FromDays(1) },
            // Shorter than this cluster's minimum reminder period (1 s): the schedule could not tick that often.
            Quick() with { Period = TimeSpan.FromMilliseconds(500) },
        })
        {
            var e = await Assert.ThrowsAsync<ModelOperationException>(() => training.ConfigureAsync(bad));
            output.WriteLine(e.Message);
        }
        Assert.Equal(configured.Settings, (await training.GetStatusAsync()).Settings);

        var paused = await training.PauseAsync();
        Assert.True(paused.Paused);
        Assert.Null(paused.NextDueAt);
        Assert.Empty(SharedReminderTable.Of(TrainingFixture.ServiceId, grainId));
        await Assert.ThrowsAsync<ModelOperationException>(() => training.TrainNowAsync());

        var resumed = await training.ResumeAsync();
        Assert.False(resumed.Paused);
        Assert.Equal(configured.NextDueAt, resumed.NextDueAt);
        Assert.Single(SharedReminderTable.Of(TrainingFixture.ServiceId, grainId));

        // No streams yet: a round is recorded as skipped, and nothing is published.
        Assert.Null(await training.GetRoundAsync(1));
        var r = await training.TrainNowAsync();
        Assert.Equal(TrainingDecision.Skipped, r.Decision);
        Assert.Equal(r, await training.GetRoundAsync(r.RoundId));
        Assert.Equal(1, (await Client.GetGrain<IModelGrain>(model).GetInfoAsync()).ActiveVersion);
    }
}
