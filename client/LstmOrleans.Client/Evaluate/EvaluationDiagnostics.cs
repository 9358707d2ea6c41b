using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;

namespace LstmOrleans.Client.Evaluate;

/// <summary>
/// One stream, one horizon, summed over the scored origins of every published version: mean squared errors in the
/// normalised units of each origin (the stream's running statistics at that step), so every column is comparable.
/// </summary>
/// <param name="Live">The forecasts the stream grain returned.</param>
/// <param name="Replayed">The same weights run offline exactly as the stream grain does (zero state at the start of
/// the ring buffer when the version arrived, then one step per value); equal to <paramref name="Live"/> up to rounding.</param>
/// <param name="Windowed">The same weights with the state restarted from zero at the start of every tile of
/// <c>--window</c> rows, as the refit trains and validates (so the state is 0..T-1 steps old).</param>
/// <param name="BurnIn">As <paramref name="Windowed"/>, with the state started <c>--window</c> / 2 rows before each tile.</param>
/// <param name="StoredTarget">As <paramref name="Windowed"/>, scored against the targets the refit trains on (each
/// target normalised with its own step's statistics, not the origin's).</param>
/// <param name="Validation">The published weights on the held-out part of the round that produced them (zero state at
/// each validation window, targets in the origin's units), this stream and horizon alone.</param>
/// <param name="ValidationPersistence">Persistence on the same validation entries.</param>
internal sealed record DiagnosticRow(string Stream, int Horizon, int Count, double Persistence, double Live, double Replayed,
    double Windowed, double BurnIn, double StoredTarget, int ValidationCount, double Validation, double ValidationPersistence);

/// <summary>
/// `evaluate --diagnose`: locates the gap between a refit's validation loss and the online score by scoring each
/// published version offline on exactly the steps the live stream then forecast from, in several ways that differ
/// in one thing each (state age, target normalisation, validation part vs the future).
/// </summary>
internal static class EvaluationDiagnostics
{
    public static async Task<IReadOnlyList<DiagnosticRow>> RunAsync(IGrainFactory grains, ReplayResult replay, EvaluationSettings settings,
        CancellationToken cancellationToken)
    {
        var model = grains.GetGrain<IModelGrain>(EvaluationReplay.ModelName);
        var weights = new Dictionary<long, (LstmWeights Weights, ModelConfig Config)>();
        foreach (long version in replay.Streams.SelectMany(s => s.WeightsVersions).Distinct())
        {
            cancellationToken.ThrowIfCancellationRequested();
            var w = await model.GetWeightsAsync(version);
            var config = new LstmConfig(w.Config.ModelInputSize, w.Config.HiddenSize, w.Config.Layers, w.Config.Horizons);
            var parameters = new LstmParameters(config);
            w.Parameters.CopyTo(parameters.Data, 0);
            weights[version] = (LstmWeights.From(parameters), w.Config);
        }
        // The round that published each version, by the step after which it ran (its data ended there).
        var publishedAfter = replay.Rounds.Where(r => r.Record.PublishedVersion is not null)
            .ToDictionary(r => r.Record.PublishedVersion!.Value, r => r.AfterStep);
        return replay.Streams.SelectMany(s => Stream(s, weights, publishedAfter, settings)).ToList();
    }

    /// <summary>The stream grain's normalisation, replayed: statistics after each step and the stored inputs z [N].</summary>
    internal static (double[] Mean, double[] Std, float[] Z) Normalise(ReadOnlySpan<float> values)
    {
        int n = values.Length;
        var mean = new double[n];
        var std = new double[n];
        var z = new float[n];
        double m = 0, m2 = 0;
        for (int t = 0; t < n; t++)
        {
            double v = values[t];
            double delta = v - m;
            m += delta / (t + 1);
            m2 += delta * (v - m);
            double variance = m2 / (t + 1);
            mean[t] = m;
            std[t] = variance > 1e-12 ? Math.Sqrt(variance) : 1.0;
            z[t] = (float)((v - m) / std[t]);
        }
        return (mean, std, z);
    }

    private static IEnumerable<DiagnosticRow> Stream(StreamReplay replay, Dictionary<long, (LstmWeights Weights, ModelConfig Config)> weights,
        Dictionary<long, int> publishedAfter, EvaluationSettings settings)
    {
        var values = replay.Series.Values;
        int n = values.Length, k = settings.Horizons, window = settings.Window;
        var (mean, std, z) = Normalise(values);
        var sums = new double[k, 6];     // per horizon: persistence, live, replayed, windowed, burn-in, stored target
        var counts = new int[k];
        var validation = new double[k, 2];
        var validationCounts = new int[k];
        long initialVersion = replay.WeightsVersions[0];

        int t0 = Math.Max(settings.Warmup, 0);
        int a = t0;
        while (a < n - 1)
        {
            long version = replay.WeightsVersions[a];
            int b = a;
            while (b + 1 < n - 1 && replay.WeightsVersions[b + 1] == version) b++;
            var (w, config) = weights[version];
            if (config.CalendarFeatures is { Length: > 0 })
                throw new CliException("--diagnose does not support calendar features.");
            bool residual = config.Residual;
            // The first origin this version forecast from (it may precede the scored range).
            int swap = a;
            while (swap > 0 && replay.WeightsVersions[swap - 1] == version) swap--;
            int replayStart = version == initialVersion && swap == 0 ? 0 : Math.Max(0, swap - settings.History);

            var replayed = Forecasts(w, z, replayStart, a, b, k, residual, restart: _ => false);
            var windowed = Forecasts(w, z, a, a, b, k, residual, restart: t => (t - a) % window == 0);
            int burn = window / 2;
            // Burn-in tiles: the state starts 'burn' rows before each tile of 'window' scored rows.
            var burnIn = BurnInForecasts(w, z, a, b, k, residual, window, burn);

            for (int t = a; t <= b; t++)
                for (int h = 1; h <= k && t + h < n; h++)
                {
                    double target = (values[t + h] - mean[t]) / std[t];
                    double live = (replay.Predictions[t * k + h - 1] - mean[t]) / std[t];
                    int i = (t - a) * k + h - 1;
                    sums[h - 1, 0] += Sq(z[t] - target);
                    sums[h - 1, 1] += Sq(live - target);
                    sums[h - 1, 2] += Sq(replayed[i] - target);
                    sums[h - 1, 3] += Sq(windowed[i] - target);
                    sums[h - 1, 4] += Sq(burnIn[i] - target);
                    sums[h - 1, 5] += Sq(windowed[i] - z[t + h]);
                    counts[h - 1]++;
                }

            // The validation part of the round that published this version, as the trainer scores it.
            if (publishedAfter.TryGetValue(version, out int after))
            {
                int rows = Math.Min(after + 1, settings.History);
                int first = after + 1 - rows;
                int held = (int)Math.Floor(rows * 0.2);
                int trainEnd = first + rows - held;
                int end = after + 1;
                int scoredFrom = trainEnd;
                while (scoredFrom < end - 1)
                {
                    int start = scoredFrom;
                    if (start + window > end) start = end - window;
                    var y = Forecasts(w, z, start, start, start + window - 1, k, residual, restart: _ => false);
                    for (int t = Math.Max(start, scoredFrom); t < start + window; t++)
                        for (int h = 1; h <= k && t + h < end; h++)
                        {
                            double target = (values[t + h] - mean[t]) / std[t];
                            validation[h - 1, 0] += Sq(y[(t - start) * k + h - 1] - target);
                            validation[h - 1, 1] += Sq(z[t] - target);
                            validationCounts[h - 1]++;
                        }
                    scoredFrom = start + window;
                }
            }
            a = b + 1;
        }

        for (int h = 0; h < k; h++)
        {
            int c = Math.Max(1, counts[h]), vc = Math.Max(1, validationCounts[h]);
            yield return new DiagnosticRow(replay.Series.Name, h + 1, counts[h], sums[h, 0] / c, sums[h, 1] / c, sums[h, 2] / c,
                sums[h, 3] / c, sums[h, 4] / c, sums[h, 5] / c, validationCounts[h],
                validationCounts[h] == 0 ? double.NaN : validation[h, 0] / vc, validationCounts[h] == 0 ? double.NaN : validation[h, 1] / vc);
        }
    }

    /// <summary>
    /// Normalised forecasts [(to - from + 1), K] for origins from..to: the state starts at zero at row
    /// <paramref name="start"/> and is reset before every row where <paramref name="restart"/> says so.
    /// </summary>
    private static double[] Forecasts(LstmWeights w, float[] z, int start, int from, int to, int k, bool residual, Func<int, bool> restart)
    {
        var config = w.Config;
        var h = new float[config.StateSize];
        var c = new float[config.StateSize];
        var y = new float[k];
        var x = new float[1];
        var result = new double[(to - from + 1) * k];
        for (int t = start; t <= to; t++)
        {
            if (t > start && restart(t)) { Array.Clear(h); Array.Clear(c); }
            x[0] = z[t];
            w.Step(x, h, c, y);
            if (t < from) continue;
            if (residual) ResidualHead.ToLevels(x, 0, y);
            for (int q = 0; q < k; q++) result[(t - from) * k + q] = y[q];
        }
        return result;
    }

    /// <summary>Tiles of <paramref name="window"/> scored origins from <paramref name="a"/>, each with its state started <paramref name="burn"/> rows earlier.</summary>
    private static double[] BurnInForecasts(LstmWeights w, float[] z, int a, int b, int k, bool residual, int window, int burn)
    {
        var result = new double[(b - a + 1) * k];
        for (int tile = a; tile <= b; tile += window)
        {
            int end = Math.Min(b, tile + window - 1);
            var y = Forecasts(w, z, Math.Max(0, tile - burn), tile, end, k, residual, restart: _ => false);
            y.CopyTo(result, (tile - a) * k);
        }
        return result;
    }

    private static double Sq(double v) => v * v;
}
