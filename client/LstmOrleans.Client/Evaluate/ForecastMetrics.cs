namespace LstmOrleans.Client.Evaluate;

/// <summary>Error measures of one forecaster at one horizon over a set of scored forecasts.</summary>
/// <param name="Count">Scored forecasts.</param>
/// <param name="Mae">Mean absolute error.</param>
/// <param name="Rmse">Root mean squared error.</param>
/// <param name="Nrmse">RMSE divided by the population standard deviation of the actuals that were scored (NaN when that is 0).</param>
/// <param name="Wape">Sum of absolute errors divided by the sum of absolute actuals (NaN when the actuals sum to 0).</param>
internal sealed record ForecastMetrics(long Count, double Mae, double Rmse, double Nrmse, double Wape)
{
    public static ForecastMetrics Empty { get; } = new(0, double.NaN, double.NaN, double.NaN, double.NaN);
}

/// <summary>
/// Accumulates (actual, forecast) pairs and turns them into <see cref="ForecastMetrics"/>. Pure arithmetic in double;
/// the actuals' variance uses Welford's update so long series do not lose precision.
/// </summary>
internal sealed class ForecastAccumulator
{
    private long _count;
    private double _sumAbsError;
    private double _sumSquaredError;
    private double _sumAbsActual;
    private double _actualMean;
    private double _actualM2;   // sum of squared deviations from the running mean (Welford)

    public long Count => _count;

    public void Add(double actual, double forecast)
    {
        if (!double.IsFinite(actual) || !double.IsFinite(forecast))
            throw new ArgumentException($"Cannot score a non-finite pair (actual {actual}, forecast {forecast}).");
        double error = forecast - actual;
        _count++;
        _sumAbsError += Math.Abs(error);
        _sumSquaredError += error * error;
        _sumAbsActual += Math.Abs(actual);
        double delta = actual - _actualMean;
        _actualMean += delta / _count;
        _actualM2 += delta * (actual - _actualMean);
    }

    public ForecastMetrics Result()
    {
        if (_count == 0) return ForecastMetrics.Empty;
        double rmse = Math.Sqrt(_sumSquaredError / _count);
        double std = Math.Sqrt(_actualM2 / _count);
        return new ForecastMetrics(
            _count,
            _sumAbsError / _count,
            rmse,
            std > 0 ? rmse / std : double.NaN,
            _sumAbsActual > 0 ? _sumAbsError / _sumAbsActual : double.NaN);
    }

    /// <summary>Metrics of the pairs in one call (convenience for tests and small inputs).</summary>
    public static ForecastMetrics Of(ReadOnlySpan<double> actual, ReadOnlySpan<double> forecast)
    {
        if (actual.Length != forecast.Length) throw new ArgumentException($"{actual.Length} actuals but {forecast.Length} forecasts.");
        var accumulator = new ForecastAccumulator();
        for (int i = 0; i < actual.Length; i++) accumulator.Add(actual[i], forecast[i]);
        return accumulator.Result();
    }
}

/// <summary>
/// The reference forecasters, each a function of the values up to and including the origin t only.
/// <c>values</c> is one stream's target series; a forecast made after observing values[t] for h steps ahead
/// (h = 1..K) targets values[t + h].
/// </summary>
internal static class Baselines
{
    /// <summary>Persistence (naive): the last observed value, for every horizon.</summary>
    public static double Persistence(ReadOnlySpan<float> values, int t) => values[t];

    /// <summary>
    /// Seasonal naive: the value one season before the target, stepping back whole seasons until it is observed:
    /// values[t + h - m * ceil(h / m)]. Needs t + h - m * ceil(h / m) &gt;= 0.
    /// </summary>
    public static double SeasonalNaive(ReadOnlySpan<float> values, int t, int h, int season)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(season, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(h, 1);
        int seasonsBack = (h + season - 1) / season;
        int index = t + h - season * seasonsBack;
        if (index < 0) throw new ArgumentOutOfRangeException(nameof(t), $"Seasonal naive at origin {t}, horizon {h}, season {season} needs value {index}.");
        return values[index];
    }

    /// <summary>Moving average: mean of the last <paramref name="window"/> values up to t, for every horizon.</summary>
    public static double MovingAverage(ReadOnlySpan<float> values, int t, int window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        if (t - window + 1 < 0) throw new ArgumentOutOfRangeException(nameof(t), $"A moving average of {window} at origin {t} reaches before the series.");
        double sum = 0;
        for (int i = t - window + 1; i <= t; i++) sum += values[i];
        return sum / window;
    }

    /// <summary>The first origin at which every baseline can forecast: seasonal naive needs t + 1 - m &gt;= 0, the average t + 1 - w &gt;= 0.</summary>
    public static int FirstUsableOrigin(int season, int maWindow) => Math.Max(season, maWindow) - 1;
}

/// <summary>Finds a seasonal period by autocorrelation.</summary>
internal static class SeasonDetector
{
    /// <summary>
    /// The lag in [2, maxLag] with the highest sample autocorrelation among the ACF's local maxima, or null when no
    /// local maximum reaches <paramref name="minCorrelation"/> (no clear season). Calendar lags (one day, one week at
    /// <paramref name="sampleInterval"/>) win ties within 0.05 because sensor data usually follows the clock.
    /// </summary>
    public static int? Detect(ReadOnlySpan<float> values, int maxLag, TimeSpan? sampleInterval = null, double minCorrelation = 0.2)
    {
        int n = values.Length;
        maxLag = Math.Min(maxLag, n / 2);
        if (maxLag < 3) return null;
        double[] acf = Autocorrelation(values, maxLag);   // [maxLag + 1], acf[0] = 1
        int best = -1;
        for (int lag = 2; lag < maxLag; lag++)
        {
            bool peak = acf[lag] >= acf[lag - 1] && acf[lag] >= acf[lag + 1];
            if (peak && acf[lag] >= minCorrelation && (best < 0 || acf[lag] > acf[best])) best = lag;
        }
        if (best < 0) return null;
        if (sampleInterval is { } interval && interval > TimeSpan.Zero)
        {
            foreach (var period in new[] { TimeSpan.FromDays(1), TimeSpan.FromDays(7) })
            {
                int lag = (int)Math.Round(period / interval);
                if (lag >= 2 && lag <= maxLag && acf[lag] >= minCorrelation && acf[lag] >= acf[best] - 0.05) return lag;
            }
        }
        return best;
    }

    /// <summary>Sample autocorrelation r_k = sum (x_t - mean)(x_{t+k} - mean) / sum (x_t - mean)^2, k = 0..maxLag.</summary>
    public static double[] Autocorrelation(ReadOnlySpan<float> values, int maxLag)
    {
        int n = values.Length;
        double mean = 0;
        foreach (float v in values) mean += v;
        mean /= n;
        var centred = new double[n];
        double denominator = 0;
        for (int i = 0; i < n; i++)
        {
            centred[i] = values[i] - mean;
            denominator += centred[i] * centred[i];
        }
        var acf = new double[maxLag + 1];
        if (denominator == 0) return acf;
        for (int lag = 0; lag <= maxLag; lag++)
        {
            double sum = 0;
            for (int i = 0; i + lag < n; i++) sum += centred[i] * centred[i + lag];
            acf[lag] = sum / denominator;
        }
        return acf;
    }
}
