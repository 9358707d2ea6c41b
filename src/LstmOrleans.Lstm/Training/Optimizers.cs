using System.Numerics.Tensors;

namespace LstmOrleans.Lstm.Training;

/// <summary>Which update rule the trainer uses.</summary>
public enum OptimizerKind
{
    Sgd,
    Adam,
}

/// <summary>An update rule over a flat parameter vector and a gradient of the same layout.</summary>
public interface IOptimizer
{
    float LearningRate { get; set; }

    /// <summary>Updates <paramref name="parameters"/> in place from <paramref name="gradient"/>.</summary>
    void Step(Span<float> parameters, ReadOnlySpan<float> gradient);
}

/// <summary>
/// torch.optim.SGD with optional momentum (dampening 0, no Nesterov, no weight decay):
/// buf = momentum · buf + g (buf = g on the first step); p -= lr · buf. Without momentum p -= lr · g.
/// </summary>
public sealed class SgdOptimizer : IOptimizer
{
    private readonly float[] _momentumBuffer;   // [P]

    public SgdOptimizer(int size, float learningRate, float momentum = 0f)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size));
        if (!(learningRate > 0f) || !float.IsFinite(learningRate)) throw new ArgumentOutOfRangeException(nameof(learningRate), "Learning rate must be positive and finite.");
        if (!(momentum >= 0f && momentum < 1f)) throw new ArgumentOutOfRangeException(nameof(momentum), "Momentum must be in [0, 1).");
        _momentumBuffer = new float[size];
        LearningRate = learningRate;
        Momentum = momentum;
    }

    public float LearningRate { get; set; }
    public float Momentum { get; }

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradient)
    {
        CheckSizes(parameters, gradient, _momentumBuffer.Length);
        if (Momentum == 0f)
        {
            TensorPrimitives.MultiplyAdd(gradient, -LearningRate, parameters, parameters);
            return;
        }
        // buf starts at zero, so momentum · 0 + g reproduces PyTorch's "buf = g" on the first step.
        TensorPrimitives.MultiplyAdd(_momentumBuffer, Momentum, gradient, _momentumBuffer);
        TensorPrimitives.MultiplyAdd(_momentumBuffer, -LearningRate, parameters, parameters);
    }

    internal static void CheckSizes(Span<float> parameters, ReadOnlySpan<float> gradient, int size)
    {
        if (parameters.Length != size || gradient.Length != size)
            throw new ArgumentException($"Optimizer was built for {size} parameters, got {parameters.Length} parameters and {gradient.Length} gradients.");
    }
}

/// <summary>
/// torch.optim.Adam (amsgrad off, no weight decay) with its defaults lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8:
/// m = β1 m + (1 − β1) g; v = β2 v + (1 − β2) g²; p -= (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps).
/// </summary>
public sealed class AdamOptimizer : IOptimizer
{
    private readonly float[] _m;   // [P] first moment
    private readonly float[] _v;   // [P] second moment

    public AdamOptimizer(int size, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size));
        if (!(learningRate > 0f) || !float.IsFinite(learningRate)) throw new ArgumentOutOfRangeException(nameof(learningRate), "Learning rate must be positive and finite.");
        if (!(beta1 >= 0f && beta1 < 1f) || !(beta2 >= 0f && beta2 < 1f)) throw new ArgumentOutOfRangeException(nameof(beta1), "Betas must be in [0, 1).");
        if (!(epsilon > 0f)) throw new ArgumentOutOfRangeException(nameof(epsilon));
        _m = new float[size];
        _v = new float[size];
        LearningRate = learningRate;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
    }

    public float LearningRate { get; set; }
    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Epsilon { get; }

    /// <summary>Number of updates taken so far (t in the bias corrections).</summary>
    public long StepCount { get; private set; }

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradient)
    {
        SgdOptimizer.CheckSizes(parameters, gradient, _m.Length);
        StepCount++;
        double bias1 = 1.0 - Math.Pow(Beta1, StepCount);
        double bias2Sqrt = Math.Sqrt(1.0 - Math.Pow(Beta2, StepCount));
        float stepSize = (float)(LearningRate / bias1);
        float invBias2Sqrt = (float)(1.0 / bias2Sqrt);
        float b1 = Beta1, b2 = Beta2, oneMinusB1 = 1f - Beta1, oneMinusB2 = 1f - Beta2, eps = Epsilon;
        float[] m = _m, v = _v;
        for (int n = 0; n < parameters.Length; n++)
        {
            float g = gradient[n];
            float mn = b1 * m[n] + oneMinusB1 * g;
            float vn = b2 * v[n] + oneMinusB2 * g * g;
            m[n] = mn;
            v[n] = vn;
            parameters[n] -= stepSize * mn / (MathF.Sqrt(vn) * invBias2Sqrt + eps);
        }
    }
}

/// <summary>torch.nn.utils.clip_grad_norm_ over one flat gradient.</summary>
public static class GradientClipping
{
    /// <summary>
    /// Scales <paramref name="gradient"/> by max_norm / (norm + 1e-6) when that is below 1; returns the norm
    /// before clipping (accumulated in double). A non-finite norm is returned as is and nothing is scaled.
    /// </summary>
    public static double ClipByGlobalNorm(Span<float> gradient, float maxNorm)
    {
        if (!(maxNorm > 0f)) throw new ArgumentOutOfRangeException(nameof(maxNorm), "Max norm must be positive.");
        double sum = 0;
        foreach (float g in gradient) sum += (double)g * g;
        double norm = Math.Sqrt(sum);
        if (!double.IsFinite(norm)) return norm;
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1.0) TensorPrimitives.Multiply(gradient, (float)coefficient, gradient);
        return norm;
    }
}
