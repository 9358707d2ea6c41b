using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

namespace LstmOrleans.Lstm;

/// <summary>
/// An immutable, inference-ready copy of a model's parameters, shared by every stream of a model on a
/// silo. Packing happens once here so each step only reads: per layer both gate matrices and the summed biases
/// go into one <see cref="PackedGateWeights"/> over the concatenation [h_{t-1}, x_t] (the seed's notation), the
/// layout <see cref="FusedLstmCell"/> streams through to compute gates, activations and the cell update in one pass.
/// <see cref="Step"/> and <see cref="StepMany"/> run that same kernel, so they agree bit for bit.
/// </summary>
public sealed class LstmWeights
{
    /// <summary>
    /// Streams processed per chunk by <see cref="StepMany"/> (a multiple of the kernel's 6-stream tile); bounds the
    /// scratch copy of the chunk's previous h, which stays in L1 beside one weight panel.
    /// </summary>
    private const int StreamChunk = 60;

    [ThreadStatic] private static float[]? t_scratch;

    private readonly LstmParameters _parameters;
    private readonly PackedGateWeights[] _layers;   // per layer: gates packed over [h_{t-1}, x_t]
    private readonly float[] _headWeight;           // [K, H]
    private readonly float[] _headBias;             // [K]

    private LstmWeights(LstmParameters parameters)
    {
        _parameters = parameters;
        var config = parameters.Config;
        _layers = new PackedGateWeights[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            _layers[l] = new PackedGateWeights(config.HiddenSize, config.LayerInputSize(l));
            _layers[l].Pack(parameters.WeightIh(l), parameters.WeightHh(l), parameters.BiasIh(l), parameters.BiasHh(l));
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
    public unsafe void Step(ReadOnlySpan<float> x, Span<float> h, Span<float> c, Span<float> y)
    {
        var config = Config;
        int hidden = config.HiddenSize;
        if (x.Length != config.InputSize) throw new ArgumentException($"Expected {config.InputSize} input values, got {x.Length}.", nameof(x));
        if (h.Length != config.StateSize || c.Length != config.StateSize)
            throw new ArgumentException($"Expected h and c of length {config.StateSize} (L x H).");
        if (y.Length != config.Horizons) throw new ArgumentException($"Expected {config.Horizons} outputs, got {y.Length}.", nameof(y));
        RequireFinite(x);

        if (hidden <= FusedLstmCell.OneStreamMaxHidden)
        {
            // The one-stream kernel reads all of h_{t-1} before it writes h_t, so each layer updates h in place.
            fixed (float* px = x, ph = h, pc = c)
            {
                for (int l = 0; l < _layers.Length; l++)
                {
                    float* hl = ph + l * hidden, cl = pc + l * hidden;
                    var io = new CellIo
                    {
                        HPrev = hl, HPrevStride = hidden,
                        Input = l == 0 ? px : hl - hidden, InputStride = config.LayerInputSize(l),
                        CPrev = cl, CNext = cl, HNext = hl, StateStride = hidden,
                    };
                    FusedLstmCell.ForwardOne(_layers[l], io);
                }
            }
        }
        else
        {
            // h_{t-1} of the layer being stepped: the many-stream kernel writes h_t while it still reads h_{t-1}.
            Span<float> hPrev = Scratch(hidden);
            fixed (float* px = x, ph = h, pc = c, pPrev = hPrev)
            {
                for (int l = 0; l < config.Layers; l++)
                {
                    h.Slice(l * hidden, hidden).CopyTo(hPrev);
                    var io = new CellIo
                    {
                        HPrev = pPrev, HPrevStride = hidden,
                        Input = l == 0 ? px : ph + (l - 1) * hidden, InputStride = config.LayerInputSize(l),
                        CPrev = pc + l * hidden, CNext = pc + l * hidden, HNext = ph + l * hidden, StateStride = config.StateSize,
                    };
                    FusedLstmCell.Forward(_layers[l], 1, io);
                }
            }
        }
        Head(h.Slice((config.Layers - 1) * hidden, hidden), y);
    }

    private static void RequireFinite(ReadOnlySpan<float> x)
    {
        if (!TensorPrimitives.IsFiniteAll(x))
            throw new ArgumentException("Input values must be finite (no NaN or infinity).", nameof(x));
    }

    private static Span<float> Scratch(int length)
    {
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < length) t_scratch = scratch = new float[length];
        return scratch.AsSpan(0, length);
    }

    /// <summary>
    /// One step for each of B independent streams, in place, equal to B calls of <see cref="Step"/> (bit for bit:
    /// same kernel, same order of operations). x: [B, D]; h, c: [B, L*H] (each stream's state row updated in
    /// place); y: [B, K]. Streams run in chunks, each layer as one fused pass, so a weight panel is read once per chunk.
    /// </summary>
    public unsafe void StepMany(ReadOnlySpan<float> x, Span<float> h, Span<float> c, Span<float> y)
    {
        var config = Config;
        int d = config.InputSize, hidden = config.HiddenSize, state = config.StateSize, k = config.Horizons;
        if (x.Length % d != 0) throw new ArgumentException($"Input length {x.Length} is not a multiple of the input size {d}.", nameof(x));
        int streams = x.Length / d;
        if (h.Length != streams * state || c.Length != streams * state)
            throw new ArgumentException($"Expected h and c of length {streams * state} ({streams} streams x L x H), got {h.Length} and {c.Length}.");
        if (y.Length != streams * k) throw new ArgumentException($"Expected {streams * k} outputs ({streams} streams x K), got {y.Length}.", nameof(y));
        if (streams == 0) return;
        RequireFinite(x);   // before any state changes: a bad value in one stream leaves every stream untouched

        int chunk = Math.Min(StreamChunk, streams);
        Span<float> hPrev = Scratch(chunk * hidden);                 // [chunk, H] h_{t-1} of the layer being stepped
        fixed (float* px = x, ph = h, pc = c, pPrev = hPrev)
        {
            for (int s0 = 0; s0 < streams; s0 += chunk)
            {
                int n = Math.Min(chunk, streams - s0);
                float* hc = ph + (long)s0 * state, cc = pc + (long)s0 * state;   // [n, L*H] rows of this chunk
                for (int l = 0; l < config.Layers; l++)
                {
                    for (int s = 0; s < n; s++) h.Slice((s0 + s) * state + l * hidden, hidden).CopyTo(hPrev.Slice(s * hidden, hidden));
                    var io = new CellIo
                    {
                        HPrev = pPrev, HPrevStride = hidden,
                        // Input: x for layer 0, the fresh h of the layer below otherwise.
                        Input = l == 0 ? px + (long)s0 * d : hc + (l - 1) * hidden, InputStride = l == 0 ? d : state,
                        CPrev = cc + l * hidden, CNext = cc + l * hidden, HNext = hc + l * hidden, StateStride = state,
                    };
                    FusedLstmCell.Forward(_layers[l], n, io);
                }
                int top = (config.Layers - 1) * hidden;
                for (int s = 0; s < n; s++)
                    Head(h.Slice((s0 + s) * state + top, hidden), y.Slice((s0 + s) * k, k));
            }
        }
    }

    private void Head(ReadOnlySpan<float> top, Span<float> y)
    {
        int hidden = Config.HiddenSize;
        for (int k = 0; k < y.Length; k++)
            y[k] = TensorPrimitives.Dot(_headWeight.AsSpan(k * hidden, hidden), top) + _headBias[k];
    }
}
