using System.Text.Json;
using LstmOrleans.Abstractions;
using LstmOrleans.Client.Evaluate;
using LstmOrleans.Client.Offline;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;
using Xunit;

namespace LstmOrleans.Client.Tests.Evaluate;

/// <summary>`evaluate --calendar`: the streams of the evaluated model feed time-of-day and day-of-week features.</summary>
public sealed class EvaluateCalendarTests
{
    [Fact]
    public async Task Calendar_replay_feeds_the_offline_encoders_calendar_columns_and_trains_on_them()
    {
        var settings = new EvaluationSettings(Hidden: 8, Layers: 1, Horizons: 2, Window: 16, LearningRate: 1e-2f, Epochs: 3, Warmup: 100,
            RefitEvery: 100, RefitPeriod: null, History: 128, TimeBudget: TimeSpan.FromMinutes(10), Stride: 8, BatchSize: 16, Calendar: true);
        var series = EvaluationData.LoadFile(EvaluateCli.DataFile("machine_temperature_600.csv"), new SliceOptions(null, 1, 0, 300));
        await using var cluster = await EvaluationCluster.StartAsync(settings.History, CancellationToken.None);
        var result = await new EvaluationReplay(cluster, settings).RunAsync([series], CancellationToken.None);

        var info = await cluster.Grains.GetGrain<IModelGrain>(EvaluationReplay.ModelName).GetInfoAsync();
        Assert.Equal(1, info.Config.InputSize);
        Assert.Equal(5, info.Config.ModelInputSize);
        Assert.Equal([99, 199], result.Rounds.Select(r => r.AfterStep));
        Assert.All(result.Rounds, r => Assert.Equal(1, r.Record.StreamsUsed));
        Assert.Contains(result.Rounds, r => r.Record.Decision == TrainingDecision.Accepted);
        Assert.All(result.Streams[0].Predictions, p => Assert.True(float.IsFinite(p)));

        // The stream's stored inputs: its normalised value, then exactly what the offline encoder derives from the
        // CSV timestamp of that row (the model file format's definition of the calendar features).
        var window = await cluster.Grains.GetGrain<IStreamGrain>(series.Name).GetTrainingWindowAsync(int.MaxValue);
        Assert.Equal(5, window.InputSize);
        Assert.Equal(128, window.Rows);
        var encoder = new ModelInputEncoder(new LstmConfig(5, 8, 1, 2), new ModelMetadata
        {
            CalendarFeatures = [CalendarFeature.HourSin, CalendarFeature.HourCos, CalendarFeature.WeekdaySin, CalendarFeature.WeekdayCos],
        });
        var x = new float[5];
        for (int i = 0; i < window.Rows; i++)
        {
            int t = series.Length - window.Rows + i;
            encoder.Encode(series.Timestamps[t], [window.Inputs[i * 5]], x);
            Assert.Equal(x, window.Inputs.AsSpan(i * 5, 5).ToArray());
        }
        // ...and the calendar columns really vary over the slice (5-minute rows over about a day).
        Assert.Equal(window.Rows, Enumerable.Range(0, window.Rows).Select(i => (window.Inputs[i * 5 + 1], window.Inputs[i * 5 + 2])).Distinct().Count());
    }

    [Fact]
    public async Task Evaluate_with_calendar_and_residual_reports_them_in_the_settings()
    {
        string file = EvaluateCli.DataFile("ec2_cpu_utilization_5f5533_600.csv");
        var result = await EvaluateCli.RunAsync("evaluate", "--data", file, "--until-step", "300", "--warmup", "200", "--refit-every", "200",
            "--horizon", "1", "--hidden", "8", "--window", "16", "--epochs", "2", "--history", "128", "--calendar", "--residual", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.True(json.RootElement.GetProperty("settings").GetProperty("calendar").GetBoolean());
        Assert.True(json.RootElement.GetProperty("settings").GetProperty("residual").GetBoolean());
        var refit = Assert.Single(json.RootElement.GetProperty("refits").EnumerateArray().ToArray());
        Assert.NotEqual("Failed", refit.GetProperty("decision").GetString());
        Assert.NotEqual("Skipped", refit.GetProperty("decision").GetString());
    }
}
