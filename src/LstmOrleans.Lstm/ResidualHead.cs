namespace LstmOrleans.Lstm;

/// <summary>
/// The residual head's rule, in one place: a residual model's head output k is the change of the target from the
/// step's own (encoded) target input, so forecast_k = current + output_k, and training fits output_k to
/// target_k - current (the same error either way: forecast - target = output - (target - current)). Used by the
/// stream grains, model files (<see cref="Serialization.ModelInputEncoder.DecodeForecasts"/>), the trainer and the
/// evaluation diagnostics, so live, offline and training agree on what a residual output means.
/// </summary>
public static class ResidualHead
{
    /// <summary>Head outputs y [K] (changes) become levels, in place: y[k] += x[targetIndex], x [D] the step's input.</summary>
    public static void ToLevels(ReadOnlySpan<float> x, int targetIndex, Span<float> y)
    {
        float current = x[targetIndex];
        for (int k = 0; k < y.Length; k++) y[k] += current;
    }

    /// <summary>The training target of one output: the change from the step's target input to the value to forecast.</summary>
    public static float Change(float target, float current) => target - current;
}
