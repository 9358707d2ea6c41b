using Xunit;
using LstmOrleans.Client.Evaluate;

namespace LstmOrleans.Client.Tests.Evaluate;

/// <summary>The metric and baseline arithmetic against values worked out by hand.</summary>
public sealed class ForecastMetricsTests
{
    [Fact]
    public void Metrics_match_hand_computed_values()
    {
        // errors (forecast - actual): 1, 0, -1, 2
        // MAE = 4/4 = 1; MSE = (1 + 0 + 1 + 4)/4 = 1.5; RMSE = sqrt(1.5)
        // actuals 1,2,3,4: mean 2.5, population variance (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25
        // NRMSE = sqrt(1.5)/sqrt(1.25) = sqrt(1.2); WAPE = 4 / (1 + 2 + 3 + 4) = 0.4
        var m = ForecastAccumulator.Of([1, 2, 3, 4], [2, 2, 2, 6]);
        Assert.Equal(4, m.Count);
        Assert.Equal(1.0, m.Mae, 12);
        Assert.Equal(1.2247448713915890, m.Rmse, 12);
        Assert.Equal(1.0954451150103321, m.Nrmse, 12);
        Assert.Equal(0.4, m.Wape, 12);
    }

    [Fact]
    public void Wape_uses_absolute_actuals_and_nrmse_the_scored_actuals_spread()
    {
        // actuals -2, 2; forecasts 0, 0: errors 2, -2 -> MAE 2, RMSE 2; sum|actual| = 4 -> WAPE 1;
        // actuals' population std = 2 -> NRMSE 1.
        var m = ForecastAccumulator.Of([-2, 2], [0, 0]);
        Assert.Equal(2.0, m.Mae, 12);
        Assert.Equal(2.0, m.Rmse, 12);
        Assert.Equal(1.0, m.Wape, 12);
        Assert.Equal(1.0, m.Nrmse, 12);
    }

    [Fact]
    public void Degenerate_inputs_give_nan_not_infinity_and_bad_pairs_are_refused()
    {
        var constant = ForecastAccumulator.Of([5, 5, 5], [4, 5, 6]);
        Assert.True(double.IsNaN(constant.Nrmse));          // std of the actuals is 0
        Assert.Equal(2.0 / 15.0, constant.Wape, 12);

        var zeros = ForecastAccumulator.Of([0, 0], [1, -1]);
        Assert.True(double.IsNaN(zeros.Wape));              // sum of |actual| is 0
        Assert.Equal(1.0, zeros.Rmse, 12);

        var empty = new ForecastAccumulator().Result();
        Assert.Equal(0, empty.Count);
        Assert.True(double.IsNaN(empty.Mae));

        var accumulator = new ForecastAccumulator();
        accumulator.Add(1, 1);
        Assert.Throws<ArgumentException>(() => accumulator.Add(double.NaN, 1));
        Assert.Throws<ArgumentException>(() => accumulator.Add(1, double.PositiveInfinity));
        Assert.Equal(1, accumulator.Count);                  // the refused pairs changed nothing
        Assert.Throws<ArgumentException>(() => ForecastAccumulator.Of([1, 2], [1]));
    }

    [Fact]
    public void Baselines_use_only_values_up_to_the_origin()
    {
        float[] v = [10, 12, 11, 13, 15, 14];
        Assert.Equal(13, Baselines.Persistence(v, 3));
        // season 2 at origin 3: h=1 -> v[3+1-2] = v[2] = 11; h=2 -> v[3] = 13; h=3 -> two seasons back, v[3+3-4] = v[2] = 11
        Assert.Equal(11, Baselines.SeasonalNaive(v, 3, 1, 2));
        Assert.Equal(13, Baselines.SeasonalNaive(v, 3, 2, 2));
        Assert.Equal(11, Baselines.SeasonalNaive(v, 3, 3, 2));
        // season 1 is persistence at every horizon
        Assert.Equal(13, Baselines.SeasonalNaive(v, 3, 3, 1));
        // (12 + 11 + 13) / 3 = 12
        Assert.Equal(12, Baselines.MovingAverage(v, 3, 3), 12);
        Assert.Equal(13, Baselines.MovingAverage(v, 3, 1), 12);

        Assert.Throws<ArgumentOutOfRangeException>(() => Baselines.SeasonalNaive(v, 0, 1, 3));   // needs v[-2]
        Assert.Throws<ArgumentOutOfRangeException>(() => Baselines.MovingAverage(v, 1, 3));       // needs v[-1]
        Assert.Equal(11, Baselines.FirstUsableOrigin(12, 3));
    }

    [Fact]
    public void Season_is_found_by_autocorrelation()
    {
        var random = new Random(7);
        var values = new float[600];
        for (int i = 0; i < values.Length; i++)
            values[i] = (float)(Math.Sin(2 * Math.PI * i / 24) + 0.1 * (random.NextDouble() - 0.5));
        Assert.Equal(24, SeasonDetector.Detect(values, 200));
        // hourly samples: the daily lag is 24 as well, and it is preferred
        Assert.Equal(24, SeasonDetector.Detect(values, 200, TimeSpan.FromHours(1)));

        // lag-1 autocorrelation by hand: x = 1, 2, 3, 4 (mean 2.5, centred -1.5, -0.5, 0.5, 1.5, sum of squares 5)
        // r1 = (0.75 + -0.25 + 0.75) / 5 = 0.25
        var acf = SeasonDetector.Autocorrelation([1, 2, 3, 4], 1);
        Assert.Equal(1.0, acf[0], 12);
        Assert.Equal(0.25, acf[1], 12);

        Assert.Null(SeasonDetector.Detect(new float[100], 30));        // constant: no season
        var noise = new float[400];
        for (int i = 0; i < noise.Length; i++) noise[i] = (float)random.NextDouble();
        Assert.Null(SeasonDetector.Detect(noise, 100));                 // white noise: no clear season
    }

    [Fact]
    public void Geometric_mean_skips_unusable_ratios()
    {
        Assert.Equal(1.0, EvaluationScorer.GeometricMean([2.0, 0.5]), 12);
        Assert.Equal(2.0, EvaluationScorer.GeometricMean([2.0, double.NaN, 0.0]), 12);
        Assert.True(double.IsNaN(EvaluationScorer.GeometricMean([])));
    }

    [Fact]
    public void Scorer_pairs_row_t_horizon_h_with_the_value_h_steps_later()
    {
        // values 0, 1, 4, 9, ... (t^2); the "model" forecasts exactly the future at horizon 1 and is off by 1 at horizon 2.
        int n = 20, k = 2;
        var values = Enumerable.Range(0, n).Select(t => (float)(t * t)).ToArray();
        var predictions = new float[n * k];
        for (int t = 0; t < n; t++)
        {
            predictions[t * k] = t + 1 < n ? values[t + 1] : 0;
            predictions[t * k + 1] = t + 2 < n ? values[t + 2] + 1 : 0;
        }
        var series = new EvaluationSeries("squares", Enumerable.Range(0, n).Select(t => new DateTime(2020, 1, 1).AddHours(t)).ToArray(), values, n);
        var scores = EvaluationScorer.Score(new StreamReplay(series, predictions, new long[n]), k, warmup: 5, season: 3, maWindow: 2);

        Assert.Equal(5, scores.FirstOrigin);
        var h1 = scores.Of(Forecaster.Model, 1);
        Assert.Equal(14, h1.Count);                  // origins 5..18
        Assert.Equal(0.0, h1.Mae, 12);
        var h2 = scores.Of(Forecaster.Model, 2);
        Assert.Equal(13, h2.Count);                  // origins 5..17
        Assert.Equal(1.0, h2.Mae, 12);
        Assert.Equal(1.0, h2.Rmse, 12);

        // persistence at horizon 1: |(t+1)^2 - t^2| = 2t + 1 for t = 5..18 -> mean 2 * 11.5 + 1 = 24
        Assert.Equal(24.0, scores.Of(Forecaster.Persistence, 1).Mae, 9);
        // seasonal naive, season 3, horizon 1: values[t+1] - values[t-2] = 6t - 3 -> mean 6 * 11.5 - 3 = 66
        Assert.Equal(66.0, scores.Of(Forecaster.SeasonalNaive, 1).Mae, 9);
        // moving average of 2 at horizon 1: (t+1)^2 - (t^2 + (t-1)^2)/2 = 3t + 0.5 -> mean 3 * 11.5 + 0.5 = 35
        Assert.Equal(35.0, scores.Of(Forecaster.MovingAverage, 1).Mae, 9);
        Assert.Equal(0.0, scores.RmseRatio(Forecaster.Model, 1), 12);
    }

    [Fact]
    public void Scoring_starts_late_enough_for_every_baseline()
    {
        int n = 40;
        var values = Enumerable.Range(0, n).Select(t => (float)t).ToArray();
        var series = new EvaluationSeries("ramp", Enumerable.Range(0, n).Select(t => new DateTime(2020, 1, 1).AddMinutes(t)).ToArray(), values, n);
        var scores = EvaluationScorer.Score(new StreamReplay(series, new float[n], new long[n]), 1, warmup: 2, season: 10, maWindow: 4);
        Assert.Equal(9, scores.FirstOrigin);          // seasonal naive of 10 needs origin >= 9
        Assert.Equal(n - 1 - 9, scores.Of(Forecaster.Persistence, 1).Count);
    }
}
