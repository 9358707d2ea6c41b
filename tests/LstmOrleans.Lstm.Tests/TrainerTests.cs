using LstmOrleans.Lstm.Training;

namespace LstmOrleans.Lstm.Tests;

public class TrainerTests
{
    private static float[] NoisySine(int n, double period, double noise, int seed, double phase = 0)
    {
        var rnd = new Random(seed);
        return Enumerable.Range(0, n).Select(t => (float)(Math.Sin(2 * Math.PI * t / period + phase) + noise * (rnd.NextDouble() * 2 - 1))).ToArray();
    }

    private static readonly TrainerOptions SineOptions = new()
    {
        WindowLength = 32, Stride = 8, BatchSize = 16, MaxEpochs = 6, LearningRate = 1e-2f, Optimizer = OptimizerKind.Adam,
        ClipNorm = 1f, ValidationFraction = 0.2, Patience = 6, Seed = 7, Threads = 2, BurnIn = 4,
    };

    [Fact]
    public void Fit_NoisySine_BeatsPersistenceByFar()
    {
        var config = new LstmConfig(1, 16, 1, 1);
        var series = new List<float[]> { NoisySine(800, 17, 0.1, 1), NoisySine(800, 17, 0.1, 2, phase: 1.0) };
        var epochs = new List<EpochReport>();
        var result = LstmTrainer.Fit(LstmParameters.InitializeUniform(config, 3), series, SineOptions, epochs.Add);

        Assert.Equal(epochs, result.Epochs);
        Assert.True(result.BestParameters.AllFinite());
        var evaluation = LstmTrainer.Evaluate(result.BestParameters, series, SineOptions);
        Assert.Equal(result.BestValidationLoss, evaluation.Mse, 1e-6);
        Assert.Equal(result.PersistenceValidationLoss, evaluation.PersistenceMse, 1e-9);
        Assert.True(evaluation.Mse < 0.5 * evaluation.PersistenceMse,
            $"model MSE {evaluation.Mse:G4} vs persistence {evaluation.PersistenceMse:G4}");
        // And it learned: far better than the untrained model.
        var untrained = LstmTrainer.Evaluate(LstmParameters.InitializeUniform(config, 3), series, SineOptions);
        Assert.True(evaluation.Mse < 0.2 * untrained.Mse);
    }

    [Fact]
    public void Fit_IsDeterministicForSeedAndThreadCount_AndDoesNotTouchInitial()
    {
        var config = new LstmConfig(1, 8, 2, 2);
        var series = new List<float[]> { NoisySine(300, 13, 0.2, 5) };
        var options = SineOptions with { MaxEpochs = 3, WindowLength = 16, Threads = 2, BatchSize = 5 };
        var initial = LstmParameters.InitializeUniform(config, 1);
        var before = (float[])initial.Data.Clone();
        var a = LstmTrainer.Fit(initial, series, options);
        var b = LstmTrainer.Fit(initial, series, options);
        Assert.Equal(before, initial.Data);
        Assert.Equal(a.BestParameters.Data, b.BestParameters.Data);
        Assert.Equal(a.Epochs.Select(e => e.TrainLoss), b.Epochs.Select(e => e.TrainLoss));
        Assert.NotEqual(before, a.BestParameters.Data);
        var c = LstmTrainer.Fit(initial, series, options with { Seed = 8 });
        Assert.NotEqual(a.BestParameters.Data, c.BestParameters.Data);
    }

    [Fact]
    public void DataParallelGradient_EqualsSingleThreadGradient()
    {
        var config = new LstmConfig(2, 6, 2, 3);
        var rnd = new Random(2);
        var series = new List<float[]> { Enumerable.Range(0, 400).Select(_ => (float)rnd.NextDouble()).ToArray() };
        var p = LstmParameters.InitializeUniform(config, 4);
        var options = new TrainerOptions { WindowLength = 10, Stride = 5, BatchSize = 7, BurnIn = 2, TargetColumn = 1, ValidationFraction = 0.1 };
        var data = Dataset.Create(config, series, options);
        var single = new float[p.Count]; var parallel = new float[p.Count];
        var windows = data.TrainWindows.AsSpan(0, 7);
        var (sse1, count1) = new BatchEngine(config, options with { Threads = 1 }, data).ForwardBackward(p, windows, single);
        var (sse3, count3) = new BatchEngine(config, options with { Threads = 3 }, data).ForwardBackward(p, windows, parallel);
        Assert.Equal(count1, count3);
        Assert.Equal(sse1, sse3, 1e-9);
        for (int n = 0; n < p.Count; n++) Assert.Equal(single[n], parallel[n], 1e-6f);
        Assert.Contains(single, g => g != 0f);
    }

    [Fact]
    public void Evaluate_ScoresEveryHeldOutEntryOnce_PersistenceMatchesDefinition()
    {
        var config = new LstmConfig(1, 4, 1, 3);
        var rows = NoisySine(203, 11, 0.3, 9);
        var options = new TrainerOptions { WindowLength = 16, ValidationFraction = 0.25, BurnIn = 3 };
        var result = LstmTrainer.Evaluate(LstmParameters.InitializeUniform(config, 1), [rows], options);
        int n = rows.Length, trainEnd = n - (int)Math.Floor(n * 0.25);
        double sum = 0; int count = 0;
        for (int t = trainEnd; t < n; t++)
            for (int q = 0; q < 3; q++)
            {
                if (t + q + 1 >= n) continue;
                double e = rows[t] - rows[t + q + 1];
                sum += e * e; count++;
            }
        Assert.Equal(count, result.Count);
        Assert.Equal(sum / count, result.PersistenceMse, 1e-9);
        Assert.True(double.IsFinite(result.Mse));
    }

    [Fact]
    public void TrainDeterministic_FirstLossIsReferenceLossOfConsecutiveWindows_AndTrainingReducesIt()
    {
        var config = new LstmConfig(2, 5, 1, 2);
        var rnd = new Random(6);
        int n = 23, window = 5, d = 2, k = 2, column = 1;                 // 4 windows (20 rows), 3 rows dropped as inputs
        var rows = Enumerable.Range(0, n * d).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray();
        var p = LstmParameters.InitializeUniform(config, 2);
        var p0 = p.Data.Select(v => (double)v).ToArray();

        // Expected targets straight from the definition: output j at row t is column 1 of row t + j + 1.
        int windows = n / window;
        var x = rows.Take(windows * window * d).Select(v => (double)v).ToArray();
        var targets = new double[windows * window * k]; var mask = new float[targets.Length];
        for (int t = 0; t < windows * window; t++)
            for (int j = 0; j < k; j++)
                if (t + j + 1 < n) { targets[t * k + j] = rows[(t + j + 1) * d + column]; mask[t * k + j] = 1f; }
        double expected = ReferenceLstm.Loss(config, p0, windows, window, x, targets, mask, null, null, 0);

        var losses = LstmTrainer.TrainDeterministic(p, rows, column, window, 40, 0.05f, OptimizerKind.Sgd);
        Assert.Equal(40, losses.Count);
        Assert.Equal(expected, losses[0], 1e-5);
        Assert.True(losses[^1] < 0.9 * losses[0], $"loss went {losses[0]} -> {losses[^1]}");
        Assert.NotEqual(p0.Select(v => (float)v), p.Data);

        var again = LstmParameters.InitializeUniform(config, 2);
        var lossesAgain = LstmTrainer.TrainDeterministic(again, rows, column, window, 40, 0.05f, OptimizerKind.Sgd);
        Assert.Equal(losses, lossesAgain);
        Assert.Equal(p.Data, again.Data);

        var adam = LstmParameters.InitializeUniform(config, 2);
        var adamLosses = LstmTrainer.TrainDeterministic(adam, rows, column, window, 40, 0.01f, OptimizerKind.Adam);
        Assert.Equal(expected, adamLosses[0], 1e-5);
        Assert.True(adamLosses[^1] < adamLosses[0]);
    }

    [Fact]
    public void Fit_RejectsBadDataAndOptions()
    {
        var config = new LstmConfig(1, 4, 1, 1);
        var p = LstmParameters.InitializeUniform(config, 1);
        var good = NoisySine(200, 10, 0.1, 1);
        var options = new TrainerOptions { WindowLength = 16 };
        var withNaN = (float[])good.Clone(); withNaN[50] = float.NaN;
        Assert.Throws<ArgumentException>(() => LstmTrainer.Fit(p, [withNaN], options));
        Assert.Throws<ArgumentException>(() => LstmTrainer.Fit(p, [new float[10]], options));                       // too short
        Assert.Throws<ArgumentException>(() => LstmTrainer.Fit(p, [], options));
        Assert.Throws<ArgumentException>(() => LstmTrainer.Fit(p, [good], options with { BurnIn = 16 }));
        Assert.Throws<ArgumentException>(() => LstmTrainer.Fit(p, [good], options with { TargetColumn = 1 }));
        Assert.Throws<ArgumentException>(() => LstmTrainer.Fit(p, [good], options with { LearningRate = float.NaN }));
        Assert.Throws<ArgumentException>(() => LstmTrainer.Fit(LstmParameters.InitializeUniform(new LstmConfig(2, 4, 1, 1), 1), [new float[201]], options));
        Assert.Throws<ArgumentException>(() => LstmTrainer.TrainDeterministic(p, new float[5], 0, 8, 1, 0.1f, OptimizerKind.Sgd));
        Assert.Throws<ArgumentOutOfRangeException>(() => LstmTrainer.TrainDeterministic(p, good, 1, 8, 1, 0.1f, OptimizerKind.Sgd));
    }

    [Fact]
    public void Fit_StopsOnTimeBudget_AndHonoursCancellation()
    {
        var config = new LstmConfig(1, 8, 1, 1);
        var p = LstmParameters.InitializeUniform(config, 1);
        var series = new List<float[]> { NoisySine(2000, 10, 0.1, 1) };
        var options = new TrainerOptions { WindowLength = 16, Stride = 4, BatchSize = 4, MaxEpochs = 1000, TimeBudget = TimeSpan.FromMilliseconds(1) };
        var result = LstmTrainer.Fit(p, series, options);
        Assert.True(result.RanOutOfTime);
        Assert.Single(result.Epochs);
        Assert.True(double.IsFinite(result.BestValidationLoss));

        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => LstmTrainer.Fit(p, series, options with { TimeBudget = null }, ct: cts.Token));
    }

    [Fact]
    public void Fit_EarlyStopping_KeepsBestEpoch()
    {
        var config = new LstmConfig(1, 8, 1, 1);
        var series = new List<float[]> { NoisySine(400, 12, 0.1, 3) };
        // A learning rate far too high makes validation loss stall or rise, so patience must end training early.
        var options = new TrainerOptions { WindowLength = 16, Stride = 4, BatchSize = 8, MaxEpochs = 200, LearningRate = 0.5f, Optimizer = OptimizerKind.Sgd, ClipNorm = 0, Patience = 2, Seed = 1 };
        var result = LstmTrainer.Fit(LstmParameters.InitializeUniform(config, 1), series, options);
        Assert.True(result.StoppedEarly);
        Assert.True(result.Epochs.Count < 200);
        var bestReported = result.Epochs.Where(e => !double.IsNaN(e.ValidationLoss)).Min(e => e.ValidationLoss);
        Assert.Equal(bestReported, result.BestValidationLoss);
        Assert.Equal(result.Epochs[result.BestEpoch - 1].ValidationLoss, result.BestValidationLoss);
        Assert.Equal(result.BestValidationLoss, LstmTrainer.Evaluate(result.BestParameters, series, options).Mse, 1e-6);
    }
}
