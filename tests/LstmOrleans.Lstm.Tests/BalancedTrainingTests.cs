using LstmOrleans.Lstm.Training;

namespace LstmOrleans.Lstm.Tests;

/// <summary>
/// Series weighting (<see cref="TrainerOptions.BalanceSeries"/>) and origin-scaled targets (<see cref="SeriesScale"/>),
/// checked against hand-computed definitions, plus the behaviour they exist for: a shared model no longer ignores a
/// smooth series next to a jumpy one.
/// </summary>
public class BalancedTrainingTests
{
    /// <summary>A smooth series (small steps) and a jumpy one (steps ~50x larger): normalised-unit scales of real streams.</summary>
    private static List<float[]> SmoothAndJumpy(int n = 400)
    {
        var rnd = new Random(11);
        var smooth = new float[n];
        var jumpy = new float[n];
        double level = 0;
        for (int t = 0; t < n; t++)
        {
            smooth[t] = (float)(Math.Sin(2 * Math.PI * t / 97.0) + 0.01 * (rnd.NextDouble() - 0.5));
            if (rnd.NextDouble() < 0.08) level = rnd.NextDouble() * 4 - 2;
            jumpy[t] = (float)(level + 0.3 * (rnd.NextDouble() - 0.5));
        }
        return [smooth, jumpy];
    }

    /// <summary>1 / persistence MSE over the training part, straight from the definition.</summary>
    private static (double Weight, long Count) HandWeight(float[] rows, int trainEnd, int k, SeriesScale? scale = null)
    {
        double sse = 0; long count = 0;
        for (int t = 0; t < trainEnd; t++)
            for (int q = 0; q < k; q++)
            {
                int target = t + q + 1;
                if (target >= trainEnd) continue;
                double y = scale is null ? rows[target] : (rows[target] * scale.Std[target] + scale.Mean[target] - scale.Mean[t]) / scale.Std[t];
                sse += (y - rows[t]) * (y - rows[t]); count++;
            }
        return (1.0 / Math.Max(1e-4, sse / count), count);
    }

    [Fact]
    public void Evaluate_Balanced_IsTheWeightedMeanOfEachSeriesAlone()
    {
        var config = new LstmConfig(1, 6, 1, 2);
        var series = SmoothAndJumpy();
        var p = LstmParameters.InitializeUniform(config, 5);
        var options = new TrainerOptions { WindowLength = 24, ValidationFraction = 0.25 };
        var pooled = LstmTrainer.Evaluate(p, series, options);
        var balanced = LstmTrainer.Evaluate(p, series, options with { BalanceSeries = true });

        double sse = 0, persistence = 0, weight = 0;
        int count = 0;
        foreach (var rows in series)
        {
            var alone = LstmTrainer.Evaluate(p, [rows], options);
            int trainEnd = rows.Length - (int)Math.Floor(rows.Length * 0.25);
            var (w, _) = HandWeight(rows, trainEnd, config.Horizons);
            sse += w * alone.Mse * alone.Count;
            persistence += w * alone.PersistenceMse * alone.Count;
            weight += w * alone.Count;
            count += alone.Count;
        }
        Assert.Equal(count, balanced.Count);
        Assert.Equal(sse / weight, balanced.Mse, 1e-6 * balanced.Mse);
        Assert.Equal(persistence / weight, balanced.PersistenceMse, 1e-6 * balanced.PersistenceMse);
        // The jumpy series dominates the pooled score; weighting moves it towards the smooth series' (much smaller) one.
        Assert.True(balanced.PersistenceMse < 0.2 * pooled.PersistenceMse, $"{balanced.PersistenceMse} vs {pooled.PersistenceMse}");
    }

    [Fact]
    public void Fit_Balanced_OneSgdStepFollowsTheWeightedGradient()
    {
        var config = new LstmConfig(1, 5, 1, 2);
        var series = SmoothAndJumpy(200);
        var p0 = LstmParameters.InitializeUniform(config, 3);
        const float lr = 0.01f;
        // One batch holding every (shuffled, mixed) training window, plain SGD, no clipping: p1 = p0 - lr * gradient.
        var options = new TrainerOptions
        {
            WindowLength = 20, Stride = 10, BatchSize = 64, MaxEpochs = 1, LearningRate = lr, Optimizer = OptimizerKind.Sgd,
            ClipNorm = 0, ValidationFraction = 0.2, Patience = 0, BalanceSeries = true, Seed = 4,
        };
        var fit = LstmTrainer.Fit(p0, series, options);

        // Expected: each series' own batch-mean gradient (the unweighted engine path), combined with w_s n_s / sum w n.
        var data = Dataset.Create(config, series, options with { BalanceSeries = false });
        Assert.True(data.TrainWindows.Length <= options.BatchSize);
        var engine = new BatchEngine(config, options with { BalanceSeries = false }, data);
        var expected = new double[p0.Count];
        double total = 0;
        for (int s = 0; s < series.Count; s++)
        {
            var windows = data.TrainWindows.Where(w => w.Series == s).ToArray();
            var g = new float[p0.Count];
            var (_, n) = engine.ForwardBackward(p0, windows, g);
            int trainEnd = series[s].Length - (int)Math.Floor(series[s].Length * 0.2);
            double w = HandWeight(series[s], trainEnd, config.Horizons).Weight;
            for (int i = 0; i < g.Length; i++) expected[i] += w * n * g[i];
            total += w * n;
        }
        int checkedCoordinates = 0;
        for (int i = 0; i < p0.Count; i++)
        {
            double step = (p0.Data[i] - fit.BestParameters.Data[i]) / lr;
            double want = expected[i] / total;
            Assert.True(Math.Abs(step - want) <= 1e-3 * Math.Abs(want) + 2e-4, $"parameter {i}: step gradient {step}, expected {want}");
            if (Math.Abs(want) > 1e-3) checkedCoordinates++;
        }
        Assert.True(checkedCoordinates > p0.Count / 4);
    }

    [Fact]
    public void Target_WithScale_IsTheTargetRowsValueInTheOriginRowsUnits()
    {
        var config = new LstmConfig(1, 3, 1, 2);
        // Raw values 10, 12, 20, 18; each row normalised with its own statistics (made up, not Welford: the definition only).
        double[] mean = [10, 11, 14, 15], std = [1, 1.5, 4, 3.5];
        double[] raw = [10, 12, 20, 18];
        var rows = raw.Select((x, i) => (float)((x - mean[i]) / std[i])).ToArray();
        var options = new TrainerOptions { WindowLength = 2, ValidationFraction = 0 };
        var plain = Dataset.Create(config, [rows], options);
        var scaled = Dataset.Create(config, [rows], options, [new SeriesScale(mean, std)]);
        Assert.Equal(rows[2], plain.Target(0, 0, 2, 0));
        Assert.Equal((20 - 10) / 1.0, scaled.Target(0, 0, 2, 0), 1e-5);    // row 2 in row 0's units
        Assert.Equal((18 - 11) / 1.5, scaled.Target(0, 1, 3, 0), 1e-5);    // row 3 in row 1's units
        Assert.Equal(rows[3], scaled.Target(0, 3, 3, 0), 1e-6);            // a row in its own units is unchanged

        Assert.Throws<ArgumentException>(() => Dataset.Create(config, [rows], options, [new SeriesScale(mean[..3], std[..3])]));
        Assert.Throws<ArgumentException>(() => Dataset.Create(config, [rows], options, [new SeriesScale(mean, [1, 0, 1, 1])]));
        Assert.Throws<ArgumentException>(() => Dataset.Create(config, [rows], options, [new SeriesScale(mean, std), new SeriesScale(mean, std)]));
    }

    [Fact]
    public void Evaluate_WithScales_PersistenceIsScoredInOriginUnits()
    {
        var config = new LstmConfig(1, 4, 1, 3);
        int n = 120;
        var rnd = new Random(3);
        var mean = Enumerable.Range(0, n).Select(i => 5 + 0.01 * i).ToArray();
        var std = Enumerable.Range(0, n).Select(i => 1 + 0.02 * i).ToArray();
        var rows = Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray();
        var options = new TrainerOptions { WindowLength = 16, ValidationFraction = 0.25 };
        var scale = new SeriesScale(mean, std);
        var result = LstmTrainer.Evaluate(LstmParameters.InitializeUniform(config, 1), [rows], options, [scale]);
        int trainEnd = n - (int)Math.Floor(n * 0.25);
        double sum = 0; int count = 0;
        for (int t = trainEnd; t < n; t++)
            for (int q = 0; q < 3 && t + q + 1 < n; q++)
            {
                int target = t + q + 1;
                double y = (rows[target] * std[target] + mean[target] - mean[t]) / std[t];
                sum += (rows[t] - y) * (rows[t] - y); count++;
            }
        Assert.Equal(count, result.Count);
        Assert.Equal(sum / count, result.PersistenceMse, 1e-6 * result.PersistenceMse);
    }

    [Fact]
    public void Fit_Balanced_FitsTheSmoothSeriesBetterThanThePooledLoss()
    {
        // The failure this option fixes: with a pooled loss, the jumpy series' errors are ~2500x larger in normalised
        // units and the shared model is fitted for it alone; weighted by 1 / persistence MSE the smooth series counts.
        var config = new LstmConfig(1, 12, 1, 1);
        var series = SmoothAndJumpy(600);
        var options = new TrainerOptions
        {
            WindowLength = 32, Stride = 4, BatchSize = 16, MaxEpochs = 8, LearningRate = 5e-3f, ClipNorm = 1f,
            ValidationFraction = 0.2, Patience = 0, Seed = 2, Residual = true,
        };
        var initial = LstmParameters.InitializeUniform(config, 7);
        initial.HeadWeight.Clear();
        initial.HeadBias.Clear();                          // a residual model that starts as persistence
        double SmoothRatio(TrainerOptions o)
        {
            var fit = LstmTrainer.Fit(initial, series, o);
            var smooth = LstmTrainer.Evaluate(fit.BestParameters, [series[0]], o with { BalanceSeries = false });
            return smooth.Mse / smooth.PersistenceMse;
        }
        double pooled = SmoothRatio(options);
        double balanced = SmoothRatio(options with { BalanceSeries = true });
        Assert.True(balanced < 0.8 * pooled, $"smooth series MSE / persistence: balanced {balanced:G4}, pooled {pooled:G4}");
    }
}
