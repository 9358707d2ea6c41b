using System.Buffers;
using System.Collections.Concurrent;
using LstmOrleans.Persistence.GroupCommit;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Grains.Storage;

/// <summary>
/// Process-local, non-durable grain storage: each state is kept as the serialized bytes its grain last wrote, in a
/// dictionary of this silo process. Unlike Orleans' memory storage there is no grain hop (a write is a serialization and
/// a copy under a per-key lock on the calling thread, completing synchronously), and unlike keeping object references a
/// grain that mutates its state after a write cannot change what is stored.
///
/// Every key owns one byte buffer that later writes overwrite in place (re-allocated only when a state outgrows it), and
/// the state is serialized into a per-thread scratch buffer first, so a steady stream of writes allocates nothing and
/// no short-lived copy survives into an older GC generation; a serializer failure leaves the stored bytes untouched.
/// With a serializer that can write into a buffer (<see cref="StreamStateCodecSerializer"/>, the default
/// <see cref="CompactOrleansGrainStorageSerializer"/>) the bytes go straight into the scratch buffer; any other
/// configured serializer is used as given (one array per write).
///
/// ETags are per-key version numbers and behave like the durable providers': a write or clear must present the ETag of
/// the stored version (none when nothing was ever stored) or it fails with <see cref="InconsistentStateException"/>;
/// a clear leaves a tombstone that keeps the version, so a writer from before the clear still conflicts. They are written
/// by <see cref="EtagFormat"/> as the durable providers' are: a grain keeps its ETag until the next write, so the strings
/// of versions below 65,536 are shared instances rather than one more object per write that lives long enough to leave gen0.
/// Everything is lost when the process ends; use it for tests, benchmarks and single-silo development only.
/// </summary>
public sealed partial class LocalMemoryGrainStorage : IGrainStorage, ICompanionWriteGrainStorage
{
    private readonly string _name;
    private readonly IGrainStorageSerializer _serializer;
    private readonly IBufferGrainStorageSerializer? _buffered;    // set when _serializer can write into a buffer: no per-write array
    private readonly ILogger<LocalMemoryGrainStorage> _logger;
    private readonly ConcurrentDictionary<(string StateName, GrainId GrainId), Slot> _slots = new();

    [ThreadStatic] private static ArrayBufferWriter<byte>? t_scratch;

    public LocalMemoryGrainStorage(string name, LocalMemoryGrainStorageOptions options, ILogger<LocalMemoryGrainStorage> logger)
    {
        _name = name;
        _serializer = options.GrainStorageSerializer ?? throw new ArgumentException($"{nameof(options.GrainStorageSerializer)} is required.", nameof(options));
        _buffered = _serializer as IBufferGrainStorageSerializer;
        _logger = logger;
    }

    /// <summary>
    /// One key: the stored version's bytes (Buffer[..Length]) and its version; Version 0 means never stored, Exists
    /// false with a positive version is a tombstone. Guarded by its own monitor (the object header sits in the same cache
    /// line as the fields, where a separate lock object would be one more load that misses); buffers are only ever read
    /// or overwritten under it. Slots are never removed, so one handed to a <see cref="ILocalMemorySlotCache"/> stays
    /// the key's slot for the life of the store.
    /// </summary>
    private sealed class Slot(LocalMemoryGrainStorage owner, string stateName, GrainId grainId)
    {
        public readonly LocalMemoryGrainStorage Owner = owner;
        public readonly string StateName = stateName;
        public readonly GrainId GrainId = grainId;
        public long Version;
        public bool Exists;
        public byte[] Buffer = [];
        public int Length;
    }

    /// <summary>Number of keys held (including tombstones).</summary>
    public int Count
    {
        get
        {
            int count = 0;
            foreach (var (_, slot) in _slots)
                lock (slot)
                    if (slot.Version > 0) count++;
            return count;
        }
    }

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var slot = CachedSlot(grainState, stateName, grainId);
        if (slot is null && _slots.TryGetValue((stateName, grainId), out slot)) Remember(grainState, slot);
        if (slot is null)
        {
            grainState.ETag = null;
            grainState.RecordExists = false;
            return Task.CompletedTask;
        }
        lock (slot)
        {
            if (slot.Exists)
            {
                var bytes = new ReadOnlyMemory<byte>(slot.Buffer, 0, slot.Length);
                try { grainState.State = _buffered is { } buffered ? buffered.Deserialize<T>(bytes) : _serializer.Deserialize<T>(new BinaryData(bytes)); }
                catch (Exception e) { return Task.FromException(Unreadable(stateName, grainId, slot.Version, slot.Length, typeof(T), e)); }
            }
            // Only after the state was read: a caller never holds the ETag of bytes it could not read.
            grainState.ETag = slot.Version == 0 ? null : EtagFormat.Format(slot.Version);
            grainState.RecordExists = slot.Exists;
        }
        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ReadOnlySpan<byte> payload;
        if (_buffered is { } buffered)
        {
            var scratch = t_scratch ??= new ArrayBufferWriter<byte>(4096);
            scratch.ResetWrittenCount();
            buffered.Serialize(grainState.State, scratch);
            payload = scratch.WrittenSpan;
        }
        else payload = _serializer.Serialize(grainState.State).ToMemory().Span;

        long version = Store(nameof(WriteStateAsync), stateName, grainId, grainState, payload, exists: true);
        grainState.ETag = EtagFormat.Format(version);
        grainState.RecordExists = true;
        return Task.CompletedTask;
    }

    /// <summary>
    /// The main write and, only if it applies, every companion, all under the main key's lock: the check and the
    /// companions' installation happen while no other writer of the main key can run, so companions are only ever
    /// written by a caller whose ETag matched (each under its own lock, so a concurrent reader of a companion sees its
    /// old or its new bytes). Everything is serialized first, so a serializer failure changes nothing.
    /// </summary>
    public Task WriteStateWithCompanionsAsync<T, TCompanion>(string stateName, GrainId grainId, IGrainState<T> grainState,
        IReadOnlyList<KeyValuePair<string, TCompanion>> companions)
    {
        CompanionWrites.EnsureDistinct(stateName, grainId, companions);
        // The per-thread scratch buffer, as a plain write uses (this method too completes on the calling thread without
        // calling out, so nothing else can use the buffer meanwhile), and the record ends on the stack: every chunk close
        // of a stream wrote through a new 4 KB buffer writer, an array of ends and a closure over them.
        var scratch = t_scratch ??= new ArrayBufferWriter<byte>(4096);
        scratch.ResetWrittenCount();
        int count = companions.Count;
        int[]? rentedEnds = null;
        Span<int> ends = count < 64 ? stackalloc int[count + 1] : (rentedEnds = ArrayPool<int>.Shared.Rent(count + 1)).AsSpan(0, count + 1);
        try
        {
            SerializeInto(scratch, grainState.State);
            ends[0] = scratch.WrittenCount;
            for (int i = 0; i < count; i++)
            {
                SerializeInto(scratch, companions[i].Value);
                ends[i + 1] = scratch.WrittenCount;
            }
            var bytes = scratch.WrittenSpan;
            var (slot, expected) = SlotToWrite(nameof(WriteStateWithCompanionsAsync), stateName, grainId, grainState);
            long version;
            lock (slot)
            {
                if (slot.Version != expected) throw Conflict(nameof(WriteStateWithCompanionsAsync), stateName, grainId, StoredETag(slot), grainState.ETag);
                for (int i = 0; i < count; i++)
                {
                    var companion = _slots.GetOrAdd((companions[i].Key, grainId), NewSlot, this);
                    lock (companion) Install(companion, bytes[ends[i]..ends[i + 1]], exists: true);
                }
                version = Install(slot, bytes[..ends[0]], exists: true);
            }
            grainState.ETag = EtagFormat.Format(version);
            grainState.RecordExists = true;
            return Task.CompletedTask;
        }
        finally
        {
            if (rentedEnds is not null) ArrayPool<int>.Shared.Return(rentedEnds);
        }
    }

    private void SerializeInto<TState>(ArrayBufferWriter<byte> writer, TState state)
    {
        if (_buffered is { } buffered) buffered.Serialize(state, writer);
        else writer.Write(_serializer.Serialize(state).ToMemory().Span);
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        long version = Store(nameof(ClearStateAsync), stateName, grainId, grainState, [], exists: false);
        grainState.ETag = EtagFormat.Format(version);
        grainState.RecordExists = false;
        return Task.CompletedTask;
    }

    /// <summary>Installs the next version if the stored one is the one <paramref name="grainState"/>'s ETag names; returns the new version.</summary>
    private long Store<T>(string operation, string stateName, GrainId grainId, IGrainState<T> grainState, ReadOnlySpan<byte> payload, bool exists)
    {
        var (slot, expected) = SlotToWrite(operation, stateName, grainId, grainState);
        lock (slot)
        {
            if (slot.Version != expected) throw Conflict(operation, stateName, grainId, StoredETag(slot), grainState.ETag);
            return Install(slot, payload, exists);
        }
    }

    /// <summary>
    /// The slot a write of <paramref name="grainState"/> goes to and the version its ETag names (0: none), to be checked
    /// under the slot's lock; throws the conflict when the ETag is not one of ours, or names a version of a key never stored.
    /// </summary>
    private (Slot Slot, long Expected) SlotToWrite<T>(string operation, string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string? etag = grainState.ETag;
        long expected = ParseETag(etag);
        if (expected < 0) throw Conflict(operation, stateName, grainId, _slots.TryGetValue((stateName, grainId), out var s) ? CurrentETag(s) : null, etag);
        var slot = CachedSlot(grainState, stateName, grainId);
        if (slot is null)
        {
            slot = expected == 0 ? _slots.GetOrAdd((stateName, grainId), NewSlot, this) : _slots.GetValueOrDefault((stateName, grainId));
            if (slot is null) throw Conflict(operation, stateName, grainId, null, etag);
            Remember(grainState, slot);
        }
        return (slot, expected);
    }

    /// <summary>The ETag of <paramref name="slot"/>'s stored version, or null when it was never stored (its lock held).</summary>
    private static string? StoredETag(Slot slot) => slot.Version == 0 ? null : EtagFormat.Format(slot.Version);

    /// <summary>Stores the next version of <paramref name="slot"/> (its lock held); returns that version.</summary>
    private static long Install(Slot slot, ReadOnlySpan<byte> payload, bool exists)
    {
        if (exists)
        {
            // Exact size on the first write (stream cores keep a nearly constant size); a quarter more when a state
            // outgrows its buffer.
            if (slot.Buffer.Length < payload.Length)
                slot.Buffer = new byte[slot.Version == 0 ? payload.Length : payload.Length + payload.Length / 4];
            payload.CopyTo(slot.Buffer);
            slot.Length = payload.Length;
        }
        else
        {
            slot.Buffer = [];
            slot.Length = 0;
        }
        slot.Exists = exists;
        return ++slot.Version;
    }

    private static readonly Func<(string StateName, GrainId GrainId), LocalMemoryGrainStorage, Slot> NewSlot =
        static (key, owner) => new Slot(owner, key.StateName, key.GrainId);

    /// <summary>
    /// The slot a <see cref="ILocalMemorySlotCache"/> state object holds, when it is this store's slot of exactly this
    /// key (a state object passed for another key or to another store is looked up as usual); otherwise null.
    /// </summary>
    private Slot? CachedSlot(object grainState, string stateName, GrainId grainId) =>
        grainState is ILocalMemorySlotCache { LocalMemorySlot: Slot slot }
        && ReferenceEquals(slot.Owner, this) && slot.StateName == stateName && slot.GrainId.Equals(grainId)
            ? slot
            : null;

    private static void Remember(object grainState, Slot slot)
    {
        if (grainState is ILocalMemorySlotCache cache) cache.LocalMemorySlot = slot;
    }

    private static string? CurrentETag(Slot slot)
    {
        lock (slot) return slot.Version == 0 ? null : EtagFormat.Format(slot.Version);
    }

    /// <summary>0 for no ETag (nothing stored), the version for one of ours, -1 for anything else (can never match).</summary>
    private static long ParseETag(string? etag) => EtagFormat.TryParse(etag, out var version) ? version ?? 0 : -1;

    private InconsistentStateException Conflict(string operation, string stateName, GrainId grainId, string? stored, string? presented)
    {
        LogConflict(_name, operation, stateName, grainId, stored ?? "(none)", presented ?? "(none)");
        return new InconsistentStateException(
            $"{operation} of state '{stateName}' of {grainId} in local memory storage '{_name}': ETag {presented ?? "(none)"} does not match the stored {stored ?? "(none)"}.",
            stored ?? string.Empty, presented ?? string.Empty);
    }

    /// <summary>The serializer's own error names neither the grain nor the record; this one does (the bytes stay as they are).</summary>
    private OrleansException Unreadable(string stateName, GrainId grainId, long version, int length, Type type, Exception e)
    {
        LogReadFailed(e, _name, stateName, grainId, version);
        return new OrleansException(
            $"Unreadable stored state (ReadStateAsync) of state '{stateName}' of {grainId} in local memory storage '{_name}': the record of ETag {version} ({length} bytes) could not be read as {type.Name} and was left as it is. {e.GetType().Name}: {e.Message}",
            e);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Local memory storage {Provider} could not read the stored {StateName} of {GrainId} (ETag {Version}); the record was left as it is")]
    private partial void LogReadFailed(Exception exception, string provider, string stateName, GrainId grainId, long version);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Local memory storage {Provider}: {Operation} of {StateName} of {GrainId} conflicted (stored ETag {Stored}, presented {Presented})")]
    private partial void LogConflict(string provider, string operation, string stateName, GrainId grainId, string stored, string presented);
}
