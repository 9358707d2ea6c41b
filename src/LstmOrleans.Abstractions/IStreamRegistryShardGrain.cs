using Orleans.Concurrency;

namespace LstmOrleans.Abstractions;

/// <summary>
/// One shard of a model's stream registry (key "{model}/{shard}", see <see cref="StreamRegistryKeys"/>). Streams
/// report to the shard their id hashes to, so registration and counting load spreads over a fixed number of grains
/// however many streams a model has. Holds the stream ids and a cumulative count of reported observations.
/// </summary>
[Alias("lstm.IStreamRegistryShardGrain")]
public interface IStreamRegistryShardGrain : IGrainWithStringKey
{
    /// <summary>Registers <paramref name="streamId"/> (if new) and adds <paramref name="newObservations"/> to the counter. One-way.</summary>
    [OneWay, Alias("Report")]
    Task ReportAsync(string streamId, long newObservations);

    [AlwaysInterleave, Alias("GetStats")]
    Task<StreamRegistryShardStats> GetStatsAsync();

    /// <summary>Up to <paramref name="count"/> distinct registered streams drawn uniformly at random.</summary>
    [Alias("Sample")]
    Task<string[]> SampleAsync(int count);

    /// <summary>Forgets streams (e.g. ones that rebound to another model).</summary>
    [Alias("Remove")]
    Task RemoveAsync(string[] streamIds);
}

/// <summary>Size and observation counter of one registry shard.</summary>
[GenerateSerializer, Immutable, Alias("lstm.StreamRegistryShardStats")]
public sealed record StreamRegistryShardStats(
    [property: Id(0)] int Streams,
    [property: Id(1)] long ObservationTotal);

/// <summary>How stream ids map to registry shards. The hash is stable across processes (FNV-1a over UTF-16 code units).</summary>
public static class StreamRegistryKeys
{
    public static int ShardOf(string streamId, int shardCount)
    {
        ArgumentNullException.ThrowIfNull(streamId);
        ArgumentOutOfRangeException.ThrowIfLessThan(shardCount, 1);
        uint hash = 2166136261;
        foreach (char ch in streamId)
        {
            hash = (hash ^ (byte)ch) * 16777619;
            hash = (hash ^ (byte)(ch >> 8)) * 16777619;
        }
        return (int)(hash % (uint)shardCount);
    }

    public static string ShardKey(string modelName, int shard) => $"{modelName}/{shard}";

    /// <summary>Splits a shard key into model name and shard number (model names may contain '/').</summary>
    public static (string ModelName, int Shard) ParseShardKey(string key)
    {
        int slash = key.LastIndexOf('/');
        if (slash <= 0 || !int.TryParse(key.AsSpan(slash + 1), out int shard) || shard < 0)
            throw new ArgumentException($"'{key}' is not a registry shard key of the form '{{model}}/{{shard}}'.", nameof(key));
        return (key[..slash], shard);
    }
}
