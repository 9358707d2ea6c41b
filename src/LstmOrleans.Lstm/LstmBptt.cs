using System.Numerics.Tensors;

namespace LstmOrleans.Lstm;

/// <summary>
/// Backpropagation through time for a batch of windows: <see cref="Forward"/> runs the stacked LSTM and the
/// head over B windows of T steps keeping every activation in <see cref="Activations"/>, and
/// <see cref="Backward"/> (always paired with the forward just before it) returns the gradient of the loss
/// with respect to every parameter (same flat layout as <see cref="LstmParameters"/>), the initial states
/// and the inputs. The loss is PyTorch's MSELoss('mean') over the counted entries: those not masked and
/// not in the first burn-in steps. All buffers are sized once in the constructor; passes do not allocate.
/// Not thread-safe: use one instance per thread.
/// </summary>
public sealed class LstmBptt
{
    private readonly PackedGateWeights[] _packed;   // per layer, packed at each forward for FusedLstmCell
    private readonly float[] _dOutputs;      // [T, B, K]   dLoss/dy
    private float[] _dAbove;                 // [T, B, H]   dLoss/dh_t arriving from the head or the layer above
    private float[] _dBelow;                 // [T, B, H]   dLoss/d(input of this layer) = dh for the layer below
    private readonly float[] _dGates;        // [T, B, 4H]  dLoss/d(gate pre-activations)
    private readonly float[] _dhNext;        // [B, H]      dLoss/dh_{t-1} through the recurrence
    private readonly float[] _dcNext;        // [B, H]      dLoss/dc_{t-1} through the recurrence
    private readonly float[] _dWT;           // [max(D, H), 4H]  a weight gradient, transposed, before unpacking
    private readonly float[] _dInputs;       // [T, B, D]   dLoss/dx, time-major
    private LstmParameters? _forwardParameters;
    private static readonly float[] One = [1f];

    public LstmBptt(LstmConfig config, int maxBatch, int steps)
    {
        Activations = new LstmActivations(config, maxBatch, steps);
        int b = maxBatch, t = steps, h = config.HiddenSize, rows = config.GateRows;
        _packed = new PackedGateWeights[config.Layers];
        for (int l = 0; l < config.Layers; l++) _packed[l] = new PackedGateWeights(h, config.LayerInputSize(l));
        _dOutputs = new float[t * b * config.Horizons];
        _dAbove = new float[t * b * h];
        _dBelow = new float[t * b * h];
        _dGates = new float[t * b * rows];
        _dhNext = new float[b * h];
        _dcNext = new float[b * h];
        _dWT = new float[Math.Max(config.InputSize, h) * rows];
        _dInputs = new float[t * b * config.InputSize];
    }

    public LstmConfig Config => Activations.Config;
    public int MaxBatch => Activations.MaxBatch;
    public int Steps => Activations.Steps;
    public LstmActivations Activations { get; }

    /// <summary>
    /// Forward pass over <paramref name="batch"/> windows; returns the MSE over counted entries (0 when none count).
    /// inputs [B, T, D]; targets [B, T, K]; mask [B, T, K] with 1 = counts, 0 = masked (empty: all count);
    /// h0, c0 [B, L*H] initial states (empty: zero); steps t &lt; burnIn never count.
    /// </summary>
    public float Forward(LstmParameters parameters, int batch, ReadOnlySpan<float> inputs, ReadOnlySpan<float> targets,
        ReadOnlySpan<float> mask = default, ReadOnlySpan<float> h0 = default, ReadOnlySpan<float> c0 = default, int burnIn = 0)
    {
        var config = Config;
        var act = Activations;
        if (parameters.Config != config) throw new ArgumentException($"Parameters are for {parameters.Config}, this pass is for {config}.", nameof(parameters));
        int t = Steps, d = config.InputSize, k = config.Horizons, hidden = config.HiddenSize, rows = config.GateRows, state = config.StateSize;
        if (batch < 1 || batch > MaxBatch) throw new ArgumentOutOfRangeException(nameof(batch), $"Batch must be between 1 and {MaxBatch}, got {batch}.");
        if (inputs.Length != batch * t * d) throw new ArgumentException($"Expected inputs [B, T, D] = {batch * t * d} values, got {inputs.Length}.", nameof(inputs));
        if (targets.Length != batch * t * k) throw new ArgumentException($"Expected targets [B, T, K] = {batch * t * k} values, got {targets.Length}.", nameof(targets));
        if (!mask.IsEmpty && mask.Length != targets.Length) throw new ArgumentException($"Expected mask [B, T, K] = {targets.Length} values, got {mask.Length}.", nameof(mask));
        if (!h0.IsEmpty && h0.Length != batch * state) throw new ArgumentException($"Expected h0 [B, L*H] = {batch * state} values, got {h0.Length}.", nameof(h0));
        if (!c0.IsEmpty && c0.Length != batch * state) throw new ArgumentException($"Expected c0 [B, L*H] = {batch * state} values, got {c0.Length}.", nameof(c0));
        if (burnIn < 0 || burnIn > t) throw new ArgumentOutOfRangeException(nameof(burnIn), $"Burn-in must be between 0 and {t}, got {burnIn}.");
        if (!AllFinite(inputs) || !AllFinite(h0) || !AllFinite(c0)) throw new ArgumentException("Inputs and initial states must be finite.");
        for (int e = 0; e < targets.Length; e++)
        {
            bool counts = mask.IsEmpty || mask[e] != 0f;
            if (!mask.IsEmpty && mask[e] != 0f && mask[e] != 1f) throw new ArgumentException("Mask entries must be 0 or 1.", nameof(mask));
            if (counts && !float.IsFinite(targets[e])) throw new ArgumentException("Unmasked targets must be finite.", nameof(targets));
        }

        PackWeights(parameters);
        _forwardParameters = parameters;
        act.Batch = batch;
        act.BurnIn = burnIn;

        // Time-major copies of inputs, targets and the effective mask (burn-in folded in).
        for (int s = 0; s < batch; s++)
            for (int step = 0; step < t; step++)
            {
                int src = s * t + step, dst = step * batch + s;
                inputs.Slice(src * d, d).CopyTo(act.Inputs.AsSpan(dst * d, d));
                for (int q = 0; q < k; q++)
                {
                    bool counts = step >= burnIn && (mask.IsEmpty || mask[src * k + q] != 0f);
                    act.Mask[dst * k + q] = counts ? 1f : 0f;
                    act.Targets[dst * k + q] = counts ? targets[src * k + q] : 0f;
                }
            }

        int n = t * batch;
        for (int l = 0; l < config.Layers; l++)
        {
            float[] hl = act.Hidden[l], cl = act.Cell[l], gl = act.Gates[l], tcl = act.TanhCell[l];
            for (int s = 0; s < batch; s++)
            {
                Span<float> hs = hl.AsSpan(s * hidden, hidden), cs = cl.AsSpan(s * hidden, hidden);
                if (h0.IsEmpty) hs.Clear(); else h0.Slice(s * state + l * hidden, hidden).CopyTo(hs);
                if (c0.IsEmpty) cs.Clear(); else c0.Slice(s * state + l * hidden, hidden).CopyTo(cs);
            }
            int din = config.LayerInputSize(l);
            // Layer input of step t: x_t [B, D] for layer 0, h_t of the layer below (its slot t + 1) otherwise.
            float[] layerIn = l == 0 ? act.Inputs : act.Hidden[l - 1];
            int layerInOffset = l == 0 ? 0 : batch * hidden;
            unsafe
            {
                fixed (float* ph = hl, pc = cl, pg = gl, pt = tcl, pin = layerIn)
                {
                    for (int step = 0; step < t; step++)
                    {
                        // One fused pass per step: gates_t[B, 4H] = act(bias + [h_{t-1}, in_t] · Wᵀ), then c_t, h_t; the
                        // activated gates and tanh(c_t) are kept for the backward pass.
                        int slot = step * batch;   // rows of step t in [T, B, ·] buffers; slot + batch = the next state slot
                        var io = new CellIo
                        {
                            HPrev = ph + (long)slot * hidden, HPrevStride = hidden,
                            Input = pin + layerInOffset + (long)slot * din, InputStride = din,
                            CPrev = pc + (long)slot * hidden, CNext = pc + (long)(slot + batch) * hidden,
                            HNext = ph + (long)(slot + batch) * hidden, StateStride = hidden,
                            Gates = pg + (long)slot * rows, TanhC = pt + (long)slot * hidden,
                        };
                        FusedLstmCell.Forward(_packed[l], batch, io);
                    }
                }
            }
        }

        // Head and loss over every (step, window).
        ReadOnlySpan<float> top = act.Hidden[config.Layers - 1].AsSpan(batch * hidden, n * hidden);
        ReadOnlySpan<float> headW = parameters.HeadWeight, headB = parameters.HeadBias;
        double sse = 0;
        int count = 0;
        for (int r = 0; r < n; r++)
        {
            ReadOnlySpan<float> hr = top.Slice(r * hidden, hidden);
            for (int q = 0; q < k; q++)
            {
                float y = TensorPrimitives.Dot(headW.Slice(q * hidden, hidden), hr) + headB[q];
                act.Outputs[r * k + q] = y;
                if (act.Mask[r * k + q] != 0f)
                {
                    double e = (double)y - act.Targets[r * k + q];
                    sse += e * e;
                    count++;
                }
            }
        }
        act.SumSquaredError = sse;
        act.Count = count;
        return count == 0 ? 0f : (float)(sse / count);
    }

    /// <summary>
    /// Backward pass for the forward just run (same parameters object). Writes (overwrites) the gradient of
    /// lossScale · SSE into <paramref name="gradient"/> (flat layout of <see cref="LstmParameters"/>);
    /// lossScale defaults to 1 / Count, i.e. the gradient of the MSE. A data-parallel caller passes
    /// 1 / (total count over all shards) so the shard gradients sum to the gradient of the global mean.
    /// Optional outputs (skipped when empty): dInputs [B, T, D], dh0 and dc0 [B, L*H].
    /// </summary>
    public void Backward(LstmParameters parameters, Span<float> gradient, double? lossScale = null,
        Span<float> dInputs = default, Span<float> dh0 = default, Span<float> dc0 = default)
    {
        var config = Config;
        var act = Activations;
        if (!ReferenceEquals(parameters, _forwardParameters))
            throw new InvalidOperationException("Backward must follow a Forward with the same parameters object.");
        int batch = act.Batch, t = Steps, d = config.InputSize, k = config.Horizons, hidden = config.HiddenSize, rows = config.GateRows, state = config.StateSize;
        if (gradient.Length != parameters.Count) throw new ArgumentException($"Gradient must have {parameters.Count} values, got {gradient.Length}.", nameof(gradient));
        if (!dInputs.IsEmpty && dInputs.Length != batch * t * d) throw new ArgumentException($"Expected dInputs [B, T, D] = {batch * t * d} values.", nameof(dInputs));
        if (!dh0.IsEmpty && dh0.Length != batch * state) throw new ArgumentException($"Expected dh0 [B, L*H] = {batch * state} values.", nameof(dh0));
        if (!dc0.IsEmpty && dc0.Length != batch * state) throw new ArgumentException($"Expected dc0 [B, L*H] = {batch * state} values.", nameof(dc0));

        double scale = lossScale ?? (act.Count == 0 ? 0.0 : 1.0 / act.Count);
        int n = t * batch;
        gradient.Clear();
        var grad = new GradientView(parameters, gradient);

        // Loss: dL/dy = 2 (y - target) · mask · scale.
        Span<float> dOut = _dOutputs.AsSpan(0, n * k);
        float twoScale = (float)(2.0 * scale);
        for (int r = 0; r < n * k; r++)
            dOut[r] = act.Mask[r] != 0f ? twoScale * (act.Outputs[r] - act.Targets[r]) : 0f;

        // Head: y = W_y h_top + b_y.  dW_y[K, H] += dOutᵀ · h_top; db_y = Σ dOut; dh_top[N, H] = dOut · W_y.
        ReadOnlySpan<float> top = act.Hidden[config.Layers - 1].AsSpan(batch * hidden, n * hidden);
        Gemm.MultiplyAdd(k, hidden, n, dOut, 1, k, top, hidden, grad.HeadWeight, hidden);
        Span<float> headBias = grad.HeadBias;
        for (int r = 0; r < n; r++)
            for (int q = 0; q < k; q++) headBias[q] += dOut[r * k + q];
        Span<float> dAbove = _dAbove.AsSpan(0, n * hidden);
        dAbove.Clear();
        Gemm.MultiplyAdd(n, hidden, k, dOut, k, 1, parameters.HeadWeight, hidden, dAbove, hidden);

        for (int l = config.Layers - 1; l >= 0; l--)
        {
            float[] cl = act.Cell[l], gl = act.Gates[l], tcl = act.TanhCell[l];
            Span<float> dhNext = _dhNext.AsSpan(0, batch * hidden), dcNext = _dcNext.AsSpan(0, batch * hidden);
            dhNext.Clear();
            dcNext.Clear();
            Span<float> dGates = _dGates.AsSpan(0, n * rows);
            ReadOnlySpan<float> whh = parameters.WeightHh(l);
            dAbove = _dAbove.AsSpan(0, n * hidden);
            for (int step = t - 1; step >= 0; step--)
            {
                for (int s = 0; s < batch; s++)
                {
                    int row = step * batch + s;
                    CellKernels.BackwardRow(gl.AsSpan(row * rows, rows), cl.AsSpan(row * hidden, hidden), tcl.AsSpan(row * hidden, hidden),
                        dAbove.Slice(row * hidden, hidden), dhNext.Slice(s * hidden, hidden), dcNext.Slice(s * hidden, hidden),
                        dGates.Slice(row * rows, rows), hidden);
                }
                // dh_{t-1}[B, H] = dGates_t[B, 4H] · W_hh[4H, H]
                dhNext.Clear();
                Gemm.MultiplyAdd(batch, hidden, rows, dGates.Slice(step * batch * rows, batch * rows), rows, 1, whh, hidden, dhNext, hidden);
            }
            for (int s = 0; s < batch; s++)
            {
                if (!dh0.IsEmpty) dhNext.Slice(s * hidden, hidden).CopyTo(dh0.Slice(s * state + l * hidden, hidden));
                if (!dc0.IsEmpty) dcNext.Slice(s * hidden, hidden).CopyTo(dc0.Slice(s * state + l * hidden, hidden));
            }

            // Weight gradients over all steps at once, accumulated transposed ([in, 4H], rows contiguous) then unpacked.
            // dW_hhᵀ[H, 4H] = h_{t-1}ᵀ · dGates, with h_{t-1} = slots 0..T-1 of Hidden.
            ReadOnlySpan<float> hPrev = act.Hidden[l].AsSpan(0, n * hidden);
            AccumulateTransposed(hPrev, hidden, n, dGates, grad.WeightHh(l));
            int din = config.LayerInputSize(l);
            ReadOnlySpan<float> layerIn = l == 0 ? act.Inputs.AsSpan(0, n * d) : act.Hidden[l - 1].AsSpan(batch * hidden, n * hidden);
            AccumulateTransposed(layerIn, din, n, dGates, grad.WeightIh(l));
            // Bias gradient = column sums of dGates: a [1, N] row of ones (one stored 1 with strides 0) times dGates.
            Span<float> bih = grad.BiasIh(l), bhh = grad.BiasHh(l);
            Gemm.MultiplyAdd(1, rows, n, One, 0, 0, dGates, rows, bih, rows);
            bih.CopyTo(bhh);   // both biases enter the pre-activation the same way

            // Gradient into this layer's input: dIn[N, D_l] = dGates[N, 4H] · W_ih[4H, D_l].
            if (l > 0)
            {
                Span<float> dBelow = _dBelow.AsSpan(0, n * hidden);
                dBelow.Clear();
                Gemm.MultiplyAdd(n, hidden, rows, dGates, rows, 1, parameters.WeightIh(l), hidden, dBelow, hidden);
                (_dAbove, _dBelow) = (_dBelow, _dAbove);
            }
            else if (!dInputs.IsEmpty)
            {
                Span<float> dx = _dInputs.AsSpan(0, n * d);
                dx.Clear();
                Gemm.MultiplyAdd(n, d, rows, dGates, rows, 1, parameters.WeightIh(0), d, dx, d);
                act.CopyFromTimeMajor(dx, d, dInputs);
            }
        }
    }

    /// <summary>weightGrad[4H, in] += (inputᵀ[in, N] · dGates[N, 4H])ᵀ, computed in the vector-friendly transposed form.</summary>
    private void AccumulateTransposed(ReadOnlySpan<float> input, int width, int n, ReadOnlySpan<float> dGates, Span<float> weightGrad)
    {
        int rows = Config.GateRows;
        Span<float> dwT = _dWT.AsSpan(0, width * rows);
        dwT.Clear();
        Gemm.MultiplyAdd(width, rows, n, input, 1, width, dGates, rows, dwT, rows);
        for (int j = 0; j < width; j++)
            for (int r = 0; r < rows; r++)
                weightGrad[r * width + j] += dwT[j * rows + r];
    }

    private void PackWeights(LstmParameters parameters)
    {
        for (int l = 0; l < Config.Layers; l++)
            _packed[l].Pack(parameters.WeightIh(l), parameters.WeightHh(l), parameters.BiasIh(l), parameters.BiasHh(l));
    }

    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (float v in values) if (!float.IsFinite(v)) return false;
        return true;
    }

    /// <summary>The flat gradient seen through the parameter layout's accessors.</summary>
    private readonly ref struct GradientView(LstmParameters layout, Span<float> data)
    {
        private readonly Span<float> _data = data;
        public Span<float> WeightIh(int l) => layout.WeightIhOf(_data, l);
        public Span<float> WeightHh(int l) => layout.WeightHhOf(_data, l);
        public Span<float> BiasIh(int l) => layout.BiasIhOf(_data, l);
        public Span<float> BiasHh(int l) => layout.BiasHhOf(_data, l);
        public Span<float> HeadWeight => layout.HeadWeightOf(_data);
        public Span<float> HeadBias => layout.HeadBiasOf(_data);
    }
}
