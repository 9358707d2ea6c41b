using System.Numerics.Tensors;

namespace LstmOrleans.Lstm;

/// <summary>
/// An immutable, inference-ready copy of a model's parameters, shared by every stream of a model on a
/// silo. Packing happens once here so each step only reads: per layer the two gate matrices are fused
/// into one [4H, H + D_l] matrix over the concatenation [h_{t-1}, x_t] (the seed's notation) and the
/// two biases are summed.
/// </summary>
public sealed class LstmWeights
{
    private readonly LstmParameters _parameters;
    private readonly float[][] _fused;      // per layer: [4H, H + D_l], row-major, columns [h | x]
    private readonly float[][] _bias;       // per layer: [4H] = bias_ih + bias_hh
    private readonly float[] _headWeight;   // [K, H]
    private readonly float[] _headBias;     // [K]

    private LstmWeights(LstmParameters parameters)
    {
        _parameters = parameters;
        var config = parameters.Config;
        int h = config.HiddenSize;
        _fused = new float[config.Layers][];
        _bias = new float[config.Layers][];
        for (int l = 0; l < config.Layers; l++)
        {
            int din = config.LayerInputSize(l);
            int cols = h + din;
            var fused = new float[config.GateRows * cols];
            ReadOnlySpan<float> wih = parameters.WeightIh(l);
            ReadOnlySpan<float> whh = parameters.WeightHh(l);
            for (int r = 0; r < config.GateRows; r++)
            {
                whh.Slice(r * h, h).CopyTo(fused.AsSpan(r * cols, h));
                wih.Slice(r * din, din).CopyTo(fused.AsSpan(r * cols + h, din));
            }
            _fused[l] = fused;
            var bias = new float[config.GateRows];
            TensorPrimitives.Add(parameters.BiasIh(l), parameters.BiasHh(l), bias);
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
        int hidden = config.HiddenSize;
        if (x.Length != config.InputSize) throw new ArgumentException($"Expected {config.InputSize} input values, got {x.Length}.", nameof(x));
        if (h.Length != config.StateSize || c.Length != config.StateSize)
            throw new ArgumentException($"Expected h and c of length {config.StateSize} (L x H).");
        if (y.Length != config.Horizons) throw new ArgumentException($"Expected {config.Horizons} outputs, got {y.Length}.", nameof(y));

        int maxCols = hidden + Math.Max(config.InputSize, hidden);
        Span<float> concat = maxCols <= 1024 ? stackalloc float[maxCols] : new float[maxCols];
        Span<float> gates = config.GateRows <= 2048 ? stackalloc float[config.GateRows] : new float[config.GateRows];

        ReadOnlySpan<float> layerInput = x;
        for (int l = 0; l < config.Layers; l++)
        {
            Span<float> hl = h.Slice(l * hidden, hidden);
            Span<float> cl = c.Slice(l * hidden, hidden);
            int cols = hidden + layerInput.Length;
            Span<float> v = concat[..cols];
            hl.CopyTo(v);
            layerInput.CopyTo(v[hidden..]);
            ReadOnlySpan<float> w = _fused[l];
            for (int r = 0; r < config.GateRows; r++)
                gates[r] = TensorPrimitives.Dot(w.Slice(r * cols, cols), v);
            TensorPrimitives.Add(gates, _bias[l], gates);
            CellUpdate(gates, hl, cl, hidden);
            layerInput = hl;
        }
        Head(layerInput, y);
    }

    /// <summary>
    /// Gate nonlinearities and the state update, given pre-activations [i | f | g | o] (each [H]).
    /// c = f * c + i * g; h = o * tanh(c).
    /// </summary>
    internal static void CellUpdate(Span<float> gates, Span<float> h, Span<float> c, int hidden)
    {
        Span<float> i = gates[..hidden];
        Span<float> f = gates.Slice(hidden, hidden);
        Span<float> g = gates.Slice(2 * hidden, hidden);
        Span<float> o = gates.Slice(3 * hidden, hidden);
        TensorPrimitives.Sigmoid(i, i);
        TensorPrimitives.Sigmoid(f, f);
        TensorPrimitives.Tanh(g, g);
        TensorPrimitives.Sigmoid(o, o);
        TensorPrimitives.Multiply(f, c, c);            // c = f * c
        TensorPrimitives.MultiplyAdd(i, g, c, c);      // c += i * g
        TensorPrimitives.Tanh(c, h);                   // h = tanh(c)
        TensorPrimitives.Multiply(o, h, h);            // h = o * tanh(c)
    }

    private void Head(ReadOnlySpan<float> top, Span<float> y)
    {
        int hidden = Config.HiddenSize;
        for (int k = 0; k < y.Length; k++)
            y[k] = TensorPrimitives.Dot(_headWeight.AsSpan(k * hidden, hidden), top) + _headBias[k];
    }
}
