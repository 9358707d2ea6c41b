using System.Globalization;

namespace LstmOrleans.Client.Replay;

/// <summary>A sensor series read from CSV: a header, an optional timestamp column, one or more numeric columns.</summary>
internal sealed record SeriesFile(string Name, string Path, DateTimeOffset[] Timestamps, float[][] Values, string[] Features)
{
    public int Count => Timestamps.Length;

    /// <summary>
    /// Reads <c>timestamp,value[,value...]</c> (NAB's format; a <c>sequence</c> column is ignored). Rows without a
    /// timestamp column get one minute apart. Throws <see cref="FormatException"/> naming the line for malformed input.
    /// </summary>
    public static SeriesFile Load(string path, int maxRows = int.MaxValue)
    {
        using var reader = new StreamReader(path);
        var header = reader.ReadLine() ?? throw new FormatException($"{path}: the file is empty; expected a header like 'timestamp,value'.");
        var columns = header.Split(',').Select(c => c.Trim().Trim('"')).ToArray();
        var timestampColumn = Array.FindIndex(columns, c => c.Equals("timestamp", StringComparison.OrdinalIgnoreCase));
        var featureColumns = Enumerable.Range(0, columns.Length)
            .Where(i => i != timestampColumn && !columns[i].Equals("sequence", StringComparison.OrdinalIgnoreCase)).ToArray();
        if (featureColumns.Length == 0)
            throw new FormatException($"{path}: the header '{header}' names no value column.");
        var timestamps = new List<DateTimeOffset>();
        var values = new List<float[]>();
        var start = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var lineNumber = 1;
        while (timestamps.Count < maxRows && reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var cells = line.Split(',');
            if (cells.Length != columns.Length)
                throw new FormatException($"{path} line {lineNumber}: {cells.Length} cells, the header has {columns.Length}.");
            DateTimeOffset timestamp;
            if (timestampColumn >= 0)
            {
                if (!DateTimeOffset.TryParse(cells[timestampColumn].Trim().Trim('"'), CultureInfo.InvariantCulture,
                        DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out timestamp))
                    throw new FormatException($"{path} line {lineNumber}: '{cells[timestampColumn]}' is not a timestamp.");
            }
            else
            {
                timestamp = start.AddMinutes(timestamps.Count);
            }
            var row = new float[featureColumns.Length];
            for (var i = 0; i < featureColumns.Length; i++)
            {
                var cell = cells[featureColumns[i]].Trim();
                if (!float.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out row[i]) || !float.IsFinite(row[i]))
                    throw new FormatException($"{path} line {lineNumber}: '{cell}' in column '{columns[featureColumns[i]]}' is not a finite number.");
            }
            timestamps.Add(timestamp);
            values.Add(row);
        }
        if (timestamps.Count == 0)
            throw new FormatException($"{path}: no data rows.");
        return new SeriesFile(System.IO.Path.GetFileNameWithoutExtension(path), path, [.. timestamps], [.. values],
            featureColumns.Select(i => columns[i]).ToArray());
    }

    /// <summary>A file, or every *.csv in a folder (sorted by name).</summary>
    public static List<SeriesFile> LoadAll(string fileOrFolder, int maxRows = int.MaxValue)
    {
        if (Directory.Exists(fileOrFolder))
        {
            var files = Directory.GetFiles(fileOrFolder, "*.csv").Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0) throw new FileNotFoundException($"The folder '{fileOrFolder}' holds no *.csv file.");
            return files.Select(f => Load(f, maxRows)).ToList();
        }
        if (!File.Exists(fileOrFolder))
            throw new FileNotFoundException($"No such file or folder: '{fileOrFolder}'.");
        return [Load(fileOrFolder, maxRows)];
    }
}
