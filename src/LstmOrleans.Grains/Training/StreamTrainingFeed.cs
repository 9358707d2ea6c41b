using LstmOrleans.Abstractions;
using Microsoft.Extensions.Options;

namespace LstmOrleans.Grains.Training;

/// <summary>
/// Registered by <c>AddLstmOrleansTraining</c>; its presence turns on stream-to-registry reporting. Each stream grain
/// activation gets its own <see cref="StreamTrainingFeed"/>.
/// </summary>
public sealed class StreamTrainingFeedFactory(IOptions<TrainingGrainOptions> options)
{
    private readonly TrainingGrainOptions _options = options.Value;

    internal StreamTrainingFeed Create(IGrainFactory grainFactory, string streamId) =>
        new(grainFactory, streamId, _options.RegistryShards, _options.ReportEverySteps);
}

/// <summary>
/// Reports a stream's activity to its model's registry shard: once when the activation first steps (or binds), so
/// the stream is registered, then every N accepted steps with the count, and on deactivation. One-way messages only,
/// so ingestion never waits on the registry. Lost counts (a crash) only delay an observation-triggered round.
/// Used from grain context only (not thread-safe).
/// </summary>
internal sealed class StreamTrainingFeed(IGrainFactory grainFactory, string streamId, int shards, int reportEverySteps)
{
    private string? _reportedModel;
    private long _pending;

    public void Report(string modelName, int newSteps)
    {
        _pending += newSteps;
        if (_reportedModel != modelName)
        {
            _reportedModel = modelName;
            Send();
        }
        else if (_pending >= reportEverySteps) Send();
    }

    public void Flush()
    {
        if (_pending > 0 && _reportedModel is not null) Send();
    }

    private void Send()
    {
        string key = StreamRegistryKeys.ShardKey(_reportedModel!, StreamRegistryKeys.ShardOf(streamId, shards));
        grainFactory.GetGrain<IStreamRegistryShardGrain>(key).ReportAsync(streamId, _pending).Ignore();
        _pending = 0;
    }
}

/// <summary>Cuts the training view out of a stream's state.</summary>
internal static class StreamTrainingView
{
    /// <summary>
    /// The model inputs of <paramref name="window"/> (the newest retained observations, copies: normalised values, then
    /// calendar features), oldest first, with the current statistics of the values.
    /// </summary>
    public static StreamTrainingWindow From(StreamState s, ObservationChunk window, string streamId)
    {
        int w = s.InputWidth;                                          // D_in: values, then calendar features
        int take = window.Count;
        var inputs = window.Inputs.AsSpan(0, take * w).ToArray();     // [take, D_in]
        long first = take > 0 ? window.Sequences[0] : 0, last = take > 0 ? window.Sequences[take - 1] : 0;
        var std = new double[s.InputSize];
        for (int i = 0; i < std.Length; i++) std[i] = StreamComputation.NormalizationStd(s, i);
        return new StreamTrainingWindow(streamId, s.ModelName, s.WeightsVersion, w, inputs, first, last, s.StepCount,
            (double[])s.Mean.Clone(), std);
    }
}
