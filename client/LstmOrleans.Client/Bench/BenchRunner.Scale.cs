using System.Diagnostics;
using LstmOrleans.Abstractions;

namespace LstmOrleans.Client.Bench;

/// <summary>
/// The <c>scale</c> phase (issue 8's scale target): on one silo, bind a base set of streams and measure single ingest
/// over them; bind up to N streams and measure single ingest over all N (each call a different stream, round-robin);
/// report silo RSS / managed heap per stream at N and the throughput ratio base / N of the same run; then deactivate
/// every idle stream and check a sample comes back from storage intact, bit for bit, both against its own state read
/// before deactivation and, after one more step, against a twin stream fed the same observations in one
/// uninterrupted activation.
/// </summary>
internal sealed partial class BenchRunner
{
    /// <summary>Observations each sampled stream receives just before deactivation, so no sample is checked with an empty state.</summary>
    private const int SamplePrimingSteps = 8;

    /// <summary>The scale silo's idle collection age: longer than any run, so streams deactivate only when the phase says so.</summary>
    private const double ScaleCollectionAgeSeconds = 24 * 3600;

    private async Task<StoreResult> RunScaleAsync(string store, int streams, IGrainFactory grains, BenchSiloProcess? silo,
        CancellationToken cancellationToken)
    {
        var prefix = $"bench/{_runId}/{store}/{streams}";
        int baseStreams = Math.Min(settings.ScaleBaseStreams, streams);
        var modelName = await CreateBenchModelAsync(grains);
        var idle = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);
        if (idle?.Gc is { } gc) progress($"{store}: silo runs {gc}");

        var refs = new IStreamGrain[streams];
        for (int i = 0; i < refs.Length; i++) refs[i] = grains.GetGrain<IStreamGrain>($"{prefix}/{i}");
        var sequences = new long[streams];
        // A stream whose ingest call failed may or may not have applied it: it is left out of the intact check.
        var uncertain = new bool[streams];
        var baseTime = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Observation Next(int i)
        {
            long seq = ++sequences[i];
            return new Observation(seq, baseTime.AddSeconds(seq), [Signal(i, seq)]);
        }
        Task Ingest(int i)
        {
            var call = refs[i].IngestAsync(Next(i));
            return call.IsCompletedSuccessfully ? Task.CompletedTask : Track(call, i);
        }
        async Task Track(Task call, int i)
        {
            try { await call; }
            catch { uncertain[i] = true; throw; }
        }

        // 1. Base: bind and measure over the first baseStreams streams.
        progress($"{store} scale: binding {baseStreams:N0} base streams (model {modelName}, H={settings.Hidden}, L={settings.Layers})");
        var bindBase = await BindRangeAsync(refs, 0, baseStreams, modelName, cancellationToken);
        var atBase = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);

        // 2. Grow to N and measure over all N.
        double bindSeconds = bindBase;
        if (streams > baseStreams)
        {
            progress($"{store} scale: binding streams {baseStreams:N0}..{streams:N0}");
            bindSeconds += await BindRangeAsync(refs, baseStreams, streams, modelName, cancellationToken);
        }
        int activeAtN = await StreamActivationsAsync(grains.GetGrain<IManagementGrain>(0));
        var atN = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);
        progress($"{store} scale: {streams:N0} streams bound in {bindSeconds:N0} s" +
            $"; {activeAtN:N0} stream activations" + (atN is not null && idle is not null ? $"; silo RSS {atN.RssBytes / 1048576.0:N0} MiB, {(double)(atN.RssBytes - idle.RssBytes) / streams:N0} B/stream" : ""));
        // The machine's load drifts, so base and N are measured alternately (base, N, base, N, ...) on the same silo
        // and the ratio pools the rounds: sum of base values/s over sum of N values/s.
        var ingestBase = new List<PhaseResult>();
        var ingestN = new List<PhaseResult>();
        var gcBase = new GcCounts(0, 0, 0);
        var gcN = new GcCounts(0, 0, 0);
        for (int round = 1; round <= settings.ScaleRounds; round++)
        {
            progress($"{store} scale: round {round}/{settings.ScaleRounds}: single ingest over {baseStreams:N0} streams");
            var (b, gb) = await MeasureWithGcAsync(store, baseStreams, silo, Ingest, cancellationToken);
            progress($"{store} scale: round {round}/{settings.ScaleRounds}: single ingest over {streams:N0} streams");
            var (n, gn) = await MeasureWithGcAsync(store, streams, silo, Ingest, cancellationToken);
            ingestBase.Add(b);
            ingestN.Add(n);
            gcBase = gcBase.Add(gb);
            gcN = gcN.Add(gn);
        }
        var afterIngest = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);
        double ratio = ingestBase.Sum(p => p.ValuesPerSecond) / Math.Max(1e-9, ingestN.Sum(p => p.ValuesPerSecond));
        progress($"{store} scale: throughput at {baseStreams:N0} streams {string.Join(", ", ingestBase.Select(p => p.ValuesPerSecond.ToString("N0")))}/s; " +
            $"at {streams:N0} {string.Join(", ", ingestN.Select(p => p.ValuesPerSecond.ToString("N0")))}/s (pooled ratio {ratio:0.00})");

        // 3. Idle: deactivate, check the activations went, then reactivate a sample and check it is intact.
        var check = await CheckReactivationAsync(store, prefix, streams, modelName, refs, sequences, uncertain, Next, grains, silo, cancellationToken);

        var end = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);
        var scale = new ScaleResult(baseStreams, streams, bindSeconds, streams / bindSeconds,
            idle, atBase, atN, afterIngest, check.AfterDeactivation, end,
            idle is not null && atN is not null ? (double)(atN.RssBytes - idle.RssBytes) / streams : null,
            idle is not null && atN is not null ? (double)(atN.ManagedHeapBytes - idle.ManagedHeapBytes) / streams : null,
            atN is null ? null : atN.RssBytes <= ScaleResult.RssBudgetBytes,
            ingestBase, ingestN, gcBase, gcN, ratio, ratio <= ScaleResult.ThroughputRatioTarget,
            check.Deactivation, check.Reactivation) { BindRetries = Interlocked.Read(ref _bindRetries), StreamActivationsAtStreams = activeAtN };
        progress($"{store} scale: " + scale.Verdict);
        return new StoreResult(store, streams, null, bindSeconds, streams / bindSeconds, idle, atN, end,
            scale.RssBytesPerStream, scale.ManagedBytesPerStream, [.. ingestBase, .. ingestN], check.AfterDeactivation) { Scale = scale };
    }

    /// <summary>
    /// Binds streams [from, to). Bind is idempotent, so a stream whose call failed (under heavy load, a response
    /// timeout) is retried up to three more times; the retries are counted in <see cref="_bindRetries"/>.
    /// </summary>
    private async Task<double> BindRangeAsync(IStreamGrain[] refs, int from, int to, string modelName, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var pending = Enumerable.Range(from, to - from).ToArray();
        string? firstError = null;
        for (int attempt = 0; attempt < 4 && pending.Length > 0; attempt++)
        {
            var failed = new System.Collections.Concurrent.ConcurrentBag<int>();
            var batch = pending;
            var (_, errors, error, _) = await RunWorkersAsync(batch.Length, TimeSpan.MaxValue, onePass: true, async k =>
            {
                try { await refs[batch[k]].BindAsync(modelName); }
                catch (Exception) { failed.Add(batch[k]); throw; }
            }, cancellationToken);
            firstError ??= error;
            pending = [.. failed.Order()];
            if (pending.Length > 0)
            {
                Interlocked.Add(ref _bindRetries, pending.Length);
                progress($"bind: {pending.Length} of {batch.Length} streams failed ({error}); retrying");
            }
        }
        if (pending.Length > 0) throw new InvalidOperationException($"{pending.Length} of {to - from} streams failed to bind after 4 attempts: {firstError}");
        return clock.Elapsed.TotalSeconds;
    }

    private long _bindRetries;

    private async Task<(PhaseResult Phase, GcCounts Gc)> MeasureWithGcAsync(string store, int streams, BenchSiloProcess? silo,
        Func<int, Task> call, CancellationToken cancellationToken)
    {
        var before = silo is null ? null : await silo.GetStatsAsync(collect: false, cancellationToken);
        var phase = await MeasureAsync(BenchSettings.Single, store, streams, 1, silo, null, call, cancellationToken, settings.Rate);
        var after = silo is null ? null : await silo.GetStatsAsync(collect: false, cancellationToken);
        var gc = before is null || after is null
            ? new GcCounts(0, 0, 0)
            : new GcCounts(after.Gen0Collections - before.Gen0Collections, after.Gen1Collections - before.Gen1Collections,
                after.Gen2Collections - before.Gen2Collections);
        return (phase, gc);
    }

    private async Task<(DeactivationResult Deactivation, ReactivationResult Reactivation, ProcessStats? AfterDeactivation)> CheckReactivationAsync(
        string store, string prefix, int streams, string modelName, IStreamGrain[] refs, long[] sequences, bool[] uncertain,
        Func<int, Observation> next, IGrainFactory grains, BenchSiloProcess? silo, CancellationToken cancellationToken)
    {
        // The sample: evenly spaced over all N streams, skipping streams whose ingest failed.
        var sample = new List<int>();
        int wanted = Math.Min(settings.ScaleSample, streams);
        int skipped = 0;
        for (int j = 0; j < wanted; j++)
        {
            int i = (int)((long)j * streams / wanted);
            if (uncertain[i]) skipped++;
            else sample.Add(i);
        }
        // Prime every sampled stream with a few more steps (so none is checked with an empty state), then read its state.
        progress($"{store} scale: priming and reading {sample.Count:N0} sampled streams");
        var before = new StreamStateSnapshot[sample.Count];
        await ForEachAsync(sample.Count, async j =>
        {
            int i = sample[j];
            for (int s = 0; s < SamplePrimingSteps; s++) await refs[i].IngestAsync(next(i));
            before[j] = await refs[i].GetStateAsync();
        }, cancellationToken);
        if (settings.ScaleFault == ScaleFaults.Before && before.Length > 0)
            before[0] = before[0] with { Hidden = FlipLowestBit(before[0].Hidden) };

        // Deactivate: every activation idle for at least the idle age (0 = all idle ones), as the collector would.
        var management = grains.GetGrain<IManagementGrain>(0);
        int activeBefore = await StreamActivationsAsync(management);
        if (settings.ScaleIdleSeconds > 0)
        {
            progress($"{store} scale: idle for {settings.ScaleIdleSeconds:0.#} s");
            await Task.Delay(TimeSpan.FromSeconds(settings.ScaleIdleSeconds), cancellationToken);
        }
        progress($"{store} scale: deactivating idle streams ({activeBefore:N0} stream activations)");
        var clock = Stopwatch.StartNew();
        try
        {
            await management.ForceActivationCollection(TimeSpan.FromSeconds(settings.ScaleIdleSeconds));
        }
        catch (TimeoutException)
        {
            // Deactivating hundreds of thousands of activations outlasts the client's response timeout; the collection
            // goes on in the silo, and the activation count polled below shows how far it got.
            progress($"{store} scale: the collection call timed out; polling the activation count");
        }
        // Deactivations finish asynchronously: wait until the count stops falling (or is ~0). While a million
        // activations go, the silo can be too busy to answer within the client's response timeout: such a poll is
        // retried, it is not a failed run.
        async Task<int> PollAsync()
        {
            for (int attempt = 1; ; attempt++)
            {
                try { return await StreamActivationsAsync(management); }
                catch (TimeoutException) when (attempt < 10)
                {
                    progress($"{store} scale: the activation count did not arrive in time (attempt {attempt}); asking again");
                }
            }
        }
        int activeAfter = await PollAsync();
        for (int polls = 0; polls < 600 && activeAfter > 0; polls++)
        {
            await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
            int now = await PollAsync();
            if (now >= activeAfter) { activeAfter = now; break; }
            activeAfter = now;
        }
        clock.Stop();
        var afterDeactivation = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);
        var deactivation = new DeactivationResult(activeBefore, activeAfter, clock.Elapsed.TotalSeconds, settings.ScaleIdleSeconds,
            afterDeactivation?.RssBytes, afterDeactivation?.ManagedHeapBytes);
        progress($"{store} scale: stream activations {activeBefore:N0} -> {activeAfter:N0} in {clock.Elapsed.TotalSeconds:N1} s" +
            (afterDeactivation is not null ? $"; silo RSS {afterDeactivation.RssBytes / 1048576.0:N0} MiB, managed {afterDeactivation.ManagedHeapBytes / 1048576.0:N0} MiB" : ""));

        // Reactivate from storage and compare with the state read before; then one more step, compared with a twin
        // stream that received the same observations in one uninterrupted activation.
        progress($"{store} scale: reactivating {sample.Count:N0} sampled streams and replaying their twins");
        var mismatches = new string?[sample.Count];
        clock.Restart();
        await ForEachAsync(sample.Count, async j =>
        {
            int i = sample[j];
            var reloaded = await refs[i].GetStateAsync();
            if (StreamStateComparison.FirstDifference(before[j], reloaded) is { } stateDiff)
            {
                mismatches[j] = $"stream {i}: reloaded state differs from the state before deactivation: {stateDiff}";
                return;
            }
            long last = sequences[i];
            var observation = next(i);
            var stepped = await refs[i].IngestAsync(observation);
            var steppedState = await refs[i].GetStateAsync();

            var twin = grains.GetGrain<IStreamGrain>($"{prefix}/twin/{i}");
            await twin.BindAsync(modelName);
            StepResult? twinStep = null;
            for (long seq = 1; seq <= last + 1; seq++)
            {
                var value = Signal(i, seq);
                if (settings.ScaleFault == ScaleFaults.Twin && j == 0 && seq == last + 1) value = MathF.BitIncrement(value);
                twinStep = await twin.IngestAsync(new Observation(seq, observation.Timestamp.AddSeconds(seq - observation.Sequence), [value]));
            }
            var twinState = await twin.GetStateAsync();
            if (StreamStateComparison.FirstDifference(stepped, twinStep!) is { } stepDiff)
                mismatches[j] = $"stream {i}: step after reactivation differs from the uninterrupted twin's: {stepDiff}";
            else if (StreamStateComparison.FirstDifference(steppedState, twinState) is { } twinDiff)
                mismatches[j] = $"stream {i}: state after reactivation and one step differs from the uninterrupted twin's: {twinDiff}";
        }, cancellationToken);
        clock.Stop();
        var failed = mismatches.Where(m => m is not null).ToList();
        var reactivation = new ReactivationResult(sample.Count, sample.Count - failed.Count, failed.Count, skipped, failed.FirstOrDefault(),
            clock.Elapsed.TotalSeconds, SamplePrimingSteps, settings.ScaleFault);
        progress($"{store} scale: {reactivation.Intact:N0} of {sample.Count:N0} sampled streams came back intact" +
            (failed.Count > 0 ? $"; {failed.Count} not intact, first: {failed[0]}" : ""));
        return (deactivation, reactivation, afterDeactivation);
    }

    /// <summary>Runs <paramref name="body"/> for 0..count-1 with at most the bench's concurrency in flight; any failure fails the check.</summary>
    private async Task ForEachAsync(int count, Func<int, Task> body, CancellationToken cancellationToken)
    {
        var (_, errors, firstError, _) = await RunWorkersAsync(count, TimeSpan.MaxValue, onePass: true, body, cancellationToken);
        if (errors > 0) throw new InvalidOperationException($"scale check: {errors} calls failed: {firstError}");
    }

    /// <summary>Stream grain activations on the cluster (Orleans' simple grain statistics, all silos).</summary>
    private static async Task<int> StreamActivationsAsync(IManagementGrain management)
    {
        var statistics = await management.GetSimpleGrainStatistics();
        return statistics.Where(s => s.GrainType.Contains("StreamGrain", StringComparison.Ordinal) &&
                                     !s.GrainType.Contains("Registry", StringComparison.Ordinal))
            .Sum(s => s.ActivationCount);
    }

    /// <summary>
    /// Environment for the silo process's GC mode (--silo-gc): server (the bench default: the product's silo host runs
    /// with server GC, the Web SDK's default), workstation (this executable's own mode), or conserve (workstation with
    /// GCConserveMemory=7, which compacts gen2 more eagerly to keep the heap near its live size).
    /// </summary>
    internal static IReadOnlyDictionary<string, string>? SiloGcEnvironment(string? mode) => mode switch
    {
        null => null,
        "workstation" => new Dictionary<string, string> { ["DOTNET_gcServer"] = "0" },
        "server" => new Dictionary<string, string> { ["DOTNET_gcServer"] = "1" },
        "conserve" => new Dictionary<string, string> { ["DOTNET_gcServer"] = "0", ["DOTNET_GCConserveMemory"] = "7" },
        _ => throw new ArgumentException($"--silo-gc: unknown mode '{mode}' (workstation, server, conserve)."),
    };

    private static float[] FlipLowestBit(float[] values)
    {
        var copy = (float[])values.Clone();
        if (copy.Length > 0) copy[0] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(copy[0]) ^ 1);
        return copy;
    }
}

/// <summary>Hidden <c>--scale-fault</c> values: deliberate faults that the intact check must catch (for its tests).</summary>
internal static class ScaleFaults
{
    /// <summary>Flip the lowest bit of h[0] in the first sample's state read before deactivation.</summary>
    public const string Before = "before";
    /// <summary>Feed the first sample's twin a last value one ULP larger than the stream's.</summary>
    public const string Twin = "twin";

    public static bool IsKnown(string? fault) => fault is null or Before or Twin;
}

/// <summary>Bitwise comparison of what a stream grain reports; the first difference is described, or null when equal.</summary>
internal static class StreamStateComparison
{
    public static string? FirstDifference(StreamStateSnapshot expected, StreamStateSnapshot actual) =>
        Summary(expected.Summary, actual.Summary)
        ?? Floats("hidden", expected.Hidden, actual.Hidden)
        ?? Floats("cell", expected.Cell, actual.Cell)
        ?? (expected.NormalizationCount != actual.NormalizationCount ? $"normalizationCount {expected.NormalizationCount} vs {actual.NormalizationCount}" : null)
        ?? Doubles("mean", expected.Mean, actual.Mean)
        ?? Doubles("std", expected.Std, actual.Std)
        ?? Doubles("errorMeanSquare", expected.ErrorMeanSquare, actual.ErrorMeanSquare)
        ?? Longs("errorSamples", expected.ErrorSamples, actual.ErrorSamples);

    /// <summary>Compares everything but the stream id (a twin has another id).</summary>
    private static string? Summary(StreamSummary expected, StreamSummary actual) =>
        expected.ModelName != actual.ModelName ? $"model {expected.ModelName} vs {actual.ModelName}"
        : expected.WeightsVersion != actual.WeightsVersion ? $"weightsVersion {expected.WeightsVersion} vs {actual.WeightsVersion}"
        : expected.LastSequence != actual.LastSequence ? $"lastSequence {expected.LastSequence} vs {actual.LastSequence}"
        : expected.LastTimestamp != actual.LastTimestamp ? $"lastTimestamp {expected.LastTimestamp:O} vs {actual.LastTimestamp:O}"
        : expected.StepCount != actual.StepCount ? $"stepCount {expected.StepCount} vs {actual.StepCount}"
        : expected.HistoryCount != actual.HistoryCount ? $"historyCount {expected.HistoryCount} vs {actual.HistoryCount}"
        : (expected.Latest is null) != (actual.Latest is null) ? "latest prediction present in one only"
        : expected.Latest is { } e ? FirstDifference(e, actual.Latest!) is { } d ? "latest: " + d : null
        : null;

    public static string? FirstDifference(StepResult expected, StepResult actual) =>
        expected.Sequence != actual.Sequence ? $"sequence {expected.Sequence} vs {actual.Sequence}"
        : expected.Timestamp != actual.Timestamp ? $"timestamp {expected.Timestamp:O} vs {actual.Timestamp:O}"
        : expected.StepCount != actual.StepCount ? $"stepCount {expected.StepCount} vs {actual.StepCount}"
        : expected.WeightsVersion != actual.WeightsVersion ? $"weightsVersion {expected.WeightsVersion} vs {actual.WeightsVersion}"
        : expected.Duplicate != actual.Duplicate ? $"duplicate {expected.Duplicate} vs {actual.Duplicate}"
        : Floats("predictions", expected.Predictions, actual.Predictions)
          ?? Floats("lower", expected.Lower, actual.Lower)
          ?? Floats("upper", expected.Upper, actual.Upper)
          ?? Floats("rmse", expected.Rmse, actual.Rmse)
          ?? Longs("errorSamples", expected.ErrorSamples, actual.ErrorSamples)
          ?? (BitConverter.SingleToInt32Bits(expected.PreviousError ?? float.NaN) != BitConverter.SingleToInt32Bits(actual.PreviousError ?? float.NaN)
              || expected.PreviousError.HasValue != actual.PreviousError.HasValue
              ? $"previousError {expected.PreviousError:R} vs {actual.PreviousError:R}" : null);

    private static string? Floats(string name, float[] expected, float[] actual)
    {
        if (expected.Length != actual.Length) return $"{name} length {expected.Length} vs {actual.Length}";
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                return $"{name}[{i}] {expected[i]:R} vs {actual[i]:R}";
        return null;
    }

    private static string? Doubles(string name, double[] expected, double[] actual)
    {
        if (expected.Length != actual.Length) return $"{name} length {expected.Length} vs {actual.Length}";
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.DoubleToInt64Bits(expected[i]) != BitConverter.DoubleToInt64Bits(actual[i]))
                return $"{name}[{i}] {expected[i]:R} vs {actual[i]:R}";
        return null;
    }

    private static string? Longs(string name, long[] expected, long[] actual)
    {
        if (expected.Length != actual.Length) return $"{name} length {expected.Length} vs {actual.Length}";
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i]) return $"{name}[{i}] {expected[i]} vs {actual[i]}";
        return null;
    }
}

/// <summary>GC collections in the silo during one measured phase.</summary>
internal sealed record GcCounts(int Gen0, int Gen1, int Gen2)
{
    public GcCounts Add(GcCounts other) => new(Gen0 + other.Gen0, Gen1 + other.Gen1, Gen2 + other.Gen2);
}

/// <summary>Idle deactivation: stream activations before and after, and the silo's memory after a full GC.</summary>
internal sealed record DeactivationResult(
    int StreamActivationsBefore,
    int StreamActivationsAfter,
    double Seconds,
    double IdleAgeSeconds,
    long? SiloRssBytesAfter,
    long? SiloManagedHeapBytesAfter);

/// <summary>The reactivation check on a sample: bitwise equal to the state before deactivation and to an uninterrupted twin.</summary>
internal sealed record ReactivationResult(
    int Sampled,
    int Intact,
    int NotIntact,
    int SkippedAfterIngestErrors,
    string? FirstMismatch,
    double Seconds,
    int PrimingSteps,
    string? InjectedFault);

/// <summary>What the scale phase measured on one silo.</summary>
internal sealed record ScaleResult(
    int BaseStreams,
    int Streams,
    double BindSeconds,
    double BindsPerSecond,
    ProcessStats? SiloIdle,
    ProcessStats? SiloAtBase,
    ProcessStats? SiloAtStreams,
    ProcessStats? SiloAfterIngest,
    ProcessStats? SiloAfterDeactivation,
    ProcessStats? SiloEnd,
    double? RssBytesPerStream,
    double? ManagedBytesPerStream,
    bool? RssWithinBudget,
    /// <summary>Single ingest over the base streams, one per round (rounds alternate base and N).</summary>
    List<PhaseResult> IngestAtBase,
    /// <summary>Single ingest over all N streams, one per round.</summary>
    List<PhaseResult> IngestAtStreams,
    GcCounts SiloGcDuringIngestAtBase,
    GcCounts SiloGcDuringIngestAtStreams,
    /// <summary>Sum over rounds of base values/s divided by the sum of N values/s (above 1: slower at N).</summary>
    double ThroughputRatio,
    bool ThroughputRatioMet,
    DeactivationResult Deactivation,
    ReactivationResult Reactivation)
{
    /// <summary>Bind calls that failed (response timeouts under load) and were retried; bind is idempotent.</summary>
    public long BindRetries { get; init; }

    /// <summary>Stream activations on the silo when the memory at N was measured (N unless some were collected).</summary>
    public int StreamActivationsAtStreams { get; init; }

    /// <summary>Issue 8: 1,000,000 streams (H = 32) in at most 8 GiB RSS.</summary>
    public const long RssBudgetBytes = 8L << 30;
    /// <summary>Issue 8: throughput at N within 1.5x of the throughput at the base count.</summary>
    public const double ThroughputRatioTarget = 1.5;

    /// <summary>
    /// The silo's peak resident set over the whole run (VmHWM, read at the end) within the same budget: binding, ingest
    /// and the mass deactivation of N idle activations included, not only the moment with N live. Null where the
    /// platform does not report a peak (non-Linux) or the silo is not ours (--cluster).
    /// </summary>
    public bool? PeakRssWithinBudget => SiloEnd?.PeakRssBytes is { } peak ? peak <= RssBudgetBytes : null;

    /// <summary>Every sampled stream came back intact and the stream activations fell.</summary>
    public bool Passed => Reactivation.NotIntact == 0 && Reactivation.Sampled > 0 &&
                          Deactivation.StreamActivationsAfter < Deactivation.StreamActivationsBefore;

    public string Verdict =>
        FormattableString.Invariant($"{Streams:N0} streams: RSS at N {(SiloAtStreams is { } s ? $"{s.RssBytes / 1048576.0:N0} MiB" : "n/a")} ") +
        FormattableString.Invariant($"({RssBytesPerStream:N0} B/stream, managed {ManagedBytesPerStream:N0} B/stream, budget 8 GiB at 1M: {(RssWithinBudget is null ? "n/a" : RssWithinBudget.Value ? "within" : "OVER")}; ") +
        FormattableString.Invariant($"peak over the run {(SiloEnd?.PeakRssBytes is { } peak ? $"{peak / 1048576.0:N0} MiB" : "n/a")}: {(PeakRssWithinBudget is null ? "n/a" : PeakRssWithinBudget.Value ? "within" : "OVER")}); ") +
        FormattableString.Invariant($"throughput ratio {ThroughputRatio:0.00} (target <= {ThroughputRatioTarget}: {(ThroughputRatioMet ? "met" : "NOT met")}); ") +
        FormattableString.Invariant($"activations {Deactivation.StreamActivationsBefore:N0} -> {Deactivation.StreamActivationsAfter:N0}; ") +
        FormattableString.Invariant($"intact {Reactivation.Intact}/{Reactivation.Sampled}: {(Passed ? "PASS" : "FAIL")}");
}
