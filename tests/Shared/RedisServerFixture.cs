using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Xunit;

namespace LstmOrleans.Tests.Shared;

/// <summary>
/// Starts a private redis-server on a free loopback port with its data in a temp folder
/// (append-only file, fsync on every write) and removes it afterwards. When redis-server is missing
/// the tests using <see cref="RedisFactAttribute"/> are skipped, unless CI requires services.
/// </summary>
public sealed class RedisServerFixture : IAsyncLifetime
{
    public static readonly string? Binary = ExternalServer.FindBinary("redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server");

    /// <summary>Null when Redis tests must run; otherwise why they are skipped.</summary>
    public static string? SkipReason => ExternalServer.SkipReasonWhenMissing(Binary, "redis-server", "redis-server");

    private Process? _process;
    private StringBuilder? _output;
    private string? _directory;

    public int Port { get; private set; }

    /// <summary>StackExchange.Redis configuration string for this server.</summary>
    public string ConfigurationString => $"127.0.0.1:{Port},abortConnect=false";

    public bool IsRunning => _process is { HasExited: false };

    public async Task InitializeAsync()
    {
        if (Binary is null)
        {
            if (ExternalServer.ServicesRequired)
            {
                throw new InvalidOperationException(ExternalServer.MissingBinaryMessage("redis-server", "redis-server"));
            }

            return; // Tests are marked skipped by RedisFactAttribute.
        }

        _directory = await ExternalServer.CreateTempDirectoryAsync("lstmorleans-redis", owner: null);

        // The free port can be taken by someone else before the server binds it: try a few.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await StartOnFreePortAsync();
                return;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                _process?.Dispose();
            }
        }
    }

    private async Task StartOnFreePortAsync()
    {
        Port = ExternalServer.FreeLoopbackPort();
        (_process, _output) = ExternalServer.Start(Binary!,
        [
            "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1",
            "--dir", _directory!,
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]);
        await WaitUntilReadyAsync(TimeSpan.FromSeconds(20));
    }

    private async Task WaitUntilReadyAsync(TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (_process!.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited with {_process.ExitCode} during start. Output:\n{_output}");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", Port);
                var stream = client.GetStream();
                await stream.WriteAsync("PING\r\n"u8.ToArray());
                var buffer = new byte[64];
                var read = await stream.ReadAsync(buffer);
                if (Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (SocketException)
            {
            }
            catch (IOException)
            {
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"redis-server on port {Port} did not answer PING within {timeout}. Output:\n{_output}");
    }

    public async Task DisposeAsync()
    {
        if (_process is not null)
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
        }

        ExternalServer.TryDeleteDirectory(_directory);
    }
}

/// <summary>A fact that needs redis-server: skipped with a clear reason when it is missing (unless CI requires it).</summary>
public sealed class RedisFactAttribute : FactAttribute
{
    public RedisFactAttribute()
    {
        if (RedisServerFixture.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
