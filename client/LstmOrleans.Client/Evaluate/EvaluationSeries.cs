using LstmOrleans.Client.Offline;

namespace LstmOrleans.Client.Evaluate;

/// <summary>One series to replay: a stream's name, its timestamps and its target values, already sliced and downsampled.</summary>
/// <param name="Name">Display name (the file name without extension).</param>
/// <param name="Timestamps">[N] UTC timestamps, non-decreasing.</param>
/// <param name="Values">[N] target values.</param>
/// <param name="SourceRows">Rows of the file the slice came from (before downsampling and slicing).</param>
/// <param name="DroppedRows">
/// File rows dropped because their timestamp was earlier than an earlier row's: a stream grain rejects such an
/// observation (timestamps must not go backwards), so live data would lose them the same way.
/// </param>
internal sealed record EvaluationSeries(string Name, DateTime[] Timestamps, float[] Values, int SourceRows, int DroppedRows = 0)
{
    public int Length => Values.Length;

    /// <summary>Median spacing of consecutive timestamps (null for fewer than two rows).</summary>
    public TimeSpan? MedianInterval()
    {
        if (Timestamps.Length < 2) return null;
        var gaps = new long[Timestamps.Length - 1];
        for (int i = 1; i < Timestamps.Length; i++) gaps[i - 1] = (Timestamps[i] - Timestamps[i - 1]).Ticks;
        Array.Sort(gaps);
        return TimeSpan.FromTicks(gaps[gaps.Length / 2]);
    }
}

/// <summary>How the replayed slice is cut from each file.</summary>
/// <param name="Column">Value column to predict (null = the first value column).</param>
/// <param name="Downsample">Replace every block of this many consecutive rows by their mean (stamped with the block's last timestamp).</param>
/// <param name="FromStep">First replayed step (after downsampling).</param>
/// <param name="UntilStep">Replayed steps end before this one (after downsampling); null = to the end.</param>
internal sealed record SliceOptions(string? Column, int Downsample, int FromStep, int? UntilStep);

/// <summary>Loads a CSV file, or every *.csv of a folder, as <see cref="EvaluationSeries"/> (one per file, sorted by name).</summary>
internal static class EvaluationData
{
    public static IReadOnlyList<EvaluationSeries> Load(string path, SliceOptions slice)
    {
        if (slice.Downsample < 1) throw new CliException($"--downsample must be at least 1, got {slice.Downsample}.");
        if (slice.FromStep < 0) throw new CliException($"--from-step must not be negative, got {slice.FromStep}.");
        if (slice.UntilStep is { } until && until <= slice.FromStep)
            throw new CliException($"--until-step ({until}) must be greater than --from-step ({slice.FromStep}).");

        string[] files;
        if (Directory.Exists(path))
        {
            files = Directory.GetFiles(path, "*.csv").OrderBy(f => f, StringComparer.Ordinal).ToArray();
            if (files.Length == 0) throw new CliException($"Folder '{path}' contains no .csv file.");
        }
        else if (File.Exists(path)) files = [path];
        else throw new CliException($"'{path}' is neither a CSV file nor a folder.");

        var result = new List<EvaluationSeries>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (string file in files)
        {
            var series = LoadFile(file, slice);
            if (!names.Add(series.Name)) throw new CliException($"Two files are named '{series.Name}'; stream names must be unique.");
            result.Add(series);
        }
        return result;
    }

    public static EvaluationSeries LoadFile(string file, SliceOptions slice)
    {
        var table = SensorCsv.Read(file);
        int column = 0;
        if (slice.Column is { } name)
        {
            column = Array.IndexOf(table.FeatureNames, name);
            if (column < 0)
                throw new CliException($"{file}: no column '{name}'; the value columns are {string.Join(", ", table.FeatureNames)}.");
        }
        // Keep the rows a stream grain would accept: none earlier than the latest kept timestamp.
        var keptTimes = new List<DateTime>(table.RowCount);
        var keptValues = new List<float>(table.RowCount);
        for (int r = 0; r < table.RowCount; r++)
        {
            if (keptTimes.Count > 0 && table.Timestamps[r] < keptTimes[^1]) continue;
            keptTimes.Add(table.Timestamps[r]);
            keptValues.Add(table.Values[r * table.FeatureCount + column]);
        }
        int dropped = table.RowCount - keptTimes.Count;

        int blocks = keptTimes.Count / slice.Downsample;
        var timestamps = new DateTime[blocks];
        var values = new float[blocks];
        for (int b = 0; b < blocks; b++)
        {
            double sum = 0;
            for (int i = 0; i < slice.Downsample; i++) sum += keptValues[b * slice.Downsample + i];
            values[b] = (float)(sum / slice.Downsample);
            timestamps[b] = keptTimes[b * slice.Downsample + slice.Downsample - 1];
        }
        int from = Math.Min(slice.FromStep, blocks);
        int until = Math.Min(slice.UntilStep ?? blocks, blocks);
        string stream = Path.GetFileNameWithoutExtension(file);
        return new EvaluationSeries(stream, timestamps[from..until], values[from..until], table.RowCount, dropped);
    }
}
