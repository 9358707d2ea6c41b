using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LstmOrleans.Client.Commands;
using Spectre.Console;

namespace LstmOrleans.Client.Bench;

/// <summary>
/// <c>lstmorleans bench</c>: measures the Orleans ceiling (a no-op grain call) and stream ingest (single observations
/// and batches) with in-memory state and each durable store, like redis-benchmark does for Redis.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var stores = new Option<string[]>("--stores", "-s")
        {
            Description = "Stores to measure, comma-separated: memory, sqlite, redis, postgres (default: memory,sqlite, plus redis/postgres when their connection string is given).",
            AllowMultipleArgumentsPerToken = true,
        };
        var redis = new Option<string?>("--redis") { Description = "Redis connection (host:port) for the redis store." };
        var postgres = new Option<string?>("--postgres") { Description = "Npgsql connection string for the postgres store." };
        var cluster = new Option<string?>("--cluster", "-c")
        {
            Description = "Benchmark a running cluster (gateways host:port[,...] or redis://host:port) instead of starting a silo; its configured store is used.",
        };
        var clusterId = new Option<string>("--cluster-id") { Description = "ClusterId with --cluster.", DefaultValueFactory = _ => "lstmorleans" };
        var serviceId = new Option<string>("--service-id") { Description = "ServiceId with --cluster.", DefaultValueFactory = _ => "lstmorleans" };
        var streams = new Option<string>("--streams", "-n")
        {
            Description = "Active streams, comma-separated for several runs (e.g. 1000,100000; each gets a fresh silo).",
            DefaultValueFactory = _ => "1000",
        };
        var concurrency = new Option<int>("--concurrency", "-C") { Description = "Calls in flight (closed-loop workers).", DefaultValueFactory = _ => 128 };
        var batch = new Option<int>("--batch", "-b") { Description = "Observations per batch call.", DefaultValueFactory = _ => 64 };
        var hidden = new Option<int>("--hidden") { Description = "Model hidden size H.", DefaultValueFactory = _ => 32 };
        var layers = new Option<int>("--layers") { Description = "Model layers L.", DefaultValueFactory = _ => 1 };
        var duration = new Option<double>("--duration", "-d") { Description = "Measured seconds per phase.", DefaultValueFactory = _ => 10 };
        var warmup = new Option<double>("--warmup", "-w") { Description = "Warm-up seconds before each phase (not measured).", DefaultValueFactory = _ => 3 };
        var rate = new Option<string?>("--rate", "-r")
        {
            Description = "Fixed offered load in observations/s for the measured phases (latency counted from the scheduled send time), or 'half': the same as --rate-fraction 0.5. Default: as fast as possible.",
        };
        var rateFraction = new Option<double?>("--rate-fraction")
        {
            Description = "Measure each phase closed loop first (its maximum on this silo), then at this fraction (0..1] of that maximum at a fixed rate; both are reported (issue 8's latency target is p99 at 0.5).",
        };
        var rateModel = new Option<string>("--rate-model")
        {
            Description = "With --rate-fraction / --rate half: open (default; calls at a fixed rate, latency from each call's scheduled time) or closed (the fewest closed-loop callers whose rate reaches the fraction, found by short probes; latency from each call's send).",
            DefaultValueFactory = _ => BenchSettings.RateModelOpen,
        };
        var pacerSend = new Option<string>("--pacer-send")
        {
            Description = "Fixed rate: which thread makes each call: pool (default; a thread-pool thread) or pacer (the pacing thread itself, as in session 4; for A/B).",
            DefaultValueFactory = _ => BenchSettings.PacerSendPool,
        };
        var tests = new Option<string>("--tests", "-t") { Description = "Phases to run: ping,echo,single,batch,batch-rows,reload (echo: the no-op call with single ingest's messages, an Observation in and a StepResult out, to separate the messages' cost from the step and the write; batch: the columnar IngestColumns API; batch-rows: the same batches through the row IngestBatch API; reload: deactivate all idle streams, read each back and check it is intact), or scale alone (memory and throughput at --streams vs --scale-base, idle deactivation, bitwise intact reactivation). ratio: the no-op call and single ingest in --rounds alternating slices on the same silo, single's ratio to the no-op call per round and its median (the comparison a noisy machine needs).", DefaultValueFactory = _ => "ping,single,batch" };
        var rounds = new Option<int>("--rounds") { Description = "ratio: rounds of (no-op slice, single slice), each --duration / rounds seconds, the order flipping every round.", DefaultValueFactory = _ => 8 };
        var history = new Option<int?>("--history") { Description = "Override the silo's per-stream history capacity (StreamGrainOptions.HistoryCapacity, default 512)." };
        var persistEvery = new Option<int?>("--persist-every") { Description = "Override StreamGrainOptions.PersistEverySteps (default 1: every acknowledged step is durable)." };
        var orleansSerializer = new Option<bool>("--orleans-storage-serializer")
        {
            Description = "Experiment: give the silo Orleans' binary IGrainStorageSerializer instead of the default JSON one (affects the memory and redis stores).",
        };
        var reportEvery = new Option<double?>("--report-every")
        {
            Description = "Also print a line per interval of this many seconds during each measured phase (calls, errors, p50/p99/max latency of that interval), for soak runs.",
        };
        var scaleBase = new Option<int>("--scale-base") { Description = "scale: the stream count whose single-ingest throughput is compared with the throughput at --streams (same silo, same run).", DefaultValueFactory = _ => 1000 };
        var scaleSample = new Option<int>("--scale-sample") { Description = "scale: streams checked bit for bit after idle deactivation and reactivation (evenly spaced).", DefaultValueFactory = _ => 1000 };
        var scaleRounds = new Option<int>("--scale-rounds") { Description = "scale: rounds of (ingest over --scale-base streams, ingest over all --streams), alternated so load drift affects both.", DefaultValueFactory = _ => 2 };
        var idle = new Option<double>("--idle") { Description = "scale: idle seconds before deactivating every stream activation idle at least that long (0: all idle ones at once).", DefaultValueFactory = _ => 0 };
        var scaleFault = new Option<string?>("--scale-fault") { Description = "Testing only: inject a fault the scale check must detect (before, twin).", Hidden = true };
        var siloGc = new Option<string?>("--silo-gc") { Description = "GC mode of the bench silo process: server (default, as the product's silo host runs), workstation, conserve (workstation + GCConserveMemory)." };
        var sqliteSynchronous = new Option<string?>("--sqlite-synchronous") { Description = "SQLite store: what an acknowledged write survives, passed to the silo as Storage:SqliteSynchronous: full (default; fsync per commit) or normal (process kill only; no fsync per commit)." };
        var siloEnv = new Option<string[]>("--silo-env")
        {
            Description = "Extra environment variable NAME=VALUE for the bench silo process (repeatable), e.g. DOTNET_TieredPGO=0; applied after --silo-gc. LSTMORLEANS_* variables are silo settings, as for the real silo host (e.g. LSTMORLEANS_Storage__SqliteWalCheckpointPages=1000000); the bench's own cluster, port and store choices win.",
            AllowMultipleArgumentsPerToken = false,
        };
        var pacerBurst = new Option<double>("--pacer-burst-us")
        {
            Description = "Fixed rate: the pacing thread's shortest sleep in microseconds (larger: fewer wake-ups, burstier sends, more send lag).",
            DefaultValueFactory = _ => 100,
        };
        var clientGen0 = new Option<int>("--client-gen0-mb")
        {
            Description = "GC gen0 budget of this (the load generator's) process in MiB, so its own collections rarely pause the calls it times: the bench re-runs itself with DOTNET_GCgen0size set (the silo is not affected). 0: the runtime's default. Ignored when DOTNET_GCgen0size is already set.",
            DefaultValueFactory = _ => BenchClientGc.DefaultGen0MiB,
        };
        var connections = new Option<int>("--connections")
        {
            Description = "TCP connections from the bench's client to the gateway (Orleans' ConnectionOptions.ConnectionsPerEndpoint). More than one spreads the silo's receive work over several connection loops, as several clients would.",
            DefaultValueFactory = _ => 1,
        };
        var json = new Option<bool>("--json") { Description = "Write the results as JSON to stdout (progress goes to stderr)." };
        var verbose = new Option<bool>("--verbose") { Description = "Echo the silo process's log to stderr." };

        var command = new Command("bench", "Benchmark: no-op grain call ceiling, then single and batch ingest per store (observations/s, p50/p99/p99.9 latency, silo memory).")
        {
            stores, redis, postgres, cluster, clusterId, serviceId, streams, concurrency, batch, hidden, layers, duration, warmup, rate,
            rateFraction, rateModel,
            tests, rounds, history, persistEvery, orleansSerializer, reportEvery, scaleBase, scaleSample, scaleRounds, idle, scaleFault, siloGc, sqliteSynchronous, siloEnv, pacerBurst, pacerSend, clientGen0, connections, json, verbose,
        };
        command.Subcommands.Add(BenchSiloHost.Create());
        command.SetAction((result, ct) => CommandSupport.RunAsync(async () =>
        {
            var (fixedRate, fraction) = ParseRate(result.GetValue(rate), result.GetValue(rateFraction));
            var settings = new BenchSettings(
                ParseStores(result.GetValue(stores), result.GetValue(redis), result.GetValue(postgres)),
                result.GetValue(redis), result.GetValue(postgres), result.GetValue(cluster),
                result.GetValue(clusterId)!, result.GetValue(serviceId)!,
                ParseStreams(result.GetValue(streams)!),
                Positive(result.GetValue(concurrency), "--concurrency", 100_000),
                Positive(result.GetValue(batch), "--batch", 1_000_000),
                Positive(result.GetValue(hidden), "--hidden", 4096),
                Positive(result.GetValue(layers), "--layers", 16),
                Seconds(result.GetValue(duration), "--duration", allowZero: false),
                Seconds(result.GetValue(warmup), "--warmup", allowZero: true),
                fixedRate,
                ParseTests(result.GetValue(tests)!, fraction is not null),
                result.GetValue(history) is { } h ? Positive(h, "--history", 1_000_000) : null,
                result.GetValue(persistEvery) is { } p ? Positive(p, "--persist-every", 1_000_000) : null,
                result.GetValue(orleansSerializer),
                result.GetValue(verbose))
            {
                ReportEverySeconds = result.GetValue(reportEvery) is { } every ? Seconds(every, "--report-every", allowZero: false) : null,
                ScaleBaseStreams = Positive(result.GetValue(scaleBase), "--scale-base", 50_000_000),
                ScaleSample = Positive(result.GetValue(scaleSample), "--scale-sample", 1_000_000),
                ScaleRounds = Positive(result.GetValue(scaleRounds), "--scale-rounds", 100),
                Rounds = Positive(result.GetValue(rounds), "--rounds", 1000),
                ScaleIdleSeconds = Seconds(result.GetValue(idle), "--idle", allowZero: true),
                ScaleFault = ScaleFaults.IsKnown(result.GetValue(scaleFault)) ? result.GetValue(scaleFault) : throw new ArgumentException($"--scale-fault: unknown fault '{result.GetValue(scaleFault)}'."),
                SiloGc = result.GetValue(siloGc) is { } gc && BenchRunner.SiloGcEnvironment(gc) is not null ? gc : BenchSettings.SiloGcServer,
                SqliteSynchronous = ParseSqliteSynchronous(result.GetValue(sqliteSynchronous)),
                SiloEnvironment = ParseEnvironment(result.GetValue(siloEnv)),
                PacerBurstMicroseconds = result.GetValue(pacerBurst) is var burst && double.IsFinite(burst) && burst >= 1 && burst <= 100_000
                    ? burst : throw new ArgumentException($"--pacer-burst-us must be in 1..100000; got {result.GetValue(pacerBurst)}."),
                RateFraction = fraction,
                PacerSend = ParsePacerSend(result.GetValue(pacerSend)),
                RateModel = ParseRateModel(result.GetValue(rateModel), fraction is not null),
                Connections = Positive(result.GetValue(connections), "--connections", 64),
            };
            int gen0MiB = BenchClientGc.ParseGen0MiB(result.GetValue(clientGen0));
            if (BenchClientGc.ShouldRunAgain(gen0MiB, Environment.GetEnvironmentVariable)) return await BenchClientGc.RunAgainAsync(gen0MiB, ct);
            bool asJson = result.GetValue(json);
            void Progress(string line)
            {
                if (asJson) Console.Error.WriteLine(line);
                else AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]");
            }
            var report = await new BenchRunner(settings, Progress).RunAsync(ct);
            if (asJson) Console.Out.WriteLine(JsonSerializer.Serialize(report, BenchJson.Indented));
            else BenchTable.Write(report);
            bool anyFailed = report.Results.Any(r => r.Phases.Any(p => p.Errors > 0 && p.Calls == 0) || r.Scale is { Passed: false }
                || (r.Ratio is { } ratio && ratio.Each.Any(round => round.NoOpCallsPerSecond == 0 || round.SingleValuesPerSecond == 0)));
            return anyFailed ? 1 : 0;
        }));
        return command;
    }

    private static string[] Split(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>--sqlite-synchronous: null (the silo's default), "full" or "normal" (any case); anything else is refused.</summary>
    internal static string? ParseSqliteSynchronous(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null => null,
        "full" => "full",
        "normal" => "normal",
        _ => throw new ArgumentException($"--sqlite-synchronous: unknown level '{value}' (full, normal)."),
    };

    internal static IReadOnlyList<string> ParseStores(string[]? values, string? redis, string? postgres)
    {
        var stores = (values ?? []).SelectMany(Split).Select(s => s.ToLowerInvariant()).Distinct().ToList();
        if (stores.Count == 0)
        {
            stores = ["memory", "sqlite"];
            if (!string.IsNullOrWhiteSpace(redis)) stores.Add("redis");
            if (!string.IsNullOrWhiteSpace(postgres)) stores.Add("postgres");
        }
        foreach (var s in stores)
        {
            if (s is not ("memory" or "sqlite" or "redis" or "postgres"))
                throw new ArgumentException($"--stores: unknown store '{s}' (memory, sqlite, redis, postgres).");
            if (s == "redis" && string.IsNullOrWhiteSpace(redis)) throw new ArgumentException("--stores redis needs --redis host:port.");
            if (s == "postgres" && string.IsNullOrWhiteSpace(postgres)) throw new ArgumentException("--stores postgres needs --postgres CONNECTION_STRING.");
        }
        return stores;
    }

    internal static IReadOnlyList<int> ParseStreams(string text)
    {
        var counts = new List<int>();
        foreach (var part in Split(text))
        {
            var cleaned = part.Replace("_", "");
            int multiplier = 1;
            if (cleaned.EndsWith('k') || cleaned.EndsWith('K')) { multiplier = 1000; cleaned = cleaned[..^1]; }
            else if (cleaned.EndsWith('m') || cleaned.EndsWith('M')) { multiplier = 1_000_000; cleaned = cleaned[..^1]; }
            if (!int.TryParse(cleaned, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) || n < 1 || (long)n * multiplier > 50_000_000)
                throw new ArgumentException($"--streams: '{part}' is not a stream count in 1..50000000 (e.g. 1000, 100k, 1m).");
            counts.Add(n * multiplier);
        }
        if (counts.Count == 0) throw new ArgumentException("--streams names no count.");
        return counts;
    }

    internal static IReadOnlyDictionary<string, string>? ParseEnvironment(string[]? values)
    {
        if (values is null || values.Length == 0) return null;
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var value in values)
        {
            int equals = value.IndexOf('=');
            string name = equals < 0 ? value : value[..equals];
            if (equals < 1 || !System.Text.RegularExpressions.Regex.IsMatch(name, "^[A-Za-z_][A-Za-z0-9_]*$"))
                throw new ArgumentException($"--silo-env: '{value}' is not NAME=VALUE with a variable name of letters, digits and underscores.");
            environment[name] = value[(equals + 1)..];
        }
        return environment;
    }

    /// <summary>
    /// --rate and --rate-fraction: a fixed rate (positive observations/s), or a fraction in (0, 1] of each phase's
    /// closed-loop maximum (--rate-fraction F, or --rate half for 0.5), or neither (closed loop). Not both.
    /// </summary>
    internal static (double? Rate, double? Fraction) ParseRate(string? rate, double? fraction)
    {
        if (fraction is { } f && !(f > 0 && f <= 1))
            throw new ArgumentException($"--rate-fraction must be in (0, 1]; got {f.ToString(CultureInfo.InvariantCulture)}.");
        if (rate is null) return (null, fraction);
        if (fraction is not null) throw new ArgumentException("--rate and --rate-fraction exclude each other: give a rate in observations/s or a fraction of the maximum.");
        var text = rate.Trim();
        if (text.Equals("half", StringComparison.OrdinalIgnoreCase)) return (null, 0.5);
        if (double.TryParse(text.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var r) && r > 0 && double.IsFinite(r))
            return (r, null);
        throw new ArgumentException($"--rate must be a positive number of observations/s or 'half'; got '{rate}'.");
    }

    /// <summary>--rate-model: open or closed (any case); closed only applies to a fraction of the maximum.</summary>
    internal static string ParseRateModel(string? value, bool rateFraction)
    {
        var model = value?.Trim().ToLowerInvariant() switch
        {
            null or BenchSettings.RateModelOpen => BenchSettings.RateModelOpen,
            BenchSettings.RateModelClosed => BenchSettings.RateModelClosed,
            _ => throw new ArgumentException($"--rate-model: unknown value '{value}' (open, closed)."),
        };
        if (model == BenchSettings.RateModelClosed && !rateFraction)
            throw new ArgumentException("--rate-model closed needs --rate-fraction or --rate half (a fraction of the closed-loop maximum to reach).");
        return model;
    }

    /// <summary>--pacer-send: pool or pacer (any case).</summary>
    internal static string ParsePacerSend(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or BenchSettings.PacerSendPool => BenchSettings.PacerSendPool,
        BenchSettings.PacerSendThread => BenchSettings.PacerSendThread,
        _ => throw new ArgumentException($"--pacer-send: unknown value '{value}' (pool, pacer)."),
    };

    internal static IReadOnlyList<string> ParseTests(string text, bool rateFraction = false)
    {
        var tests = Split(text).Select(t => t.ToLowerInvariant()).Distinct().ToList();
        foreach (var t in tests)
            if (t is not (BenchSettings.Ping or BenchSettings.Echo or BenchSettings.Single or BenchSettings.Batch or BenchSettings.BatchRows or BenchSettings.Reload or BenchSettings.Scale or BenchSettings.Ratio))
                throw new ArgumentException($"--tests: unknown phase '{t}' (ping, echo, single, batch, batch-rows, reload, scale, ratio).");
        if (tests.Count == 0) throw new ArgumentException("--tests names no phase.");
        if (tests.Contains(BenchSettings.Scale) && tests.Count > 1) throw new ArgumentException("--tests scale runs alone (it measures its own ingest phases).");
        if (tests.Contains(BenchSettings.Scale) && rateFraction) throw new ArgumentException("--rate-fraction (--rate half) does not apply to --tests scale.");
        if (tests.Contains(BenchSettings.Ratio) && rateFraction) throw new ArgumentException("--rate-fraction (--rate half) does not apply to --tests ratio (it compares maxima).");
        return tests;
    }

    private static int Positive(int value, string name, int max) =>
        value >= 1 && value <= max ? value : throw new ArgumentException($"{name} must be in 1..{max}; got {value}.");

    private static double Seconds(double value, string name, bool allowZero) =>
        double.IsFinite(value) && (value > 0 || (allowZero && value == 0)) && value <= 86_400
            ? value
            : throw new ArgumentException($"{name} must be {(allowZero ? "0 or more" : "positive")} seconds (at most a day); got {value}.");
}

/// <summary>
/// The load generator's GC (--client-gen0-mb). .NET 10 takes a gen0 budget only from the environment variable
/// DOTNET_GCgen0size (gcconfig.h gives GCgen0size no runtimeconfig name; System.GC.Gen0Size in runtimeconfig.json is
/// ignored, checked), and it must be set before the process starts; the bench silo is this same executable, so a
/// runtimeconfig or csproj setting would reach it too. So <c>bench</c> starts itself once more with the variable set
/// (stdio inherited, exit code passed on), and tells the runner to give the silo the runtime's default back
/// (<see cref="SiloGen0Override"/>). Why: the client allocates ~1.2 KB per call (almost all Orleans' request/response
/// objects and the deserialized reply); with the default budget (~6 MB here) that is 7-10 gen0 collections a second,
/// each a stop-the-world pause charged to every call due meanwhile.
/// </summary>
internal static class BenchClientGc
{
    public const int DefaultGen0MiB = 64;
    public const string Gen0Variable = LstmOrleans.Silo.Hosting.RuntimeGcSettings.Gen0SizeVariable;
    /// <summary>Set in the re-run process: its value is what the silo should get for <see cref="Gen0Variable"/>.</summary>
    public const string MarkerVariable = "LSTMORLEANS_BENCH_CLIENT_GC";

    public static int ParseGen0MiB(int value) =>
        value is >= 0 and <= 4096 ? value : throw new ArgumentException($"--client-gen0-mb must be in 0..4096; got {value}.");

    /// <summary>Run again with a gen0 budget: asked for, not already set by the user, and not already the re-run.</summary>
    public static bool ShouldRunAgain(int gen0MiB, Func<string, string?> environment) =>
        gen0MiB > 0 && string.IsNullOrEmpty(environment(Gen0Variable)) && environment(MarkerVariable) is null;

    /// <summary>DOTNET_GCgen0size's value (hexadecimal bytes, as the runtime reads it) for a budget in MiB.</summary>
    public static string Gen0Value(int gen0MiB) => "0x" + ((long)gen0MiB << 20).ToString("x");

    /// <summary>
    /// What the bench silo must get for DOTNET_GCgen0size when this process is the re-run: "0" (the runtime's default),
    /// so the client's budget does not leak into it; null when this process was not re-run (nothing to undo).
    /// </summary>
    public static string? SiloGen0Override(Func<string, string?> environment) =>
        environment(MarkerVariable) is null ? null : "0";

    public static async Task<int> RunAgainAsync(int gen0MiB, CancellationToken cancellationToken)
    {
        var dll = typeof(BenchClientGc).Assembly.Location;
        var apphost = Path.Combine(Path.GetDirectoryName(dll)!, OperatingSystem.IsWindows() ? "lstmorleans.exe" : "lstmorleans");
        var info = new System.Diagnostics.ProcessStartInfo(File.Exists(apphost) ? apphost : Environment.ProcessPath ?? "dotnet") { UseShellExecute = false };
        if (!File.Exists(apphost)) info.ArgumentList.Add(dll);
        foreach (var arg in Environment.GetCommandLineArgs().Skip(1)) info.ArgumentList.Add(arg);
        info.Environment[Gen0Variable] = Gen0Value(gen0MiB);
        info.Environment[MarkerVariable] = "1";
        using var process = System.Diagnostics.Process.Start(info) ?? throw new InvalidOperationException("Could not start the bench again with a gen0 budget.");
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C reached the re-run too (same process group); give it time to stop its silo, then make sure.
            if (!process.WaitForExit(TimeSpan.FromSeconds(30))) process.Kill(entireProcessTree: true);
            throw;
        }
        return process.ExitCode;
    }
}
