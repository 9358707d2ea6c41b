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
}
