using System.Collections.Concurrent;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Storage;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// Test-only grain storage that outlives silos: states are serialized with the silo's Orleans serializer into a
/// process-wide dictionary, with ETag checks, so a silo restart within the test process reads back exactly the
/// bytes it wrote (exercising the state types' serializers, as a database would).
/// </summary>
public sealed class ProcessWideGrainStorage(Serializer serializer) : IGrainStorage
{
    private static readonly ConcurrentDictionary<string, (byte[] Data, string ETag)> Store = new();

    private static string Key(string stateName, GrainId grainId) => $"{stateName}/{grainId}";

    /// <summary>What is stored for a grain right now (bypassing the grain), or default when nothing is.</summary>
    public static T? Peek<T>(Serializer serializer, string stateName, GrainId grainId) =>
        Store.TryGetValue(Key(stateName, grainId), out var stored) ? serializer.Deserialize<T>(stored.Data) : default;

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (Store.TryGetValue(Key(stateName, grainId), out var stored))
        {
            grainState.State = serializer.Deserialize<T>(stored.Data);
            grainState.ETag = stored.ETag;
            grainState.RecordExists = true;
        }
        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string key = Key(stateName, grainId);
        var data = serializer.SerializeToArray(grainState.State);
        string etag = Guid.NewGuid().ToString("N");
        lock (Store)
        {
            Store.TryGetValue(key, out var current);
            if (current.ETag != grainState.ETag)
                throw new InconsistentStateException($"ETag mismatch for {key}.", current.ETag ?? "", grainState.ETag ?? "");
            Store[key] = (data, etag);
        }
        grainState.ETag = etag;
        grainState.RecordExists = true;
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        Store.TryRemove(Key(stateName, grainId), out _);
        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
        return Task.CompletedTask;
    }
}
