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
}
