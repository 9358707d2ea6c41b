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
        // A negative sequence was sent, and a new stream then numbered its later values -4, -3, ...
        { ["push", "s", "1", "--seq", "-5"], "--seq must be 0 or greater" },
        { ["push", "s", "1", "--seq=-1", "-c", "127.0.0.1:1"], "--seq must be 0 or greater" },
        { ["push"], "Required argument missing" },
        { ["push", "", "1"], "STREAM must not be empty or blank." },
        { ["predict", "  "], "STREAM must not be empty or blank." },
        { ["frobnicate"], "frobnicate" },
        { ["models", "--connect-timeout", "NaN", "-c", "127.0.0.1:1"], "--connect-timeout must be in 1..600 seconds." },
        { ["models", "--connect-timeout", "0", "-c", "127.0.0.1:1"], "--connect-timeout must be in 1..600 seconds." },
        { ["push", "s", "1", "--connect-timeout", "3600", "-c", "127.0.0.1:1"], "--connect-timeout must be in 1..600 seconds." },
        // A value that does not parse at all, for an option or argument with a range check: the check threw while
        // parsing (an unhandled exception, a stack trace and exit code 134) instead of letting the parse error through.
        { ["models", "--connect-timeout", "abc", "-c", "127.0.0.1:1"], "Cannot parse argument 'abc' for option '--connect-timeout'" },
        // It was "Cannot parse argument 'abc' for command 'rollback' as expected type 'System.Int64'", and 0 was refused in other words.
        { ["rollback", "default", "abc"], "VERSION must be a positive integer; got 'abc'." },
        { ["rollback", "default", "0"], "VERSION must be a positive integer; got '0'." },
        { ["rollback", "default", "1.5"], "VERSION must be a positive integer; got '1.5'." },
        { ["streams", "--limit", "abc"], "Cannot parse argument 'abc' for option '--limit'" },
        { ["streams", "--concurrency", "x1"], "Cannot parse argument 'x1' for option '--concurrency'" },
        { ["watch", "s", "--interval", "abc"], "Cannot parse argument 'abc' for option '--interval'" },
        { ["watch", "s", "--count", "1.5"], "Cannot parse argument '1.5' for option '--count'" },
        { ["train", "--timeout", "abc"], "Cannot parse argument 'abc' for option '--timeout'" },
        { ["replay", "series.csv", "--rate", "fast"], "Cannot parse argument 'fast' for option '--rate'" },
        { ["replay", "series.csv", "--retries", "many"], "Cannot parse argument 'many' for option '--retries'" },
        { ["plot", "p.csv", "--last", "abc"], "Cannot parse argument 'abc' for option '--last'" },
        { ["demo", "--rows", "abc"], "Cannot parse argument 'abc' for option '--rows'" },
        // A name no model can have reached Orleans, which refused the empty or blank key naming its 'primaryKey'
        // parameter, or the cluster, which refused the rest after connecting.
        { ["create-model", ""], "MODEL '': A model name must be 1..128 printable characters without '/'." },
        { ["create-model", "a/b"], "MODEL 'a/b': A model name must be 1..128 printable characters without '/'." },
        { ["models", "default", " "], "MODEL ' ': A model name must be 1..128 printable characters without '/'." },
        { ["rollback", "", "1"], "MODEL '': A model name" },
        { ["train", " "], "MODEL ' ': A model name" },
        { ["streams", "--model", ""], "--model '': A model name" },
        { ["replay", "series.csv", "--model", ""], "--model '': A model name" },
        { ["model", "import", "m.safetensors", "--name", ""], "--name '': A model name" },
        { ["model", "export", "", "--out", "m.safetensors"], "MODEL '': A model name" },
    };

    [Fact]
    public void Rollback_names_no_dotnet_type_and_models_help_says_it_takes_any_number_of_names()
    {
        var result = Cli.Run("rollback", "demo", "abc");
        Assert.Equal(2, result.ExitCode);
        Assert.DoesNotContain("System.Int64", result.Stderr);
        // README: `models [MODEL...]`; the command takes zero or more names. The usage line showed that before the fix
        // too (System.CommandLine derives it from the arity); the Arguments section's row listed "<MODEL>  Model names
        // (default: the default model).", as if one name, and that row is what the fix changed.
        var help = Cli.Run("models", "--help");
        Assert.Equal(0, help.ExitCode);
        var lines = help.Stdout.Split('\n', StringSplitOptions.TrimEntries);
        var arguments = Array.IndexOf(lines, "Arguments:");
        Assert.True(arguments >= 0, help.Stdout);
        Assert.Matches(@"^<MODEL>\s+Any number of model names \(none: the default model\)\.$", lines[arguments + 1]);
        Assert.Contains("models [<MODEL>...] [options]", help.Stdout);   // the arity, which the row describes
    }

    [Theory]
    [MemberData(nameof(ParseErrors))]
    public void Parse_errors_exit_2_with_the_message_on_stderr(string[] args, string fragment)
    {
        var result = Cli.Run(args);   // a parse error never runs the command, so nothing connects
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(fragment, result.Stderr);
    }
}
