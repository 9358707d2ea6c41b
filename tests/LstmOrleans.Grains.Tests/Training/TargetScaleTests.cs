using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Training;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// The per-row statistics a round recovers from a stream's training window (<see cref="StreamTrainingView.TargetScale"/>)
/// against the stream's running statistics computed forward here, on a real stream grain with a level shift.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class TargetScaleTests(TrainingFixture fixture)
{
    private static float Value(int t) => (float)(20 + 3 * Math.Sin(t / 7.0) + (t >= 300 ? 40 : 0) + 0.1 * ((t * 37) % 11));

    [Fact]
    public async Task Recovered_statistics_match_the_streams_running_statistics_row_by_row()
    {
        const string model = "target-scale";
        const int n = 400, window = 128;
        await fixture.Client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
        var stream = fixture.Client.GetGrain<IStreamGrain>(model + "/level-shift");
        await stream.BindAsync(model);
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        await stream.IngestBatchAsync(Enumerable.Range(0, n).Select(t => new Observation(t, start.AddMinutes(t), [Value(t)])).ToArray());

        var w = await stream.GetTrainingWindowAsync(window);
        Assert.Equal(window, w.Rows);
        var scale = StreamTrainingView.TargetScale(w, 0);
        Assert.NotNull(scale);

        // Forward: the stream's own definition (Welford, population variance, statistics include the row).
        double mean = 0, m2 = 0;
        for (int t = 0; t < n; t++)
        {
            double x = Value(t);
            double delta = x - mean;
            mean += delta / (t + 1);
            m2 += delta * (x - mean);
            int row = t - (n - window);
            if (row < 0) continue;
            double std = Math.Sqrt(m2 / (t + 1));
            Assert.True(Math.Abs(scale.Mean[row] - mean) <= 1e-6 * Math.Abs(mean), $"row {row}: mean {scale.Mean[row]} vs {mean}");
            Assert.True(Math.Abs(scale.Std[row] - std) <= 1e-5 * std, $"row {row}: std {scale.Std[row]} vs {std}");
            // And the stored input is that row's value in those statistics.
            Assert.Equal((float)((x - mean) / std), w.Inputs[row], 1e-5f);
        }
        // The shift moved the statistics inside the window: scaling targets by row is not a no-op here.
        Assert.True(scale.Std[^1] > 1.2 * scale.Std[0]);
    }

    [Fact]
    public void A_window_longer_than_the_streams_count_has_no_scale()
    {
        var w = new StreamTrainingWindow("s", "m", 1, 1, [0f, 1f, 2f], 1, 3, StepCount: 2, Mean: [1.0], Std: [1.0]);
        Assert.Null(StreamTrainingView.TargetScale(w, 0));
        Assert.Null(StreamTrainingView.TargetScale(w with { Inputs = [], StepCount = 5 }, 0));
    }
}
