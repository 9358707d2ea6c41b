using System.Globalization;
using System.Text;
using System.Text.Json;
using LstmOrleans.Abstractions;

namespace LstmOrleans.Silo.Api;

/// <summary>An observation as sent over HTTP: sequence and timestamp may be left for the server to fill in.</summary>
public sealed record ObservationInput(long? Sequence, DateTimeOffset? Timestamp, float[] Values);

/// <summary>The request cannot be used; answered with <see cref="StatusCode"/> and nothing is ingested.</summary>
public sealed class RequestValidationException(string message, int statusCode = StatusCodes.Status400BadRequest) : Exception(message)
{
    public int StatusCode { get; } = statusCode;
}

/// <summary>
/// Parses ingest bodies. JSON: one object <c>{"sequence":1,"timestamp":"...","values":[1.5]}</c> (or <c>"value":1.5</c>)
/// or an array of them. NDJSON: one such object a line. CSV: a header naming the columns; <c>sequence</c> and
/// <c>timestamp</c> are optional and every other column is a feature, in order (NAB's <c>timestamp,value</c> works as is).
/// Non-finite values and values beyond <see cref="Observation.MaxMagnitude"/> are rejected here, with their position,
/// before anything reaches a grain (a body larger than a grain batch goes in several calls, so a value the grain would
/// reject in a later call must not get past this check). <see cref="IngestBodyDocumentation"/> describes what this
/// accepts for OpenAPI: keep the two in step.
/// </summary>
public static class ObservationParser
{
    public static List<ObservationInput> Parse(ReadOnlySpan<byte> body, string? contentType, int maxCount)
    {
        // Spreadsheet exports ("CSV UTF-8") and some JSON writers start with a byte order mark; left in, it made the
        // first CSV column an unknown name and the JSON malformed.
        if (body.StartsWith(Encoding.UTF8.Preamble)) body = body[Encoding.UTF8.Preamble.Length..];
        var mediaType = (contentType ?? "application/json").Split(';')[0].Trim().ToLowerInvariant();
        var result = mediaType switch
        {
            "application/json" or "text/json" => ParseJson(body, maxCount),
            "application/x-ndjson" or "application/ndjson" or "application/jsonl" => ParseNdjson(body, maxCount),
            "text/csv" or "application/csv" => ParseCsv(body, maxCount),
            _ => throw new RequestValidationException(
                $"Unsupported Content-Type '{mediaType}'; use application/json, application/x-ndjson or text/csv.",
                StatusCodes.Status415UnsupportedMediaType),
        };
        if (result.Count == 0)
            throw new RequestValidationException("The body holds no observations.");
        var withSequence = result.Count(o => o.Sequence is not null);
        if (withSequence != 0 && withSequence != result.Count)
            throw new RequestValidationException("Either every observation carries a sequence number or none does (then the server numbers them after the stream's last one).");
        return result;
    }

    private static List<ObservationInput> ParseJson(ReadOnlySpan<byte> body, int maxCount)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        var list = new List<ObservationInput>();
        try
        {
            if (!reader.Read())
                throw new RequestValidationException("The body is empty; expected a JSON object or array.");
            if (reader.TokenType == JsonTokenType.StartArray)
            {
                var index = 0;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (list.Count >= maxCount) throw TooMany(maxCount);
                    list.Add(ReadObservation(ref reader, $"observation [{index++}]"));
                }
            }
            else
            {
                list.Add(ReadObservation(ref reader, "observation"));
            }
            if (reader.Read())
                throw new RequestValidationException($"Unexpected content after the JSON value at byte {reader.TokenStartIndex}.");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException) // InvalidOperationException: invalid UTF-8 in a string
        {
            throw new RequestValidationException($"Malformed JSON: {ex.Message}");
        }
        return list;
    }

    private static List<ObservationInput> ParseNdjson(ReadOnlySpan<byte> body, int maxCount)
    {
        var list = new List<ObservationInput>();
        var lineNumber = 0;
        while (!body.IsEmpty)
        {
            lineNumber++;
            var newline = body.IndexOf((byte)'\n');
            var line = newline < 0 ? body : body[..newline];
            body = newline < 0 ? [] : body[(newline + 1)..];
            if (line.Trim(" \t\r"u8).IsEmpty) continue;
            if (list.Count >= maxCount) throw TooMany(maxCount);
            try
            {
                var reader = new Utf8JsonReader(line);
                reader.Read();
                list.Add(ReadObservation(ref reader, $"line {lineNumber}"));
                if (reader.Read())
                    throw new RequestValidationException($"Line {lineNumber}: more than one JSON value on the line.");
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException) // InvalidOperationException: invalid UTF-8 in a string
            {
                throw new RequestValidationException($"Malformed JSON on line {lineNumber}: {ex.Message}");
            }
        }
        return list;
    }

    private static ObservationInput ReadObservation(ref Utf8JsonReader reader, string where)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
            throw new RequestValidationException($"{where}: expected a JSON object like {{\"sequence\":1,\"timestamp\":\"2024-01-01T00:00:00Z\",\"values\":[1.5]}}.");
        long? sequence = null;
        DateTimeOffset? timestamp = null;
        float[]? values = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = reader.GetString()!;
            reader.Read();
            var key = name.ToLowerInvariant();
            // A property given twice, or with its alias ({"value":1,"values":[2]}, {"sequence":5,"seq":3}), was taken
            // from its last occurrence without a word: another value or idempotency key than the sender may have meant.
            if (key switch
                {
                    "sequence" or "seq" => sequence is not null,
                    "timestamp" or "time" => timestamp is not null,
                    "value" or "values" => values is not null,
                    _ => false,
                })
                throw new RequestValidationException($"{where}: '{name}' repeats a property already given (sequence/seq, timestamp/time and value/values each name one).");
            switch (key)
            {
                case "sequence" or "seq":
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var s) || s < 0)
                        throw new RequestValidationException($"{where}: 'sequence' must be a non-negative integer.");
                    sequence = s;
                    break;
                case "timestamp" or "time":
                    if (reader.TokenType != JsonTokenType.String || !TryParseTimestamp(reader.GetString()!, out var t))
                        throw new RequestValidationException($"{where}: 'timestamp' must be an ISO 8601 string.");
                    timestamp = t;
                    break;
                case "value":
                    values = [ReadFloat(ref reader, $"{where}: 'value'")];
                    break;
                case "values":
                    if (reader.TokenType != JsonTokenType.StartArray)
                        throw new RequestValidationException($"{where}: 'values' must be an array of numbers.");
                    var buffer = new List<float>();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                        buffer.Add(ReadFloat(ref reader, $"{where}: values[{buffer.Count}]"));
                    values = [.. buffer];
                    break;
                default:
                    throw new RequestValidationException($"{where}: unknown property '{name}' (expected sequence, timestamp, value or values).");
            }
        }
        if (values is null || values.Length == 0)
            throw new RequestValidationException($"{where}: 'values' (or 'value') is required and must not be empty.");
        return new ObservationInput(sequence, timestamp, values);
    }

    private static float ReadFloat(ref Utf8JsonReader reader, string what)
    {
        // JSON has no NaN; a client that sends "NaN" or "Infinity" as a string still gets a precise answer.
        if (reader.TokenType == JsonTokenType.String)
        {
            var text = reader.GetString();
            throw new RequestValidationException($"{what} must be a finite number; got \"{text}\".");
        }
        if (reader.TokenType != JsonTokenType.Number)
            throw new RequestValidationException($"{what} must be a number.");
        if (!reader.TryGetDouble(out var d) || !double.IsFinite(d) || !Observation.IsAcceptable((float)d))
            throw new RequestValidationException($"{what} must be a finite number of at most {Observation.MaxMagnitude:G} in magnitude.");
        return (float)d;
    }

    private static List<ObservationInput> ParseCsv(ReadOnlySpan<byte> body, int maxCount)
    {
        var text = Encoding.UTF8.GetString(body);
        using var lines = new StringReader(text);
        var header = lines.ReadLine();
        if (string.IsNullOrWhiteSpace(header))
            throw new RequestValidationException("CSV: the first line must be a header, e.g. 'timestamp,value'.");
        var columns = header.Split(',').Select(c => c.Trim().Trim('"').ToLowerInvariant()).ToArray();
        // A file without a header (NAB's rows alone, or one value a line) had its first row taken for column names:
        // the row was dropped and the rest acknowledged as if that were all.
        if (columns.FirstOrDefault(LooksLikeData) is { } dataCell)
            throw new RequestValidationException($"CSV: the first line must be a header naming the columns, e.g. 'timestamp,value'; '{dataCell}' in '{header}' is a value, not a column name.");
        var sequenceColumn = Array.IndexOf(columns, "sequence");
        var timestampColumn = Array.IndexOf(columns, "timestamp");
        var featureColumns = Enumerable.Range(0, columns.Length).Where(i => i != sequenceColumn && i != timestampColumn).ToArray();
        if (featureColumns.Length == 0)
            throw new RequestValidationException("CSV: the header names no value column.");
        var list = new List<ObservationInput>();
        var lineNumber = 1;
        while (lines.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            if (list.Count >= maxCount) throw TooMany(maxCount);
            var cells = line.Split(',');
            if (cells.Length != columns.Length)
                throw new RequestValidationException($"CSV line {lineNumber}: {cells.Length} cells, the header has {columns.Length}.");
            long? sequence = null;
            if (sequenceColumn >= 0)
            {
                if (!long.TryParse(cells[sequenceColumn], NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) || s < 0)
                    throw new RequestValidationException($"CSV line {lineNumber}: sequence '{cells[sequenceColumn]}' is not a non-negative integer.");
                sequence = s;
            }
            DateTimeOffset? timestamp = null;
            if (timestampColumn >= 0)
            {
                if (!TryParseTimestamp(cells[timestampColumn].Trim().Trim('"'), out var t))
                    throw new RequestValidationException($"CSV line {lineNumber}: timestamp '{cells[timestampColumn]}' is not a date and time.");
                timestamp = t;
            }
            var values = new float[featureColumns.Length];
            for (var i = 0; i < featureColumns.Length; i++)
            {
                var cell = cells[featureColumns[i]].Trim();
                if (!float.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !Observation.IsAcceptable(v))
                    throw new RequestValidationException($"CSV line {lineNumber}: column '{columns[featureColumns[i]]}' value '{cell}' is not a finite number of at most {Observation.MaxMagnitude:G} in magnitude.");
                values[i] = v;
            }
            list.Add(new ObservationInput(sequence, timestamp, values));
        }
        return list;
    }

    private static bool LooksLikeData(string cell) =>
        double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out _) || (cell.Any(char.IsDigit) && TryParseTimestamp(cell, out _));

    /// <summary>ISO 8601, or NAB's "yyyy-MM-dd HH:mm:ss"; without an offset the time is taken as UTC.</summary>
    public static bool TryParseTimestamp(string text, out DateTimeOffset timestamp) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out timestamp);

    private static RequestValidationException TooMany(int maxCount) =>
        new($"More than {maxCount} observations in one request; split the batch (Http:MaxBatchSize).", StatusCodes.Status413PayloadTooLarge);
}
