using System.CommandLine;

namespace LstmOrleans.Client;

/// <summary>Commands that talk to a running cluster (or start a local one): demo, replay, push, predict, ...</summary>
internal static class ClusterCommands
{
    public static IEnumerable<Command> Create()
    {
        yield break;
    }
}
