using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>Paths of the real binaries built beside the tests, and a way to run them.</summary>
internal static class Binaries
{
    public static string SiloDll => Metadata("SiloDll");
    public static string ClientDll => Metadata("ClientDll");
    /// <summary>The benchmark project's binary (its probes, e.g. gc-trace).</summary>
    public static string BenchDll => Metadata("BenchDll");
    public static string BundledData => Metadata("BundledData");
    /// <summary>scripts/cluster.sh of the same checkout (it runs the silo built beside the tests with BUILD=0).</summary>
    public static string ClusterScript => Metadata("ClusterScript");

    private static string Metadata(string key)
    {
        var value = typeof(Binaries).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
        var path = Path.GetFullPath(value);
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"{key} not found at {path}; build the solution in the same configuration as the tests.");
        return path;
    }

    /// <summary>A loopback port free now and never handed out before in this test process.</summary>
    public static int FreeTcpPort() => LstmOrleans.Tests.Shared.ExternalServer.FreeLoopbackPort();

    public static string TempFolder(string prefix)
    {
        var path = Path.Combine(Path.GetTempPath(), $"lstmorleans-e2e-{prefix}-{Guid.NewGuid():N}"[..48]);
        Directory.CreateDirectory(path);
        return path;
    }

    public static ProcessStartInfo Dotnet(string dll, IEnumerable<string> args, string workingDirectory)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        info.ArgumentList.Add(dll);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        return info;
    }

    /// <summary>Runs the real client binary to completion (stdin closed at once).</summary>
    public static Task<ProcessResult> RunClientAsync(TimeSpan timeout, string workingDirectory, params string[] args) =>
        RunToExitAsync(ClientDll, timeout, workingDirectory, args);

    /// <summary>Runs the real silo host to its exit: for configurations it must refuse (a silo that starts runs until killed).</summary>
    public static Task<ProcessResult> RunSiloAsync(TimeSpan timeout, string workingDirectory, params string[] args) =>
        RunToExitAsync(SiloDll, timeout, workingDirectory, args);

    /// <summary>Runs the benchmark binary (one of its probes) to its exit.</summary>
    public static Task<ProcessResult> RunBenchAsync(TimeSpan timeout, string workingDirectory, params string[] args) =>
        RunToExitAsync(BenchDll, timeout, workingDirectory, args);

    private static async Task<ProcessResult> RunToExitAsync(string dll, TimeSpan timeout, string workingDirectory, string[] args)
    {
        var result = await LstmOrleans.Tests.Shared.ExternalServer.RunToExitAsync(Dotnet(dll, args, workingDirectory), timeout);
        return new ProcessResult(result.ExitCode, result.Stdout, result.Stderr);
    }
}

internal sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}
