using System.CommandLine;

namespace LstmOrleans.Client.Tests;

/// <summary>Result of one in-process CLI invocation.</summary>
internal sealed record CliResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs the client's command tree in-process, as Program.cs builds it, capturing both output streams.</summary>
internal static class Cli
{
    public static CliResult Run(params string[] args)
    {
        var parse = ClientCommandLine.Create().Parse(args);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = ClientCommandLine.ExitCode(parse, parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr }));
        return new CliResult(exit, stdout.ToString(), stderr.ToString());
    }

    /// <summary>As <see cref="Run"/>, with the token System.CommandLine would cancel on Ctrl+C or SIGTERM.</summary>
    public static async Task<CliResult> RunAsync(CancellationToken cancellationToken, params string[] args)
    {
        var parse = ClientCommandLine.Create().Parse(args);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = ClientCommandLine.ExitCode(parse, await parse.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr }, cancellationToken));
        return new CliResult(exit, stdout.ToString(), stderr.ToString());
    }
}

/// <summary>A temporary directory removed at dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("lstmorleans-cli").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
