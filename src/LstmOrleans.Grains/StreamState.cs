using LstmOrleans.Abstractions;

namespace LstmOrleans.Grains;

/// <summary>
/// Durable core state of one sensor stream, written on every acknowledged step, so it is kept small: the learned
/// state, ordering, statistics and the open "tail" chunk of the newest observations. Closed history lives in separate
/// records (<see cref="StreamHistory"/>, one per chunk) written only when a tail chunk closes and read only when needed.
/// Shapes: D = model input size, K = horizons, L*H = state size, N = history capacity, C = tail chunk size.
///
/// History layout. Observations accepted since the last bind/reset get consecutive indexes 0, 1, 2, ... within the
/// <see cref="Generation"/>. Indexes below <see cref="ClosedCount"/> are closed (stored in the history records, or
/// still in <see cref="PendingClosed"/> until the next write); the rest are in <see cref="Tail"/>. History records are
/// written with the core in one atomic write where the store can (SQLite, PostgreSQL, memory), else just after it
/// (Redis), the core carrying the closed chunks (<see cref="PersistPendingClosed"/>) until they are in their records.
/// Records are read only below the core's durable watermark (<see cref="DurableClosedCount"/>).
/// </summary>
[GenerateSerializer, Alias("lstm.StreamState")]
public sealed class StreamState
{
    /// <summary>Model the stream is bound to; null until the first bind or observation.</summary>
    [Id(0)] public string? ModelName { get; set; }

    /// <summary>Weights version that <see cref="Hidden"/> and <see cref="Cell"/> belong to.</summary>
    [Id(1)] public long WeightsVersion { get; set; }

    [Id(2)] public int InputSize { get; set; }                    // D
    [Id(3)] public int Horizons { get; set; }                     // K
    [Id(4)] public float[] Hidden { get; set; } = [];            // h [L*H]
    [Id(5)] public float[] Cell { get; set; } = [];              // c [L*H]

    [Id(6)] public bool HasSequence { get; set; }
    [Id(7)] public long LastSequence { get; set; }
    [Id(8)] public DateTimeOffset LastTimestamp { get; set; }
    /// <summary>Steps taken since the last reset or rebind.</summary>
    [Id(9)] public long StepCount { get; set; }

    // Running normalisation statistics (Welford), over every observation accepted so far.
    [Id(10)] public long NormCount { get; set; }
    [Id(11)] public double[] Mean { get; set; } = [];            // [D]
    [Id(12)] public double[] M2 { get; set; } = [];              // [D] sum of squared deviations

    /// <summary>N: observations kept (closed history plus tail) for training windows and re-warming.</summary>
    [Id(13)] public int HistoryCapacity { get; set; }

    // Ids 14..19 held the old in-core ring buffer; they are not reused so old records still load (the ring is dropped).

    // Error statistics per horizon.
    [Id(20)] public double[] ErrorMeanSquare { get; set; } = []; // [K] EWMA of squared error
    [Id(21)] public long[] ErrorSamples { get; set; } = [];      // [K]
    /// <summary>[K, K] forecasts in stream units: row (step % K) holds the K forecasts made at that step.</summary>
    [Id(22)] public float[] Pending { get; set; } = [];

    /// <summary>
    /// The answer to the last accepted observation (returned again to a retry). Kept in <see cref="LatestAnswer"/>'s
    /// per-stream buffers, which every step overwrites in place: a fresh <see cref="StepResult"/> held per stream until
    /// the next step lived just long enough (one step, tens of ms under load) to be promoted out of gen0. Reading this
    /// property builds a new record with its own arrays (never the buffers); setting it copies the values in.
    /// </summary>
    [Id(23)]
    public StepResult? Latest
    {
        get => LatestAnswer.ToStepResult();
        set => LatestAnswer.Set(value);
    }

    /// <summary>The buffers behind <see cref="Latest"/> (the single-step path writes straight into them).</summary>
    [NonSerialized] internal readonly LatestAnswer LatestAnswer = new();

    /// <summary>Changes on every bind and reset, so history records of an earlier life are ignored.</summary>
    [Id(24)] public long Generation { get; set; }

    /// <summary>Observations of this generation moved out of the tail into closed history.</summary>
    [Id(25)] public long ClosedCount { get; set; }

    /// <summary>The open chunk: the newest observations (at most C), starting at index <see cref="ClosedCount"/>.</summary>
    [Id(26)] public ObservationChunk Tail { get; set; } = new();

    /// <summary>
    /// Closed observations not yet in the stored history records (between a chunk closing and the write that stores
    /// them). Starts at index <see cref="ClosedCount"/> - its count. Serialized only while <see cref="PersistPendingClosed"/>.
    /// </summary>
    [NonSerialized] public ObservationChunk? PendingClosed;

    /// <summary>
    /// Set for the core write that goes BEFORE the history records (stores without companion writes, such as Redis): the
    /// core then carries <see cref="PendingClosed"/>, so it alone decides what the records hold. A stale activation
    /// fails at the core's ETag before it touches any record, and a crash between the core and the records loses
    /// nothing (the next write, or the next activation, writes them from the core). Not set where the records go with
    /// the core in one atomic write: there the core never needs to carry them.
    /// </summary>
    [NonSerialized] public bool PersistPendingClosed;

    /// <summary><see cref="PendingClosed"/> as stored: only while <see cref="PersistPendingClosed"/>; reading one back sets both.</summary>
    [Id(28)]
    public ObservationChunk? StoredPendingClosed
    {
        get => PersistPendingClosed ? PendingClosed : null;
        set { PendingClosed = value; PersistPendingClosed = value is not null; }
    }

    /// <summary>D_in = D + calendar features, the width of the chunks' input rows; 0 in states written before it existed (= D).</summary>
    [Id(27)] public int ModelInputSize { get; set; }

    /// <summary>Width of one LSTM input row (D_in).</summary>
    public int InputWidth => ModelInputSize > 0 ? ModelInputSize : InputSize;

    public bool IsBound => ModelName is not null && Hidden.Length > 0;

    /// <summary>Observations currently retained (closed history plus tail), at most N.</summary>
    public int HistoryCount => (int)Math.Min(HistoryCapacity, ClosedCount + Tail.Count);

    /// <summary>Index of the first closed observation that is not in the stored history record yet.</summary>
    public long DurableClosedCount => ClosedCount - (PendingClosed?.Count ?? 0);

    /// <summary>A copy for computing on (batches, binds); small arrays only (the closed history is not part of it).</summary>
    public StreamState Clone()
    {
        var clone = CloneScalarsAndArrays();
        clone.LatestAnswer.CopyFrom(LatestAnswer);
        return clone;
    }

    private StreamState CloneScalarsAndArrays() => new()
    {
        ModelName = ModelName,
        WeightsVersion = WeightsVersion,
        InputSize = InputSize,
        Horizons = Horizons,
        Hidden = (float[])Hidden.Clone(),
        Cell = (float[])Cell.Clone(),
        HasSequence = HasSequence,
        LastSequence = LastSequence,
        LastTimestamp = LastTimestamp,
        StepCount = StepCount,
        NormCount = NormCount,
        Mean = (double[])Mean.Clone(),
        M2 = (double[])M2.Clone(),
        HistoryCapacity = HistoryCapacity,
        ErrorMeanSquare = (double[])ErrorMeanSquare.Clone(),
        ErrorSamples = (long[])ErrorSamples.Clone(),
        Pending = (float[])Pending.Clone(),
        Generation = Generation,
        ClosedCount = ClosedCount,
        Tail = Tail.Clone(),
        PendingClosed = PendingClosed?.Clone(),
        PersistPendingClosed = PersistPendingClosed,
        ModelInputSize = ModelInputSize,
    };
}

/// <summary>
/// A run of consecutive observations of one generation: entry i has index <see cref="StartIndex"/> + i. Arrays may be
/// longer than <see cref="Count"/> (capacity). Shapes: [capacity] and [capacity, D].
/// </summary>
[GenerateSerializer, Alias("lstm.ObservationChunk")]
public sealed class ObservationChunk
{
    [Id(0)] public long StartIndex { get; set; }
    [Id(1)] public int Count { get; set; }
    [Id(2)] public long[] Sequences { get; set; } = [];   // [capacity]
    [Id(3)] public long[] Ticks { get; set; } = [];       // [capacity] UTC ticks
    /// <summary>[capacity, D] raw values as received.</summary>
    [Id(4)] public float[] Values { get; set; } = [];
    /// <summary>[capacity, D_in] the inputs actually fed to the LSTM (normalised values, then calendar features), so a re-warm replays exactly.</summary>
    [Id(5)] public float[] Inputs { get; set; } = [];

    public long EndIndex => StartIndex + Count;

    public int Capacity => Sequences.Length;

    /// <param name="inputSize">D, values per observation.</param>
    /// <param name="inputWidth">D_in, model inputs per observation (values plus calendar features).</param>
    public static ObservationChunk Create(long startIndex, int capacity, int inputSize, int inputWidth) => new()
    {
        StartIndex = startIndex,
        Sequences = new long[capacity],
        Ticks = new long[capacity],
        Values = new float[capacity * inputSize],
        Inputs = new float[capacity * inputWidth],
    };

    public ObservationChunk Clone() => new()
    {
        StartIndex = StartIndex,
        Count = Count,
        Sequences = (long[])Sequences.Clone(),
        Ticks = (long[])Ticks.Clone(),
        Values = (float[])Values.Clone(),
        Inputs = (float[])Inputs.Clone(),
    };

    /// <summary>Appends entry <paramref name="entry"/> of <paramref name="source"/>, growing the arrays when full.</summary>
    public void AppendFrom(ObservationChunk source, int entry, int inputSize, int inputWidth)
    {
        if (Count == Capacity) Grow(Math.Max(4, Capacity * 2), inputSize, inputWidth);
        Sequences[Count] = source.Sequences[entry];
        Ticks[Count] = source.Ticks[entry];
        source.Values.AsSpan(entry * inputSize, inputSize).CopyTo(Values.AsSpan(Count * inputSize, inputSize));
        source.Inputs.AsSpan(entry * inputWidth, inputWidth).CopyTo(Inputs.AsSpan(Count * inputWidth, inputWidth));
        Count++;
    }

    private void Grow(int capacity, int inputSize, int inputWidth)
    {
        var sequences = Sequences;
        var ticks = Ticks;
        var values = Values;
        var inputs = Inputs;
        Array.Resize(ref sequences, capacity);
        Array.Resize(ref ticks, capacity);
        Array.Resize(ref values, capacity * inputSize);
        Array.Resize(ref inputs, capacity * inputWidth);
        Sequences = sequences;
        Ticks = ticks;
        Values = values;
        Inputs = inputs;
    }
}

/// <summary>
/// One closed-history record of a stream (state name "history.{slot}"): one closed chunk of C observations of one
/// generation, written once when the chunk closes (see <see cref="StreamComputation.HistorySlotCount"/>). Records
/// written by earlier builds (state name "history") hold all retained closed observations in one chunk; they are read
/// and moved into slots on the stream's next history write.
/// </summary>
[GenerateSerializer, Alias("lstm.StreamHistory")]
public sealed class StreamHistory
{
    [Id(0)] public long Generation { get; set; }
    [Id(1)] public ObservationChunk Closed { get; set; } = new();
}

/// <summary>
/// The mutable, per-stream copy of the last answer (<see cref="StreamState.Latest"/>): the fields of a
/// <see cref="StepResult"/> in arrays that are overwritten in place (re-allocated only when K changes), so a stream's
/// steady stepping keeps no per-step object alive. Never handed out: <see cref="ToStepResult"/> copies.
/// Shapes: every array [K] (any length when read from an old record).
/// </summary>
internal sealed class LatestAnswer
{
    public bool HasValue { get; private set; }
    public string StreamId { get; set; } = "";
    public long Sequence { get; set; }
    public DateTimeOffset Timestamp { get; set; }
    public float[] Predictions { get; private set; } = [];   // [K]
    public float[] Lower { get; private set; } = [];         // [K]
    public float[] Upper { get; private set; } = [];         // [K]
    public float[] Rmse { get; private set; } = [];          // [K] rounded to float
    public long[] ErrorSamples { get; private set; } = [];   // [K]
    public float? PreviousError { get; set; }
    public long WeightsVersion { get; set; }
    public bool Duplicate { get; set; }
    public long StepCount { get; set; }

    /// <summary>Makes every array exactly <paramref name="k"/> long (keeping them when they already are) and marks the answer present.</summary>
    public void Prepare(int k) => Prepare(k, k, k, k, k);

    /// <summary>Makes the arrays the given lengths (an old record's answer may differ per array, e.g. a bare marker).</summary>
    public void Prepare(int predictions, int lower, int upper, int rmse, int errorSamples)
    {
        Predictions = Sized(Predictions, predictions);
        Lower = Sized(Lower, lower);
        Upper = Sized(Upper, upper);
        Rmse = Sized(Rmse, rmse);
        ErrorSamples = Sized(ErrorSamples, errorSamples);
        HasValue = true;
    }

    /// <summary>Takes the given arrays (which the caller gives up) as the buffers and marks the answer present.</summary>
    public void Adopt(float[] predictions, float[] lower, float[] upper, float[] rmse, long[] errorSamples)
    {
        Predictions = predictions;
        Lower = lower;
        Upper = upper;
        Rmse = rmse;
        ErrorSamples = errorSamples;
        HasValue = true;
    }

    public void Clear()
    {
        HasValue = false;
        StreamId = "";
        PreviousError = null;
    }

    /// <summary>Copies <paramref name="result"/>'s values in (null clears); keeps no reference to its arrays.</summary>
    public void Set(StepResult? result)
    {
        if (result is null) { Clear(); return; }
        Assign(result.Predictions, result.Lower, result.Upper, result.Rmse, result.ErrorSamples,
            result.StreamId, result.Sequence, result.Timestamp, result.PreviousError, result.WeightsVersion, result.Duplicate, result.StepCount);
    }

    public void CopyFrom(LatestAnswer other)
    {
        if (!other.HasValue) { Clear(); return; }
        Assign(other.Predictions, other.Lower, other.Upper, other.Rmse, other.ErrorSamples,
            other.StreamId, other.Sequence, other.Timestamp, other.PreviousError, other.WeightsVersion, other.Duplicate, other.StepCount);
    }

    /// <summary>Copies the values into this answer's own buffers (sized to the given arrays) and marks it present.</summary>
    private void Assign(float[] predictions, float[] lower, float[] upper, float[] rmse, long[] errorSamples,
        string streamId, long sequence, DateTimeOffset timestamp, float? previousError, long weightsVersion, bool duplicate, long stepCount)
    {
        Prepare(predictions.Length, lower.Length, upper.Length, rmse.Length, errorSamples.Length);
        predictions.CopyTo(Predictions, 0);
        lower.CopyTo(Lower, 0);
        upper.CopyTo(Upper, 0);
        rmse.CopyTo(Rmse, 0);
        errorSamples.CopyTo(ErrorSamples, 0);
        StreamId = streamId;
        Sequence = sequence;
        Timestamp = timestamp;
        PreviousError = previousError;
        WeightsVersion = weightsVersion;
        Duplicate = duplicate;
        StepCount = stepCount;
    }

    /// <summary>A new record with copies of the buffers (null when there is no answer); <paramref name="duplicate"/> overrides the flag.</summary>
    public StepResult? ToStepResult(bool? duplicate = null) => HasValue
        ? new StepResult(StreamId, Sequence, Timestamp, (float[])Predictions.Clone(), (float[])Lower.Clone(), (float[])Upper.Clone(),
            (float[])Rmse.Clone(), (long[])ErrorSamples.Clone(), PreviousError, WeightsVersion, duplicate ?? Duplicate, StepCount)
        : null;

    private static T[] Sized<T>(T[] array, int length) => array.Length == length ? array : length == 0 ? [] : new T[length];
}
