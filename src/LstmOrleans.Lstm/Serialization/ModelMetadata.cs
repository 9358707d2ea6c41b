using System.Collections.ObjectModel;

namespace LstmOrleans.Lstm.Serialization;

/// <summary>
/// Calendar features derived from a row's timestamp and appended, in the listed order, after the raw
/// feature columns. Sine/cosine pairs keep 23:59 next to 00:00 and Sunday next to Monday.
/// </summary>
public enum CalendarFeature
{
    /// <summary>sin(2π · time of day / 24 h).</summary>
    HourSin,
    /// <summary>cos(2π · time of day / 24 h).</summary>
    HourCos,
    /// <summary>sin(2π · (day of week, Monday = 0, plus fraction of day) / 7).</summary>
    WeekdaySin,
    /// <summary>cos(2π · (day of week, Monday = 0, plus fraction of day) / 7).</summary>
    WeekdayCos,
}

/// <summary>
/// Per-input z-score normalisation: x' = (x - Mean) / Std for every model input (raw features and calendar
/// features alike, length D). Outputs predict the normalised target and are mapped back with the target
/// column's Mean and Std.
/// </summary>
public sealed record FeatureNormalization(IReadOnlyList<float> Mean, IReadOnlyList<float> Std);

/// <summary>
/// Everything a model file says besides the weights: how raw CSV/stream rows become model inputs, and
/// which model this is. The shape (D, H, L, K) is carried by <see cref="LstmParameters.Config"/>.
/// </summary>
public sealed record ModelMetadata
{
    /// <summary>Version of the metadata layout written by <see cref="ModelFile.Save(Stream, LstmParameters, ModelMetadata?)"/>.</summary>
    public const int CurrentFormatVersion = 2;

    /// <summary>Metadata of a bare state_dict: no names, target is input 0, no calendar features, no normalisation.</summary>
    public static ModelMetadata Empty { get; } = new();

    public string? ModelName { get; init; }

    public string? ModelVersion { get; init; }

    /// <summary>Index, among the raw feature columns, of the value the head predicts.</summary>
    public int TargetColumn { get; init; }

    /// <summary>Names of the raw feature columns in input order; empty when unknown (e.g. a bare PyTorch state_dict).</summary>
    public IReadOnlyList<string> FeatureNames { get; init; } = [];

    /// <summary>Calendar features appended after the raw features, in this order.</summary>
    public IReadOnlyList<CalendarFeature> CalendarFeatures { get; init; } = [];

    /// <summary>Input normalisation, or null when values go into the model as they are.</summary>
    public FeatureNormalization? Normalization { get; init; }

    /// <summary>
    /// Residual head: output k is the change of the target from the current (encoded) target input, so the forecast
    /// is that input plus the output, then decoded (<see cref="ModelInputEncoder.DecodeForecasts"/>). Files with this
    /// set are written as format version 2.
    /// </summary>
    public bool Residual { get; init; }

    /// <summary>Other <c>__metadata__</c> entries, kept as they are so a load/save round trip loses nothing.</summary>
    public IReadOnlyDictionary<string, string> Extra { get; init; } = ReadOnlyDictionary<string, string>.Empty;

    /// <summary>Number of raw feature columns a row must have for a model of input size <paramref name="inputSize"/>.</summary>
    public int RawFeatureCount(int inputSize) => inputSize - CalendarFeatures.Count;

    /// <summary>Null when this metadata fits a model of shape <paramref name="config"/>, else what is wrong.</summary>
    public string? Check(LstmConfig config)
    {
        int raw = RawFeatureCount(config.InputSize);
        if (raw < 1)
            return $"The model has input size {config.InputSize} but {CalendarFeatures.Count} calendar features; at least one raw feature is needed.";
        if (FeatureNames.Count != 0 && FeatureNames.Count != raw)
            return $"The model has {raw} raw feature inputs (input size {config.InputSize} minus {CalendarFeatures.Count} calendar features) but {FeatureNames.Count} feature names.";
        if (FeatureNames.Any(string.IsNullOrEmpty))
            return "Feature names must not be empty.";
        if (TargetColumn < 0 || TargetColumn >= raw)
            return $"Target column {TargetColumn} is out of range; the model has {raw} raw feature inputs.";
        if (CalendarFeatures.Any(f => !Enum.IsDefined(f)))
            return "Unknown calendar feature.";
        if (CalendarFeatures.Distinct().Count() != CalendarFeatures.Count)
            return "A calendar feature is listed twice.";
        if (Normalization is { } n)
        {
            if (n.Mean.Count != config.InputSize || n.Std.Count != config.InputSize)
                return $"Normalisation needs {config.InputSize} means and standard deviations (one per input), got {n.Mean.Count} and {n.Std.Count}.";
            for (int i = 0; i < config.InputSize; i++)
            {
                if (!float.IsFinite(n.Mean[i]))
                    return $"Normalisation mean {i} is not finite.";
                if (!float.IsFinite(n.Std[i]) || n.Std[i] <= 0f)
                    return $"Normalisation standard deviation {i} must be finite and positive, got {n.Std[i]}.";
            }
        }
        foreach (var key in Extra.Keys)
            if (ModelMetadataCodec.IsReserved(key))
                return $"Extra metadata key '{key}' is reserved for the model configuration.";
        return null;
    }
}
