namespace LstmOrleans.Lstm.Tests;

/// <summary>
/// The fused cell kernel's tile paths (6-stream tiles, 1-stream tiles over 4, 2 and 1 unit blocks, a partial last
/// block when H is not a multiple of 16, chunking of many streams) against the independent double reference, and
/// the three callers (Step, StepMany, the training forward) against each other bit for bit.
/// </summary>
public class FusedCellTests
{
    public static TheoryData<int, int, int, int, int> Shapes => new()
    {
        // D, H, L, K, streams
        { 1, 64, 1, 1, 125 },    // two full chunks of 60 plus 5: tiles of 6 and 1-stream remainders (4 blocks)
        { 3, 17, 2, 3, 13 },     // partial second block; two 6-tiles and one remainder stream
        { 1, 48, 1, 1, 19 },     // 3 blocks: remainder path runs 1x2 then 1x1
        { 2, 80, 2, 1, 8 },      // 5 blocks: 1x4 then 1x1; input of layer 1 strided by L*H
        { 3, 5, 3, 2, 7 },       // one partial block in every layer
        { 1, 32, 1, 1, 6 },      // exactly one tile, no remainder
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void StepMany_MatchesDoubleReference_AndEqualsStepBitForBit(int d, int hidden, int layers, int horizons, int streams)
    {
        var config = new LstmConfig(d, hidden, layers, horizons);
        var p = LstmParameters.InitializeUniform(config, 17);
        var weights = LstmWeights.From(p);
        var pd = p.Data.Select(v => (double)v).ToArray();
        int s = config.StateSize;
        var rnd = new Random(hidden * 31 + streams);
        var h = Enumerable.Range(0, streams * s).Select(_ => (float)(rnd.NextDouble() - 0.5)).ToArray();
        var c = Enumerable.Range(0, streams * s).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray();
        var hSingle = (float[])h.Clone(); var cSingle = (float[])c.Clone();
        var hd = h.Select(v => (double)v).ToArray(); var cd = c.Select(v => (double)v).ToArray();
        var y = new float[streams * horizons]; var ySingle = new float[horizons];
        for (int step = 0; step < 4; step++)
        {
            var x = Enumerable.Range(0, streams * d).Select(_ => (float)(rnd.NextDouble() * 4 - 2)).ToArray();
            weights.StepMany(x, h, c, y);
            for (int b = 0; b < streams; b++)
            {
                weights.Step(x.AsSpan(b * d, d), hSingle.AsSpan(b * s, s), cSingle.AsSpan(b * s, s), ySingle);
                var hb = hd.AsSpan(b * s, s).ToArray(); var cb = cd.AsSpan(b * s, s).ToArray();
                var yd = ReferenceLstm.Step(config, pd, x.AsSpan(b * d, d).ToArray().Select(v => (double)v).ToArray(), hb, cb);
                hb.CopyTo(hd, b * s); cb.CopyTo(cd, b * s);
                for (int k = 0; k < horizons; k++)
                {
                    Assert.Equal(ySingle[k], y[b * horizons + k]);     // same kernel, same operation order: exact
                    Assert.Equal(yd[k], y[b * horizons + k], 2e-5);
                }
            }
            for (int n = 0; n < h.Length; n++)
            {
                Assert.Equal(hSingle[n], h[n]);
                Assert.Equal(cSingle[n], c[n]);
                Assert.Equal(hd[n], h[n], 2e-5);
                Assert.Equal(cd[n], c[n], 2e-5);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public unsafe void ScalarFallback_MatchesVectorKernel(int d, int hidden, int layers, int horizons, int streams)
    {
        _ = layers; _ = horizons;
        var packed = new PackedGateWeights(hidden, d);
        var rnd = new Random(5);
        float[] R(int n, double scale) => Enumerable.Range(0, n).Select(_ => (float)((rnd.NextDouble() - 0.5) * scale)).ToArray();
        packed.Pack(R(4 * hidden * d, 1), R(4 * hidden * hidden, 0.5), R(4 * hidden, 1), R(4 * hidden, 1));
        float[] hPrev = R(streams * hidden, 2), x = R(streams * d, 4), cPrev = R(streams * hidden, 3);
        float[] cVec = new float[cPrev.Length], hVec = new float[hPrev.Length], gVec = new float[streams * 4 * hidden], tVec = new float[hPrev.Length];
        float[] cSca = new float[cPrev.Length], hSca = new float[hPrev.Length], gSca = new float[gVec.Length], tSca = new float[hPrev.Length];
        fixed (float* ph = hPrev, px = x, pc = cPrev, c1 = cVec, h1 = hVec, g1 = gVec, t1 = tVec, c2 = cSca, h2 = hSca, g2 = gSca, t2 = tSca)
        {
            var io = new CellIo { HPrev = ph, HPrevStride = hidden, Input = px, InputStride = d, CPrev = pc, CNext = c1, HNext = h1, StateStride = hidden, Gates = g1, TanhC = t1 };
            FusedLstmCell.Forward(packed, streams, io);
            io.CNext = c2; io.HNext = h2; io.Gates = g2; io.TanhC = t2;
            FusedLstmCell.ForwardScalar(packed, streams, io);
        }
        for (int n = 0; n < cVec.Length; n++)
        {
            Assert.Equal(cSca[n], cVec[n], 1e-5f);
            Assert.Equal(hSca[n], hVec[n], 1e-5f);
            Assert.Equal(tSca[n], tVec[n], 1e-5f);
            Assert.Equal(MathF.Tanh(cVec[n]), tVec[n], 1e-6f);
        }
        for (int n = 0; n < gVec.Length; n++) Assert.Equal(gSca[n], gVec[n], 1e-5f);
    }

    [Fact]
    public void Activations_AreCloseToDoublePrecision()
    {
        double worstSigmoid = 0, worstTanh = 0, worstExpRelative = 0;
        var buffer = new float[16];
        for (int n = -200_000; n <= 200_000; n += 16)
        {
            for (int e = 0; e < 16; e++) buffer[e] = (n + e) * 1e-4f;   // [-20, 20]
            var v = System.Runtime.Intrinsics.Vector512.Create(buffer);
            var sig = FastActivations.Sigmoid(v); var tanh = FastActivations.Tanh(v);
            for (int e = 0; e < 16; e++)
            {
                double x = buffer[e];
                worstSigmoid = Math.Max(worstSigmoid, Math.Abs(sig[e] - 1.0 / (1.0 + Math.Exp(-x))));
                worstTanh = Math.Max(worstTanh, Math.Abs(tanh[e] - Math.Tanh(x)));
                Assert.Equal(sig[e], FastActivations.Sigmoid(buffer[e]));   // scalar twin: same steps
            }
        }
        for (int n = -87_000; n <= 87_000; n += 16)
        {
            for (int e = 0; e < 16; e++) buffer[e] = (n + e) * 1e-3f;
            var ex = FastActivations.Exp(System.Runtime.Intrinsics.Vector512.Create(buffer));
            for (int e = 0; e < 16; e++)
                if (Math.Abs(buffer[e]) <= 87f)   // the clamp: beyond it exp saturates on purpose
                    worstExpRelative = Math.Max(worstExpRelative, Math.Abs(ex[e] / Math.Exp(buffer[e]) - 1.0));
        }
        Assert.True(worstSigmoid < 2e-7, $"sigmoid error {worstSigmoid}");
        Assert.True(worstTanh < 4e-7, $"tanh error {worstTanh}");
        Assert.True(worstExpRelative < 3e-7, $"exp relative error {worstExpRelative}");   // ~2.5 ulp
        // Saturation: no NaN or overflow far outside the clamped range.
        var extreme = FastActivations.Sigmoid(System.Runtime.Intrinsics.Vector512.Create(1e30f));
        Assert.Equal(1f, extreme[0]);
        Assert.Equal(0f, FastActivations.Sigmoid(System.Runtime.Intrinsics.Vector512.Create(-1e30f))[0], 1e-37f);
        Assert.Equal(-1f, FastActivations.Tanh(System.Runtime.Intrinsics.Vector512.Create(-1e30f))[0]);
    }

    [Theory]
    [InlineData(64, 1)]     // 4 blocks: the 1-stream 4-block tile, the one whose half order alternates
    [InlineData(128, 3)]
    [InlineData(20, 2)]
    public unsafe void LoneStream_HalfOrderAlternation_GivesIdenticalBits(int hidden, int d)
    {
        var packed = new PackedGateWeights(hidden, d);
        var rnd = new Random(hidden);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() - 0.5)).ToArray();
        packed.Pack(R(4 * hidden * d), R(4 * hidden * hidden), R(4 * hidden), R(4 * hidden));
        float[] hPrev = R(hidden), x = R(d), cPrev = R(hidden);
        var results = new List<float[]>();
        foreach (int sweep in new[] { 0, 1 })
        {
            var c = (float[])cPrev.Clone(); var h = new float[hidden];
            fixed (float* ph = hPrev, px = x, pc = c, po = h)
            {
                packed.Sweep = sweep;   // 0: first half first; 1: second half first
                FusedLstmCell.Forward(packed, 1, new CellIo { HPrev = ph, HPrevStride = hidden, Input = px, InputStride = d, CPrev = pc, CNext = pc, HNext = po, StateStride = hidden });
            }
            results.Add([.. h, .. c]);
        }
        Assert.Equal(results[0], results[1]);
        Assert.Contains(results[0], v => v != 0f);
    }

    [Theory]
    [InlineData(3, 17, 2, 3, 13)]
    [InlineData(1, 64, 1, 1, 32)]
    [InlineData(2, 20, 1, 2, 5)]
    public void TrainingForward_EqualsStepBitForBit(int d, int hidden, int layers, int horizons, int batch)
    {
        var config = new LstmConfig(d, hidden, layers, horizons);
        var p = LstmParameters.InitializeUniform(config, 8);
        int steps = 5, s = config.StateSize;
        var rnd = new Random(2);
        var inputs = Enumerable.Range(0, batch * steps * d).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray();
        var targets = new float[batch * steps * horizons];
        var h0 = Enumerable.Range(0, batch * s).Select(_ => (float)(rnd.NextDouble() - 0.5)).ToArray();
        var c0 = Enumerable.Range(0, batch * s).Select(_ => (float)(rnd.NextDouble() - 0.5)).ToArray();
        var bptt = new LstmBptt(config, batch, steps);
        bptt.Forward(p, batch, inputs, targets, default, h0, c0);
        var outputs = new float[batch * steps * horizons];
        bptt.Activations.CopyOutputs(outputs);
        var hFinal = new float[h0.Length]; var cFinal = new float[c0.Length];
        bptt.Activations.CopyFinalState(hFinal, cFinal);

        var weights = LstmWeights.From(p);
        var y = new float[horizons];
        for (int b = 0; b < batch; b++)
        {
            var h = h0.AsSpan(b * s, s).ToArray(); var c = c0.AsSpan(b * s, s).ToArray();
            for (int t = 0; t < steps; t++)
            {
                weights.Step(inputs.AsSpan((b * steps + t) * d, d), h, c, y);
                for (int k = 0; k < horizons; k++) Assert.Equal(y[k], outputs[(b * steps + t) * horizons + k]);
            }
            Assert.Equal(h, hFinal.AsSpan(b * s, s).ToArray());
            Assert.Equal(c, cFinal.AsSpan(b * s, s).ToArray());
        }
    }

    [Theory]
    [InlineData(64, 1)]
    [InlineData(17, 3)]
    [InlineData(5, 2)]
    public unsafe void PackedWeights_StartOnCacheLines_AndRoundTripThePyTorchLayout(int hidden, int d)
    {
        var packed = new PackedGateWeights(hidden, d);
        Assert.Equal(0, (long)packed.WeightsPointer % 64);   // an unaligned 64-byte load touches two lines
        Assert.Equal(0, (long)packed.BiasPointer % 64);
        var rnd = new Random(3);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() - 0.5)).ToArray();
        float[] wih = R(4 * hidden * d), whh = R(4 * hidden * hidden), bih = R(4 * hidden), bhh = R(4 * hidden);
        packed.Pack(wih, whh, bih, bhh);
        for (int gate = 0; gate < 4; gate++)
            for (int unit = 0; unit < hidden; unit++)
            {
                int row = gate * hidden + unit, u = unit / PackedGateWeights.Lanes, col = gate * PackedGateWeights.Lanes + unit % PackedGateWeights.Lanes;
                float* panel = packed.WeightsPointer + (long)u * packed.Depth * PackedGateWeights.BlockWidth + col;
                for (int p = 0; p < hidden; p++) Assert.Equal(whh[row * hidden + p], panel[p * PackedGateWeights.BlockWidth]);
                for (int p = 0; p < d; p++) Assert.Equal(wih[row * d + p], panel[(hidden + p) * PackedGateWeights.BlockWidth]);
                Assert.Equal(bih[row] + bhh[row], packed.BiasPointer[u * PackedGateWeights.BlockWidth + col]);
            }
    }

    [Theory]
    [InlineData(64, 1)]     // one group of 4 blocks: the H = 64 step
    [InlineData(128, 3)]    // two groups of 4
    [InlineData(48, 2)]     // 1x2 then 1x1 tiles
    [InlineData(17, 3)]     // a partial last block
    [InlineData(5, 1)]
    public unsafe void ForwardOne_InPlace_EqualsForwardWithACopy_BitForBit_InBothHalfOrders(int hidden, int d)
    {
        var packed = new PackedGateWeights(hidden, d);
        var rnd = new Random(hidden + 100 * d);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() - 0.5)).ToArray();
        packed.Pack(R(4 * hidden * d), R(4 * hidden * hidden), R(4 * hidden), R(4 * hidden));
        float[] h0 = R(hidden), x = R(d), c0 = R(hidden);
        foreach (int sweep in new[] { 0, 1 })
        {
            // Reference: the many-stream kernel, h_{t-1} and h_t in separate buffers.
            float[] cRef = (float[])c0.Clone(), hRef = new float[hidden];
            // One-stream kernel: h updated in place, as LstmWeights.Step uses it.
            float[] cOne = (float[])c0.Clone(), hOne = (float[])h0.Clone();
            float[] cSca = (float[])c0.Clone(), hSca = new float[hidden];
            fixed (float* ph = h0, px = x, pcr = cRef, phr = hRef, pco = cOne, pho = hOne, pcs = cSca, phs = hSca)
            {
                packed.Sweep = sweep;
                FusedLstmCell.Forward(packed, 1, new CellIo { HPrev = ph, HPrevStride = hidden, Input = px, InputStride = d, CPrev = pcr, CNext = pcr, HNext = phr, StateStride = hidden });
                packed.Sweep = sweep;
                FusedLstmCell.ForwardOne(packed, new CellIo { HPrev = pho, HPrevStride = hidden, Input = px, InputStride = d, CPrev = pco, CNext = pco, HNext = pho, StateStride = hidden });
                FusedLstmCell.ForwardScalar(packed, 1, new CellIo { HPrev = ph, HPrevStride = hidden, Input = px, InputStride = d, CPrev = pcs, CNext = pcs, HNext = phs, StateStride = hidden });
            }
            Assert.Equal(hRef, hOne);
            Assert.Equal(cRef, cOne);
            for (int j = 0; j < hidden; j++)
            {
                Assert.Equal(hSca[j], hOne[j], 1e-5f);   // independent of the vector tiles (scalar loop, scalar activations)
                Assert.Equal(cSca[j], cOne[j], 1e-5f);
            }
            Assert.Contains(hOne, v => v != 0f);
        }
    }
}
