using System.Diagnostics;
using System.Globalization;
using Xunit;

namespace LstmOrleans.Tests.Shared;

/// <summary>
/// Starts a private PostgreSQL server (initdb + pg_ctl) on a free loopback port in a temp folder
/// and stops and removes it afterwards. PostgreSQL refuses to run as root, so as root the server
/// runs as the 'postgres' user through runuser, in a folder owned by it. When the binaries are
/// missing the tests using <see cref="PostgresFactAttribute"/> are skipped, unless CI requires services.
/// </summary>
public sealed class PostgresServerFixture : IAsyncLifetime
{
    private const string ServiceUser = "postgres";

    /// <summary>Folder holding initdb, pg_ctl and postgres (newest installed major version), or null.</summary>
    public static readonly string? BinDirectory = FindBinDirectory();

    public static string? SkipReason => ExternalServer.SkipReasonWhenMissing(BinDirectory, "PostgreSQL (initdb/postgres)", "postgresql");

    private string? _directory;
    private bool _started;

    public int Port { get; private set; }

    /// <summary>Npgsql connection string for the server's superuser and default database.</summary>
    public string ConnectionString =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Pooling=true;Timeout=15";

    private string DataDirectory => Path.Combine(_directory!, "data");

    public async Task InitializeAsync()
    {
        if (BinDirectory is null)
        {
            if (ExternalServer.ServicesRequired)
            {
                throw new InvalidOperationException(ExternalServer.MissingBinaryMessage("PostgreSQL (initdb/postgres)", "postgresql"));
            }

            return; // Tests are marked skipped by PostgresFactAttribute.
        }

        _directory = await ExternalServer.CreateTempDirectoryAsync("lstmorleans-pg", ExternalServer.IsRoot ? ServiceUser : null);
        await RunAsServiceUserAsync("initdb",
            ["-D", DataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
            TimeSpan.FromSeconds(120));

        // The free port can be taken by someone else before the server binds it: try a few.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await StartOnFreePortAsync();
                _started = true;
                return;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
            }
        }
    }

    private async Task StartOnFreePortAsync()
    {
        Port = ExternalServer.FreeLoopbackPort();
        var log = Path.Combine(_directory!, "postgres.log");
        var serverOptions = string.Join(' ',
            "-p", Port.ToString(CultureInfo.InvariantCulture),
            "-h", "127.0.0.1",
            "-k", _directory!,
            "-c", "max_connections=200",
            "-c", "shared_buffers=64MB");
        try
        {
            await RunAsServiceUserAsync("pg_ctl", ["-D", DataDirectory, "-l", log, "-o", serverOptions, "-w", "-t", "60", "start"], TimeSpan.FromSeconds(90));
        }
        catch (Exception exception)
        {
            var logText = File.Exists(log) ? await File.ReadAllTextAsync(log) : "(no log)";
            throw new InvalidOperationException($"PostgreSQL did not start on port {Port}: {exception.Message}\nServer log:\n{logText}", exception);
        }
    }

    private Task RunAsServiceUserAsync(string tool, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var binary = Path.Combine(BinDirectory!, tool);
        return ExternalServer.IsRoot
            ? ExternalServer.RunAsync("runuser", ["-u", ServiceUser, "--", binary, .. arguments], timeout)
            : ExternalServer.RunAsync(binary, arguments, timeout);
    }

    public async Task DisposeAsync()
    {
        if (_started)
        {
            try
            {
                await RunAsServiceUserAsync("pg_ctl", ["-D", DataDirectory, "-m", "immediate", "-w", "-t", "30", "stop"], TimeSpan.FromSeconds(40));
            }
            catch (Exception exception) when (exception is InvalidOperationException or TimeoutException)
            {
                Trace.WriteLine($"Stopping the test PostgreSQL server failed: {exception.Message}");
            }
        }

        ExternalServer.TryDeleteDirectory(_directory);
    }

    private static string? FindBinDirectory()
    {
        const string Root = "/usr/lib/postgresql";
        if (!Directory.Exists(Root))
        {
            return null;
        }

        return Directory.GetDirectories(Root)
            .Select(directory => (Directory: directory, Version: double.TryParse(Path.GetFileName(directory), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : 0))
            .OrderByDescending(candidate => candidate.Version)
            .Select(candidate => Path.Combine(candidate.Directory, "bin"))
            .FirstOrDefault(bin => File.Exists(Path.Combine(bin, "initdb")) && File.Exists(Path.Combine(bin, "pg_ctl")) && File.Exists(Path.Combine(bin, "postgres")));
    }
}

/// <summary>A fact that needs PostgreSQL: skipped with a clear reason when it is missing (unless CI requires it).</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (PostgresServerFixture.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
