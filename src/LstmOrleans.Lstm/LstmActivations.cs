namespace LstmOrleans.Lstm;

/// <summary>
/// Everything the forward pass keeps for the backward pass (llm.c's ActivationTensors), sized once for a
/// maximum batch B and window length T and reused for every batch. Buffers are time-major so that one
/// time step of the whole batch is a contiguous [B, ·] matrix; a batch smaller than the maximum uses a prefix.
/// </summary>
public sealed class LstmActivations
{
    public LstmActivations(LstmConfig config, int maxBatch, int steps)
    {
        config.Validate();
        if (maxBatch < 1) throw new ArgumentOutOfRangeException(nameof(maxBatch), "Batch size must be at least 1.");
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), "Window length must be at least 1.");
        long perLayer = (long)(steps + 1) * maxBatch * config.HiddenSize * 3 + (long)steps * maxBatch * config.GateRows;
        if (perLayer * config.Layers > int.MaxValue / 4)
            throw new ArgumentException($"Batch {maxBatch} x window {steps} needs too much memory for this model.");
        Config = config;
        MaxBatch = maxBatch;
        Steps = steps;
        int b = maxBatch, t = steps, h = config.HiddenSize;
        Inputs = new float[t * b * config.InputSize];
        Targets = new float[t * b * config.Horizons];
        Mask = new float[t * b * config.Horizons];
        Outputs = new float[t * b * config.Horizons];
        Hidden = new float[config.Layers][];
        Cell = new float[config.Layers][];
        Gates = new float[config.Layers][];
        TanhCell = new float[config.Layers][];
        for (int l = 0; l < config.Layers; l++)
        {
            Hidden[l] = new float[(t + 1) * b * h];
            Cell[l] = new float[(t + 1) * b * h];
            Gates[l] = new float[t * b * config.GateRows];
            TanhCell[l] = new float[t * b * h];
        }
    }

    public LstmConfig Config { get; }
    public int MaxBatch { get; }
    public int Steps { get; }

    /// <summary>Batch size of the last forward pass.</summary>
    public int Batch { get; internal set; }

    /// <summary>Burn-in of the last forward pass: steps t &lt; BurnIn do not count in the loss.</summary>
    public int BurnIn { get; internal set; }

    /// <summary>Sum of squared errors over counted entries in the last forward pass.</summary>
    public double SumSquaredError { get; internal set; }

    /// <summary>Number of counted (unmasked, past burn-in) entries in the last forward pass.</summary>
    public int Count { get; internal set; }

    internal float[] Inputs { get; }       // [T, B, D]   x_t of every window
    internal float[] Targets { get; }      // [T, B, K]
    internal float[] Mask { get; }         // [T, B, K]   1 = entry counts in the loss, 0 = masked or burn-in
    internal float[] Outputs { get; }      // [T, B, K]   y_t = W_y h_top,t + b_y
    internal float[][] Hidden { get; }     // per layer [T + 1, B, H]; slot 0 = h0, slot t + 1 = h_t
    internal float[][] Cell { get; }       // per layer [T + 1, B, H]; slot 0 = c0, slot t + 1 = c_t
    internal float[][] Gates { get; }      // per layer [T, B, 4H]   activated gates (i, f, g, o) per row
    internal float[][] TanhCell { get; }   // per layer [T, B, H]    tanh(c_t)

    /// <summary>Copies the outputs of the last forward pass into <paramref name="destination"/> as [B, T, K].</summary>
    public void CopyOutputs(Span<float> destination) => CopyFromTimeMajor(Outputs, Config.Horizons, destination);

    /// <summary>Copies the final state of the last forward pass, as [B, L*H] each (what a stream would carry on).</summary>
    public void CopyFinalState(Span<float> h, Span<float> c)
    {
        int b = Batch, hidden = Config.HiddenSize, state = Config.StateSize;
        if (h.Length != b * state || c.Length != b * state) throw new ArgumentException($"Expected [B, L*H] = {b * state} values.");
        for (int l = 0; l < Config.Layers; l++)
            for (int s = 0; s < b; s++)
            {
                Hidden[l].AsSpan((Steps * b + s) * hidden, hidden).CopyTo(h.Slice(s * state + l * hidden, hidden));
                Cell[l].AsSpan((Steps * b + s) * hidden, hidden).CopyTo(c.Slice(s * state + l * hidden, hidden));
            }
    }

    internal void CopyFromTimeMajor(ReadOnlySpan<float> source, int width, Span<float> destination)
    {
        int b = Batch, t = Steps;
        if (destination.Length != b * t * width) throw new ArgumentException($"Expected [B, T, {width}] = {b * t * width} values.");
        for (int s = 0; s < b; s++)
            for (int step = 0; step < t; step++)
                source.Slice((step * b + s) * width, width).CopyTo(destination.Slice((s * t + step) * width, width));
    }
}
