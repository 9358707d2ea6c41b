namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// The silo's command line holds settings only (--Section:Key=value, --Section:Key value, /Section:Key=value or
/// Section:Key=value). .NET's command-line configuration skips what it cannot read without a word (a last --Key with no
/// value, a bare word, -x) and throws an unhandled FormatException for -x=value: `--Http:ApiKey` with its value
/// forgotten started a silo without an API key, and `--help` started a silo on the default ports.
/// </summary>
internal static class CommandLineCheck
{
    /// <summary>One message per argument the configuration would not read, in the order given.</summary>
    public static IReadOnlyList<string> Problems(IReadOnlyList<string> args)
    {
        var problems = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            // The same reading as CommandLineConfigurationProvider (no switch mappings).
            bool doubleDash = arg.StartsWith("--", StringComparison.Ordinal) || arg.StartsWith('/');
            bool singleDash = !doubleDash && arg.StartsWith('-');
            // -x is skipped (-x=1 throws) without switch mappings; a bare word without '=' is skipped.
            if (singleDash || (!doubleDash && !arg.Contains('=', StringComparison.Ordinal)))
                problems.Add($"command-line argument '{arg}' is not a setting: the silo takes --Section:Key=value only (settings: README, 'Running a silo').");
            else if (arg.Contains('=', StringComparison.Ordinal))
                continue;
            else if (i + 1 >= args.Count)
                problems.Add($"command-line argument '{arg}' has no value: write {arg}=value.");
            else
                i++; // --Key value: the next argument is the value, whatever it looks like
        }

        return problems;
    }
}
