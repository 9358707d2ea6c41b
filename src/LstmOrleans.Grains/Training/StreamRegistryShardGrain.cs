using LstmOrleans.Abstractions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace LstmOrleans.Grains.Training;

/// <summary>Durable state of one registry shard.</summary>
[GenerateSerializer, Alias("lstm.StreamRegistryShardState")]
public sealed class StreamRegistryShardState
{
    /// <summary>Registered stream ids, in no particular order (a list so a uniform sample is O(count)).</summary>
    [Id(0)] public List<string> Streams { get; set; } = [];

    /// <summary>Observations reported by the shard's streams since the shard was created.</summary>
    [Id(1)] public long ObservationTotal { get; set; }

    /// <summary>The model's training grain was told the model has streams.</summary>
    [Id(2)] public bool TrainingNotified { get; set; }
}

/// <summary>
/// One shard of a model's stream registry. Reports are one-way and cheap: a new stream or a count only marks the
/// state dirty, and a timer writes it at most every <see cref="TrainingGrainOptions.RegistryFlushInterval"/>
/// (and on deactivation), so a burst of a million first registrations costs a few writes per shard, not a million.
/// A registration lost in a crash comes back on the stream's next activation.
/// </summary>
public sealed partial class StreamRegistryShardGrain : Grain, IStreamRegistryShardGrain
{
    private readonly IPersistentState<StreamRegistryShardState> _state;
    private readonly TrainingGrainOptions _options;
    private readonly ILogger<StreamRegistryShardGrain> _logger;
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);   // stream id -> position in Streams
    private string[]? _sorted;   // Streams in ordinal order for listing; null after any change (rebuilt on the next listing)
    private bool _dirty;

    /// <summary>Above this many streams the listing sort runs on the thread pool, not in the grain turn.</summary>
    private const int InlineSortLimit = 4096;

    public StreamRegistryShardGrain(
        [PersistentState("registry", LstmOrleansNames.StorageName)] IPersistentState<StreamRegistryShardState> state,
        IOptions<TrainingGrainOptions> options,
        ILogger<StreamRegistryShardGrain> logger)
    {
        _state = state;
        _options = options.Value;
        _logger = logger;
    }

    private string ModelName => StreamRegistryKeys.ParseShardKey(this.GetPrimaryKeyString()).ModelName;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        StreamRegistryKeys.ParseShardKey(this.GetPrimaryKeyString());   // reject malformed keys early
        var streams = _state.State.Streams;
        for (int i = 0; i < streams.Count; i++) _index[streams[i]] = i;
        this.RegisterGrainTimer(FlushAsync, _options.RegistryFlushInterval, _options.RegistryFlushInterval);
        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken) => await FlushAsync();

    public Task ReportAsync(string streamId, long newObservations) =>
        string.IsNullOrEmpty(streamId) || newObservations < 0 ? Task.CompletedTask   // one-way: nobody to tell; ignore
        : ApplyReportAsync(streamId, newObservations);

    public Task ReportAppliedAsync(string streamId, long newObservations)
    {
        ArgumentException.ThrowIfNullOrEmpty(streamId);
        ArgumentOutOfRangeException.ThrowIfNegative(newObservations);
        return ApplyReportAsync(streamId, newObservations);
    }

    private async Task ApplyReportAsync(string streamId, long newObservations)
    {
        var s = _state.State;
        if (!_index.ContainsKey(streamId))
        {
            _index[streamId] = s.Streams.Count;
            s.Streams.Add(streamId);
            _sorted = null;
            _dirty = true;
        }
        if (newObservations > 0)
        {
            s.ObservationTotal += newObservations;
            _dirty = true;
        }
        if (!s.TrainingNotified && _options.AutoStart)
        {
            s.TrainingNotified = true;
            _dirty = true;
            await FlushAsync();
            GrainFactory.GetGrain<ITrainingGrain>(ModelName).EnsureScheduledAsync().Ignore();
        }
    }

    public Task<StreamRegistryShardStats> GetStatsAsync() =>
        Task.FromResult(new StreamRegistryShardStats(_state.State.Streams.Count, _state.State.ObservationTotal));

    public Task<string[]> SampleAsync(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var streams = _state.State.Streams;
        if (count >= streams.Count) return Task.FromResult(streams.ToArray());
        // Partial Fisher-Yates over positions: uniform, distinct, O(count) extra work after the O(n) copy.
        var positions = new int[streams.Count];
        for (int i = 0; i < positions.Length; i++) positions[i] = i;
        var result = new string[count];
        for (int i = 0; i < count; i++)
        {
            int j = Random.Shared.Next(i, positions.Length);
            (positions[i], positions[j]) = (positions[j], positions[i]);
            result[i] = streams[positions[i]];
        }
        return Task.FromResult(result);
    }

    public Task RemoveAsync(string[] streamIds)
    {
        ArgumentNullException.ThrowIfNull(streamIds);
        var streams = _state.State.Streams;
        foreach (var id in streamIds)
        {
            if (id is null || !_index.Remove(id, out int position)) continue;
            int lastPosition = streams.Count - 1;
            if (position != lastPosition)
            {
                streams[position] = streams[lastPosition];
                _index[streams[position]] = position;
            }
            streams.RemoveAt(lastPosition);
            _sorted = null;
            _dirty = true;
        }
        return Task.CompletedTask;
    }

    public async Task<string[]> ListAsync(string? after, int limit)
    {
        StreamRegistryKeys.CheckPageSize(limit);
        var sorted = _sorted;
        if (sorted is null)
        {
            var snapshot = _state.State.Streams.ToArray();
            if (snapshot.Length <= InlineSortLimit) Array.Sort(snapshot, StringComparer.Ordinal);
            else await Task.Run(() => Array.Sort(snapshot, StringComparer.Ordinal));
            // Not reentrant: nothing changed the list while the sort ran, so the snapshot is current.
            _sorted = sorted = snapshot;
        }
        int start = 0;
        if (after is not null)
        {
            int found = Array.BinarySearch(sorted, after, StringComparer.Ordinal);
            start = found >= 0 ? found + 1 : ~found;
        }
        return sorted.AsSpan(start, Math.Min(limit, sorted.Length - start)).ToArray();
    }

    private async Task FlushAsync()
    {
        if (!_dirty) return;
        _dirty = false;
        try
        {
            await _state.WriteStateAsync();
        }
        catch (Exception e)
        {
            _dirty = true;
            LogFlushFailed(e, this.GetPrimaryKeyString());
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream registry shard {Shard} could not write its state; will retry")]
    private partial void LogFlushFailed(Exception exception, string shard);
}

/// <summary>
/// Lists a model's streams across its registry shards: each shard returns its first <c>limit</c> ids after the
/// cursor, and the merged first <c>limit</c> of those are exactly the next page of the whole registry (every id of
/// the page is among its own shard's first <c>limit</c>). Work per page: shards x limit ids.
/// </summary>
[StatelessWorker]
public sealed class StreamRegistryGrain(IOptions<TrainingGrainOptions> options) : Grain, IStreamRegistryGrain
{
    private readonly TrainingGrainOptions _options = options.Value;

    public async Task<StreamPage> ListStreamsAsync(string? after, int limit)
    {
        StreamRegistryKeys.CheckPageSize(limit);
        string model = this.GetPrimaryKeyString();
        var pages = await Task.WhenAll(Enumerable.Range(0, _options.RegistryShards).Select(shard =>
            GrainFactory.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(model, shard)).ListAsync(after, limit)));
        // Distinct: a stream can sit in two shards for a while if the shard count was changed between deployments.
        var merged = pages.SelectMany(p => p).Distinct(StringComparer.Ordinal).ToList();
        merged.Sort(StringComparer.Ordinal);
        // More may follow when the merge overflowed the page or a shard filled its own page.
        bool more = merged.Count > limit || pages.Any(p => p.Length == limit);
        var ids = merged.Count > limit ? merged.GetRange(0, limit).ToArray() : merged.ToArray();
        return new StreamPage(ids, more && ids.Length > 0 ? ids[^1] : null);
    }
}
