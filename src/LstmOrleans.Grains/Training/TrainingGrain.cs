using System.Diagnostics;
using System.Globalization;
using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Training;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Hosting;

namespace LstmOrleans.Grains.Training;

/// <summary>Durable state of a model's training grain.</summary>
[GenerateSerializer, Alias("lstm.TrainingState")]
public sealed class TrainingState
{
    /// <summary>Null until the grain is first configured, resumed, paused or auto-started.</summary>
    [Id(0)] public TrainingSettings? Settings { get; set; }
    [Id(1)] public bool Paused { get; set; }
    [Id(2)] public DateTimeOffset? NextDueAt { get; set; }
    [Id(3)] public DateTimeOffset? LastRoundAt { get; set; }
    [Id(4)] public long ObservationsAtLastRound { get; set; }
    [Id(5)] public long LastRoundId { get; set; }
    /// <summary>The most recent rounds, oldest first (at most <see cref="TrainingGrainOptions.MaxRecordedRounds"/>).</summary>
    [Id(6)] public List<TrainingRoundRecord> Rounds { get; set; } = [];

    /// <summary>
    /// The latest round started, written before its id is handed out or it does any work: ids are allocated above it,
    /// so an id reported for a round whose activation then died (its record never written) is not given to another
    /// round, and the next activation records that round as interrupted. Null until the first round.
    /// </summary>
    [Id(7)] public StartedTrainingRound? Started { get; set; }
}

/// <summary>A round's id, trigger and start, stored when it starts (see <see cref="TrainingState.Started"/>).</summary>
[GenerateSerializer, Immutable, Alias("lstm.StartedTrainingRound")]
public sealed record StartedTrainingRound(
    [property: Id(0)] long RoundId,
    [property: Id(1)] TrainingTrigger Trigger,
    [property: Id(2)] DateTimeOffset StartedAt);

/// <summary>
/// Refits one model's shared weights. The schedule is a reminder (durable, re-activates the grain after a restart)
/// that ticks every <see cref="TrainingGrainOptions.CheckInterval"/> (or the period, if shorter) and starts a round
/// when the period has elapsed or enough new observations arrived. A round runs as a background flow of this
/// activation: its grain calls and bookkeeping run on the grain scheduler, the training itself on the thread pool,
/// so status calls (which interleave) are answered while it trains. State writes are serialised by a lock because
/// the round's write can interleave with a control call's. A round's id is stored before it is handed out (one write
/// per round), so ids stay unique across crashes. A round ends when its record is stored: a failed record write is
/// retried (with backoff) while the round still counts as running, so no caller is told an outcome a crash could take
/// back and no later round starts (its write would drop the earlier round's id) before it is recorded.
/// </summary>
public sealed partial class TrainingGrain : Grain, ITrainingGrain, IRemindable
{
    internal const string ReminderName = "lstm-training";

    // Metadata a round's published version carries: the round id and the figures an interrupted round's record is
    // rebuilt from. The next activation finds them in the model's record of the round's publish
    // (IModelGrain.CloseRoundAsync), which outlives the version's pruning and is made only by a publish that
    // names the round (PublishRequest.TrainingRound): this metadata alone could come from anyone's publish.
    internal const string RoundMetadata = "training.round";
    internal const string ParentMetadata = "training.parent";
    internal const string ValidationLossMetadata = "training.validationLoss";
    internal const string ChampionValidationLossMetadata = "training.championValidationLoss";
    internal const string PersistenceValidationLossMetadata = "training.persistenceValidationLoss";
    internal const string StreamsMetadata = "training.streams";

    private readonly IPersistentState<TrainingState> _state;
    private readonly TrainingGrainOptions _options;
    private readonly ReminderOptions _reminderOptions;
    private readonly int _historyCapacity;
    private readonly ILogger<TrainingGrain> _logger;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private RoundInFlight? _round;

    /// <summary>
    /// The state as last stored, which every read uses: <see cref="UpdateAsync"/> must put the next state in
    /// <c>_state.State</c> to write it, and reads interleave with that write, so they would otherwise show (and act on)
    /// a record or setting that a failed write or a crash takes back. Set on activation, then after each successful write.
    /// </summary>
    private TrainingState _stored = new();

    /// <summary>
    /// Set when a write failed: the next write first reads what the store holds. A failed write may still have been
    /// stored (a commit of unknown outcome), and then the store's ETag moved on and every write from the old one would
    /// be refused as stale for the rest of the activation.
    /// </summary>
    private bool _reloadBeforeWrite;

    /// <summary>True while a finished round's record is not stored yet (its write failed and is being retried).</summary>
    private bool _recordPending;

    /// <summary>Cancelled when the activation deactivates: a record's retries stop waiting and make one last try at once.</summary>
    private readonly CancellationTokenSource _deactivating = new();

    /// <summary>A round from its id's reservation (<see cref="Id"/>, a state write) to its record.</summary>
    private sealed record RoundInFlight(Task<long> Id, Task<TrainingRoundRecord> Record);

    public TrainingGrain(
        [PersistentState("training", LstmOrleansNames.StorageName)] IPersistentState<TrainingState> state,
        IOptions<TrainingGrainOptions> options,
        IOptions<ReminderOptions> reminderOptions,
        IOptions<StreamGrainOptions> streamOptions,
        ILogger<TrainingGrain> logger)
    {
        _state = state;
        _options = options.Value;
        _reminderOptions = reminderOptions.Value;
        _historyCapacity = streamOptions.Value.HistoryCapacity;
        _logger = logger;
    }

    private string Name => this.GetPrimaryKeyString();

    private IModelGrain Model => GrainFactory.GetGrain<IModelGrain>(Name);

    private TrainingSettings Settings => _stored.Settings ?? _options.DefaultSettings;

    private bool IsRunning => _round is { Record.IsCompleted: false };

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _stored = _state.State;
        await RecordInterruptedRoundAsync();
        // A schedule that exists in state but lost its reminder (e.g. the reminder table was cleared) is restored.
        if (_stored.Settings is not null && !_stored.Paused) await SyncReminderAsync();
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _deactivating.Cancel();
        // A record whose write is being retried gets its last try now (see StoreRecordAsync), awaited here: if it is not
        // stored, the next activation can only record the round as interrupted (or rebuild it from the version it published).
        if (_recordPending && _round is { Record.IsCompleted: false } round) await Task.WhenAny(round.Record);
    }

    public async Task<TrainingStatus> GetStatusAsync()
    {
        await RequireModelAsync();
        return Status();
    }

    public async Task<TrainingStatus> ConfigureAsync(TrainingSettings settings)
    {
        if (TrainingSettingsValidation.Check(settings, _reminderOptions.MinimumReminderPeriod) is { } error)
            throw new ModelOperationException(Name, $"Invalid training settings for model '{Name}': {error}");
        // A round pulls at most the rows a stream retains: settings whose window and held-out part do not fit in them
        // would have every round skipped.
        if (!TrainingRound.IsUsable(Math.Min(settings.MaxRowsPerStream, _historyCapacity), settings))
            throw new ModelOperationException(Name,
                $"Invalid training settings for model '{Name}': streams retain at most {_historyCapacity} observations (HistoryCapacity), " +
                $"too few for a window of WindowLength ({settings.WindowLength}) rows besides a held-out part of at least 2 rows (ValidationFraction {settings.ValidationFraction}).");
        await RequireModelAsync();
        await UpdateAsync(s =>
        {
            s.Settings = settings;
            s.NextDueAt = NextDue(settings, s.LastRoundAt ?? DateTimeOffset.UtcNow);
        });
        if (!_stored.Paused) await SyncReminderAsync();
        LogConfigured(Name, settings.Period, settings.MinNewObservations, settings.SampleSize);
        return Status();
    }

    public async Task<TrainingStatus> PauseAsync()
    {
        await RequireModelAsync();
        await UpdateAsync(s =>
        {
            s.Settings ??= _options.DefaultSettings;
            s.Paused = true;
        });
        await UnregisterReminderAsync();
        LogPaused(Name);
        return Status();
    }

    public async Task<TrainingStatus> ResumeAsync()
    {
        await RequireModelAsync();
        await UpdateAsync(s =>
        {
            s.Settings ??= _options.DefaultSettings;
            s.Paused = false;
            s.NextDueAt ??= NextDue(s.Settings, s.LastRoundAt ?? DateTimeOffset.UtcNow);
        });
        await SyncReminderAsync();
        LogResumed(Name);
        return Status();
    }

    public async Task<TrainingRoundRecord> TrainNowAsync()
    {
        await RequireModelAsync();
        return await StartOrJoin(TrainingTrigger.Manual).Record;
    }

    public async Task<long> StartRoundAsync()
    {
        await RequireModelAsync();
        var round = StartOrJoin(TrainingTrigger.Manual);
        round.Record.Ignore();
        // Returned once stored (a failed reservation throws here and no round runs).
        return await round.Id;
    }

    public async Task<TrainingRoundRecord?> GetRoundAsync(long roundId)
    {
        if (_stored.Rounds.FirstOrDefault(r => r.RoundId == roundId) is { } record) return record;
        // Not recorded (yet): null for a model's round still running or long gone, an error for a model that never existed.
        await RequireModelAsync();
        return null;
    }

    public async Task EnsureScheduledAsync()
    {
        if (_stored.Settings is not null || !_options.AutoStart) return;
        await UpdateAsync(s =>
        {
            s.Settings = _options.DefaultSettings;
            s.NextDueAt = NextDue(s.Settings, DateTimeOffset.UtcNow);
        });
        await SyncReminderAsync();
        LogAutoStarted(Name);
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != ReminderName) return;
        var s = _stored;
        LogTick(Name, s.Paused, s.NextDueAt, IsRunning);
        if (s.Settings is null || s.Paused || !HasSchedule(s.Settings))
        {
            await UnregisterReminderAsync();
            return;
        }
        if (IsRunning) return;

        TrainingTrigger? trigger = null;
        if (s.NextDueAt is { } due && DateTimeOffset.UtcNow >= due) trigger = TrainingTrigger.Schedule;
        else if (s.Settings.MinNewObservations > 0)
        {
            var (_, total) = await RegistryStatsAsync();
            if (total - s.ObservationsAtLastRound >= s.Settings.MinNewObservations) trigger = TrainingTrigger.NewObservations;
        }
        // Started, not awaited: the reminder call returns at once and the round continues in the background.
        if (trigger is { } t && !IsRunning) StartOrJoin(t).Record.Ignore();
    }

    private RoundInFlight StartOrJoin(TrainingTrigger trigger)
    {
        // Join the round in flight while its id is being stored or its record is not yet stored: once it is, a caller
        // that has read that record (GetRoundAsync interleaves) must get a new round, not the finished one's id.
        if (_round is { Record.IsCompleted: false } running && !IsRecorded(running.Id)) return running;
        if (_stored.Paused) throw Paused();
        var settings = Settings;
        var startedAt = DateTimeOffset.UtcNow;
        var id = ReserveRoundIdAsync(trigger, startedAt);
        _round = new RoundInFlight(id, RunRoundAsync(id, trigger, startedAt, settings));
        return _round;
    }

    private ModelOperationException Paused() => new(Name, $"Training of model '{Name}' is paused; resume it first.");

    private bool IsRecorded(Task<long> id) => id.IsCompleted && (!id.IsCompletedSuccessfully || _stored.LastRoundId >= id.Result);

    /// <summary>
    /// Allocates the next round id and stores it before anyone sees it: an id held only in memory would be allocated
    /// again by the next activation if this one died before the round's record was written, naming two rounds.
    /// </summary>
    private async Task<long> ReserveRoundIdAsync(TrainingTrigger trigger, DateTimeOffset startedAt)
    {
        long id = 0;
        await UpdateAsync(s =>
        {
            // A pause stored while this waited for the write lock wins: the round does not start and nothing is written.
            if (s.Paused) throw Paused();
            id = Math.Max(s.LastRoundId, s.Started?.RoundId ?? 0) + 1;
            s.Started = new StartedTrainingRound(id, trigger, startedAt);
        });
        return id;
    }

    /// <summary>
    /// Records the round a previous activation started but never recorded (it died, or the record's write failed), as
    /// failed, so the id handed out for it resolves to a record instead of "running or unknown" for ever. Best effort.
    /// </summary>
    private async Task RecordInterruptedRoundAsync()
    {
        if (_stored.Started is not { } started || started.RoundId <= _stored.LastRoundId) return;
        var record = await InterruptedRecordAsync(started);
        try
        {
            await UpdateAsync(s =>
            {
                if (s.LastRoundId >= started.RoundId) return;   // recorded meanwhile (the state was re-read after a failed write)
                AddRecord(s, record);
                s.LastRoundId = started.RoundId;
            });
            LogRoundInterrupted(Name, started.RoundId, record.Decision, record.PublishedVersion);
        }
        catch (Exception e)
        {
            LogRecordFailed(e, Name, started.RoundId);
        }
    }

    /// <summary>
    /// The record of a round a previous activation started but never recorded. When it got as far as publishing its
    /// challenger (the publish is the round's last step before its record, so a crash in between leaves exactly this),
    /// it is the accepted round of the version the model recorded for it with that publish, rebuilt from the metadata
    /// stored then (kept after the version itself is pruned: more publishes may have come while the training grain was
    /// down); otherwise, or when the model cannot be asked (best effort), a failed "Interrupted" round. One model call.
    /// </summary>
    private async Task<TrainingRoundRecord> InterruptedRecordAsync(StartedTrainingRound started)
    {
        const string interrupted = "Interrupted: the round's outcome was never recorded (the training grain's activation ended first, e.g. its silo stopped or crashed). ";
        RoundPublication? version;
        try
        {
            // Closed, not just asked: a publish of the round still on its way to the model is then refused instead of
            // applied after this records the round as having published nothing.
            version = await Model.CloseRoundAsync(started.RoundId);
        }
        catch (Exception e)
        {
            LogVersionLookupFailed(e, Name, started.RoundId);
            return Record(started.RoundId, started.Trigger, started.StartedAt, TimeSpan.Zero, TrainingDecision.Failed,
                interrupted + $"The model could not be asked whether the round published a version ({e.GetType().Name}: {e.Message}); a version it published says {RoundMetadata} = {started.RoundId} in its metadata.",
                0, 0, 0, 0);
        }
        if (version is null)
            return Record(started.RoundId, started.Trigger, started.StartedAt, TimeSpan.Zero, TrainingDecision.Failed,
                interrupted + "The model has no publish by this round on record: it ended before publishing a version (a publish of it arriving later is refused).",
                0, 0, 0, 0);
        var m = version.Metadata;
        double Loss(string key) => m.TryGetValue(key, out var v) && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : double.NaN;
        long champion = m.TryGetValue(ParentMetadata, out var parent) && long.TryParse(parent, CultureInfo.InvariantCulture, out var p) ? p : 0;
        int used = m.TryGetValue(StreamsMetadata, out var streams) && int.TryParse(streams, CultureInfo.InvariantCulture, out var n) ? n : 0;
        var duration = version.PublishedAt - started.StartedAt;
        return Record(started.RoundId, started.Trigger, started.StartedAt, duration > TimeSpan.Zero ? duration : TimeSpan.Zero, TrainingDecision.Accepted,
            $"Published version {version.Version}, then the training grain's activation ended before the outcome was recorded (e.g. its silo stopped or crashed); " +
            "recovered from the model's record of that publish: its losses, parent and stream count are from the version's metadata, the other figures were not kept." +
            (version.Retained ? "" : $" Version {version.Version} is no longer retained (pruned since by later publishes), so it can no longer be activated."),
            0, used, 0, champion) with
        {
            PublishedVersion = version.Version,
            ChallengerValidationLoss = Loss(ValidationLossMetadata),
            ChampionValidationLoss = Loss(ChampionValidationLossMetadata),
            PersistenceValidationLoss = Loss(PersistenceValidationLossMetadata),
        };
    }

    /// <summary>One round. Throws only when its id cannot be stored (nothing ran); other failures become a recorded round with <see cref="TrainingDecision.Failed"/>.</summary>
    private async Task<TrainingRoundRecord> RunRoundAsync(Task<long> id, TrainingTrigger trigger, DateTimeOffset startedAt, TrainingSettings settings)
    {
        await Task.Yield();   // let the caller's turn finish before the round's first step
        // Keep the activation while the round runs (it is background work, not a request).
        DelayDeactivation(settings.TimeBudget * 2 + TimeSpan.FromMinutes(5));
        long roundId;
        try
        {
            roundId = await id;
        }
        catch (Exception e) when (e is not ModelOperationException)   // not the refusal of a paused model: a failed write
        {
            LogStartFailed(e, Name);
            throw;
        }
        LogRoundStarted(Name, roundId, trigger);
        var clock = Stopwatch.StartNew();
        long? observationTotal = null;
        int sampled = 0, unanswered = 0;
        long championVersion = 0;
        TrainingRoundRecord record;
        try
        {
            var info = await Model.GetInfoAsync();
            var (shardStats, total) = await RegistryStatsAsync();
            observationTotal = total;

            var ids = await SampleStreamsAsync(shardStats, settings.SampleSize);
            sampled = ids.Length;
            var (windows, missing) = await PullWindowsAsync(ids, settings.MaxRowsPerStream);
            unanswered = missing;

            bool scaled = _options.OriginScaledTargets && info.Config.Normalization == NormalizationMode.RunningZScore;
            // Linear in the rows pulled (statistics recovered per row, slices copied): on the thread pool, as the
            // training itself, so a large sample does not hold the training grain's turn.
            string name = Name;
            int minStatisticsCount = _options.MinStatisticsCount;
            var (series, scales, strays) = await Task.Run(() => PrepareSeries(windows, name, info.Config, settings, scaled, minStatisticsCount));
            if (strays.Count > 0) ForgetStreams(strays);

            var champion = await Model.GetActiveWeightsAsync();
            championVersion = champion.Version;
            if (series.Count == 0)
            {
                record = Record(roundId, trigger, startedAt, clock.Elapsed, TrainingDecision.Skipped,
                    $"No usable stream: {windows.Count} answered, none bound to '{Name}' with at least {MinObservations(settings, scaled)} observations since binding or reset.",
                    sampled, 0, unanswered, championVersion);
            }
            else
            {
                var championParameters = ToParameters(champion);
                var input = new RoundInput(championParameters, series, settings, info.Config.TargetIndex, _options.TrainerThreads, (int)roundId,
                    info.Config.Residual, _options.BalanceStreams, scaled ? scales : null);
                // The hard stop is a safety net; the trainer itself keeps to the time budget.
                using var cancel = new CancellationTokenSource(settings.TimeBudget * 2 + TimeSpan.FromMinutes(1));
                var outcome = await Task.Run(() => TrainingRound.Run(input, cancel.Token));
                record = await DecideAsync(roundId, trigger, startedAt, clock, sampled, series.Count, unanswered, champion, outcome);
            }
        }
        catch (Exception e)
        {
            LogRoundFailed(e, Name, roundId);
            record = Record(roundId, trigger, startedAt, clock.Elapsed, TrainingDecision.Failed, $"{e.GetType().Name}: {e.Message}",
                sampled, 0, unanswered, championVersion);
        }

        await StoreRecordAsync(record, s =>
        {
            // Already stored when a write reported as failed did reach the store (seen by the re-read before the retry).
            if (s.LastRoundId >= roundId) return;
            AddRecord(s, record);
            s.LastRoundId = roundId;
            s.LastRoundAt = startedAt;
            if (observationTotal is { } t) s.ObservationsAtLastRound = t;
            s.Settings ??= settings;
            s.NextDueAt = NextDue(s.Settings, DateTimeOffset.UtcNow);
        });
        LogRound(Name, roundId, record.Decision, record.ChallengerValidationLoss, record.ChampionValidationLoss, record.PersistenceValidationLoss, record.Duration.TotalSeconds);
        return record;
    }

    /// <summary>
    /// Stores a finished round's record, retrying a failed write with backoff for as long as the activation lives: the
    /// round counts as running until then, so callers waiting for it get the record only once it is stored (never one
    /// a crash could take back), reads show it only then, and a start joins it instead of beginning a round whose id
    /// write would leave this one unrecorded. Throws when the activation ends first and its last try fails too.
    /// </summary>
    /// <param name="apply">The state change that stores it: idempotent, so it can be retried.</param>
    private async Task StoreRecordAsync(TrainingRoundRecord record, Action<TrainingState> apply)
    {
        _recordPending = true;
        var delay = _options.FirstRecordRetryDelay;
        for (int attempt = 1; ; attempt++)
        {
            bool last = _deactivating.IsCancellationRequested;
            try
            {
                await UpdateAsync(apply);
                _recordPending = false;
                if (attempt > 1) LogRecordStored(Name, record.RoundId, attempt);
                return;
            }
            catch (Exception e)
            {
                LogRecordWriteFailed(e, Name, record.RoundId, attempt, delay.TotalSeconds);
                if (last)
                {
                    _recordPending = false;
                    throw new ModelOperationException(Name,
                        $"Training round {record.RoundId} of model '{Name}' ended ({record.Decision}) but its record could not be stored before the training grain's activation ended " +
                        $"({e.GetType().Name}: {e.Message}); the next activation records it as interrupted, or from the version it published.");
                }
            }
            // Keep the activation (and so the unstored record) while retrying; idle collection would otherwise end it.
            DelayDeactivation(delay + TimeSpan.FromMinutes(1));
            try
            {
                await Task.Delay(delay, _deactivating.Token);
            }
            catch (OperationCanceledException)
            {
                // Deactivating: one last try at once (awaited by OnDeactivateAsync).
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxRecordRetryDelay.Ticks));
        }
    }

    /// <summary>
    /// The training series of the pulled windows: the inputs of each usable window of this model (with scaled targets,
    /// its target's statistics per row, and its first rows cut while their statistics covered fewer than
    /// <paramref name="minStatisticsCount"/> observations), and the streams found bound to another model.
    /// </summary>
    private static (List<float[]> Series, List<SeriesScale> Scales, List<string> Strays) PrepareSeries(List<StreamTrainingWindow> windows,
        string name, ModelConfig config, TrainingSettings settings, bool scaled, int minStatisticsCount)
    {
        int inputWidth = config.ModelInputSize;   // values, then calendar features
        var series = new List<float[]>();
        var scales = new List<SeriesScale>();
        var strays = new List<string>();
        foreach (var w in windows)
        {
            if (w.ModelName != name) { strays.Add(w.StreamId); continue; }
            if (w.InputSize != inputWidth || !TrainingRound.IsUsable(w.Rows, settings)) continue;
            if (!scaled)
            {
                series.Add(w.Inputs);
                continue;
            }
            // A window that cannot carry its statistics is left out; rows normalised with statistics of fewer than
            // MinStatisticsCount observations are cut (in their units a later value can be hundreds of "stds" away).
            if (StreamTrainingView.TargetScale(w, config.TargetIndex) is not { } scale) continue;
            int skip = (int)Math.Clamp(minStatisticsCount - (w.StepCount - w.Rows + 1), 0, w.Rows);
            if (!TrainingRound.IsUsable(w.Rows - skip, settings)) continue;
            series.Add(w.Inputs[(skip * w.InputSize)..]);
            scales.Add(new SeriesScale(scale.Mean[skip..], scale.Std[skip..]));
        }
        return (series, scales, strays);
    }

    private async Task<TrainingRoundRecord> DecideAsync(long roundId, TrainingTrigger trigger, DateTimeOffset startedAt, Stopwatch clock,
        int sampled, int used, int unanswered, ModelWeights champion, RoundOutcome o)
    {
        TrainingDecision decision;
        string reason;
        long? published = null;
        if (!o.ChallengerWins)
        {
            decision = TrainingDecision.Rejected;
            reason = !double.IsFinite(o.ChallengerValidationLoss) || !o.Challenger.AllFinite()
                ? "Challenger diverged (non-finite validation loss or weights)."
                : $"Challenger validation loss {Fmt(o.ChallengerValidationLoss)} does not beat the champion's {Fmt(o.ChampionValidationLoss)}.";
        }
        else if (await PublishUnlessSupersededAsync(roundId, champion.Version, used, o) is { } version)
        {
            published = version;
            decision = TrainingDecision.Accepted;
            reason = $"Challenger validation loss {Fmt(o.ChallengerValidationLoss)} beats the champion's {Fmt(o.ChampionValidationLoss)}; published version {published}.";
        }
        else
        {
            // Someone else activated a version while this round trained; it was not measured against that one.
            decision = TrainingDecision.Rejected;
            reason = $"The active version changed from {champion.Version} during the round; the challenger was not compared with it.";
        }
        return new TrainingRoundRecord(roundId, trigger, startedAt, clock.Elapsed, decision, reason, sampled, used, unanswered,
            o.Rows, o.TrainWindows, o.ValidationEntries, champion.Version, published, o.ChallengerTrainLoss, o.ChallengerValidationLoss,
            o.ChampionTrainLoss, o.ChampionValidationLoss, o.PersistenceValidationLoss, o.EpochsRun, o.BestEpoch, o.StoppedEarly, o.RanOutOfTime);
    }

    /// <summary>Publishes the challenger as the new active version, or returns null when the champion is no longer active.</summary>
    private async Task<long?> PublishUnlessSupersededAsync(long roundId, long championVersion, int used, RoundOutcome o)
    {
        var metadata = new Dictionary<string, string>
        {
            [RoundMetadata] = roundId.ToString(CultureInfo.InvariantCulture),
            [ParentMetadata] = championVersion.ToString(CultureInfo.InvariantCulture),
            [ValidationLossMetadata] = Fmt(o.ChallengerValidationLoss),
            [ChampionValidationLossMetadata] = Fmt(o.ChampionValidationLoss),
            [PersistenceValidationLossMetadata] = Fmt(o.PersistenceValidationLoss),
            [StreamsMetadata] = used.ToString(CultureInfo.InvariantCulture),
        };
        try
        {
            // Conditional on the champion still being active when the model grain applies it: a check here followed by
            // a plain publish would let a rollback that lands in between be undone by this challenger.
            return await Model.PublishAsync(new PublishRequest(o.Challenger.Data, $"training round {roundId}", metadata,
                ExpectedActiveVersion: championVersion, TrainingRound: roundId));
        }
        catch (ModelOperationException)
        {
            if ((await Model.GetInfoAsync()).ActiveVersion != championVersion) return null;
            throw;
        }
        catch (Exception e)
        {
            if (await PublishedDespiteAsync(e, roundId) is { } version) return version;
            throw;
        }
    }

    /// <summary>
    /// The version of this round's publish when the publish call failed but the model applied it all the same (its
    /// answer lost to a timeout or a silo gone, or a store write reported failed that was stored): the model records a
    /// round's publish in the same write as the version, so it is asked before the round is called failed while running
    /// on its version. Null when it has no such record or cannot be asked (the round fails with the publish's error).
    /// </summary>
    private async Task<long?> PublishedDespiteAsync(Exception publishError, long roundId)
    {
        try
        {
            // Closed, not just asked: a publish whose call failed may still be on its way, and must not be applied after
            // the round is recorded as failed.
            if (await Model.CloseRoundAsync(roundId) is not { } publication) return null;
            LogPublishAppliedDespiteError(publishError, Name, roundId, publication.Version);
            return publication.Version;
        }
        catch (Exception e)
        {
            LogVersionLookupFailed(e, Name, roundId);
            return null;
        }
    }

    private void AddRecord(TrainingState s, TrainingRoundRecord record)
    {
        s.Rounds.Add(record);
        if (s.Rounds.Count > _options.MaxRecordedRounds) s.Rounds.RemoveRange(0, s.Rounds.Count - _options.MaxRecordedRounds);
    }

    private static TrainingRoundRecord Record(long roundId, TrainingTrigger trigger, DateTimeOffset startedAt, TimeSpan duration,
        TrainingDecision decision, string reason, int sampled, int used, int unanswered, long championVersion) =>
        new(roundId, trigger, startedAt, duration, decision, reason, sampled, used, unanswered, 0, 0, 0, championVersion, null,
            double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, 0, 0, false, false);

    /// <summary>Stats of every shard (a shard that does not answer in time counts as empty for this round).</summary>
    private async Task<(StreamRegistryShardStats[] Shards, long Total)> RegistryStatsAsync()
    {
        var calls = Enumerable.Range(0, _options.RegistryShards).Select(async shard =>
        {
            try
            {
                return await Shard(shard).GetStatsAsync().WaitAsync(_options.PullTimeout);
            }
            catch (Exception e) when (e is TimeoutException or OrleansException)
            {
                return new StreamRegistryShardStats(0, 0);
            }
        });
        var stats = await Task.WhenAll(calls);
        return (stats, stats.Sum(s => s.ObservationTotal));
    }

    /// <summary>Up to <paramref name="sampleSize"/> streams, each shard contributing in proportion to its size (largest remainder).</summary>
    private async Task<string[]> SampleStreamsAsync(StreamRegistryShardStats[] shards, int sampleSize)
    {
        long total = shards.Sum(s => (long)s.Streams);
        if (total == 0) return [];
        var quota = new int[shards.Length];
        if (total <= sampleSize)
            for (int i = 0; i < shards.Length; i++) quota[i] = shards[i].Streams;
        else
        {
            var remainders = new (double Fraction, int Shard)[shards.Length];
            int assigned = 0;
            for (int i = 0; i < shards.Length; i++)
            {
                double exact = (double)sampleSize * shards[i].Streams / total;
                quota[i] = (int)Math.Floor(exact);
                assigned += quota[i];
                remainders[i] = (exact - quota[i], i);
            }
            foreach (var (_, shard) in remainders.OrderByDescending(r => r.Fraction).Take(sampleSize - assigned)) quota[shard]++;
        }
        var calls = quota.Select(async (count, shard) =>
        {
            if (count == 0) return Array.Empty<string>();
            try
            {
                return await Shard(shard).SampleAsync(count).WaitAsync(_options.PullTimeout);
            }
            catch (Exception e) when (e is TimeoutException or OrleansException)
            {
                return [];
            }
        });
        return (await Task.WhenAll(calls)).SelectMany(x => x).ToArray();
    }

    /// <summary>
    /// Pulls the streams' training windows with at most <see cref="TrainingGrainOptions.MaxConcurrentPulls"/> calls in
    /// flight; a stream that fails or does not answer within <see cref="TrainingGrainOptions.PullTimeout"/> is skipped.
    /// Runs in grain context, so the shared cursor needs no synchronisation.
    /// </summary>
    private async Task<(List<StreamTrainingWindow> Windows, int Unanswered)> PullWindowsAsync(string[] ids, int maxRows)
    {
        var results = new StreamTrainingWindow?[ids.Length];
        int next = 0, unanswered = 0;
        async Task Worker()
        {
            while (next < ids.Length)
            {
                int i = next++;
                try
                {
                    results[i] = await GrainFactory.GetGrain<IStreamGrain>(ids[i]).GetTrainingWindowAsync(maxRows).WaitAsync(_options.PullTimeout);
                }
                catch (Exception e)
                {
                    unanswered++;
                    LogStreamSkipped(e, Name, ids[i]);
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, Math.Min(_options.MaxConcurrentPulls, ids.Length)).Select(_ => Worker()));
        return (results.OfType<StreamTrainingWindow>().ToList(), unanswered);
    }

    /// <summary>Streams that rebound to another model leave this model's registry (best effort).</summary>
    private void ForgetStreams(List<string> streamIds)
    {
        foreach (var group in streamIds.GroupBy(id => StreamRegistryKeys.ShardOf(id, _options.RegistryShards)))
            Shard(group.Key).RemoveAsync(group.ToArray()).Ignore();
    }

    private IStreamRegistryShardGrain Shard(int shard) =>
        GrainFactory.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(Name, shard));

    private static LstmParameters ToParameters(ModelWeights weights)
    {
        var config = ModelGrain.ToLstmConfig(weights.Config);
        var parameters = new LstmParameters(config);
        if (weights.Parameters.Length != parameters.Count)
            throw new InvalidOperationException($"Version {weights.Version} has {weights.Parameters.Length} parameters; the config needs {parameters.Count}.");
        weights.Parameters.CopyTo(parameters.Data, 0);
        return parameters;
    }

    private async Task RequireModelAsync() => await Model.GetInfoAsync();   // throws ModelNotFoundException

    private TrainingStatus Status()
    {
        var s = _stored;
        // Running without an id for the moment the round's id is being stored.
        long? runningId = _round is { Record.IsCompleted: false, Id.IsCompletedSuccessfully: true } r ? r.Id.Result : null;
        return new TrainingStatus(Name, Settings, s.Paused, IsRunning, runningId,
            s.Paused ? null : s.NextDueAt, s.LastRoundAt, s.ObservationsAtLastRound, s.Rounds.ToArray());
    }

    /// <summary>
    /// Applies <paramref name="change"/> to a copy of the stored state and writes it; reads see it (<see cref="_stored"/>)
    /// only once the write succeeded. After a failed write, the state is read again first (<see cref="_reloadBeforeWrite"/>).
    /// </summary>
    private async Task UpdateAsync(Action<TrainingState> change)
    {
        await _writeLock.WaitAsync();
        try
        {
            if (_reloadBeforeWrite)
            {
                await _state.ReadStateAsync();
                _stored = _state.State;
                _reloadBeforeWrite = false;
            }
            var current = _stored;
            var next = new TrainingState
            {
                Settings = current.Settings,
                Paused = current.Paused,
                NextDueAt = current.NextDueAt,
                LastRoundAt = current.LastRoundAt,
                ObservationsAtLastRound = current.ObservationsAtLastRound,
                LastRoundId = current.LastRoundId,
                Rounds = [.. current.Rounds],
                Started = current.Started,
            };
            change(next);
            _state.State = next;
            try
            {
                await _state.WriteStateAsync();
                _stored = next;
            }
            catch
            {
                _state.State = current;
                _reloadBeforeWrite = true;
                throw;
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static bool HasSchedule(TrainingSettings s) => s.Period > TimeSpan.Zero || s.MinNewObservations > 0;

    private static DateTimeOffset? NextDue(TrainingSettings s, DateTimeOffset from) => s.Period > TimeSpan.Zero ? from + s.Period : null;

    private static int MinRows(TrainingSettings s)
    {
        int n = s.WindowLength;
        while (!TrainingRound.IsUsable(n, s)) n++;
        return n;
    }

    /// <summary>
    /// Steps a stream must have taken since binding to be used: with origin-scaled targets its first
    /// MinStatisticsCount - 1 rows are cut, so the rows a round needs come after those (the skip record must say so,
    /// or a stream holding more than the rows it needs looks usable).
    /// </summary>
    private long MinObservations(TrainingSettings s, bool scaled) => MinRows(s) + (scaled ? Math.Max(0, _options.MinStatisticsCount - 1) : 0);

    /// <summary>Registers the reminder with the tick the settings need, or removes it when there is no schedule.</summary>
    private async Task SyncReminderAsync()
    {
        var settings = Settings;
        if (!HasSchedule(settings))
        {
            await UnregisterReminderAsync();
            return;
        }
        var tick = _options.CheckInterval;
        if (settings.Period > TimeSpan.Zero && settings.Period < tick) tick = settings.Period;
        if (tick < _reminderOptions.MinimumReminderPeriod) tick = _reminderOptions.MinimumReminderPeriod;
        var existing = await this.GetReminder(ReminderName);
        if (existing is not null && _reminderPeriod == tick) return;
        await this.RegisterOrUpdateReminder(ReminderName, tick, tick);
        _reminderPeriod = tick;
    }

    private TimeSpan? _reminderPeriod;

    private async Task UnregisterReminderAsync()
    {
        var existing = await this.GetReminder(ReminderName);
        if (existing is not null) await this.UnregisterReminder(existing);
        _reminderPeriod = null;
    }

    private static string Fmt(double value) => value.ToString("G6", CultureInfo.InvariantCulture);

    [LoggerMessage(Level = LogLevel.Information, Message = "Training of model {Model} configured: period {Period}, min new observations {MinNew}, sample {Sample}")]
    private partial void LogConfigured(string model, TimeSpan period, long minNew, int sample);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Training schedule tick for model {Model}: paused {Paused}, next due {NextDueAt}, running {Running}")]
    private partial void LogTick(string model, bool paused, DateTimeOffset? nextDueAt, bool running);

    [LoggerMessage(Level = LogLevel.Information, Message = "Training of model {Model} paused")]
    private partial void LogPaused(string model);

    [LoggerMessage(Level = LogLevel.Information, Message = "Training of model {Model} resumed")]
    private partial void LogResumed(string model);

    [LoggerMessage(Level = LogLevel.Information, Message = "Training of model {Model} started with default settings (first stream registered)")]
    private partial void LogAutoStarted(string model);

    [LoggerMessage(Level = LogLevel.Information, Message = "Training round {Round} of model {Model} started ({Trigger})")]
    private partial void LogRoundStarted(string model, long round, TrainingTrigger trigger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Training round of model {Model} not started: its id could not be stored")]
    private partial void LogStartFailed(Exception exception, string model);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Training round {Round} of model {Model} was interrupted before its outcome was recorded; recorded as {Decision} (published version {Version})")]
    private partial void LogRoundInterrupted(string model, long round, TrainingDecision decision, long? version);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Training round {Round} of model {Model}: its model could not be asked whether the round published a version")]
    private partial void LogVersionLookupFailed(Exception exception, string model, long round);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Training round {Round} of model {Model}: its publish failed, yet the model stored it as version {Version}; the round is accepted")]
    private partial void LogPublishAppliedDespiteError(Exception exception, string model, long round, long version);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Training round {Round} of model {Model}: its record could not be stored (attempt {Attempt}); retrying in {Seconds} s, the round counts as running until then")]
    private partial void LogRecordWriteFailed(Exception exception, string model, long round, int attempt, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Training round {Round} of model {Model}: its record was stored at attempt {Attempt}")]
    private partial void LogRecordStored(string model, long round, int attempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Training round {Round} of model {Model}: {Decision} (challenger {Challenger}, champion {Champion}, persistence {Persistence}) in {Seconds:F1} s")]
    private partial void LogRound(string model, long round, TrainingDecision decision, double challenger, double champion, double persistence, double seconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "Training round {Round} of model {Model} failed")]
    private partial void LogRoundFailed(Exception exception, string model, long round);

    [LoggerMessage(Level = LogLevel.Error, Message = "Training round {Round} of model {Model} could not be recorded")]
    private partial void LogRecordFailed(Exception exception, string model, long round);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Training of model {Model} skipped stream {StreamId} (no answer)")]
    private partial void LogStreamSkipped(Exception exception, string model, string streamId);
}
