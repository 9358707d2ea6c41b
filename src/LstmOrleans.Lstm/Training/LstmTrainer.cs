using System.Diagnostics;
using System.Numerics.Tensors;

namespace LstmOrleans.Lstm.Training;

/// <summary>
/// Fits the shared weights of a model by BPTT over windows cut from series of rows (each row-major [N_s, D]).
/// CPU-bound and synchronous: callers on a grain run it off the scheduler (e.g. Task.Run) and pass a token.
/// </summary>
public static class LstmTrainer
{
    /// <summary>
    /// Trains a copy of <paramref name="initial"/> (which is not modified) and returns the best parameters by
    /// validation loss. Deterministic for a given <see cref="TrainerOptions.Seed"/> and <see cref="TrainerOptions.Threads"/>.
    /// Throws <see cref="ArgumentException"/> for bad options or data (non-finite values, ragged rows, too short
    /// to cut a window) and <see cref="OperationCanceledException"/> when <paramref name="ct"/> fires.
    /// </summary>
    /// <param name="scales">Optional per-row normalisation of each series' target column (<see cref="SeriesScale"/>): targets
    /// are then scored in the units of their origin row, as a stream with running statistics de-normalises them.</param>
    public static TrainingResult Fit(LstmParameters initial, IReadOnlyList<float[]> series, TrainerOptions options,
        Action<EpochReport>? onEpoch = null, CancellationToken ct = default, IReadOnlyList<SeriesScale>? scales = null)
    {
        ArgumentNullException.ThrowIfNull(initial);
        var config = initial.Config;
        options.Validate(config);
        var data = Dataset.Create(config, series, options, scales);
        if (!initial.AllFinite()) throw new ArgumentException("Initial parameters contain NaN or infinite values.", nameof(initial));
        if (data.TrainWindows.Length == 0)
            throw new ArgumentException($"No training window of {options.WindowLength} rows fits in the training part of any series.", nameof(series));
        bool validate = options.ValidationFraction > 0;
        if (validate && data.ValidationWindows.Length == 0)
            throw new ArgumentException($"No validation window of {options.WindowLength} rows fits in any series; lower WindowLength or set ValidationFraction to 0.", nameof(series));

        var clock = Stopwatch.StartNew();
        var parameters = initial.Clone();
        var engine = new BatchEngine(config, options, data);
        IOptimizer optimizer = options.Optimizer == OptimizerKind.Adam
            ? new AdamOptimizer(parameters.Count, options.LearningRate)
            : new SgdOptimizer(parameters.Count, options.LearningRate, options.Momentum);
        var gradient = new float[parameters.Count];                     // [P]
        var part = data.Weighted ? new float[parameters.Count] : null;  // [P] gradient of one series' part of a batch
        var sorted = new Window[options.BatchSize];                     // [BatchSize] the batch grouped by series
        var order = Enumerable.Range(0, data.TrainWindows.Length).ToArray();
        var batch = new Window[options.BatchSize];
        var epochs = new List<EpochReport>();
        LstmParameters best = parameters.Clone();
        double bestLoss = double.PositiveInfinity;
        int bestEpoch = 0, sinceBest = 0;
        bool stoppedEarly = false, ranOutOfTime = false;
        double persistence = validate ? Evaluate(engine, data, parameters, data.ValidationWindows, ct).PersistenceMse : double.NaN;

        for (int epoch = 1; epoch <= options.MaxEpochs; epoch++)
        {
            var shuffle = new Random(HashCode.Combine(options.Seed, epoch));
            shuffle.Shuffle(order);
            double epochSse = 0, epochCount = 0;
            for (int start = 0; start < order.Length; start += options.BatchSize)
            {
                ct.ThrowIfCancellationRequested();
                int n = Math.Min(options.BatchSize, order.Length - start);
                for (int i = 0; i < n; i++) batch[i] = data.TrainWindows[order[start + i]];
                var (sse, count) = part is null
                    ? engine.ForwardBackward(parameters, batch.AsSpan(0, n), gradient)
                    : WeightedForwardBackward(engine, data, parameters, batch.AsSpan(0, n), sorted, gradient, part);
                if (count == 0) continue;
                epochSse += sse;
                epochCount += count;
                double norm = options.ClipNorm > 0
                    ? GradientClipping.ClipByGlobalNorm(gradient, options.ClipNorm)
                    : Math.Sqrt(gradient.Sum(g => (double)g * g));
                if (double.IsFinite(norm)) optimizer.Step(parameters.Data, gradient);   // never step on a NaN gradient
                if (options.TimeBudget is { } budget && clock.Elapsed >= budget)
                {
                    ranOutOfTime = true;
                    break;
                }
            }
            double trainLoss = epochCount == 0 ? double.NaN : epochSse / epochCount;
            double validationLoss = validate ? Evaluate(engine, data, parameters, data.ValidationWindows, ct).Mse : trainLoss;
            var report = new EpochReport(epoch, trainLoss, validationLoss, clock.Elapsed);
            epochs.Add(report);
            onEpoch?.Invoke(report);
            if (validationLoss < bestLoss)
            {
                bestLoss = validationLoss;
                bestEpoch = epoch;
                best = parameters.Clone();
                sinceBest = 0;
            }
            else sinceBest++;
            if (ranOutOfTime) break;
            if (options.Patience > 0 && sinceBest >= options.Patience && epoch < options.MaxEpochs)
            {
                stoppedEarly = true;
                break;
            }
        }
        return new TrainingResult(best, bestLoss, bestEpoch, epochs, stoppedEarly, ranOutOfTime, persistence);
    }

    /// <summary>
    /// Validation MSE of <paramref name="parameters"/> on the held-out (most recent) part of each series as
    /// <see cref="Fit"/> defines it, with the persistence baseline's MSE on the same entries, so a champion and
    /// a challenger can be scored on the same data.
    /// </summary>
    public static EvaluationResult Evaluate(LstmParameters parameters, IReadOnlyList<float[]> series, TrainerOptions options,
        IReadOnlyList<SeriesScale>? scales = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var config = parameters.Config;
        options.Validate(config);
        if (options.ValidationFraction <= 0) throw new ArgumentException("Evaluate needs a ValidationFraction above 0.", nameof(options));
        var data = Dataset.Create(config, series, options, scales);
        if (data.ValidationWindows.Length == 0)
            throw new ArgumentException($"No validation window of {options.WindowLength} rows fits in any series.", nameof(series));
        var engine = new BatchEngine(config, options, data);
        return Evaluate(engine, data, parameters, data.ValidationWindows, CancellationToken.None);
    }

    /// <summary>
    /// Batch gradient of the series-weighted loss sum_s w_s SSE_s / sum_s w_s n_s: the batch is grouped by series, each
    /// group runs through the engine on its own (its gradient is that group's mean), and the groups are combined with
    /// weights w_s n_s. Returns the weighted SSE and the weighted count of the batch.
    /// </summary>
    private static (double Sse, double Count) WeightedForwardBackward(BatchEngine engine, Dataset data, LstmParameters parameters,
        ReadOnlySpan<Window> batch, Window[] sorted, float[] gradient, float[] part)
    {
        int n = batch.Length;
        batch.CopyTo(sorted);
        // Stable grouping (insertion sort by series: batches are small), so the result does not depend on the sort.
        for (int i = 1; i < n; i++)
        {
            var w = sorted[i];
            int j = i - 1;
            while (j >= 0 && sorted[j].Series > w.Series) { sorted[j + 1] = sorted[j]; j--; }
            sorted[j + 1] = w;
        }
        Array.Clear(gradient);
        double sse = 0, count = 0;
        for (int start = 0; start < n;)
        {
            int end = start + 1;
            while (end < n && sorted[end].Series == sorted[start].Series) end++;
            var (groupSse, groupCount) = engine.ForwardBackward(parameters, sorted.AsSpan(start, end - start), part);
            if (groupCount > 0)
            {
                double weight = data.SeriesWeights[sorted[start].Series];
                TensorPrimitives.MultiplyAdd(part, (float)(weight * groupCount), gradient, gradient);
                sse += weight * groupSse;
                count += weight * groupCount;
            }
            start = end;
        }
        if (count > 0) TensorPrimitives.Multiply(gradient, (float)(1.0 / count), gradient);
        return (sse, count);
    }

    /// <summary>
    /// Model and persistence MSE over <paramref name="windows"/>, each series' squared errors weighted by its
    /// <see cref="Dataset.SeriesWeights"/> (plain MSE when unweighted). Count = the number of scored entries.
    /// </summary>
    private static EvaluationResult Evaluate(BatchEngine engine, Dataset data, LstmParameters parameters, Window[] windows, CancellationToken ct)
    {
        if (!data.Weighted) return engine.Evaluate(parameters, windows, ct);
        double sse = 0, persistence = 0, weightedCount = 0;
        int count = 0;
        foreach (var group in windows.GroupBy(w => w.Series))
        {
            var result = engine.Evaluate(parameters, group.ToArray(), ct);
            if (result.Count == 0) continue;
            double weight = data.SeriesWeights[group.Key];
            sse += weight * result.Mse * result.Count;
            persistence += weight * result.PersistenceMse * result.Count;
            weightedCount += weight * result.Count;
            count += result.Count;
        }
        return count == 0
            ? new EvaluationResult(double.NaN, double.NaN, 0)
            : new EvaluationResult(sse / weightedCount, persistence / weightedCount, count);
    }

    /// <summary>
    /// The CLI's reproducible mode: consecutive non-overlapping windows of <paramref name="window"/> rows from the
    /// first row (a shorter remainder is dropped), zero initial state per window, output k (0-based) at row t
    /// targets column <paramref name="targetColumn"/> of row t + k + 1 of the whole series (masked past its end),
    /// all windows in one batch, no clipping, single-threaded, <paramref name="epochs"/> full-batch steps of plain
    /// SGD (or Adam with default betas). Updates <paramref name="parameters"/> in place; returns the loss of each
    /// epoch, measured by that epoch's forward pass (before its update). Throws <see cref="OperationCanceledException"/>
    /// between two steps when <paramref name="cancellationToken"/> fires (<paramref name="parameters"/> then hold the
    /// steps taken so far).
    /// </summary>
    public static IReadOnlyList<float> TrainDeterministic(LstmParameters parameters, float[] rows, int targetColumn, int window,
        int epochs, float learningRate, OptimizerKind optimizer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(rows);
        var config = parameters.Config;
        int d = config.InputSize, k = config.Horizons;
        if (rows.Length % d != 0) throw new ArgumentException($"Row data length {rows.Length} is not a multiple of the input size {d}.", nameof(rows));
        if (targetColumn < 0 || targetColumn >= d) throw new ArgumentOutOfRangeException(nameof(targetColumn), $"Target column must be in [0, {d}), got {targetColumn}.");
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), "Window must be at least 1 row.");
        if (epochs < 1) throw new ArgumentOutOfRangeException(nameof(epochs), "Epochs must be at least 1.");
        if (!(learningRate > 0f) || !float.IsFinite(learningRate)) throw new ArgumentOutOfRangeException(nameof(learningRate), "Learning rate must be positive and finite.");
        foreach (float v in rows) if (!float.IsFinite(v)) throw new ArgumentException("Rows contain NaN or infinite values.", nameof(rows));
        int n = rows.Length / d;
        int windows = n / window;
        if (windows == 0) throw new ArgumentException($"{n} rows are fewer than one window of {window}.", nameof(rows));

        var inputs = rows.AsSpan(0, windows * window * d);                 // [W, T, D]: consecutive windows are consecutive rows
        var targets = new float[windows * window * k];                      // [W, T, K]
        var mask = new float[windows * window * k];                         // [W, T, K]
        for (int row = 0; row < windows * window; row++)
            for (int q = 0; q < k; q++)
            {
                int targetRow = row + q + 1;
                if (targetRow >= n) continue;
                targets[row * k + q] = rows[targetRow * d + targetColumn];
                mask[row * k + q] = 1f;
            }

        var bptt = new LstmBptt(config, windows, window);
        IOptimizer rule = optimizer == OptimizerKind.Adam ? new AdamOptimizer(parameters.Count, learningRate) : new SgdOptimizer(parameters.Count, learningRate);
        var gradient = new float[parameters.Count];
        var losses = new List<float>(epochs);
        for (int e = 0; e < epochs; e++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            losses.Add(bptt.Forward(parameters, windows, inputs, targets, mask));
            bptt.Backward(parameters, gradient);
            rule.Step(parameters.Data, gradient);
        }
        return losses;
    }
}
