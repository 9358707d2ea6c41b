using System.Text.Json;
using Xunit;

namespace LstmOrleans.Client.Tests.Bench;

/// <summary>
/// <c>lstmorleans bench -t scale</c> at a tiny N (the real executable, its own silo process): the figures are present
/// and sane, the stream activations really fall on idle deactivation, every sampled stream comes back intact, and the
/// intact check does fail when a deliberate one-bit / one-ULP fault is injected (so it is able to fail).
/// </summary>
public sealed class ScalePhaseTests
{
    private static readonly string[] TinyScale =
        ["bench", "-t", "scale", "--streams", "200", "--scale-base", "50", "--scale-sample", "20",
         "--hidden", "8", "--concurrency", "8", "--duration", "0.5", "--warmup", "0", "--json"];

    private static readonly string[] TinierScale =
        ["bench", "-t", "scale", "--streams", "60", "--scale-base", "20", "--scale-sample", "10", "--scale-rounds", "1",
         "--hidden", "8", "--concurrency", "8", "--duration", "0.2", "--warmup", "0", "--json"];

    [Fact]
    public async Task Scale_phase_measures_memory_and_throughput_and_every_sampled_stream_comes_back_intact()
    {
        using var json = await LstmOrleansProcess.RunJsonAsync([.. TinyScale, "--stores", "memory"]);
        var scale = json.RootElement.GetProperty("results")[0].GetProperty("scale");
        Assert.Equal(200, scale.GetProperty("streams").GetInt32());
        Assert.Equal(50, scale.GetProperty("baseStreams").GetInt32());
        Assert.True(scale.GetProperty("rssBytesPerStream").GetDouble() > 0);
        Assert.True(scale.GetProperty("siloAtStreams").GetProperty("rssBytes").GetInt64() > 10 << 20);
        // The peak verdict reads the silo's VmHWM at the end: at least the RSS seen at N, and far inside 8 GiB here.
        if (OperatingSystem.IsLinux())
        {
            long peak = scale.GetProperty("siloEnd").GetProperty("peakRssBytes").GetInt64();
            Assert.True(peak >= scale.GetProperty("siloAtStreams").GetProperty("rssBytes").GetInt64(), $"peak {peak}");
            Assert.True(scale.GetProperty("peakRssWithinBudget").GetBoolean());
        }
        var atBase = scale.GetProperty("ingestAtBase").EnumerateArray().ToList();
        var atStreams = scale.GetProperty("ingestAtStreams").EnumerateArray().ToList();
        Assert.Equal(2, atBase.Count);
        Assert.Equal(2, atStreams.Count);
        Assert.All(atBase, p => Assert.Equal(50, p.GetProperty("streams").GetInt32()));
        Assert.All(atStreams, p => Assert.Equal(200, p.GetProperty("streams").GetInt32()));
        Assert.All(atBase.Concat(atStreams), p => Assert.True(p.GetProperty("valuesPerSecond").GetDouble() > 0));
        double pooled = atBase.Sum(p => p.GetProperty("valuesPerSecond").GetDouble()) / atStreams.Sum(p => p.GetProperty("valuesPerSecond").GetDouble());
        Assert.Equal(pooled, scale.GetProperty("throughputRatio").GetDouble(), 9);

        Assert.Equal(200, scale.GetProperty("streamActivationsAtStreams").GetInt32());
        var deactivation = scale.GetProperty("deactivation");
        Assert.True(deactivation.GetProperty("streamActivationsBefore").GetInt32() >= 200);
        Assert.Equal(0, deactivation.GetProperty("streamActivationsAfter").GetInt32());

        var reactivation = scale.GetProperty("reactivation");
        Assert.Equal(20, reactivation.GetProperty("sampled").GetInt32());
        Assert.Equal(20, reactivation.GetProperty("intact").GetInt32());
        Assert.Equal(0, reactivation.GetProperty("notIntact").GetInt32());
        Assert.Equal(JsonValueKind.Null, reactivation.GetProperty("firstMismatch").ValueKind);
        Assert.True(scale.GetProperty("passed").GetBoolean());
    }

    [Theory]
    [InlineData("before", "reloaded state differs from the state before deactivation: hidden[0]")]
    [InlineData("twin", "differs from the uninterrupted twin's")]
    public async Task Scale_check_reports_exactly_the_one_stream_with_an_injected_fault_and_fails(string fault, string expected)
    {
        var (exit, stdout, stderr) = await LstmOrleansProcess.RunAsync([.. TinierScale, "--stores", "sqlite", "--scale-fault", fault]);
        Assert.True(exit == 1, $"a detected fault must fail the run; exit {exit}\nstdout:\n{stdout}\nstderr:\n{stderr}");

        using var json = JsonDocument.Parse(stdout);
        var scale = json.RootElement.GetProperty("results")[0].GetProperty("scale");
        var reactivation = scale.GetProperty("reactivation");
        Assert.Equal(fault, reactivation.GetProperty("injectedFault").GetString());
        Assert.Equal(1, reactivation.GetProperty("notIntact").GetInt32());
        Assert.Equal(9, reactivation.GetProperty("intact").GetInt32());
        var mismatch = reactivation.GetProperty("firstMismatch").GetString()!;
        Assert.StartsWith("stream 0: ", mismatch);
        Assert.Contains(expected, mismatch);
        Assert.False(scale.GetProperty("passed").GetBoolean());
    }

    [Fact]
    public async Task Scale_runs_alone_and_rejects_an_unknown_fault()
    {
        var (exit, _, stderr) = await LstmOrleansProcess.RunAsync("bench", "-t", "scale,single", "--duration", "1");
        Assert.Equal(2, exit);
        Assert.Contains("scale runs alone", stderr);
        (exit, _, stderr) = await LstmOrleansProcess.RunAsync("bench", "-t", "scale", "--scale-fault", "bogus", "--duration", "1");
        Assert.Equal(2, exit);
        Assert.Contains("--scale-fault", stderr);
    }
}
