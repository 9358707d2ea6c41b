using System.Diagnostics;

namespace LstmOrleans.Benchmarks;

/// <summary>Stopwatch timing of the headline figures in a few seconds (BenchmarkDotNet gives the careful numbers).</summary>
internal static class QuickBenchmarks
{
    /// <param name="stepsOnly">`quick steps`: only the Step and StepMany lines (for back-to-back comparisons).</param>
    public static void Run(bool stepsOnly = false)
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
        if (stepsOnly) return;
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

    /// <summary>Wall and thread-CPU time per operation over the whole run, the median over short windows, and bytes allocated per operation.</summary>
    internal readonly record struct Result(double Nanoseconds, double CpuNanoseconds, double MedianNanoseconds, double BytesPerOp);

    private const double WindowNanoseconds = 50e3;

    internal static Result Measure(Func<float> operation, int operationsPerCall, double cpuBudgetNanoseconds = 1500e6)
    {
        float sink = 0;
        // Budgets are in thread CPU time, not wall time: on a shared, loaded machine the wall clock also counts
        // time spent descheduled, and a wall-clock warm-up may end before tiered compilation reached the optimised code.
        var preWarm = Stopwatch.StartNew();
        while (preWarm.ElapsedMilliseconds < 300) sink += operation();
        // Windows of about 50 us, each timed with the cheap Stopwatch; the median window is the figure least moved
        // by other processes (a window in which this thread was descheduled, or ran on caches just emptied by another
        // process, is an outlier). Reading the thread CPU clock is a system call (expensive in a VM): once per 40 windows.
        int window = 1;
        var sizing = Stopwatch.StartNew();
        for (int i = 0; sizing.Elapsed.TotalNanoseconds < WindowNanoseconds; i++) { sink += operation(); window = i + 1; }
        double warmStart = ThreadCpuClock.NowNanoseconds();
        while (ThreadCpuClock.NowNanoseconds() - warmStart < 800e6)
            for (int i = 0; i < 40 * window; i++) sink += operation();
        var windows = new double[1 << 18];   // allocated before the allocation count starts
        int count = 0;
        long calls = 0;
        double tickNs = 1e9 / Stopwatch.Frequency;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        double cpuStart = ThreadCpuClock.NowNanoseconds(), cpu;
        var clock = Stopwatch.StartNew();
        do
        {
            for (int j = 0; j < 40; j++)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < window; i++) sink += operation();
                long t1 = Stopwatch.GetTimestamp();
                if (count < windows.Length) windows[count++] = (t1 - t0) * tickNs / ((double)window * operationsPerCall);
            }
            calls += 40L * window;
            cpu = ThreadCpuClock.NowNanoseconds() - cpuStart;
        } while (cpu < cpuBudgetNanoseconds);
        clock.Stop();
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        if (float.IsNaN(sink)) Console.WriteLine("(NaN sink)");
        Array.Sort(windows, 0, count);
        double ops = (double)calls * operationsPerCall;
        return new Result(clock.Elapsed.TotalNanoseconds / ops, cpu / ops, windows[count / 2], allocated / ops);
    }

    internal static string Format(double ns) => ns >= 1e6 ? $"{ns / 1e6:F3} ms" : ns >= 1e3 ? $"{ns / 1e3:F2} us" : $"{ns:F1} ns";

    private static void Report(string name, Result result, string target)
    {
        if (target.Length > 0) target = $"  ({target})";
        Console.WriteLine($"{name,-72} wall {Format(result.Nanoseconds),10}  cpu {Format(result.CpuNanoseconds),10}  " +
                          $"median {Format(result.MedianNanoseconds),10}  alloc {result.BytesPerOp:F1} B/op{target}");
    }
}
