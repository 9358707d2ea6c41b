using LstmOrleans.Abstractions;
using Xunit.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

[Collection(TrainingCollection.Name)]
public sealed class CalendarTrainingTests(TrainingFixture fixture, ITestOutputHelper output)
{
    private IClusterClient Client => fixture.Client;

    /// <summary>Hourly load that follows the time of day (plus a per-stream level and noise).</summary>
    private static float Load(int stream, long t) =>
        (float)(10 + stream + 4 * Math.Sin(2 * Math.PI * (t % 24) / 24.0) + 0.3 * Math.Sin(1.7 * t + stream));

    [Fact]
    public async Task A_round_trains_on_the_values_and_calendar_columns_and_publishes_a_model_of_the_same_shape()
    {
        const string model = "calendar-sines";
        const int streams = 6, rows = 200;
        var config = new ModelConfig(InputSize: 1, HiddenSize: 8, Layers: 1, Horizons: 2, Features: ["load"], Seed: 3,
            CalendarFeatures: ["hour_sin", "hour_cos"]);
        var modelGrain = Client.GetGrain<IModelGrain>(model);
        await modelGrain.CreateAsync(config);
        var start = new DateTimeOffset(2026, 3, 2, 0, 0, 0, TimeSpan.Zero);
        await Task.WhenAll(Enumerable.Range(0, streams).Select(async s =>
        {
            var grain = Client.GetGrain<IStreamGrain>($"{model}/meter-{s}");
            await grain.BindAsync(model);
            await grain.IngestBatchAsync(Enumerable.Range(0, rows).Select(t => new Observation(t, start.AddHours(t), [Load(s, t)])).ToArray());
        }));
        await TrainingFixture.WaitForRegistryAsync(Client, model, streams);

        var training = Client.GetGrain<ITrainingGrain>(model);
        await training.ConfigureAsync(new TrainingSettings(Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: 16, Epochs: 30,
            TimeBudget: TimeSpan.FromSeconds(4), LearningRate: 0.01f, WindowLength: 24, Stride: 4, BatchSize: 16,
            ValidationFraction: 0.25, Patience: 0, MaxRowsPerStream: 256));
        var round = await training.TrainNowAsync();
        output.WriteLine($"{round.Decision}: challenger {round.ChallengerValidationLoss:G4} champion {round.ChampionValidationLoss:G4} " +
            $"persistence {round.PersistenceValidationLoss:G4}, {round.EpochsRun} epochs; {round.Reason}");

        // Every stream's window (3 columns: value, hour_sin, hour_cos) was usable and the challenger learned something.
        Assert.Equal(streams, round.StreamsUsed);
        Assert.Equal(streams * TrainingCluster.UsedRows(rows), round.Rows);
        Assert.True(round.Decision == TrainingDecision.Accepted, round.Reason);
        Assert.True(round.ChallengerValidationLoss < round.ChampionValidationLoss);

        // The published version has the calendar model's shape and the streams step with it.
        var weights = await modelGrain.GetActiveWeightsAsync();
        Assert.Equal(round.PublishedVersion, weights.Version);
        Assert.Equal((await modelGrain.GetInfoAsync()).ParameterCount, weights.Parameters.Length);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        StepResult step;
        long seq = rows;
        do
        {
            step = await Client.GetGrain<IStreamGrain>($"{model}/meter-0").IngestAsync(new Observation(seq, start.AddHours(seq), [Load(0, seq)]));
            seq++;
        } while (step.WeightsVersion != weights.Version && DateTime.UtcNow < deadline);
        Assert.Equal(weights.Version, step.WeightsVersion);
        Assert.All(step.Predictions, p => Assert.True(float.IsFinite(p)));
    }
}
