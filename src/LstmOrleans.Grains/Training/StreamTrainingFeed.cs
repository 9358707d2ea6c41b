using System.Collections.Concurrent;
using LstmOrleans.Abstractions;
using LstmOrleans.Lstm.Training;
using Microsoft.Extensions.Options;

namespace LstmOrleans.Grains.Training;

/// <summary>
/// Registered by <c>AddLstmOrleansTraining</c>; its presence turns on stream-to-registry reporting. Each stream grain
/// activation gets its own <see cref="StreamTrainingFeed"/>.
/// <para>
/// When the silo stops, it deactivates those stream activations before Orleans deactivates the rest (at the start of
/// the stop, <see cref="ServiceLifecycleStage.Active"/>), and each stream's last report is applied before the shards
/// deactivate. Orleans 10 deactivates every grain of a stopping silo at once; a stream's last report then met a shard
/// that was already deactivating, whose queued requests Orleans tries to take along to another silo: a lone silo has
/// none, so the report was dropped, with an error ("Error while selecting a migration destination") for the shard and
/// another ("Failed to address message") for every report, on every clean stop.
/// </para>
/// </summary>
public sealed class StreamTrainingFeedFactory(IOptions<TrainingGrainOptions> options) : ILifecycleParticipant<ISiloLifecycle>
{
    private readonly TrainingGrainOptions _options = options.Value;

    // Registry shard references by shard key (models x shards of them), shared by every feed of the silo: building a
    // grain reference resolves its interface type through reflection (GrainFactory.GetGrain), which cost ~1 % of the
    // silo's CPU at 600k values/s when each report built one; one reference per stream activation would cost memory at
    // a million streams instead.
    private readonly ConcurrentDictionary<string, IStreamRegistryShardGrain> _shards = new(StringComparer.Ordinal);

    // The stream activations of this silo that have a feed, until they deactivate: the ones the stop deactivates first.
    // One dictionary entry per live stream (~60 bytes, ~60 MB at a million streams); an entry leaves in the stream's
    // OnDeactivateAsync (Forget) rather than through a continuation on its Deactivated task, which would allocate that
    // task's completion source and a continuation per activation (several times the memory).
    private readonly ConcurrentDictionary<IGrainContext, byte> _streams = new();

    internal StreamTrainingFeed Create(IGrainContext stream, IGrainFactory grainFactory, string streamId)
    {
        _streams.TryAdd(stream, 0);
        return new(this, grainFactory, streamId, _options.RegistryShards, _options.ReportEverySteps);
    }

    /// <summary>The stream activation is deactivating: the silo's stop no longer needs to deactivate it.</summary>
    internal void Forget(IGrainContext stream) => _streams.TryRemove(stream, out _);

    internal IStreamRegistryShardGrain Shard(IGrainFactory grainFactory, string shardKey) =>
        _shards.GetOrAdd(shardKey, static (key, factory) => factory.GetGrain<IStreamRegistryShardGrain>(key), grainFactory);

    void ILifecycleParticipant<ISiloLifecycle>.Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(StreamTrainingFeedFactory), ServiceLifecycleStage.Active, _ => Task.CompletedTask, DeactivateStreamsAsync);

    /// <summary>
    /// Deactivates this silo's stream activations and waits until they have (their last reports applied, see
    /// <see cref="StreamGrain"/>'s OnDeactivateAsync), while the registry shards still take requests.
    /// </summary>
    private async Task DeactivateStreamsAsync(CancellationToken cancellationToken)
    {
        var streams = _streams.Keys.ToArray();
        if (streams.Length == 0) return;
        var reason = new DeactivationReason(DeactivationReasonCode.ShuttingDown, "This silo is stopping: streams deactivate before the registry shards they report to.");
        foreach (var stream in streams) stream.Deactivate(reason, cancellationToken);
        try
        {
            await Task.WhenAll(streams.Select(s => s.Deactivated)).WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The stop is no longer graceful (its time is up): Orleans' own deactivation of everything takes over.
        }
    }
}

/// <summary>
/// Reports a stream's activity to its model's registry shard: once when the activation first steps (or binds), so
/// the stream is registered, then every N accepted steps with the count, and on deactivation. One-way messages only,
/// so ingestion never waits on the registry. Lost counts (a crash) only delay an observation-triggered round.
/// Used from grain context only (not thread-safe).
/// </summary>
internal sealed class StreamTrainingFeed(StreamTrainingFeedFactory factory, IGrainFactory grainFactory, string streamId, int shards, int reportEverySteps)
{
    private string? _reportedModel;
    private IStreamRegistryShardGrain? _shard;     // the reported model's shard for this stream (a shared reference)
    private long _pending;

    public void Report(string modelName, int newSteps)
    {
        _pending += newSteps;
        if (_reportedModel != modelName)
        {
            _reportedModel = modelName;
            _shard = factory.Shard(grainFactory, StreamRegistryKeys.ShardKey(modelName, StreamRegistryKeys.ShardOf(streamId, shards)));
            Send();
        }
        else if (_pending >= reportEverySteps) Send();
    }

    public void Flush()
    {
        if (_pending > 0 && _reportedModel is not null) Send();
    }

    /// <summary>The stream activation is deactivating (see <see cref="StreamTrainingFeedFactory.Forget"/>).</summary>
    public void Deactivating(IGrainContext stream) => factory.Forget(stream);

    /// <summary>Counts not reported yet.</summary>
    public long Pending => _reportedModel is null ? 0 : _pending;

    /// <summary><see cref="Flush"/>, completing once the shard has applied the report (used when the silo stops).</summary>
    public Task FlushAppliedAsync()
    {
        if (_pending == 0 || _reportedModel is null) return Task.CompletedTask;
        long pending = _pending;
        _pending = 0;
        return _shard!.ReportAppliedAsync(streamId, pending);
    }

    /// <summary>
    /// Takes the stream out of <paramref name="modelName"/>'s registry (it is deleted, or bound to another model), so
    /// listings and training samples stop showing it at once rather than after a training round finds it gone.
    /// Counts not yet reported are dropped with it; a later step registers the stream again.
    /// </summary>
    public Task ForgetAsync(string modelName)
    {
        if (_reportedModel == modelName) (_reportedModel, _shard, _pending) = (null, null, 0);
        return factory.Shard(grainFactory, StreamRegistryKeys.ShardKey(modelName, StreamRegistryKeys.ShardOf(streamId, shards))).RemoveAsync([streamId]);
    }

    private void Send()
    {
        _shard!.ReportAsync(streamId, _pending).Ignore();
        _pending = 0;
    }
}

/// <summary>Cuts the training view out of a stream's state.</summary>
internal static class StreamTrainingView
{
    /// <summary>
    /// The running statistics each row of <paramref name="w"/> was normalised with (target feature), recovered from the
    /// statistics after the newest row by undoing the stream's Welford updates one row at a time, newest first: with
    /// n rows counted, x_n = z_n std_n + mean_n, mean_{n-1} = (n mean_n - x_n) / (n - 1),
    /// M2_{n-1} = M2_n - (x_n - mean_{n-1}) (x_n - mean_n). Null when the window cannot carry them (no rows, or more
    /// rows than the stream has counted).
    /// </summary>
    public static SeriesScale? TargetScale(StreamTrainingWindow w, int targetIndex)
    {
        int rows = w.Rows, width = w.InputSize;
        if (rows == 0 || w.StepCount < rows || targetIndex < 0 || targetIndex >= w.Mean.Length) return null;
        var mean = new double[rows];
        var std = new double[rows];
        long n = w.StepCount;
        double m = w.Mean[targetIndex], s = w.Std[targetIndex];
        double m2 = s * s * n;
        for (int row = rows - 1; row >= 0; row--, n--)
        {
            mean[row] = m;
            std[row] = s;
            if (row == 0) break;
            double x = w.Inputs[row * width + targetIndex] * s + m;
            double previousMean = n > 1 ? (n * m - x) / (n - 1) : 0;
            m2 = Math.Max(0, m2 - (x - previousMean) * (x - m));
            m = previousMean;
            s = LstmOrleans.Lstm.RunningZScore.Std(m2, n - 1);   // the stream's own std of row - 1 (its statistics over n - 1 values)
        }
        return new SeriesScale(mean, std);
    }

    /// <summary>
    /// The model inputs of <paramref name="window"/> (the newest retained observations, copies: normalised values, then
    /// calendar features), oldest first, with the current statistics of the values.
    /// </summary>
    public static StreamTrainingWindow From(StreamState s, ObservationChunk window, string streamId)
    {
        int d = s.InputSize, w = s.InputWidth;                        // D values, D_in model inputs
        int take = window.Count;
        var inputs = window.Inputs.AsSpan(0, take * w).ToArray();     // [take, D_in]
        long first = take > 0 ? window.Sequences[0] : 0, last = take > 0 ? window.Sequences[take - 1] : 0;
        var std = new double[d];
        for (int i = 0; i < d; i++) std[i] = StreamComputation.NormalizationStd(s, i);
        return new StreamTrainingWindow(streamId, s.ModelName, s.WeightsVersion, w, inputs, first, last, s.StepCount,
            (double[])s.Mean.Clone(), std);
    }
}
