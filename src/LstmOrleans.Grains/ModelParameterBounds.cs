using System.Globalization;
using System.Numerics.Tensors;
using LstmOrleans.Abstractions;
using LstmOrleans.Lstm.Serialization;

namespace LstmOrleans.Grains;

/// <summary>
/// How large a model's parameters may be: the bounds under which no step of any stream can overflow float32, for any
/// observation a stream accepts (|value| &lt;= <see cref="Observation.MaxMagnitude"/> = 1e30). A version outside them
/// is refused at publish: finite weights such as 1e38 passed a NaN/infinity check, then every stream of the model
/// overflowed to infinity (and infinity minus infinity to NaN) in its first gate sum, and answered with an error from
/// then on.
///
/// Why these numbers (H, D &lt;= <see cref="Lstm.LstmConfig.MaxDimension"/> = 4096):
/// <list type="bullet">
/// <item><b>Gates</b> (lstm.weight_ih, weight_hh, bias_ih, bias_hh of every layer): a gate sum is
/// sum_j w_j x_j over the layer input and h_{t-1}, plus both biases. h is in [-1, 1], calendar features too; the first
/// layer's values are z-scores under <see cref="NormalizationMode.RunningZScore"/> (|z| &lt;= sqrt(n - 1) for n
/// observations, so below 3.1e9 for any count a long holds) and raw, up to 1e30, under
/// <see cref="NormalizationMode.None"/>. With |w| &lt;= 1e4 the worst raw sum is 4096 x 1e30 x 1e4 ~ 4.1e37, within
/// float's 3.4e38, and every partial sum of the kernel is bounded by the same sum of magnitudes. Gates saturate beyond
/// |sum| ~ 20, so trained weights are orders of magnitude smaller (PyTorch initialises them within 1/sqrt(H)).</item>
/// <item><b>Head</b> (head.weight, head.bias): the output is y = W h + b with |h| &lt;= 1, so |y| &lt;= (H + 1) x bound.
/// Under RunningZScore y is in units of the target's standard deviation and is de-normalised as y x std + mean with
/// std, mean &lt;= 1e30: the bound 1e4 keeps |y| &lt;= 4.1e7 and the forecast &lt;= ~4.1e37 (a residual head adds the
/// current value, at most 1e30 after de-normalisation). Under None y is the forecast itself, in the stream's units,
/// so the head must be able to reach the values' scale: the bound 1e26 keeps |y| &lt;= 4.1e29, inside the range
/// observations may take.</item>
/// </list>
/// The cell state is not bounded by the weights but cannot overflow either: |c_t| &lt;= |c_{t-1}| + 1 per step.
/// </summary>
public static class ModelParameterBounds
{
    /// <summary>Largest |value| of a gate parameter (lstm.*), whatever the normalisation.</summary>
    public const float MaxGateMagnitude = 1e4f;

    /// <summary>Largest |value| of a head parameter (head.*) of a <see cref="NormalizationMode.RunningZScore"/> model.</summary>
    public const float MaxNormalizedHeadMagnitude = 1e4f;

    /// <summary>Largest |value| of a head parameter (head.*) of a <see cref="NormalizationMode.None"/> model.</summary>
    public const float MaxRawHeadMagnitude = 1e26f;

    /// <summary>The bound on head parameters for <paramref name="mode"/>.</summary>
    public static float MaxHeadMagnitude(NormalizationMode mode) =>
        mode == NormalizationMode.None ? MaxRawHeadMagnitude : MaxNormalizedHeadMagnitude;

    /// <summary>
    /// Null when every parameter of <paramref name="parameters"/> (flat, in LstmParameters layout, of
    /// <paramref name="config"/>'s shape) is finite and within its bound; otherwise what is wrong with the first one that
    /// is not: its tensor (the model file's name), the index within it and in the flat vector, its value and the bound.
    /// Linear in the parameter count: call it off the grain scheduler for large models.
    /// </summary>
    public static string? Check(ModelConfig config, ReadOnlySpan<float> parameters)
    {
        ArgumentNullException.ThrowIfNull(config);
        int d = config.ModelInputSize, h = config.HiddenSize, gates = 4 * h;
        int offset = 0;
        for (int l = 0; l < config.Layers; l++)
        {
            int input = l == 0 ? d : h;
            if (Scan(ModelFile.WeightIhName(l), gates * input, MaxGateMagnitude, parameters, ref offset) is { } problem) return problem;
            if (Scan(ModelFile.WeightHhName(l), gates * h, MaxGateMagnitude, parameters, ref offset) is { } hh) return hh;
            if (Scan(ModelFile.BiasIhName(l), gates, MaxGateMagnitude, parameters, ref offset) is { } bih) return bih;
            if (Scan(ModelFile.BiasHhName(l), gates, MaxGateMagnitude, parameters, ref offset) is { } bhh) return bhh;
        }
        float head = MaxHeadMagnitude(config.Normalization);
        if (Scan(ModelFile.HeadWeightName, config.Horizons * h, head, parameters, ref offset) is { } weight) return weight;
        if (Scan(ModelFile.HeadBiasName, config.Horizons, head, parameters, ref offset) is { } bias) return bias;
        if (offset != parameters.Length)
            return $"expected {offset} parameters for this shape, got {parameters.Length}";
        return null;
    }

    private static string? Scan(string tensor, int length, float bound, ReadOnlySpan<float> parameters, ref int offset)
    {
        int start = offset;
        offset += length;
        if (offset > parameters.Length) return $"expected more than {parameters.Length} parameters for this shape (tensor {tensor} ends at {offset})";
        var values = parameters.Slice(start, length);
        // The vectorised maximum decides; only a tensor that fails is searched for its first offender. MaxMagnitude
        // returns the signed element and propagates NaN, which the comparison refuses.
        if (length == 0 || Math.Abs(TensorPrimitives.MaxMagnitude(values)) <= bound) return null;
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (Math.Abs(v) <= bound) continue;
            var why = float.IsFinite(v)
                ? string.Create(CultureInfo.InvariantCulture, $"{tensor} values must be at most {bound:G} in magnitude, or a stream's step could overflow float")
                : "parameters must be finite";
            return string.Create(CultureInfo.InvariantCulture, $"parameter {start + i} ({tensor}[{i}]) is {v:R}; {why}");
        }
        return null;
    }
}
