using Xunit;
using System.CommandLine;
using System.Runtime.CompilerServices;
using System.Text.Json;
using LstmOrleans.Abstractions;
using LstmOrleans.Client.Evaluate;
using LstmOrleans.Client.Offline;

namespace LstmOrleans.Client.Tests.Evaluate;

/// <summary>Runs `evaluate` in-process and returns its exit code and output.</summary>
internal static class EvaluateCli
{
    public static async Task<CliResult> RunAsync(params string[] args)
    {
        var root = new RootCommand("test root");
        root.Subcommands.Add(EvaluateCommand.Create());
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = await root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr });
        return new CliResult(exit, stdout.ToString(), stderr.ToString());
    }

    public static string DataFile(string name, [CallerFilePath] string source = "") =>
        Path.Combine(Path.GetDirectoryName(source)!, "data", name);
}

public sealed class RefitScheduleTests
{
    private static EvaluationSettings Settings(int warmup, int? every, TimeSpan? period) =>
        new(4, 1, 1, 8, 1e-3f, 1, warmup, every, period, 64, TimeSpan.FromSeconds(10));

    private static EvaluationSeries Hourly(string name, int n) =>
        new(name, Enumerable.Range(0, n).Select(t => new DateTime(2020, 1, 1).AddHours(t)).ToArray(), new float[n], n);

    [Fact]
    public void Refits_follow_the_warmup_then_every_n_steps_and_never_after_the_last_step()
    {
        var steps = EvaluationReplay.RefitSteps([Hourly("a", 30)], Settings(10, 5, null));
        Assert.Equal([9, 14, 19, 24], steps);
    }

    [Fact]
    public void Refits_by_series_time_use_the_timestamps()
    {
        // hourly rows, refit every 6 h after the warm-up refit at step 9 (9 h): 15, 21, 27
        var steps = EvaluationReplay.RefitSteps([Hourly("a", 30)], Settings(10, null, TimeSpan.FromHours(6)));
        Assert.Equal([9, 15, 21, 27], steps);
        // a stream twice as dense reaches 6 h of series time later in steps; the longest-running clock decides
        var halfHourly = new EvaluationSeries("b", Enumerable.Range(0, 30).Select(t => new DateTime(2021, 5, 1).AddMinutes(30 * t)).ToArray(), new float[30], 30);
        Assert.Equal([9, 21], EvaluationReplay.RefitSteps([halfHourly], Settings(10, null, TimeSpan.FromHours(6))));
        Assert.Equal([9, 15, 21, 27], EvaluationReplay.RefitSteps([halfHourly, Hourly("a", 30)], Settings(10, null, TimeSpan.FromHours(6))));
    }

    [Theory]
    [InlineData("7d", 7 * 24 * 60)]
    [InlineData("12h", 12 * 60)]
    [InlineData("30m", 30)]
    [InlineData("1.00:00:00", 24 * 60)]
    public void Durations_parse(string text, double minutes) =>
        Assert.Equal(TimeSpan.FromMinutes(minutes), EvaluateCommand.ParseDuration(text));

    [Theory]
    [InlineData("0d")]
    [InlineData("-1h")]
    [InlineData("soon")]
    public void Bad_durations_are_refused(string text) =>
        Assert.Throws<CliException>(() => EvaluateCommand.ParseDuration(text));
}

/// <summary>The replay on a real in-process cluster.</summary>
public sealed class EvaluateReplayTests
{
    private static EvaluationSettings SmallSettings(int warmup, int every) =>
        new(Hidden: 8, Layers: 1, Horizons: 2, Window: 16, LearningRate: 1e-2f, Epochs: 3, Warmup: warmup, RefitEvery: every,
            RefitPeriod: null, History: 128, TimeBudget: TimeSpan.FromMinutes(10), Stride: 8, BatchSize: 16);

    private static EvaluationSeries Slice(string file, int rows)
    {
        var full = EvaluationData.LoadFile(EvaluateCli.DataFile(file), new SliceOptions(null, 1, 0, rows));
        Assert.Equal(rows, full.Length);
        return full;
    }

    private static async Task<ReplayResult> ReplayAsync(EvaluationSeries series, EvaluationSettings settings)
    {
        await using var cluster = await EvaluationCluster.StartAsync(settings.History, CancellationToken.None);
        return await new EvaluationReplay(cluster, settings).RunAsync([series], CancellationToken.None);
    }

    [Fact]
    public async Task Changing_values_after_step_t_never_changes_a_prediction_made_at_or_before_t()
    {
        const int t = 200;
        var settings = SmallSettings(warmup: 100, every: 50);   // refits after steps 99, 149, 199, 249
        var original = Slice("machine_temperature_600.csv", 300);
        var altered = original with { Values = original.Values.Select((v, i) => i > t ? v * 3 + 50 : v).ToArray() };

        var a = await ReplayAsync(original, settings);
        var b = await ReplayAsync(altered, settings);

        // The refits before t really trained and published new weights, so the check below covers training too.
        Assert.Equal([99, 149, 199, 249], a.Rounds.Select(r => r.AfterStep));
        Assert.Contains(a.Rounds.Where(r => r.AfterStep < t), r => r.Record.Decision == TrainingDecision.Accepted);
        var sa = a.Streams[0];
        var sb = b.Streams[0];
        Assert.True(sa.WeightsVersions[t] > 1, "the forecasts at t were made with refitted weights");

        int k = settings.Horizons;
        for (int row = 0; row <= t; row++)
        {
            Assert.True(sa.WeightsVersions[row] == sb.WeightsVersions[row],
                $"weights version at step {row}: {sa.WeightsVersions[row]} vs {sb.WeightsVersions[row]}; rounds " +
                string.Join("; ", a.Rounds.Select(r => $"{r.AfterStep} {r.Record.Decision} {r.Record.Reason}")) + " | " +
                string.Join("; ", b.Rounds.Select(r => $"{r.AfterStep} {r.Record.Decision} {r.Record.Reason}")));
            for (int h = 0; h < k; h++)
                Assert.True(sa.Predictions[row * k + h] == sb.Predictions[row * k + h],
                    $"prediction at step {row}, horizon {h + 1} changed: {sa.Predictions[row * k + h]} vs {sb.Predictions[row * k + h]}");
        }
        // ...and the alteration is visible right after t, so the comparison above could have failed.
        Assert.NotEqual(sa.Predictions[(t + 1) * k], sb.Predictions[(t + 1) * k]);
    }

    [Fact]
    public async Task Evaluate_end_to_end_on_a_real_slice_reports_consistent_scores()
    {
        string file = EvaluateCli.DataFile("ec2_cpu_utilization_5f5533_600.csv");
        var result = await EvaluateCli.RunAsync("evaluate", "--data", file, "--warmup", "200", "--refit-every", "200", "--horizon", "2",
            "--hidden", "8", "--window", "16", "--epochs", "3", "--history", "128", "--lr", "0.01", "--ma-window", "6", "--season", "12", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        Assert.Equal([199, 399], root.GetProperty("refits").EnumerateArray().Select(r => r.GetProperty("afterStep").GetInt32()));

        var stream = Assert.Single(root.GetProperty("streams").EnumerateArray().ToArray());
        Assert.Equal(600, stream.GetProperty("steps").GetInt32());
        Assert.Equal(200, stream.GetProperty("firstScoredOrigin").GetInt32());
        Assert.Equal(12, stream.GetProperty("season").GetInt32());

        // The baselines recomputed here straight from the CSV, independently of the command.
        var table = SensorCsv.Read(file);
        var values = Enumerable.Range(0, table.RowCount).Select(r => (double)table.Values[r]).ToArray();
        foreach (var horizon in stream.GetProperty("horizons").EnumerateArray())
        {
            int h = horizon.GetProperty("horizon").GetInt32();
            double persistenceAbs = 0, seasonalSq = 0, averageAbs = 0, actualAbs = 0;
            int count = 0;
            for (int t = 200; t + h < 600; t++)
            {
                double actual = values[t + h];
                persistenceAbs += Math.Abs(actual - values[t]);
                double seasonal = values[t + h - 12];                      // h <= 12: one season back
                seasonalSq += (actual - seasonal) * (actual - seasonal);
                double average = (values[t - 5] + values[t - 4] + values[t - 3] + values[t - 2] + values[t - 1] + values[t]) / 6;
                averageAbs += Math.Abs(actual - average);
                actualAbs += Math.Abs(actual);
                count++;
            }
            var model = horizon.GetProperty("model");
            Assert.Equal(count, model.GetProperty("count").GetInt32());
            Assert.Equal(persistenceAbs / count, horizon.GetProperty("persistence").GetProperty("mae").GetDouble(), 6);
            Assert.Equal(persistenceAbs / actualAbs, horizon.GetProperty("persistence").GetProperty("wape").GetDouble(), 6);
            Assert.Equal(Math.Sqrt(seasonalSq / count), horizon.GetProperty("seasonalNaive").GetProperty("rmse").GetDouble(), 6);
            Assert.Equal(averageAbs / count, horizon.GetProperty("movingAverage").GetProperty("mae").GetDouble(), 6);
            double modelRmse = model.GetProperty("rmse").GetDouble();
            Assert.True(double.IsFinite(modelRmse) && modelRmse > 0);
            Assert.Equal(modelRmse / horizon.GetProperty("persistence").GetProperty("rmse").GetDouble(),
                model.GetProperty("rmseRatioToPersistence").GetDouble(), 9);
        }
    }

    [Fact]
    public async Task Evaluate_on_a_folder_shares_one_model_and_prints_per_stream_and_overall_tables()
    {
        using var dir = new TempDir();
        File.Copy(EvaluateCli.DataFile("ec2_cpu_utilization_5f5533_600.csv"), dir.File("cpu.csv"));
        File.Copy(EvaluateCli.DataFile("machine_temperature_600.csv"), dir.File("temperature.csv"));
        var result = await EvaluateCli.RunAsync("evaluate", "--data", dir.Path, "--until-step", "400", "--warmup", "200", "--refit-every", "100",
            "--horizon", "1", "--hidden", "8", "--window", "16", "--epochs", "2", "--history", "128");
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("cpu: 400 steps", result.Stdout);
        Assert.Contains("temperature: 400 steps", result.Stdout);
        Assert.Contains("Per stream: RMSE as a ratio of persistence's", result.Stdout);
        Assert.Contains("Overall over 2 streams", result.Stdout);
        Assert.Contains("refit after step 199", result.Stderr);
        Assert.Contains("refit after step 299", result.Stderr);
    }

    [Fact]
    public async Task Bad_arguments_fail_with_a_message_and_no_cluster()
    {
        string file = EvaluateCli.DataFile("ec2_cpu_utilization_5f5533_600.csv");
        var tooShort = await EvaluateCli.RunAsync("evaluate", "--data", file, "--warmup", "599", "--horizon", "3");
        Assert.Equal(2, tooShort.ExitCode);
        Assert.Contains("need at least 603", tooShort.Stderr);

        var missing = await EvaluateCli.RunAsync("evaluate", "--data", "/no/such/file.csv");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("neither a CSV file nor a folder", missing.Stderr);

        var badWindow = await EvaluateCli.RunAsync("evaluate", "--data", file, "--window", "256", "--history", "128");
        Assert.Equal(2, badWindow.ExitCode);
        Assert.Contains("--history (128) must be at least --window + 2", badWindow.Stderr);

        var badPeriod = await EvaluateCli.RunAsync("evaluate", "--data", file, "--refit-period", "weekly");
        Assert.Equal(2, badPeriod.ExitCode);
        Assert.Contains("not a positive duration", badPeriod.Stderr);
    }

    [Fact]
    public void Rows_with_backwards_timestamps_are_dropped_like_a_stream_grain_would()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("s.csv"), "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:10:00,2\n2020-01-01 00:05:00,9\n2020-01-01 00:10:00,3\n2020-01-01 00:20:00,4\n");
        var series = EvaluationData.LoadFile(dir.File("s.csv"), new SliceOptions(null, 1, 0, null));
        Assert.Equal([1f, 2f, 3f, 4f], series.Values);
        Assert.Equal(1, series.DroppedRows);
        var downsampled = EvaluationData.LoadFile(dir.File("s.csv"), new SliceOptions(null, 2, 0, null));
        Assert.Equal([1.5f, 3.5f], downsampled.Values);
        Assert.Equal(new DateTime(2020, 1, 1, 0, 20, 0), downsampled.Timestamps[1]);
    }
}
