namespace LstmOrleans.Lstm;

/// <summary>
/// Shape of a stacked LSTM with a linear head: input size D, hidden size H, L layers, K horizons.
/// Output k of the head (0-based) predicts the target k + 1 steps ahead.
/// </summary>
public sealed record LstmConfig(int InputSize, int HiddenSize, int Layers, int Horizons)
{
    /// <summary>Upper bound on any one dimension; keeps hostile model files from allocating without bound.</summary>
    public const int MaxDimension = 4096;

    /// <summary>Upper bound on the number of layers.</summary>
    public const int MaxLayers = 16;

    /// <summary>Upper bound on the parameter count (one float array holds them all).</summary>
    public const long MaxParameters = int.MaxValue / 2;

    /// <summary>Number of gate rows per layer: PyTorch stacks (input, forget, cell candidate, output).</summary>
    public int GateRows => 4 * HiddenSize;

    /// <summary>Input width of layer <paramref name="layer"/>: D for the first layer, H above it.</summary>
    public int LayerInputSize(int layer) => layer == 0 ? InputSize : HiddenSize;

    /// <summary>Length of one stream's h (or c) for all layers: [L, H].</summary>
    public int StateSize => Layers * HiddenSize;

    /// <summary>Throws <see cref="ArgumentException"/> with a clear message when a dimension is out of range.</summary>
    public LstmConfig Validate()
    {
        if (InputSize < 1 || InputSize > MaxDimension)
            throw new ArgumentException($"Input size must be between 1 and {MaxDimension}, got {InputSize}.");
        if (HiddenSize < 1 || HiddenSize > MaxDimension)
            throw new ArgumentException($"Hidden size must be between 1 and {MaxDimension}, got {HiddenSize}.");
        if (Layers < 1 || Layers > MaxLayers)
            throw new ArgumentException($"Layer count must be between 1 and {MaxLayers}, got {Layers}.");
        if (Horizons < 1 || Horizons > MaxDimension)
            throw new ArgumentException($"Horizon count must be between 1 and {MaxDimension}, got {Horizons}.");
        // Each dimension can be in range while their product is not (e.g. H = 4096 with 16 layers).
        long count = LstmParameters.CountFor(this);
        if (count > MaxParameters)
            throw new ArgumentException($"The model would have {count} parameters; at most {MaxParameters} are supported.");
        return this;
    }
}
