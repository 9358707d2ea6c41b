using System.Net;
using System.Net.Sockets;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// Configurations and surroundings the silo host cannot run with: each must stop it quickly with a message that names
/// the setting, exit code 2 for a bad value and 1 for a start that failed, and never an unhandled exception (exit 134).
/// Each of these failures is explained in one line, so neither output carries a stack trace: not the host's own
/// "Hosting failed to start" entry, nor Orleans' errors for its failed start, nor a silo torn down under its work.
/// </summary>
public sealed class SiloStartupFailureTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _folder = Binaries.TempFolder("silostart");

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    /// <summary>The silo's arguments: free ports and a data folder of its own, <paramref name="args"/> winning.</summary>
    private string[] SiloArgs(params string[] args) =>
    [
        $"--Cluster:SiloPort={Binaries.FreeTcpPort()}",
        $"--Cluster:GatewayPort={Binaries.FreeTcpPort()}",
        $"--Http:Urls=http://127.0.0.1:{Binaries.FreeTcpPort()}",
        $"--Storage:DataFolder={Path.Combine(_folder, "data")}",
        .. args,
    ];

    /// <summary>Runs the silo (<see cref="SiloArgs"/>) to its exit.</summary>
    private Task<ProcessResult> RunSiloAsync(params string[] args) => Binaries.RunSiloAsync(Timeout, _folder, SiloArgs(args));

    private static void AssertExit(ProcessResult result, int exitCode, string message)
    {
        Assert.True(result.ExitCode == exitCode, result.ToString());
        Assert.Contains(message, result.Stderr);
        Assert.DoesNotContain("Unhandled exception", result.Stderr);
        Assert.False(result.Stdout.Contains(StackFrame, StringComparison.Ordinal) || result.Stderr.Contains(StackFrame, StringComparison.Ordinal),
            "a stack trace was printed:\n" + result);
    }

    /// <summary>How .NET prints a frame of a stack trace.</summary>
    private const string StackFrame = "   at ";

    [Theory]
    // Choices are accepted in any case, so the connection strings they need must be asked for in any case too.
    [InlineData("--Cluster:Clustering=Redis", "ConnectionStrings:Redis is required")]
    [InlineData("--Storage:Provider=REDIS", "ConnectionStrings:Redis is required")]
    [InlineData("--Reminders:Provider=Redis", "ConnectionStrings:Redis is required")]
    [InlineData("--Storage:Provider=Postgres", "ConnectionStrings:Postgres is required")]
    // Empty would listen on Kestrel's own default (localhost:5000); a path makes Kestrel throw at start.
    [InlineData("--Http:Urls=", "Http:Urls must name at least one http(s) URL")]
    [InlineData("--Http:Urls=http://127.0.0.1:5080/api", "Http:Urls must be ';'-separated http(s) URLs without a path; got 'http://127.0.0.1:5080/api'")]
    // A misspelt key would otherwise leave the default (SQLite) in force without a word.
    [InlineData("--Storage:Provder=memory", "Storage:Provder is not a setting; Storage has Provider, DataFolder")]
    // The interval is a grain timer's period too: past ~49.7 days every stream's activation failed (500 on every push).
    [InlineData("--Streams:PersistInterval=60.00:00:00", "Streams:PersistInterval must be between 00:00:00 and 1.00:00:00; got 60.00:00:00")]
    // Skipped by the configuration: the silo started without the API key the operator meant to set.
    [InlineData("--Http:ApiKey", "command-line argument '--Http:ApiKey' has no value")]
    // Thrown by the configuration as an unhandled exception (exit 134).
    [InlineData("-x=1", "command-line argument '-x=1' is not a setting")]
    public async Task A_bad_value_is_refused_with_exit_code_2_naming_the_key(string arg, string message) =>
        AssertExit(await RunSiloAsync(arg), 2, message);

    [Theory]
    // Linux has no LocalMachine/My store, and CurrentUser/My exists only once something was added to it.
    [InlineData("LocalMachine", "My")]
    [InlineData("CurrentUser", "AddressBook")]
    public async Task A_certificate_store_that_cannot_be_opened_is_a_configuration_error(string location, string store)
    {
        var result = await RunSiloAsync("--Tls:Enabled=true", "--Tls:CertificateSubject=lstmorleans-e2e", "--Tls:TargetHost=silo",
            $"--Tls:CertificateStoreLocation={location}", $"--Tls:CertificateStoreName={store}");
        AssertExit(result, 2, $"cannot open the certificate store {location}/{store}");
    }

    [Fact]
    public async Task SIGTERM_while_the_silo_is_still_starting_stops_it_cleanly()
    {
        var stderr = new System.Text.StringBuilder();
        var (process, output) = await StartJoiningSecondaryAsync(Binaries.FreeTcpPort(), stderr);
        using (process)
        {
            try
            {
                using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
                    await kill.WaitForExitAsync();
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
                process.WaitForExit(); // drain the output readers
                // The unreachable primary's connection warnings (with their exception) are the condition this test
                // provokes, logged while the silo waits; whatever the stop itself printed must be trace-free.
                var result = new ProcessResult(process.ExitCode, WithoutEntries(Text(output), "Connection attempt to endpoint"), Text(stderr));
                AssertExit(result, 0, "lstmorleans silo stopped before it finished starting (shutdown requested).");
            }
            finally
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public async Task A_silo_of_another_cluster_on_the_same_SQLite_folder_stops_naming_the_folder()
    {
        // The running silo holds the folder while it keeps trying to join.
        int primaryPort = Binaries.FreeTcpPort();
        var (process, _) = await StartJoiningSecondaryAsync(primaryPort, new System.Text.StringBuilder());
        using (process)
        {
            try
            {
                // A lone silo (its own primary, so another cluster) with the same data folder: two writers of every stream.
                AssertExit(await RunSiloAsync(), 1,
                    $"Storage:DataFolder '{Path.Combine(_folder, "data")}' is in use by a running silo of another cluster (localhost clustering with primary silo port {primaryPort}");
            }
            finally
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>
    /// A secondary silo whose primary (silo port <paramref name="primaryPort"/>) is not there: it keeps trying to join,
    /// so it is starting for as long as we like. Returned once joining has begun (it failed to reach the primary).
    /// </summary>
    private async Task<(System.Diagnostics.Process Process, System.Text.StringBuilder Output)> StartJoiningSecondaryAsync(int primaryPort, System.Text.StringBuilder stderr)
    {
        var info = Binaries.Dotnet(Binaries.SiloDll, SiloArgs($"--Cluster:PrimarySiloPort={primaryPort}"), _folder);
        var (process, output) = LstmOrleans.Tests.Shared.ExternalServer.Start(info, stderr: stderr);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!Text(output).Contains("Connection attempt to endpoint", StringComparison.Ordinal) && !process.HasExited && clock.Elapsed < Timeout)
            await Task.Delay(100);
        if (process.HasExited)
        {
            process.Dispose();
            Assert.Fail("the secondary silo exited:\n" + Text(output));
        }

        return (process, output);
    }

    private static string Text(System.Text.StringBuilder output)
    {
        lock (output) return output.ToString();
    }

    /// <summary>
    /// <paramref name="output"/> without the console logger's entries (a "warn: Category[id]" line and its indented
    /// lines) whose message starts with <paramref name="message"/>.
    /// </summary>
    private static string WithoutEntries(string output, string message)
    {
        var kept = new System.Text.StringBuilder();
        var lines = output.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            bool header = lines[i].Length > 0 && !char.IsWhiteSpace(lines[i][0]) && lines[i].Contains(": ", StringComparison.Ordinal);
            if (header && i + 1 < lines.Length && lines[i + 1].TrimStart().StartsWith(message, StringComparison.Ordinal))
            {
                for (i++; i + 1 < lines.Length && lines[i + 1].Length > 0 && char.IsWhiteSpace(lines[i + 1][0]); i++) { }
                continue;
            }
            kept.Append(lines[i]).Append('\n');
        }
        return kept.ToString();
    }

    [Fact]
    public async Task A_data_folder_that_is_a_file_is_a_configuration_error()
    {
        var file = Path.Combine(_folder, "a-file");
        await File.WriteAllTextAsync(file, "not a folder");
        AssertExit(await RunSiloAsync($"--Storage:DataFolder={file}"), 2, $"Storage:DataFolder: cannot create the folder '{file}'");
    }

    [Fact]
    public async Task An_advertised_address_this_machine_does_not_have_stops_the_silo_naming_the_setting()
    {
        // 192.0.2.1 is TEST-NET-1: never a local address. Refused before any connection to Redis is tried.
        AssertExit(await RunSiloAsync("--Cluster:Clustering=redis", "--ConnectionStrings:Redis=127.0.0.1:1", "--Cluster:AdvertisedAddress=192.0.2.1"), 1,
            "Cluster:AdvertisedAddress 192.0.2.1 is not an address of this machine");
    }

    [Fact]
    public async Task A_malformed_appsettings_file_is_a_configuration_error_naming_the_file()
    {
        // appsettings.{Environment}.json is read from beside the binary: a name of this test's own, removed afterwards.
        string environment = "E2eMalformed" + Guid.NewGuid().ToString("N")[..8];
        string file = Path.Combine(Path.GetDirectoryName(Binaries.SiloDll)!, $"appsettings.{environment}.json");
        await File.WriteAllTextAsync(file, """{ "Storage": { "Provider": "memory", }""");
        try
        {
            var info = Binaries.Dotnet(Binaries.SiloDll, SiloArgs(), _folder);
            info.Environment["DOTNET_ENVIRONMENT"] = environment;
            var run = await LstmOrleans.Tests.Shared.ExternalServer.RunToExitAsync(info, Timeout);
            AssertExit(new ProcessResult(run.ExitCode, run.Stdout, run.Stderr), 2, $"Failed to load configuration from file '{file}'");
            Assert.Contains("LineNumber: 0 | BytePositionInLine:", run.Stderr); // where the parser stopped (0-based)
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_data_folder_that_cannot_be_written_is_a_configuration_error()
    {
        // A folder that exists but takes no new files, even from root (who ignores permission bits): procfs.
        const string folder = "/proc/self";
        if (!Directory.Exists(folder)) return; // not Linux: nothing to probe with
        AssertExit(await RunSiloAsync($"--Storage:DataFolder={folder}"), 2, $"Storage:DataFolder: cannot write in the folder '{folder}'");
    }

    [Theory]
    [InlineData("--Cluster:SiloPort")]
    [InlineData("--Cluster:GatewayPort")]
    public async Task An_Orleans_port_in_use_stops_the_silo_naming_the_port(string key)
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        AssertExit(await RunSiloAsync($"{key}={port}"), 1, $"{key[2..]} {port}");
    }

    [Theory]
    [InlineData("--Cluster:SiloPort")]
    [InlineData("--Cluster:GatewayPort")]
    public async Task An_Orleans_port_another_silo_listens_on_stops_the_silo_naming_the_port(string key)
    {
        // Bound as Orleans binds its own listeners (ReuseAddress, which .NET on Linux turns into SO_REUSEADDR and
        // SO_REUSEPORT): a second silo's listener bound the same port too, started, and took half of the connections.
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        int port = ((IPEndPoint)taken.LocalEndPoint!).Port;
        AssertExit(await RunSiloAsync($"{key}={port}"), 1, $"{key[2..]} {port} is taken by another process");
    }

    [Theory]
    [InlineData("--Cluster:Clustering=redis", "--ConnectionStrings:Redis", "cannot connect to Redis at 127.0.0.1:{0} (ConnectionStrings:Redis)")]
    [InlineData("--Storage:Provider=redis", "--ConnectionStrings:Redis", "cannot use Redis at 127.0.0.1:{0} (ConnectionStrings:Redis)")]
    [InlineData("--Reminders:Provider=redis", "--ConnectionStrings:Redis", "cannot use Redis at 127.0.0.1:{0} (ConnectionStrings:Redis)")]
    [InlineData("--Storage:Provider=postgres", "--ConnectionStrings:Postgres", "cannot use PostgreSQL at 127.0.0.1:{0} (ConnectionStrings:Postgres)")]
    public async Task A_Redis_or_PostgreSQL_nothing_listens_on_stops_the_silo_naming_the_connection_string(string provider, string key, string message)
    {
        // A free port: nothing answers there, as with a server that is down or a mistyped port.
        int port = Binaries.FreeTcpPort();
        string value = key.EndsWith("Redis", StringComparison.Ordinal) ? $"127.0.0.1:{port}" : $"Host=127.0.0.1;Port={port};Username=postgres";
        AssertExit(await RunSiloAsync(provider, $"{key}={value}"), 1,
            "lstmorleans silo failed to start: " + string.Format(System.Globalization.CultureInfo.InvariantCulture, message, port));
    }

    [Fact]
    public async Task An_unexpected_start_failure_is_printed_whole_with_exit_code_1()
    {
        // https:// without a certificate: Kestrel's InvalidOperationException is no failure Program.cs explains in a
        // line, so its stack trace must still reach the operator. An empty HOME holds no developer certificate.
        var info = Binaries.Dotnet(Binaries.SiloDll, SiloArgs($"--Http:Urls=https://127.0.0.1:{Binaries.FreeTcpPort()}"), _folder);
        info.Environment["HOME"] = Directory.CreateDirectory(Path.Combine(_folder, "home")).FullName;
        var run = await LstmOrleans.Tests.Shared.ExternalServer.RunToExitAsync(info, Timeout);
        var result = new ProcessResult(run.ExitCode, run.Stdout, run.Stderr);
        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains("lstmorleans silo failed: System.InvalidOperationException: Unable to configure HTTPS endpoint", result.Stderr);
        Assert.Contains(StackFrame, result.Stderr);
        Assert.DoesNotContain("Unhandled exception", result.Stderr);
    }

    [Fact]
    public async Task The_HTTP_port_in_use_stops_the_silo_naming_the_address()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var url = $"http://127.0.0.1:{((IPEndPoint)taken.LocalEndpoint).Port}";
        AssertExit(await RunSiloAsync($"--Http:Urls={url}"), 1, $"Failed to bind to address {url}");
    }
}
