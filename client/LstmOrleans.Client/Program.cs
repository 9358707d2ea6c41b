using System.CommandLine;
using LstmOrleans.Client;

var root = new RootCommand("LstmOrleans client: offline model commands and commands against a running cluster.");
root.Subcommands.Add(ModelCommands.Create());
foreach (var command in ClusterCommands.Create())
    root.Subcommands.Add(command);
return await root.Parse(args).InvokeAsync();
