using LstmOrleans.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Hosting;

namespace LstmOrleans.Grains.Training;

/// <summary>Silo-wide behaviour of the training grains and the stream registry. Must be equal on every silo.</summary>
public sealed class TrainingGrainOptions
{
    /// <summary>Shards of each model's stream registry. Changing it strands registrations until streams re-report.</summary>
    public int RegistryShards { get; set; } = 16;

    /// <summary>
    /// A stream reports its new observations to its registry shard after this many steps (and on deactivation). Each
    /// report is one more message, so a stream ingesting batches of 64 with a threshold of 64 sent one per batch (~5 %
    /// of the silo's CPU in the SQLite batch benchmark); the registry's counts (for rounds triggered by new
    /// observations) lag by at most this many steps per active stream.
    /// </summary>
    public int ReportEverySteps { get; set; } = 256;

    /// <summary>How often the schedule reminder ticks to check whether a round is due (at least the reminder service's minimum period).</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Settings a training grain starts with before it is configured.</summary>
    public TrainingSettings DefaultSettings { get; set; } = TrainingSettings.Default;

    /// <summary>Start the schedule (with <see cref="DefaultSettings"/>) as soon as a model's first stream registers.</summary>
    public bool AutoStart { get; set; } = true;

    /// <summary>Stream windows pulled at the same time during a round.</summary>
    public int MaxConcurrentPulls { get; set; } = 32;

    /// <summary>A stream that does not answer within this time is skipped for the round.</summary>
    public TimeSpan PullTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Worker threads of the trainer (each round runs on the thread pool, off the grain scheduler).</summary>
    public int TrainerThreads { get; set; } = 1;

    /// <summary>
    /// Weight each stream's squared errors by 1 / its persistence MSE over the round's training part, in training, early
    /// stopping and the champion/challenger decision (<see cref="LstmOrleans.Lstm.Training.TrainerOptions.BalanceSeries"/>).
    /// With a plain pooled loss, streams whose normalised values jump (spikes, level shifts) outweigh smooth streams by
    /// orders of magnitude, and a shared model is fitted, and published, for them alone (QUALITY.md).
    /// </summary>
    public bool BalanceStreams { get; set; } = true;

    /// <summary>
    /// Score every training target in the normalisation of its origin row (the statistics the stream will de-normalise
    /// that forecast with), recovered from each stream's window, instead of the target row's own: with running
    /// statistics the two differ after a spike or level shift, and a model fitted to the stored targets is biased live.
    /// Applies to models with <see cref="NormalizationMode.RunningZScore"/>.
    /// </summary>
    public bool OriginScaledTargets { get; set; } = true;

    /// <summary>
    /// With <see cref="OriginScaledTargets"/>, a stream's rows whose statistics cover fewer observations than this (its
    /// first steps after binding) are left out of a round.
    /// </summary>
    public int MinStatisticsCount { get; set; } = 64;

    /// <summary>Rounds kept in the training grain's durable history.</summary>
    public int MaxRecordedRounds { get; set; } = 100;

    /// <summary>A registry shard writes new registrations and counts at most this often (write-behind).</summary>
    public TimeSpan RegistryFlushInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// First wait before a round's failed record write is retried; each further wait doubles, up to
    /// <see cref="MaxRecordRetryDelay"/>. An activation that ends meanwhile makes one last try at once.
    /// </summary>
    public TimeSpan FirstRecordRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest wait between retries of a round's failed record write (at most a day: a timer's wait has a ceiling of about 49 days).</summary>
    public TimeSpan MaxRecordRetryDelay { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Checks the options at start. <see cref="TrainingGrainOptions.DefaultSettings"/> get the check the training grain
/// applies to settings a user gives (<see cref="TrainingSettingsValidation.Check"/>): a default period below the
/// reminder minimum was accepted, and its rounds silently ran a minute or more apart. Not the grain's check against the
/// streams' history capacity: that is a setting of its own (Streams:HistoryCapacity), which the defaults do not follow.
/// </summary>
internal sealed class TrainingGrainOptionsValidator(IOptions<ReminderOptions> reminderOptions) : IValidateOptions<TrainingGrainOptions>
{
    public ValidateOptionsResult Validate(string? name, TrainingGrainOptions options)
    {
        var errors = new List<string>();
        if (options.RegistryShards is < 1 or > 65_536) errors.Add($"{nameof(options.RegistryShards)} must be between 1 and 65536.");
        if (options.ReportEverySteps < 1) errors.Add($"{nameof(options.ReportEverySteps)} must be at least 1.");
        if (options.CheckInterval <= TimeSpan.Zero) errors.Add($"{nameof(options.CheckInterval)} must be positive.");
        if (options.MaxConcurrentPulls < 1) errors.Add($"{nameof(options.MaxConcurrentPulls)} must be at least 1.");
        if (options.PullTimeout <= TimeSpan.Zero) errors.Add($"{nameof(options.PullTimeout)} must be positive.");
        if (options.TrainerThreads is < 1 or > 1024) errors.Add($"{nameof(options.TrainerThreads)} must be between 1 and 1024.");
        if (options.MinStatisticsCount < 0) errors.Add($"{nameof(options.MinStatisticsCount)} must not be negative.");
        if (options.MaxRecordedRounds < 1) errors.Add($"{nameof(options.MaxRecordedRounds)} must be at least 1.");
        if (options.RegistryFlushInterval <= TimeSpan.Zero) errors.Add($"{nameof(options.RegistryFlushInterval)} must be positive.");
        if (options.FirstRecordRetryDelay <= TimeSpan.Zero) errors.Add($"{nameof(options.FirstRecordRetryDelay)} must be positive.");
        if (options.MaxRecordRetryDelay < options.FirstRecordRetryDelay || options.MaxRecordRetryDelay > TimeSpan.FromDays(1))
            errors.Add($"{nameof(options.MaxRecordRetryDelay)} must be at least {nameof(options.FirstRecordRetryDelay)} and at most a day.");
        if (options.DefaultSettings is null) errors.Add($"{nameof(options.DefaultSettings)} must be set.");
        else if (TrainingSettingsValidation.Check(options.DefaultSettings, reminderOptions.Value.MinimumReminderPeriod) is { } error)
            errors.Add($"{nameof(options.DefaultSettings)}: {error}");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>Range checks of <see cref="TrainingSettings"/>.</summary>
public static class TrainingSettingsValidation
{
    /// <summary>
    /// Longest <see cref="TrainingSettings.Period"/>: the next round is due a period after the last, and that date must
    /// stay representable (a <see cref="DateTimeOffset"/> ends in the year 9999).
    /// </summary>
    public static TimeSpan MaxPeriod { get; } = TimeSpan.FromDays(3650);

    /// <summary>
    /// The first problem with <paramref name="s"/> on a silo whose reminders tick at most once a
    /// <paramref name="minimumReminderPeriod"/>, or null when there is none: what the training grain checks of the
    /// settings it is given and the options validator of the defaults, so that neither can accept what the other refuses.
    /// </summary>
    public static string? Check(TrainingSettings s, TimeSpan minimumReminderPeriod)
    {
        if (CheckValues(s) is { } error) return error;
        // The schedule ticks on a reminder, and a reminder ticks at most once a MinimumReminderPeriod (1 min by
        // default): a period of 1 s was accepted and silently ran rounds a minute or more apart.
        if (s.Period > TimeSpan.Zero && s.Period < minimumReminderPeriod)
            return $"Period must be zero (no periodic rounds) or at least {minimumReminderPeriod} (the minimum period of the reminders " +
                $"the schedule runs on), got {s.Period}.";
        return null;
    }

    /// <summary>The first problem with <paramref name="s"/>'s values on their own (whatever the silo), or null when there is none.</summary>
    private static string? CheckValues(TrainingSettings s)
    {
        if (s is null) return "Settings are missing.";
        if (s.Period < TimeSpan.Zero || s.Period > MaxPeriod) return $"Period must be between zero and {MaxPeriod.TotalDays} days, got {s.Period}.";
        if (s.MinNewObservations < 0) return $"MinNewObservations must not be negative, got {s.MinNewObservations}.";
        if (s.SampleSize is < 1 or > 100_000) return $"SampleSize must be between 1 and 100000, got {s.SampleSize}.";
        if (s.Epochs is < 1 or > 100_000) return $"Epochs must be between 1 and 100000, got {s.Epochs}.";
        if (s.TimeBudget <= TimeSpan.Zero || s.TimeBudget > TimeSpan.FromHours(24)) return $"TimeBudget must be positive and at most 24 h, got {s.TimeBudget}.";
        if (!(s.LearningRate > 0f) || !float.IsFinite(s.LearningRate)) return $"LearningRate must be positive and finite, got {s.LearningRate}.";
        if (s.WindowLength is < 2 or > 100_000) return $"WindowLength must be between 2 and 100000, got {s.WindowLength}.";
        if (s.Stride < 1) return $"Stride must be at least 1, got {s.Stride}.";
        if (s.BatchSize is < 1 or > 1_000_000) return $"BatchSize must be between 1 and 1000000, got {s.BatchSize}.";
        if (!(s.ValidationFraction > 0 && s.ValidationFraction <= 0.9)) return $"ValidationFraction must be in (0, 0.9], got {s.ValidationFraction}.";
        if (!(s.ClipNorm >= 0f) || !float.IsFinite(s.ClipNorm)) return $"ClipNorm must be 0 (off) or positive, got {s.ClipNorm}.";
        if (s.Patience < 0) return $"Patience must not be negative, got {s.Patience}.";
        if (s.MaxRowsPerStream < s.WindowLength + 2) return $"MaxRowsPerStream must be at least WindowLength + 2 ({s.WindowLength + 2}), got {s.MaxRowsPerStream}.";
        if (s.MaxRowsPerStream > 1_000_000) return $"MaxRowsPerStream must be at most 1000000, got {s.MaxRowsPerStream}.";
        // Else no stream could ever be used: every round would be skipped, and the skip's report of the rows needed
        // (the least usable count) would search without end.
        if (!TrainingRound.IsUsable(s.MaxRowsPerStream, s))
            return $"MaxRowsPerStream ({s.MaxRowsPerStream}) must hold a window of WindowLength ({s.WindowLength}) rows besides " +
                $"a held-out part of at least 2 rows (ValidationFraction {s.ValidationFraction}).";
        return null;
    }
}
