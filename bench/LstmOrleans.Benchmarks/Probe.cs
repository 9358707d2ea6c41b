using System.Diagnostics;
using LstmOrleans.Lstm;

namespace LstmOrleans.Benchmarks;

internal static class Probe
{
    public static void Run()
    {
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

    private static void Time(string name, Action op)
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
