using System.Numerics.Tensors;

namespace LstmOrleans.Lstm;

/// <summary>
/// Every trainable parameter of a model in one flat buffer (as llm.c's ParameterTensors), so that
/// optimizers, gradient clipping and serialisation work on a single span. Gradients use the same layout.
/// Layout, in order, for each layer l (D_l = D for l = 0, else H):
///   weight_ih_l  [4H, D_l]   rows in PyTorch gate order (input, forget, cell candidate, output)
///   weight_hh_l  [4H, H]
///   bias_ih_l    [4H]
///   bias_hh_l    [4H]
/// then head.weight [K, H] and head.bias [K].
/// </summary>
public sealed class LstmParameters
{
    private readonly int[] _layerOffsets;
    private readonly int _headOffset;

    public LstmParameters(LstmConfig config)
    {
        Config = config.Validate();
        _layerOffsets = new int[config.Layers];
        long offset = 0;
        for (int l = 0; l < config.Layers; l++)
        {
            _layerOffsets[l] = checked((int)offset);
            offset += LayerSize(config, l);
        }
        _headOffset = checked((int)offset);
        offset += (long)config.Horizons * config.HiddenSize + config.Horizons;   // at most LstmConfig.MaxParameters (validated)
        Data = new float[offset];
    }

    public LstmConfig Config { get; }

    /// <summary>All parameters, in the layout described on the type.</summary>
    public float[] Data { get; }

    public int Count => Data.Length;

    public static long CountFor(LstmConfig config)
    {
        long total = 0;
        for (int l = 0; l < config.Layers; l++) total += LayerSize(config, l);
        return total + (long)config.Horizons * config.HiddenSize + config.Horizons;
    }

    private static long LayerSize(LstmConfig config, int layer) =>
        (long)config.GateRows * (config.LayerInputSize(layer) + config.HiddenSize) + 2L * config.GateRows;

    /// <summary>weight_ih_l{layer}: [4H, D_l], row-major.</summary>
    public Span<float> WeightIh(int layer) => WeightIhOf(Data, layer);

    /// <summary>weight_hh_l{layer}: [4H, H], row-major.</summary>
    public Span<float> WeightHh(int layer) => WeightHhOf(Data, layer);

    /// <summary>bias_ih_l{layer}: [4H].</summary>
    public Span<float> BiasIh(int layer) => BiasIhOf(Data, layer);

    /// <summary>bias_hh_l{layer}: [4H].</summary>
    public Span<float> BiasHh(int layer) => BiasHhOf(Data, layer);

    /// <summary>head.weight: [K, H], row-major.</summary>
    public Span<float> HeadWeight => HeadWeightOf(Data);

    /// <summary>head.bias: [K].</summary>
    public Span<float> HeadBias => HeadBiasOf(Data);

    // The same views over any buffer in this layout (a gradient, an optimizer moment).
    internal Span<float> WeightIhOf(Span<float> flat, int layer) =>
        flat.Slice(_layerOffsets[layer], Config.GateRows * Config.LayerInputSize(layer));

    internal Span<float> WeightHhOf(Span<float> flat, int layer) =>
        flat.Slice(_layerOffsets[layer] + Config.GateRows * Config.LayerInputSize(layer), Config.GateRows * Config.HiddenSize);

    internal Span<float> BiasIhOf(Span<float> flat, int layer) =>
        flat.Slice(_layerOffsets[layer] + Config.GateRows * (Config.LayerInputSize(layer) + Config.HiddenSize), Config.GateRows);

    internal Span<float> BiasHhOf(Span<float> flat, int layer) =>
        flat.Slice(_layerOffsets[layer] + Config.GateRows * (Config.LayerInputSize(layer) + Config.HiddenSize + 1), Config.GateRows);

    internal Span<float> HeadWeightOf(Span<float> flat) => flat.Slice(_headOffset, Config.Horizons * Config.HiddenSize);

    internal Span<float> HeadBiasOf(Span<float> flat) => flat.Slice(_headOffset + Config.Horizons * Config.HiddenSize, Config.Horizons);

    /// <summary>
    /// PyTorch's default initialisation for nn.LSTM and nn.Linear(H, K): every parameter drawn from
    /// uniform(-1/sqrt(H), 1/sqrt(H)). Deterministic for a given seed (System.Random with a seed is
    /// a fixed algorithm across .NET versions).
    /// </summary>
    public static LstmParameters InitializeUniform(LstmConfig config, int seed)
    {
        var parameters = new LstmParameters(config);
        var random = new Random(seed);
        float bound = 1f / MathF.Sqrt(config.HiddenSize);
        Span<float> data = parameters.Data;
        for (int i = 0; i < data.Length; i++)
            data[i] = (float)((random.NextDouble() * 2.0 - 1.0) * bound);
        return parameters;
    }

    public LstmParameters Clone()
    {
        var copy = new LstmParameters(Config);
        Data.AsSpan().CopyTo(copy.Data);
        return copy;
    }

    /// <summary>True when every parameter is finite (no NaN, no infinity).</summary>
    public bool AllFinite()
    {
        foreach (float v in Data)
            if (!float.IsFinite(v)) return false;
        return true;
    }

    /// <summary>L2 norm of the whole parameter vector.</summary>
    public float Norm() => TensorPrimitives.Norm<float>(Data);
}
