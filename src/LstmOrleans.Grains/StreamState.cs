using LstmOrleans.Abstractions;

namespace LstmOrleans.Grains;

/// <summary>
/// Durable state of one sensor stream. Numbers are kept in flat primitive arrays (no boxed lists) so the stored
/// form stays compact. Shapes: D = model input size, K = horizons, L*H = state size, N = history capacity.
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

    // Ring buffer of the most recent observations; slot of the i-th oldest = (HistoryStart + i) % N.
    [Id(13)] public int HistoryCapacity { get; set; }             // N
    [Id(14)] public int HistoryStart { get; set; }
    [Id(15)] public int HistoryCount { get; set; }
    [Id(16)] public long[] HistorySequences { get; set; } = [];   // [N]
    [Id(17)] public long[] HistoryTicks { get; set; } = [];       // [N] UTC ticks
    [Id(18)] public float[] HistoryValues { get; set; } = [];     // [N, D] raw values as received
    /// <summary>[N, D_in] the inputs actually fed to the LSTM (normalised values, then calendar features), so a re-warm replays exactly.</summary>
    [Id(19)] public float[] HistoryInputs { get; set; } = [];

    // Error statistics per horizon.
    [Id(20)] public double[] ErrorMeanSquare { get; set; } = []; // [K] EWMA of squared error
    [Id(21)] public long[] ErrorSamples { get; set; } = [];      // [K]
    /// <summary>[K, K] forecasts in stream units: row (step % K) holds the K forecasts made at that step.</summary>
    [Id(22)] public float[] Pending { get; set; } = [];

    /// <summary>The answer to the last accepted observation (returned again to a retry).</summary>
    [Id(23)] public StepResult? Latest { get; set; }

    /// <summary>D_in = D + calendar features, the width of <see cref="HistoryInputs"/> rows; 0 in states written before it existed (= D).</summary>
    [Id(24)] public int ModelInputSize { get; set; }

    /// <summary>Width of one LSTM input row (D_in).</summary>
    public int InputWidth => ModelInputSize > 0 ? ModelInputSize : InputSize;

    public bool IsBound => ModelName is not null && Hidden.Length > 0;

    public StreamState Clone() => new()
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
        HistoryStart = HistoryStart,
        HistoryCount = HistoryCount,
        HistorySequences = (long[])HistorySequences.Clone(),
        HistoryTicks = (long[])HistoryTicks.Clone(),
        HistoryValues = (float[])HistoryValues.Clone(),
        HistoryInputs = (float[])HistoryInputs.Clone(),
        ErrorMeanSquare = (double[])ErrorMeanSquare.Clone(),
        ErrorSamples = (long[])ErrorSamples.Clone(),
        Pending = (float[])Pending.Clone(),
        Latest = Latest,
        ModelInputSize = ModelInputSize,
    };
}
