using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Storage;
using LstmOrleans.Grains.Training;
using LstmOrleans.Persistence.GroupCommit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Storage;
using Orleans.Streams;
using Orleans.Streams.Core;

namespace LstmOrleans.Grains;

/// <summary>
/// One sensor stream: validates and orders observations, takes exactly one LSTM step per accepted observation with
/// the silo's cached weights (no grain call on the hot path), and persists its state before acknowledging (by
/// default). Non-reentrant, so concurrent callers are applied one at a time in arrival order.
///
/// Records per stream in the "lstm" storage: the small core state ("stream", <see cref="StreamState"/>, written on
/// every acknowledged step) and the closed history, one chunk per record in a ring of slots ("history.0" ...
/// "history.{S-1}", <see cref="StreamHistory"/>; see <see cref="StreamComputation.HistorySlotCount"/>), each written
/// when its chunk closes (with the core in one atomic write where the store can, else just after it, the core carrying
/// the chunk until then) and read only
/// for history, training windows and re-warms; it is not kept in memory.
///
/// All records go straight to the provider's <see cref="IGrainStorage"/> with ETags (read on activation, written
/// before a call returns), not through an <c>IPersistentState</c>: Orleans 10's state bridge queues every write behind a
/// forced yield, an extra scheduler turn and four async state machines per acknowledged step, which cost single-value
/// ingest about a third of its silo CPU. With a provider that completes synchronously (the process-local memory store)
/// a single ingest now completes in one turn without allocating a continuation.
/// </summary>
[ImplicitStreamSubscription(LstmOrleansNames.ObservationStreamNamespace)]
public sealed partial class StreamGrain : Grain, IStreamGrain, IStreamSubscriptionObserver
{
    private readonly CoreRecord _state = new(new StreamState());   // the core record and its ETag

    /// <summary>The core record's state object: the same one on every read and write, so the memory store can keep its slot on it.</summary>
    private sealed class CoreRecord(StreamState state) : IGrainState<StreamState>, ILocalMemorySlotCache
    {
        [System.Diagnostics.CodeAnalysis.AllowNull] public StreamState State { get; set; } = state;   // null after a read of nothing
        public string? ETag { get; set; }
        public bool RecordExists { get; set; }
        public object? LocalMemorySlot { get; set; }
    }
    private readonly ModelWeightsCache _cache;
    private readonly StreamGrainOptions _options;
    private readonly ILogger<StreamGrain> _logger;
    private IGrainStorage? _storage;
    private int _unsavedSteps;
    private long _lastWriteTimestamp;
    private StreamTrainingFeed? _trainingFeed;   // reports to the model's training registry when training is on
    private string? _streamId;
    private string?[]? _slotETags;              // per history slot: its ETag as last read or written here, or UnknownETag
    private bool _legacyHistoryGone;            // no record of the old single-record history layout is left
    private static readonly string UnknownETag = new('?', 1);

    /// <summary>The core state (never null: set at construction and after every read).</summary>
    private StreamState Current
    {
        get => _state.State!;
        set => _state.State = value;
    }

    public StreamGrain(
        ModelWeightsCache cache,
        IOptions<StreamGrainOptions> options,
        ILogger<StreamGrain> logger)
    {
        _cache = cache;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>The grain key (decoded once per activation: the key is stored as UTF-8).</summary>
    private string StreamId => _streamId ??= this.GetPrimaryKeyString();

    private const string CoreStateName = "stream";
    private const int DeleteProbeGap = 8;
    private const string HistoryStateName = "history";

    private IGrainStorage Storage => _storage ??= ServiceProvider.GetRequiredKeyedService<IGrainStorage>(LstmOrleansNames.StorageName);

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        try { await Storage.ReadStateAsync(CoreStateName, this.GetGrainId(), _state); }
        catch (Exception e) when (e is not OrleansException) { throw StorageFailure(e, "ReadState"); }
        _state.State ??= new StreamState();
        _lastWriteTimestamp = Environment.TickCount64;
        _trainingFeed = ServiceProvider.GetService<StreamTrainingFeedFactory>()?.Create(GrainContext, GrainFactory, StreamId);
        if (_options.PersistEverySteps > 1 && _options.PersistInterval > TimeSpan.Zero)
            this.RegisterGrainTimer(FlushAsync, _options.PersistInterval, _options.PersistInterval);
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        try
        {
            await FlushOnDeactivateAsync(reason, cancellationToken);
        }
        finally
        {
            // Last: a silo stop that began meanwhile still finds this activation and waits for it to finish.
            _trainingFeed?.Deactivating(GrainContext);
        }
    }

    private async Task FlushOnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (reason.ReasonCode == DeactivationReasonCode.ShuttingDown && _trainingFeed is { Pending: > 0 } feed)
        {
            // The silo is stopping and deactivates its registry shards after its streams (StreamTrainingFeedFactory):
            // waiting for the report to be applied means the shard stores it when it deactivates.
            long pending = feed.Pending;
            try { await feed.FlushAppliedAsync().WaitAsync(cancellationToken); }
            catch (Exception e) { LogLastReportLost(StreamId, pending, e.Message); }
        }
        else _trainingFeed?.Flush();
        if (_unsavedSteps == 0) return;
        try { await WriteAsync(); }
        catch (Exception e) { LogFlushFailed(e, StreamId); }
    }

    public async Task<StreamSummary> BindAsync(string? modelName)
    {
        string name = ModelNameOrDefault(modelName);
        var model = await _cache.GetAsync(name);
        var s = Current;
        if (s.IsBound && s.ModelName == name) return StreamComputation.Summary(s, StreamId);

        if (!s.IsBound) CheckNewStreamId();
        var next = s.Clone();
        StreamComputation.Bind(next, model, _options.HistoryCapacity, _options.HistoryChunkSize);
        await CommitAsync(next, steps: 0, forceWrite: true);
        // After the commit: a failed bind leaves the stream listed where it still is.
        if (s.IsBound && s.ModelName is { } previous && _trainingFeed is not null) await _trainingFeed.ForgetAsync(previous);
        LogBound(StreamId, name);
        _trainingFeed?.Report(name, 0);
        return StreamComputation.Summary(next, StreamId);
    }

    public async Task<StepResult> IngestAsync(Observation observation)
    {
        var s = Current;
        var model = await _cache.GetAsync(s.ModelName ?? LstmOrleansNames.DefaultModelName);
        StreamComputation.ValidateValues(observation, model.Config.InputSize);
        StreamComputation.ValidateSequence(observation.Sequence);
        if (s.HasSequence && observation.Sequence <= s.LastSequence) return StreamComputation.Duplicate(s, StreamId);
        if (s.HasSequence && observation.Timestamp < s.LastTimestamp)
            throw new ObservationRejectedException(RejectionReason.TimestampBackwards,
                $"Observation {observation.Sequence} at {observation.Timestamp:O} is earlier than the last accepted one at {s.LastTimestamp:O}.",
                observation.Sequence);
        // After the ordering rules, as batches check it; the clock is read only when the limit is on.
        if (_options.MaxTimestampAhead > TimeSpan.Zero)
        {
            var now = DateTimeOffset.UtcNow;
            if (_options.IsTooFarAhead(observation.Timestamp.UtcTicks, now))
                throw _options.TimestampTooFarAhead($"Observation {observation.Sequence}", observation.Timestamp, now, observation.Sequence);
        }

        // Everything that can fail has been checked (a new stream's id at its first bind, not on every step); from
        // here the state changes.
        if (!s.IsBound)
        {
            CheckNewStreamId();
            s = s.Clone();
            StreamComputation.Bind(s, model, _options.HistoryCapacity, _options.HistoryChunkSize);
        }
        if (s.WeightsVersion != model.Version)
        {
            // A re-warm re-derives h and c for the new weights; on a copy, so that a step the new weights then refuse
            // (StreamComputation.Step throws before changing anything) leaves the stream exactly as it was.
            if (ReferenceEquals(s, Current)) s = s.Clone();
            await RewarmAsync(s, model);
        }
        var result = StreamComputation.Step(s, StreamId, observation, model, _options);
        if (Install(s, steps: 1, forceWrite: false))
        {
            if (s.PendingClosed is { Count: > 0 })
            {
                try { await WriteAsync(); }
                catch (Exception e) { RecoverFromFailedWrite(e, previous: null, steps: 1); throw; }
            }
            else
            {
                // The common step (no chunk closed, 63 in 64 with the default chunk size): the core alone, awaited
                // here rather than through CommitAsync and WriteAsync, whose two extra async frames were two more
                // state-machine boxes and completions per durable value.
                s.PersistPendingClosed = false;
                try { await Storage.WriteStateAsync(CoreStateName, this.GetGrainId(), _state); }
                catch (Exception e) when (e is not OrleansException)
                {
                    RecoverFromFailedWrite(e, previous: null, steps: 1);
                    throw StorageFailure(e, "WriteState");
                }
                catch (Exception e)
                {
                    RecoverFromFailedWrite(e, previous: null, steps: 1);
                    throw;
                }
                CoreWritten();
            }
        }
        _trainingFeed?.Report(s.ModelName!, 1);
        return result;
    }

    public async Task<StepResult[]> IngestBatchAsync(Observation[] observations)
    {
        if (observations is null) throw new ObservationRejectedException(RejectionReason.MissingValues, "Batch is null.");
        CheckBatchSize(observations.Length);
        var model = await _cache.GetAsync(Current.ModelName ?? LstmOrleansNames.DefaultModelName);
        // The row-only faults (a null element, missing values, a wrong length) first; the rest are the columns' rules.
        int d = model.Config.InputSize;
        foreach (var o in observations) StreamComputation.ValidateValues(o, d);
        var batch = ObservationBatch.From(observations, d);
        var forecast = await IngestValidatedAsync(batch, model);
        return forecast.ToStepResults(batch);
    }

    public async Task<StepResult[]> IngestAfterLastAsync(UnnumberedObservation[] observations)
    {
        if (observations is null) throw new ObservationRejectedException(RejectionReason.MissingValues, "Batch is null.");
        // Numbered and stamped in the turn that applies them (the grain is not reentrant): no other call can take
        // these numbers, or move the stream past this time, in between.
        var s = Current;
        // From 1 on a new stream; also after a negative last sequence, which streams could take before those were refused.
        long last = s.HasSequence ? Math.Max(0, s.LastSequence) : 0;
        if (last > long.MaxValue - observations.Length)
            throw new ObservationRejectedException(RejectionReason.SequenceExhausted,
                $"The stream's last sequence is {last}; there is no room after it to number {observations.Length} observation(s).");
        var now = DateTimeOffset.UtcNow;
        CheckBatchSize(observations.Length);
        var model = await _cache.GetAsync(s.ModelName ?? LstmOrleansNames.DefaultModelName);
        // Straight into columns, checked as IngestBatchAsync checks the numbered rows: no Observation per reading.
        var batch = StreamComputation.NumberAfterLast(observations, last + 1, now, model.Config.InputSize);
        var forecast = await IngestValidatedAsync(batch, model, now);
        return forecast.ToStepResults(batch);
    }

    public async Task<BatchForecast> IngestColumnsAsync(ObservationBatch batch)
    {
        if (batch is null) throw new ObservationRejectedException(RejectionReason.MissingValues, "Batch is null.");
        CheckBatchSize(batch.Count);
        var model = await _cache.GetAsync(Current.ModelName ?? LstmOrleansNames.DefaultModelName);
        return await IngestValidatedAsync(batch, model);
    }

    private void CheckBatchSize(int count)
    {
        if (count > _options.MaxBatchSize)
            throw new ObservationRejectedException(RejectionReason.BatchTooLarge,
                $"Batch of {count} observations exceeds the maximum of {_options.MaxBatchSize}.");
    }

    /// <summary>
    /// The batch path shared by rows and columns: validate everything, compute on a copy (off the grain scheduler when
    /// the estimated work is large, see <see cref="StreamGrainOptions.OffloadMultiplyAdds"/>), commit once.
    /// </summary>
    /// <param name="now">The silo's clock as the caller read it for this call (numbered batches stamp with it), else null.</param>
    private async Task<BatchForecast> IngestValidatedAsync(ObservationBatch batch, CachedModel model, DateTimeOffset? now = null)
    {
        var original = Current;
        int firstNew = StreamComputation.ValidateBatch(original, batch, model.Config.InputSize);
        int newCount = batch.Count - firstNew;
        // One clock read per call at most (none when the limit is off or nothing is new).
        if (newCount > 0 && _options.MaxTimestampAhead > TimeSpan.Zero)
            StreamComputation.CheckNotTooFarAhead(batch, firstNew, now ?? DateTimeOffset.UtcNow, _options);
        var duplicate = firstNew > 0 ? StreamComputation.Duplicate(original, StreamId) : null;
        if (newCount == 0) return StreamComputation.StepBatch(original, StreamId, batch, firstNew, duplicate, model, _options);   // steps nothing

        // Compute on a copy; the grain's state is replaced only after the write succeeds.
        if (!original.IsBound) CheckNewStreamId();
        var next = original.Clone();
        if (!next.IsBound) StreamComputation.Bind(next, model, _options.HistoryCapacity, _options.HistoryChunkSize);
        bool rewarm = next.WeightsVersion != model.Version;
        var window = rewarm ? await ReadWindowAsync(next, next.HistoryCapacity) : null;
        // Not a local function over these locals: turned into Task.Run's delegate, its closure was allocated on every
        // call, offloaded or not (and even for a batch of duplicates).
        var forecast = await StreamComputation.StepBatchOffloadingAsync(next, StreamId, batch, firstNew, duplicate, model, window, _options);

        await CommitAsync(next, newCount, forceWrite: false, original);
        _trainingFeed?.Report(next.ModelName!, newCount);
        if (rewarm) LogRewarmed(StreamId, model.Name, model.Version, window!.Count);
        return forecast;
    }

    public Task<StepResult?> GetPredictionAsync() => Task.FromResult(Current.Latest);

    public Task<StreamSummary> GetSummaryAsync() => Task.FromResult(StreamComputation.Summary(Current, StreamId));

    public Task<StreamStateSnapshot> GetStateAsync() => Task.FromResult(StreamComputation.Snapshot(Current, StreamId));

    public async Task<Observation[]> GetHistoryAsync(int maxCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        var s = Current;
        return StreamComputation.History(await ReadWindowAsync(s, maxCount), s.InputSize);
    }

    public async Task<StreamTrainingWindow> GetTrainingWindowAsync(int maxCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        var s = Current;
        return StreamTrainingView.From(s, await ReadWindowAsync(s, maxCount), StreamId);
    }

    public async Task ResetAsync()
    {
        var s = Current;
        var next = new StreamState { Generation = s.Generation + 1 };
        if (s.ModelName is { } name) StreamComputation.Bind(next, await _cache.GetAsync(name), _options.HistoryCapacity, _options.HistoryChunkSize);
        await CommitAsync(next, steps: 0, forceWrite: true);
        LogReset(StreamId);
    }

    public async Task DeleteAsync()
    {
        // History first: a failure here leaves the core (and so the stream) in place. A stream still in its first
        // generation (never reset or rebound) has records only in the slots it wrote, which its core counts: exactly
        // those are read and cleared, nothing else. After a reset or rebind an earlier generation may have left records
        // anywhere in its own ring, which may have been larger (options changed); the core does not record how large,
        // so then every slot of this ring is visited and on past it until DeleteProbeGap slots in a row are missing.
        // A ring fills slot after slot; a gap comes only from a write that closed more chunks than the window holds, so
        // a longer one past the ring is not expected.
        var s = Current;
        // Unlisted first: if that fails nothing is deleted and a retry finds the stream as it was; if a later step
        // fails, the retry unlists it again (removal is idempotent) and goes on.
        if (s.IsBound && s.ModelName is { } model && _trainingFeed is not null) await _trainingFeed.ForgetAsync(model);
        // Generation counts binds and resets from 0: 1 is the first bind (or a reset before any), with no earlier history.
        bool earlierGenerations = s.Generation > 1;
        int slotCount = earlierGenerations ? (s.IsBound ? StreamComputation.HistorySlotCount(s) : 0) : StreamComputation.SlotsWritten(s);
        int probeGap = earlierGenerations ? DeleteProbeGap : 0;
        for (int slot = 0, missing = 0; slot < slotCount || missing < probeGap; slot++)
        {
            var record = new GrainState<StreamHistory>(new StreamHistory());
            await Storage.ReadStateAsync(SlotName(slot), this.GetGrainId(), record);
            if (record.RecordExists) { await Storage.ClearStateAsync(SlotName(slot), this.GetGrainId(), record); missing = 0; }
            else missing++;
        }
        _slotETags = null;
        var legacy = await ReadLegacyHistoryAsync();
        if (legacy.RecordExists) await Storage.ClearStateAsync(HistoryStateName, this.GetGrainId(), legacy);
        await Storage.ClearStateAsync(CoreStateName, this.GetGrainId(), _state);
        Current = new StreamState();
        _unsavedSteps = 0;
        DeactivateOnIdle();
    }

    async Task IStreamSubscriptionObserver.OnSubscribed(IStreamSubscriptionHandleFactory handleFactory)
    {
        var handle = handleFactory.Create<Observation>();
        await handle.ResumeAsync(OnStreamObservationAsync);
    }

    /// <summary>
    /// Observations arriving through Orleans streams follow the same rules; invalid ones are logged and dropped
    /// (there is no caller to tell), so the stream is not retried forever on bad data.
    /// </summary>
    private async Task OnStreamObservationAsync(Observation observation, StreamSequenceToken? token)
    {
        try
        {
            await IngestAsync(observation);
        }
        catch (Exception e) when (e is ObservationRejectedException or ModelNotFoundException)
        {
            LogStreamObservationRejected(e, StreamId, observation?.Sequence ?? -1);
        }
    }

    private async Task RewarmAsync(StreamState s, CachedModel model)
    {
        var window = await ReadWindowAsync(s, s.HistoryCapacity);
        if (StreamComputation.ShouldOffload(model, window.Count, _options)) await Task.Run(() => StreamComputation.Rewarm(s, model, window));
        else StreamComputation.Rewarm(s, model, window);
        LogRewarmed(StreamId, model.Name, model.Version, window.Count);
    }

    /// <summary>
    /// The newest min(maxCount, N) retained observations; reads only the history records the tail and pending chunks do
    /// not cover (concurrently), plus the old single history record while one may still exist.
    /// </summary>
    private async Task<ObservationChunk> ReadWindowAsync(StreamState s, int maxCount)
    {
        if (!s.IsBound) return new ObservationChunk();
        var slots = StreamComputation.StoredSlots(s, maxCount);
        if (slots.Length == 0) return StreamComputation.Window(s, [], null, maxCount);
        var reads = new Task<GrainState<StreamHistory>>[slots.Length];
        for (int i = 0; i < slots.Length; i++) reads[i] = ReadHistorySlotAsync(s, slots[i]);
        var legacy = _legacyHistoryGone ? null : ReadLegacyHistoryAsync();
        var records = new StreamHistory?[StreamComputation.HistorySlotCount(s)];
        for (int i = 0; i < slots.Length; i++)
        {
            var record = await reads[i];
            if (record.RecordExists) records[slots[i]] = record.State;
        }
        var old = legacy is null ? null : await legacy;
        return StreamComputation.Window(s, records, old is { RecordExists: true } ? old.State : null, maxCount);
    }

    private static readonly string[] SlotNames = Enumerable.Range(0, 64).Select(i => $"{HistoryStateName}.{i}").ToArray();

    private static string SlotName(int slot) => slot < SlotNames.Length ? SlotNames[slot] : $"{HistoryStateName}.{slot}";

    /// <summary>
    /// Reads one closed-history slot and, where slots are written with their own ETags (stores without companion
    /// writes), remembers its ETag for the next write to it.
    /// </summary>
    private async Task<GrainState<StreamHistory>> ReadHistorySlotAsync(StreamState s, int slot, bool forWrite = false)
    {
        var record = new GrainState<StreamHistory>(new StreamHistory());
        await Storage.ReadStateAsync(SlotName(slot), this.GetGrainId(), record);
        if (forWrite || Storage is not ICompanionWriteGrainStorage) RememberSlotETag(s, slot, record.ETag);
        return record;
    }

    /// <summary>
    /// Writes one closed chunk to its slot. The slot's ETag comes from this activation's last read or write of it, so
    /// the steady state reads nothing; it is read once per slot per activation (and again after a failed write).
    /// </summary>
    private async Task WriteHistorySlotAsync(StreamState s, ObservationChunk chunk)
    {
        int slot = StreamComputation.HistorySlot(s, chunk.StartIndex);
        string? etag = _slotETags is { } known && slot < known.Length && !ReferenceEquals(known[slot], UnknownETag)
            ? known[slot]
            : (await ReadHistorySlotAsync(s, slot, forWrite: true)).ETag;
        var record = new GrainState<StreamHistory>(new StreamHistory { Generation = s.Generation, Closed = chunk }) { ETag = etag, RecordExists = etag is not null };
        try { await Storage.WriteStateAsync(SlotName(slot), this.GetGrainId(), record); }
        catch { RememberSlotETag(s, slot, UnknownETag); throw; }
        RememberSlotETag(s, slot, record.ETag);
    }

    private void RememberSlotETag(StreamState s, int slot, string? etag)
    {
        int count = Math.Max(slot + 1, StreamComputation.HistorySlotCount(s));
        if (_slotETags is null || _slotETags.Length < count)
        {
            var grown = new string?[count];
            Array.Fill(grown, UnknownETag);
            _slotETags?.CopyTo(grown, 0);
            _slotETags = grown;
        }
        _slotETags[slot] = etag;
    }

    /// <summary>The record of the layout before slots (state name "history", all closed observations in one).</summary>
    private async Task<GrainState<StreamHistory>> ReadLegacyHistoryAsync()
    {
        var history = new GrainState<StreamHistory>(new StreamHistory());
        await Storage.ReadStateAsync(HistoryStateName, this.GetGrainId(), history);
        if (!history.RecordExists) _legacyHistoryGone = true;
        return history;
    }

    /// <summary>
    /// Moves a record of the old single-record layout into slots (the acknowledged entries the last durable core may
    /// need) and removes it, before this activation writes any slot, so a stream never holds the two layouts with
    /// different contents. Costs one read per activation (at its first history write or window read) until no such
    /// record is left; the fence read of the core only when there is one to move.
    /// </summary>
    private async Task MigrateLegacyHistoryAsync(StreamState s)
    {
        var legacy = await ReadLegacyHistoryAsync();
        if (!legacy.RecordExists) return;
        await FenceHistoryWriteAsync();
        if (legacy.State is { Closed: not null } old && old.Generation == s.Generation)
            await Task.WhenAll(StreamComputation.LegacyChunks(s, old.Closed).Select(chunk => WriteHistorySlotAsync(s, chunk)));
        await Storage.ClearStateAsync(HistoryStateName, this.GetGrainId(), legacy);
        _legacyHistoryGone = true;
    }

    /// <summary>
    /// Installs <paramref name="next"/> and writes it when the persistence policy says so. If the write fails the
    /// previous state is restored when known (batches, binds); otherwise the activation is dropped so the next call
    /// reloads the last durable state.
    /// </summary>
    private async Task CommitAsync(StreamState next, int steps, bool forceWrite, StreamState? previous = null)
    {
        previous ??= ReferenceEquals(next, Current) ? null : Current;
        if (!Install(next, steps, forceWrite)) return;
        try
        {
            await WriteAsync();
        }
        catch (Exception e)
        {
            RecoverFromFailedWrite(e, previous, steps);
            throw;
        }
    }

    /// <summary>Makes <paramref name="next"/> current and counts its steps; true when the persistence policy says write now.</summary>
    private bool Install(StreamState next, int steps, bool forceWrite)
    {
        Current = next;
        _unsavedSteps += steps;
        return forceWrite || _unsavedSteps >= _options.PersistEverySteps
            || (_options.PersistInterval > TimeSpan.Zero && Environment.TickCount64 - _lastWriteTimestamp >= _options.PersistInterval.TotalMilliseconds);
    }

    /// <summary>After a failed write of the state <see cref="Install"/> made current (the caller rethrows).</summary>
    private void RecoverFromFailedWrite(Exception e, StreamState? previous, int steps)
    {
        // A conflict means another activation owns the stream now: this one is stale and goes (the next call reloads).
        if (e is InconsistentStateException) DeactivateOnIdle();
        // A commit whose outcome is unknown (the store's COMMIT or fsync failed) may have stored the new state: neither
        // the previous state nor the new one can be kept as the truth, so the activation goes like one that cannot roll
        // back, and the next call reads what the store holds.
        if (previous is not null && !CommitOutcomeUnknownException.IsIn(e)) { Current = previous; _unsavedSteps -= steps; }
        else
        {
            // The state was changed in place and cannot be rolled back: drop the activation without its
            // deactivation flush (which would save the step this call is about to report as failed).
            _unsavedSteps = 0;
            DeactivateOnIdle();
        }
    }

    /// <summary>After the core record was written with nothing pending: the write is the new watermark of durability.</summary>
    private void CoreWritten()
    {
        _unsavedSteps = 0;
        _lastWriteTimestamp = Environment.TickCount64;
    }

    /// <summary>
    /// The chunks closed since the last write, each to its slot, and the core with the new watermark. On a store that
    /// writes companion records (<see cref="ICompanionWriteGrainStorage"/>: SQLite, PostgreSQL, the memory store) that is
    /// one atomic write. Elsewhere (Redis) the core goes first and carries the closed chunks itself
    /// (<see cref="StreamState.PersistPendingClosed"/>); only once its ETag-guarded write has succeeded are the chunks
    /// copied into their slots. So a stale activation (another silo's duplicate, or one that missed a newer core) fails
    /// at the core before it touches any record, and a crash or a failed record write in between loses nothing: the
    /// stored core still holds the chunks, and the next write (of this activation or the next) copies them again.
    /// </summary>
    private async Task WriteAsync()
    {
        var s = Current;
        List<ObservationChunk>? chunks = null;
        bool companions = Storage is ICompanionWriteGrainStorage;
        if (s.PendingClosed is { Count: > 0 })
        {
            if (!_legacyHistoryGone) await MigrateLegacyHistoryAsync(s);
            chunks = StreamComputation.ClosedChunksToWrite(s);
        }
        s.PersistPendingClosed = !companions && chunks is { Count: > 0 };
        try
        {
            if (companions && chunks is { Count: > 0 })
            {
                // The chunks ride with the core in one atomic write guarded by the core's ETag: no slot ETags, and
                // history never gets ahead of its core.
                var records = new KeyValuePair<string, StreamHistory>[chunks.Count];
                for (int i = 0; i < chunks.Count; i++)
                    records[i] = new(SlotName(StreamComputation.HistorySlot(s, chunks[i].StartIndex)), new StreamHistory { Generation = s.Generation, Closed = chunks[i] });
                await ((ICompanionWriteGrainStorage)Storage).WriteStateWithCompanionsAsync(CoreStateName, this.GetGrainId(), _state, records);
            }
            else await Storage.WriteStateAsync(CoreStateName, this.GetGrainId(), _state);
        }
        catch (Exception e) when (e is not OrleansException) { throw StorageFailure(e, "WriteState"); }
        CoreWritten();
        if (s.PersistPendingClosed && chunks is { } copies)
        {
            // The step is durable now (the core holds the chunks); copying them into their slots may fail without
            // failing it: they stay pending, in memory and in the stored core, and the next write copies them again.
            try
            {
                if (copies.Count == 1) await WriteDecidedHistorySlotAsync(s, copies[0]);
                else await Task.WhenAll(copies.Select(chunk => WriteDecidedHistorySlotAsync(s, chunk)));
            }
            catch (Exception e)
            {
                LogHistoryCopyDeferred(e, StreamId, copies.Count);
                return;
            }
        }
        if (ReferenceEquals(s, Current))
        {
            s.PendingClosed = null;
            s.PersistPendingClosed = false;
        }
    }

    /// <summary>
    /// Copies a chunk that a committed core holds into its slot. Another activation may write the same slot meanwhile:
    /// a newer one that loaded this core writes the same chunk, and one that went further writes a later chunk of the
    /// ring or of a newer generation. So on an ETag conflict the slot is read again: if it already holds this chunk or a
    /// newer one there is nothing to do; else the write is retried with the fresh ETag.
    /// </summary>
    private async Task WriteDecidedHistorySlotAsync(StreamState s, ObservationChunk chunk)
    {
        int slot = StreamComputation.HistorySlot(s, chunk.StartIndex);
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await WriteHistorySlotAsync(s, chunk);
                return;
            }
            catch (InconsistentStateException) when (attempt < 4)
            {
                var stored = await ReadHistorySlotAsync(s, slot, forWrite: true);
                if (stored is { RecordExists: true, State: { } record }
                    && (record.Generation > s.Generation || (record.Generation == s.Generation && record.Closed is { } held && held.EndIndex >= chunk.EndIndex)))
                    return;
            }
        }
    }

    /// <summary>
    /// Refuses the legacy-record migration of a stale activation, which writes slots before its core: if the stored
    /// core's ETag is not the one this activation last read or wrote, another activation has written the core since, and
    /// this one fails with <see cref="InconsistentStateException"/> without touching anything. (Ordinary history writes
    /// need no fence: the core goes first and its ETag decides.)
    /// </summary>
    private async Task FenceHistoryWriteAsync()
    {
        var stored = new GrainState<StreamState>();
        await Storage.ReadStateAsync(CoreStateName, this.GetGrainId(), stored);
        if (stored.ETag != _state.ETag)
            throw new InconsistentStateException(
                $"Stream {StreamId}: the stored core state (ETag {stored.ETag ?? "none"}) was written by another activation since this one's (ETag {_state.ETag ?? "none"}); its history is left alone.",
                stored.ETag ?? string.Empty, _state.ETag ?? string.Empty);
    }

    /// <summary>What Orleans' state bridge did with a provider's own exception: log it and wrap it in an <see cref="OrleansException"/>.</summary>
    private OrleansException StorageFailure(Exception e, string operation)
    {
        LogStorageFailed(e, StreamId, operation);
        return new OrleansException($"Error from storage provider {Storage.GetType().Name}.{CoreStateName} during {operation} for stream {StreamId}: {e.Message}", e);
    }

    private async Task FlushAsync()
    {
        if (_unsavedSteps == 0) return;
        try { await WriteAsync(); }
        catch (Exception e) { LogFlushFailed(e, StreamId); }
    }

    /// <summary>
    /// Refuses to bind a stream whose id the HTTP API could not address: the HTTP routes check ids themselves, but the
    /// client's push and replay and other Orleans callers reach this grain directly, and created streams such as a
    /// 300-character id, listed by GET /models/{name}/streams but which no /streams/{id} route (nor the listing's
    /// after cursor) took. Checked only when a stream is first bound, so existing streams keep working.
    /// </summary>
    private void CheckNewStreamId()
    {
        if (LstmOrleansNames.StreamIdProblem(StreamId) is { } problem)
            throw new ObservationRejectedException(RejectionReason.InvalidStreamId, problem);
    }

    private static string ModelNameOrDefault(string? modelName)
    {
        if (modelName is null) return LstmOrleansNames.DefaultModelName;
        if (string.IsNullOrWhiteSpace(modelName)) throw new ArgumentException("Model name must not be empty.", nameof(modelName));
        return modelName;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {StreamId} bound to model {Model}")]
    private partial void LogBound(string streamId, string model);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {StreamId} reset")]
    private partial void LogReset(string streamId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Stream {StreamId} re-warmed for model {Model} version {Version} over {Count} observations")]
    private partial void LogRewarmed(string streamId, string model, long version, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId} dropped observation {Sequence} from the Orleans stream")]
    private partial void LogStreamObservationRejected(Exception exception, string streamId, long sequence);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stream {StreamId}: storage {Operation} of the core state failed")]
    private partial void LogStorageFailed(Exception exception, string streamId, string operation);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId}: copying {Count} closed history chunk(s) from the committed core into their records failed; the core keeps them and the next write copies them again")]
    private partial void LogHistoryCopyDeferred(Exception exception, string streamId, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId} could not report its last {Count} observation(s) to the training registry while the silo stopped ({Reason}); the model's count of new observations misses them")]
    private partial void LogLastReportLost(string streamId, long count, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stream {StreamId} could not write its pending steps")]
    private partial void LogFlushFailed(Exception exception, string streamId);
}
