namespace LstmOrleans.Abstractions;

/// <summary>Short description of a stream grain.</summary>
[GenerateSerializer, Immutable, Alias("lstm.StreamSummary")]
public sealed record StreamSummary(
    [property: Id(0)] string StreamId,
    [property: Id(1)] string? ModelName,
    [property: Id(2)] long WeightsVersion,
    [property: Id(3)] long? LastSequence,
    [property: Id(4)] DateTimeOffset? LastTimestamp,
    [property: Id(5)] long StepCount,
    [property: Id(6)] int HistoryCount,
    [property: Id(7)] int HistoryCapacity,
    [property: Id(8)] StepResult? Latest);

/// <summary>
/// Everything the stream grain keeps durably, for inspection and tests. Arrays are copies.
/// </summary>
/// <param name="Hidden">h, [L * H], layer-major.</param>
/// <param name="Cell">c, [L * H], layer-major.</param>
/// <param name="NormalizationCount">Observations folded into the running statistics.</param>
/// <param name="Mean">[D] running mean of each feature (Welford).</param>
/// <param name="Std">[D] standard deviation used to normalise: sqrt(population variance), or 1 when the variance is ~0.</param>
/// <param name="ErrorMeanSquare">[K] EWMA of the squared error per horizon.</param>
/// <param name="ErrorSamples">[K] scored forecasts per horizon.</param>
[GenerateSerializer, Immutable, Alias("lstm.StreamStateSnapshot")]
public sealed record StreamStateSnapshot(
    [property: Id(0)] StreamSummary Summary,
    [property: Id(1)] float[] Hidden,
    [property: Id(2)] float[] Cell,
    [property: Id(3)] long NormalizationCount,
    [property: Id(4)] double[] Mean,
    [property: Id(5)] double[] Std,
    [property: Id(6)] double[] ErrorMeanSquare,
    [property: Id(7)] long[] ErrorSamples);
