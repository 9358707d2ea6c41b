using System.Numerics.Tensors;

namespace LstmOrleans.Lstm;

/// <summary>
/// An immutable, inference-ready copy of a model's parameters, shared by every stream of a model on a
/// silo. Packing happens once here so each step only reads: per layer the two gate matrices are fused over
/// the concatenation [h_{t-1}, x_t] (the seed's notation) and stored transposed, [H + D_l, 4H], so a step is
/// a run of AXPYs along contiguous gate rows (see <see cref="Gemm"/>); the two biases are summed; the
/// cell-candidate rows are doubled (see <see cref="CellKernels"/>) so one Sigmoid activates all four gates.
/// </summary>
public sealed class LstmWeights
{
    /// <summary>Streams processed per chunk by <see cref="StepMany"/>; bounds the scratch buffer.</summary>
    private const int StreamChunk = 64;

    [ThreadStatic] private static float[]? t_scratch;

    private readonly LstmParameters _parameters;
    private readonly float[][] _packed;     // per layer: [H + D_l, 4H], row-major; rows 0..H-1 = W_hhᵀ, rows H.. = W_ihᵀ
    private readonly float[][] _bias;       // per layer: [4H] = bias_ih + bias_hh
    private readonly float[] _headWeight;   // [K, H]
    private readonly float[] _headBias;     // [K]

    private LstmWeights(LstmParameters parameters)
    {
        _parameters = parameters;
        var config = parameters.Config;
        int h = config.HiddenSize, rows = config.GateRows;
        _packed = new float[config.Layers][];
        _bias = new float[config.Layers][];
        for (int l = 0; l < config.Layers; l++)
        {
            int din = config.LayerInputSize(l);
            var packed = new float[(h + din) * rows];
            ReadOnlySpan<float> wih = parameters.WeightIh(l);
            ReadOnlySpan<float> whh = parameters.WeightHh(l);
            for (int r = 0; r < rows; r++)
            {
                for (int j = 0; j < h; j++) packed[j * rows + r] = whh[r * h + j];
                for (int j = 0; j < din; j++) packed[(h + j) * rows + r] = wih[r * din + j];
            }
            var bias = new float[rows];
            TensorPrimitives.Add(parameters.BiasIh(l), parameters.BiasHh(l), bias);
            CellKernels.DoubleCandidateRows(packed, h);
            CellKernels.DoubleCandidateRows(bias, h);
            _packed[l] = packed;
            _bias[l] = bias;
        }
        _headWeight = parameters.HeadWeight.ToArray();
        _headBias = parameters.HeadBias.ToArray();
    }

    public LstmConfig Config => _parameters.Config;

    /// <summary>Builds a snapshot from a copy of <paramref name="parameters"/>; later changes to them do not leak in.</summary>
    public static LstmWeights From(LstmParameters parameters) => new(parameters.Clone());

    /// <summary>A fresh copy of the parameters this snapshot was built from.</summary>
    public LstmParameters ExportParameters() => _parameters.Clone();

    /// <summary>
    /// One LSTM step for one stream, in place, allocation-free.
    /// x: [D]; h, c: [L, H] (updated in place); y: [K] (written).
    /// </summary>
    public void Step(ReadOnlySpan<float> x, Span<float> h, Span<float> c, Span<float> y)
    {
        var config = Config;
        int hidden = config.HiddenSize, rows = config.GateRows;
        if (x.Length != config.InputSize) throw new ArgumentException($"Expected {config.InputSize} input values, got {x.Length}.", nameof(x));
        if (h.Length != config.StateSize || c.Length != config.StateSize)
            throw new ArgumentException($"Expected h and c of length {config.StateSize} (L x H).");
        if (y.Length != config.Horizons) throw new ArgumentException($"Expected {config.Horizons} outputs, got {y.Length}.", nameof(y));

        int maxCols = hidden + Math.Max(config.InputSize, hidden);
        Span<float> concat = maxCols <= 1024 ? stackalloc float[maxCols] : new float[maxCols];   // [H + D_l]
        Span<float> gates = rows <= 2048 ? stackalloc float[rows] : new float[rows];              // [4H]

        ReadOnlySpan<float> layerInput = x;
        for (int l = 0; l < config.Layers; l++)
        {
            Span<float> hl = h.Slice(l * hidden, hidden);
            Span<float> cl = c.Slice(l * hidden, hidden);
            int cols = hidden + layerInput.Length;
            Span<float> v = concat[..cols];
            hl.CopyTo(v);
            layerInput.CopyTo(v[hidden..]);
            _bias[l].CopyTo(gates);
            Gemm.MultiplyAdd(1, rows, cols, v, 0, 1, _packed[l], rows, gates, rows);
            TensorPrimitives.Sigmoid(gates, gates);
            CellKernels.ForwardRow(gates, cl, cl, hl, hl, hidden);
            layerInput = hl;
        }
        Head(layerInput, y);
    }

    /// <summary>
    /// One step for each of B independent streams, in place, equal to B calls of <see cref="Step"/> up to
    /// float rounding. x: [B, D]; h, c: [B, L*H] (each stream's state row updated in place); y: [B, K].
    /// Streams run in chunks as one matrix product per layer, so the weights are read once per chunk.
    /// </summary>
    public void StepMany(ReadOnlySpan<float> x, Span<float> h, Span<float> c, Span<float> y)
    {
        var config = Config;
        int d = config.InputSize, hidden = config.HiddenSize, rows = config.GateRows, state = config.StateSize, k = config.Horizons;
        if (x.Length % d != 0) throw new ArgumentException($"Input length {x.Length} is not a multiple of the input size {d}.", nameof(x));
        int streams = x.Length / d;
        if (h.Length != streams * state || c.Length != streams * state)
            throw new ArgumentException($"Expected h and c of length {streams * state} ({streams} streams x L x H), got {h.Length} and {c.Length}.");
        if (y.Length != streams * k) throw new ArgumentException($"Expected {streams * k} outputs ({streams} streams x K), got {y.Length}.", nameof(y));
        if (streams == 0) return;

        int chunk = Math.Min(StreamChunk, streams);
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < chunk * rows) t_scratch = scratch = new float[Math.Max(chunk, StreamChunk) * rows];

        for (int s0 = 0; s0 < streams; s0 += chunk)
        {
            int n = Math.Min(chunk, streams - s0);
            Span<float> gates = scratch.AsSpan(0, n * rows);                  // [n, 4H]
            Span<float> hc = h.Slice(s0 * state, n * state);                  // [n, L*H]
            Span<float> cc = c.Slice(s0 * state, n * state);                  // [n, L*H]
            for (int l = 0; l < config.Layers; l++)
            {
                for (int s = 0; s < n; s++) _bias[l].CopyTo(gates.Slice(s * rows, rows));
                ReadOnlySpan<float> packed = _packed[l];
                // Recurrent part: h_l (old values, strided by L*H) times W_hhᵀ.
                Gemm.MultiplyAdd(n, rows, hidden, hc[(l * hidden)..], state, 1, packed, rows, gates, rows);
                // Input part: x for layer 0, the fresh h of the layer below otherwise.
                if (l == 0)
                    Gemm.MultiplyAdd(n, rows, d, x.Slice(s0 * d, n * d), d, 1, packed[(hidden * rows)..], rows, gates, rows);
                else
                    Gemm.MultiplyAdd(n, rows, hidden, hc[((l - 1) * hidden)..], state, 1, packed[(hidden * rows)..], rows, gates, rows);
                TensorPrimitives.Sigmoid(gates, gates);
                for (int s = 0; s < n; s++)
                {
                    Span<float> hs = hc.Slice(s * state + l * hidden, hidden), cs = cc.Slice(s * state + l * hidden, hidden);
                    CellKernels.ForwardRow(gates.Slice(s * rows, rows), cs, cs, hs, hs, hidden);
                }
            }
            int top = (config.Layers - 1) * hidden;
            for (int s = 0; s < n; s++)
                Head(hc.Slice(s * state + top, hidden), y.Slice((s0 + s) * k, k));
        }
    }

    private void Head(ReadOnlySpan<float> top, Span<float> y)
    {
        int hidden = Config.HiddenSize;
        for (int k = 0; k < y.Length; k++)
            y[k] = TensorPrimitives.Dot(_headWeight.AsSpan(k * hidden, hidden), top) + _headBias[k];
    }
}
