using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Training;

namespace LstmOrleans.Grains.Training;

/// <summary>What a round trains on: an immutable snapshot taken in grain context, handed to the thread pool.</summary>
/// <param name="Champion">The active weights (warm start and the bar to beat). Not modified.</param>
/// <param name="Series">One [N_s, D] row-major array of normalised inputs per usable stream.</param>
/// <param name="Residual">The model's head predicts the change from the current target input (<see cref="ModelConfig.Residual"/>).</param>
/// <param name="BalanceStreams">Weight each stream by 1 / its persistence MSE (<see cref="TrainerOptions.BalanceSeries"/>).</param>
/// <param name="Scales">Per-row normalisation of each series' target (<see cref="SeriesScale"/>), or null to score the stored targets.</param>
internal sealed record RoundInput(LstmParameters Champion, IReadOnlyList<float[]> Series, TrainingSettings Settings,
    int TargetColumn, int Threads, int Seed, bool Residual = false, bool BalanceStreams = false, IReadOnlyList<SeriesScale>? Scales = null);

/// <summary>The numbers of one trained round (all losses MSE in normalised units, on the same data for both models).</summary>
internal sealed record RoundOutcome(
    LstmParameters Challenger,
    double ChallengerTrainLoss,
    double ChallengerValidationLoss,
    double ChampionTrainLoss,
    double ChampionValidationLoss,
    double PersistenceValidationLoss,
    long Rows,
    int TrainWindows,
    int ValidationEntries,
    int EpochsRun,
    int BestEpoch,
    bool StoppedEarly,
    bool RanOutOfTime)
{
    /// <summary>Champion/challenger rule: the challenger wins only with finite weights and a finite, strictly lower validation loss.</summary>
    public bool ChallengerWins =>
        double.IsFinite(ChallengerValidationLoss) && ChallengerValidationLoss < ChampionValidationLoss && Challenger.AllFinite();
}

/// <summary>
/// One round's arithmetic, with no Orleans in sight: fit a challenger warm-started from the champion with
/// <see cref="LstmTrainer"/>, then score champion and challenger on exactly the same windows.
/// CPU-bound; the training grain runs it on the thread pool.
/// </summary>
internal static class TrainingRound
{
    /// <summary>True when a stream with <paramref name="rows"/> rows yields at least one training window and a held-out part.</summary>
    public static bool IsUsable(int rows, TrainingSettings settings)
    {
        int held = (int)Math.Floor(rows * settings.ValidationFraction);
        return rows >= settings.WindowLength && held >= 2 && rows - held >= settings.WindowLength;
    }

    public static TrainerOptions TrainerOptionsFor(TrainingSettings s, int targetColumn, int threads, int seed, bool residual = false,
        bool balance = false) => new()
    {
        WindowLength = s.WindowLength,
        Stride = s.Stride,
        BatchSize = s.BatchSize,
        MaxEpochs = s.Epochs,
        LearningRate = s.LearningRate,
        Optimizer = OptimizerKind.Adam,
        ClipNorm = s.ClipNorm,
        ValidationFraction = s.ValidationFraction,
        Patience = s.Patience,
        TimeBudget = s.TimeBudget,
        Seed = seed,
        Threads = threads,
        TargetColumn = targetColumn,
        Residual = residual,
        BalanceSeries = balance,
    };

    public static RoundOutcome Run(RoundInput input, CancellationToken ct)
    {
        var config = input.Champion.Config;
        var options = TrainerOptionsFor(input.Settings, input.TargetColumn, input.Threads, input.Seed, input.Residual, input.BalanceStreams);
        var fit = LstmTrainer.Fit(input.Champion, input.Series, options, onEpoch: null, ct, input.Scales);
        var challenger = fit.BestParameters;

        // Both models on the same held-out windows (and the persistence forecast on the same entries).
        ct.ThrowIfCancellationRequested();
        var championValidation = LstmTrainer.Evaluate(input.Champion, input.Series, options, input.Scales);
        var challengerValidation = SafeEvaluate(challenger, input.Series, options, input.Scales);

        // Train losses: the training part of every series, scored without updates the same way for both models
        // (the last 90 % of it; the first rows only warm the state up).
        var (trainParts, trainScales) = TrainingParts(input.Series, input.Scales, config.InputSize, input.Settings.ValidationFraction);
        var trainOptions = options with { ValidationFraction = 0.9 };
        double championTrain = SafeEvaluate(input.Champion, trainParts, trainOptions, trainScales).Mse;
        double challengerTrain = SafeEvaluate(challenger, trainParts, trainOptions, trainScales).Mse;

        long rows = 0;
        int trainWindows = 0;
        foreach (var series in input.Series)
        {
            int n = series.Length / config.InputSize;
            rows += n;
            int trainEnd = n - (int)Math.Floor(n * input.Settings.ValidationFraction);
            if (trainEnd >= input.Settings.WindowLength) trainWindows += (trainEnd - input.Settings.WindowLength) / input.Settings.Stride + 1;
        }

        return new RoundOutcome(challenger, challengerTrain, challengerValidation.Mse, championTrain, championValidation.Mse,
            championValidation.PersistenceMse, rows, trainWindows, championValidation.Count, fit.Epochs.Count, fit.BestEpoch,
            fit.StoppedEarly, fit.RanOutOfTime);
    }

    /// <summary>Evaluation of possibly diverged weights: non-finite weights score NaN instead of throwing.</summary>
    private static EvaluationResult SafeEvaluate(LstmParameters parameters, IReadOnlyList<float[]> series, TrainerOptions options,
        IReadOnlyList<SeriesScale>? scales)
    {
        if (!parameters.AllFinite()) return new EvaluationResult(double.NaN, double.NaN, 0);
        return LstmTrainer.Evaluate(parameters, series, options, scales);
    }

    private static (float[][] Parts, SeriesScale[]? Scales) TrainingParts(IReadOnlyList<float[]> series, IReadOnlyList<SeriesScale>? scales,
        int inputSize, double validationFraction)
    {
        var parts = new float[series.Count][];
        var partScales = scales is null ? null : new SeriesScale[series.Count];
        for (int i = 0; i < series.Count; i++)
        {
            int n = series[i].Length / inputSize;
            int trainEnd = n - (int)Math.Floor(n * validationFraction);
            parts[i] = series[i].AsSpan(0, trainEnd * inputSize).ToArray();
            if (partScales is not null) partScales[i] = new SeriesScale(scales![i].Mean[..trainEnd], scales[i].Std[..trainEnd]);
        }
        return (parts, partScales);
    }
}
