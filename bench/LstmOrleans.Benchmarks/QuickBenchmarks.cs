using System.Diagnostics;

namespace LstmOrleans.Benchmarks;

/// <summary>Stopwatch timing of the headline figures in a few seconds (BenchmarkDotNet gives the careful numbers).</summary>
internal static class QuickBenchmarks
{
    public static void Run()
    {
        Console.WriteLine($"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}, " +
                          $"Vector512 accelerated: {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}, .NET {Environment.Version}");
        var step = new StepBenchmark();
        Report("Step (1 stream, D=1 H=64 K=1)", Measure(() => step.Step(), 1), "target <= 500 ns");
        var many = new StepManyBenchmark();
        Report($"StepMany (B={StepManyBenchmark.Streams}, H=64), per stream-step", Measure(() => many.StepMany(), StepManyBenchmark.Streams), "target <= 300 ns");
        var train = new TrainingStepBenchmark();
        Report($"Training step (B={TrainingStepBenchmark.Batch} T={TrainingStepBenchmark.Steps} H=64 D=1, fwd+MSE+bwd+Adam)", Measure(() => train.TrainingStep(), 1), "target < 2.0 ms");
    }

    private static (double Nanoseconds, double CpuNanoseconds, double BytesPerOp) Measure(Func<float> operation, int operationsPerCall)
    {
        float sink = 0;
        var process = Process.GetCurrentProcess();
        TimeSpan Cpu() { process.Refresh(); return process.TotalProcessorTime; }
        // Budgets are in CPU time, not wall time: on a shared, loaded machine the wall clock also counts time spent
        // descheduled, and a wall-clock warm-up may end before tiered compilation reached the optimised code.
        var warmStart = Cpu();
        while ((Cpu() - warmStart).TotalMilliseconds < 800)
            for (int i = 0; i < 50; i++) sink += operation();
        long calls = 0;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var cpuStart = Cpu();
        var clock = Stopwatch.StartNew();
        TimeSpan cpu;
        do
        {
            for (int i = 0; i < 20; i++) sink += operation();
            calls += 20;
            cpu = Cpu() - cpuStart;
        } while (cpu.TotalMilliseconds < 1500);
        clock.Stop();
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        if (float.IsNaN(sink)) Console.WriteLine("(NaN sink)");
        double ops = (double)calls * operationsPerCall;
        return (clock.Elapsed.TotalNanoseconds / ops, cpu.TotalNanoseconds / ops, allocated / ops);
    }

    private static void Report(string name, (double Nanoseconds, double CpuNanoseconds, double BytesPerOp) result, string target)
    {
        static string Format(double ns) => ns >= 1e6 ? $"{ns / 1e6:F3} ms" : ns >= 1e3 ? $"{ns / 1e3:F2} us" : $"{ns:F1} ns";
        Console.WriteLine($"{name,-72} wall {Format(result.Nanoseconds),10}  cpu {Format(result.CpuNanoseconds),10}  alloc {result.BytesPerOp:F1} B/op  ({target})");
    }
}
