using System.Diagnostics;
using System.Text.Json;
using Xunit;

namespace LstmOrleans.Client.Tests.Bench;

/// <summary>Runs the built <c>lstmorleans</c> executable (the apphost, or <c>dotnet lstmorleans.dll</c>) to completion.</summary>
internal static class LstmOrleansProcess
{
    public static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(params string[] args)
    {
        var directory = AppContext.BaseDirectory;
        var apphost = Path.Combine(directory, OperatingSystem.IsWindows() ? "lstmorleans.exe" : "lstmorleans");
        var info = File.Exists(apphost) ? new ProcessStartInfo(apphost) : new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(directory, "lstmorleans.dll") } };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.WorkingDirectory = Path.GetTempPath();
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"lstmorleans {string.Join(' ', args)} did not finish within 4 minutes. stderr:\n{await stderr}");
        }
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Runs a command that must succeed (exit 0, or the test fails with both outputs) and parses its JSON stdout.</summary>
    public static async Task<JsonDocument> RunJsonAsync(params string[] args)
    {
        var (exit, stdout, stderr) = await RunAsync(args);
        Assert.True(exit == 0, $"exit {exit}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        return JsonDocument.Parse(stdout);
    }
}
