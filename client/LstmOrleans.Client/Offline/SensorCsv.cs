using System.Globalization;
using System.Text;

namespace LstmOrleans.Client.Offline;

/// <summary>A CSV file is malformed; the message names the file and line.</summary>
internal sealed class CsvFormatException(string message) : Exception(message);

/// <summary>
/// A sensor CSV in memory: a header, then one row per reading; the first column is a timestamp (e.g.
/// <c>2013-12-02 21:15:00</c>, as in the NAB data), every other column a finite number.
/// </summary>
internal sealed class SensorTable
{
    public SensorTable(string timestampColumn, string[] featureNames, string[] timestampText, DateTime[] timestamps, float[] values)
    {
        TimestampColumn = timestampColumn;
        FeatureNames = featureNames;
        TimestampText = timestampText;
        Timestamps = timestamps;
        Values = values;
    }

    public string TimestampColumn { get; }

    /// <summary>Names of the value columns, in order (the header without the timestamp column).</summary>
    public string[] FeatureNames { get; }

    /// <summary>Each row's timestamp as written in the file, so outputs can repeat it unchanged.</summary>
    public string[] TimestampText { get; }

    /// <summary>Each row's timestamp, parsed as UTC.</summary>
    public DateTime[] Timestamps { get; }

    /// <summary>All values, row-major: [RowCount, FeatureCount].</summary>
    public float[] Values { get; }

    public int RowCount => Timestamps.Length;

    public int FeatureCount => FeatureNames.Length;

    public ReadOnlySpan<float> Row(int row) => Values.AsSpan(row * FeatureCount, FeatureCount);
}

/// <summary>Reads sensor CSVs and writes prediction CSVs; shared by every command that handles such files.</summary>
internal static class SensorCsv
{
    private static readonly string[] TimestampFormats =
    [
        "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm:ss.FFFFFFF", "yyyy-MM-dd HH:mm", "yyyy-MM-dd",
        "yyyy-MM-ddTHH:mm:ss", "yyyy-MM-ddTHH:mm:ss.FFFFFFF", "yyyy-MM-ddTHH:mm:ssZ", "yyyy-MM-ddTHH:mm:ss.FFFFFFFZ",
        "yyyy-MM-ddTHH:mm:sszzz", "yyyy-MM-ddTHH:mm:ss.FFFFFFFzzz",
    ];

    public static SensorTable Read(string path, CancellationToken cancellationToken = default)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Data file '{path}' does not exist.", path);
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return Read(reader, path, cancellationToken);
    }

    /// <summary>
    /// Parses a whole CSV; throws <see cref="CsvFormatException"/> naming <paramref name="source"/> and the line on any problem,
    /// and <see cref="OperationCanceledException"/> between lines when <paramref name="cancellationToken"/> fires (a large file takes seconds).
    /// </summary>
    public static SensorTable Read(TextReader reader, string source, CancellationToken cancellationToken = default)
    {
        int lineNumber = 0;
        string? line;
        string[]? header = null;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNumber++;
            if (line.Length == 0) continue;
            header = Split(line, source, lineNumber);
            break;
        }
        if (header is null)
            throw new CsvFormatException($"{source}: the file is empty; expected a header line such as 'timestamp,value'.");
        if (header.Length < 2)
            throw new CsvFormatException($"{source} line {lineNumber}: the header has {header.Length} column; expected a timestamp column and at least one value column.");
        for (int i = 0; i < header.Length; i++)
        {
            header[i] = header[i].Trim();
            if (header[i].Length == 0)
                throw new CsvFormatException($"{source} line {lineNumber}: header column {i + 1} has no name.");
        }
        var duplicate = header.GroupBy(h => h, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new CsvFormatException($"{source} line {lineNumber}: column '{duplicate.Key}' appears twice in the header.");

        int features = header.Length - 1;
        var timestampText = new List<string>();
        var timestamps = new List<DateTime>();
        var values = new List<float>();
        while ((line = reader.ReadLine()) is not null)
        {
            cancellationToken.ThrowIfCancellationRequested();
            lineNumber++;
            if (line.Length == 0) continue;
            var fields = Split(line, source, lineNumber);
            if (fields.Length != header.Length)
                throw new CsvFormatException($"{source} line {lineNumber}: {fields.Length} fields, but the header has {header.Length} columns.");
            string stamp = fields[0].Trim();
            if (!TryParseTimestamp(stamp, out var timestamp))
                throw new CsvFormatException($"{source} line {lineNumber}: '{stamp}' is not a timestamp (expected e.g. 2013-12-02 21:15:00).");
            timestampText.Add(stamp);
            timestamps.Add(timestamp);
            for (int c = 1; c < fields.Length; c++)
            {
                string text = fields[c].Trim();
                if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value))
                    throw new CsvFormatException($"{source} line {lineNumber}, column '{header[c]}': '{text}' is not a number.");
                if (!float.IsFinite(value))
                    throw new CsvFormatException($"{source} line {lineNumber}, column '{header[c]}': '{text}' is not a finite number.");
                values.Add(value);
            }
        }
        return new SensorTable(header[0], header[1..], [.. timestampText], [.. timestamps], [.. values]);
    }

    public static bool TryParseTimestamp(string text, out DateTime timestamp) =>
        DateTime.TryParseExact(text, TimestampFormats, CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out timestamp);

    /// <summary>Splits one CSV line (RFC 4180 quoting within the line: "a,b" and "say ""hi""").</summary>
    private static string[] Split(string line, string source, int lineNumber)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char ch = line[i];
            if (quoted)
            {
                if (ch == '"')
                {
                    if (i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i++; }
                    else quoted = false;
                }
                else field.Append(ch);
            }
            else if (ch == '"') quoted = true;
            else if (ch == ',') { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(ch);
        }
        if (quoted)
            throw new CsvFormatException($"{source} line {lineNumber}: a quoted field is not closed.");
        fields.Add(field.ToString());
        return [.. fields];
    }

    /// <summary>Quotes a field when it holds a comma, quote or line break.</summary>
    public static string Escape(string field) =>
        field.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + field.Replace("\"", "\"\"") + "\"" : field;

    /// <summary>Shortest text that parses back to exactly <paramref name="value"/>.</summary>
    public static string Format(float value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>
    /// Writes predictions: header <c>timestamp,y1,...,yK</c>, then one row per timestamp with K values from
    /// <paramref name="predictions"/> [rows, K]. Throws <see cref="OperationCanceledException"/> between rows when
    /// <paramref name="cancellationToken"/> fires.
    /// </summary>
    public static void WritePredictions(TextWriter writer, IReadOnlyList<string> timestamps, ReadOnlySpan<float> predictions, int horizons,
        CancellationToken cancellationToken = default)
    {
        if (predictions.Length != timestamps.Count * horizons)
            throw new ArgumentException($"Expected {timestamps.Count} x {horizons} predictions, got {predictions.Length}.");
        var line = new StringBuilder();
        line.Append("timestamp");
        for (int k = 1; k <= horizons; k++) line.Append(",y").Append(k.ToString(CultureInfo.InvariantCulture));
        writer.Write(line.Append('\n'));
        for (int r = 0; r < timestamps.Count; r++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            line.Clear().Append(Escape(timestamps[r]));
            foreach (float v in predictions.Slice(r * horizons, horizons))
                line.Append(',').Append(Format(v));
            writer.Write(line.Append('\n'));
        }
    }
}
