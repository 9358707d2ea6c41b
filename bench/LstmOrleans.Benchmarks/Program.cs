using BenchmarkDotNet.Running;
using LstmOrleans.Benchmarks;

// `quick`: a few seconds of Stopwatch timing that prints the headline figures; anything else goes to BenchmarkDotNet
// (e.g. `-- --filter *` for every benchmark with [MemoryDiagnoser]).
if (args.Length > 0 && args[0] == "sqlite-probe") { await SqliteStorageProbe.RunAsync(args); return; }
if (args.Length > 0 && args[0] == "probe") { Probe.Run(); return; }
if (args.Length > 0 && args[0] == "codec") { StateCodecProbe.Run(); return; }
if (args.Length > 0 && args[0] == "messages") { MessageProbe.Run(); return; }
if (args.Length > 0 && args[0] == "gc-trace") { GcTraceProbe.Run(args); return; }
if (args.Length > 0 && args[0] == "quick")
{
    QuickBenchmarks.Run(stepsOnly: args.Length > 1 && args[1] == "steps");
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(QuickBenchmarks).Assembly).Run(args);
