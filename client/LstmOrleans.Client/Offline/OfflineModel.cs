using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;

namespace LstmOrleans.Client.Offline;

/// <summary>Runs a loaded model over a sensor table in-process, as the stream grains would, one step per row.</summary>
internal static class OfflineModel
{
    /// <summary>The metadata key <c>model export</c> records a cluster model's stream normalisation under.</summary>
    public const string StreamNormalizationKey = "lstmorleans.stream_normalization";

    /// <summary>
    /// How the cluster's streams normalise this file's model (<see cref="NormalizationMode.None"/> for a file that
    /// records none, such as one written by <c>model init</c>). Throws <see cref="CliException"/> for a mode this client
    /// does not know, and for a file that also carries fixed (standard) normalisation: the two would both apply.
    /// </summary>
    public static NormalizationMode StreamNormalization(ModelMetadata metadata)
    {
        if (!metadata.Extra.TryGetValue(StreamNormalizationKey, out var text)) return NormalizationMode.None;
        // By name only (model export writes the name): Enum.TryParse also takes numbers ("7") and lists ("None, RunningZScore").
        if (Enum.GetNames<NormalizationMode>().FirstOrDefault(n => string.Equals(n, text, StringComparison.OrdinalIgnoreCase)) is not { } name)
            throw new CliException($"The model file's {StreamNormalizationKey} is '{text}'; known: {string.Join(", ", Enum.GetNames<NormalizationMode>())}.");
        var mode = Enum.Parse<NormalizationMode>(name);
        if (mode != NormalizationMode.None && metadata.Normalization is not null)
            throw new CliException($"The model file has both fixed normalisation statistics and {StreamNormalizationKey} = {mode}; only one can apply.");
        return mode;
    }

    /// <summary>
    /// Warns when offline training would not normalise as the cluster does: its training rounds fit windows of each
    /// stream's running z-scores with targets in their origin row's normalisation, while <c>model train</c> feeds the
    /// CSV's raw values, so weights trained here do not fit the cluster model they came from (<c>model predict</c>
    /// replays the streams' normalisation and needs no warning).
    /// </summary>
    public static void WarnIfTrainingIsRaw(ModelMetadata metadata, TextWriter stderr)
    {
        if (StreamNormalization(metadata) is var mode && mode != NormalizationMode.None)
            stderr.WriteLine($"warning: in the cluster this model's streams normalise their values ({StreamNormalizationKey} = {mode}); " +
                "model train feeds the values as they are in the CSV, so weights trained here do not fit a cluster model that normalises.");
    }

    /// <summary>Throws <see cref="CliException"/> unless the table's value columns are the model's raw inputs.</summary>
    public static void CheckColumns(LstmConfig config, ModelMetadata metadata, SensorTable table, string source)
    {
        int expected = metadata.RawFeatureCount(config.InputSize);
        if (table.FeatureCount != expected)
            throw new CliException(
                $"{source} has {table.FeatureCount} value column{(table.FeatureCount == 1 ? "" : "s")} ({string.Join(", ", table.FeatureNames)}) " +
                $"but the model takes {expected} (input size {config.InputSize}" +
                (metadata.CalendarFeatures.Count > 0 ? $" minus {metadata.CalendarFeatures.Count} calendar features)." : ")."));
        if (metadata.FeatureNames.Count > 0 && !metadata.FeatureNames.SequenceEqual(table.FeatureNames, StringComparer.Ordinal))
            throw new CliException(
                $"{source} has columns ({string.Join(", ", table.FeatureNames)}) but the model was built for ({string.Join(", ", metadata.FeatureNames)}), in that order.");
        if (table.RowCount == 0)
            throw new CliException($"{source} has a header but no data rows.");
    }

    /// <summary>
    /// Every row as the model sees it: [rows, D], raw features then calendar features, normalised when the model says
    /// so (with running z-scores, as one stream that received the rows in order from the first).
    /// </summary>
    /// <param name="normalize">False: leave running z-scores out (model train, which does not yet score targets as the cluster's rounds do).</param>
    public static float[] EncodeRows(LstmConfig config, ModelMetadata metadata, SensorTable table, bool normalize = true)
    {
        var encoder = new RowEncoder(config, metadata, normalize);
        var rows = new float[table.RowCount * config.InputSize];           // [N, D]
        for (int row = 0; row < table.RowCount; row++)
            encoder.Encode(table.Timestamps[row], table.Row(row), rows.AsSpan(row * config.InputSize, config.InputSize));
        return rows;
    }

    /// <summary>
    /// From zero state, one <see cref="LstmWeights.Step"/> per row; returns predictions [rows, K] in the
    /// target's units (de-normalised when the model normalises its inputs). For a model whose cluster streams normalise
    /// with running z-scores these are the forecasts a new stream of that model answers for the same rows (the same
    /// <see cref="RunningZScore"/> steps). Throws <see cref="OperationCanceledException"/> between rows when
    /// <paramref name="cancellationToken"/> fires.
    /// </summary>
    public static float[] Predict(LstmParameters parameters, ModelMetadata metadata, SensorTable table, string source = "the data file",
        CancellationToken cancellationToken = default)
    {
        var config = parameters.Config;
        CheckColumns(config, metadata, table, source);
        var encoder = new RowEncoder(config, metadata);
        var weights = LstmWeights.From(parameters);
        var h = new float[config.StateSize];         // [L, H]
        var c = new float[config.StateSize];         // [L, H]
        var x = new float[config.InputSize];         // [D]
        var predictions = new float[table.RowCount * config.Horizons];   // [rows, K]
        for (int row = 0; row < table.RowCount; row++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            encoder.Encode(table.Timestamps[row], table.Row(row), x);
            Span<float> y = predictions.AsSpan(row * config.Horizons, config.Horizons);
            weights.Step(x, h, c, y);
            encoder.DecodeForecasts(x, y);
            foreach (float v in y)
                if (!float.IsFinite(v))
                    throw new CliException($"The prediction for row {row + 1} ({table.TimestampText[row]}) is not finite; the inputs are far outside what the model can handle.");
        }
        return predictions;
    }
}

/// <summary>
/// <see cref="ModelInputEncoder"/> plus the cluster streams' running z-scores when the file records them
/// (<see cref="OfflineModel.StreamNormalizationKey"/>): the rows are one stream's observations, in order, each normalised
/// with statistics that include it and nothing later (<see cref="RunningZScore"/>, the stream grains' own routine), and
/// forecasts de-normalised with the target's statistics of the same row.
/// </summary>
internal sealed class RowEncoder
{
    private readonly ModelInputEncoder _encoder;
    private readonly double[]? _mean;       // [D_raw] running mean, null unless running z-scores
    private readonly double[]? _m2;         // [D_raw] Welford sums
    private readonly float[]? _normalized;  // [D_raw] the current row's normalised values
    private long _count;

    /// <param name="streamNormalization">False: the file's running z-scores are not applied (raw values, as before).</param>
    public RowEncoder(LstmConfig config, ModelMetadata metadata, bool streamNormalization = true)
    {
        _encoder = new ModelInputEncoder(config, metadata);
        if (!streamNormalization || OfflineModel.StreamNormalization(metadata) != NormalizationMode.RunningZScore) return;
        int d = _encoder.RawFeatureCount;
        (_mean, _m2, _normalized) = (new double[d], new double[d], new float[d]);
    }

    /// <summary>The next row: writes x [D] for raw values <paramref name="raw"/> [D_raw] taken at <paramref name="timestamp"/>.</summary>
    public void Encode(DateTime timestamp, ReadOnlySpan<float> raw, Span<float> x)
    {
        if (_mean is null)
        {
            _encoder.Encode(timestamp, raw, x);
            return;
        }
        _count++;
        RunningZScore.Update(raw, _mean, _m2!, _count, _mean, _m2!);
        RunningZScore.Normalize(raw, _mean, _m2!, _count, _normalized!);
        _encoder.Encode(timestamp, _normalized!, x);
    }

    /// <summary>Head outputs y [K] of the row just encoded as <paramref name="x"/> [D], to forecasts in the target's units, in place.</summary>
    public void DecodeForecasts(ReadOnlySpan<float> x, Span<float> y)
    {
        _encoder.DecodeForecasts(x, y);
        if (_mean is null) return;
        int target = _encoder.TargetColumn;
        RunningZScore.Denormalize(_mean[target], RunningZScore.Std(_m2![target], _count), y);
    }
}
