using System.Diagnostics;

namespace LstmOrleans.Benchmarks;

/// <summary>Stopwatch timing of the headline figures in a few seconds (BenchmarkDotNet gives the careful numbers).</summary>
internal static class QuickBenchmarks
{
    public static void Run()
    {
        Console.WriteLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}");
        Console.WriteLine($"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}, " +
                          $"Vector512 accelerated: {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}, .NET {Environment.Version}");
        foreach (int hidden in new[] { 64, 32, 128 })
        {
            var step = new StepBenchmark { Hidden = hidden };
            step.Setup();
            Report($"Step (1 stream, D=1 H={hidden} K=1)", Measure(() => step.Step(), 1), hidden == 64 ? "target <= 500 ns" : "");
        }
        var many = new StepManyBenchmark();
        Report($"StepMany (B={StepManyBenchmark.Streams}, H=64), per stream-step", Measure(() => many.StepMany(), StepManyBenchmark.Streams), "target <= 300 ns");
        var train = new TrainingStepBenchmark();
        Report($"Training step (B={TrainingStepBenchmark.Batch} T={TrainingStepBenchmark.Steps} H=64 D=1, fwd+MSE+bwd+Adam)", Measure(() => train.TrainingStep(), 1), "target < 2.0 ms");
        foreach (int threads in new[] { 1, 2 })
        {
            var batch = new BatchTrainingBenchmark { Threads = threads };
            batch.Setup();
            var result = Measure(() => batch.TrainingStep(), 1);
            Report($"Trainer batch step via BatchEngine, {threads} thread(s)", result,
                $"{BatchTrainingBenchmark.Batch / (result.Nanoseconds * 1e-9):F0} sequences/s by wall time");
        }
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static (double Nanoseconds, double CpuNanoseconds, double BytesPerOp) Measure(Func<float> operation, int operationsPerCall)
    {
        float sink = 0;
        // Budgets are in thread CPU time, not wall time: on a shared, loaded machine the wall clock also counts
        // time spent descheduled, and a wall-clock warm-up may end before tiered compilation reached the optimised code.
        // Reading the thread CPU clock is a system call (expensive in a VM): read it once per batch of calls
        // sized to run about 2 ms.
        int batch = 1;
        var preWarm = Stopwatch.StartNew();
        while (preWarm.ElapsedMilliseconds < 300) sink += operation();
        var sizing = Stopwatch.StartNew();
        for (int i = 0; sizing.Elapsed.TotalMilliseconds < 5; i++) { sink += operation(); batch = i + 1; }
        double warmStart = ThreadCpuClock.NowNanoseconds();
        while (ThreadCpuClock.NowNanoseconds() - warmStart < 800e6)
            for (int i = 0; i < batch; i++) sink += operation();
        long calls = 0;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        double cpuStart = ThreadCpuClock.NowNanoseconds(), cpu;
        var clock = Stopwatch.StartNew();
        do
        {
            for (int i = 0; i < batch; i++) sink += operation();
            calls += batch;
            cpu = ThreadCpuClock.NowNanoseconds() - cpuStart;
        } while (cpu < 1500e6);
        clock.Stop();
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        if (float.IsNaN(sink)) Console.WriteLine("(NaN sink)");
        double ops = (double)calls * operationsPerCall;
        return (clock.Elapsed.TotalNanoseconds / ops, cpu / ops, allocated / ops);
    }

    private static void Report(string name, (double Nanoseconds, double CpuNanoseconds, double BytesPerOp) result, string target)
    {
        static string Format(double ns) => ns >= 1e6 ? $"{ns / 1e6:F3} ms" : ns >= 1e3 ? $"{ns / 1e3:F2} us" : $"{ns:F1} ns";
        if (target.Length > 0) target = $"  ({target})";
        Console.WriteLine($"{name,-72} wall {Format(result.Nanoseconds),10}  cpu {Format(result.CpuNanoseconds),10}  alloc {result.BytesPerOp:F1} B/op{target}");
    }
}
