namespace LstmOrleans.Client.Evaluate;

/// <summary>The forecasters compared; the LSTM first, then the baselines.</summary>
internal enum Forecaster
{
    Model = 0,
    Persistence = 1,
    SeasonalNaive = 2,
    MovingAverage = 3,
}

/// <summary>One stream's scores: [forecaster][horizon - 1].</summary>
/// <param name="Season">Season used by seasonal naive, and whether it was detected or given.</param>
/// <param name="FirstOrigin">First scored origin (step index).</param>
internal sealed record StreamScores(string Name, int Steps, int Season, bool SeasonDetected, int MaWindow, int FirstOrigin, ForecastMetrics[][] Metrics)
{
    public ForecastMetrics Of(Forecaster f, int horizon) => Metrics[(int)f][horizon - 1];

    /// <summary>RMSE of <paramref name="f"/> divided by persistence's at the same horizon.</summary>
    public double RmseRatio(Forecaster f, int horizon) => Of(f, horizon).Rmse / Of(Forecaster.Persistence, horizon).Rmse;
}

/// <summary>Across streams, per forecaster and horizon: geometric means of the error ratios to persistence, and win counts.</summary>
/// <param name="GeoMeanRmseRatio">[forecaster][horizon - 1] geometric mean over streams of RMSE / persistence RMSE.</param>
/// <param name="GeoMeanMaeRatio">[forecaster][horizon - 1] the same for MAE.</param>
/// <param name="ModelWins">[forecaster][horizon - 1] streams where the model's RMSE is strictly lower than the forecaster's.</param>
internal sealed record OverallScores(int Streams, double[][] GeoMeanRmseRatio, double[][] GeoMeanMaeRatio, int[][] ModelWins);

/// <summary>
/// Scores recorded forecasts: the forecast issued at origin t for h steps ahead (row t, column h - 1 of the stream's
/// predictions) against values[t + h], for every origin t &gt;= first origin with t + h inside the series; the baselines
/// forecast the very same (t, h) pairs from values[..t] only.
/// </summary>
internal static class EvaluationScorer
{
    public static readonly Forecaster[] All = [Forecaster.Model, Forecaster.Persistence, Forecaster.SeasonalNaive, Forecaster.MovingAverage];

    /// <param name="season">Seasonal period; null = detect by autocorrelation (lags 2..min(N/3, 2000)), falling back to 1 day at the median interval, else persistence-like lag 1.</param>
    public static StreamScores Score(StreamReplay replay, int horizons, int warmup, int? season, int maWindow)
    {
        var series = replay.Series;
        ReadOnlySpan<float> values = series.Values;
        bool detected = season is null;
        int m = season ?? DetectSeason(series);
        int first = Math.Max(warmup, Baselines.FirstUsableOrigin(m, maWindow));
        var accumulators = new ForecastAccumulator[All.Length, horizons];
        for (int f = 0; f < All.Length; f++)
            for (int h = 0; h < horizons; h++) accumulators[f, h] = new ForecastAccumulator();

        for (int t = first; t < series.Length - 1; t++)
        {
            double persistence = Baselines.Persistence(values, t);
            double average = Baselines.MovingAverage(values, t, maWindow);
            for (int h = 1; h <= horizons && t + h < series.Length; h++)
            {
                double actual = values[t + h];
                accumulators[(int)Forecaster.Model, h - 1].Add(actual, replay.Predictions[t * horizons + h - 1]);
                accumulators[(int)Forecaster.Persistence, h - 1].Add(actual, persistence);
                accumulators[(int)Forecaster.SeasonalNaive, h - 1].Add(actual, Baselines.SeasonalNaive(values, t, h, m));
                accumulators[(int)Forecaster.MovingAverage, h - 1].Add(actual, average);
            }
        }
        var metrics = new ForecastMetrics[All.Length][];
        for (int f = 0; f < All.Length; f++)
        {
            metrics[f] = new ForecastMetrics[horizons];
            for (int h = 0; h < horizons; h++) metrics[f][h] = accumulators[f, h].Result();
        }
        return new StreamScores(series.Name, series.Length, m, detected, maWindow, first, metrics);
    }

    /// <summary>
    /// Season of a stream by autocorrelation over the replayed values. This reads the whole replayed series, which can
    /// only help the seasonal-naive baseline (the model never sees it), so it keeps the comparison conservative.
    /// </summary>
    public static int DetectSeason(EvaluationSeries series)
    {
        var interval = series.MedianInterval();
        int maxLag = Math.Min(series.Length / 3, 2000);
        if (SeasonDetector.Detect(series.Values, maxLag, interval) is { } lag) return lag;
        if (interval is { } i && i > TimeSpan.Zero)
        {
            int daily = (int)Math.Round(TimeSpan.FromDays(1) / i);
            if (daily >= 2 && daily <= series.Length / 3) return daily;
        }
        return 1;
    }

    public static OverallScores Overall(IReadOnlyList<StreamScores> streams, int horizons)
    {
        var rmse = new double[All.Length][];
        var mae = new double[All.Length][];
        var wins = new int[All.Length][];
        for (int f = 0; f < All.Length; f++)
        {
            rmse[f] = new double[horizons];
            mae[f] = new double[horizons];
            wins[f] = new int[horizons];
            for (int h = 1; h <= horizons; h++)
            {
                rmse[f][h - 1] = GeometricMean(streams.Select(s => s.Of(All[f], h).Rmse / s.Of(Forecaster.Persistence, h).Rmse));
                mae[f][h - 1] = GeometricMean(streams.Select(s => s.Of(All[f], h).Mae / s.Of(Forecaster.Persistence, h).Mae));
                wins[f][h - 1] = streams.Count(s => s.Of(Forecaster.Model, h).Rmse < s.Of(All[f], h).Rmse);
            }
        }
        return new OverallScores(streams.Count, rmse, mae, wins);
    }

    /// <summary>exp(mean(log x)) over the finite positive ratios; NaN when there is none.</summary>
    public static double GeometricMean(IEnumerable<double> ratios)
    {
        double sum = 0;
        int count = 0;
        foreach (double r in ratios)
        {
            if (!(r > 0) || !double.IsFinite(r)) continue;
            sum += Math.Log(r);
            count++;
        }
        return count == 0 ? double.NaN : Math.Exp(sum / count);
    }

    public static string Label(Forecaster f) => f switch
    {
        Forecaster.Model => "LSTM",
        Forecaster.Persistence => "persistence",
        Forecaster.SeasonalNaive => "seasonal naive",
        Forecaster.MovingAverage => "moving average",
        _ => f.ToString(),
    };

    public static string JsonName(Forecaster f) => f switch
    {
        Forecaster.Model => "model",
        Forecaster.Persistence => "persistence",
        Forecaster.SeasonalNaive => "seasonalNaive",
        Forecaster.MovingAverage => "movingAverage",
        _ => f.ToString(),
    };
}
