using Orleans.Concurrency;

namespace LstmOrleans.Abstractions;

/// <summary>
/// Refits the shared weights of one model (key = model name) from its streams' recent data, on a durable schedule
/// (a reminder plus persistent state, so it survives silo restarts) and on demand. A round samples streams from the
/// model's sharded registry, trains a challenger off the grain scheduler warm-started from the active weights, and
/// publishes it through the model grain only when it beats the champion on the same held-out data. Every round is
/// recorded durably. Status reads and round waits interleave with a running round.
/// Calls throw <see cref="ModelNotFoundException"/> when the model does not exist.
/// </summary>
[Alias("lstm.ITrainingGrain")]
public interface ITrainingGrain : IGrainWithStringKey
{
    [AlwaysInterleave, Alias("GetStatus")]
    Task<TrainingStatus> GetStatusAsync();

    /// <summary>
    /// Replaces the settings (validated first; a bad value throws <see cref="ModelOperationException"/> and changes
    /// nothing), reschedules the next periodic round from the last one, and enables the schedule unless paused.
    /// </summary>
    [Alias("Configure")]
    Task<TrainingStatus> ConfigureAsync(TrainingSettings settings);

    /// <summary>Stops scheduled rounds (a running round finishes) and refuses manual ones until resumed. Durable.</summary>
    [Alias("Pause")]
    Task<TrainingStatus> PauseAsync();

    /// <summary>Re-enables the schedule.</summary>
    [Alias("Resume")]
    Task<TrainingStatus> ResumeAsync();

    /// <summary>
    /// Runs a round now (or joins the running one) and returns its record when it is done, that is once the record is
    /// stored: a failed record write is retried (the round counts as running meanwhile), so the record returned is never
    /// one a crash could take back. Rounds longer than the cluster's response timeout should use
    /// <see cref="StartRoundAsync"/> and <see cref="GetRoundAsync"/> instead.
    /// Throws <see cref="ModelOperationException"/> while paused.
    /// </summary>
    [AlwaysInterleave, Alias("TrainNow")]
    Task<TrainingRoundRecord> TrainNowAsync();

    /// <summary>
    /// Starts a round (or joins the running one) and returns its id without waiting for the round. The id is stored
    /// before it is returned, so it never names another round, even after a crash.
    /// </summary>
    [AlwaysInterleave, Alias("StartRound")]
    Task<long> StartRoundAsync();

    /// <summary>
    /// The record of a finished round still among the retained ones; null while it runs (until its record is stored,
    /// including while a failed record write is retried) or when unknown (but <see cref="ModelNotFoundException"/> when
    /// the model does not exist). A round cut short by the end of the training grain's activation (a crash) is recorded
    /// when the grain next activates: as <see cref="TrainingDecision.Accepted"/> with its version when it had published
    /// one (rebuilt from that version's metadata), else as <see cref="TrainingDecision.Failed"/> ("Interrupted").
    /// </summary>
    [AlwaysInterleave, Alias("GetRound")]
    Task<TrainingRoundRecord?> GetRoundAsync(long roundId);

    /// <summary>
    /// Makes sure the schedule exists (called by the stream registry when a model's first stream registers):
    /// initialises default settings and the reminder on first use. One-way and idempotent.
    /// </summary>
    [OneWay, Alias("EnsureScheduled")]
    Task EnsureScheduledAsync();
}
