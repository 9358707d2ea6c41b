namespace LstmOrleans.Lstm.Serialization;

/// <summary>
/// Turns one raw row (timestamp + raw feature values) into the model's input vector x [D] as the model file
/// describes it, and maps outputs back to the target's units. Shared by everything that feeds a model rows
/// (offline predict, replay, the stream grains) so they all agree.
/// Input layout: [raw features (in column order) | calendar features (in metadata order)], then z-scored
/// when the model has normalisation.
/// </summary>
public sealed class ModelInputEncoder
{
    private readonly float[]? _mean;   // [D] or null
    private readonly float[]? _std;    // [D] or null
    private readonly CalendarFeature[] _calendar;

    public ModelInputEncoder(LstmConfig config, ModelMetadata metadata)
    {
        if (metadata.Check(config) is { } problem)
            throw new ArgumentException($"Metadata does not fit the model: {problem}", nameof(metadata));
        Config = config;
        RawFeatureCount = metadata.RawFeatureCount(config.InputSize);
        TargetColumn = metadata.TargetColumn;
        Residual = metadata.Residual;
        _calendar = metadata.CalendarFeatures.ToArray();
        if (metadata.Normalization is { } n)
        {
            _mean = n.Mean.ToArray();
            _std = n.Std.ToArray();
        }
    }

    public LstmConfig Config { get; }

    /// <summary>How many raw values a row must have.</summary>
    public int RawFeatureCount { get; }

    /// <summary>Index of the predicted value among the raw features.</summary>
    public int TargetColumn { get; }

    /// <summary>True when the head predicts changes from the current target input (<see cref="ModelMetadata.Residual"/>).</summary>
    public bool Residual { get; }

    /// <summary>True when the model needs each row's timestamp (it has calendar features).</summary>
    public bool UsesTimestamp => _calendar.Length > 0;

    /// <summary>Writes x [D] for a row with raw values <paramref name="raw"/> [RawFeatureCount] taken at <paramref name="timestamp"/>.</summary>
    public void Encode(DateTime timestamp, ReadOnlySpan<float> raw, Span<float> x)
    {
        if (raw.Length != RawFeatureCount)
            throw new ArgumentException($"Expected {RawFeatureCount} raw feature values, got {raw.Length}.", nameof(raw));
        if (x.Length != Config.InputSize)
            throw new ArgumentException($"Expected an input buffer of {Config.InputSize}, got {x.Length}.", nameof(x));
        raw.CopyTo(x);
        WriteCalendarFeatures(timestamp, _calendar, x[RawFeatureCount..]);
        if (_mean is not null)
            for (int i = 0; i < x.Length; i++)
                x[i] = (x[i] - _mean[i]) / _std![i];
    }

    /// <summary>
    /// Writes the calendar features <paramref name="features"/> of <paramref name="timestamp"/> (its clock time as given,
    /// whatever its kind) into <paramref name="destination"/> [features.Length], unnormalised. The one definition of
    /// the calendar inputs: <see cref="Encode"/> and the stream grains both call it.
    /// </summary>
    public static void WriteCalendarFeatures(DateTime timestamp, ReadOnlySpan<CalendarFeature> features, Span<float> destination)
    {
        if (destination.Length != features.Length)
            throw new ArgumentException($"Expected a buffer of {features.Length} calendar features, got {destination.Length}.", nameof(destination));
        if (features.Length == 0) return;
        double dayFraction = timestamp.TimeOfDay.TotalHours / 24.0;
        double weekFraction = (((int)timestamp.DayOfWeek + 6) % 7 + dayFraction) / 7.0;   // Monday = 0
        for (int i = 0; i < features.Length; i++)
        {
            destination[i] = features[i] switch
            {
                CalendarFeature.HourSin => (float)Math.Sin(2 * Math.PI * dayFraction),
                CalendarFeature.HourCos => (float)Math.Cos(2 * Math.PI * dayFraction),
                CalendarFeature.WeekdaySin => (float)Math.Sin(2 * Math.PI * weekFraction),
                CalendarFeature.WeekdayCos => (float)Math.Cos(2 * Math.PI * weekFraction),
                _ => throw new InvalidOperationException($"Unknown calendar feature {features[i]}."),
            };
        }
    }

    /// <summary>
    /// Turns head outputs y [K] for the step whose encoded input was <paramref name="x"/> [D] into forecasts in the
    /// target's units, in place: a residual head's outputs are changes, so x's target input is added first (the
    /// stream grains do the same), then <see cref="DecodeOutputs"/>.
    /// </summary>
    public void DecodeForecasts(ReadOnlySpan<float> x, Span<float> y)
    {
        if (x.Length != Config.InputSize)
            throw new ArgumentException($"Expected an input of {Config.InputSize}, got {x.Length}.", nameof(x));
        if (Residual) ResidualHead.ToLevels(x, TargetColumn, y);
        DecodeOutputs(y);
    }

    /// <summary>Maps head outputs y [K] (normalised target units, levels) back to the target's units, in place.</summary>
    public void DecodeOutputs(Span<float> y)
    {
        if (_mean is null) return;
        float mean = _mean[TargetColumn], std = _std![TargetColumn];
        for (int k = 0; k < y.Length; k++)
            y[k] = y[k] * std + mean;
    }
}
