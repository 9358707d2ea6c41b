using System.CommandLine;
using LstmOrleans.Client.Commands;

namespace LstmOrleans.Client;

/// <summary>Commands that talk to a running cluster (or start a local one): demo, replay, push, predict, ...</summary>
internal static class ClusterCommands
{
    public static IEnumerable<Command> Create()
    {
        yield return DemoCommand.Create();
        yield return ReplayCommand.Create();
        yield return StreamCommands.Push();
        yield return StreamCommands.Predict();
        yield return StreamCommands.Stream();
        yield return StreamCommands.Watch();
        yield return StreamListCommand.Create();
        yield return ModelClusterCommands.Models();
        yield return ModelClusterCommands.CreateModel();
        yield return ModelClusterCommands.Rollback();
        yield return TrainClusterCommand.Create();
        yield return PlotCommand.Create();
        yield return Bench.BenchCommand.Create();
        yield return Evaluate.EvaluateCommand.Create();
    }
}
