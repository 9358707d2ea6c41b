using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;

namespace LstmOrleans.Client.Offline;

/// <summary>Runs a loaded model over a sensor table in-process, as the stream grains would, one step per row.</summary>
internal static class OfflineModel
{
    /// <summary>The metadata key <c>model export</c> records a cluster model's stream normalisation under.</summary>
    public const string StreamNormalizationKey = "lstmorleans.stream_normalization";

    /// <summary>
    /// Warns when the file is a cluster model whose streams normalise their values with running z-scores: offline
    /// predict and train feed the raw values (the statistics live in each stream, not in the file), so their
    /// forecasts are not the cluster's and weights trained on them do not fit the cluster model they came from. They
    /// did so without a word, and a model exported, trained offline and imported back forecast on another scale.
    /// </summary>
    public static void WarnIfStreamNormalized(ModelMetadata metadata, TextWriter stderr)
    {
        if (metadata.Extra.TryGetValue(StreamNormalizationKey, out var mode) && !string.Equals(mode, "None", StringComparison.OrdinalIgnoreCase))
            stderr.WriteLine($"warning: in the cluster this model's streams normalise their values ({StreamNormalizationKey} = {mode}); " +
                "offline the values go in as they are in the CSV, so these results are not what the cluster computes, and " +
                "weights trained here do not fit a cluster model that normalises.");
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

    /// <summary>Every row as the model sees it: [rows, D], raw features then calendar features, normalised when the model says so.</summary>
    public static float[] EncodeRows(LstmConfig config, ModelMetadata metadata, SensorTable table)
    {
        var encoder = new ModelInputEncoder(config, metadata);
        var rows = new float[table.RowCount * config.InputSize];           // [N, D]
        for (int row = 0; row < table.RowCount; row++)
            encoder.Encode(table.Timestamps[row], table.Row(row), rows.AsSpan(row * config.InputSize, config.InputSize));
        return rows;
    }

    /// <summary>
    /// From zero state, one <see cref="LstmWeights.Step"/> per row; returns predictions [rows, K] in the
    /// target's units (de-normalised when the model normalises its inputs). Throws <see cref="OperationCanceledException"/>
    /// between rows when <paramref name="cancellationToken"/> fires.
    /// </summary>
    public static float[] Predict(LstmParameters parameters, ModelMetadata metadata, SensorTable table, string source = "the data file",
        CancellationToken cancellationToken = default)
    {
        var config = parameters.Config;
        CheckColumns(config, metadata, table, source);
        var encoder = new ModelInputEncoder(config, metadata);
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
