using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Training;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.Serialization;
using Xunit.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// The schedule survives a full restart: every silo of a cluster is stopped and a new cluster is started on the same
/// ServiceId, grain state and reminders coming back from the shared stores. The training grain is not called after
/// the restart until the reminder alone has run a scheduled round.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class TrainingRestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Schedule_settings_and_rounds_survive_a_cluster_restart()
    {
        string serviceId = "lstm-training-restart-" + Guid.NewGuid().ToString("N")[..8];
        const string model = "restart";
        var settings = new TrainingSettings(Period: TimeSpan.FromHours(1), MinNewObservations: 0, SampleSize: 16, Epochs: 5,
            TimeBudget: TimeSpan.FromSeconds(3), LearningRate: 0.01f, WindowLength: 16, Stride: 8, MaxRowsPerStream: 128);

        GrainId grainId;
        TrainingStatus before;
        var first = await TrainingCluster.StartAsync(serviceId, silos: 2);
        try
        {
            var client = first.Client;
            await client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
            await SineStreams.IngestAsync(client, model, streams: 8, from: 0, count: 120);
            await TrainingFixture.WaitForRegistryAsync(client, model, 8);
            var training = client.GetGrain<ITrainingGrain>(model);
            grainId = training.GetGrainId();
            await training.ConfigureAsync(settings);
            var manual = await training.TrainNowAsync();
            Assert.Equal(TrainingTrigger.Manual, manual.Trigger);
            Assert.NotEqual(TrainingDecision.Failed, manual.Decision);
            // Next periodic round 20 s after the manual one: after the restart, not before.
            before = await training.ConfigureAsync(settings with { Period = TimeSpan.FromSeconds(20) });
            Assert.Equal(manual.StartedAt + TimeSpan.FromSeconds(20), before.NextDueAt);
        }
        finally
        {
            await first.StopAllSilosAsync();
            await first.DisposeAsync();
        }
        Assert.Single(SharedReminderTable.Of(serviceId, grainId));

        var second = await TrainingCluster.StartAsync(serviceId, silos: 2);
        try
        {
            var serializer = second.Silos[0].ServiceProvider.GetRequiredService<Serializer>();
            TrainingState? Peek() => SharedGrainStorage.Peek<TrainingState>(serviceId, "training", grainId, serializer);

            var stored = Peek();
            Assert.NotNull(stored);
            Assert.Equal(before.Settings, stored.Settings);
            Assert.Equal(before.NextDueAt, stored.NextDueAt);
            Assert.False(stored.Paused);
            Assert.Equal(before.RecentRounds.Select(r => r.RoundId), stored.Rounds.Select(r => r.RoundId));

            // Only the reminder can start this round: nobody calls the training grain.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while ((Peek()?.Rounds.Count ?? 0) <= before.RecentRounds.Length && DateTime.UtcNow < deadline) await Task.Delay(500);
            var after = Peek()!;
            Assert.Equal(before.RecentRounds.Length + 1, after.Rounds.Count);
            var scheduled = after.Rounds[^1];
            output.WriteLine($"scheduled round {scheduled.RoundId} at {scheduled.StartedAt:O} (due {before.NextDueAt:O}): {scheduled.Decision}, {scheduled.Reason}");
            Assert.Equal(TrainingTrigger.Schedule, scheduled.Trigger);
            Assert.True(scheduled.StartedAt >= before.NextDueAt);
            Assert.NotEqual(TrainingDecision.Failed, scheduled.Decision);
            Assert.Equal(before.RecentRounds[0], after.Rounds[0]);

            var status = await second.Client.GetGrain<ITrainingGrain>(model).GetStatusAsync();
            Assert.Equal(before.Settings, status.Settings);
            Assert.NotNull(status.NextDueAt);
            Assert.True(status.NextDueAt > scheduled.StartedAt);
        }
        finally
        {
            foreach (var line in CapturedLog.Lines.Where(l => l.Contains("Training"))) output.WriteLine("2: " + line);
            await second.StopAllSilosAsync();
            await second.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_paused_model_stays_paused_and_a_rollback_stays_active_after_a_cluster_restart()
    {
        string serviceId = "lstm-training-paused-" + Guid.NewGuid().ToString("N")[..8];
        const string model = "paused";
        // Due every 2 s (ticks every second): a schedule that came back after the restart would run within seconds.
        var settings = new TrainingSettings(Period: TimeSpan.FromSeconds(2), MinNewObservations: 0, SampleSize: 16, Epochs: 2,
            TimeBudget: TimeSpan.FromSeconds(2), LearningRate: 0.01f, WindowLength: 16, Stride: 8, MaxRowsPerStream: 128);

        GrainId grainId;
        TrainingStatus before;
        ModelVersionInfo[] versionsBefore;
        var first = await TrainingCluster.StartAsync(serviceId, silos: 1);
        try
        {
            var client = first.Client;
            var grain = client.GetGrain<IModelGrain>(model);
            var info = await grain.CreateAsync(SineStreams.Config);
            await SineStreams.IngestAsync(client, model, streams: 4, from: 0, count: 120);
            await TrainingFixture.WaitForRegistryAsync(client, model, 4);
            long v2 = await grain.PublishAsync(new PublishRequest(Enumerable.Repeat(0.01f, info.ParameterCount).ToArray(), "second"));
            await grain.PublishAsync(new PublishRequest(Enumerable.Repeat(0.02f, info.ParameterCount).ToArray(), "third"));
            await grain.ActivateAsync(v2);   // rollback
            versionsBefore = await grain.ListVersionsAsync();

            var training = client.GetGrain<ITrainingGrain>(model);
            grainId = training.GetGrainId();
            await training.ConfigureAsync(settings with { Period = TimeSpan.FromHours(1) });
            await training.TrainNowAsync();
            await training.ConfigureAsync(settings);
            before = await training.PauseAsync();
            Assert.True(before.Paused);
            Assert.Single(before.RecentRounds);
        }
        finally
        {
            await first.StopAllSilosAsync();
            await first.DisposeAsync();
        }
        Assert.Empty(SharedReminderTable.Of(serviceId, grainId));

        var second = await TrainingCluster.StartAsync(serviceId, silos: 1);
        try
        {
            var client = second.Client;
            var grain = client.GetGrain<IModelGrain>(model);
            var info = await grain.GetInfoAsync();
            long active = before.RecentRounds[0].PublishedVersion ?? 2;   // the manual round may have replaced the rollback
            Assert.Equal(active, info.ActiveVersion);
            var versions = await grain.ListVersionsAsync();
            Assert.Equal(versionsBefore.Select(v => (v.Version, v.Description)), versions.Take(versionsBefore.Length).Select(v => (v.Version, v.Description)));
            // Streams on the new cluster step with the active version.
            var step = await client.GetGrain<IStreamGrain>(SineStreams.Id(model, 0))
                .IngestAsync(new Observation(120, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(120), [SineStreams.Value(0, 120)]));
            Assert.Equal(active, step.WeightsVersion);

            var training = client.GetGrain<ITrainingGrain>(model);
            var status = await training.GetStatusAsync();
            Assert.True(status.Paused);
            Assert.Equal(settings, status.Settings);
            Assert.Equal(before.RecentRounds, status.RecentRounds);
            await Assert.ThrowsAsync<ModelOperationException>(() => training.StartRoundAsync());
            // Several periods and ticks later: no reminder came back and no round ran.
            await Task.Delay(TimeSpan.FromSeconds(5));
            Assert.Empty(SharedReminderTable.Of(serviceId, grainId));
            Assert.Equal(before.RecentRounds, (await training.GetStatusAsync()).RecentRounds);

            // Resumed, the schedule runs again on its own.
            await training.ResumeAsync();
            Assert.Single(SharedReminderTable.Of(serviceId, grainId));
            var resumed = await TestSupport.Eventually(training.GetStatusAsync, s => s.RecentRounds.Length > before.RecentRounds.Length, TimeSpan.FromSeconds(30));
            Assert.Equal(TrainingTrigger.Schedule, resumed.RecentRounds[^1].Trigger);
        }
        finally
        {
            await second.StopAllSilosAsync();
            await second.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_schedule_carries_on_when_the_silo_hosting_the_training_grain_stops()
    {
        string serviceId = "lstm-training-failover-" + Guid.NewGuid().ToString("N")[..8];
        const string model = "failover";
        var settings = new TrainingSettings(Period: TimeSpan.FromHours(1), MinNewObservations: 0, SampleSize: 16, Epochs: 2,
            TimeBudget: TimeSpan.FromSeconds(2), LearningRate: 0.01f, WindowLength: 16, Stride: 8, MaxRowsPerStream: 128);
        var cluster = await TrainingCluster.StartAsync(serviceId, silos: 2);
        try
        {
            var client = cluster.Client;
            await client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
            await SineStreams.IngestAsync(client, model, streams: 4, from: 0, count: 120);
            await TrainingFixture.WaitForRegistryAsync(client, model, 4);
            var training = client.GetGrain<ITrainingGrain>(model);
            var manual = await training.TrainNowAsync();
            // Next periodic round 6 s after the manual one: after the host silo is gone.
            var configured = await training.ConfigureAsync(settings with { Period = TimeSpan.FromSeconds(6) });

            var host = await client.GetGrain<IManagementGrain>(0).GetActivationAddress(training);
            Assert.NotNull(host);
            var hostSilo = cluster.Silos.Single(s => s.SiloAddress.Equals(host));
            output.WriteLine($"training grain on {host} (primary: {ReferenceEquals(hostSilo, cluster.Silos[0])})");
            await cluster.StopSiloAsync(hostSilo);

            // Nobody calls the training grain: the reminder, now owned by the surviving silo, runs the round there.
            var serializer = cluster.Silos[0].ServiceProvider.GetRequiredService<Serializer>();
            var grainId = training.GetGrainId();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            TrainingState? stored = null;
            while (DateTime.UtcNow < deadline && (stored = SharedGrainStorage.Peek<TrainingState>(serviceId, "training", grainId, serializer))!.Rounds.Count < 2)
                await Task.Delay(500);
            Assert.NotNull(stored);
            Assert.Equal(2, stored.Rounds.Count);
            var scheduled = stored.Rounds[^1];
            output.WriteLine($"scheduled round {scheduled.RoundId} at {scheduled.StartedAt:O} (due {configured.NextDueAt:O}): {scheduled.Decision}");
            Assert.Equal(TrainingTrigger.Schedule, scheduled.Trigger);
            Assert.Equal(manual.RoundId + 1, scheduled.RoundId);
            Assert.True(scheduled.StartedAt >= configured.NextDueAt);
            Assert.NotEqual(TrainingDecision.Failed, scheduled.Decision);
            Assert.NotEqual(host, await client.GetGrain<IManagementGrain>(0).GetActivationAddress(training));
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }
}
