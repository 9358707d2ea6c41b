namespace LstmOrleans.Lstm.Tests;

public class LstmWeightsTests
{
    private static double Sig(double v) => 1.0 / (1.0 + Math.Exp(-v));

    [Fact]
    public void Step_TinyCell_MatchesHandComputedEquations()
    {
        // H = 1, D = 1, K = 1: every gate is a scalar, written out by hand from the seed's equations.
        var config = new LstmConfig(1, 1, 1, 1);
        var p = new LstmParameters(config);
        // PyTorch row order (i, f, g, o) for weight_ih [4,1], weight_hh [4,1], bias_ih [4], bias_hh [4].
        float[] wih = [0.5f, -0.3f, 0.8f, 0.1f];
        float[] whh = [0.2f, 0.7f, -0.6f, 0.4f];
        float[] bih = [0.1f, 0.2f, -0.1f, 0.05f];
        float[] bhh = [-0.05f, 0.3f, 0.15f, -0.2f];
        wih.CopyTo(p.WeightIh(0)); whh.CopyTo(p.WeightHh(0)); bih.CopyTo(p.BiasIh(0)); bhh.CopyTo(p.BiasHh(0));
        p.HeadWeight[0] = 1.5f; p.HeadBias[0] = -0.25f;

        double h = 0.3, c = -0.4, x = 0.9;
        double Pre(int r) => (double)wih[r] * x + (double)whh[r] * h + bih[r] + bhh[r];
        double i = Sig(Pre(0)), f = Sig(Pre(1)), g = Math.Tanh(Pre(2)), o = Sig(Pre(3));
        double cNew = f * c + i * g;
        double hNew = o * Math.Tanh(cNew);
        double y = 1.5 * hNew - 0.25;

        var weights = LstmWeights.From(p);
        float[] hs = [0.3f], cs = [-0.4f], ys = new float[1];
        weights.Step([0.9f], hs, cs, ys);
        Assert.Equal(cNew, cs[0], 1e-6);
        Assert.Equal(hNew, hs[0], 1e-6);
        Assert.Equal(y, ys[0], 1e-6);

        // Second step from the updated state, so a state that is not carried over would fail.
        x = -0.5; h = hNew; c = cNew;
        i = Sig(Pre(0)); f = Sig(Pre(1)); g = Math.Tanh(Pre(2)); o = Sig(Pre(3));
        cNew = f * c + i * g; hNew = o * Math.Tanh(cNew); y = 1.5 * hNew - 0.25;
        weights.Step([-0.5f], hs, cs, ys);
        Assert.Equal(cNew, cs[0], 1e-6);
        Assert.Equal(hNew, hs[0], 1e-6);
        Assert.Equal(y, ys[0], 1e-6);
    }

    [Fact]
    public void Step_TwoHiddenUnits_MatchesHandComputedMatrixEquations()
    {
        // H = 2, D = 1, K = 1: checks the gate row order and the [4H, H] row-major recurrent matrix.
        var config = new LstmConfig(1, 2, 1, 1);
        var p = new LstmParameters(config);
        var rnd = new Random(7);
        for (int n = 0; n < p.Count; n++) p.Data[n] = (float)(rnd.NextDouble() - 0.5);
        float[] wih = p.WeightIh(0).ToArray(), whh = p.WeightHh(0).ToArray(), bih = p.BiasIh(0).ToArray(), bhh = p.BiasHh(0).ToArray();
        double[] h = [0.1, -0.2], c = [0.3, 0.05];
        double x = 0.7;
        double Pre(int r) => (double)wih[r] * x + (double)whh[r * 2] * h[0] + (double)whh[r * 2 + 1] * h[1] + bih[r] + bhh[r];
        var cNew = new double[2]; var hNew = new double[2];
        for (int j = 0; j < 2; j++)
        {
            double i = Sig(Pre(j)), f = Sig(Pre(2 + j)), g = Math.Tanh(Pre(4 + j)), o = Sig(Pre(6 + j));
            cNew[j] = f * c[j] + i * g;
            hNew[j] = o * Math.Tanh(cNew[j]);
        }
        double y = (double)p.HeadWeight[0] * hNew[0] + (double)p.HeadWeight[1] * hNew[1] + p.HeadBias[0];

        float[] hs = [0.1f, -0.2f], cs = [0.3f, 0.05f], ys = new float[1];
        LstmWeights.From(p).Step([0.7f], hs, cs, ys);
        for (int j = 0; j < 2; j++)
        {
            Assert.Equal(cNew[j], cs[j], 1e-6);
            Assert.Equal(hNew[j], hs[j], 1e-6);
        }
        Assert.Equal(y, ys[0], 1e-6);
    }

    [Theory]
    [InlineData(1, 3, 1, 1)]
    [InlineData(2, 5, 2, 3)]
    [InlineData(3, 17, 2, 2)]
    [InlineData(1, 64, 1, 1)]
    [InlineData(2, 33, 3, 4)]
    public void Step_MatchesDoubleReference_OverManySteps(int d, int hidden, int layers, int horizons)
    {
        var config = new LstmConfig(d, hidden, layers, horizons);
        var p = LstmParameters.InitializeUniform(config, 11);
        var weights = LstmWeights.From(p);
        var pd = p.Data.Select(v => (double)v).ToArray();
        var h = new float[config.StateSize]; var c = new float[config.StateSize]; var y = new float[horizons];
        var hd = new double[config.StateSize]; var cd = new double[config.StateSize];
        var rnd = new Random(3);
        for (int t = 0; t < 20; t++)
        {
            var x = Enumerable.Range(0, d).Select(_ => (float)(rnd.NextDouble() * 4 - 2)).ToArray();
            weights.Step(x, h, c, y);
            var yd = ReferenceLstm.Step(config, pd, x.Select(v => (double)v).ToArray(), hd, cd);
            for (int k = 0; k < horizons; k++) Assert.Equal(yd[k], y[k], 1e-5);
            for (int n = 0; n < h.Length; n++) { Assert.Equal(hd[n], h[n], 1e-5); Assert.Equal(cd[n], c[n], 1e-5); }
        }
    }

    [Fact]
    public void Step_RejectsWrongDimensions_AndLeavesStateUnchanged()
    {
        var config = new LstmConfig(2, 4, 2, 3);
        var weights = LstmWeights.From(LstmParameters.InitializeUniform(config, 1));
        var h = new float[8]; var c = new float[8]; var y = new float[3];
        h[0] = 0.5f;
        Assert.Throws<ArgumentException>(() => weights.Step(new float[1], h, c, y));
        Assert.Throws<ArgumentException>(() => weights.Step(new float[2], new float[4], c, y));
        Assert.Throws<ArgumentException>(() => weights.Step(new float[2], h, c, new float[2]));
        Assert.Equal(0.5f, h[0]);
    }

    [Fact]
    public void From_TakesACopy_LaterParameterChangesDoNotLeak()
    {
        var config = new LstmConfig(1, 4, 1, 1);
        var p = LstmParameters.InitializeUniform(config, 5);
        var weights = LstmWeights.From(p);
        var y1 = new float[1];
        weights.Step([1f], new float[4], new float[4], y1);
        Array.Fill(p.Data, 3f);
        var y2 = new float[1];
        weights.Step([1f], new float[4], new float[4], y2);
        Assert.Equal(y1[0], y2[0]);
        Assert.NotEqual(p.Data, weights.ExportParameters().Data);
    }
}
