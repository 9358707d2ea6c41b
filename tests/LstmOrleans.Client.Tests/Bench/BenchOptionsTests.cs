using LstmOrleans.Client.Bench;
using Xunit;

namespace LstmOrleans.Client.Tests.Bench;

public sealed class BenchOptionsTests
{
    [Fact]
    public void Silo_env_parses_name_value_pairs_and_lets_them_override_the_gc_mode()
    {
        var environment = BenchCommand.ParseEnvironment(["DOTNET_TieredPGO=0", "DOTNET_gcServer=1", "EMPTY=", "X=a=b"]);
        Assert.NotNull(environment);
        Assert.Equal("0", environment["DOTNET_TieredPGO"]);
        Assert.Equal("", environment["EMPTY"]);
        Assert.Equal("a=b", environment["X"]);
        Assert.Null(BenchCommand.ParseEnvironment([]));

        var settings = new BenchSettings(["memory"], null, null, null, "c", "s", [10], 1, 1, 4, 1, 1, 0, null, ["single"], null, null, false, false)
        {
            SiloGc = "workstation",
            SiloEnvironment = environment,
        };
        var merged = BenchRunner.SiloEnvironment(settings)!;
        Assert.Equal("1", merged["DOTNET_gcServer"]); // --silo-env wins over --silo-gc workstation's "0"
        Assert.Equal("0", merged["DOTNET_TieredPGO"]);
        Assert.Equal("0", BenchRunner.SiloEnvironment(settings with { SiloEnvironment = null })!["DOTNET_gcServer"]);
    }

    [Theory]
    [InlineData("NOVALUE")]
    [InlineData("=1")]
    [InlineData("BAD NAME=1")]
    [InlineData("1ABC=2")]
    public void Silo_env_refuses_what_is_not_name_equals_value(string value) =>
        Assert.Throws<ArgumentException>(() => BenchCommand.ParseEnvironment([value]));

    [Theory]
    [InlineData(null, null)]
    [InlineData("full", "full")]
    [InlineData("Normal", "normal")]
    [InlineData(" NORMAL ", "normal")]
    public void Sqlite_synchronous_accepts_full_and_normal(string? value, string? expected) =>
        Assert.Equal(expected, BenchCommand.ParseSqliteSynchronous(value));

    [Theory]
    [InlineData("off")]
    [InlineData("extra")]
    [InlineData("sometimes")]
    public void Sqlite_synchronous_refuses_other_levels(string value) =>
        Assert.Contains("--sqlite-synchronous", Assert.Throws<ArgumentException>(() => BenchCommand.ParseSqliteSynchronous(value)).Message);

    [Fact]
    public void Ratio_is_a_test_of_its_own_that_compares_maxima_only()
    {
        Assert.Equal(["ratio", "reload"], BenchCommand.ParseTests("ratio,reload"));
        var error = Assert.Throws<ArgumentException>(() => BenchCommand.ParseTests("ratio", rateFraction: true));
        Assert.Contains("ratio", error.Message);
    }

    [Theory]
    [InlineData(new[] { 0.5 }, 0.5)]
    [InlineData(new[] { 0.7, 0.5, 0.6 }, 0.6)]
    [InlineData(new[] { 0.9, 0.5, 0.6, 0.4 }, 0.55)]
    public void Ratio_median_is_the_middle_value_or_the_mean_of_the_middle_two(double[] ratios, double expected) =>
        Assert.Equal(expected, RatioResult.Median(ratios), 1e-12);
}
