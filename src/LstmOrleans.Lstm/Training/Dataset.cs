namespace LstmOrleans.Lstm.Training;

/// <summary>
/// A window cut from one series: rows [Start, Start + T). A (step, horizon q) entry counts when its row is at
/// least <see cref="ScoredFrom"/>, the step is past burn-in, and its target row (row + q + 1) is below
/// <see cref="Limit"/> (the end of the training part for training windows, the series end for validation).
/// </summary>
internal readonly record struct Window(int Series, int Start, int ScoredFrom, int Limit);

/// <summary>The checked series and the windows <see cref="LstmTrainer"/> trains and validates on.</summary>
internal sealed class Dataset
{
    private Dataset(IReadOnlyList<float[]> series, Window[] train, Window[] validation)
    {
        Series = series;
        TrainWindows = train;
        ValidationWindows = validation;
    }

    public IReadOnlyList<float[]> Series { get; }
    public Window[] TrainWindows { get; }
    public Window[] ValidationWindows { get; }

    public static Dataset Create(LstmConfig config, IReadOnlyList<float[]> series, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException("At least one series is needed.", nameof(series));
        int d = config.InputSize, t = options.WindowLength;
        var train = new List<Window>();
        var validation = new List<Window>();
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
        return new Dataset(series, train.ToArray(), validation.ToArray());
    }
}
