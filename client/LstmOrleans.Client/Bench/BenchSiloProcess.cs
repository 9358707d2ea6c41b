using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;

namespace LstmOrleans.Client.Bench;

/// <summary>
/// A silo in a child process (this executable's hidden <c>bench silo-host</c> command): the client under test talks
/// to it over the gateway exactly as a user's client would, and the silo's memory can be measured on its own.
/// Closing the child's stdin stops it; disposal kills it if it does not stop in time.
/// </summary>
internal sealed class BenchSiloProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly Queue<string> _stderrTail = new();
    private readonly bool _echoStderr;

    private BenchSiloProcess(Process process, bool echoStderr)
    {
        _process = process;
        _echoStderr = echoStderr;
    }

    public int GatewayPort { get; private set; }
    public int ProcessId => _process.Id;

    public static async Task<BenchSiloProcess> StartAsync(IReadOnlyList<string> siloArgs, bool echoStderr, CancellationToken cancellationToken,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var (file, prefix) = SelfCommand();
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        foreach (var a in prefix) info.ArgumentList.Add(a);
        info.ArgumentList.Add("bench");
        info.ArgumentList.Add(BenchSiloHost.CommandName);
        foreach (var a in siloArgs) info.ArgumentList.Add(a);
        var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {file}.");
        var silo = new BenchSiloProcess(process, echoStderr);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) silo._lines.Writer.TryComplete();
            else silo._lines.Writer.TryWrite(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (silo._stderrTail)
            {
                silo._stderrTail.Enqueue(e.Data);
                while (silo._stderrTail.Count > 40) silo._stderrTail.Dequeue();
            }
            if (silo._echoStderr) Console.Error.WriteLine("[silo] " + e.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(90));
        try
        {
            var ready = await silo.ReadLineAsync("READY ", timeout.Token);
            silo.GatewayPort = int.Parse(ready);
            return silo;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            await silo.DisposeAsync();
            throw new InvalidOperationException("The benchmark silo did not start: " +
                (ex is OperationCanceledException ? "no READY within 90 s." : ex.Message) + silo.StderrTail());
        }
    }

    /// <summary>Process figures measured inside the silo; <paramref name="collect"/> forces a full compacting GC first.</summary>
    public async Task<ProcessStats> GetStatsAsync(bool collect, CancellationToken cancellationToken)
    {
        await _process.StandardInput.WriteLineAsync(collect ? "gcstats" : "stats");
        await _process.StandardInput.FlushAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var json = await ReadLineAsync("STATS ", timeout.Token);
        return JsonSerializer.Deserialize<ProcessStats>(json, BenchJson.Options)!;
    }

    private async Task<string> ReadLineAsync(string prefix, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (!await _lines.Reader.WaitToReadAsync(cancellationToken))
                throw new InvalidOperationException($"the silo process exited (code {ExitCodeOrNone()}).{StderrTail()}");
            while (_lines.Reader.TryRead(out var line))
                if (line.StartsWith(prefix, StringComparison.Ordinal)) return line[prefix.Length..].Trim();
        }
    }

    private string ExitCodeOrNone()
    {
        try { return _process.WaitForExit(2000) ? _process.ExitCode.ToString() : "still running"; }
        catch (InvalidOperationException) { return "unknown"; }
    }

    private string StderrTail()
    {
        lock (_stderrTail)
            return _stderrTail.Count == 0 ? "" : Environment.NewLine + "silo stderr:" + Environment.NewLine + string.Join(Environment.NewLine, _stderrTail);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                try { _process.StandardInput.Close(); } catch (IOException) { }
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(25));
                try { await _process.WaitForExitAsync(wait.Token); }
                catch (OperationCanceledException) { _process.Kill(entireProcessTree: true); }
            }
        }
        finally
        {
            _process.Dispose();
        }
    }

    /// <summary>How to start this executable again: its apphost if present, else <c>dotnet lstmorleans.dll</c>.</summary>
    private static (string File, string[] Prefix) SelfCommand()
    {
        var dll = typeof(BenchSiloProcess).Assembly.Location;
        var directory = Path.GetDirectoryName(dll)!;
        var apphost = Path.Combine(directory, OperatingSystem.IsWindows() ? "lstmorleans.exe" : "lstmorleans");
        if (File.Exists(apphost)) return (apphost, []);
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(dotnet))
            dotnet = Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
        return (dotnet, [dll]);
    }
}
