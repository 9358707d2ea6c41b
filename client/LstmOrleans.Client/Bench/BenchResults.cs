using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LstmOrleans.Client.Bench;

/// <summary>What one <c>bench</c> run was asked to do.</summary>
internal sealed record BenchSettings(
    IReadOnlyList<string> Stores,
    string? Redis,
    string? Postgres,
    string? Cluster,
    string ClusterId,
    string ServiceId,
    IReadOnlyList<int> Streams,
    int Concurrency,
    int BatchSize,
    int Hidden,
    int Layers,
    double DurationSeconds,
    double WarmupSeconds,
    double? Rate,
    IReadOnlyList<string> Tests,
    int? History,
    int? PersistEvery,
    bool OrleansStorageSerializer,
    bool Verbose)
{
    public const string Ping = "ping";
    /// <summary>The no-op call with the single phase's messages (an <c>Observation</c> in, a <c>StepResult</c> out): what the messages alone cost.</summary>
    public const string Echo = "echo";
    public const string Single = "single";
    /// <summary>Batch ingest through the columnar API (<c>IngestColumnsAsync</c>), the way to send many values.</summary>
    public const string Batch = "batch";
    /// <summary>The same batches through the row API (<c>IngestBatchAsync</c>: an <c>Observation[]</c> in, a <c>StepResult[]</c> out).</summary>
    public const string BatchRows = "batch-rows";
    /// <summary>Deactivate every idle stream, then read each back from storage and check it is intact.</summary>
    public const string Reload = "reload";
    /// <summary>The scale phase (<see cref="ScaleResult"/>): memory and throughput at N vs a base count, idle deactivation, intact reactivation.</summary>
    public const string Scale = "scale";
    /// <summary>
    /// The no-op call and single ingest in alternating slices on the same silo (<see cref="RatioResult"/>): single ingest's
    /// ratio to the ceiling with both measured in the same seconds, which a shared, noisy machine needs.
    /// </summary>
    public const string Ratio = "ratio";

    /// <summary>ratio: rounds of (no-op slice, single slice), each slice --duration / rounds long.</summary>
    public int Rounds { get; init; } = 8;

    /// <summary>--report-every: also print each measured phase's latency per interval of this many seconds (soak runs).</summary>
    public double? ReportEverySeconds { get; init; }

    /// <summary>scale: the stream count whose ingest throughput the N-stream throughput is compared with.</summary>
    public int ScaleBaseStreams { get; init; } = 1000;
    /// <summary>scale: streams checked bit for bit after deactivation (evenly spaced over all N).</summary>
    public int ScaleSample { get; init; } = 1000;
    /// <summary>scale: rounds of (ingest over the base streams, ingest over all N), alternated so load drift hits both.</summary>
    public int ScaleRounds { get; init; } = 2;
    /// <summary>scale: idle seconds before collecting activations idle at least that long (0: collect every idle one at once).</summary>
    public double ScaleIdleSeconds { get; init; }
    /// <summary>scale (hidden, for tests): a deliberate fault the intact check must catch (<see cref="ScaleFaults"/>).</summary>
    public string? ScaleFault { get; init; }
    /// <summary>
    /// GC mode of the bench silo process: server (the default: what the product's silo host runs with, the Web SDK's
    /// default), workstation (this executable's own mode, the bench default before session 8), or conserve; null leaves
    /// the process's own mode.
    /// </summary>
    public string? SiloGc { get; init; } = SiloGcServer;

    /// <summary>The bench silo's default GC mode (<see cref="SiloGc"/>).</summary>
    public const string SiloGcServer = "server";
    /// <summary>SQLite store: Storage:SqliteSynchronous for the bench silo (full or normal); null = the silo's default (full).</summary>
    public string? SqliteSynchronous { get; init; }
    /// <summary>--silo-env: extra environment variables for the bench silo process (runtime knobs such as DOTNET_TieredPGO), applied after the GC mode's.</summary>
    public IReadOnlyDictionary<string, string>? SiloEnvironment { get; init; }
    /// <summary>Fixed rate: the pacing thread's shortest sleep (<see cref="FixedRatePacer"/>), in microseconds.</summary>
    public double PacerBurstMicroseconds { get; init; } = 100;

    /// <summary>
    /// --rate-fraction (or --rate half): measure each phase closed loop first, then at this fraction of the maximum it
    /// reached, at a fixed rate (null: no such pair; <see cref="Rate"/> or closed loop alone).
    /// </summary>
    public double? RateFraction { get; init; }

    /// <summary>Fixed rate: which thread makes the calls the pacer issues (<see cref="PacerSendPool"/> or <see cref="PacerSendThread"/>).</summary>
    public string PacerSend { get; init; } = PacerSendPool;

    /// <summary>
    /// --rate-model: how a --rate-fraction phase loads the silo. <see cref="RateModelOpen"/> (default): calls at a fixed
    /// rate, latency charged from each call's scheduled time. <see cref="RateModelClosed"/>: the fewest closed-loop callers
    /// whose rate reaches the fraction, latency from each call's send (each caller waits for its answer before the next).
    /// </summary>
    public string RateModel { get; init; } = RateModelOpen;

    /// <summary>TCP connections from the bench's client to each gateway (Orleans' ConnectionOptions.ConnectionsPerEndpoint; 1 is Orleans' default).</summary>
    public int Connections { get; init; } = 1;

    /// <summary>Open loop: a fixed offered rate (<see cref="FixedRatePacer"/>).</summary>
    public const string RateModelOpen = "open";
    /// <summary>Closed loop: fewer callers, each with one call in flight.</summary>
    public const string RateModelClosed = "closed";

    /// <summary>The pacer hands each due call to the thread pool (the default; see <see cref="FixedRatePacer"/>).</summary>
    public const string PacerSendPool = "pool";
    /// <summary>The pacing thread makes the calls itself (session 4's behaviour; for A/B).</summary>
    public const string PacerSendThread = "pacer";
}

/// <summary>Latency percentiles in microseconds.</summary>
internal sealed record LatencyResult(double P50Us, double P90Us, double P99Us, double P999Us, double MaxUs, double MeanUs)
{
    public static LatencyResult From(LatencyHistogram h) => new(
        h.ValueAtQuantile(0.50) / 1e3, h.ValueAtQuantile(0.90) / 1e3, h.ValueAtQuantile(0.99) / 1e3,
        h.ValueAtQuantile(0.999) / 1e3, h.Max / 1e3, h.Mean / 1e3);
}

/// <summary>
/// One measured phase. Values = observations applied (calls x batch size). CPU and allocation figures are per value
/// and split between the client (this process) and the silo (the child process; null with --cluster).
/// </summary>
internal sealed record PhaseResult(
    string Test,
    string Store,
    int Streams,
    int BatchSize,
    int Concurrency,
    double? TargetValuesPerSecond,
    long Calls,
    long Values,
    long Errors,
    string? FirstError,
    double Seconds,
    double CallsPerSecond,
    double ValuesPerSecond,
    LatencyResult Latency,
    double? RatioToBaseline,
    double ClientCpuUsPerValue,
    double ClientAllocatedBytesPerValue,
    double? SiloCpuUsPerValue,
    double? SiloAllocatedBytesPerValue)
{
    /// <summary>
    /// Fixed-rate phases only: how late the client's pacing loop reached each call after its scheduled time (its own
    /// wake-up and issuing lag; <see cref="FixedRatePacer"/>). Latency is charged from the scheduled time, so this part
    /// of it is the client's own doing, not the silo's.
    /// </summary>
    public LatencyResult? SendLag { get; init; }

    /// <summary>
    /// Fixed-rate phases sent on the thread pool: from each (not queued) call's scheduled time to the moment it was
    /// made: the send lag plus the hand-over to a pool thread, i.e. the client's whole share before Orleans takes it.
    /// </summary>
    public LatencyResult? DispatchLag { get; init; }

    /// <summary>Fixed-rate phases only: calls that were due while their stream's previous call was still in flight, so they waited behind it (charged to their latency).</summary>
    public long? QueuedBehindStream { get; init; }

    /// <summary>Fixed-rate phases only: the most calls ever waiting behind one stream's in-flight call.</summary>
    public int? MaxStreamBacklog { get; init; }

    /// <summary>Fixed-rate phases only: the pacing thread's CPU time as a percentage of one core over the phase.</summary>
    public double? PacerCpuPercent { get; init; }

    /// <summary>Fixed-rate phases only: how often the pacing thread woke up (per second).</summary>
    public double? PacerWakeUpsPerSecond { get; init; }

    /// <summary>Fixed-rate phases only: which thread made the calls (pool or pacer; <see cref="BenchSettings.PacerSend"/>).</summary>
    public string? PacerSend { get; init; }

    /// <summary>--rate-fraction: the fraction of the closed-loop maximum this fixed-rate phase was offered.</summary>
    public double? RateFraction { get; init; }

    /// <summary>--rate-fraction: the closed-loop maximum (values/s) measured just before, on the same silo, that the rate was derived from.</summary>
    public double? MaxValuesPerSecond { get; init; }

    /// <summary>--rate-fraction: how the fraction was offered (<see cref="BenchSettings.RateModel"/>: open or closed; null otherwise).</summary>
    public string? RateModel { get; init; }

    /// <summary>The silo's garbage collections during the measured run (null with --cluster).</summary>
    public GcCounts? SiloGc { get; init; }

    /// <summary>Time the silo's runtime was paused for GC during the measured run, in ms (null with --cluster).</summary>
    public double? SiloGcPauseMs { get; init; }

    /// <summary>The client's (this process's) garbage collections and GC pause time (ms) during the measured run.</summary>
    public GcCounts? ClientGc { get; init; }
    public double? ClientGcPauseMs { get; init; }

    /// <summary>
    /// CPU the client and the silo used together during the measured run, in cores (CPU seconds per second; null with
    /// --cluster). On a host that runs both, it says how much of the machine a rate took: near the processor count the
    /// two processes queue for the cores, and that queueing is in every latency the phase measured.
    /// </summary>
    public double? CoresUsed => SiloCpuUsPerValue is { } silo ? (ClientCpuUsPerValue + silo) * ValuesPerSecond / 1e6 : null;
}

/// <summary>One silo configuration (store x stream count) and what was measured on it.</summary>
internal sealed record StoreResult(
    string Store,
    int Streams,
    string? Skipped,
    double? ActivationSeconds,
    double? ActivationsPerSecond,
    ProcessStats? SiloIdle,
    ProcessStats? SiloActive,
    ProcessStats? SiloEnd,
    double? RssBytesPerStream,
    double? ManagedBytesPerStream,
    List<PhaseResult> Phases,
    ProcessStats? SiloAfterCollection = null)
{
    /// <summary>The scale phase's figures, when it ran.</summary>
    public ScaleResult? Scale { get; init; }

    /// <summary>The ratio test's rounds, when it ran.</summary>
    public RatioResult? Ratio { get; init; }

    /// <summary>
    /// The embedded (SQLite) store only: fsync latency of the disk under its data folder, measured before the silo
    /// started (<see cref="DiskSyncProbe"/>). A write acknowledged after its commit is on disk waits at least this long.
    /// </summary>
    public DiskSyncResult? DiskSync { get; init; }
}

internal sealed record MachineInfo(string Cpu, int LogicalCores, string Os, string Runtime, long TotalMemoryBytes, string GcMode)
{
    /// <summary>The client (load generator) process's DOTNET_GCgen0size, if any (<see cref="BenchClientGc"/>); null: the runtime's default gen0 budget.</summary>
    public string? ClientGcGen0Size { get; init; } = Environment.GetEnvironmentVariable(BenchClientGc.Gen0Variable) is { Length: > 0 } v ? v : null;

    public static MachineInfo Capture()
    {
        string cpu = RuntimeInformation.ProcessArchitecture.ToString();
        try
        {
            var model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (model is not null) cpu = model[(model.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return new MachineInfo(cpu, Environment.ProcessorCount, RuntimeInformation.OSDescription,
            RuntimeInformation.FrameworkDescription, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
            System.Runtime.GCSettings.IsServerGC ? "server" : "workstation");
    }
}

internal sealed record BenchReport(
    DateTimeOffset Date,
    string SiloMode,
    MachineInfo Machine,
    BenchSettings Settings,
    PhaseResult? Baseline,
    List<StoreResult> Results);

internal static class BenchJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static readonly JsonSerializerOptions Indented = new(Options) { WriteIndented = true };
}

/// <summary>One round of the ratio test: the no-op call's rate and single ingest's rate in adjacent slices, and their ratio.</summary>
internal sealed record RatioRound(int Round, double NoOpCallsPerSecond, double SingleValuesPerSecond, double Ratio);

/// <summary>
/// The ratio test (<see cref="BenchSettings.Ratio"/>): <paramref name="Rounds"/> rounds of a no-op slice and a single-ingest
/// slice of <paramref name="SliceSeconds"/> each, in ABBA order (the order flips every round, so a steady drift in the
/// machine's speed favours neither); single ingest's ratio to the no-op call per round, and their median and range.
/// </summary>
internal sealed record RatioResult(int Rounds, double SliceSeconds, IReadOnlyList<RatioRound> Each, double MedianRatio, double MinRatio,
    double MaxRatio, long Errors, string? FirstError)
{
    /// <summary>The median of <paramref name="ratios"/> (the mean of the middle two for an even count).</summary>
    public static double Median(IReadOnlyList<double> ratios)
    {
        ArgumentOutOfRangeException.ThrowIfZero(ratios.Count);
        var sorted = ratios.Order().ToArray();
        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
