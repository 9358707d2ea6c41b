namespace LstmOrleans.Abstractions;

/// <summary>
/// One reading of a sensor stream.
/// </summary>
/// <param name="Sequence">
/// Caller-assigned sequence number; the idempotency key. An observation whose sequence is not greater than the
/// last accepted one is a duplicate and is not applied again. Gaps are allowed.
/// </param>
/// <param name="Timestamp">When the reading was taken; must not go backwards within a stream.</param>
/// <param name="Values">
/// The feature vector, length D of the stream's model, all finite. The model's target feature (index
/// <see cref="ModelConfig.TargetIndex"/>, 0 unless configured) is the value that is predicted.
/// </param>
[GenerateSerializer, Immutable, Alias("lstm.Observation")]
public sealed record Observation(
    [property: Id(0)] long Sequence,
    [property: Id(1)] DateTimeOffset Timestamp,
    [property: Id(2)] float[] Values);
