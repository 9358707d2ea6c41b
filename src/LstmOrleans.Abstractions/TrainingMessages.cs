using System.Text.Json.Serialization;

namespace LstmOrleans.Abstractions;

/// <summary>
/// How a model's training grain refits the shared weights. Every value is validated by
/// <see cref="ITrainingGrain.ConfigureAsync"/>; an invalid one is rejected with a <see cref="ModelOperationException"/>
/// and nothing changes.
/// </summary>
/// <param name="Period">
/// A scheduled round runs this long after the previous round (any outcome), at most 3650 days. Zero = no periodic rounds.
/// Otherwise at least the silo's minimum reminder period (Orleans' ReminderOptions.MinimumReminderPeriod, 1 min by
/// default), the schedule's reminder ticking no more often.
/// </param>
/// <param name="MinNewObservations">
/// A round also runs once this many observations arrived across the model's streams since the previous round
/// (checked on every schedule tick). Zero = no observation trigger.
/// </param>
/// <param name="SampleSize">Streams sampled per round (S), spread over the registry shards in proportion to their size.</param>
/// <param name="Epochs">Maximum epochs per round.</param>
/// <param name="TimeBudget">Training stops (keeping the best epoch) once it has run this long.</param>
/// <param name="LearningRate">Adam learning rate.</param>
/// <param name="WindowLength">Steps per training window (T).</param>
/// <param name="Stride">Rows between the starts of consecutive training windows.</param>
/// <param name="BatchSize">Windows per optimizer step.</param>
/// <param name="ValidationFraction">Most recent fraction of each stream held out for validation, in (0, 0.9].</param>
/// <param name="ClipNorm">Global gradient-norm clip; 0 disables it.</param>
/// <param name="Patience">Early stopping after this many epochs without a better validation loss; 0 disables it.</param>
/// <param name="MaxRowsPerStream">
/// Most recent observations pulled from each sampled stream; enough for a window and a held-out part of at least 2 rows.
/// </param>
[GenerateSerializer, Immutable, Alias("lstm.TrainingSettings")]
public sealed record TrainingSettings(
    [property: Id(0)] TimeSpan Period,
    [property: Id(1)] long MinNewObservations,
    [property: Id(2)] int SampleSize,
    [property: Id(3)] int Epochs,
    [property: Id(4)] TimeSpan TimeBudget,
    [property: Id(5)] float LearningRate,
    [property: Id(6)] int WindowLength,
    [property: Id(7)] int Stride = 8,
    [property: Id(8)] int BatchSize = 32,
    [property: Id(9)] double ValidationFraction = 0.2,
    [property: Id(10)] float ClipNorm = 1f,
    [property: Id(11)] int Patience = 5,
    [property: Id(12)] int MaxRowsPerStream = 512)
{
    /// <summary>Hourly rounds, no observation trigger, 256 streams, 20 epochs within 60 s, Adam at 1e-3, windows of 64.</summary>
    public static TrainingSettings Default { get; } = new(TimeSpan.FromHours(1), 0, 256, 20, TimeSpan.FromSeconds(60), 1e-3f, 64);
}

/// <summary>What started a training round.</summary>
public enum TrainingTrigger
{
    Manual = 1,
    Schedule = 2,
    NewObservations = 3,
}

/// <summary>How a training round ended.</summary>
public enum TrainingDecision
{
    /// <summary>The challenger beat the champion on the same held-out data and was published as the new version.</summary>
    Accepted = 1,

    /// <summary>The challenger's validation loss was not finite or not better than the champion's; the champion stays.</summary>
    Rejected = 2,

    /// <summary>Not enough usable data (no stream with a full window); nothing was trained.</summary>
    Skipped = 3,

    /// <summary>The round failed (see <see cref="TrainingRoundRecord.Reason"/>); the champion stays.</summary>
    Failed = 4,
}

/// <summary>
/// One training round as recorded durably by the training grain. Losses are mean squared errors in normalised units,
/// all measured on the same data: validation losses on the held-out most recent part of every used stream, train
/// losses on the training part (scored the same way, without updates). NaN where not measured (skipped or failed rounds).
/// In JSON a loss that is not a number is the string "NaN" (or "Infinity"), as the client's --json writes it: the
/// serializer's default refused to write it, so the HTTP training status and round record were a 500 once a round had
/// been skipped or failed.
/// </summary>
[GenerateSerializer, Immutable, Alias("lstm.TrainingRoundRecord")]
public sealed record TrainingRoundRecord(
    [property: Id(0)] long RoundId,
    [property: Id(1)] TrainingTrigger Trigger,
    [property: Id(2)] DateTimeOffset StartedAt,
    [property: Id(3)] TimeSpan Duration,
    [property: Id(4)] TrainingDecision Decision,
    [property: Id(5)] string Reason,
    [property: Id(6)] int StreamsSampled,
    [property: Id(7)] int StreamsUsed,
    [property: Id(8)] int StreamsUnanswered,
    [property: Id(9)] long Rows,
    [property: Id(10)] int TrainWindows,
    [property: Id(11)] int ValidationEntries,
    [property: Id(12)] long ChampionVersion,
    [property: Id(13)] long? PublishedVersion,
    [property: Id(14), JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double ChallengerTrainLoss,
    [property: Id(15), JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double ChallengerValidationLoss,
    [property: Id(16), JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double ChampionTrainLoss,
    [property: Id(17), JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double ChampionValidationLoss,
    [property: Id(18), JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double PersistenceValidationLoss,
    [property: Id(19)] int EpochsRun,
    [property: Id(20)] int BestEpoch,
    [property: Id(21)] bool StoppedEarly,
    [property: Id(22)] bool RanOutOfTime);

/// <summary>State of a model's training grain.</summary>
/// <param name="ModelName">The model (the grain's key).</param>
/// <param name="Settings">Current settings.</param>
/// <param name="Paused">True when the schedule is paused (no scheduled or manual rounds).</param>
/// <param name="Running">True while a round runs (until its record is stored).</param>
/// <param name="RunningRoundId">Id of the running round, if any (null for the moment a starting round's id is being stored).</param>
/// <param name="NextDueAt">When the next periodic round is due (null without a period, or while paused).</param>
/// <param name="LastRoundAt">Start of the last recorded round.</param>
/// <param name="ObservationsAtLastRound">The registry's observation counter when the last round started.</param>
/// <param name="RecentRounds">The most recent recorded rounds, oldest first.</param>
[GenerateSerializer, Immutable, Alias("lstm.TrainingStatus")]
public sealed record TrainingStatus(
    [property: Id(0)] string ModelName,
    [property: Id(1)] TrainingSettings Settings,
    [property: Id(2)] bool Paused,
    [property: Id(3)] bool Running,
    [property: Id(4)] long? RunningRoundId,
    [property: Id(5)] DateTimeOffset? NextDueAt,
    [property: Id(6)] DateTimeOffset? LastRoundAt,
    [property: Id(7)] long ObservationsAtLastRound,
    [property: Id(8)] TrainingRoundRecord[] RecentRounds);

/// <summary>
/// The recent inputs of one stream as its LSTM saw them, for training: the ring buffer's model inputs, oldest first.
/// A row is the observation's values, normalised with the running statistics of its own step (the stream's
/// normalisation mode), followed by the model's calendar features (<see cref="ModelConfig.CalendarFeatures"/>);
/// <see cref="Mean"/> and <see cref="Std"/> are the values' statistics after the newest row.
/// </summary>
/// <param name="StreamId">The stream.</param>
/// <param name="ModelName">Model the stream is bound to (null when unbound).</param>
/// <param name="WeightsVersion">Weights version the stream currently steps with.</param>
/// <param name="InputSize">D_in = <see cref="ModelConfig.ModelInputSize"/>: D values plus the calendar features.</param>
/// <param name="Inputs">[N, D_in] row-major model inputs, oldest first.</param>
/// <param name="FirstSequence">Sequence number of the oldest row (undefined when N = 0).</param>
/// <param name="LastSequence">Sequence number of the newest row (undefined when N = 0).</param>
/// <param name="StepCount">Steps the stream has taken since its last reset or rebind.</param>
/// <param name="Mean">[D] running mean of the values after the newest row.</param>
/// <param name="Std">[D] standard deviation used to normalise the newest row's values.</param>
[GenerateSerializer, Immutable, Alias("lstm.StreamTrainingWindow")]
public sealed record StreamTrainingWindow(
    [property: Id(0)] string StreamId,
    [property: Id(1)] string? ModelName,
    [property: Id(2)] long WeightsVersion,
    [property: Id(3)] int InputSize,
    [property: Id(4)] float[] Inputs,
    [property: Id(5)] long FirstSequence,
    [property: Id(6)] long LastSequence,
    [property: Id(7)] long StepCount,
    [property: Id(8)] double[] Mean,
    [property: Id(9)] double[] Std)
{
    /// <summary>N, rows in <see cref="Inputs"/>.</summary>
    public int Rows => InputSize == 0 ? 0 : Inputs.Length / InputSize;
}
