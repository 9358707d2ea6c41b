using System.Collections.Concurrent;
using Orleans.Serialization;
using Orleans.Storage;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// Grain storage kept in a static dictionary of serialised bytes, so it outlives the in-process silos of a
/// TestCluster: stopping every silo and starting new ones (same ServiceId) finds the same state, like a database.
/// ETags are checked the way real providers do (a stale write throws <see cref="InconsistentStateException"/>).
/// </summary>
internal sealed class SharedGrainStorage(string serviceId, Serializer serializer) : IGrainStorage
{
    private static readonly ConcurrentDictionary<string, (byte[] Data, string ETag)> Rows = new();

    private string Key(string stateName, GrainId grainId) => KeyOf(serviceId, stateName, grainId);

    private static string KeyOf(string serviceId, string stateName, GrainId grainId) => $"{serviceId}|{stateName}|{grainId}";

    /// <summary>Reads a stored state without activating its grain (null when absent).</summary>
    public static T? Peek<T>(string serviceId, string stateName, GrainId grainId, Serializer serializer) where T : class =>
        Rows.TryGetValue(KeyOf(serviceId, stateName, grainId), out var row) ? serializer.Deserialize<T>(row.Data) : null;

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (Rows.TryGetValue(Key(stateName, grainId), out var row))
        {
            grainState.State = serializer.Deserialize<T>(row.Data);
            grainState.ETag = row.ETag;
            grainState.RecordExists = true;
        }
        else
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
        }
        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string key = Key(stateName, grainId);
        lock (Rows)
        {
            Rows.TryGetValue(key, out var existing);
            if (existing.ETag != grainState.ETag)
                throw new InconsistentStateException($"ETag mismatch for {key}", existing.ETag ?? "", grainState.ETag ?? "");
            string etag = Guid.NewGuid().ToString("N");
            Rows[key] = (serializer.SerializeToArray(grainState.State), etag);
            grainState.ETag = etag;
            grainState.RecordExists = true;
        }
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        lock (Rows) Rows.TryRemove(Key(stateName, grainId), out _);
        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
        return Task.CompletedTask;
    }
}

/// <summary>
/// Reminder table in a static dictionary, so reminders survive stopping and restarting every silo. Rows are keyed by
/// ServiceId: clusters of other services in the same test process never see (or fire) them.
/// </summary>
internal sealed class SharedReminderTable(string serviceId) : IReminderTable
{
    private static readonly ConcurrentDictionary<(string, GrainId, string), ReminderEntry> Rows = new();

    /// <summary>Reminders of <paramref name="grainId"/> currently stored for <paramref name="serviceId"/> (for assertions).</summary>
    public static ReminderEntry[] Of(string serviceId, GrainId grainId) =>
        Rows.Where(r => r.Key.Item1 == serviceId && r.Key.Item2 == grainId).Select(r => r.Value).ToArray();

    private IEnumerable<ReminderEntry> Mine => Rows.Where(r => r.Key.Item1 == serviceId).Select(r => r.Value);

    public Task Init() => Task.CompletedTask;

    public Task<ReminderTableData> ReadRows(GrainId grainId) =>
        Task.FromResult(new ReminderTableData(Mine.Where(r => r.GrainId == grainId).Select(Copy)));

    public Task<ReminderTableData> ReadRows(uint begin, uint end)
    {
        bool InRange(uint hash) => begin < end ? hash > begin && hash <= end : hash > begin || hash <= end;
        return Task.FromResult(new ReminderTableData(Mine.Where(r => InRange(r.GrainId.GetUniformHashCode())).Select(Copy)));
    }

    public Task<ReminderEntry?> ReadRow(GrainId grainId, string reminderName) =>
        Task.FromResult(Rows.TryGetValue((serviceId, grainId, reminderName), out var row) ? Copy(row) : null);

    public Task<string?> UpsertRow(ReminderEntry entry)
    {
        var stored = Copy(entry);
        stored.ETag = Guid.NewGuid().ToString("N");
        Rows[(serviceId, entry.GrainId, entry.ReminderName)] = stored;
        return Task.FromResult<string?>(stored.ETag);
    }

    public Task<bool> RemoveRow(GrainId grainId, string reminderName, string eTag)
    {
        lock (Rows)
        {
            var key = (serviceId, grainId, reminderName);
            if (!Rows.TryGetValue(key, out var row) || row.ETag != eTag) return Task.FromResult(false);
            return Task.FromResult(Rows.TryRemove(key, out _));
        }
    }

    public Task TestOnlyClearTable()
    {
        foreach (var key in Rows.Keys.Where(k => k.Item1 == serviceId).ToArray()) Rows.TryRemove(key, out _);
        return Task.CompletedTask;
    }

    private static ReminderEntry Copy(ReminderEntry r) => new()
    {
        GrainId = r.GrainId,
        ReminderName = r.ReminderName,
        StartAt = r.StartAt,
        Period = r.Period,
        ETag = r.ETag,
    };
}
