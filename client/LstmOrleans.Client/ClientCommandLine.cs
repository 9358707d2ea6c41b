using System.CommandLine;
using System.CommandLine.Invocation;

namespace LstmOrleans.Client;

/// <summary>The `lstmorleans` command tree and its exit codes, shared by Program.cs and the in-process tests.</summary>
internal static class ClientCommandLine
{
    /// <summary>Exit code of bad arguments or input files (README, "Client commands": 1 is a cluster's refusal, 3 an unreachable cluster).</summary>
    public const int BadArguments = 2;

    public static RootCommand Create()
    {
        var root = new RootCommand("LstmOrleans client: offline model commands and commands against a running cluster.");
        root.Subcommands.Add(ModelCommands.Create());
        foreach (var command in ClusterCommands.Create())
            root.Subcommands.Add(command);
        return root;
    }

    /// <summary>
    /// The exit code of an invocation of <paramref name="parse"/> that returned <paramref name="code"/>: System.CommandLine
    /// exits 1 on its own parse errors (unknown option, a validator's complaint), which scripts would read as a refusal
    /// by the cluster, so those become <see cref="BadArguments"/> like the commands' own argument errors.
    /// </summary>
    public static int ExitCode(ParseResult parse, int code) => parse.Action is ParseErrorAction ? BadArguments : code;
}
