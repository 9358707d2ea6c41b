using LstmOrleans.Silo.Hosting;
using Xunit;

namespace LstmOrleans.Silo.Tests;

/// <summary>Command-line arguments the configuration would skip (or throw on) are refused, each named.</summary>
public sealed class CommandLineCheckTests
{
    [Theory]
    [InlineData("--Storage:Provider=memory")]
    [InlineData("--Storage:Provider", "memory")]
    [InlineData("/Storage:Provider=memory")]
    [InlineData("Storage:Provider=memory")]
    [InlineData("--Http:ApiKey", "--not-a-key-but-the-value", "--Storage:Provider=memory")]
    public void Settings_in_every_form_the_configuration_reads_pass(params string[] args) =>
        Assert.Empty(CommandLineCheck.Problems(args));

    [Theory]
    [InlineData("--Http:ApiKey", "command-line argument '--Http:ApiKey' has no value")]
    [InlineData("--help", "command-line argument '--help' has no value")]
    [InlineData("-x=1", "command-line argument '-x=1' is not a setting")]
    [InlineData("-h", "command-line argument '-h' is not a setting")]
    [InlineData("memory", "command-line argument 'memory' is not a setting")]
    public void An_argument_the_configuration_would_skip_is_named(string arg, string problem)
    {
        var problems = CommandLineCheck.Problems(["--Storage:Provider=memory", arg]);
        Assert.StartsWith(problem, Assert.Single(problems), StringComparison.Ordinal);
    }
}
