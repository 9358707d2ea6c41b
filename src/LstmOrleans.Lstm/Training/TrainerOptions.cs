namespace LstmOrleans.Lstm.Training;

/// <summary>
/// How <see cref="LstmTrainer.Fit"/> trains. Windows of <see cref="WindowLength"/> rows are cut from each
/// series every <see cref="Stride"/> rows, start from a zero state, and predict output k (0-based) = the
/// target column k + 1 rows ahead. The most recent <see cref="ValidationFraction"/> of every series is held
/// out (in time) for validation and early stopping; training targets never reach into it.
/// </summary>
public sealed record TrainerOptions
{
    /// <summary>Steps per training window (T).</summary>
    public int WindowLength { get; init; } = 64;

    /// <summary>Rows between the starts of consecutive training windows.</summary>
    public int Stride { get; init; } = 16;

    /// <summary>Windows per optimizer step.</summary>
    public int BatchSize { get; init; } = 32;

    public int MaxEpochs { get; init; } = 20;

    public float LearningRate { get; init; } = 1e-3f;

    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;

    /// <summary>SGD momentum (ignored by Adam).</summary>
    public float Momentum { get; init; }

    /// <summary>Clip the gradient to this global L2 norm before each step; 0 disables clipping.</summary>
    public float ClipNorm { get; init; } = 1f;

    /// <summary>Most recent fraction of each series held out for validation, in [0, 0.9]. 0 = no validation (best by train loss).</summary>
    public double ValidationFraction { get; init; } = 0.2;

    /// <summary>Stop after this many epochs without a better validation loss; 0 disables early stopping.</summary>
    public int Patience { get; init; } = 5;

    /// <summary>Stop (keeping the best so far) once training has run this long; null = no limit.</summary>
    public TimeSpan? TimeBudget { get; init; }

    /// <summary>Seeds the window shuffling; with the same thread count, training is bit-for-bit repeatable.</summary>
    public int Seed { get; init; }

    /// <summary>Worker threads for the data-parallel batch (each gets a fixed shard of the batch).</summary>
    public int Threads { get; init; } = 1;

    /// <summary>Leading steps of each window that warm the state up and do not count in the loss.</summary>
    public int BurnIn { get; init; }

    /// <summary>Column of the series rows that the head predicts.</summary>
    public int TargetColumn { get; init; }

    /// <summary>
    /// Residual head: output k predicts the change of the target column from the current row (forecast = current
    /// target value + output), so a model with a zero head is persistence. Losses are the same squared errors of the
    /// forecast either way.
    /// </summary>
    public bool Residual { get; init; }

    /// <summary>
    /// Weight each series' squared errors by 1 / its persistence MSE on its training part (see <c>Dataset</c>), in
    /// training, validation and <see cref="LstmTrainer.Evaluate"/>, so every series counts by how much the model improves
    /// on persistence there rather than by the size of its normalised steps. Without it, one series with jumps (a level
    /// shift inflates its normalised step changes by orders of magnitude) dominates the pooled loss of a shared model
    /// and the smooth series are fitted badly. Off by default in the library; the training grain turns it on
    /// (<c>TrainingGrainOptions.BalanceStreams</c>).
    /// </summary>
    public bool BalanceSeries { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first out-of-range option.</summary>
    public TrainerOptions Validate(LstmConfig config)
    {
        static void Require(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Require(WindowLength is >= 1 and <= 100_000, $"WindowLength must be between 1 and 100000, got {WindowLength}.");
        Require(Stride >= 1, $"Stride must be at least 1, got {Stride}.");
        Require(BatchSize is >= 1 and <= 1_000_000, $"BatchSize must be between 1 and 1000000, got {BatchSize}.");
        Require(MaxEpochs is >= 1 and <= 1_000_000, $"MaxEpochs must be between 1 and 1000000, got {MaxEpochs}.");
        Require(LearningRate > 0f && float.IsFinite(LearningRate), $"LearningRate must be positive and finite, got {LearningRate}.");
        Require(Momentum >= 0f && Momentum < 1f, $"Momentum must be in [0, 1), got {Momentum}.");
        Require(ClipNorm >= 0f && float.IsFinite(ClipNorm), $"ClipNorm must be 0 (off) or positive, got {ClipNorm}.");
        Require(ValidationFraction is >= 0 and <= 0.9, $"ValidationFraction must be in [0, 0.9], got {ValidationFraction}.");
        Require(Patience >= 0, $"Patience must be 0 (off) or positive, got {Patience}.");
        Require(TimeBudget is null || TimeBudget > TimeSpan.Zero, $"TimeBudget must be positive, got {TimeBudget}.");
        Require(Threads is >= 1 and <= 1024, $"Threads must be between 1 and 1024, got {Threads}.");
        Require(BurnIn >= 0 && BurnIn < WindowLength, $"BurnIn must be in [0, WindowLength), got {BurnIn}.");
        Require(TargetColumn >= 0 && TargetColumn < config.InputSize, $"TargetColumn must be in [0, {config.InputSize}), got {TargetColumn}.");
        return this;
    }
}

/// <summary>What one epoch did: mean training loss over its batches, and the validation loss after it.</summary>
public sealed record EpochReport(int Epoch, double TrainLoss, double ValidationLoss, TimeSpan Elapsed);

/// <summary>
/// Outcome of <see cref="LstmTrainer.Fit"/>: the parameters of the epoch with the lowest validation loss
/// (lowest train loss without validation), and why training stopped.
/// </summary>
public sealed record TrainingResult(
    LstmParameters BestParameters,
    double BestValidationLoss,
    int BestEpoch,
    IReadOnlyList<EpochReport> Epochs,
    bool StoppedEarly,
    bool RanOutOfTime,
    double PersistenceValidationLoss);

/// <summary>
/// Validation MSE of a model on the held-out part, and of the persistence forecast (every horizon predicts the
/// last observed target value) on exactly the same entries. Count = number of scored entries.
/// </summary>
public sealed record EvaluationResult(double Mse, double PersistenceMse, int Count);
