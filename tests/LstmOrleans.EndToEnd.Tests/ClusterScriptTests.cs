using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using LstmOrleans.Tests.Shared;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// scripts/cluster.sh on real processes, each test in its own CLUSTER_DIR on free ports (never the script's defaults,
/// which a developer's own cluster or lone silo may hold). At most one cluster start per test.
/// </summary>
public sealed class ClusterScriptTests : IAsyncLifetime
{
    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromSeconds(150);

    private readonly string _clusterDir = Binaries.TempFolder("cluster-sh");
    private readonly Dictionary<string, string> _environment = [];

    public ClusterScriptTests()
    {
        _environment["CLUSTER_DIR"] = _clusterDir;
        _environment["BUILD"] = "0"; // the silo built beside the tests
        // bin/{Configuration}/net10.0/LstmOrleans.Silo.dll: the script looks for the silo of that configuration.
        _environment["CONFIGURATION"] = Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(Binaries.SiloDll)))!;
        _environment["REDIS_PORT"] = Port(Binaries.FreeTcpPort());
        _environment["PG_PORT"] = Port(Binaries.FreeTcpPort());
        _environment["SILO_PORT_BASE"] = Port(FreePortRunBase(2));
        _environment["GATEWAY_PORT_BASE"] = Port(FreePortRunBase(2));
        _environment["HTTP_PORT_BASE"] = Port(FreePortRunBase(2));
        _environment["SILOS"] = "2";
    }

    private int RedisPort => int.Parse(_environment["REDIS_PORT"]);
    private int HttpPort(int silo) => int.Parse(_environment["HTTP_PORT_BASE"]) + silo;

    [RedisFact]
    public async Task A_silo_that_fails_to_start_stops_the_silos_and_Redis_the_start_had_started()
    {
        // Silo 2's HTTP port is held by a listener that accepts and never answers: the silo exits naming the address,
        // and the script's readiness probe must not wait on that listener for ever either.
        using var squatter = new TcpListener(IPAddress.Loopback, HttpPort(2));
        squatter.Start();

        var started = await RunScriptAsync("start");

        Assert.True(started.ExitCode == 1, started.ToString());
        Assert.Contains("silo 2 exited", started.Stderr);
        Assert.Contains($"Failed to bind to address http://127.0.0.1:{HttpPort(2)}", started.Stderr);
        Assert.Contains("start failed: stopping what it started", started.Stderr);
        Assert.False(Accepts(RedisPort), "redis-server is still running after the failed start");
        Assert.False(Accepts(HttpPort(1)), "silo 1 is still running after the failed start");
        Assert.Empty(Directory.GetFiles(_clusterDir, "*.pid"));
    }

    [RedisFact]
    public async Task Start_refuses_a_Redis_port_another_server_holds_and_starts_nothing()
    {
        var foreign = new RedisServerFixture();
        await foreign.InitializeAsync();
        try
        {
            _environment["REDIS_PORT"] = Port(foreign.Port);

            var started = await RunScriptAsync("start");

            // Without the check the silos would have joined whatever cluster the other Redis holds.
            Assert.True(started.ExitCode == 1, started.ToString());
            Assert.Contains($"port {foreign.Port} (REDIS_PORT) is in use", started.Stderr);
            Assert.False(Accepts(HttpPort(1)), "a silo was started on the other Redis");
            Assert.True(foreign.IsRunning, "the failed start stopped the other Redis");
        }
        finally
        {
            await foreign.DisposeAsync();
        }
    }

    [RedisAndPostgresFact]
    public async Task Store_postgres_keeps_the_silos_state_in_a_private_PostgreSQL_restart_silo_revives_a_killed_silo_and_stop_stops_only_this_cluster()
    {
        _environment["STORE"] = "postgres";
        int ownRedisPort = RedisPort;
        var started = await RunScriptAsync("start");
        Assert.True(started.ExitCode == 0, started.ToString());
        Assert.Contains($"postgres on 127.0.0.1:{_environment["PG_PORT"]}", started.Stdout);

        using (var silo1 = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{HttpPort(1)}") })
        using (var silo2 = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{HttpPort(2)}") })
        {
            (await silo1.PostAsync("/models", new StringContent("""{"name":"default","hiddenSize":8}""", Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
            (await silo1.PostAsync("/streams/pg-script-1/observations", new StringContent(
                "{\"sequence\":1,\"value\":1.5}\n{\"sequence\":2,\"value\":2.5}", Encoding.UTF8, "application/x-ndjson"))).EnsureSuccessStatusCode();
            var summary = await silo2.GetFromJsonAsync<JsonElement>("/streams/pg-script-1");
            Assert.Equal(2, summary.GetProperty("lastSequence").GetInt64());
        }

        // The grains' state is in that server's table, not in Redis.
        var rows = await ExternalServer.RunToExitAsync(Path.Combine(PostgresServerFixture.BinDirectory!, "psql"),
            ["-h", "127.0.0.1", "-p", _environment["PG_PORT"], "-U", "postgres", "-d", "postgres", "-Atc",
             "select count(*) from lstm_grain_state where grain_id like '%pg-script-1%'"], TimeSpan.FromSeconds(30));
        Assert.True(rows.ExitCode == 0 && int.Parse(rows.Output.Trim()) >= 1, rows.Output);

        var status = await RunScriptAsync("status");
        Assert.Contains($"postgres: pid", status.Stdout);

        // kill -9 one silo, then restart-silo brings it back with the cluster's settings, and it serves the stream.
        using (var kill = System.Diagnostics.Process.Start("kill", ["-KILL", (await File.ReadAllTextAsync(Path.Combine(_clusterDir, "silo1.pid"))).Trim()])!)
            await kill.WaitForExitAsync();
        var restarted = await RunScriptAsync("restart-silo", "1");
        Assert.True(restarted.ExitCode == 0, restarted.ToString());
        Assert.Contains("silo 1 ready", restarted.Stdout);
        using (var silo1 = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{HttpPort(1)}") })
            Assert.Equal(2, (await silo1.GetFromJsonAsync<JsonElement>("/streams/pg-script-1")).GetProperty("lastSequence").GetInt64());

        // Stop from a shell whose REDIS_PORT names another Redis and that has none of the start's other settings: it
        // must stop this cluster's servers and leave the other Redis alone.
        var other = new RedisServerFixture();
        await other.InitializeAsync();
        try
        {
            foreach (var key in new[] { "STORE", "PG_PORT", "SILOS", "HTTP_PORT_BASE" }) _environment.Remove(key);
            _environment["REDIS_PORT"] = Port(other.Port);
            var stopped = await RunScriptAsync("stop");
            Assert.True(stopped.ExitCode == 0, stopped.ToString());
            Assert.Contains("silo 2 stopped", stopped.Stdout);
            Assert.Contains("postgres stopped", stopped.Stdout);
            Assert.Contains("redis-server stopped", stopped.Stdout);
            Assert.True(other.IsRunning, "stop shut down the other Redis");
            Assert.False(Accepts(ownRedisPort), "stop left the cluster's redis-server running");
            Assert.False(Directory.Exists(Path.Combine(_clusterDir, "postgres")), "stop keeps the PostgreSQL data");
        }
        finally
        {
            await other.DisposeAsync();
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        // Whatever a test left running (a failed assertion before its stop) is stopped here.
        try
        {
            await RunScriptAsync("stop");
        }
        finally
        {
            ExternalServer.TryDeleteDirectory(_clusterDir);
        }
    }

    private async Task<ProcessResult> RunScriptAsync(params string[] command)
    {
        var info = new System.Diagnostics.ProcessStartInfo("bash") { UseShellExecute = false };
        info.ArgumentList.Add(Binaries.ClusterScript);
        foreach (var argument in command) info.ArgumentList.Add(argument);
        foreach (var (key, value) in _environment) info.Environment[key] = value;
        var result = await ExternalServer.RunToExitAsync(info, ScriptTimeout);
        return new ProcessResult(result.ExitCode, result.Stdout, result.Stderr);
    }

    private static string Port(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A base B such that B+1..B+count are free loopback ports now (the script numbers silos from 1).</summary>
    private static int FreePortRunBase(int count)
    {
        while (true)
        {
            int first = Binaries.FreeTcpPort();
            if (Enumerable.Range(first + 1, count - 1).All(IsFree)) return first - 1;
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static bool Accepts(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

/// <summary>A fact that needs both redis-server and PostgreSQL (scripts/cluster.sh with STORE=postgres runs both).</summary>
public sealed class RedisAndPostgresFactAttribute : FactAttribute
{
    public RedisAndPostgresFactAttribute()
    {
        if ((RedisServerFixture.SkipReason ?? PostgresServerFixture.SkipReason) is { } reason) Skip = reason;
    }
}
