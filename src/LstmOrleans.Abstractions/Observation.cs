namespace LstmOrleans.Abstractions;

/// <summary>
/// One reading of a sensor stream.
/// </summary>
/// <param name="Sequence">
/// Caller-assigned sequence number, 0 or greater; the idempotency key. An observation whose sequence is not greater
/// than the last accepted one is a duplicate and is not applied again. Gaps are allowed.
/// </param>
/// <param name="Timestamp">When the reading was taken; must not go backwards within a stream.</param>
/// <param name="Values">
/// The feature vector, length D of the stream's model, all finite and at most <see cref="MaxMagnitude"/> in
/// magnitude. The model's target feature (index
/// <see cref="ModelConfig.TargetIndex"/>, 0 unless configured) is the value that is predicted.
/// </param>
[GenerateSerializer, Immutable, Alias("lstm.Observation")]
public sealed record Observation(
    [property: Id(0)] long Sequence,
    [property: Id(1)] DateTimeOffset Timestamp,
    [property: Id(2)] float[] Values)
{
    /// <summary>
    /// Largest accepted |value|. Forecasts, errors and intervals are float32 and scale with the values (a z-scored
    /// outlier times the stream's spread, plus IntervalZ RMSEs of errors up to twice the range): values near
    /// float.MaxValue made them infinite, which answers cannot carry (JSON has no infinity) and which stayed in the
    /// stream for good. 1e30 leaves eight orders of magnitude of headroom and is far beyond any sensor reading.
    /// </summary>
    public const float MaxMagnitude = 1e30f;

    /// <summary>Whether <paramref name="value"/> is finite and at most <see cref="MaxMagnitude"/> in magnitude.</summary>
    public static bool IsAcceptable(float value) => float.IsFinite(value) && Math.Abs(value) <= MaxMagnitude;
}

/// <summary>
/// A reading sent without a sequence number, for <see cref="IStreamGrain.IngestAfterLastAsync"/>: the stream numbers it
/// after its last one and, when <paramref name="Timestamp"/> is null, stamps it with its clock, both in the turn that
/// applies it.
/// </summary>
[GenerateSerializer, Immutable, Alias("lstm.UnnumberedObservation")]
public sealed record UnnumberedObservation(
    [property: Id(0)] DateTimeOffset? Timestamp,
    [property: Id(1)] float[] Values);
