using LstmOrleans.Abstractions;
using LstmOrleans.Lstm.Serialization;

namespace LstmOrleans.Grains;

/// <summary>
/// How a stream turns an observation into the LSTM's input x [D + C]: its D values, normalised by the stream's running
/// statistics, followed by the model's C calendar features of the observation's timestamp. The calendar part is
/// <see cref="ModelInputEncoder.WriteCalendarFeatures"/>, the same code the offline commands use, so a model file's
/// calendar features mean the same thing on the cluster.
/// </summary>
internal static class ModelInputs
{
    /// <summary>Null when <paramref name="names"/> are known, distinct calendar feature names, else what is wrong.</summary>
    public static string? CheckCalendarFeatures(string[] names)
    {
        foreach (var name in names)
            if (name is null || !ModelMetadataCodec.TryParseCalendarFeature(name, out _))
                return $"unknown calendar feature '{name}'; known: hour_sin, hour_cos, weekday_sin, weekday_cos.";
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Length) return "a calendar feature is listed twice.";
        return null;
    }

    /// <summary>The calendar features of a (validated) model configuration, in input order.</summary>
    public static CalendarFeature[] CalendarFeatures(ModelConfig config)
    {
        var names = config.CalendarFeatures ?? [];
        var features = new CalendarFeature[names.Length];
        for (int i = 0; i < names.Length; i++)
            if (!ModelMetadataCodec.TryParseCalendarFeature(names[i], out features[i]))
                throw new InvalidOperationException($"Model configuration has an unknown calendar feature '{names[i]}'.");
        return features;
    }

    /// <summary>Writes the calendar features of <paramref name="timestamp"/>'s clock time into <paramref name="destination"/> [C].</summary>
    public static void WriteCalendarFeatures(DateTimeOffset timestamp, ReadOnlySpan<CalendarFeature> calendar, Span<float> destination) =>
        ModelInputEncoder.WriteCalendarFeatures(timestamp.DateTime, calendar, destination);
}
