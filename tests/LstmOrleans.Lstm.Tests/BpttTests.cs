namespace LstmOrleans.Lstm.Tests;

public class BpttTests
{
    private sealed record Problem(LstmConfig Config, LstmParameters Parameters, int Batch, int Steps, float[] Inputs, float[] Targets,
        float[] Mask, float[] H0, float[] C0, int BurnIn);

    private static Problem MakeProblem(int d, int hidden, int layers, int horizons, int batch, int steps, int burnIn, int seed)
    {
        var config = new LstmConfig(d, hidden, layers, horizons);
        var rnd = new Random(seed);
        var p = new LstmParameters(config);
        // Larger than the default init so every gate works in its non-linear range and every term matters.
        for (int n = 0; n < p.Count; n++) p.Data[n] = (float)(rnd.NextDouble() * 1.6 - 0.8);
        float[] R(int len, double scale) => Enumerable.Range(0, len).Select(_ => (float)((rnd.NextDouble() * 2 - 1) * scale)).ToArray();
        var mask = Enumerable.Range(0, batch * steps * horizons).Select(_ => rnd.NextDouble() < 0.3 ? 0f : 1f).ToArray();
        return new Problem(config, p, batch, steps, R(batch * steps * d, 1.5), R(batch * steps * horizons, 1.0), mask,
            R(batch * config.StateSize, 0.8), R(batch * config.StateSize, 1.2), burnIn);
    }

    private static double ReferenceLoss(Problem pr, double[] p, double[] x, double[] h0, double[] c0) =>
        ReferenceLstm.Loss(pr.Config, p, pr.Batch, pr.Steps, x, pr.Targets.Select(v => (double)v).ToArray(), pr.Mask, h0, c0, pr.BurnIn);

    private static double[] D(float[] v) => v.Select(x => (double)x).ToArray();

    /// <summary>Central differences of the double-precision reference loss with respect to one vector.</summary>
    private static double[] NumericGradient(double[] values, Func<double> loss)
    {
        const double eps = 1e-5;
        var result = new double[values.Length];
        for (int n = 0; n < values.Length; n++)
        {
            double saved = values[n];
            values[n] = saved + eps; double up = loss();
            values[n] = saved - eps; double down = loss();
            values[n] = saved;
            result[n] = (up - down) / (2 * eps);
        }
        return result;
    }

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = Math.Max(1e-3, expected.Max(Math.Abs));
        int nonTrivial = 0;
        for (int n = 0; n < expected.Length; n++)
        {
            double tolerance = 2e-4 * scale + 2e-3 * Math.Abs(expected[n]);
            Assert.True(Math.Abs(expected[n] - actual[n]) <= tolerance,
                $"{what}[{n}]: analytic {actual[n]:G6} vs finite difference {expected[n]:G6} (tolerance {tolerance:G3})");
            if (Math.Abs(expected[n]) > 0.05 * scale) nonTrivial++;
        }
        // Guard against a vacuous check: the gradient must actually carry signal.
        Assert.True(nonTrivial >= Math.Min(expected.Length, 1) && scale > 1e-3, $"{what} gradient is trivially small");
    }

    [Theory]
    [InlineData(1, 3, 1, 1, 3, 5, 0)]
    [InlineData(1, 3, 1, 3, 3, 5, 2)]
    [InlineData(2, 3, 2, 1, 2, 6, 1)]
    [InlineData(2, 4, 2, 3, 3, 5, 2)]
    [InlineData(1, 5, 2, 3, 5, 4, 1)]   // batch of 5: 4-row GEMM block plus a remainder row
    [InlineData(16, 17, 2, 2, 7, 3, 1)] // inputs >= 16 wide: weight gradients accumulated in PyTorch layout; a partial
                                        // 16-unit block and a 6-stream tile plus a remainder in the fused forward
    public void Backward_MatchesFiniteDifferencesOfDoubleReference(int d, int hidden, int layers, int horizons, int batch, int steps, int burnIn)
    {
        var pr = MakeProblem(d, hidden, layers, horizons, batch, steps, burnIn, seed: d * 100 + hidden * 10 + layers + horizons);
        var bptt = new LstmBptt(pr.Config, batch, steps);
        float loss = bptt.Forward(pr.Parameters, batch, pr.Inputs, pr.Targets, pr.Mask, pr.H0, pr.C0, burnIn);
        var grad = new float[pr.Parameters.Count];
        var dx = new float[pr.Inputs.Length]; var dh0 = new float[pr.H0.Length]; var dc0 = new float[pr.C0.Length];
        bptt.Backward(pr.Parameters, grad, null, dx, dh0, dc0);

        double[] p = D(pr.Parameters.Data), x = D(pr.Inputs), h0 = D(pr.H0), c0 = D(pr.C0);
        Assert.Equal(ReferenceLoss(pr, p, x, h0, c0), loss, 1e-5);
        AssertClose(NumericGradient(p, () => ReferenceLoss(pr, p, x, h0, c0)), grad, "parameters");
        AssertClose(NumericGradient(h0, () => ReferenceLoss(pr, p, x, h0, c0)), dh0, "h0");
        AssertClose(NumericGradient(c0, () => ReferenceLoss(pr, p, x, h0, c0)), dc0, "c0");
        AssertClose(NumericGradient(x, () => ReferenceLoss(pr, p, x, h0, c0)), dx, "inputs");
    }

    [Fact]
    public void Backward_EveryParameterTensorGetsNonZeroGradient()
    {
        var pr = MakeProblem(2, 4, 2, 3, 3, 5, 1, seed: 9);
        var bptt = new LstmBptt(pr.Config, pr.Batch, pr.Steps);
        bptt.Forward(pr.Parameters, pr.Batch, pr.Inputs, pr.Targets, pr.Mask, pr.H0, pr.C0, pr.BurnIn);
        var grad = new LstmParameters(pr.Config);
        bptt.Backward(pr.Parameters, grad.Data);
        for (int l = 0; l < 2; l++)
        {
            Assert.Contains(grad.WeightIh(l).ToArray(), v => v != 0f);
            Assert.Contains(grad.WeightHh(l).ToArray(), v => v != 0f);
            Assert.Equal(grad.BiasIh(l).ToArray(), grad.BiasHh(l).ToArray());
        }
        Assert.Contains(grad.HeadWeight.ToArray(), v => v != 0f);
    }

    [Theory]
    [InlineData(1, 8, 1, 1)]
    [InlineData(3, 6, 2, 3)]
    public void Forward_EqualsSteppingOneAtATime(int d, int hidden, int layers, int horizons)
    {
        var pr = MakeProblem(d, hidden, layers, horizons, batch: 6, steps: 7, burnIn: 0, seed: 5);
        var bptt = new LstmBptt(pr.Config, 8, pr.Steps);   // max batch larger than the batch: prefix use
        bptt.Forward(pr.Parameters, pr.Batch, pr.Inputs, pr.Targets, default, pr.H0, pr.C0);
        var outputs = new float[pr.Batch * pr.Steps * horizons];
        bptt.Activations.CopyOutputs(outputs);
        var hFinal = new float[pr.H0.Length]; var cFinal = new float[pr.C0.Length];
        bptt.Activations.CopyFinalState(hFinal, cFinal);

        var weights = LstmWeights.From(pr.Parameters);
        int s = pr.Config.StateSize;
        var y = new float[horizons];
        for (int b = 0; b < pr.Batch; b++)
        {
            var h = pr.H0.AsSpan(b * s, s).ToArray(); var c = pr.C0.AsSpan(b * s, s).ToArray();
            for (int t = 0; t < pr.Steps; t++)
            {
                weights.Step(pr.Inputs.AsSpan((b * pr.Steps + t) * d, d), h, c, y);
                for (int k = 0; k < horizons; k++) Assert.Equal(y[k], outputs[(b * pr.Steps + t) * horizons + k], 1e-5f);
            }
            for (int n = 0; n < s; n++) { Assert.Equal(h[n], hFinal[b * s + n], 1e-5f); Assert.Equal(c[n], cFinal[b * s + n], 1e-5f); }
        }
    }

    [Fact]
    public void Forward_LossIsMeanOverCountedEntries_MaskedNaNTargetsIgnored()
    {
        var pr = MakeProblem(1, 4, 1, 2, 2, 4, 1, seed: 3);
        var targets = (float[])pr.Targets.Clone();
        for (int n = 0; n < targets.Length; n++) if (pr.Mask[n] == 0f) targets[n] = float.NaN;
        var bptt = new LstmBptt(pr.Config, 2, 4);
        float loss = bptt.Forward(pr.Parameters, 2, pr.Inputs, targets, pr.Mask, burnIn: 1);
        var outputs = new float[targets.Length];
        bptt.Activations.CopyOutputs(outputs);
        double sum = 0; int count = 0;
        for (int b = 0; b < 2; b++)
            for (int t = 1; t < 4; t++)
                for (int k = 0; k < 2; k++)
                {
                    int idx = (b * 4 + t) * 2 + k;
                    if (pr.Mask[idx] == 0f) continue;
                    sum += Math.Pow(outputs[idx] - targets[idx], 2); count++;
                }
        Assert.Equal(count, bptt.Activations.Count);
        Assert.Equal(sum / count, loss, 1e-5);
        Assert.True(float.IsFinite(loss));
    }

    [Fact]
    public void Forward_RejectsBadInput()
    {
        var config = new LstmConfig(1, 4, 1, 1);
        var p = LstmParameters.InitializeUniform(config, 1);
        var bptt = new LstmBptt(config, 2, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => bptt.Forward(p, 3, new float[9], new float[9]));
        Assert.Throws<ArgumentException>(() => bptt.Forward(p, 2, new float[5], new float[6]));
        Assert.Throws<ArgumentException>(() => bptt.Forward(p, 2, [1, 2, float.NaN, 4, 5, 6], new float[6]));
        Assert.Throws<ArgumentException>(() => bptt.Forward(p, 2, new float[6], [0, 0, float.PositiveInfinity, 0, 0, 0]));
        Assert.Throws<ArgumentException>(() => bptt.Forward(LstmParameters.InitializeUniform(new LstmConfig(1, 5, 1, 1), 1), 2, new float[6], new float[6]));
        Assert.Throws<InvalidOperationException>(() => bptt.Backward(p, new float[p.Count]));
    }
}
