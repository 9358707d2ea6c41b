using LstmOrleans.Lstm.Training;

namespace LstmOrleans.Lstm.Tests;

public class OptimizerTests
{
    private static readonly float[][] Gradients =
    [
        [0.5f, -1.0f, 0.0f, 2.0f],
        [-0.25f, 0.75f, 0.1f, -3.0f],
        [1.0f, 0.0f, -0.2f, 0.5f],
    ];

    private static readonly float[] Start = [1.0f, -2.0f, 0.5f, 0.0f];

    [Fact]
    public void Sgd_PlainStep_IsParameterMinusLearningRateTimesGradient()
    {
        var p = (float[])Start.Clone();
        var sgd = new SgdOptimizer(4, 0.1f);
        sgd.Step(p, Gradients[0]);
        Assert.Equal([0.95f, -1.9f, 0.5f, -0.2f], p);
    }

    [Fact]
    public void Sgd_Momentum_FollowsPyTorchRule()
    {
        const double lr = 0.05, mu = 0.9;
        var p = (float[])Start.Clone();
        var sgd = new SgdOptimizer(4, (float)lr, (float)mu);
        var expected = Start.Select(v => (double)v).ToArray();
        var buf = new double[4];
        for (int step = 0; step < Gradients.Length; step++)
        {
            for (int n = 0; n < 4; n++)
            {
                buf[n] = step == 0 ? Gradients[step][n] : mu * buf[n] + Gradients[step][n];   // PyTorch: buf = g on the first step
                expected[n] -= lr * buf[n];
            }
            sgd.Step(p, Gradients[step]);
            for (int n = 0; n < 4; n++) Assert.Equal(expected[n], p[n], 1e-6);
        }
        // Third step by hand for parameter 0: buf = 0.9 (0.9·0.5 − 0.25) + 1 = 1.18; p = 1 − 0.05 (0.5 + 0.2 + 1.18)
        Assert.Equal(1.0 - 0.05 * (0.5 + 0.2 + 1.18), p[0], 1e-6);
    }

    [Fact]
    public void Adam_MatchesTorchRuleWithDefaults()
    {
        var p = (float[])Start.Clone();
        var adam = new AdamOptimizer(4);
        Assert.Equal(1e-3f, adam.LearningRate);
        Assert.Equal(0.9f, adam.Beta1);
        Assert.Equal(0.999f, adam.Beta2);
        Assert.Equal(1e-8f, adam.Epsilon);
        double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        var expected = Start.Select(v => (double)v).ToArray();
        var m = new double[4]; var v = new double[4];
        for (int step = 1; step <= Gradients.Length; step++)
        {
            var g = Gradients[step - 1];
            for (int n = 0; n < 4; n++)
            {
                m[n] = b1 * m[n] + (1 - b1) * g[n];
                v[n] = b2 * v[n] + (1 - b2) * g[n] * g[n];
                double bc1 = 1 - Math.Pow(b1, step), bc2 = 1 - Math.Pow(b2, step);
                expected[n] -= lr / bc1 * m[n] / (Math.Sqrt(v[n]) / Math.Sqrt(bc2) + eps);
            }
            adam.Step(p, g);
            for (int n = 0; n < 4; n++) Assert.Equal(expected[n], p[n], 1e-6);
        }
        // First Adam step moves each parameter with a non-zero gradient by almost exactly lr against its sign.
        var q = (float[])Start.Clone();
        new AdamOptimizer(4).Step(q, Gradients[0]);
        Assert.Equal(1.0 - 1e-3, q[0], 1e-6);
        Assert.Equal(-2.0 + 1e-3, q[1], 1e-6);
        Assert.Equal(0.5, q[2], 1e-7);
    }

    [Fact]
    public void ClipByGlobalNorm_ScalesOnlyWhenAboveMax()
    {
        float[] g = [3f, 4f];                                  // norm 5
        double norm = GradientClipping.ClipByGlobalNorm(g, 1f);
        Assert.Equal(5.0, norm, 1e-9);
        double coefficient = 1.0 / (5.0 + 1e-6);
        Assert.Equal(3 * coefficient, g[0], 1e-6);
        Assert.Equal(4 * coefficient, g[1], 1e-6);

        float[] small = [0.3f, 0.4f];                          // norm 0.5 below max: untouched
        GradientClipping.ClipByGlobalNorm(small, 1f);
        Assert.Equal([0.3f, 0.4f], small);
    }

    [Fact]
    public void Optimizers_RejectBadArguments()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SgdOptimizer(4, -0.1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SgdOptimizer(4, 0.1f, 1.5f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdamOptimizer(4, float.NaN));
        Assert.Throws<ArgumentException>(() => new AdamOptimizer(4).Step(new float[3], new float[3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => GradientClipping.ClipByGlobalNorm(new float[2], 0f));
    }
}
