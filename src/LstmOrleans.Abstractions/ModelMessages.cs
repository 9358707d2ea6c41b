namespace LstmOrleans.Abstractions;

/// <summary>How a stream normalises its inputs before the LSTM step.</summary>
public enum NormalizationMode
{
    /// <summary>Values go into the LSTM as they are.</summary>
    None = 0,

    /// <summary>
    /// Per stream, per feature running mean and variance (Welford) over the data seen so far, including the
    /// current observation and nothing later: x_norm = (x - mean) / std. Predictions are de-normalised with the
    /// target feature's statistics at the same step.
    /// </summary>
    RunningZScore = 1,
}

/// <summary>
/// Shape and behaviour of a model, fixed at creation.
/// </summary>
/// <param name="InputSize">D, values per observation.</param>
/// <param name="HiddenSize">H.</param>
/// <param name="Layers">L.</param>
/// <param name="Horizons">K, forecasts per step (1..K observations ahead).</param>
/// <param name="Features">Names of the D features (optional; empty means unnamed).</param>
/// <param name="TargetIndex">Which feature is predicted.</param>
/// <param name="Normalization">Input normalisation applied by every stream of the model.</param>
/// <param name="Seed">Seed of the initial weights (version 1).</param>
/// <param name="CalendarFeatures">
/// Calendar features every stream appends to its (normalised) values before the LSTM step, computed from the
/// observation's timestamp, in this order: any of "hour_sin", "hour_cos" (time of day) and "weekday_sin",
/// "weekday_cos" (day of week, Monday = 0), the names and formulas of the model file format. The timestamp's own
/// clock time is used (<see cref="DateTimeOffset.DateTime"/>): send local time with its offset for local-time features.
/// Null or empty = none. The LSTM's input width is <see cref="ModelInputSize"/>.
/// </param>
/// <param name="Residual">
/// The head predicts the change of the target from the current input (in the units the LSTM sees, i.e. normalised
/// when the model normalises): forecast = current target input + head output, then de-normalised. False = the head
/// predicts the level. Training fits the same definition. A residual model's initial head is zero: version 1
/// forecasts the current value (persistence).
/// </param>
[GenerateSerializer, Immutable, Alias("lstm.ModelConfig")]
public sealed record ModelConfig(
    [property: Id(0)] int InputSize,
    [property: Id(1)] int HiddenSize,
    [property: Id(2)] int Layers,
    [property: Id(3)] int Horizons,
    [property: Id(4)] string[] Features,
    [property: Id(5)] int TargetIndex = 0,
    [property: Id(6)] NormalizationMode Normalization = NormalizationMode.RunningZScore,
    [property: Id(7)] int Seed = 0,
    [property: Id(8)] string[]? CalendarFeatures = null,
    [property: Id(9)] bool Residual = false)
{
    /// <summary>The LSTM's input width: the <see cref="InputSize"/> values followed by the calendar features.</summary>
    public int ModelInputSize => InputSize + (CalendarFeatures?.Length ?? 0);
}

/// <summary>One published version of a model's weights (without the weights).</summary>
[GenerateSerializer, Immutable, Alias("lstm.ModelVersionInfo")]
public sealed record ModelVersionInfo(
    [property: Id(0)] long Version,
    [property: Id(1)] DateTimeOffset PublishedAt,
    [property: Id(2)] string? Description,
    [property: Id(3)] IReadOnlyDictionary<string, string> Metadata,
    [property: Id(4)] int ParameterCount);

/// <summary>What a caller attaches to a published version.</summary>
/// <param name="ExpectedActiveVersion">
/// When set, the version is stored only if this is still the active version when the publish is applied; otherwise
/// <see cref="IModelGrain.PublishAsync"/> throws <see cref="ModelOperationException"/> and nothing changes. For weights
/// that were measured against the active version (a training round's challenger), so they never replace another one.
/// </param>
/// <param name="TrainingRound">
/// Set only by the model's training grain: the id (positive) of the round publishing. The model keeps its latest round's
/// publication, version and metadata, after the version itself is pruned (<see cref="IModelGrain.GetRoundPublicationAsync"/>),
/// so a round whose training grain died before recording its outcome is still recorded with what it published. A
/// typed field rather than a metadata entry: metadata is the caller's (the HTTP API passes it through), so a manual
/// publish could carry any entry, and must not be taken for a round's.
/// </param>
[GenerateSerializer, Immutable, Alias("lstm.PublishRequest")]
public sealed record PublishRequest(
    [property: Id(0)] float[] Parameters,
    [property: Id(1)] string? Description = null,
    [property: Id(2)] IReadOnlyDictionary<string, string>? Metadata = null,
    [property: Id(3)] bool Activate = true,
    [property: Id(4)] long? ExpectedActiveVersion = null,
    [property: Id(5)] long? TrainingRound = null);

/// <summary>
/// The version a training round published (<see cref="PublishRequest.TrainingRound"/>), as the model stored it with
/// the publish; <paramref name="Retained"/> is false once the version itself has been pruned.
/// </summary>
[GenerateSerializer, Immutable, Alias("lstm.RoundPublication")]
public sealed record RoundPublication(
    [property: Id(0)] long RoundId,
    [property: Id(1)] long Version,
    [property: Id(2)] DateTimeOffset PublishedAt,
    [property: Id(3)] IReadOnlyDictionary<string, string> Metadata,
    [property: Id(4)] bool Retained);

/// <summary>Summary of a model.</summary>
[GenerateSerializer, Immutable, Alias("lstm.ModelInfo")]
public sealed record ModelInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] ModelConfig Config,
    [property: Id(2)] long ActiveVersion,
    [property: Id(3)] long LatestVersion,
    [property: Id(4)] int RetainedVersions,
    [property: Id(5)] DateTimeOffset CreatedAt,
    [property: Id(6)] int ParameterCount);

/// <summary>
/// A version of a model's weights: the flat parameter vector in <c>LstmParameters</c> layout.
/// <see cref="Epoch"/> is the activation epoch when these weights are (or were) the active ones.
/// </summary>
[GenerateSerializer, Immutable, Alias("lstm.ModelWeights")]
public sealed record ModelWeights(
    [property: Id(0)] string ModelName,
    [property: Id(1)] long Version,
    [property: Id(2)] ModelConfig Config,
    [property: Id(3)] float[] Parameters,
    [property: Id(4)] long Epoch = 0);

/// <summary>
/// Which version is active, and the activation epoch: a counter the model grain increases on every publish or
/// activation, so caches can tell a newer activation from an older one even after a rollback.
/// </summary>
[GenerateSerializer, Immutable, Alias("lstm.ModelActivation")]
public sealed record ModelActivation(
    [property: Id(0)] long Version,
    [property: Id(1)] long Epoch);
