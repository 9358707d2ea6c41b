using System.CommandLine;

namespace LstmOrleans.Client;

/// <summary>`model ...`: offline commands that use the engine directly and need no cluster.</summary>
internal static class ModelCommands
{
    public static Command Create()
    {
        var model = new Command("model", "Offline model commands (no cluster needed).");
        return model;
    }
}
