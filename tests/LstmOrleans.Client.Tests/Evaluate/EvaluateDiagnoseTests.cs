using Xunit;

namespace LstmOrleans.Client.Tests.Evaluate;

/// <summary>
/// `evaluate --diagnose` re-runs every published version offline on the scored steps. Its "replayed" column repeats the
/// stream grain's own path (zero state at the start of the ring buffer when the version arrived, one step per value,
/// the stream's running normalisation), so it must reproduce the live forecasts; the other columns change one thing each.
/// </summary>
public sealed class EvaluateDiagnoseTests
{
    [Fact]
    public async Task Diagnose_reproduces_the_live_forecasts_offline_and_scores_every_variant()
    {
        using var dir = new TempDir();
        File.Copy(EvaluateCli.DataFile("ec2_cpu_utilization_5f5533_600.csv"), dir.File("cpu.csv"));
        File.Copy(EvaluateCli.DataFile("machine_temperature_600.csv"), dir.File("temperature.csv"));
        var result = await EvaluateCli.RunAsync("evaluate", "--data", dir.Path, "--until-step", "500", "--warmup", "200", "--refit-every", "150",
            "--horizon", "2", "--hidden", "8", "--window", "16", "--epochs", "3", "--history", "128", "--lr", "0.01", "--diagnose", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("Accepted", result.Stderr);   // at least one refit published, so a swapped version is replayed

        var rows = result.Stderr.Split('\n').Select(l => l.Split(" | ")).Where(c => c.Length == 11 && c[0] is "cpu" or "temperature").ToArray();
        Assert.Equal(4, rows.Length);                 // 2 streams x 2 horizons
        foreach (var c in rows)
        {
            Assert.Equal(300, int.Parse(c[2]) + int.Parse(c[1]));                      // origins 200..499 - h: every target inside the series
            double live = double.Parse(c[4]), replayed = double.Parse(c[5]);
            Assert.True(live > 0 && double.IsFinite(live));
            Assert.True(Math.Abs(live - replayed) <= 2e-3 * live, $"{c[0]} h{c[1]}: live {live} vs replayed {replayed}");
            for (int i = 6; i <= 8; i++) Assert.True(double.Parse(c[i]) is > 0 and < 100, $"{c[0]} column {i}: {c[i]}");
            Assert.True(int.Parse(c[9]) > 0, "the publishing round's validation part was scored");
        }
    }
}
