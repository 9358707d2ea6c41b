using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>What `--help` says about an option, against what the command does with it.</summary>
public class HelpTextTests
{
    /// <summary>The help row of the option whose names start with <paramref name="names"/> (e.g. "-c, --cluster").</summary>
    private static string OptionRow(string help, string names) =>
        help.Split('\n', StringSplitOptions.TrimEntries).Single(l => l.StartsWith(names + " ", StringComparison.Ordinal));

    /// <summary>
    /// demo without --cluster starts a silo in its own process; its --cluster help, shared with the commands that connect
    /// to 127.0.0.1:30000 without one, said that was its default too.
    /// </summary>
    [Fact]
    public void Demo_help_gives_a_silo_in_this_process_as_the_default_of_cluster()
    {
        var demo = Cli.Run("demo", "--help");
        Assert.Equal(0, demo.ExitCode);
        var row = OptionRow(demo.Stdout, "-c, --cluster");
        Assert.DoesNotContain("127.0.0.1:30000", row);
        Assert.Contains("instead of a silo in this process (the default)", row);

        // The commands that do connect to it by default still say so.
        var models = Cli.Run("models", "--help");
        Assert.Contains("(default 127.0.0.1:30000)", OptionRow(models.Stdout, "-c, --cluster"));
    }
}
