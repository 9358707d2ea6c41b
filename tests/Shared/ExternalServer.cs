using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace LstmOrleans.Tests.Shared;

/// <summary>
/// Helpers shared by the fixtures that start private database servers for tests: locating
/// binaries, picking a free loopback port, running a process and deciding whether a missing
/// binary is a skip (developer machine) or a failure (CI sets LSTMORLEANS_REQUIRE_SERVICES=1).
/// </summary>
public static class ExternalServer
{
    public const string RequireServicesVariable = "LSTMORLEANS_REQUIRE_SERVICES";

    /// <summary>True when CI demands that every service-backed test really runs.</summary>
    public static bool ServicesRequired => Environment.GetEnvironmentVariable(RequireServicesVariable) == "1";

    /// <summary>
    /// The skip reason for a test needing <paramref name="what"/>, or null when it must run: either the
    /// binary is there, or CI requires it (then the fixture fails loudly instead of skipping).
    /// </summary>
    public static string? SkipReasonWhenMissing(string? binary, string what, string package) =>
        binary is null && !ServicesRequired
            ? $"{what} is not installed (apt-get install {package}); skipped. Set {RequireServicesVariable}=1 to make this a failure."
            : null;

    public static string MissingBinaryMessage(string what, string package) =>
        $"{what} is not installed but {RequireServicesVariable}=1 requires it: apt-get install {package}.";

    /// <summary>First existing file among candidates, or a match on PATH.</summary>
    public static string? FindBinary(string fileName, params string[] candidates)
    {
        foreach (var candidate in candidates)
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(directory, fileName);
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }

    private static readonly HashSet<int> HandedOutPorts = [];

    /// <summary>
    /// A loopback port free at the time of asking and not handed out before in this process. Linux often gives the
    /// same ephemeral port to consecutive bind-to-0 calls once the first listener closes, so without the record a
    /// silo's silo, gateway and HTTP ports could come out equal.
    /// </summary>
    public static int FreeLoopbackPort()
    {
        lock (HandedOutPorts)
        {
            while (true)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                int port = ((IPEndPoint)listener.LocalEndpoint).Port;
                if (HandedOutPorts.Add(port)) return port;
            }
        }
    }

    public static bool IsRoot => Environment.UserName == "root";

    /// <summary>Starts a process with redirected output (and extra environment variables); output lines are kept for error messages.</summary>
    public static (Process Process, StringBuilder Output) Start(string fileName, IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string>? environment = null) =>
        Start(StartInfo(fileName, arguments, environment));

    /// <summary>
    /// Starts <paramref name="info"/> with stdout and stderr redirected: both are kept interleaved in Output, and each
    /// also in <paramref name="stdout"/> / <paramref name="stderr"/> when given. A redirected stdin is closed at once
    /// (the process reads end of input).
    /// </summary>
    public static (Process Process, StringBuilder Output) Start(ProcessStartInfo info, StringBuilder? stdout = null, StringBuilder? stderr = null)
    {
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        var output = new StringBuilder();
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Append(output, stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, stderr, e.Data);
        process.Start();
        if (info.RedirectStandardInput)
        {
            process.StandardInput.Close();
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, output);
    }

    private static void Append(StringBuilder output, StringBuilder? stream, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.AppendLine(line);
            stream?.AppendLine(line);
        }
    }

    private static ProcessStartInfo StartInfo(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment)
    {
        var info = new ProcessStartInfo(fileName);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        return info;
    }

    /// <summary>
    /// Runs a process to completion: its exit code and its stdout and stderr interleaved. Killed (with its children) and
    /// a <see cref="TimeoutException"/> carrying the output so far when it overruns <paramref name="timeout"/>.
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var result = await RunToExitAsync(StartInfo(fileName, arguments, environment), timeout);
        return (result.ExitCode, result.Output);
    }

    /// <summary>As <see cref="RunToExitAsync(string, IEnumerable{string}, TimeSpan, IReadOnlyDictionary{string, string}?)"/>, for a prepared start info; stdout and stderr also apart.</summary>
    public static async Task<(int ExitCode, string Output, string Stdout, string Stderr)> RunToExitAsync(ProcessStartInfo info, TimeSpan timeout)
    {
        StringBuilder stdout = new(), stderr = new();
        var (process, output) = Start(info, stdout, stderr);
        using (process)
        {
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"'{info.FileName} {string.Join(' ', info.ArgumentList)}' did not finish within {timeout}. Output:\n{output}");
            }

            process.WaitForExit(); // drain the output readers
            lock (output)
            {
                return (process.ExitCode, output.ToString(), stdout.ToString(), stderr.ToString());
            }
        }
    }

    /// <summary>Runs a process to completion; throws with its output when it fails or overruns.</summary>
    public static async Task RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var (exitCode, output) = await RunToExitAsync(fileName, arguments, timeout);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"'{fileName} {string.Join(' ', arguments)}' exited with {exitCode}. Output:\n{output}");
        }
    }

    /// <summary>A fresh private temp folder; when running as root, owned by <paramref name="owner"/> so a server can run as that user.</summary>
    public static async Task<string> CreateTempDirectoryAsync(string prefix, string? owner)
    {
        var path = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        if (owner is not null && IsRoot)
        {
            await RunAsync("chown", ["-R", $"{owner}:", path], TimeSpan.FromSeconds(30));
        }

        return path;
    }

    public static void TryDeleteDirectory(string? path)
    {
        try
        {
            if (path is not null && Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless; do not mask the test outcome.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
