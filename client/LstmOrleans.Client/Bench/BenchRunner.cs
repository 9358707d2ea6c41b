using System.Buffers;
using System.Diagnostics;
using LstmOrleans.Abstractions;
using LstmOrleans.Client.Cluster;

namespace LstmOrleans.Client.Bench;

/// <summary>
/// Runs the benchmark: for each store (and stream count) a fresh silo in a child process, a client connected through
/// its gateway, then the phases: ping (the no-op ceiling, once per run), stream activation, single-observation ingest
/// and batch ingest. Each phase is a warm-up followed by a measured run of closed-loop workers, each owning a
/// disjoint set of streams, or with --rate an open-loop fixed-rate pacer; either way one call per stream is in flight
/// at a time, so sequence numbers stay ordered per stream.
/// </summary>
internal sealed partial class BenchRunner(BenchSettings settings, Action<string> progress)
{
    private readonly string _runId = Guid.NewGuid().ToString("N")[..8];

    public async Task<BenchReport> RunAsync(CancellationToken cancellationToken)
    {
        var results = new List<StoreResult>();
        PhaseResult? baseline = null;
        if (settings.Cluster is { } spec)
        {
            var target = ClusterTarget.Parse(spec, settings.ClusterId, settings.ServiceId, TimeSpan.FromSeconds(30)) with { ConnectionsPerGateway = settings.Connections };
            await using var connection = await ClusterConnection.ConnectAsync(target, cancellationToken);
            foreach (var streams in settings.Streams)
            {
                if (settings.Tests.Contains(BenchSettings.Scale))
                {
                    results.Add(await RunScaleAsync("cluster", streams, connection.Grains, silo: null, cancellationToken));
                    continue;
                }
                var (result, ping) = await RunOnSiloAsync("cluster", streams, connection.Grains, silo: null, baseline, cancellationToken);
                baseline ??= ping;
                results.Add(result);
            }
            return new BenchReport(DateTimeOffset.UtcNow, $"existing cluster {target}", MachineInfo.Capture(), settings, baseline, results);
        }

        foreach (var store in settings.Stores)
        foreach (var streams in settings.Streams)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var dataFolder = Path.Combine(Path.GetTempPath(), $"lstmorleans-bench-{_runId}-{store}-{streams}");
            var args = new List<string> { "--store", store, "--data", dataFolder, "--service-id", $"bench-{_runId}-{store}-{streams}" };
            if (settings.Redis is { } redis) args.AddRange(["--redis", redis]);
            if (settings.Postgres is { } postgres) args.AddRange(["--postgres", postgres]);
            if (settings.History is { } history) args.AddRange(["--history", history.ToString()]);
            if (settings.PersistEvery is { } every) args.AddRange(["--persist-every", every.ToString()]);
            if (settings.OrleansStorageSerializer) args.Add("--orleans-storage-serializer");
            if (settings.SqliteSynchronous is { } synchronous) args.AddRange(["--sqlite-synchronous", synchronous]);
            if (settings.Tests.Contains(BenchSettings.Scale)) args.AddRange(["--collection-age", ScaleCollectionAgeSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            // The embedded store's disk: the floor under every durable commit's latency, measured where the data lives.
            DiskSyncResult? diskSync = null;
            if (store == "sqlite")
            {
                diskSync = DiskSyncProbe.Measure(dataFolder);
                progress($"{store}: disk fsync after a {diskSync.BlockBytes / 1024} KiB append: p50 {diskSync.Latency.P50Us:N0} us, p99 {diskSync.Latency.P99Us:N0} us ({diskSync.Syncs} syncs)");
            }
            progress($"{store}, {streams:N0} streams: starting a silo process");
            BenchSiloProcess silo;
            try
            {
                silo = await BenchSiloProcess.StartAsync(args, settings.Verbose, cancellationToken, SiloEnvironment(settings));
            }
            catch (InvalidOperationException ex)
            {
                DeleteDataFolder(dataFolder);   // the disk probe made it
                progress($"{store}: skipped: {ex.Message}");
                results.Add(new StoreResult(store, streams, ex.Message, null, null, null, null, null, null, null, []));
                continue;
            }
            try
            {
                await using (silo)
                {
                    var target = ClusterTarget.Parse($"127.0.0.1:{silo.GatewayPort}", "lstmorleans-bench",
                        $"bench-{_runId}-{store}-{streams}", TimeSpan.FromSeconds(60)) with { ConnectionsPerGateway = settings.Connections };
                    await using var connection = await ClusterConnection.ConnectAsync(target, cancellationToken);
                    if (settings.Tests.Contains(BenchSettings.Scale))
                    {
                        results.Add(await RunScaleAsync(store, streams, connection.Grains, silo, cancellationToken) with { DiskSync = diskSync });
                        continue;
                    }
                    var (result, ping) = await RunOnSiloAsync(store, streams, connection.Grains, silo, baseline, cancellationToken);
                    baseline ??= ping;
                    results.Add(result with { DiskSync = diskSync });
                }
            }
            finally
            {
                DeleteDataFolder(dataFolder);
            }
        }
        return new BenchReport(DateTimeOffset.UtcNow, "one silo in a child process, client over the gateway (loopback TCP)",
            MachineInfo.Capture(), settings, baseline, results);
    }

    private static void DeleteDataFolder(string dataFolder)
    {
        try { if (Directory.Exists(dataFolder)) Directory.Delete(dataFolder, recursive: true); }
        catch (IOException) { }
    }

    private async Task<(StoreResult Result, PhaseResult? Ping)> RunOnSiloAsync(string store, int streams, IGrainFactory grains,
        BenchSiloProcess? silo, PhaseResult? baseline, CancellationToken cancellationToken)
    {
        var phases = new List<PhaseResult>();
        var prefix = $"bench/{_runId}/{store}/{streams}";
        PhaseResult? ping = null;
        if (baseline is null && settings.Tests.Contains(BenchSettings.Ping))
        {
            var pings = new IPingGrain[streams];
            for (int i = 0; i < pings.Length; i++) pings[i] = grains.GetGrain<IPingGrain>($"{prefix}/{i}");
            progress($"{store}: ping (no-op grain call), {streams:N0} grains");
            var measured = await MeasurePhasesAsync(BenchSettings.Ping, store, streams, 1, silo, null, i => pings[i].PingAsync(), cancellationToken);
            phases.AddRange(measured);
            ping = measured[0]; // the closed-loop one when --rate-fraction measured a maximum first
            baseline = ping;
        }

        var baseTime = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        if (settings.Tests.Contains(BenchSettings.Echo))
        {
            // Same grain keys as the ping phase (so the same activations), same observation and answer shapes as single.
            var echoes = new IPingGrain[streams];
            var echoSequences = new long[streams];
            for (int i = 0; i < echoes.Length; i++) echoes[i] = grains.GetGrain<IPingGrain>($"{prefix}/{i}");
            progress($"{store}: echo (no-op call with single ingest's messages), {streams:N0} grains");
            phases.AddRange(await MeasurePhasesAsync(BenchSettings.Echo, store, streams, 1, silo, baseline, i =>
            {
                long seq = ++echoSequences[i];
                return echoes[i].EchoAsync(new Observation(seq, baseTime.AddSeconds(seq), [Signal(i, seq)]), 1);
            }, cancellationToken));
        }

        var modelName = await CreateBenchModelAsync(grains);
        var idle = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);
        if (idle?.Gc is { } gc) progress($"{store}: silo runs {gc}");

        var refs = new IStreamGrain[streams];
        for (int i = 0; i < refs.Length; i++) refs[i] = grains.GetGrain<IStreamGrain>($"{prefix}/{i}");
        progress($"{store}: activating {streams:N0} streams (bind to model {modelName}, H={settings.Hidden}, L={settings.Layers})");
        var activation = Stopwatch.StartNew();
        var (_, activationErrors, activationError, _) = await RunWorkersAsync(streams, TimeSpan.MaxValue, onePass: true,
            i => refs[i].BindAsync(modelName), cancellationToken);
        activation.Stop();
        if (activationErrors > 0) throw new InvalidOperationException($"{activationErrors} of {streams} streams failed to bind: {activationError}");
        var active = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);

        var sequences = new long[streams];
        RatioResult? ratio = null;
        if (settings.Tests.Contains(BenchSettings.Ratio))
        {
            var pings = new IPingGrain[streams];
            for (int i = 0; i < pings.Length; i++) pings[i] = grains.GetGrain<IPingGrain>($"{prefix}/{i}");
            progress($"{store}: ratio: {settings.Rounds} rounds of the no-op call and single ingest, {settings.DurationSeconds / settings.Rounds:0.##} s each");
            ratio = await MeasureRatioAsync(store, streams, i => pings[i].PingAsync(), i =>
            {
                long seq = ++sequences[i];
                return refs[i].IngestAsync(new Observation(seq, baseTime.AddSeconds(seq), [Signal(i, seq)]));
            }, cancellationToken);
        }
        if (settings.Tests.Contains(BenchSettings.Single))
        {
            progress($"{store}: single-observation ingest");
            phases.AddRange(await MeasurePhasesAsync(BenchSettings.Single, store, streams, 1, silo, baseline, i =>
            {
                long seq = ++sequences[i];
                return refs[i].IngestAsync(new Observation(seq, baseTime.AddSeconds(seq), [Signal(i, seq)]));
            }, cancellationToken));
        }
        // Both batch APIs send the same values; run in the order asked (-t batch,batch-rows gives an A/B in one silo).
        foreach (var test in settings.Tests.Where(t => t is BenchSettings.Batch or BenchSettings.BatchRows))
        {
            int size = settings.BatchSize;
            bool rows = test == BenchSettings.BatchRows;
            progress($"{store}: batch ingest ({size} per call, {(rows ? "rows: IngestBatch" : "columns: IngestColumns")})");
            phases.AddRange(await MeasurePhasesAsync(test, store, streams, size, silo, baseline, rows
                ? i =>
                {
                    var batch = new Observation[size];
                    for (int j = 0; j < size; j++)
                    {
                        long seq = ++sequences[i];
                        batch[j] = new Observation(seq, baseTime.AddSeconds(seq), [Signal(i, seq)]);
                    }
                    return refs[i].IngestBatchAsync(batch);
                }
                : i =>
                {
                    // Columns built in pooled buffers: the ObservationBatch copies them into its blocks.
                    var sequenceColumn = ArrayPool<long>.Shared.Rent(size);
                    var tickColumn = ArrayPool<long>.Shared.Rent(size);
                    var valueColumn = ArrayPool<float>.Shared.Rent(size);
                    for (int j = 0; j < size; j++)
                    {
                        long seq = ++sequences[i];
                        sequenceColumn[j] = seq;
                        tickColumn[j] = baseTime.UtcTicks + seq * TimeSpan.TicksPerSecond;
                        valueColumn[j] = Signal(i, seq);
                    }
                    var batch = new ObservationBatch(sequenceColumn.AsSpan(0, size), tickColumn.AsSpan(0, size), valueColumn.AsSpan(0, size));
                    ArrayPool<long>.Shared.Return(sequenceColumn);
                    ArrayPool<long>.Shared.Return(tickColumn);
                    ArrayPool<float>.Shared.Return(valueColumn);
                    return refs[i].IngestColumnsAsync(batch);
                }, cancellationToken));
        }
        ProcessStats? collected = null;
        if (settings.Tests.Contains(BenchSettings.Reload))
        {
            // Idle streams deactivate (as the activation collector would do after their idle age) and come back from
            // storage: every stream's reloaded last sequence must be the last one it acknowledged.
            progress($"{store}: deactivating every idle activation, then reloading {streams:N0} streams from storage");
            await grains.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
            collected = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);
            phases.Add(await ReloadAsync(store, streams, silo, i => refs[i].GetSummaryAsync(), sequences, cancellationToken));
        }
        var end = silo is null ? null : await silo.GetStatsAsync(collect: true, cancellationToken);

        double? rssPerStream = idle is not null && active is not null ? (double)(active.RssBytes - idle.RssBytes) / streams : null;
        double? managedPerStream = idle is not null && active is not null ? (double)(active.ManagedHeapBytes - idle.ManagedHeapBytes) / streams : null;
        var result = new StoreResult(store, streams, null, activation.Elapsed.TotalSeconds, streams / activation.Elapsed.TotalSeconds,
            idle, active, end, rssPerStream, managedPerStream, phases, collected) { Ratio = ratio };
        return (result, ping);
    }

    /// <summary>
    /// The ratio test: after one warm-up of each call, <see cref="BenchSettings.Rounds"/> rounds of a no-op slice and a
    /// single-ingest slice (--duration split evenly), the order flipping every round; closed loop at --concurrency.
    /// </summary>
    private async Task<RatioResult> MeasureRatioAsync(string store, int streams, Func<int, Task> noOp, Func<int, Task> single,
        CancellationToken cancellationToken)
    {
        int callers = Math.Max(1, Math.Min(settings.Concurrency, streams));
        var slice = TimeSpan.FromSeconds(settings.DurationSeconds / settings.Rounds);
        // Every no-op grain active before any slice (the ping phase may not have run): activations are not the ceiling.
        await RunWorkersAsync(streams, TimeSpan.MaxValue, onePass: true, noOp, cancellationToken);
        if (settings.WarmupSeconds > 0)
        {
            var warmup = TimeSpan.FromSeconds(settings.WarmupSeconds);
            await RunWorkersAsync(streams, warmup, onePass: false, noOp, cancellationToken, concurrency: callers);
            await RunWorkersAsync(streams, warmup, onePass: false, single, cancellationToken, concurrency: callers);
        }

        var rounds = new List<RatioRound>(settings.Rounds);
        long errors = 0;
        string? firstError = null;
        async Task<double> RateAsync(Func<int, Task> call)
        {
            var clock = Stopwatch.StartNew();
            var (histogram, sliceErrors, sliceError, _) = await RunWorkersAsync(streams, slice, onePass: false, call, cancellationToken, concurrency: callers);
            errors += sliceErrors;
            firstError ??= sliceError;
            return histogram.Count / clock.Elapsed.TotalSeconds;
        }
        for (int round = 1; round <= settings.Rounds; round++)
        {
            double noOpRate, singleRate;
            if (round % 2 == 1) { noOpRate = await RateAsync(noOp); singleRate = await RateAsync(single); }
            else { singleRate = await RateAsync(single); noOpRate = await RateAsync(noOp); }
            rounds.Add(new RatioRound(round, noOpRate, singleRate, singleRate / noOpRate));
        }
        var ratios = rounds.Select(r => r.Ratio).ToArray();
        var result = new RatioResult(settings.Rounds, slice.TotalSeconds, rounds, RatioResult.Median(ratios), ratios.Min(), ratios.Max(), errors, firstError);
        progress($"{store}: ratio: single / no-op median {result.MedianRatio:0.00} over {result.Rounds} rounds (range {result.MinRatio:0.00}-{result.MaxRatio:0.00})" +
            (errors > 0 ? $", {errors} errors ({firstError})" : ""));
        return result;
    }

    /// <summary>One pass over every stream reading its summary; a stream whose reloaded state is not what it acknowledged counts as an error.</summary>
    private async Task<PhaseResult> ReloadAsync(string store, int streams, BenchSiloProcess? silo, Func<int, Task<StreamSummary>> read,
        long[] sequences, CancellationToken cancellationToken)
    {
        var siloBefore = silo is null ? null : await silo.GetStatsAsync(collect: false, cancellationToken);
        long mismatches = 0;
        string? firstMismatch = null;
        var clock = Stopwatch.StartNew();
        var (histogram, errors, firstError, _) = await RunWorkersAsync(streams, TimeSpan.MaxValue, onePass: true, async i =>
        {
            var summary = await read(i);
            long expected = sequences[i];
            if ((expected == 0 ? summary.LastSequence is not null : summary.LastSequence != expected) && Interlocked.Increment(ref mismatches) == 1)
                firstMismatch = $"stream {i}: reloaded last sequence {summary.LastSequence?.ToString() ?? "none"}, acknowledged {expected}";
        }, cancellationToken);
        clock.Stop();
        var siloAfter = silo is null ? null : await silo.GetStatsAsync(collect: false, cancellationToken);
        double seconds = clock.Elapsed.TotalSeconds;
        long calls = histogram.Count;
        var result = new PhaseResult(BenchSettings.Reload, store, streams, 1, Math.Min(settings.Concurrency, streams), null,
            calls, calls, errors + mismatches, firstError ?? firstMismatch, seconds, calls / seconds, calls / seconds, LatencyResult.From(histogram), null,
            0, 0,
            siloBefore is null || siloAfter is null ? null : (siloAfter.CpuSeconds - siloBefore.CpuSeconds) * 1e6 / Math.Max(1, calls),
            siloBefore is null || siloAfter is null ? null : (siloAfter.AllocatedBytes - siloBefore.AllocatedBytes) / (double)Math.Max(1, calls));
        progress($"{store}: reload: {calls:N0} streams in {seconds:N1} s, {mismatches} not intact" + (errors > 0 ? $", {errors} errors ({firstError})" : ""));
        return result;
    }

    /// <summary>A smooth per-stream signal with a little structure (what a sensor might send).</summary>
    private static float Signal(int stream, long sequence) =>
        (float)(20 + 5 * Math.Sin(sequence * 0.05 + stream) + 0.5 * Math.Sin(sequence * 0.71 + 3 * stream));

    /// <summary>
    /// Measures one phase as asked: closed loop, or at the fixed --rate, or (--rate-fraction) closed loop first and then
    /// at that fraction of the maximum it just measured, on the same silo and streams (two results, maximum first):
    /// at a fixed rate (--rate-model open), or with the fewest closed-loop callers that reach it (--rate-model closed).
    /// </summary>
    private async Task<List<PhaseResult>> MeasurePhasesAsync(string test, string store, int streams, int batchSize, BenchSiloProcess? silo,
        PhaseResult? baseline, Func<int, Task> call, CancellationToken cancellationToken)
    {
        if (settings.RateFraction is not { } fraction)
            return [await MeasureAsync(test, store, streams, batchSize, silo, baseline, call, cancellationToken, settings.Rate)];
        bool closed = settings.RateModel == BenchSettings.RateModelClosed;
        progress($"{store}: {test}: closed-loop maximum first, then {fraction:0.###} of it " +
            (closed ? "with the fewest closed-loop callers that reach it" : "at a fixed rate"));
        var maximum = await MeasureAsync(test, store, streams, batchSize, silo, baseline, call, cancellationToken, offeredValuesPerSecond: null);
        double rate = FractionOfMaximum(maximum.ValuesPerSecond, fraction, maximum.Errors);
        PhaseResult atFraction;
        if (closed)
        {
            // The probes are short: when the measured run then falls below the fraction, the next rung is measured
            // instead (twice at most), so the reported latency is never that of a lighter load than asked.
            var ladder = CallerLadder(Math.Min(settings.Concurrency, streams));
            int rung = await FewestCallersReachingAsync(ladder, streams, batchSize, rate, call, cancellationToken);
            atFraction = await MeasureAsync(test, store, streams, batchSize, silo, baseline, call, cancellationToken, offeredValuesPerSecond: null, ladder[rung]);
            for (int retry = 0; retry < 2 && atFraction.ValuesPerSecond < rate && rung + 1 < ladder.Count; retry++)
            {
                progress(FormattableString.Invariant($"  {ladder[rung]} callers reached {atFraction.ValuesPerSecond:N0} values/s in the measured run, below {rate:N0}: measuring {ladder[rung + 1]}"));
                atFraction = await MeasureAsync(test, store, streams, batchSize, silo, baseline, call, cancellationToken, offeredValuesPerSecond: null, ladder[++rung]);
            }
        }
        else atFraction = await MeasureAsync(test, store, streams, batchSize, silo, baseline, call, cancellationToken, rate);
        atFraction = atFraction with { RateFraction = fraction, MaxValuesPerSecond = maximum.ValuesPerSecond, RateModel = settings.RateModel };
        progress(BenchTable.FractionLine(atFraction, Environment.ProcessorCount));
        return [maximum, atFraction];
    }

    /// <summary>
    /// --rate-model closed: probes closed-loop caller counts up <paramref name="ladder"/> (each for a short run) and
    /// returns the index of the first whose rate reaches <paramref name="valuesPerSecond"/>, or the last when none does.
    /// The first that reaches it, not the nearest: the measured load is never lighter than asked because a smaller count
    /// came closer from below.
    /// </summary>
    private async Task<int> FewestCallersReachingAsync(IReadOnlyList<int> ladder, int streams, int batchSize, double valuesPerSecond,
        Func<int, Task> call, CancellationToken cancellationToken)
    {
        var probe = TimeSpan.FromSeconds(Math.Clamp(settings.DurationSeconds / 4, 0.5, 2));
        for (int rung = 0; rung < ladder.Count; rung++)
        {
            var (histogram, errors, _, seconds) = await RunWorkersAsync(streams, probe, onePass: false, call, cancellationToken, concurrency: ladder[rung]);
            double reached = histogram.Count * (double)batchSize / seconds;
            progress(FormattableString.Invariant($"  probe: {ladder[rung]} callers, {reached:N0} values/s (want {valuesPerSecond:N0}){(errors > 0 ? $", {errors} errors" : "")}"));
            if (reached >= valuesPerSecond) return rung;
        }
        return ladder.Count - 1;
    }

    /// <summary>Closed-loop caller counts to probe, ascending, about 1.5x apart: 1, 2, 3, 4, 6, 8, 12, 16, 24, ... and <paramref name="maximum"/> last.</summary>
    internal static IReadOnlyList<int> CallerLadder(int maximum)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maximum);
        var ladder = new List<int>();
        for (int power = 1; power < maximum; power *= 2)
        {
            ladder.Add(power);
            int between = power + power / 2;
            if (power >= 2 && between < maximum) ladder.Add(between);
        }
        ladder.Add(maximum);
        return ladder;
    }

    /// <summary>
    /// --rate-fraction: the fixed rate (values/s) for a fraction of a closed-loop maximum. Refuses a maximum that is not a
    /// positive finite rate (nothing succeeded, so no rate can be derived from it).
    /// </summary>
    internal static double FractionOfMaximum(double maxValuesPerSecond, double fraction, long errors = 0)
    {
        if (!(fraction > 0) || !double.IsFinite(fraction)) throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "must be a positive fraction");
        if (!(maxValuesPerSecond > 0) || !double.IsFinite(maxValuesPerSecond))
            throw new InvalidOperationException($"The closed-loop maximum measured {maxValuesPerSecond} values/s ({errors} errors): no fixed rate can be derived from it.");
        return maxValuesPerSecond * fraction;
    }

    private async Task<PhaseResult> MeasureAsync(string test, string store, int streams, int batchSize, BenchSiloProcess? silo,
        PhaseResult? baseline, Func<int, Task> call, CancellationToken cancellationToken, double? offeredValuesPerSecond, int? concurrency = null)
    {
        int callers = Math.Max(1, Math.Min(concurrency ?? settings.Concurrency, streams));
        double? callRate = offeredValuesPerSecond is { } rate ? rate / batchSize : null;
        if (settings.WarmupSeconds > 0)
        {
            if (callRate is { } warmRate) await RunFixedRateAsync(streams, TimeSpan.FromSeconds(settings.WarmupSeconds), warmRate, call, cancellationToken);
            else await RunWorkersAsync(streams, TimeSpan.FromSeconds(settings.WarmupSeconds), onePass: false, call, cancellationToken, concurrency: callers);
        }

        var siloBefore = silo is null ? null : await silo.GetStatsAsync(collect: false, cancellationToken);
        // The client's own garbage from setup and warm-up is collected now, not by a gen1/gen2 collection inside the
        // measured window, where its pause would be charged to the calls due meanwhile (the silo is not touched).
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        var clientBefore = ProcessStats.Capture();
        var clock = Stopwatch.StartNew();
        LatencyHistogram histogram;
        long errors;
        string? firstError;
        PacerResult? paced = null;
        if (callRate is { } callsPerSecond)
        {
            paced = await RunFixedRateAsync(streams, TimeSpan.FromSeconds(settings.DurationSeconds), callsPerSecond, call, cancellationToken,
                intervalLabel: $"{store} {test}");
            (histogram, errors, firstError) = (paced.Latency, paced.Errors, paced.FirstError);
        }
        else
        {
            (histogram, errors, firstError, _) = await RunWorkersAsync(streams, TimeSpan.FromSeconds(settings.DurationSeconds),
                onePass: false, call, cancellationToken, intervalLabel: $"{store} {test}", concurrency: callers);
        }
        clock.Stop();
        var clientAfter = ProcessStats.Capture();
        var siloAfter = silo is null ? null : await silo.GetStatsAsync(collect: false, cancellationToken);

        long calls = histogram.Count;
        long values = calls * batchSize;
        double seconds = clock.Elapsed.TotalSeconds;
        double perValue = Math.Max(1, values);
        double valuesPerSecond = values / seconds;
        double? ratio = baseline is null ? null : valuesPerSecond / baseline.CallsPerSecond;
        var result = new PhaseResult(test, store, streams, batchSize, callers, offeredValuesPerSecond,
            calls, values, errors, firstError, seconds, calls / seconds, valuesPerSecond, LatencyResult.From(histogram), ratio,
            (clientAfter.CpuSeconds - clientBefore.CpuSeconds) * 1e6 / perValue,
            (clientAfter.AllocatedBytes - clientBefore.AllocatedBytes) / perValue,
            siloBefore is null || siloAfter is null ? null : (siloAfter.CpuSeconds - siloBefore.CpuSeconds) * 1e6 / perValue,
            siloBefore is null || siloAfter is null ? null : (siloAfter.AllocatedBytes - siloBefore.AllocatedBytes) / perValue)
        {
            SendLag = paced is null ? null : LatencyResult.From(paced.SendLag),
            DispatchLag = paced?.DispatchLag is { } dispatched ? LatencyResult.From(dispatched) : null,
            QueuedBehindStream = paced?.Queued,
            MaxStreamBacklog = paced?.MaxBacklog,
            PacerCpuPercent = paced?.PacerCpuSeconds is { } pacerCpu ? pacerCpu * 100 / seconds : null,
            PacerWakeUpsPerSecond = paced is null ? null : paced.PacerWakeUps / seconds,
            PacerSend = paced is null ? null : settings.PacerSend,
            SiloGc = siloBefore is null || siloAfter is null ? null : GcDelta(siloBefore, siloAfter),
            SiloGcPauseMs = siloBefore is null || siloAfter is null ? null : (siloAfter.GcPauseSeconds - siloBefore.GcPauseSeconds) * 1e3,
            ClientGc = GcDelta(clientBefore, clientAfter),
            ClientGcPauseMs = (clientAfter.GcPauseSeconds - clientBefore.GcPauseSeconds) * 1e3,
        };
        progress($"{store}: {test}: {valuesPerSecond:N0} values/s, p50 {result.Latency.P50Us:N0} us, p99 {result.Latency.P99Us:N0} us" +
            (result.SendLag is { } lag ? $" (client send lag p50 {lag.P50Us:N0} us, p99 {lag.P99Us:N0} us, max {lag.MaxUs:N0} us" +
                (result.DispatchLag is { } d ? $"; made p50 {d.P50Us:N0} us, p99 {d.P99Us:N0} us after due" : "") + $"; {paced!.Queued:N0} calls queued behind their stream, backlog max {paced.MaxBacklog})" : "") +
            (errors > 0 ? $", {errors} errors ({firstError})" : ""));
        return result;
    }

    /// <summary>The bench silo process's extra environment: the --silo-gc mode's variables, then --silo-env's.</summary>
    internal static IReadOnlyDictionary<string, string>? SiloEnvironment(BenchSettings settings) =>
        SiloEnvironment(settings, Environment.GetEnvironmentVariable);

    /// <summary>
    /// The same, given this process's environment: when the bench re-ran itself with a client gen0 budget
    /// (<see cref="BenchClientGc"/>), the silo gets the runtime's default gen0 back unless --silo-gc/--silo-env set one.
    /// </summary>
    internal static IReadOnlyDictionary<string, string>? SiloEnvironment(BenchSettings settings, Func<string, string?> clientEnvironment)
    {
        var gc = SiloGcEnvironment(settings.SiloGc);
        var gen0 = BenchClientGc.SiloGen0Override(clientEnvironment);
        if (settings.SiloEnvironment is not { Count: > 0 } && gen0 is null) return gc;
        var environment = new Dictionary<string, string>(gc ?? new Dictionary<string, string>());
        if (gen0 is not null) environment[BenchClientGc.Gen0Variable] = gen0;
        foreach (var (name, value) in settings.SiloEnvironment ?? new Dictionary<string, string>()) environment[name] = value;
        return environment;
    }

    private static GcCounts GcDelta(ProcessStats before, ProcessStats after) => new(after.Gen0Collections - before.Gen0Collections,
        after.Gen1Collections - before.Gen1Collections, after.Gen2Collections - before.Gen2Collections);

    /// <summary>
    /// Closed-loop workers: min(concurrency, streams) of them; worker w owns streams w, w+W, w+2W, ... and calls them
    /// round-robin, one call in flight each, until <paramref name="duration"/> has passed (or once each with
    /// <paramref name="onePass"/>). Latency counts from each call's send. Fixed-rate (open-loop) load is
    /// <see cref="RunFixedRateAsync"/>.
    /// </summary>
    private async Task<(LatencyHistogram Histogram, long Errors, string? FirstError, double Seconds)> RunWorkersAsync(
        int streams, TimeSpan duration, bool onePass, Func<int, Task> call, CancellationToken cancellationToken,
        string? intervalLabel = null, int? concurrency = null)
    {
        // --report-every: one extra histogram shared by all workers (behind a lock, only when asked for), swapped out by
        // a reporter every interval. The per-worker histograms that make the phase's result are unaffected.
        var interval = intervalLabel is not null && settings.ReportEverySeconds is { } every ? new IntervalReporter(intervalLabel, every, progress) : null;
        int workers = Math.Max(1, Math.Min(concurrency ?? settings.Concurrency, streams));
        var histograms = new LatencyHistogram[workers];
        long errors = 0;
        string? firstError = null;
        long start = Stopwatch.GetTimestamp();
        long end = duration == TimeSpan.MaxValue ? long.MaxValue : start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        double nanosPerTick = 1e9 / Stopwatch.Frequency;

        async Task Worker(int w)
        {
            var histogram = histograms[w] = new LatencyHistogram();
            int cursor = w;
            while (!cancellationToken.IsCancellationRequested)
            {
                long sent = Stopwatch.GetTimestamp();
                if (sent >= end) break;
                try
                {
                    await call(cursor);
                    long latency = (long)((Stopwatch.GetTimestamp() - sent) * nanosPerTick);
                    histogram.Record(latency);
                    interval?.Record(latency);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    interval?.RecordError();
                    if (Interlocked.Increment(ref errors) == 1) firstError = $"{ex.GetType().Name}: {ex.Message}";
                    if (Interlocked.Read(ref errors) > 1000) break;
                }
                cursor += workers;
                if (cursor >= streams)
                {
                    if (onePass) break;
                    cursor = w;
                }
            }
        }

        var tasks = new Task[workers];
        for (int w = 0; w < workers; w++)
        {
            int worker = w;
            tasks[w] = Task.Run(() => Worker(worker), cancellationToken);
        }
        var reporting = interval?.RunAsync(Task.WhenAll(tasks));
        await Task.WhenAll(tasks);
        if (reporting is not null) await reporting;
        double seconds = (Stopwatch.GetTimestamp() - start) / (double)Stopwatch.Frequency;
        var merged = new LatencyHistogram();
        foreach (var h in histograms) if (h is not null) merged.Add(h);
        return (merged, errors, firstError, seconds);
    }

    /// <summary>
    /// Open-loop fixed-rate load over <paramref name="streams"/> streams for <paramref name="duration"/>
    /// (<see cref="FixedRatePacer"/>): call n is due at start + n / rate on stream n mod streams, issued by one pacing
    /// thread whatever earlier calls are doing, at most one in flight per stream (a call due while its stream is busy
    /// queues behind it and is counted). Latency counts from the scheduled time (no coordinated omission).
    /// </summary>
    private async Task<PacerResult> RunFixedRateAsync(int streams, TimeSpan duration, double callsPerSecond, Func<int, Task> call,
        CancellationToken cancellationToken, string? intervalLabel = null)
    {
        var interval = intervalLabel is not null && settings.ReportEverySeconds is { } every ? new IntervalReporter(intervalLabel, every, progress) : null;
        // Start a little ahead so the first calls are not already late when the pacing thread comes up.
        long start = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 1000;
        long end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var pacer = new FixedRatePacer(streams, callsPerSecond, start, end, call, Stopwatch.GetTimestamp, Stopwatch.Frequency,
            interval is null ? null : interval.Record, interval is null ? null : interval.RecordError, cancellationToken,
            sendOnThreadPool: settings.PacerSend == BenchSettings.PacerSendPool);
        pacer.Start((long)(settings.PacerBurstMicroseconds * Stopwatch.Frequency / 1e6));
        var reporting = interval?.RunAsync(pacer.Completion);
        await pacer.Completion;
        if (reporting is not null) await reporting;
        return pacer.Result();
    }

    /// <summary>
    /// Prints, every <c>every</c> seconds of a measured phase, the calls, errors and latency percentiles of that interval
    /// alone as one line: <c>interval LABEL t=SECONDS calls=N errors=N p50_us=.. p99_us=.. max_us=..</c> (a last,
    /// shorter interval is printed when the phase ends).
    /// </summary>
    private sealed class IntervalReporter(string label, double every, Action<string> progress)
    {
        private readonly Lock _gate = new();
        private LatencyHistogram _current = new();
        private long _errors;

        public void Record(long nanoseconds)
        {
            lock (_gate) _current.Record(nanoseconds);
        }

        public void RecordError() => Interlocked.Increment(ref _errors);

        public async Task RunAsync(Task workers)
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                var tick = Task.Delay(TimeSpan.FromSeconds(every));
                bool done = await Task.WhenAny(tick, workers) == workers;
                LatencyHistogram interval;
                lock (_gate) (interval, _current) = (_current, new LatencyHistogram());
                long errors = Interlocked.Exchange(ref _errors, 0);
                if (!done || interval.Count > 0 || errors > 0)
                    progress(FormattableString.Invariant(
                        $"interval {label} t={clock.Elapsed.TotalSeconds:F0} calls={interval.Count} errors={errors} p50_us={interval.ValueAtQuantile(0.50) / 1e3:F0} p99_us={interval.ValueAtQuantile(0.99) / 1e3:F0} max_us={interval.Max / 1e3:F0}"));
                if (done) return;
            }
        }
    }

    /// <summary>Creates (idempotently) this run's model: D=1, the bench's H and L, one horizon, level head, seed 1.</summary>
    private async Task<string> CreateBenchModelAsync(IGrainFactory grains)
    {
        var modelName = $"bench-{_runId}";
        await grains.GetGrain<IModelGrain>(modelName).CreateAsync(
            new ModelConfig(InputSize: 1, HiddenSize: settings.Hidden, Layers: settings.Layers, Horizons: 1, Features: [], Seed: 1));
        return modelName;
    }
}
