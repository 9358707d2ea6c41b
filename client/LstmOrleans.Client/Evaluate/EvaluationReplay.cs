using LstmOrleans.Abstractions;

namespace LstmOrleans.Client.Evaluate;

/// <summary>What the replay does: the model's shape, when and how the training grain refits it.</summary>
/// <param name="Horizons">K, forecasts per step.</param>
/// <param name="Warmup">Steps replayed before the first refit; forecasts issued at origins before it are not scored.</param>
/// <param name="RefitEvery">Refit after every this many steps (null = not by count).</param>
/// <param name="RefitPeriod">Refit whenever this much series time passed since the previous refit (null = not by time).</param>
/// <param name="History">Observations each stream keeps, and so the most a round can train on per stream.</param>
/// <param name="Calendar">The model gets every calendar feature of each row's timestamp besides the value.</param>
/// <param name="Residual">The model's head predicts the change from the last value (<see cref="ModelConfig.Residual"/>).</param>
/// <param name="PooledLoss">Refits use the plain pooled MSE over all streams instead of weighting each stream by 1 / its
/// persistence MSE (the training grain's default, <c>TrainingGrainOptions.BalanceStreams</c>).</param>
/// <param name="StoredTargets">Refits score targets as the streams stored them (normalised with the target step's own
/// statistics) instead of in the origin step's (the default, <c>TrainingGrainOptions.OriginScaledTargets</c>).</param>
internal sealed record EvaluationSettings(
    int Hidden,
    int Layers,
    int Horizons,
    int Window,
    float LearningRate,
    int Epochs,
    int Warmup,
    int? RefitEvery,
    TimeSpan? RefitPeriod,
    int History,
    TimeSpan TimeBudget,
    int Seed = 0,
    int Stride = 4,
    int BatchSize = 32,
    int Patience = 5,
    bool Calendar = false,
    bool Residual = false,
    bool PooledLoss = false,
    bool StoredTargets = false)
{
    /// <summary>First problem with the settings, or null.</summary>
    public string? Check()
    {
        if (Hidden is < 1 or > 4096) return $"--hidden must be in 1..4096, got {Hidden}.";
        if (Layers is < 1 or > 16) return $"--layers must be in 1..16, got {Layers}.";
        if (Horizons is < 1 or > 1000) return $"--horizon must be in 1..1000, got {Horizons}.";
        if (Window < 2) return $"--window must be at least 2, got {Window}.";
        if (Stride < 1) return $"--stride must be at least 1, got {Stride}.";
        if (BatchSize is < 1 or > 1_000_000) return $"--batch-size must be in 1..1000000, got {BatchSize}.";
        if (Patience < 0) return $"--patience must not be negative, got {Patience}.";
        if (!(LearningRate > 0) || !float.IsFinite(LearningRate)) return $"--lr must be positive, got {LearningRate}.";
        if (Epochs < 1) return $"--epochs must be at least 1, got {Epochs}.";
        if (Warmup < 1) return $"--warmup must be at least 1, got {Warmup}.";
        if (RefitEvery is < 1) return $"--refit-every must be at least 1, got {RefitEvery}.";
        if (RefitPeriod is { } p && p <= TimeSpan.Zero) return $"--refit-period must be positive, got {p}.";
        if (History < Window + 2) return $"--history ({History}) must be at least --window + 2 ({Window + 2}).";
        if (TimeBudget <= TimeSpan.Zero) return $"--time-budget must be positive, got {TimeBudget}.";
        return null;
    }
}

/// <summary>One training round the replay ran, with the step after which it ran.</summary>
internal sealed record ReplayRound(int AfterStep, TrainingRoundRecord Record);

/// <summary>Everything one stream's replay produced.</summary>
/// <param name="Predictions">[N, K] row-major: row t holds the forecasts the stream grain returned after step t.</param>
/// <param name="WeightsVersions">[N] weights version behind each row's forecasts.</param>
internal sealed record StreamReplay(EvaluationSeries Series, float[] Predictions, long[] WeightsVersions);

internal sealed record ReplayResult(IReadOnlyList<StreamReplay> Streams, IReadOnlyList<ReplayRound> Rounds, TimeSpan Elapsed);

/// <summary>
/// Replays series through the stream grains of a live cluster exactly as live data would arrive: every stream steps
/// once per value (batched calls, one result per value), all streams advance in lockstep by step index, and the
/// model's training grain refits the shared weights between steps on the schedule. A round can only read what the
/// stream grains hold (their ring buffers of past observations), so no forecast can see a value after its origin.
/// </summary>
internal sealed class EvaluationReplay(EvaluationCluster cluster, EvaluationSettings settings)
{
    public const string ModelName = "evaluate";

    /// <summary>Largest batch sent to a stream grain in one call.</summary>
    public const int MaxChunk = 512;

    private long _lastRoundId;

    /// <summary>Called after each round (for progress lines).</summary>
    public Action<ReplayRound>? OnRound { get; init; }

    /// <summary>
    /// The steps after which a refit runs: the end of the warm-up, then every <see cref="EvaluationSettings.RefitEvery"/>
    /// steps and/or whenever <see cref="EvaluationSettings.RefitPeriod"/> of series time passed since the previous refit
    /// (series time of step t = the largest time any stream has advanced from its own first timestamp). Never after the last step.
    /// </summary>
    public static SortedSet<int> RefitSteps(IReadOnlyList<EvaluationSeries> series, EvaluationSettings settings)
    {
        int length = series.Max(s => s.Length);
        var steps = new SortedSet<int>();
        int first = settings.Warmup - 1;
        if (first >= length - 1) return steps;
        steps.Add(first);
        if (settings.RefitEvery is { } every)
            for (int t = first + every; t < length - 1; t += every) steps.Add(t);
        if (settings.RefitPeriod is { } period)
        {
            TimeSpan Elapsed(int t) => series.Where(s => t < s.Length).Select(s => s.Timestamps[t] - s.Timestamps[0]).DefaultIfEmpty().Max();
            TimeSpan last = Elapsed(first);
            for (int t = first + 1; t < length - 1; t++)
            {
                var elapsed = Elapsed(t);
                if (elapsed - last >= period)
                {
                    steps.Add(t);
                    last = elapsed;
                }
            }
        }
        return steps;
    }

    public async Task<ReplayResult> RunAsync(IReadOnlyList<EvaluationSeries> series, CancellationToken cancellationToken)
    {
        if (series.Count == 0) throw new CliException("Nothing to replay.");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int k = settings.Horizons;
        var grains = cluster.Grains;

        var model = grains.GetGrain<IModelGrain>(ModelName);
        await model.CreateAsync(new ModelConfig(1, settings.Hidden, settings.Layers, k, ["value"], 0, NormalizationMode.RunningZScore, settings.Seed,
            settings.Calendar ? Commands.ModelClusterCommands.AllCalendarFeatures : null, settings.Residual));
        var training = grains.GetGrain<ITrainingGrain>(ModelName);
        // No period and no observation trigger: rounds run only when the replay starts them.
        await training.ConfigureAsync(new TrainingSettings(
            Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: series.Count, Epochs: settings.Epochs,
            TimeBudget: settings.TimeBudget, LearningRate: settings.LearningRate, WindowLength: settings.Window,
            Stride: settings.Stride, BatchSize: settings.BatchSize, ValidationFraction: 0.2, ClipNorm: 1f,
            Patience: settings.Patience, MaxRowsPerStream: settings.History));

        var streams = new IStreamGrain[series.Count];
        var outputs = new StreamReplay[series.Count];
        for (int i = 0; i < series.Count; i++)
        {
            streams[i] = grains.GetGrain<IStreamGrain>(series[i].Name);
            await streams[i].BindAsync(ModelName);
            outputs[i] = new StreamReplay(series[i], new float[series[i].Length * k], new long[series[i].Length]);
        }

        await WaitForRegistrationAsync(series.Count, cancellationToken);

        var refits = RefitSteps(series, settings);
        var rounds = new List<ReplayRound>();
        int length = series.Max(s => s.Length);
        int step = 0;
        while (step < length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int end = Math.Min(length, step + MaxChunk);
            var nextRefit = refits.GetViewBetween(step, end - 1);
            if (nextRefit.Count > 0) end = nextRefit.Min + 1;
            int from = step;
            await Task.WhenAll(Enumerable.Range(0, series.Count).Select(i => IngestAsync(streams[i], outputs[i], from, Math.Min(end, series[i].Length))));
            step = end;
            if (refits.Contains(end - 1))
            {
                var round = new ReplayRound(end - 1, await RefitAsync(training, cancellationToken));
                rounds.Add(round);
                OnRound?.Invoke(round);
            }
        }
        return new ReplayResult(outputs, rounds, clock.Elapsed);
    }

    /// <summary>
    /// Streams register with the model's stream registry by a one-way message when they bind; a round samples only
    /// registered streams, so the replay waits until every stream is registered before anything can start a round.
    /// </summary>
    private async Task WaitForRegistrationAsync(int streams, CancellationToken cancellationToken)
    {
        var shard = cluster.Grains.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(ModelName, 0));
        for (int attempt = 0; (await shard.GetStatsAsync()).Streams < streams; attempt++)
        {
            if (attempt >= 3000) throw new TimeoutException($"The stream registry of '{ModelName}' did not register all {streams} streams.");
            await Task.Delay(10, cancellationToken);
        }
    }

    private async Task IngestAsync(IStreamGrain stream, StreamReplay output, int from, int until)
    {
        if (from >= until) return;
        int k = settings.Horizons, n = until - from;
        var sequences = new long[n];
        var ticks = new long[n];
        for (int t = from; t < until; t++)
        {
            sequences[t - from] = t + 1;
            ticks[t - from] = new DateTimeOffset(output.Series.Timestamps[t], TimeSpan.Zero).UtcTicks;
        }
        var forecast = await stream.IngestColumnsAsync(new ObservationBatch(sequences, ticks, output.Series.Values.AsSpan(from, n)));
        if (forecast.DuplicateCount != 0 || forecast.NewCount != n || forecast.Horizons != k)
            throw new InvalidOperationException($"Stream '{output.Series.Name}' did not step at every replay step {from}..{until - 1} (duplicate or wrong shape).");
        forecast.Predictions.CopyTo(output.Predictions.AsSpan(from * k, n * k));
        output.WeightsVersions.AsSpan(from, n).Fill(forecast.WeightsVersion);
    }

    /// <summary>
    /// One round through the training grain's train-now control (started, then polled, so a long round is not cut by the
    /// call timeout). When it publishes, waits until this silo's weights cache holds the new version, so the next step
    /// of every stream uses it, as on a live silo once the push has arrived.
    /// </summary>
    private async Task<TrainingRoundRecord> RefitAsync(ITrainingGrain training, CancellationToken cancellationToken)
    {
        // A round's record becomes readable a moment before its task completes, and a start request in that moment
        // joins the finished round (returning its id) instead of starting a new one: start only when no round runs,
        // and retry if the id is not new.
        long roundId;
        while (true)
        {
            if (!(await training.GetStatusAsync()).Running)
            {
                roundId = await training.StartRoundAsync();
                if (roundId > _lastRoundId) break;
            }
            await Task.Delay(20, cancellationToken);
        }
        _lastRoundId = roundId;
        TrainingRoundRecord? record;
        while ((record = await training.GetRoundAsync(roundId)) is null)
            await Task.Delay(50, cancellationToken);
        if (record.PublishedVersion is { } published)
        {
            for (int attempt = 0; ; attempt++)
            {
                if (cluster.WeightsCache.TryGet(ModelName, out var cached) && cached.Version >= published) break;
                if (attempt >= 200) throw new TimeoutException($"The silo's weights cache did not receive version {published} of '{ModelName}'.");
                await cluster.WeightsCache.RefreshAsync(cancellationToken);
                await Task.Delay(10, cancellationToken);
            }
        }
        return record;
    }
}
