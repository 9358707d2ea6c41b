using System.Diagnostics;
using LstmOrleans.Abstractions;

namespace LstmOrleans.Client.Replay;

/// <summary>One forecast scored against what came next: written to the --out CSV and drawn by `plot`.</summary>
internal sealed record PredictionRow(string StreamId, long Sequence, DateTimeOffset Timestamp, float Actual, float Predicted, float Lower, float Upper, float Persistence);

/// <summary>A series being replayed as one stream grain, with the scoring of its one-step forecasts.</summary>
internal sealed class ReplayStream(string streamId, SeriesFile series, int rotation = 0, int targetIndex = 0)
{
    private StepResult? _previous;
    private float? _previousActual;

    public string StreamId { get; } = streamId;
    public SeriesFile Series { get; } = series;
    public int Count => Series.Count;
    public ErrorTally Model { get; } = new();
    public ErrorTally Persistence { get; } = new();
    public List<PredictionRow> Rows { get; } = [];
    /// <summary>Observations this replay's calls applied (one step each).</summary>
    public long Accepted { get; private set; }
    /// <summary>Observations answered as duplicates: applied before (by an attempt whose answer was lost, or an earlier run), not stepped again.</summary>
    public long Duplicates { get; private set; }
    /// <summary>Calls of this stream that failed transiently and were sent again.</summary>
    public long Retries { get; set; }
    public long LastWeightsVersion => _previous?.WeightsVersion ?? 0;

    /// <summary>Row <paramref name="index"/> of the (rotated) series: copies start at different points of the same data.</summary>
    public float[] ValuesAt(int index) => Series.Values[(index + rotation) % Series.Count];

    public float TargetAt(int index) => ValuesAt(index)[targetIndex];

    /// <summary>Timestamps advance regularly from the file's first one so rotated copies never go backwards in time.</summary>
    public DateTimeOffset TimestampAt(int index)
    {
        var step = Series.Count > 1 ? (Series.Timestamps[^1] - Series.Timestamps[0]) / (Series.Count - 1) : TimeSpan.FromMinutes(1);
        if (step <= TimeSpan.Zero) step = TimeSpan.FromMinutes(1);
        return rotation == 0 ? Series.Timestamps[index] : Series.Timestamps[0] + step * index;
    }

    public Observation ObservationAt(int index) => new(index + 1, TimestampAt(index), ValuesAt(index));

    /// <summary>
    /// Scores the forecast made after the previous row against row <paramref name="index"/>, then keeps this row's
    /// forecast. A duplicate's answer is the stream's latest one, which is this row's own forecast only when this row was
    /// the last one applied; otherwise this row's forecast is unknown, and the next row is not scored.
    /// </summary>
    public void Record(int index, StepResult result, bool evaluate, bool keepRows)
    {
        var actual = TargetAt(index);
        if (result.Duplicate) Duplicates++;
        else Accepted++;
        if (_previous is { } previous && previous.Sequence == index && _previousActual is { } previousActual && previous.Predictions.Length > 0)
        {
            if (evaluate)
            {
                Model.Add(previous.Predictions[0], actual);
                Persistence.Add(previousActual, actual);
            }
            if (keepRows)
                Rows.Add(new PredictionRow(StreamId, index + 1, TimestampAt(index), actual, previous.Predictions[0],
                    previous.Lower[0], previous.Upper[0], previousActual));
        }
        _previous = result.Sequence == index + 1 ? result : null;   // sequence = row index + 1 (ObservationAt)
        _previousActual = actual;
    }
}

/// <summary>Sends rows of many series to their stream grains concurrently, in batches, optionally paced.</summary>
internal static class Replayer
{
    private const int MaxReportedRetries = 5;

    /// <param name="rate">Observations per second over all streams; 0 = as fast as possible.</param>
    /// <param name="retry">
    /// How a call that fails transiently is repeated (the same observations, so an applied one comes back as a
    /// duplicate); null = one attempt. A rejected observation stops the replay with its error.
    /// </param>
    public static async Task RunAsync(IGrainFactory grains, IReadOnlyList<ReplayStream> streams, int from, int to, int batchSize,
        double rate, bool evaluate, bool keepRows, Action<int> progress, CancellationToken cancellationToken, RetryPolicy? retry = null)
    {
        retry ??= RetryPolicy.None;
        int reported = 0;
        var perStreamRate = rate > 0 ? rate / streams.Count : 0;
        var started = Stopwatch.GetTimestamp();
        await Task.WhenAll(streams.Select(async stream =>
        {
            var grain = grains.GetGrain<IStreamGrain>(stream.StreamId);
            var end = Math.Min(to, stream.Count);
            var sent = 0;
            for (var index = from; index < end; index += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var count = Math.Min(batchSize, end - index);
                if (perStreamRate > 0)
                {
                    var due = TimeSpan.FromSeconds(sent / perStreamRate) - Stopwatch.GetElapsedTime(started);
                    if (due > TimeSpan.Zero) await Task.Delay(due, cancellationToken);
                }
                Func<Task<StepResult[]>> send;
                if (count == 1)
                {
                    var observation = stream.ObservationAt(index);
                    send = async () => [await grain.IngestAsync(observation)];
                }
                else
                {
                    var batch = new Observation[count];
                    for (var i = 0; i < count; i++) batch[i] = stream.ObservationAt(index + i);
                    var columns = ObservationBatch.From(batch, batch[0].Values.Length);   // rows of one file share D
                    send = async () => (await grain.IngestColumnsAsync(columns)).ToStepResults(columns);
                }
                var results = await retry.ExecuteAsync(send, notice =>
                {
                    stream.Retries++;
                    // The first few reasons are worth seeing; the rest only counted (a silo restart fails every stream at once).
                    if (Interlocked.Increment(ref reported) <= MaxReportedRetries)
                        Console.Error.WriteLine($"retry {notice.Retry} of {stream.StreamId} (sequence {index + 1}{(count > 1 ? $"..{index + count}" : "")}) in {notice.Delay.TotalSeconds:0.##} s after " +
                            $"{notice.Error.GetType().Name}: {notice.Error.Message.Split('\n')[0]}");
                }, cancellationToken);
                for (var i = 0; i < results.Length; i++)
                    stream.Record(index + i, results[i], evaluate, keepRows);
                sent += count;
                progress(count);
            }
        }));
    }

    public static async Task WritePredictionsCsvAsync(string path, IEnumerable<ReplayStream> streams)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null) Directory.CreateDirectory(directory);
        await using var writer = new StreamWriter(path);
        await writer.WriteLineAsync("stream,sequence,timestamp,actual,predicted,lower,upper,persistence");
        foreach (var stream in streams)
            foreach (var r in stream.Rows)
                await writer.WriteLineAsync(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"{r.StreamId},{r.Sequence},{r.Timestamp:yyyy-MM-ddTHH:mm:ssZ},{r.Actual},{r.Predicted},{r.Lower},{r.Upper},{r.Persistence}"));
    }
}
