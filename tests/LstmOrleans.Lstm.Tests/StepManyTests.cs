namespace LstmOrleans.Lstm.Tests;

public class StepManyTests
{
    [Theory]
    [InlineData(1, 64, 1, 1, 1)]
    [InlineData(1, 64, 1, 1, 130)]     // several chunks, row blocks of 4 plus a remainder
    [InlineData(3, 5, 2, 3, 7)]        // gate rows not a multiple of the vector width
    [InlineData(2, 40, 3, 2, 67)]
    [InlineData(1, 1, 1, 1, 5)]
    public void StepMany_EqualsBSingleSteps(int d, int hidden, int layers, int horizons, int streams)
    {
        var config = new LstmConfig(d, hidden, layers, horizons);
        var weights = LstmWeights.From(LstmParameters.InitializeUniform(config, 21));
        var rnd = new Random(4);
        int s = config.StateSize;
        var h = Enumerable.Range(0, streams * s).Select(_ => (float)(rnd.NextDouble() - 0.5)).ToArray();
        var c = Enumerable.Range(0, streams * s).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray();
        var hSingle = (float[])h.Clone(); var cSingle = (float[])c.Clone();
        var y = new float[streams * horizons]; var ySingle = new float[horizons];
        for (int step = 0; step < 3; step++)
        {
            var x = Enumerable.Range(0, streams * d).Select(_ => (float)(rnd.NextDouble() * 4 - 2)).ToArray();
            weights.StepMany(x, h, c, y);
            for (int b = 0; b < streams; b++)
            {
                weights.Step(x.AsSpan(b * d, d), hSingle.AsSpan(b * s, s), cSingle.AsSpan(b * s, s), ySingle);
                for (int k = 0; k < horizons; k++) Assert.Equal(ySingle[k], y[b * horizons + k], 1e-5f);
            }
            for (int n = 0; n < h.Length; n++) { Assert.Equal(hSingle[n], h[n], 1e-5f); Assert.Equal(cSingle[n], c[n], 1e-5f); }
        }
    }

    [Fact]
    public void StepMany_RejectsMismatchedShapes()
    {
        var config = new LstmConfig(2, 4, 1, 1);
        var weights = LstmWeights.From(LstmParameters.InitializeUniform(config, 1));
        Assert.Throws<ArgumentException>(() => weights.StepMany(new float[3], new float[4], new float[4], new float[1]));
        Assert.Throws<ArgumentException>(() => weights.StepMany(new float[4], new float[4], new float[8], new float[2]));
        Assert.Throws<ArgumentException>(() => weights.StepMany(new float[4], new float[8], new float[8], new float[1]));
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(5, 70, 9)]
    [InlineData(9, 200, 33)]
    [InlineData(4, 64, 65)]
    public void Gemm_MatchesNaiveProduct_BothTranspositions(int m, int n, int k)
    {
        var rnd = new Random(m * 1000 + n * 10 + k);
        float[] R(int len) => Enumerable.Range(0, len).Select(_ => (float)(rnd.NextDouble() - 0.5)).ToArray();
        var a = R(m * k); var b = R(k * n); var c0 = R(m * n);
        foreach (bool transposed in new[] { false, true })
        {
            // A stored as [M, K] (row stride K) or as Aᵀ [K, M] (row stride 1, column stride M).
            var aStored = transposed ? Enumerable.Range(0, m * k).Select(idx => a[(idx % m) * k + idx / m]).ToArray() : a;
            var c = (float[])c0.Clone(); var cPortable = (float[])c0.Clone();
            Gemm.MultiplyAdd(m, n, k, aStored, transposed ? 1 : k, transposed ? m : 1, b, n, c, n);
            Gemm.MultiplyAddPortable(m, n, k, aStored, transposed ? 1 : k, transposed ? m : 1, b, n, cPortable, n);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double expected = c0[i * n + j];
                    for (int p = 0; p < k; p++) expected += (double)a[i * k + p] * b[p * n + j];
                    Assert.Equal(expected, c[i * n + j], 1e-4);
                    Assert.Equal(expected, cPortable[i * n + j], 1e-4);
                }
        }
    }
}
