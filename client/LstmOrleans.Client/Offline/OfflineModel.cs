using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;
using LstmOrleans.Lstm.Training;

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
    /// <param name="targetScale">
    /// With running z-scores, the target's statistics after each row ([N] means and stds: those a stream de-normalises
    /// that row's forecasts with, which the cluster's training rounds score targets in); otherwise null.
    /// </param>
    public static float[] EncodeRows(LstmConfig config, ModelMetadata metadata, SensorTable table, out SeriesScale? targetScale)
    {
        var encoder = new RowEncoder(config, metadata);
        var rows = new float[table.RowCount * config.InputSize];           // [N, D]
        double[]? mean = encoder.IsRunningZScore ? new double[table.RowCount] : null;   // [N]
        double[]? std = encoder.IsRunningZScore ? new double[table.RowCount] : null;    // [N]
        for (int row = 0; row < table.RowCount; row++)
        {
            encoder.Encode(table.Timestamps[row], table.Row(row), rows.AsSpan(row * config.InputSize, config.InputSize));
            if (mean is not null) (mean[row], std![row]) = encoder.TargetStatistics();
        }
        targetScale = mean is null ? null : new SeriesScale(mean, std!);
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

    public RowEncoder(LstmConfig config, ModelMetadata metadata)
    {
        _encoder = new ModelInputEncoder(config, metadata);
        if (OfflineModel.StreamNormalization(metadata) != NormalizationMode.RunningZScore) return;
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
        var (mean, std) = TargetStatistics();
        RunningZScore.Denormalize(mean, std, y);
    }

    /// <summary>Whether rows are normalised with running z-scores.</summary>
    public bool IsRunningZScore => _mean is not null;

    /// <summary>The target's running mean and normalising std after the row just encoded (running z-scores only).</summary>
    public (double Mean, double Std) TargetStatistics()
    {
        int target = _encoder.TargetColumn;
        return (_mean![target], RunningZScore.Std(_m2![target], _count));
    }
}
