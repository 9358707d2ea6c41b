using System.Diagnostics;
using System.Runtime.Intrinsics;
using LstmOrleans.Lstm;

namespace LstmOrleans.Benchmarks;

internal static class Probe
{
    public static unsafe void Run()
    {
        if (Environment.GetEnvironmentVariable("PROBE_STEP") == "1") { StepProbe.Run(); return; }
        if (Environment.GetEnvironmentVariable("PROBE_ACT") == "1")
        {
            var buf = Enumerable.Range(0, 20 * 16).Select(i => (i - 160) * 0.03f).ToArray();
            var outBuf = new float[buf.Length];
            for (int round = 0; round < 3; round++)
            {
                Time("20 x Sigmoid(Vector512)", () =>
                {
                    fixed (float* pb = buf, po = outBuf)
                        for (int v = 0; v < 20; v++) FastActivations.Sigmoid(System.Runtime.Intrinsics.Vector512.Load(pb + 16 * v)).Store(po + 16 * v);
                });
                Time("20 x Exp(Vector512)", () =>
                {
                    fixed (float* pb = buf, po = outBuf)
                        for (int v = 0; v < 20; v++) FastActivations.Exp(System.Runtime.Intrinsics.Vector512.Load(pb + 16 * v)).Store(po + 16 * v);
                });
            }
            return;
        }
        if (Environment.GetEnvironmentVariable("PROBE_SWEEP") == "1")
        {
            foreach (int hidden in new[] { 64, 48, 80 })
            {
                var packed = new PackedGateWeights(hidden, 1);
                var rnd = new Random(1);
                float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() - 0.5) * 0.2f).ToArray();
                packed.Pack(R(4 * hidden), R(4 * hidden * hidden), R(4 * hidden), R(4 * hidden));
                var hPrev = R(hidden); var xs = R(1); var cs = R(hidden); var hOut = new float[hidden];
                fixed (float* ph = hPrev, px = xs, pc = cs, po = hOut)
                {
                    var io = new CellIo { HPrev = ph, HPrevStride = hidden, Input = px, InputStride = 1, CPrev = pc, CNext = pc, HNext = po, StateStride = hidden };
                    var ioCopy = io;
                    for (int round = 0; round < 3; round++)
                    {
                        Time($"H={hidden} fused n=1, alternating halves", () => FusedLstmCell.Forward(packed, 1, ioCopy));
                        Time($"H={hidden} fused n=1, fixed order      ", () => { packed.Sweep = 0; FusedLstmCell.Forward(packed, 1, ioCopy); });
                        var stepBench = new StepBenchmark { Hidden = hidden };
                        stepBench.Setup();
                        Time($"H={hidden} whole Step                  ", () => stepBench.Step());
                    }
                }
            }
            return;
        }
        if (Environment.GetEnvironmentVariable("PROBE_ALLOC") == "1")
        {
            var tb = new TrainingStepBenchmark();
            for (int i = 0; i < 300; i++) tb.TrainingStep();
            for (int round = 0; round < 5; round++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 100; i++) tb.TrainingStep();
                Console.WriteLine($"alloc per 100 steps: {GC.GetAllocatedBytesForCurrentThread() - before}");
            }
            return;
        }
        if (Environment.GetEnvironmentVariable("PROBE_MANY") == "1")
        {
            var many = new StepManyBenchmark();
            var sw1 = Stopwatch.StartNew();
            while (sw1.ElapsedMilliseconds < 15000) many.StepMany();
            return;
        }
        if (Environment.GetEnvironmentVariable("PROBE_TRAIN") == "1")
        {
            var tb = new TrainingStepBenchmark();
            var sw0 = Stopwatch.StartNew();
            while (sw0.ElapsedMilliseconds < 15000) tb.TrainingStep();
            return;
        }
        var a = new float[65]; var b = new float[65 * 256]; var c = new float[256];
        new Random(1).NextBytes(new byte[1]);
        for (int i = 0; i < b.Length; i++) b[i] = (i % 7) * 0.01f;
        for (int i = 0; i < a.Length; i++) a[i] = 0.01f;
        Time("gemm 1x256x65", () => { Gemm.MultiplyAdd(1, 256, 65, a, 0, 1, b, 256, c, 256); });
        Time("gemm portable", () => { Gemm.MultiplyAddPortable(1, 256, 65, a, 0, 1, b, 256, c, 256); });
        var g2 = Enumerable.Range(0, 256).Select(i => (i - 128) * 0.01f).ToArray(); var o2 = new float[256];
        Time("sigmoid 256", () => System.Numerics.Tensors.TensorPrimitives.Sigmoid(g2, o2));
        Time("tanh 64", () => System.Numerics.Tensors.TensorPrimitives.Tanh(g2.AsSpan(0, 64), o2.AsSpan(0, 64)));
        Time("exp 256", () => System.Numerics.Tensors.TensorPrimitives.Exp(g2, o2));
        Time("mul 256", () => System.Numerics.Tensors.TensorPrimitives.Multiply(g2, g2, o2));
        var step = new StepBenchmark();
        step.Setup();
        Time("step", () => step.Step());
        var config = new LstmConfig(1, 64, 1, 1);
        var prm = LstmParameters.InitializeUniform(config, 1);
        var bptt = new LstmBptt(config, 32, 64);
        var x = Enumerable.Range(0, 2048).Select(i => MathF.Sin(i * 0.3f)).ToArray();
        var grad = new float[prm.Count];
        Time("forward", () => bptt.Forward(prm, 32, x, x));
        Time("backward", () => bptt.Backward(prm, grad));
        var big = new float[2048 * 256]; var hh = new float[2048 * 64]; var w = new float[64 * 256];
        Time("recurrent gemm 32x256x64 x64", () => { for (int t = 0; t < 64; t++) Gemm.MultiplyAdd(32, 256, 64, hh.AsSpan(t * 32 * 64), 64, 1, w, 256, big.AsSpan(t * 32 * 256), 256); });
        Time("dW gemm 64x256x2048 (A transposed)", () => Gemm.MultiplyAdd(64, 256, 2048, hh, 1, 64, big, 256, w, 256));
        Time("dh gemm 32x64x256 x64", () => { for (int t = 0; t < 64; t++) Gemm.MultiplyAdd(32, 64, 256, big.AsSpan(t * 32 * 256), 256, 1, w, 64, hh.AsSpan(t * 32 * 64), 64); });
    }

    internal static void Time(string name, Action op)
    {
        int batch = 1;
        var preWarm = Stopwatch.StartNew();
        while (preWarm.ElapsedMilliseconds < 300) op();
        var sizing = Stopwatch.StartNew();
        for (int i = 0; sizing.Elapsed.TotalMilliseconds < 5; i++) { op(); batch = i + 1; }
        double w0 = ThreadCpuClock.NowNanoseconds();
        while (ThreadCpuClock.NowNanoseconds() - w0 < 400e6) for (int i = 0; i < batch; i++) op();
        double cpu0 = ThreadCpuClock.NowNanoseconds(); int n = 0;
        var sw = Stopwatch.StartNew();
        while (ThreadCpuClock.NowNanoseconds() - cpu0 < 600e6) { for (int i = 0; i < batch; i++) op(); n += batch; }
        Console.WriteLine($"{name}: wall {sw.Elapsed.TotalNanoseconds / n:F0} ns cpu {(ThreadCpuClock.NowNanoseconds() - cpu0) / n:F0} ns");
    }
}
