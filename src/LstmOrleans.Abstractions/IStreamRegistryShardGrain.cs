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

    /// <summary>
    /// <see cref="ReportAsync"/> that completes once the report is applied: what a stream sends when it deactivates at
    /// a silo's shutdown, so the silo waits for its streams' last reports before it deactivates the shards (which
    /// store them). Throws <see cref="ArgumentException"/> for an empty id or a negative count.
    /// </summary>
    [Alias("ReportApplied")]
    Task ReportAppliedAsync(string streamId, long newObservations);

    [AlwaysInterleave, Alias("GetStats")]
    Task<StreamRegistryShardStats> GetStatsAsync();

    /// <summary>Up to <paramref name="count"/> distinct registered streams drawn uniformly at random.</summary>
    [Alias("Sample")]
    Task<string[]> SampleAsync(int count);

    /// <summary>Forgets streams (e.g. ones that rebound to another model).</summary>
    [Alias("Remove")]
    Task RemoveAsync(string[] streamIds);

    /// <summary>
    /// Up to <paramref name="limit"/> (1..<see cref="StreamRegistryKeys.MaxPageSize"/>) registered stream ids in
    /// ordinal order, starting after <paramref name="after"/> (exclusive; null = from the first).
    /// </summary>
    [Alias("List")]
    Task<string[]> ListAsync(string? after, int limit);
}

/// <summary>
/// A model's whole stream registry as one listing (key: the model name): asks every shard for a page and merges
/// them, so a caller needs to know neither the shard count nor the hash. A stateless worker: any silo answers.
/// </summary>
[Alias("lstm.IStreamRegistryGrain")]
public interface IStreamRegistryGrain : IGrainWithStringKey
{
    /// <summary>
    /// Streams registered with the model in ordinal order of their ids, at most <paramref name="limit"/>
    /// (1..<see cref="StreamRegistryKeys.MaxPageSize"/>) after <paramref name="after"/> (exclusive; null = from the
    /// first). Pass the page's <see cref="StreamPage.Next"/> as <paramref name="after"/> for the next page. A shard
    /// that does not answer in time fails the call rather than silently leaving its streams out.
    /// </summary>
    [Alias("ListStreams")]
    Task<StreamPage> ListStreamsAsync(string? after, int limit);
}

/// <summary>One page of a model's streams; <see cref="Next"/> is the cursor of the next page, null on the last.</summary>
[GenerateSerializer, Immutable, Alias("lstm.StreamPage")]
public sealed record StreamPage(
    [property: Id(0)] string[] StreamIds,
    [property: Id(1)] string? Next);

/// <summary>Size and observation counter of one registry shard.</summary>
[GenerateSerializer, Immutable, Alias("lstm.StreamRegistryShardStats")]
public sealed record StreamRegistryShardStats(
    [property: Id(0)] int Streams,
    [property: Id(1)] long ObservationTotal);

/// <summary>How stream ids map to registry shards. The hash is stable across processes (FNV-1a over UTF-16 code units).</summary>
public static class StreamRegistryKeys
{
    /// <summary>Largest page a registry listing returns.</summary>
    public const int MaxPageSize = 1000;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless 1 &lt;= <paramref name="limit"/> &lt;= <see cref="MaxPageSize"/>.</summary>
    public static void CheckPageSize(int limit)
    {
        if (limit is < 1 or > MaxPageSize)
            throw new ArgumentOutOfRangeException(nameof(limit), limit, $"A page holds 1..{MaxPageSize} streams; got {limit}.");
    }

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
