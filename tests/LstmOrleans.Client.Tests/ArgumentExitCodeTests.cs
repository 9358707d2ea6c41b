using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>Argument errors of the cluster commands are caught before any connection and exit 2, as the README says.</summary>
public class ArgumentExitCodeTests
{
    public static TheoryData<string[], string> ParseErrors => new()
    {
        { ["replay", "series.csv", "--copies", "0"], "--copies must be in 1..10000." },
        { ["replay", "series.csv", "--rate", "NaN"], "--rate must be in 0..1000000000 observations/s" },   // NaN was 'as fast as possible'
        { ["replay", "series.csv", "--rate", "-1"], "--rate must be in 0..1000000000 observations/s" },
        { ["watch", "s", "--interval", "0"], "--interval must be in 0.05..3600 seconds." },
        { ["streams", "--limit", "0"], "--limit must be in 1..1000000." },
        { ["plot", "p.csv", "--last", "-1"], "--last must not be negative." },
        { ["push", "s", "1", "--seq", "one"], "one" },
        { ["push"], "Required argument missing" },
        { ["push", "", "1"], "STREAM must not be empty or blank." },
        { ["predict", "  "], "STREAM must not be empty or blank." },
        { ["frobnicate"], "frobnicate" },
        { ["models", "--connect-timeout", "NaN", "-c", "127.0.0.1:1"], "--connect-timeout must be in 1..600 seconds." },
        { ["models", "--connect-timeout", "0", "-c", "127.0.0.1:1"], "--connect-timeout must be in 1..600 seconds." },
        { ["push", "s", "1", "--connect-timeout", "3600", "-c", "127.0.0.1:1"], "--connect-timeout must be in 1..600 seconds." },
    };

    [Theory]
    [MemberData(nameof(ParseErrors))]
    public void Parse_errors_exit_2_with_the_message_on_stderr(string[] args, string fragment)
    {
        var result = Cli.Run(args);   // a parse error never runs the command, so nothing connects
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(fragment, result.Stderr);
    }
}
