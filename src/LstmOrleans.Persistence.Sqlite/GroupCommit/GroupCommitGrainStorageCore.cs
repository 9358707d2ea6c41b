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
/// The store-independent half of the LstmOrleans grain storage providers: maps Orleans'
/// <see cref="IGrainStorage"/> calls onto versioned rows, serialises state with the configured
/// (binary by default) serializer, and routes writes and clears through the group-commit queue.
/// The grain's <see cref="IGrainState{T}"/> is only updated after the transaction committed, so a
/// failed commit leaves both the store and the grain's etag as they were and a retry converges.
/// </summary>
internal sealed class GroupCommitGrainStorageCore
{
    private readonly string _providerName;
    private readonly string _serviceId;
    private readonly IGrainStorageSerializer _serializer;
    private readonly IStateReader _reader;
    private readonly GroupCommitQueue _queue;

    public GroupCommitGrainStorageCore(
        string providerName,
        string serviceId,
        IGrainStorageSerializer serializer,
        IStateReader reader,
        GroupCommitQueue queue)
    {
        _providerName = providerName;
        _serviceId = serviceId;
        _serializer = serializer;
        _reader = reader;
        _queue = queue;
    }

    public GroupCommitQueue Queue => _queue;

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var stored = await _reader.ReadAsync(stateName, grainId.ToString(), CancellationToken.None).ConfigureAwait(false);
        if (stored is not { } row)
        {
            grainState.ETag = null;
            grainState.RecordExists = false;
            return;
        }

        // A tombstone keeps its version so a stale writer from before the clear still conflicts.
        grainState.ETag = EtagFormat.Format(row.Version);
        if (row.Payload is null)
        {
            grainState.RecordExists = false;
            return;
        }

        grainState.State = _serializer.Deserialize<T>(new BinaryData(row.Payload));
        grainState.RecordExists = true;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var expected = ParseEtag(nameof(WriteStateAsync), stateName, grainId, grainState.ETag);
        var serialized = _serializer.Serialize(grainState.State).ToMemory();
        // The compact serializer hands over a whole array: store it as is instead of copying it.
        var payload = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(serialized, out var segment)
            && segment.Offset == 0 && segment.Count == segment.Array!.Length ? segment.Array : serialized.ToArray();
        var operation = new StorageOperation(StorageOperationKind.Write, stateName, grainId.ToString(), expected, payload);
        var outcome = await _queue.EnqueueAsync(operation).ConfigureAwait(false);
        if (outcome.Conflict)
        {
            throw Conflict(nameof(WriteStateAsync), stateName, grainId, grainState.ETag);
        }

        grainState.ETag = EtagFormat.Format(outcome.NewVersion);
        grainState.RecordExists = true;
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var expected = ParseEtag(nameof(ClearStateAsync), stateName, grainId, grainState.ETag);
        var operation = new StorageOperation(StorageOperationKind.Clear, stateName, grainId.ToString(), expected, payload: null);
        var outcome = await _queue.EnqueueAsync(operation).ConfigureAwait(false);
        if (outcome.Conflict)
        {
            throw Conflict(nameof(ClearStateAsync), stateName, grainId, grainState.ETag);
        }

        grainState.ETag = EtagFormat.Format(outcome.NewVersion);
        grainState.RecordExists = false;
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

    private InconsistentStateException Conflict(string operation, string stateName, GrainId grainId, string? etag) =>
        new($"Version conflict ({operation}): ServiceId={_serviceId} ProviderName={_providerName} StateName={stateName} GrainId={grainId} ETag={etag ?? "<none>"}. The stored state was changed by another writer; nothing was written.",
            storedEtag: null!,
            currentEtag: etag!);
}
