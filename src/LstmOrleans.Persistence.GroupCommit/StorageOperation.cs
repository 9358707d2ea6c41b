namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>What one queued storage call asks the single writer to do.</summary>
internal enum StorageOperationKind
{
    /// <summary>Insert or replace the state blob, guarded by the expected version.</summary>
    Write,

    /// <summary>Turn the row into a tombstone (no data, bumped version), guarded by the expected version.</summary>
    Clear,

    /// <summary>
    /// Insert or replace the state blob whatever is stored (bumping the version): only as a companion of a guarded
    /// write, applied when that write applied (see <see cref="StorageOperation.Companions"/>).
    /// </summary>
    Upsert,
}

/// <summary>
/// One grain's write or clear waiting for the group-commit writer. The committer records the outcome
/// while the transaction is open; the caller only sees it after the transaction committed, so an
/// acknowledged write is a durable write.
/// </summary>
internal class StorageOperation
{
    // Continuations run synchronously on whichever thread completes the task: the writer never does
    // (GroupCommitQueue hands a committed batch to ONE thread-pool work item that completes all of it),
    // so a batch costs one hand-off instead of one per operation. A grain's own continuation is still
    // posted to its activation's scheduler by Orleans, so no grain turn runs on that work item.
    private readonly TaskCompletionSource<CommitOutcome> _completion = new();

    private byte[]? _payload;
    private int _payloadLength;
    private bool _pooled;

    /// <param name="payload">Serialised state for writes (its first <paramref name="payloadLength"/> bytes); null for clears.</param>
    /// <param name="payloadLength">Bytes of <paramref name="payload"/> in use; -1 for all of it.</param>
    /// <param name="pooled">The payload was rented from <see cref="PayloadPool"/>: <see cref="ReleasePayload"/> returns it.</param>
    public StorageOperation(StorageOperationKind kind, string stateName, string grainId, long? expectedVersion, byte[]? payload,
        int payloadLength = -1, bool pooled = false)
    {
        Kind = kind;
        StateName = stateName;
        GrainId = grainId;
        ExpectedVersion = expectedVersion;
        _payload = payload;
        _payloadLength = payload is null ? 0 : payloadLength < 0 ? payload.Length : payloadLength;
        _pooled = pooled && payload is not null;
    }

    public StorageOperationKind Kind { get; }

    /// <summary>
    /// Upserts applied in the same transaction right after this (guarded) write, only when it applied, so they commit
    /// or vanish with it; their outcomes are not reported. Null for a plain operation.
    /// </summary>
    public IReadOnlyList<StorageOperation>? Companions { get; init; }

    /// <summary>The state name Orleans passes as "grainType" (the [PersistentState] name).</summary>
    public string StateName { get; }

    public string GrainId { get; }

    /// <summary>The version the caller last saw; null means "no row may exist yet".</summary>
    public long? ExpectedVersion { get; }

    /// <summary>True for a write (a payload, possibly empty); false for a clear.</summary>
    public bool HasPayload => _payload is not null;

    /// <summary>
    /// The serialised state of a write (empty for a clear). Valid only until <see cref="ReleasePayload"/>: the
    /// committer reads it inside the batch's transaction and the stores copy it there (SQLite binds it as a transient
    /// blob, Npgsql writes it to the wire before the batch completes).
    /// </summary>
    public ReadOnlyMemory<byte> Payload => _payload is null ? ReadOnlyMemory<byte>.Empty : new ReadOnlyMemory<byte>(_payload, 0, _payloadLength);

    /// <summary>
    /// Called once the batch holding this operation has committed or failed (the writer is done with the bytes):
    /// returns a pooled payload, so the array is reused by a later write instead of surviving as garbage. Idempotent.
    /// </summary>
    public void ReleasePayload()
    {
        if (Companions is { } companions)
        {
            foreach (var companion in companions) companion.ReleasePayload();
        }

        var payload = _payload;
        if (payload is null) return;
        _payload = null;
        _payloadLength = 0;
        if (_pooled)
        {
            _pooled = false;
            PayloadPool.Pool.Return(payload);
        }
    }

    /// <summary><see cref="System.Diagnostics.Stopwatch"/> timestamp of queueing, for the queue-wait metric.</summary>
    public long EnqueuedAt { get; set; }

    /// <summary>Outcome decided inside the open transaction; published only after commit.</summary>
    public CommitOutcome PendingOutcome { get; set; }

    public Task<CommitOutcome> Completion => _completion.Task;

    public void Publish()
    {
        Exception? failure;
        try
        {
            failure = OnCommitted(PendingOutcome);
        }
        catch (Exception e)
        {
            // Never let one operation's bookkeeping stop the completion of the rest of its batch (one work item completes them all).
            failure = e;
        }

        if (failure is not null) _completion.TrySetException(failure);
        else _completion.TrySetResult(PendingOutcome);
    }

    /// <summary>
    /// Runs once the batch holding this operation committed, before the caller's task completes: null to complete it
    /// with the outcome, or the exception to fail it with.
    /// </summary>
    protected virtual Exception? OnCommitted(CommitOutcome outcome) => null;

    public void Fail(Exception exception) => _completion.TrySetException(exception);
}

/// <summary>Result of one operation in a committed batch.</summary>
/// <param name="Conflict">True when the stored version did not match the expected one; nothing was changed.</param>
/// <param name="NewVersion">The row's version after the operation (null when a clear found nothing to clear).</param>
internal readonly record struct CommitOutcome(bool Conflict, long? NewVersion)
{
    public static CommitOutcome Conflicted => new(true, null);

    public static CommitOutcome Applied(long? newVersion) => new(false, newVersion);
}

/// <summary>
/// A grain's guarded write whose outcome is applied to the grain's <see cref="Orleans.IGrainState{T}"/> by the completing
/// thread itself, before the caller resumes: the new ETag on success, the conflict as the task's exception. So the
/// provider returns <see cref="StorageOperation.Completion"/> to the grain as it is, without an async frame of its own
/// that would only wait for it and copy the ETag (a state-machine box and a completion per durable write).
/// </summary>
internal sealed class GrainWriteOperation<T>(
    string stateName, Orleans.Runtime.GrainId grainId, string grainKey, long? expectedVersion, byte[] payload, int payloadLength, bool pooled,
    Orleans.IGrainState<T> grainState, GroupCommitGrainStorage storage, string callerName)
    : StorageOperation(StorageOperationKind.Write, stateName, grainKey, expectedVersion, payload, payloadLength, pooled)
{
    protected override Exception? OnCommitted(CommitOutcome outcome)
    {
        if (outcome.Conflict) return storage.Conflict(callerName, StateName, grainId, grainState.ETag);
        grainState.ETag = EtagFormat.Format(outcome.NewVersion);
        grainState.RecordExists = true;
        return null;
    }
}
