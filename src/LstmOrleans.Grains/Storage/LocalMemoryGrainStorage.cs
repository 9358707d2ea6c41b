using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Grains.Storage;

/// <summary>
/// Process-local, non-durable grain storage: each state is kept as the serialized bytes its grain last wrote, in a
/// dictionary of this silo process. Unlike Orleans' memory storage there is no grain hop (a write is a serialization and
/// a compare-and-swap on the calling thread), and unlike keeping object references a grain that mutates its state
/// after a write cannot change what is stored.
///
/// ETags are per-key version numbers and behave like the durable providers': a write or clear must present the ETag of
/// the stored version (none when nothing was ever stored) or it fails with <see cref="InconsistentStateException"/>;
/// a clear leaves a tombstone that keeps the version, so a writer from before the clear still conflicts.
/// Everything is lost when the process ends; use it for tests, benchmarks and single-silo development only.
/// </summary>
public sealed partial class LocalMemoryGrainStorage : IGrainStorage
{
    private readonly string _name;
    private readonly IGrainStorageSerializer _serializer;
    private readonly ILogger<LocalMemoryGrainStorage> _logger;
    private readonly ConcurrentDictionary<(string StateName, GrainId GrainId), Entry> _entries = new();

    public LocalMemoryGrainStorage(string name, LocalMemoryGrainStorageOptions options, ILogger<LocalMemoryGrainStorage> logger)
    {
        _name = name;
        _serializer = options.GrainStorageSerializer ?? throw new ArgumentException($"{nameof(options.GrainStorageSerializer)} is required.", nameof(options));
        _logger = logger;
    }

    /// <summary>One stored version; Payload null is a tombstone. Immutable, compared by reference for compare-and-swap.</summary>
    private sealed class Entry(long version, ReadOnlyMemory<byte>? payload)
    {
        public long Version { get; } = version;
        public ReadOnlyMemory<byte>? Payload { get; } = payload;
    }

    /// <summary>Number of keys held (including tombstones).</summary>
    public int Count => _entries.Count;

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (!_entries.TryGetValue((stateName, grainId), out var entry))
        {
            grainState.ETag = null;
            grainState.RecordExists = false;
            return Task.CompletedTask;
        }
        grainState.ETag = FormatETag(entry.Version);
        if (entry.Payload is not { } payload)
        {
            grainState.RecordExists = false;
            return Task.CompletedTask;
        }
        grainState.State = _serializer.Deserialize<T>(new BinaryData(payload));
        grainState.RecordExists = true;
        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var payload = _serializer.Serialize(grainState.State).ToMemory();
        long version = Swap(nameof(WriteStateAsync), stateName, grainId, grainState.ETag, payload);
        grainState.ETag = FormatETag(version);
        grainState.RecordExists = true;
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        long version = Swap(nameof(ClearStateAsync), stateName, grainId, grainState.ETag, payload: null);
        grainState.ETag = FormatETag(version);
        grainState.RecordExists = false;
        return Task.CompletedTask;
    }

    /// <summary>Installs the next version if the stored one is the one <paramref name="etag"/> names; returns the new version.</summary>
    private long Swap(string operation, string stateName, GrainId grainId, string? etag, ReadOnlyMemory<byte>? payload)
    {
        var key = (stateName, grainId);
        long? expected = ParseETag(etag);
        while (true)
        {
            if (_entries.TryGetValue(key, out var current))
            {
                if (expected != current.Version) throw Conflict(operation, stateName, grainId, FormatETag(current.Version), etag);
                var next = new Entry(current.Version + 1, payload);
                if (_entries.TryUpdate(key, next, current)) return next.Version;
            }
            else
            {
                if (expected is not null) throw Conflict(operation, stateName, grainId, null, etag);
                var first = new Entry(1, payload);
                if (_entries.TryAdd(key, first)) return first.Version;
            }
        }
    }

    private static string FormatETag(long version) => version.ToString(CultureInfo.InvariantCulture);

    private static long? ParseETag(string? etag) =>
        etag is null ? null
        : long.TryParse(etag, NumberStyles.None, CultureInfo.InvariantCulture, out var version) ? version
        : -1;   // not one of ours: can never match

    private InconsistentStateException Conflict(string operation, string stateName, GrainId grainId, string? stored, string? presented)
    {
        LogConflict(_name, operation, stateName, grainId, stored ?? "(none)", presented ?? "(none)");
        return new InconsistentStateException(
            $"{operation} of state '{stateName}' of {grainId} in local memory storage '{_name}': ETag {presented ?? "(none)"} does not match the stored {stored ?? "(none)"}.",
            stored ?? string.Empty, presented ?? string.Empty);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Local memory storage {Provider}: {Operation} of {StateName} of {GrainId} conflicted (stored ETag {Stored}, presented {Presented})")]
    private partial void LogConflict(string provider, string operation, string stateName, GrainId grainId, string stored, string presented);
}
