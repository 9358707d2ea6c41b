using LstmOrleans.Client.Bench;
using Xunit;

namespace LstmOrleans.Client.Tests.Bench;

/// <summary>--rate, --rate-fraction (--rate half) and --pacer-send: parsing, the derived rate and issue 8's verdict line.</summary>
public sealed class RateFractionTests
{
    [Theory]
    [InlineData(null, null, null, null)]
    [InlineData("35000", null, 35000.0, null)]
    [InlineData("35_000", null, 35000.0, null)]
    [InlineData("2.5e4", null, 25000.0, null)]
    [InlineData("half", null, null, 0.5)]
    [InlineData(" HALF ", null, null, 0.5)]
    [InlineData(null, 0.5, null, 0.5)]
    [InlineData(null, 1.0, null, 1.0)]
    [InlineData(null, 0.25, null, 0.25)]
    public void Rate_is_a_fixed_rate_or_a_fraction_of_the_maximum(string? rate, double? fraction, double? expectedRate, double? expectedFraction) =>
        Assert.Equal((expectedRate, expectedFraction), BenchCommand.ParseRate(rate, fraction));

    [Theory]
    [InlineData("0", null, "--rate")]
    [InlineData("-5", null, "--rate")]
    [InlineData("NaN", null, "--rate")]
    [InlineData("Infinity", null, "--rate")]
    [InlineData("quarter", null, "--rate")]
    [InlineData(null, 0.0, "--rate-fraction")]
    [InlineData(null, -0.5, "--rate-fraction")]
    [InlineData(null, 1.5, "--rate-fraction")]
    [InlineData(null, double.NaN, "--rate-fraction")]
    [InlineData("1000", 0.5, "exclude each other")]
    [InlineData("half", 0.5, "exclude each other")]
    public void Bad_or_conflicting_rates_are_refused(string? rate, double? fraction, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => BenchCommand.ParseRate(rate, fraction));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_fraction_does_not_apply_to_the_scale_phase()
    {
        Assert.Equal(["scale"], BenchCommand.ParseTests("scale"));
        Assert.Equal(["ping", "single"], BenchCommand.ParseTests("ping,single", rateFraction: true));
        var error = Assert.Throws<ArgumentException>(() => BenchCommand.ParseTests("scale", rateFraction: true));
        Assert.Contains("--rate-fraction", error.Message);
    }

    [Theory]
    [InlineData(70_000.0, 0.5, 35_000.0)]
    [InlineData(70_000.0, 1.0, 70_000.0)]
    [InlineData(1_234.5, 0.2, 246.9)]
    public void The_fixed_rate_is_the_fraction_of_the_measured_maximum(double maximum, double fraction, double expected) =>
        Assert.Equal(expected, BenchRunner.FractionOfMaximum(maximum, fraction), 9);

    [Theory]
    [InlineData(0.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void A_maximum_that_is_not_a_positive_rate_gives_no_fixed_rate(double maximum)
    {
        var error = Assert.Throws<InvalidOperationException>(() => BenchRunner.FractionOfMaximum(maximum, 0.5, errors: 7));
        Assert.Contains("7 errors", error.Message);
    }

    [Theory]
    [InlineData(null, "pool")]
    [InlineData("pool", "pool")]
    [InlineData("Pacer", "pacer")]
    public void Pacer_send_is_pool_or_pacer(string? value, string expected) => Assert.Equal(expected, BenchCommand.ParsePacerSend(value));

    [Fact]
    public void Pacer_send_refuses_other_values() =>
        Assert.Contains("--pacer-send", Assert.Throws<ArgumentException>(() => BenchCommand.ParsePacerSend("inline")).Message);

    [Theory]
    [InlineData(0.5, 1_900.0, 0, "met")]
    [InlineData(0.5, 2_100.0, 0, "not met")]
    [InlineData(0.5, 1_000.0, 3, "not met")] // errors never pass
    [InlineData(0.25, 1_000.0, 0, null)]     // the target is stated for half the maximum only
    public void The_verdict_compares_p99_at_half_the_maximum_with_2_ms(double fraction, double p99Us, long errors, string? verdict)
    {
        var phase = new PhaseResult("single", "memory", 1000, 1, 128, 35_000, 350_000, 350_000, errors, null, 10, 35_000, 35_000,
            new LatencyResult(400, 800, p99Us, 2 * p99Us, 3 * p99Us, 500), null, 10, 1000, 15, 2000)
        { RateFraction = fraction, MaxValuesPerSecond = 70_000 };
        var line = BenchTable.HalfMaximumVerdict(phase, 2);
        Assert.Contains($"p99 {p99Us / 1e3:0.00} ms", line);
        if (verdict is null) Assert.DoesNotContain("target", line);
        else Assert.EndsWith(verdict == "met" ? "[green]met[/]" : "[red]not met[/]", line);
    }
}

/// <summary>--client-gen0-mb: when the bench runs itself again with a gen0 budget, and what the silo gets back.</summary>
public sealed class BenchClientGcTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void The_bench_runs_again_only_when_a_budget_is_asked_for_and_none_is_set()
    {
        Assert.True(BenchClientGc.ShouldRunAgain(64, Env()));
        Assert.False(BenchClientGc.ShouldRunAgain(0, Env()));                                         // the runtime's default asked for
        Assert.False(BenchClientGc.ShouldRunAgain(64, Env(("DOTNET_GCgen0size", "0x10000000"))));     // the user's own setting wins
        Assert.False(BenchClientGc.ShouldRunAgain(64, Env(("LSTMORLEANS_BENCH_CLIENT_GC", "1"))));    // already the re-run
        Assert.True(BenchClientGc.ShouldRunAgain(64, Env(("DOTNET_GCgen0size", ""))));
    }

    [Theory]
    [InlineData(64, "0x4000000")]
    [InlineData(1, "0x100000")]
    [InlineData(4096, "0x100000000")]
    public void The_budget_is_written_in_hexadecimal_bytes(int mib, string expected) => Assert.Equal(expected, BenchClientGc.Gen0Value(mib));

    [Theory]
    [InlineData(-1)]
    [InlineData(4097)]
    public void Budgets_out_of_range_are_refused(int mib) =>
        Assert.Contains("--client-gen0-mb", Assert.Throws<ArgumentException>(() => BenchClientGc.ParseGen0MiB(mib)).Message);

    [Fact]
    public void In_the_re_run_the_silo_gets_the_default_gen0_back_unless_its_own_options_set_one()
    {
        var settings = new BenchSettings(["memory"], null, null, null, "c", "s", [10], 1, 1, 4, 1, 1, 0, null, ["single"], null, null, false, false);
        var rerun = Env(("LSTMORLEANS_BENCH_CLIENT_GC", "1"), ("DOTNET_GCgen0size", "0x4000000"));
        Assert.Equal(new Dictionary<string, string> { ["DOTNET_gcServer"] = "1" }, BenchRunner.SiloEnvironment(settings, Env())); // not re-run: only the default server GC
        Assert.Null(BenchRunner.SiloEnvironment(settings with { SiloGc = null }, Env()));              // nothing asked, nothing to undo
        Assert.Equal("0", BenchRunner.SiloEnvironment(settings, rerun)!["DOTNET_GCgen0size"]);
        var own = settings with { SiloEnvironment = new Dictionary<string, string> { ["DOTNET_GCgen0size"] = "0x10000000" } };
        Assert.Equal("0x10000000", BenchRunner.SiloEnvironment(own, rerun)!["DOTNET_GCgen0size"]);
        Assert.Equal("1", BenchRunner.SiloEnvironment(settings with { SiloGc = "server" }, rerun)!["DOTNET_gcServer"]);
    }

    [Theory]
    [InlineData(null, true, "open")]
    [InlineData("open", false, "open")]
    [InlineData(" Closed ", true, "closed")]
    public void Rate_model_is_open_or_closed(string? value, bool fraction, string expected) =>
        Assert.Equal(expected, BenchCommand.ParseRateModel(value, fraction));

    [Fact]
    public void Closed_rate_model_needs_a_fraction_and_unknown_models_are_refused()
    {
        Assert.Contains("--rate-fraction", Assert.Throws<ArgumentException>(() => BenchCommand.ParseRateModel("closed", rateFraction: false)).Message);
        Assert.Contains("unknown", Assert.Throws<ArgumentException>(() => BenchCommand.ParseRateModel("poisson", rateFraction: true)).Message);
    }

    [Theory]
    [InlineData(1, new[] { 1 })]
    [InlineData(2, new[] { 1, 2 })]
    [InlineData(5, new[] { 1, 2, 3, 4, 5 })]
    [InlineData(128, new[] { 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128 })]
    [InlineData(100, new[] { 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 100 })]
    public void Caller_ladder_climbs_by_about_one_and_a_half_and_ends_at_the_maximum(int maximum, int[] expected) =>
        Assert.Equal(expected, BenchRunner.CallerLadder(maximum));

    [Theory]
    [InlineData(36_000, 1500, "met")]        // 0.51 x the maximum, p99 1.5 ms
    [InlineData(36_000, 2500, "not met")]    // fast enough, p99 too long
    [InlineData(30_000, 1500, "not met")]    // p99 fine but the load was lighter than half the maximum
    public void Closed_loop_half_rate_verdict_needs_the_rate_reached_and_the_p99(double valuesPerSecond, double p99Us, string verdict)
    {
        var phase = new PhaseResult("single", "memory", 1000, 1, 8, null, 360_000, 360_000, 0, null, 10, valuesPerSecond, valuesPerSecond,
            new LatencyResult(300, 600, p99Us, 2 * p99Us, 3 * p99Us, 400), null, 10, 1000, 15, 2000)
        { RateFraction = 0.5, MaxValuesPerSecond = 70_000, RateModel = BenchSettings.RateModelClosed };
        var line = BenchTable.HalfMaximumVerdict(phase, 2);
        Assert.Contains("closed loop with 8 callers", line);
        Assert.Contains(verdict == "met" ? "[green]met[/]" : "[red]not met[/]", line);
        Assert.Equal(valuesPerSecond < 35_000, line.Contains("fell below half the maximum", StringComparison.Ordinal));
    }

    [Fact]
    public void The_fraction_line_says_how_many_cores_the_client_and_the_silo_kept_busy()
    {
        // 35,000 values/s at 18 us of client and 26 us of silo CPU per value: 44 us x 35,000 = 1.54 CPU seconds per second.
        var phase = new PhaseResult("single", "memory", 1000, 1, 128, 35_000, 350_000, 350_000, 0, null, 10, 35_000, 35_000,
            new LatencyResult(300, 600, 4000, 8000, 9000, 400), null, 18, 1000, 26, 2000)
        { RateFraction = 0.5, MaxValuesPerSecond = 70_000 };
        Assert.Equal(1.54, phase.CoresUsed!.Value, 9);
        Assert.EndsWith("p99 4.00 ms, p99.9 8.00 ms; client and silo used 1.54 of 2 cores", BenchTable.FractionLine(phase, 2));
        // With --cluster the silo's CPU is not known, so nothing is claimed about the machine.
        var remote = phase with { SiloCpuUsPerValue = null };
        Assert.Null(remote.CoresUsed);
        Assert.EndsWith("p99.9 8.00 ms", BenchTable.FractionLine(remote, 2));
    }
}
