using LstmOrleans.Client.Bench;
using LstmOrleans.Silo.Hosting;
using Xunit;
using System.Text.Json;

namespace LstmOrleans.Client.Tests.Bench;

/// <summary>
/// Runs the real <c>lstmorleans bench</c> executable for a couple of seconds with tiny settings (it starts its own
/// silo processes) and checks the JSON report is complete and sane. Checks that the tool works, not how fast it is.
/// </summary>
public sealed class BenchSmokeTests
{
    [Fact]
    public async Task Bench_reports_positive_throughput_and_ordered_latencies_for_memory_and_sqlite()
    {
        using var json = await LstmOrleansProcess.RunJsonAsync(
            "bench", "--stores", "memory,sqlite", "--streams", "20", "--concurrency", "4", "--batch", "8",
            "--hidden", "4", "--duration", "1", "--warmup", "0.3", "--tests", "ping,echo,single,batch", "--json");
        var root = json.RootElement;
        var baseline = root.GetProperty("baseline");
        Assert.Equal("ping", baseline.GetProperty("test").GetString());
        Assert.True(baseline.GetProperty("callsPerSecond").GetDouble() > 0);

        var results = root.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(["memory", "sqlite"], results.Select(r => r.GetProperty("store").GetString()));
        foreach (var store in results)
        {
            Assert.Equal(JsonValueKind.Null, store.GetProperty("skipped").ValueKind);
            Assert.True(store.GetProperty("siloActive").GetProperty("rssBytes").GetInt64() > 10 << 20, "silo RSS should be measured");
            // The bench's silo process runs the collector the silo host ships with (server GC, DATAS at 1 %), as the
            // silo process itself reports it: the runtimeconfig setting reached the runtime.
            // (On a single processor the runtime falls back to workstation GC, and there is no DATAS.)
            var gc = store.GetProperty("siloIdle").GetProperty("gc").GetString()!;
            if (Environment.ProcessorCount == 1) Assert.StartsWith("workstation GC", gc);
            else
            {
                Assert.StartsWith("server GC, ", gc);
                Assert.EndsWith($"; DATAS target TCP {RuntimeGcSettings.SiloDatasTargetTcpPercent} %", gc);
            }
            Assert.True(store.GetProperty("activationsPerSecond").GetDouble() > 0);
            // The embedded store's disk is probed before its silo starts; the memory store has no disk.
            var diskSync = store.GetProperty("diskSync");
            if (store.GetProperty("store").GetString() == "sqlite")
            {
                Assert.Equal(DiskSyncProbe.DefaultSyncs, diskSync.GetProperty("syncs").GetInt32());
                var sync = diskSync.GetProperty("latency");
                Assert.True(sync.GetProperty("p50Us").GetDouble() > 0 && sync.GetProperty("p50Us").GetDouble() <= sync.GetProperty("p99Us").GetDouble());
            }
            else Assert.Equal(JsonValueKind.Null, diskSync.ValueKind);
            var phases = store.GetProperty("phases").EnumerateArray().ToDictionary(p => p.GetProperty("test").GetString()!);
            Assert.Contains("echo", phases.Keys);
            Assert.Contains("single", phases.Keys);
            Assert.Contains("batch", phases.Keys);
            foreach (var (name, phase) in phases)
            {
                long calls = phase.GetProperty("calls").GetInt64();
                Assert.True(calls > 0, $"{name}: no calls");
                Assert.Equal(0, phase.GetProperty("errors").GetInt64());
                int batch = phase.GetProperty("batchSize").GetInt32();
                Assert.Equal(name == "batch" ? 8 : 1, batch);
                Assert.Equal(calls * batch, phase.GetProperty("values").GetInt64());
                Assert.True(phase.GetProperty("valuesPerSecond").GetDouble() > 0);
                var latency = phase.GetProperty("latency");
                double p50 = latency.GetProperty("p50Us").GetDouble(), p99 = latency.GetProperty("p99Us").GetDouble();
                double p999 = latency.GetProperty("p999Us").GetDouble(), max = latency.GetProperty("maxUs").GetDouble();
                Assert.True(p50 > 0 && p50 <= p99 && p99 <= p999 && p999 <= max, $"{name}: latencies {p50} {p99} {p999} {max}");
                if (name != "ping") Assert.True(phase.GetProperty("ratioToBaseline").GetDouble() > 0);
                Assert.True(phase.GetProperty("siloCpuUsPerValue").GetDouble() > 0);
            }
        }
    }

    [Fact]
    public async Task Fixed_rate_ingest_makes_exactly_the_scheduled_calls_in_order_per_stream_and_reports_its_send_lag()
    {
        // 400 values/s for 1 s over 20 streams: the schedule holds exactly 400 calls. Sequence numbers out of order would
        // be refused by the stream (errors), and the reload phase checks each stream kept its last acknowledged one.
        using var json = await LstmOrleansProcess.RunJsonAsync(
            "bench", "--stores", "memory", "--streams", "20", "--tests", "single,reload", "--rate", "400",
            "--hidden", "4", "--duration", "1", "--warmup", "0.2", "--json");
        var phases = json.RootElement.GetProperty("results")[0].GetProperty("phases").EnumerateArray()
            .ToDictionary(p => p.GetProperty("test").GetString()!);
        var single = phases["single"];
        Assert.Equal(400, single.GetProperty("calls").GetInt64());
        Assert.Equal(0, single.GetProperty("errors").GetInt64());
        Assert.Equal(400, single.GetProperty("targetValuesPerSecond").GetDouble());
        var lag = single.GetProperty("sendLag");
        Assert.True(lag.GetProperty("p50Us").GetDouble() <= lag.GetProperty("maxUs").GetDouble());
        // How many calls waited behind their stream depends on the machine; the accounting must still be consistent:
        // no more queued calls than calls, and no stream's backlog longer than the queued total.
        long queued = single.GetProperty("queuedBehindStream").GetInt64();
        int maxBacklog = single.GetProperty("maxStreamBacklog").GetInt32();
        Assert.InRange(queued, 0, 400);
        Assert.InRange(maxBacklog, 0, queued);
        var reload = phases["reload"];
        Assert.Equal(20, reload.GetProperty("calls").GetInt64());
        Assert.Equal(0, reload.GetProperty("errors").GetInt64());
    }

    [Fact]
    public async Task Rate_half_measures_the_closed_loop_maximum_then_offers_half_of_it_at_a_fixed_rate()
    {
        var (exit, stdout, stderr) = await LstmOrleansProcess.RunAsync(
            "bench", "--stores", "memory", "--streams", "20", "--tests", "single", "--rate", "half",
            "--hidden", "4", "--duration", "1", "--warmup", "0.2", "--json");
        Assert.True(exit == 0, $"exit {exit}\nstdout:\n{stdout}\nstderr:\n{stderr}");

        using var json = JsonDocument.Parse(stdout);
        Assert.Equal(0.5, json.RootElement.GetProperty("settings").GetProperty("rateFraction").GetDouble());
        var phases = json.RootElement.GetProperty("results")[0].GetProperty("phases").EnumerateArray().ToList();
        Assert.Equal(2, phases.Count);
        var (maximum, paced) = (phases[0], phases[1]);
        Assert.All(phases, p => Assert.Equal("single", p.GetProperty("test").GetString()));
        Assert.Equal(JsonValueKind.Null, maximum.GetProperty("targetValuesPerSecond").ValueKind);
        Assert.Equal(JsonValueKind.Null, maximum.GetProperty("sendLag").ValueKind);
        double max = maximum.GetProperty("valuesPerSecond").GetDouble();
        Assert.True(max > 0);
        Assert.Equal(max, paced.GetProperty("maxValuesPerSecond").GetDouble());
        Assert.Equal(0.5, paced.GetProperty("rateFraction").GetDouble());
        double offered = paced.GetProperty("targetValuesPerSecond").GetDouble();
        Assert.Equal(max / 2, offered, 6);
        // The schedule of a 1 s phase at the offered rate holds rate x 1 s calls (to within rounding at its end).
        Assert.InRange(paced.GetProperty("calls").GetInt64(), (long)Math.Floor(offered) - 1, (long)Math.Ceiling(offered) + 1);
        Assert.Equal(0, paced.GetProperty("errors").GetInt64());
        Assert.Equal("pool", paced.GetProperty("pacerSend").GetString());
        Assert.Contains("at 0.5 x the closed-loop maximum", stderr);
        // How much of the machine the rate took: the client's and the silo's CPU per value times the rate, in cores.
        double cores = paced.GetProperty("coresUsed").GetDouble();
        double perValueUs = paced.GetProperty("clientCpuUsPerValue").GetDouble() + paced.GetProperty("siloCpuUsPerValue").GetDouble();
        Assert.Equal(perValueUs * paced.GetProperty("valuesPerSecond").GetDouble() / 1e6, cores, 9);
        Assert.InRange(cores, 1e-6, 2.0 * Environment.ProcessorCount);
        Assert.Contains($" of {Environment.ProcessorCount} cores", stderr);
    }

    [Fact]
    public async Task Rate_half_closed_loop_probes_caller_counts_and_measures_the_fewest_that_reach_half_the_maximum()
    {
        var (exit, stdout, stderr) = await LstmOrleansProcess.RunAsync(
            "bench", "--stores", "memory", "--streams", "20", "--tests", "single", "--rate", "half", "--rate-model", "closed",
            "--concurrency", "8", "--hidden", "4", "--duration", "1", "--warmup", "0.2", "--json");
        Assert.True(exit == 0, $"exit {exit}\nstdout:\n{stdout}\nstderr:\n{stderr}");

        using var json = JsonDocument.Parse(stdout);
        Assert.Equal("closed", json.RootElement.GetProperty("settings").GetProperty("rateModel").GetString());
        var phases = json.RootElement.GetProperty("results")[0].GetProperty("phases").EnumerateArray().ToList();
        Assert.Equal(2, phases.Count);
        var (maximum, atHalf) = (phases[0], phases[1]);
        Assert.Equal(8, maximum.GetProperty("concurrency").GetInt32());
        Assert.Equal(JsonValueKind.Null, maximum.GetProperty("rateModel").ValueKind);
        double max = maximum.GetProperty("valuesPerSecond").GetDouble();
        Assert.Equal(max, atHalf.GetProperty("maxValuesPerSecond").GetDouble());
        Assert.Equal("closed", atHalf.GetProperty("rateModel").GetString());
        Assert.Equal(JsonValueKind.Null, atHalf.GetProperty("targetValuesPerSecond").ValueKind);   // closed loop: nothing offered
        Assert.Equal(JsonValueKind.Null, atHalf.GetProperty("sendLag").ValueKind);
        int callers = atHalf.GetProperty("concurrency").GetInt32();
        Assert.Contains(callers, BenchRunner.CallerLadder(8));
        Assert.Equal(0, atHalf.GetProperty("errors").GetInt64());
        Assert.Contains("probe: 1 callers", stderr);                                                  // the ladder starts at one caller
        Assert.Contains($"closed loop with {callers} callers", stderr);
        // Either the measured run reached half the maximum or the ladder (or its two re-measurements) ran out.
        Assert.True(atHalf.GetProperty("valuesPerSecond").GetDouble() >= max / 2 || callers == 8 || stderr.Contains("below", StringComparison.Ordinal),
            stderr);
    }

    [Fact]
    public async Task Bench_rejects_a_durable_store_without_its_connection_string()
    {
        var (exit, _, stderr) = await LstmOrleansProcess.RunAsync("bench", "--stores", "redis", "--duration", "1");
        Assert.Equal(2, exit);
        Assert.Contains("--redis", stderr);
    }

    /// <summary>LSTMORLEANS_* variables given with --silo-env are silo settings: a bad one stops the bench silo with its message.</summary>
    [Fact]
    public async Task Silo_settings_reach_the_bench_silo_through_silo_env()
    {
        static string[] DataFolders() => Directory.GetDirectories(Path.GetTempPath(), "lstmorleans-bench-*-sqlite-4");
        var before = DataFolders();
        using var json = await LstmOrleansProcess.RunJsonAsync("bench", "--stores", "sqlite", "--streams", "4", "--tests", "single",
            "--duration", "0.5", "--warmup", "0", "--silo-env", "LSTMORLEANS_Storage__SqliteWalCheckpointPages=5", "--json");
        var sqlite = json.RootElement.GetProperty("results")[0];
        Assert.Contains("Storage:SqliteWalCheckpointPages must be in 100..1000000; got 5", sqlite.GetProperty("skipped").GetString());
        // The disk probe ran in the store's data folder before the silo refused to start; the skip removes it too.
        Assert.Empty(DataFolders().Except(before));
    }

    [Theory]
    [InlineData("--pacer-burst-us", "0")]
    [InlineData("--silo-env", "NOT A PAIR")]
    [InlineData("--rate", "quarter")]
    [InlineData("--rate-fraction", "2")]
    [InlineData("--pacer-send", "inline")]
    [InlineData("--connections", "0")]
    public async Task Bench_rejects_a_bad_option_value(string option, string value)
    {
        var (exit, _, stderr) = await LstmOrleansProcess.RunAsync("bench", "--stores", "memory", option, value, "--duration", "1");
        Assert.Equal(2, exit);
        Assert.Contains(option, stderr);
    }

    [Fact]
    public async Task Ratio_alternates_the_no_op_call_and_single_ingest_and_reports_each_round_and_the_median()
    {
        using var json = await LstmOrleansProcess.RunJsonAsync(
            "bench", "--stores", "memory", "--streams", "20", "--concurrency", "4", "--hidden", "4",
            "--duration", "2", "--warmup", "0.2", "--rounds", "4", "--tests", "ratio,reload", "--connections", "2", "--json");

        // Two connections to the gateway (several connection loops on each side) carry the same calls.
        Assert.Equal(2, json.RootElement.GetProperty("settings").GetProperty("connections").GetInt32());
        var store = Assert.Single(json.RootElement.GetProperty("results").EnumerateArray());
        var ratio = store.GetProperty("ratio");
        Assert.Equal(4, ratio.GetProperty("rounds").GetInt32());
        Assert.Equal(0.5, ratio.GetProperty("sliceSeconds").GetDouble(), 1e-9);
        Assert.Equal(0, ratio.GetProperty("errors").GetInt64());
        var rounds = ratio.GetProperty("each").EnumerateArray().ToList();
        Assert.Equal([1, 2, 3, 4], rounds.Select(r => r.GetProperty("round").GetInt32()));
        var ratios = new List<double>();
        foreach (var round in rounds)
        {
            double noOp = round.GetProperty("noOpCallsPerSecond").GetDouble(), single = round.GetProperty("singleValuesPerSecond").GetDouble();
            Assert.True(noOp > 0 && single > 0, $"round rates {noOp} {single}");
            Assert.Equal(single / noOp, round.GetProperty("ratio").GetDouble(), 1e-9);
            ratios.Add(single / noOp);
        }
        ratios.Sort();
        Assert.Equal((ratios[1] + ratios[2]) / 2, ratio.GetProperty("medianRatio").GetDouble(), 1e-9);
        Assert.Equal(ratios[0], ratio.GetProperty("minRatio").GetDouble(), 1e-9);
        Assert.Equal(ratios[3], ratio.GetProperty("maxRatio").GetDouble(), 1e-9);

        // The single slices were real ingests: every stream reloads from storage with the last sequence it acknowledged.
        var reload = Assert.Single(store.GetProperty("phases").EnumerateArray());
        Assert.Equal("reload", reload.GetProperty("test").GetString());
        Assert.Equal(20, reload.GetProperty("calls").GetInt64());
        Assert.Equal(0, reload.GetProperty("errors").GetInt64());
    }
}
