using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LstmOrleans.Lstm;

namespace LstmOrleans.Benchmarks;

/// <summary>
/// `probe` with PROBE_STEP=1: where the single-stream H = 64 step's time goes, and the floor the weight traffic sets.
/// The floor loops are the matrix-vector product alone (16 Vector512 accumulators, one broadcast input per row of
/// 256 gate weights, k-major so the weights are read strictly front to back) over the same 65 x 256 floats.
/// </summary>
internal static unsafe class StepProbe
{
    private const int Depth = 65, Gates = 256;

    public static void Run()
    {
        var rnd = new Random(1);
        float* w = (float*)NativeMemory.AlignedAlloc((nuint)(Depth * Gates * 4), 64);
        float* wMis = (float*)NativeMemory.AlignedAlloc((nuint)(Depth * Gates * 4 + 64), 64) + 4;   // 16 bytes past a line start, like a float[]'s data
        float* x = (float*)NativeMemory.AlignedAlloc(Depth * 4, 64);
        float* o = (float*)NativeMemory.AlignedAlloc(Gates * 4, 64);
        for (int i = 0; i < Depth * Gates; i++) w[i] = (float)(rnd.NextDouble() - 0.5) * 0.1f;
        for (int i = 0; i < Depth; i++) x[i] = (float)(rnd.NextDouble() - 0.5);
        var step = new StepBenchmark { Hidden = 64 };
        step.Setup();
        int sweep = 0;
        int[] halves = [0, 32, Depth], thirds = [0, 22, 44, Depth], fifths = [0, 13, 26, 39, 52, Depth];
        CheckGemvVariants(w, x, o, [halves, thirds, fifths]);
        var packed = new PackedGateWeights(64, 1);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() - 0.5) * 0.2f).ToArray();
        packed.Pack(R(4 * 64), R(4 * 64 * 64), R(4 * 64), R(4 * 64));
        float* hPrev = (float*)NativeMemory.AlignedAlloc(64 * 4, 64), cs = (float*)NativeMemory.AlignedAlloc(64 * 4, 64), hOut = (float*)NativeMemory.AlignedAlloc(64 * 4, 64);
        for (int i = 0; i < 64; i++) { hPrev[i] = (float)(rnd.NextDouble() - 0.5); cs[i] = 0; }
        var io = new CellIo { HPrev = hPrev, HPrevStride = 64, Input = x, InputStride = 1, CPrev = cs, CNext = cs, HNext = hOut, StateStride = 64 };
        float* hState = (float*)NativeMemory.AlignedAlloc(64 * 4, 64);
        for (int i = 0; i < 64; i++) hState[i] = hPrev[i];
        var ioOne = new CellIo { HPrev = hState, HPrevStride = 64, Input = x, InputStride = 1, CPrev = cs, CNext = cs, HNext = hState, StateStride = 64 };
        if (Environment.GetEnvironmentVariable("PROBE_AB") == "1") { AbCompare(packed, hState, cs, x, hPrev, hOut, io, ioOne); return; }
        for (int round = 0; round < 3; round++)
        {
            Console.WriteLine($"round {round}, load {File.ReadAllText("/proc/loadavg").Trim()}  (median of 50 us windows / thread CPU per call)");
            Row("whole Step H=64                                ", () => step.Step());
            Row("FusedLstmCell.Forward n=1 (copy h, as before)  ", () =>
            {
                Buffer.MemoryCopy(hState, hPrev, 256, 256);
                FusedLstmCell.Forward(packed, 1, io);
                Buffer.MemoryCopy(hOut, hState, 256, 256);
            });
            Row("FusedLstmCell.ForwardOne (in place)            ", () => FusedLstmCell.ForwardOne(packed, ioOne));
            Row("floor: GEMV 65x256 front to back (L2)          ", () => Gemv(w, x, o, 0, Depth, true));
            Row("floor: GEMV halves alternating                 ", () => GemvInParts(w, x, o, halves, (sweep++ & 1) == 1));
            if (round == 0) Row("floor: GEMV halves alternating, misaligned     ", () => GemvInParts(wMis, x, o, halves, (sweep++ & 1) == 1));
            Row("floor: GEMV thirds, part order reversed alt.   ", () => GemvInParts(w, x, o, thirds, (sweep++ & 1) == 1));
            Row("floor: GEMV fifths, part order reversed alt.   ", () => GemvInParts(w, x, o, fifths, (sweep++ & 1) == 1));
            Row("floor: GEMV reversed every other call          ", () =>
            {
                if ((sweep++ & 1) == 0) Gemv(w, x, o, 0, Depth, true); else Gemv<BackToFront>(w, x, o, 0, Depth, true);
            });
            Row("floor: GEMV 32x256 only (32 KB, L1 resident)   ", () => Gemv(w, x, o, 0, 32, true));
            Row("floor: GEMV front to back + prefetch 1 KB on   ", () => Gemv<FrontToBackPrefetch>(w, x, o, 0, Depth, true));
        }
    }

    /// <summary>
    /// Old against new in one process, windows of about 50 us alternating A, B, A, B for several seconds so both see the
    /// same load; prints each side's median window and the ratio. "Old" is the previous engine's arithmetic path: packed
    /// weights 16 bytes off a cache line (where a float[] put them: measured 48 mod 64) and the copy of h_{t-1}.
    /// </summary>
    private static void AbCompare(PackedGateWeights packed, float* hState, float* cs, float* x, float* hPrev, float* hOut, CellIo io, CellIo ioOne)
    {
        var old = Misaligned(packed);
        const int streams = 60;                       // one StepMany chunk
        float* hMany = (float*)NativeMemory.AlignedAlloc(streams * 64 * 4, 64), cMany = (float*)NativeMemory.AlignedAlloc(streams * 64 * 4, 64);
        float* hManyOut = (float*)NativeMemory.AlignedAlloc(streams * 64 * 4, 64), xMany = (float*)NativeMemory.AlignedAlloc(streams * 4, 64);
        for (int i = 0; i < streams * 64; i++) { hMany[i] = MathF.Sin(i) * 0.5f; cMany[i] = 0; }
        for (int i = 0; i < streams; i++) xMany[i] = MathF.Cos(i);
        var ioMany = new CellIo { HPrev = hMany, HPrevStride = 64, Input = xMany, InputStride = 1, CPrev = cMany, CNext = cMany, HNext = hManyOut, StateStride = 64 };
        var rnd = new Random(4);
        var big = new PackedGateWeights(128, 1);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() - 0.5) * 0.2f).ToArray();
        big.Pack(R(4 * 128), R(4 * 128 * 128), R(4 * 128), R(4 * 128));
        var bigOld = Misaligned(big);
        float* hb = (float*)NativeMemory.AlignedAlloc(128 * 4, 64), hbPrev = (float*)NativeMemory.AlignedAlloc(128 * 4, 64), hbOut = (float*)NativeMemory.AlignedAlloc(128 * 4, 64), cb = (float*)NativeMemory.AlignedAlloc(128 * 4, 64);
        for (int i = 0; i < 128; i++) { hb[i] = MathF.Sin(i) * 0.5f; cb[i] = 0; }
        var ioBigOld = new CellIo { HPrev = hbPrev, HPrevStride = 128, Input = x, InputStride = 1, CPrev = cb, CNext = cb, HNext = hbOut, StateStride = 128 };
        var ioBigNew = new CellIo { HPrev = hb, HPrevStride = 128, Input = x, InputStride = 1, CPrev = cb, CNext = cb, HNext = hb, StateStride = 128 };
        for (int round = 0; round < 3; round++)
        {
            Console.WriteLine($"round {round}, load {File.ReadAllText("/proc/loadavg").Trim()}");
            Ab("lone stream H=128: old vs new",
                () => { Buffer.MemoryCopy(hb, hbPrev, 512, 512); FusedLstmCell.Forward(bigOld, 1, ioBigOld); Buffer.MemoryCopy(hbOut, hb, 512, 512); },
                () => FusedLstmCell.ForwardOne(big, ioBigNew), 1);
            Ab("lone stream H=128: new Forward+copy (aligned) vs ForwardOne",
                () => { Buffer.MemoryCopy(hb, hbPrev, 512, 512); FusedLstmCell.Forward(big, 1, ioBigOld); Buffer.MemoryCopy(hbOut, hb, 512, 512); },
                () => FusedLstmCell.ForwardOne(big, ioBigNew), 1);
            Ab("lone stream H=64: old (misaligned, copy h) vs new (aligned, ForwardOne in place)",
                () => { Buffer.MemoryCopy(hState, hPrev, 256, 256); FusedLstmCell.Forward(old, 1, io); Buffer.MemoryCopy(hOut, hState, 256, 256); },
                () => FusedLstmCell.ForwardOne(packed, ioOne), 1);
            Ab("60-stream chunk H=64 (StepMany's inner call), per stream: old (misaligned) vs new (aligned)",
                () => FusedLstmCell.Forward(old, streams, ioMany), () => FusedLstmCell.Forward(packed, streams, ioMany), streams);
        }
        GC.KeepAlive(old);
    }

    /// <summary>A copy of <paramref name="packed"/> whose arrays start 16 bytes into a cache line, like the old float[] fields.</summary>
    private static PackedGateWeights Misaligned(PackedGateWeights packed)
    {
        var copy = new PackedGateWeights(packed.Hidden, packed.InputSize);
        float* w = (float*)NativeMemory.AlignedAlloc((nuint)((packed.WeightCount + packed.BiasCount + 32) * 4), 64) + 4;   // 4 + weights + 16 + bias floats used
        packed.Weights.CopyTo(new Span<float>(w, packed.WeightCount));
        packed.Bias.CopyTo(new Span<float>(w + packed.WeightCount + 16, packed.BiasCount));
        typeof(PackedGateWeights).GetField("<WeightsPointer>k__BackingField", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .SetValue(copy, System.Reflection.Pointer.Box(w, typeof(float*)));
        typeof(PackedGateWeights).GetField("<BiasPointer>k__BackingField", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .SetValue(copy, System.Reflection.Pointer.Box(w + packed.WeightCount + 16, typeof(float*)));
        if ((long)copy.WeightsPointer % 64 != 16) throw new InvalidOperationException("misaligned copy not in place");
        return copy;
    }

    private static void Ab(string name, Action a, Action b, int opsPerCall)
    {
        var warm = System.Diagnostics.Stopwatch.StartNew();
        while (warm.ElapsedMilliseconds < 400) { a(); b(); }
        int window = 1;
        var sizing = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; sizing.Elapsed.TotalNanoseconds < 50e3; i++) { a(); window = i + 1; }
        const int pairs = 20000;
        var ta = new double[pairs]; var tb = new double[pairs];
        double tick = 1e9 / System.Diagnostics.Stopwatch.Frequency;
        int n = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (; n < pairs && clock.ElapsedMilliseconds < 4000; n++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int i = 0; i < window; i++) a();
            long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int i = 0; i < window; i++) b();
            long t2 = System.Diagnostics.Stopwatch.GetTimestamp();
            ta[n] = (t1 - t0) * tick / ((double)window * opsPerCall);
            tb[n] = (t2 - t1) * tick / ((double)window * opsPerCall);
        }
        Array.Sort(ta, 0, n); Array.Sort(tb, 0, n);
        double ma = ta[n / 2], mb = tb[n / 2];
        Console.WriteLine($"{name}: {ma:F1} -> {mb:F1} ns (x{mb / ma:F2}; {n} window pairs; 10th pct {ta[n / 10]:F1} -> {tb[n / 10]:F1})");
    }

    private static void Row(string name, Action op)
    {
        var r = QuickBenchmarks.Measure(() => { op(); return 0f; }, 1, 400e6);
        Console.WriteLine($"{name}: median {QuickBenchmarks.Format(r.MedianNanoseconds),10}  cpu {QuickBenchmarks.Format(r.CpuNanoseconds),10}");
    }

    /// <summary>Every way the floor loops read the weights must compute the same product (a double-precision reference).</summary>
    private static void CheckGemvVariants(float* w, float* x, float* o, int[][] partings)
    {
        var reference = new double[Gates];
        for (int p = 0; p < Depth; p++)
            for (int g = 0; g < Gates; g++) reference[g] += (double)w[p * Gates + g] * x[p];
        void Check(string name)
        {
            for (int g = 0; g < Gates; g++)
                if (Math.Abs(o[g] - reference[g]) > 1e-4 * (1 + Math.Abs(reference[g])))
                    throw new InvalidOperationException($"GEMV variant '{name}' gives o[{g}] = {o[g]}, expected {reference[g]}.");
        }
        Gemv(w, x, o, 0, Depth, true); Check("front to back");
        Gemv<BackToFront>(w, x, o, 0, Depth, true); Check("reversed");
        Gemv<FrontToBackPrefetch>(w, x, o, 0, Depth, true); Check("prefetch");
        foreach (var cuts in partings)
            foreach (bool reversedOrder in (bool[])[false, true])
            {
                GemvInParts(w, x, o, cuts, reversedOrder); Check($"{cuts.Length - 1} parts, reversed order {reversedOrder}");
            }
    }

    /// <summary>
    /// The GEMV over the rows of parts <c>cuts[i]..cuts[i+1]</c> of the 65 input rows: parts in order, or in reverse
    /// order when <paramref name="reversedOrder"/> (each part still read front to back). The first part stores, the
    /// others accumulate, so the result is the whole product either way; only the order the weights are read in changes.
    /// </summary>
    private static void GemvInParts(float* w, float* x, float* o, int[] cuts, bool reversedOrder)
    {
        int parts = cuts.Length - 1;
        for (int i = 0; i < parts; i++)
        {
            int part = reversedOrder ? parts - 1 - i : i;
            Gemv(w, x, o, cuts[part], cuts[part + 1], store: i == 0);
        }
    }

    /// <summary>How <see cref="Gemv{TWalk}"/> walks the rows: fixed per instantiation, so the JIT compiles each walk as its own loop with no flags left in it.</summary>
    private interface IGemvWalk
    {
        static abstract bool Reverse { get; }
        static abstract bool Prefetch { get; }
    }

    private struct FrontToBack : IGemvWalk { public static bool Reverse => false; public static bool Prefetch => false; }
    private struct BackToFront : IGemvWalk { public static bool Reverse => true; public static bool Prefetch => false; }
    /// <summary>Front to back, asking for the row 4 ahead (1 KB on) while working on this one.</summary>
    private struct FrontToBackPrefetch : IGemvWalk { public static bool Reverse => false; public static bool Prefetch => true; }

    private static void Gemv(float* w, float* x, float* o, int p0, int p1, bool store) => Gemv<FrontToBack>(w, x, o, p0, p1, store);

    /// <summary>o [256] (=|+=) W[p0..p1) [rows x 256]^T x[p0..p1): 16 Vector512 accumulators, one broadcast input per row.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Gemv<TWalk>(float* w, float* x, float* o, int p0, int p1, bool store) where TWalk : struct, IGemvWalk
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector512<float> a8 = default, a9 = default, a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default;
        float* r = w + (TWalk.Reverse ? p1 - 1 : p0) * Gates;
        for (int p = TWalk.Reverse ? p1 - 1 : p0; TWalk.Reverse ? p >= p0 : p < p1; p += TWalk.Reverse ? -1 : 1, r += TWalk.Reverse ? -Gates : Gates)
        {
            if (TWalk.Prefetch) { Sse.Prefetch0(r + 4 * Gates); Sse.Prefetch0(r + 4 * Gates + 16); Sse.Prefetch0(r + 4 * Gates + 32); Sse.Prefetch0(r + 4 * Gates + 48); }
            var s = Vector512.Create(x[p]);
            a0 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r), a0); a1 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 16), a1);
            a2 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 32), a2); a3 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 48), a3);
            a4 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 64), a4); a5 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 80), a5);
            a6 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 96), a6); a7 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 112), a7);
            a8 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 128), a8); a9 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 144), a9);
            a10 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 160), a10); a11 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 176), a11);
            a12 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 192), a12); a13 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 208), a13);
            a14 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 224), a14); a15 = Vector512.FusedMultiplyAdd(s, Vector512.Load(r + 240), a15);
        }
        Put(a0, o, store); Put(a1, o + 16, store); Put(a2, o + 32, store); Put(a3, o + 48, store);
        Put(a4, o + 64, store); Put(a5, o + 80, store); Put(a6, o + 96, store); Put(a7, o + 112, store);
        Put(a8, o + 128, store); Put(a9, o + 144, store); Put(a10, o + 160, store); Put(a11, o + 176, store);
        Put(a12, o + 192, store); Put(a13, o + 208, store); Put(a14, o + 224, store); Put(a15, o + 240, store);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(Vector512<float> sum, float* tile, bool store) => (store ? sum : sum + Vector512.Load(tile)).Store(tile);
}
