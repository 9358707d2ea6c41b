using LstmOrleans.Client;

var parse = ClientCommandLine.Create().Parse(args);
return ClientCommandLine.ExitCode(parse, await parse.InvokeAsync(ClientCommandLine.Invocation()));
