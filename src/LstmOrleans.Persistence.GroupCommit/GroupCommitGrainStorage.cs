using Microsoft.Extensions.Logging;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>A stored row: its version and payload; a null payload is a tombstone left by a clear.</summary>
internal readonly record struct StoredState(long Version, byte[]? Payload);

/// <summary>Reads one row outside the writer (WAL / MVCC lets readers run beside the single writer).</summary>
internal interface IStateReader
{
    Task<StoredState?> ReadAsync(string stateName, string grainId, CancellationToken cancellationToken);
}

/// <summary>
/// What differs between the providers: the SQL dialect and the connection. Everything else (etags,
/// serialization, the group-commit queue, lifecycle, metrics and logs) is <see cref="GroupCommitGrainStorage"/>.
/// </summary>
internal interface IGroupCommitStore : IStateReader, IBatchCommitter
{
    /// <summary>"sqlite" / "postgres": the metric tag.</summary>
    string Kind { get; }

    /// <summary>"SQLite" / "PostgreSQL": for logs.</summary>
    string DisplayName { get; }

    /// <summary>True when <see cref="IBatchCommitter.CommitAsync"/> blocks its thread (then the writer gets its own).</summary>
    bool CommitBlocksThread { get; }

    /// <summary>A line for the start-up log: where the data lives and how durable a commit is.</summary>
    string Describe();

    /// <summary>Creates the table if missing and prepares the writer.</summary>
    Task OpenAsync(CancellationToken cancellationToken);

    /// <summary>Releases the writer's connection; called after the queue has drained.</summary>
    ValueTask CloseAsync();

    /// <summary>
    /// Null when the store can hold <paramref name="key"/> (a state name or grain id), else why not. Checked before a
    /// call is queued: inside a batch such a key fails the whole transaction, and with it every other grain's write.
    /// </summary>
    string? RejectKey(string key) => null;
}

/// <summary>The options every group-commit provider has (each options class adds its connection settings).</summary>
internal interface IGroupCommitStorageOptions : IStorageProviderSerializerOptions
{
    string TableName { get; }

    int MaxBatchSize { get; }

    TimeSpan MaxBatchDelay { get; }

    int InitStage { get; }

    Func<int, ValueTask>? OnBeforeCommit { get; }
}

/// <summary>
/// The store-independent part of the LstmOrleans grain storage providers: maps Orleans'
/// <see cref="IGrainStorage"/> calls onto versioned rows, serialises state with the configured
/// (binary by default) serializer, routes writes and clears through the group-commit queue, and
/// opens / drains / closes the store with the silo. The grain's <see cref="IGrainState{T}"/> is only
/// updated after the transaction committed, so a failed commit leaves both the store and the grain's
/// etag as they were and a retry converges.
/// </summary>
internal sealed class GroupCommitGrainStorage
{
    private readonly string _providerName;
    private readonly string _serviceId;
    private readonly IGroupCommitStorageOptions _options;
    private readonly IGroupCommitStore _store;
    private readonly ILogger _logger;
    private readonly GroupCommitQueue _queue;
    private bool _initialized;

    public GroupCommitGrainStorage(string providerName, string serviceId, IGroupCommitStorageOptions options, IGroupCommitStore store, ILogger logger)
    {
        _providerName = providerName;
        _serviceId = serviceId;
        _options = options;
        _store = store;
        _logger = logger;
        _queue = new GroupCommitQueue(store, providerName, store.Kind, store.DisplayName, options.MaxBatchSize, options.MaxBatchDelay,
            dedicatedThread: store.CommitBlocksThread, logger);
    }

    public long CommittedBatches => _queue.CommittedBatches;

    public long CommittedOperations => _queue.CommittedOperations;

    public long FailedBatches => _queue.FailedBatches;

    public long RetriedBatches => _queue.RetriedBatches;

    public int LargestBatch => _queue.LargestBatch;

    /// <summary>Opens the store at <see cref="IGroupCommitStorageOptions.InitStage"/> and drains it on the way down.</summary>
    public void Participate(ISiloLifecycle lifecycle, string observerName) =>
        lifecycle.Subscribe(observerName, _options.InitStage, InitializeAsync, CloseAsync);

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        if (_initialized)
        {
            return;
        }

        await _store.OpenAsync(cancellationToken).ConfigureAwait(false);
        _queue.Start();
        _initialized = true;
        GroupCommitLog.Initialized(_logger, _store.DisplayName, _providerName, _serviceId, _store.Describe(), _options.MaxBatchSize);
    }

    /// <summary>Commits what is queued, stops the writer and closes its connection.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken)
    {
        if (!_initialized)
        {
            return;
        }

        _initialized = false;
        await _queue.StopAsync().ConfigureAwait(false);
        await _store.CloseAsync().ConfigureAwait(false);
        GroupCommitLog.Closed(_logger, _store.DisplayName, _providerName, _queue.CommittedBatches, _queue.CommittedOperations, _queue.LargestBatch);
    }

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var key = grainId.ToString();
        CheckKey(nameof(ReadStateAsync), stateName, grainId, key);
        var stored = await _store.ReadAsync(stateName, key, CancellationToken.None).ConfigureAwait(false);
        if (stored is not { } row)
        {
            grainState.ETag = null;
            grainState.RecordExists = false;
            return;
        }

        // A tombstone keeps its version so a stale writer from before the clear still conflicts.
        if (row.Payload is null)
        {
            grainState.ETag = EtagFormat.Format(row.Version);
            grainState.RecordExists = false;
            return;
        }

        T? state;
        try
        {
            state = _options.GrainStorageSerializer.Deserialize<T>(new BinaryData(row.Payload));
        }
        catch (Exception e)
        {
            // A corrupt, truncated or foreign record: the serializer's own error names neither the grain nor the row.
            // The grain state is left as it was (no etag of the unreadable row), so the caller cannot go on to
            // overwrite the record unknowingly.
            GroupCommitLog.ReadFailed(_logger, e, _store.DisplayName, _providerName, stateName, grainId, row.Version);
            throw new OrleansException(
                $"Unreadable stored state (ReadStateAsync): ServiceId={_serviceId} ProviderName={_providerName} StateName={stateName} GrainId={grainId} ETag={row.Version}. The record ({row.Payload.Length} bytes) could not be read as {typeof(T).Name} and was left as it is. {e.GetType().Name}: {e.Message}",
                e);
        }

        grainState.State = state;
        grainState.ETag = EtagFormat.Format(row.Version);
        grainState.RecordExists = true;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        WriteAsync(nameof(WriteStateAsync), stateName, grainId, grainState, companions: null);

    /// <summary>
    /// <see cref="ICompanionWriteGrainStorage.WriteStateWithCompanionsAsync"/>: one queued operation, the guarded write,
    /// carrying the companions' upserts, which the committer applies in the same transaction only when the write applied.
    /// </summary>
    public Task WriteStateWithCompanionsAsync<T, TCompanion>(string stateName, GrainId grainId, IGrainState<T> grainState,
        IReadOnlyList<KeyValuePair<string, TCompanion>> companions)
    {
        try
        {
            CompanionWrites.EnsureDistinct(stateName, grainId, companions);
        }
        catch (Exception e)
        {
            return Task.FromException(e);
        }

        string key = grainId.ToString();
        try
        {
            foreach (var (companionName, _) in companions) CheckKey(nameof(WriteStateWithCompanionsAsync), companionName, grainId, key);
        }
        catch (Exception e)
        {
            return Task.FromException(e);
        }

        var upserts = new StorageOperation[companions.Count];
        try
        {
            for (int i = 0; i < upserts.Length; i++)
            {
                var (companionName, companionState) = companions[i];
                var (companionBuffer, companionLength, companionPooled) = Serialize(companionState);
                upserts[i] = new StorageOperation(StorageOperationKind.Upsert, companionName, key, expectedVersion: null, companionBuffer, companionLength, companionPooled);
            }
        }
        catch (Exception e)
        {
            foreach (var upsert in upserts) upsert?.ReleasePayload();
            return Task.FromException(e);
        }

        return WriteAsync(nameof(WriteStateWithCompanionsAsync), stateName, grainId, grainState, upserts, key);
    }

    /// <summary>
    /// Queues a guarded write (with its companions' upserts, if any) and returns the task of the operation itself: the
    /// completing thread advances the grain's ETag, or fails the task with the conflict, before the grain resumes
    /// (<see cref="GrainWriteOperation{T}"/>). Not async: a frame here would be one more state-machine box and
    /// completion per durable write. Every failure before queueing surfaces through the returned task.
    /// </summary>
    private Task WriteAsync<T>(string callerName, string stateName, GrainId grainId, IGrainState<T> grainState, StorageOperation[]? companions, string? key = null)
    {
        StorageOperation? operation = null;
        try
        {
            key ??= grainId.ToString();
            CheckKey(callerName, stateName, grainId, key);
            var expected = ParseEtag(callerName, stateName, grainId, grainState.ETag);
            // The payload waits in the queue until its batch has committed (ms, longer under load): held in a fresh array
            // it would live just long enough to be promoted out of gen0 on every acknowledged write. So it is kept in an
            // array of the providers' payload pool, which the writer returns once the batch has committed or failed.
            var (buffer, length, pooled) = Serialize(grainState.State);
            operation = new GrainWriteOperation<T>(stateName, grainId, key, expected, buffer, length, pooled, grainState, this, callerName)
            {
                Companions = companions,
            };
            return _queue.EnqueueAsync(operation);
        }
        catch (Exception e)
        {
            // Never queued: nobody else will release the payloads (the operation's, or only the companions' when the
            // failure came before the operation existed).
            if (operation is not null) operation.ReleasePayload();
            else if (companions is not null) foreach (var companion in companions) companion.ReleasePayload();
            return Task.FromException(e);
        }
    }

    private (byte[] Buffer, int Length, bool Pooled) Serialize<T>(T state)
    {
        var serializer = _options.GrainStorageSerializer;
        return serializer is IBufferGrainStorageSerializer buffered
            ? SerializePooled(buffered, state)
            : CopyToPool(serializer.Serialize(state).ToMemory().Span);
    }

    // A serializer with a buffer path (the default compact one, the silo's stream-record codec decorator) writes
    // straight into the pooled array.
    private static (byte[] Buffer, int Length, bool Pooled) SerializePooled<T>(IBufferGrainStorageSerializer serializer, T state)
    {
        using var writer = new PooledPayloadWriter();
        serializer.Serialize(state, writer);
        var (buffer, length) = writer.Detach();
        return (buffer, length, true);
    }

    // A serializer without a buffer path (Orleans' own, for example) hands over its own array, which dies here.
    private static (byte[] Buffer, int Length, bool Pooled) CopyToPool(ReadOnlySpan<byte> serialized)
    {
        if (serialized.IsEmpty)
        {
            return ([], 0, false);
        }

        var buffer = PayloadPool.Pool.Rent(serialized.Length);
        serialized.CopyTo(buffer);
        return (buffer, serialized.Length, true);
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var key = grainId.ToString();
        CheckKey(nameof(ClearStateAsync), stateName, grainId, key);
        var expected = ParseEtag(nameof(ClearStateAsync), stateName, grainId, grainState.ETag);
        var operation = new StorageOperation(StorageOperationKind.Clear, stateName, key, expected, payload: null);
        var outcome = await _queue.EnqueueAsync(operation).ConfigureAwait(false);
        if (outcome.Conflict)
        {
            throw Conflict(nameof(ClearStateAsync), stateName, grainId, grainState.ETag);
        }

        grainState.ETag = EtagFormat.Format(outcome.NewVersion);
        grainState.RecordExists = false;
    }

    private void CheckKey(string operation, string stateName, GrainId grainId, string key)
    {
        if ((_store.RejectKey(stateName) ?? _store.RejectKey(key)) is { } reason)
        {
            throw new ArgumentException(
                $"Unstorable key ({operation}): ServiceId={_serviceId} ProviderName={_providerName} StateName={stateName} GrainId={grainId}. {reason}; nothing was read or written.");
        }
    }

    private long? ParseEtag(string operation, string stateName, GrainId grainId, string? etag)
    {
        if (!EtagFormat.TryParse(etag, out var version))
        {
            throw new InconsistentStateException(
                $"Malformed etag ({operation}): ServiceId={_serviceId} ProviderName={_providerName} StateName={stateName} GrainId={grainId} ETag={etag}. Expected a positive version number written by this provider.",
                storedEtag: null!,
                currentEtag: etag!);
        }

        return version;
    }

    internal InconsistentStateException Conflict(string operation, string stateName, GrainId grainId, string? etag) =>
        new($"Version conflict ({operation}): ServiceId={_serviceId} ProviderName={_providerName} StateName={stateName} GrainId={grainId} ETag={etag ?? "<none>"}. The stored state was changed by another writer; nothing was written.",
            storedEtag: null!,
            currentEtag: etag!);
}
