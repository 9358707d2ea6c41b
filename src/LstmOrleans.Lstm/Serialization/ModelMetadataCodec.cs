using System.Globalization;
using System.Text.Json;

namespace LstmOrleans.Lstm.Serialization;

/// <summary>
/// Maps <see cref="ModelMetadata"/> and the model shape to and from safetensors' <c>__metadata__</c>, which
/// is a flat string-to-string map. Integers are decimal strings; lists are JSON arrays inside the string
/// (so Python reads them with <c>json.loads</c>). Key names follow nn.LSTM's constructor arguments.
/// </summary>
public static class ModelMetadataCodec
{
    public const string FormatKey = "format";
    public const string FormatValue = "lstmorleans";
    public const string FormatVersionKey = "format_version";
    public const string InputSizeKey = "input_size";
    public const string HiddenSizeKey = "hidden_size";
    public const string NumLayersKey = "num_layers";
    public const string HorizonsKey = "horizons";
    public const string TargetColumnKey = "target_column";
    public const string FeatureNamesKey = "feature_names";
    public const string CalendarFeaturesKey = "calendar_features";
    public const string NormalizationKey = "normalization";
    public const string NormalizationMeanKey = "normalization_mean";
    public const string NormalizationStdKey = "normalization_std";
    public const string ModelNameKey = "model_name";
    public const string ModelVersionKey = "model_version";
    public const string ResidualKey = "residual";

    public const string NormalizationNone = "none";
    public const string NormalizationStandard = "standard";

    private static readonly string[] ReservedKeys =
    [
        FormatKey, FormatVersionKey, InputSizeKey, HiddenSizeKey, NumLayersKey, HorizonsKey, TargetColumnKey,
        FeatureNamesKey, CalendarFeaturesKey, NormalizationKey, NormalizationMeanKey, NormalizationStdKey,
        ModelNameKey, ModelVersionKey, ResidualKey,
    ];

    private static readonly string[] ConfigKeys = [InputSizeKey, HiddenSizeKey, NumLayersKey, HorizonsKey];

    private static readonly (CalendarFeature Feature, string Name)[] CalendarNames =
    [
        (CalendarFeature.HourSin, "hour_sin"),
        (CalendarFeature.HourCos, "hour_cos"),
        (CalendarFeature.WeekdaySin, "weekday_sin"),
        (CalendarFeature.WeekdayCos, "weekday_cos"),
    ];

    public static bool IsReserved(string key) => ReservedKeys.Contains(key, StringComparer.Ordinal);

    public static string CalendarFeatureName(CalendarFeature feature) =>
        CalendarNames.First(c => c.Feature == feature).Name;

    public static bool TryParseCalendarFeature(string name, out CalendarFeature feature)
    {
        foreach (var (f, n) in CalendarNames)
        {
            if (string.Equals(n, name, StringComparison.Ordinal))
            {
                feature = f;
                return true;
            }
        }
        feature = default;
        return false;
    }

    /// <summary>The <c>__metadata__</c> entries for a model of shape <paramref name="config"/>, sorted by key.</summary>
    public static SortedDictionary<string, string> Encode(LstmConfig config, ModelMetadata metadata)
    {
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in metadata.Extra) map[key] = value;
        map[FormatKey] = FormatValue;
        // Version 2 adds the residual head. A residual model is written as version 2 so that a reader that does not
        // know the key refuses the file instead of predicting changes as if they were levels; other models stay
        // version 1, readable by every build.
        map[FormatVersionKey] = Int(metadata.Residual ? ModelMetadata.CurrentFormatVersion : 1);
        map[InputSizeKey] = Int(config.InputSize);
        map[HiddenSizeKey] = Int(config.HiddenSize);
        map[NumLayersKey] = Int(config.Layers);
        map[HorizonsKey] = Int(config.Horizons);
        map[TargetColumnKey] = Int(metadata.TargetColumn);
        map[FeatureNamesKey] = JsonSerializer.Serialize(metadata.FeatureNames.ToArray(), ModelFileJsonContext.Default.StringArray);
        map[CalendarFeaturesKey] = JsonSerializer.Serialize(
            metadata.CalendarFeatures.Select(CalendarFeatureName).ToArray(), ModelFileJsonContext.Default.StringArray);
        if (metadata.Normalization is { } n)
        {
            map[NormalizationKey] = NormalizationStandard;
            map[NormalizationMeanKey] = FloatArray(n.Mean);
            map[NormalizationStdKey] = FloatArray(n.Std);
        }
        else
        {
            map[NormalizationKey] = NormalizationNone;
        }
        if (metadata.Residual) map[ResidualKey] = "true";
        if (metadata.ModelName is not null) map[ModelNameKey] = metadata.ModelName;
        if (metadata.ModelVersion is not null) map[ModelVersionKey] = metadata.ModelVersion;
        return map;
    }

    /// <summary>
    /// Reads <see cref="ModelMetadata"/> from <c>__metadata__</c> and checks it against the shape inferred from
    /// the tensors. Missing keys take the defaults of a bare state_dict; present keys must be well formed.
    /// </summary>
    public static ModelMetadata Decode(IReadOnlyDictionary<string, string> map, LstmConfig inferred)
    {
        if (map.TryGetValue(FormatVersionKey, out var versionText))
        {
            int version = ParseInt(FormatVersionKey, versionText);
            if (version < 1 || version > ModelMetadata.CurrentFormatVersion)
                throw new ModelFileException(
                    $"Model file format version {version} is not supported; this build reads versions 1 to {ModelMetadata.CurrentFormatVersion}.");
        }
        if (map.TryGetValue(FormatKey, out var format) && format != FormatValue && ConfigKeys.Any(map.ContainsKey))
            throw new ModelFileException($"Metadata '{FormatKey}' is '{format}', expected '{FormatValue}'.");

        int present = ConfigKeys.Count(map.ContainsKey);
        if (present != 0 && present != ConfigKeys.Length)
            throw new ModelFileException(
                $"Metadata must give all of {string.Join(", ", ConfigKeys)} or none of them; missing {string.Join(", ", ConfigKeys.Where(k => !map.ContainsKey(k)))}.");
        if (present == ConfigKeys.Length)
        {
            CheckMatches(map, InputSizeKey, inferred.InputSize, "weight_ih_l0 has that many columns");
            CheckMatches(map, HiddenSizeKey, inferred.HiddenSize, "the tensors have 4 x that many gate rows");
            CheckMatches(map, NumLayersKey, inferred.Layers, "the file holds that many layers of lstm tensors");
            CheckMatches(map, HorizonsKey, inferred.Horizons, "head.weight has that many rows");
        }

        var metadata = new ModelMetadata
        {
            ModelName = map.GetValueOrDefault(ModelNameKey),
            ModelVersion = map.GetValueOrDefault(ModelVersionKey),
            TargetColumn = map.TryGetValue(TargetColumnKey, out var target) ? ParseInt(TargetColumnKey, target) : 0,
            FeatureNames = map.TryGetValue(FeatureNamesKey, out var names) ? ParseStringArray(FeatureNamesKey, names) : [],
            CalendarFeatures = map.TryGetValue(CalendarFeaturesKey, out var calendar) ? ParseCalendar(calendar) : [],
            Normalization = ParseNormalization(map),
            Residual = map.TryGetValue(ResidualKey, out var residual) && ParseBool(ResidualKey, residual),
            Extra = map.Where(kv => !IsReserved(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal),
        };
        if (metadata.Check(inferred) is { } problem)
            throw new ModelFileException($"Metadata does not fit the model: {problem}");
        return metadata;
    }

    private static bool ParseBool(string key, string text) => text switch
    {
        "true" => true,
        "false" => false,
        _ => throw new ModelFileException($"Metadata '{key}' must be \"true\" or \"false\", got '{Shorten(text)}'."),
    };

    private static void CheckMatches(IReadOnlyDictionary<string, string> map, string key, int actual, string why)
    {
        int stated = ParseInt(key, map[key]);
        if (stated != actual)
            throw new ModelFileException($"Metadata says {key} = {stated} but the tensors say {actual} ({why}).");
    }

    private static FeatureNormalization? ParseNormalization(IReadOnlyDictionary<string, string> map)
    {
        string mode = map.GetValueOrDefault(NormalizationKey, NormalizationNone);
        switch (mode)
        {
            case NormalizationNone:
                if (map.ContainsKey(NormalizationMeanKey) || map.ContainsKey(NormalizationStdKey))
                    throw new ModelFileException($"Metadata has normalisation statistics but '{NormalizationKey}' is '{NormalizationNone}'.");
                return null;
            case NormalizationStandard:
                if (!map.TryGetValue(NormalizationMeanKey, out var mean) || !map.TryGetValue(NormalizationStdKey, out var std))
                    throw new ModelFileException($"Normalisation '{NormalizationStandard}' needs '{NormalizationMeanKey}' and '{NormalizationStdKey}'.");
                return new FeatureNormalization(ParseFloatArray(NormalizationMeanKey, mean), ParseFloatArray(NormalizationStdKey, std));
            default:
                throw new ModelFileException(
                    $"Unknown normalisation '{mode}'; expected '{NormalizationNone}' or '{NormalizationStandard}'.");
        }
    }

    private static CalendarFeature[] ParseCalendar(string text)
    {
        var names = ParseStringArray(CalendarFeaturesKey, text);
        var features = new CalendarFeature[names.Length];
        for (int i = 0; i < names.Length; i++)
        {
            if (!TryParseCalendarFeature(names[i], out features[i]))
                throw new ModelFileException(
                    $"Unknown calendar feature '{names[i]}'; known: {string.Join(", ", CalendarNames.Select(c => c.Name))}.");
        }
        return features;
    }

    private static int ParseInt(string key, string text)
    {
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value))
            throw new ModelFileException($"Metadata '{key}' must be a non-negative integer, got '{Shorten(text)}'.");
        return value;
    }

    private static string[] ParseStringArray(string key, string text)
    {
        try
        {
            var values = JsonSerializer.Deserialize(text, ModelFileJsonContext.Default.StringArray);
            if (values is null || values.Any(v => v is null))
                throw new ModelFileException($"Metadata '{key}' must be a JSON array of strings, got '{Shorten(text)}'.");
            return values;
        }
        catch (JsonException e)
        {
            throw new ModelFileException($"Metadata '{key}' must be a JSON array of strings, got '{Shorten(text)}': {e.Message}", e);
        }
    }

    private static float[] ParseFloatArray(string key, string text)
    {
        try
        {
            var values = JsonSerializer.Deserialize(text, ModelFileJsonContext.Default.SingleArray);
            return values ?? throw new ModelFileException($"Metadata '{key}' must be a JSON array of numbers, got null.");
        }
        catch (JsonException e)
        {
            throw new ModelFileException($"Metadata '{key}' must be a JSON array of numbers, got '{Shorten(text)}': {e.Message}", e);
        }
    }

    private static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string FloatArray(IReadOnlyList<float> values) =>
        "[" + string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]";

    internal static string Shorten(string text) => text.Length <= 80 ? text : text[..77] + "...";
}
