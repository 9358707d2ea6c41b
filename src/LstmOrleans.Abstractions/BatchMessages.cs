using System.Runtime.InteropServices;

namespace LstmOrleans.Abstractions;

/// <summary>
/// An ordered batch of observations of one stream in columns, for <see cref="IStreamGrain.IngestColumnsAsync"/>: the
/// same content as an <see cref="Observation"/>[] without an object and an array per value.
///
/// Each column travels as one block of bytes. Orleans 10 writes a <c>float[]</c> or <c>long[]</c> element by element
/// (<c>ArrayCodec&lt;T&gt;</c>: a field header and a codec call per element, and the same again to read it), whereas a
/// <c>byte[]</c> is one length-prefixed copy; so the columns are kept as little-endian bytes and read through typed
/// spans. Shapes: n = <see cref="Count"/>, D = values per observation.
/// </summary>
[GenerateSerializer, Immutable, Alias("lstm.ObservationBatch")]
public sealed class ObservationBatch
{
    [Id(0)] private readonly byte[] _sequences;      // [n] long
    [Id(1)] private readonly byte[] _timestampTicks; // [n] long, UTC ticks
    [Id(2)] private readonly byte[] _values;         // [n, D] float
    [Id(3)] private readonly byte[]? _offsetMinutes; // [n] short, or null: every reading is in UTC

    /// <param name="sequences">[n] sequence numbers, strictly increasing.</param>
    /// <param name="timestampTicks">[n] timestamps as UTC ticks (<see cref="DateTimeOffset.UtcTicks"/>), never going back.</param>
    /// <param name="values">[n, D] the feature vectors, row after row, all finite.</param>
    /// <param name="offsetMinutes">
    /// [n] or empty: each reading's clock offset from UTC in minutes (what <see cref="DateTimeOffset.Offset"/> holds).
    /// The model's calendar features use the reading's own clock time, and the results carry it, exactly as for an
    /// <see cref="Observation"/>. Empty means UTC.
    /// </param>
    public ObservationBatch(ReadOnlySpan<long> sequences, ReadOnlySpan<long> timestampTicks, ReadOnlySpan<float> values,
        ReadOnlySpan<short> offsetMinutes = default)
    {
        EnsureLittleEndian();
        _sequences = MemoryMarshal.AsBytes(sequences).ToArray();
        _timestampTicks = MemoryMarshal.AsBytes(timestampTicks).ToArray();
        _values = MemoryMarshal.AsBytes(values).ToArray();
        _offsetMinutes = offsetMinutes.IsEmpty ? null : MemoryMarshal.AsBytes(offsetMinutes).ToArray();
    }

    /// <summary>Takes the column arrays as they are (the caller gives them up).</summary>
    private ObservationBatch(byte[] sequences, byte[] timestampTicks, byte[] values, byte[]? offsetMinutes)
    {
        _sequences = sequences;
        _timestampTicks = timestampTicks;
        _values = values;
        _offsetMinutes = offsetMinutes;
    }

    /// <summary>The observations of <paramref name="observations"/> in columns (each must have <paramref name="inputSize"/> values).</summary>
    public static ObservationBatch From(IReadOnlyList<Observation> observations, int inputSize)
    {
        ArgumentNullException.ThrowIfNull(observations);
        return Fill(new NumberedRows(observations), inputSize, nameof(observations));
    }

    /// <summary>
    /// Readings sent without sequence numbers in columns, numbered <paramref name="firstSequence"/>, +1, ... in order; a
    /// reading without a timestamp gets <paramref name="defaultTimestamp"/>. Each must have <paramref name="inputSize"/>
    /// values. The same batch as <see cref="From"/> of the numbered observations, without building them.
    /// </summary>
    public static ObservationBatch Numbered(IReadOnlyList<UnnumberedObservation> readings, long firstSequence, DateTimeOffset defaultTimestamp, int inputSize)
    {
        ArgumentNullException.ThrowIfNull(readings);
        return Fill(new UnnumberedRows(readings, firstSequence, defaultTimestamp), inputSize, nameof(readings));
    }

    /// <summary>Row <c>i</c> of a batch being put in columns. Implemented by structs, so <see cref="Fill"/> is compiled per source without a call through an interface.</summary>
    private interface IRows
    {
        int Count { get; }
        long Sequence(int i);
        DateTimeOffset Timestamp(int i);
        float[] Values(int i);
    }

    private readonly struct NumberedRows(IReadOnlyList<Observation> rows) : IRows
    {
        public int Count => rows.Count;
        public long Sequence(int i) => rows[i].Sequence;
        public DateTimeOffset Timestamp(int i) => rows[i].Timestamp;
        public float[] Values(int i) => rows[i].Values;
    }

    private readonly struct UnnumberedRows(IReadOnlyList<UnnumberedObservation> rows, long first, DateTimeOffset defaultTimestamp) : IRows
    {
        public int Count => rows.Count;
        public long Sequence(int i) => first + i;
        public DateTimeOffset Timestamp(int i) => rows[i].Timestamp ?? defaultTimestamp;
        public float[] Values(int i) => rows[i].Values;
    }

    private static ObservationBatch Fill<TRows>(TRows rows, int inputSize, string paramName) where TRows : struct, IRows
    {
        EnsureLittleEndian();
        // Filled in place through typed views of the byte columns: typed arrays handed to the public constructor were
        // copied into new byte arrays, twice the columns' size allocated for every row batch a stream grain takes.
        int n = rows.Count;
        var sequenceBytes = new byte[n * sizeof(long)];
        var tickBytes = new byte[n * sizeof(long)];
        var valueBytes = new byte[checked(n * inputSize * sizeof(float))];
        byte[]? offsetBytes = null;
        var sequences = MemoryMarshal.Cast<byte, long>(sequenceBytes.AsSpan());
        var ticks = MemoryMarshal.Cast<byte, long>(tickBytes.AsSpan());
        var values = MemoryMarshal.Cast<byte, float>(valueBytes.AsSpan());
        for (int i = 0; i < n; i++)
        {
            var row = rows.Values(i);
            long sequence = rows.Sequence(i);
            if (row.Length != inputSize) throw new ArgumentException($"Observation {sequence} has {row.Length} values, not {inputSize}.", paramName);
            var timestamp = rows.Timestamp(i);
            sequences[i] = sequence;
            ticks[i] = timestamp.UtcTicks;
            row.CopyTo(values.Slice(i * inputSize, inputSize));
            if (timestamp.Offset != TimeSpan.Zero)
                MemoryMarshal.Cast<byte, short>((offsetBytes ??= new byte[n * sizeof(short)]).AsSpan())[i] = (short)timestamp.Offset.TotalMinutes;
        }
        return new ObservationBatch(sequenceBytes, tickBytes, valueBytes, offsetBytes);
    }

    /// <summary>n: observations in the batch (0 when the sequence column is missing, which <see cref="CheckShape"/> reports).</summary>
    public int Count => Sequences.Length;

    /// <summary>[n] sequence numbers.</summary>
    public ReadOnlySpan<long> Sequences => MemoryMarshal.Cast<byte, long>(_sequences);

    /// <summary>[n] UTC ticks.</summary>
    public ReadOnlySpan<long> TimestampTicks => MemoryMarshal.Cast<byte, long>(_timestampTicks);

    /// <summary>[n, D] values, row-major.</summary>
    public ReadOnlySpan<float> Values => MemoryMarshal.Cast<byte, float>(_values);

    /// <summary>[n] clock offsets in minutes, or empty when every reading is in UTC.</summary>
    public ReadOnlySpan<short> OffsetMinutes => _offsetMinutes is null ? default : MemoryMarshal.Cast<byte, short>(_offsetMinutes);

    /// <summary>
    /// Null when the columns are consistent (whole elements, n ticks, n * <paramref name="inputSize"/> values, n or no
    /// offsets, each a valid <see cref="DateTimeOffset"/>), else the rejection to report. Values are not checked for
    /// finiteness here (the stream does that with the ordering rules).
    /// </summary>
    public ObservationRejectedException? CheckShape(int inputSize)
    {
        static ObservationRejectedException Wrong(string message) => new(RejectionReason.WrongLength, $"Batch rejected: {message}");
        if (_sequences is null || _timestampTicks is null || _values is null)
            return new ObservationRejectedException(RejectionReason.MissingValues, "Batch rejected: a column is missing.");
        if (_sequences.Length % sizeof(long) != 0 || _timestampTicks.Length % sizeof(long) != 0 || _values.Length % sizeof(float) != 0
            || (_offsetMinutes is not null && _offsetMinutes.Length % sizeof(short) != 0))
            return Wrong("a column is not a whole number of elements.");
        int n = Count;
        if (TimestampTicks.Length != n) return Wrong($"{TimestampTicks.Length} timestamps for {n} sequence numbers.");
        if (Values.Length != (long)n * inputSize) return Wrong($"{Values.Length} values for {n} observations; the model expects {inputSize} per observation.");
        if (_offsetMinutes is not null && OffsetMinutes.Length != n) return Wrong($"{OffsetMinutes.Length} clock offsets for {n} observations.");
        for (int i = 0; i < n; i++)
        {
            long ticks = TimestampTicks[i];
            int minutes = _offsetMinutes is null ? 0 : OffsetMinutes[i];
            long local = ticks + minutes * TimeSpan.TicksPerMinute;
            if (ticks < DateTime.MinValue.Ticks || ticks > DateTime.MaxValue.Ticks || minutes < -14 * 60 || minutes > 14 * 60
                || local < DateTime.MinValue.Ticks || local > DateTime.MaxValue.Ticks)
                return new ObservationRejectedException(RejectionReason.InvalidTimestamp,
                    $"Batch rejected: element {i} has timestamp ticks {ticks} with clock offset {minutes} minutes, not a valid date.", Sequences[i]);
        }
        return null;
    }

    /// <summary>Element <paramref name="index"/>'s timestamp with its clock offset (as the matching <see cref="Observation"/> had it).</summary>
    public DateTimeOffset Timestamp(int index)
    {
        long ticks = TimestampTicks[index];
        if (_offsetMinutes is null) return new DateTimeOffset(ticks, TimeSpan.Zero);
        var offset = TimeSpan.FromMinutes(OffsetMinutes[index]);
        return new DateTimeOffset(ticks + offset.Ticks, offset);
    }

    /// <summary>The batch as row observations (for display and tests).</summary>
    public Observation[] ToObservations()
    {
        int n = Count;
        int d = n == 0 ? 0 : Values.Length / n;
        var result = new Observation[n];
        for (int i = 0; i < n; i++) result[i] = new Observation(Sequences[i], Timestamp(i), Values.Slice(i * d, d).ToArray());
        return result;
    }

    internal static void EnsureLittleEndian()
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Column batches are encoded little-endian; this platform is big-endian.");
    }
}

/// <summary>
/// The answer to an <see cref="ObservationBatch"/> in columns: everything the matching <see cref="StepResult"/>s say,
/// without a record and five arrays per value. Elements 0 .. <see cref="DuplicateCount"/> - 1 were duplicates (at or
/// below the stream's last accepted sequence) and all get <see cref="DuplicateAnswer"/>; the m = n - DuplicateCount
/// new ones each advanced the stream one step. Shapes: m = <see cref="NewCount"/>, K = <see cref="Horizons"/>.
/// <see cref="ToStepResults"/> rebuilds the row answers exactly (bit for bit what <see cref="IStreamGrain.IngestBatchAsync"/>
/// returns): Lower/Upper = prediction -/+ z * RMSE (<see cref="IntervalZ"/>), the per-step error sample counts from
/// the last step's (each step scores horizon h iff the stream had taken at least h steps before it).
/// </summary>
[GenerateSerializer, Immutable, Alias("lstm.BatchForecast")]
public sealed class BatchForecast
{
    [Id(0)] private readonly byte[] _predictions;   // [m, K] float, stream units
    [Id(1)] private readonly byte[] _rmse;          // [m, K] double, unrounded (StepResult.Rmse is its float)
    [Id(2)] private readonly byte[] _previousError; // [m] float, NaN on the stream's first step

    public BatchForecast(string streamId, int count, int horizons, int duplicateCount, StepResult? duplicateAnswer,
        long weightsVersion, long firstStepCount, double intervalZ, long[] lastErrorSamples,
        ReadOnlySpan<float> predictions, ReadOnlySpan<double> rmse, ReadOnlySpan<float> previousError)
    {
        ObservationBatch.EnsureLittleEndian();
        StreamId = streamId;
        Count = count;
        Horizons = horizons;
        DuplicateCount = duplicateCount;
        DuplicateAnswer = duplicateAnswer;
        WeightsVersion = weightsVersion;
        FirstStepCount = firstStepCount;
        IntervalZ = intervalZ;
        LastErrorSamples = lastErrorSamples;
        _predictions = MemoryMarshal.AsBytes(predictions).ToArray();
        _rmse = MemoryMarshal.AsBytes(rmse).ToArray();
        _previousError = MemoryMarshal.AsBytes(previousError).ToArray();
    }

    [Id(3)] public string StreamId { get; }

    /// <summary>n: elements in the request.</summary>
    [Id(4)] public int Count { get; }

    /// <summary>K: forecasts per step.</summary>
    [Id(5)] public int Horizons { get; }

    /// <summary>Leading elements that were duplicates (nothing applied); the first new element's index.</summary>
    [Id(6)] public int DuplicateCount { get; }

    /// <summary>What a duplicate gets (as from <see cref="IStreamGrain.IngestAsync"/>); null when there is none.</summary>
    [Id(7)] public StepResult? DuplicateAnswer { get; }

    /// <summary>Weights version of every new step.</summary>
    [Id(8)] public long WeightsVersion { get; }

    /// <summary>The stream's step count after the first new element (the next ones count on by one).</summary>
    [Id(9)] public long FirstStepCount { get; }

    /// <summary>z of the prediction interval.</summary>
    [Id(10)] public double IntervalZ { get; }

    /// <summary>[K] scored forecasts per horizon after the last new step.</summary>
    [Id(11)] public long[] LastErrorSamples { get; }

    /// <summary>m: elements that advanced the stream.</summary>
    public int NewCount => Count - DuplicateCount;

    /// <summary>[m, K] forecasts of each new step, in stream units.</summary>
    public ReadOnlySpan<float> Predictions => MemoryMarshal.Cast<byte, float>(_predictions);

    /// <summary>[m, K] RMSE per horizon after each new step, unrounded.</summary>
    public ReadOnlySpan<double> Rmse => MemoryMarshal.Cast<byte, double>(_rmse);

    /// <summary>[m] each new step's one-step error (actual minus the previous forecast); NaN on the stream's first step.</summary>
    public ReadOnlySpan<float> PreviousError => MemoryMarshal.Cast<byte, float>(_previousError);

    /// <summary>The stream's step count after new element <paramref name="j"/> (0-based among the new ones).</summary>
    public long StepCountAt(int j) => FirstStepCount + j;

    /// <summary>
    /// The interval columns of one step's answer, as every <see cref="StepResult"/> has them: for each horizon h,
    /// <paramref name="lower"/>/<paramref name="upper"/> = prediction -/+ z * RMSE and <paramref name="roundedRmse"/> the
    /// RMSE as a float. All spans [K].
    /// </summary>
    public static void WriteIntervals(ReadOnlySpan<float> predictions, ReadOnlySpan<double> rmse, double z,
        Span<float> lower, Span<float> upper, Span<float> roundedRmse)
    {
        for (int h = 0; h < predictions.Length; h++)
        {
            roundedRmse[h] = (float)rmse[h];
            lower[h] = (float)(predictions[h] - z * rmse[h]);
            upper[h] = (float)(predictions[h] + z * rmse[h]);
        }
    }

    /// <summary>
    /// The row answer of new element <paramref name="j"/> (request element DuplicateCount + j), with its sequence and
    /// timestamp from the request.
    /// </summary>
    public StepResult StepResultAt(int j, long sequence, DateTimeOffset timestamp)
    {
        int k = Horizons;
        var predictions = Predictions.Slice(j * k, k).ToArray();
        var lower = new float[k];
        var upper = new float[k];
        var rounded = new float[k];
        WriteIntervals(predictions, Rmse.Slice(j * k, k), IntervalZ, lower, upper, rounded);
        long stepCount = StepCountAt(j);
        // Horizon h (1-based) was scored by each later step j' > j of this batch whose stream had taken >= h steps
        // before it (StepCountAt(j') - 1 >= h): subtract those from the last step's counts.
        var samples = new long[k];
        int last = NewCount - 1;
        for (int h = 1; h <= k; h++)
        {
            long firstScoring = Math.Max(j + 1, h + 1 - FirstStepCount);   // first j' that scored h
            long laterScored = Math.Max(0, last - firstScoring + 1);
            samples[h - 1] = LastErrorSamples[h - 1] - laterScored;
        }
        float? previousError = stepCount == 1 ? null : PreviousError[j];
        return new StepResult(StreamId, sequence, timestamp, predictions, lower, upper, rounded, samples, previousError,
            WeightsVersion, Duplicate: false, stepCount);
    }

    /// <summary>One <see cref="StepResult"/> per element of <paramref name="request"/>, equal to what the row API returns for it.</summary>
    public StepResult[] ToStepResults(ObservationBatch request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Count != Count) throw new ArgumentException($"The request has {request.Count} elements; this answer is for {Count}.", nameof(request));
        var results = new StepResult[Count];
        for (int i = 0; i < DuplicateCount; i++) results[i] = DuplicateAnswer!;
        var sequences = request.Sequences;
        for (int j = 0; j < NewCount; j++)
        {
            int i = DuplicateCount + j;
            results[i] = StepResultAt(j, sequences[i], request.Timestamp(i));
        }
        return results;
    }
}
