namespace LstmOrleans.Lstm.Training;

/// <summary>
/// A window cut from one series: rows [Start, Start + T). A (step, horizon q) entry counts when its row is at
/// least <see cref="ScoredFrom"/>, the step is past burn-in, and its target row (row + q + 1) is below
/// <see cref="Limit"/> (the end of the training part for training windows, the series end for validation).
/// </summary>
internal readonly record struct Window(int Series, int Start, int ScoredFrom, int Limit);

/// <summary>
/// How each row of a series was normalised: its target column holds (x - Mean[row]) / Std[row], with statistics that
/// change from row to row (a stream's running z-score). Given to the trainer, every target is re-expressed in the units
/// of its origin row, (x[row + q + 1] - Mean[row]) / Std[row], because that is how a live stream de-normalises the
/// forecast it makes at that row: with the statistics it has then, not the (unknown) ones of the target's step.
/// </summary>
/// <param name="Mean">[N] mean of the target feature each row was normalised with.</param>
/// <param name="Std">[N] standard deviation each row was normalised with (positive).</param>
public sealed record SeriesScale(double[] Mean, double[] Std);

/// <summary>The checked series and the windows <see cref="LstmTrainer"/> trains and validates on.</summary>
internal sealed class Dataset
{
    /// <summary>Floor of a series' persistence MSE (normalised units) when weighting, so a constant series cannot take over.</summary>
    internal const double MinPersistenceMse = 1e-4;

    private Dataset(IReadOnlyList<float[]> series, Window[] train, Window[] validation, double[] weights, IReadOnlyList<SeriesScale>? scales, int inputSize)
    {
        _scales = scales;
        _inputSize = inputSize;
        Series = series;
        TrainWindows = train;
        ValidationWindows = validation;
        SeriesWeights = weights;
    }

    private readonly IReadOnlyList<SeriesScale>? _scales;
    private readonly int _inputSize;

    public IReadOnlyList<float[]> Series { get; }

    /// <summary>
    /// Target of the forecast made at <paramref name="row"/> for <paramref name="targetRow"/>: the target column of that
    /// row, re-expressed in the origin row's normalisation when the series has a <see cref="SeriesScale"/>.
    /// </summary>
    public float Target(int series, int row, int targetRow, int column)
    {
        float z = Series[series][targetRow * _inputSize + column];
        if (_scales is null) return z;
        var scale = _scales[series];
        return (float)((z * scale.Std[targetRow] + scale.Mean[targetRow] - scale.Mean[row]) / scale.Std[row]);
    }
    public Window[] TrainWindows { get; }
    public Window[] ValidationWindows { get; }

    /// <summary>
    /// [S] loss weight of each series: 1 everywhere, or with <see cref="TrainerOptions.BalanceSeries"/> 1 / (the series'
    /// persistence MSE on its training part), scaled so that the weights average 1 over the counted training entries.
    /// </summary>
    public double[] SeriesWeights { get; }

    /// <summary>True when the series do not all weigh the same.</summary>
    public bool Weighted => SeriesWeights.Any(w => w != SeriesWeights[0]);

    public static Dataset Create(LstmConfig config, IReadOnlyList<float[]> series, TrainerOptions options, IReadOnlyList<SeriesScale>? scales = null)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException("At least one series is needed.", nameof(series));
        if (scales is not null)
        {
            if (scales.Count != series.Count) throw new ArgumentException($"{scales.Count} series scales for {series.Count} series.", nameof(scales));
            for (int s = 0; s < scales.Count; s++)
            {
                int rowsOf = (series[s]?.Length ?? 0) / config.InputSize;
                var scale = scales[s] ?? throw new ArgumentException($"Scale of series {s} is null.", nameof(scales));
                if (scale.Mean is null || scale.Std is null || scale.Mean.Length != rowsOf || scale.Std.Length != rowsOf)
                    throw new ArgumentException($"Scale of series {s} must have {rowsOf} means and standard deviations.", nameof(scales));
                for (int r = 0; r < rowsOf; r++)
                    if (!double.IsFinite(scale.Mean[r]) || !(scale.Std[r] > 0) || !double.IsFinite(scale.Std[r]))
                        throw new ArgumentException($"Scale of series {s} row {r} needs a finite mean and a positive finite standard deviation.", nameof(scales));
            }
        }
        int d = config.InputSize, t = options.WindowLength;
        var train = new List<Window>();
        var validation = new List<Window>();
        var weights = new double[series.Count];
        var entries = new long[series.Count];
        for (int s = 0; s < series.Count; s++)
        {
            float[] rows = series[s] ?? throw new ArgumentException($"Series {s} is null.", nameof(series));
            if (rows.Length % d != 0) throw new ArgumentException($"Series {s} has {rows.Length} values, not a multiple of the input size {d}.", nameof(series));
            foreach (float v in rows)
                if (!float.IsFinite(v)) throw new ArgumentException($"Series {s} contains NaN or infinite values.", nameof(series));
            int n = rows.Length / d;
            int held = (int)Math.Floor(n * options.ValidationFraction);
            int trainEnd = n - held;
            // Training windows lie wholly in the training part; their targets stop at its end (no leak into validation).
            for (int start = 0; start + t <= trainEnd; start += options.Stride)
                train.Add(new Window(s, start, start, trainEnd));
            (weights[s], entries[s]) = PersistenceWeight(rows, d, trainEnd, config.Horizons, options, scales?[s]);
            if (held < 2 || n < t) continue;
            // Validation windows tile the held-out rows; each starts BurnIn rows early (reading training rows as
            // inputs only) to warm its state up. The last one is shifted back to end at the series end.
            int scoredFrom = trainEnd;
            while (scoredFrom < n - 1)
            {
                int start = Math.Max(0, scoredFrom - options.BurnIn);
                if (start + t > n) start = n - t;
                validation.Add(new Window(s, start, scoredFrom, n));
                scoredFrom = start + t;
            }
        }
        if (!options.BalanceSeries) Array.Fill(weights, 1.0);
        else
        {
            // Scale so the weights average 1 over the counted entries: the loss keeps the size of a plain MSE.
            double sum = 0, total = 0;
            for (int s = 0; s < weights.Length; s++) { sum += weights[s] * entries[s]; total += entries[s]; }
            double scale = sum > 0 ? total / sum : 1;
            for (int s = 0; s < weights.Length; s++) weights[s] = entries[s] > 0 ? weights[s] * scale : 1.0;
        }
        return new Dataset(series, train.ToArray(), validation.ToArray(), weights, scales, d);
    }

    /// <summary>
    /// 1 / the persistence MSE of one series over its training part (every (row, horizon) pair whose target lies
    /// before <paramref name="trainEnd"/>; persistence = the current target value), and how many pairs there are.
    /// Weighting each series' squared errors by it makes the pooled loss the mean of the series' MSE ratios to
    /// persistence, the scale-free score a stream is judged by, instead of a loss dominated by the series whose
    /// normalised values jump the most.
    /// </summary>
    private static (double Weight, long Entries) PersistenceWeight(float[] rows, int d, int trainEnd, int horizons, TrainerOptions options,
        SeriesScale? scale)
    {
        double sse = 0;
        long count = 0;
        int column = options.TargetColumn;
        for (int row = 0; row < trainEnd; row++)
            for (int q = 0; q < horizons && row + q + 1 < trainEnd; q++)
            {
                int targetRow = row + q + 1;
                double target = scale is null
                    ? rows[targetRow * d + column]
                    : (rows[targetRow * d + column] * scale.Std[targetRow] + scale.Mean[targetRow] - scale.Mean[row]) / scale.Std[row];
                double e = target - rows[row * d + column];
                sse += e * e;
                count++;
            }
        return count == 0 ? (1.0, 0) : (1.0 / Math.Max(MinPersistenceMse, sse / count), count);
    }
}
