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

    /// <summary>Exit code of a command stopped by Ctrl+C or SIGTERM (README, "Client commands"), as shells report an interrupt.</summary>
    public const int Cancelled = 130;

    /// <summary>
    /// How long a command has, after Ctrl+C or SIGTERM cancelled its token, to stop on its own before System.CommandLine
    /// ends the invocation with 130 (SIGINT) or 143 (SIGTERM) regardless: longer than a connection's 20 s stop of its
    /// host (ClusterConnection.DisposeAsync), so an in-process silo still stops properly, and than the 30 s the bench
    /// gives the run it started again with another gen0 budget.
    /// </summary>
    public static readonly TimeSpan TerminationGrace = TimeSpan.FromSeconds(35);

    /// <summary>
    /// The invocation settings of the real binary. ProcessTerminationTimeout must be set: System.CommandLine 2.0.0 only
    /// handles Ctrl+C/SIGTERM (cancels the async action's token, waits for it) when it is; its default is null since
    /// 2.0.0-beta7 despite its doc comment ("a default timeout of 2 seconds"), and then the signal ends the process at
    /// once, in the middle of whatever the command was doing.
    /// </summary>
    public static InvocationConfiguration Invocation() => new() { ProcessTerminationTimeout = TerminationGrace };

    /// <summary>
    /// The exit code of an invocation of <paramref name="parse"/> that returned <paramref name="code"/>: System.CommandLine
    /// exits 1 on its own parse errors (unknown option, a validator's complaint), which scripts would read as a refusal
    /// by the cluster, so those become <see cref="BadArguments"/> like the commands' own argument errors.
    /// </summary>
    public static int ExitCode(ParseResult parse, int code) => parse.Action is ParseErrorAction ? BadArguments : code;
}
