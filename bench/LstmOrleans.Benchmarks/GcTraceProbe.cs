using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace LstmOrleans.Benchmarks;

/// <summary>
/// <c>gc-trace PID [SECONDS] [FILE]</c>: records the runtime's GC events of a running .NET process (a silo under
/// <c>lstmorleans bench</c>, say) through EventPipe for SECONDS (default 8), keeps the trace in FILE (default
/// <c>gc-PID.nettrace</c>), and prints where the time and the allocations went: collections by generation, the heap count
/// and gen0 budget the collector chose (<c>GCGlobalHeapHistory</c>), each pause split into suspension and GC work, and
/// the allocations by type and by allocating stack (<c>GCAllocationTick</c>, one sample per ~100 KB allocated, so a
/// type's share of the samples is its share of the bytes). <c>gc-trace --file FILE</c> reads a kept trace again.
/// Session 14 of BENCHMARKS.md used it for the durable single value's allocations and DATAS's gen0 budget.
/// </summary>
internal static class GcTraceProbe
{
    public static void Run(string[] args)
    {
        string path;
        if (args.Length >= 3 && args[1] == "--file") path = args[2];
        else if (args.Length >= 2 && int.TryParse(args[1], out var pid))
        {
            var seconds = args.Length >= 3 ? double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 8;
            path = args.Length >= 4 ? args[3] : $"gc-{pid}.nettrace";
            Record(pid, TimeSpan.FromSeconds(seconds), path);
        }
        else
        {
            Console.Error.WriteLine("usage: gc-trace PID [SECONDS] [FILE] | gc-trace --file FILE");
            Environment.ExitCode = 2;
            return;
        }
        Report(path);
    }

    private static void Record(int pid, TimeSpan duration, string path)
    {
        // GC keyword at Verbose: GCStart/End, suspension, heap history and the AllocationTick samples (with stacks).
        var providers = new[] { new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Verbose, (long)ClrTraceEventParser.Keywords.GC) };
        var client = new DiagnosticsClient(pid);
        using var session = client.StartEventPipeSession(providers, requestRundown: true);
        using var file = File.Create(path);
        var copy = session.EventStream.CopyToAsync(file);
        Thread.Sleep(duration);
        session.Stop();   // the rundown (method names for the stacks) follows, then the stream ends
        copy.Wait();
        Console.WriteLine($"recorded {duration.TotalSeconds:F0} s of process {pid} into {path} ({new FileInfo(path).Length / 1024} KiB)");
    }

    private static void Report(string path)
    {
        var etlx = TraceLog.CreateFromEventPipeDataFile(path);
        try
        {
            using var log = new TraceLog(etlx);
            var collections = new int[3];
            var heapCounts = new Dictionary<int, int>();
            var gen0Budgets = new List<double>();
            var suspensions = new List<double>();
            var work = new List<double>();
            var pauses = new List<double>();
            var byType = new Dictionary<string, long>();
            var byStack = new Dictionary<string, long>();
            double suspendStart = -1, gcStart = -1, pauseStart = -1;
            long sampled = 0;
            foreach (var e in log.Events)
            {
                switch (e)
                {
                    case GCStartTraceData start:
                        if (start.Depth is >= 0 and <= 2) collections[start.Depth]++;
                        gcStart = start.TimeStampRelativeMSec;
                        break;
                    case GCEndTraceData end when gcStart >= 0:
                        work.Add(end.TimeStampRelativeMSec - gcStart);
                        gcStart = -1;
                        break;
                    case GCGlobalHeapHistoryTraceData history:
                        heapCounts[history.NumHeaps] = heapCounts.GetValueOrDefault(history.NumHeaps) + 1;
                        gen0Budgets.Add(history.FinalYoungestDesired / 1048576.0);
                        break;
                    case GCSuspendEETraceData suspend:
                        suspendStart = pauseStart = suspend.TimeStampRelativeMSec;
                        break;
                    case GCNoUserDataTraceData noData when noData.EventName == "GC/SuspendEEStop" && suspendStart >= 0:
                        suspensions.Add(noData.TimeStampRelativeMSec - suspendStart);
                        suspendStart = -1;
                        break;
                    case GCNoUserDataTraceData noData when noData.EventName == "GC/RestartEEStop" && pauseStart >= 0:
                        pauses.Add(noData.TimeStampRelativeMSec - pauseStart);
                        pauseStart = -1;
                        break;
                    case GCAllocationTickTraceData tick:
                        sampled += tick.AllocationAmount64;
                        byType[tick.TypeName] = byType.GetValueOrDefault(tick.TypeName) + tick.AllocationAmount64;
                        var frames = new List<string>();
                        for (var frame = tick.CallStack(); frame is not null && frames.Count < 3; frame = frame.Caller)
                            frames.Add(frame.CodeAddress.FullMethodName is { Length: > 0 } name ? name : "?");
                        var key = tick.TypeName + " <- " + string.Join(" <- ", frames);
                        byStack[key] = byStack.GetValueOrDefault(key) + tick.AllocationAmount64;
                        break;
                }
            }

            Console.WriteLine($"collections: gen0 {collections[0]}, gen1 {collections[1]}, gen2 {collections[2]} (a gen1 collection counts as gen1 only)");
            Console.WriteLine($"heaps: {string.Join(", ", heapCounts.OrderBy(p => p.Key).Select(p => $"{p.Key} in {p.Value} collections"))}");
            if (gen0Budgets.Count > 0) Console.WriteLine($"gen0 budget chosen after each collection: median {Median(gen0Budgets):F1} MiB, {gen0Budgets.Min():F1}-{gen0Budgets.Max():F1} MiB");
            if (pauses.Count > 0)
                Console.WriteLine($"pauses: {pauses.Count}, {pauses.Sum():F0} ms in all, median {Median(pauses):F2} ms, max {pauses.Max():F2} ms; " +
                                  $"of which suspension median {Median(suspensions):F3} ms, GC work median {Median(work):F2} ms");
            if (sampled == 0) return;
            Console.WriteLine($"allocation samples: {sampled / 1048576.0:F0} MiB; by type:");
            foreach (var (type, bytes) in byType.OrderByDescending(p => p.Value).Take(25))
                Console.WriteLine($"  {100.0 * bytes / sampled,6:F2} %  {type}");
            Console.WriteLine("by type and allocating stack (three frames):");
            foreach (var (stack, bytes) in byStack.OrderByDescending(p => p.Value).Take(25))
                Console.WriteLine($"  {100.0 * bytes / sampled,6:F2} %  {stack}");
        }
        finally
        {
            File.Delete(etlx);
        }
    }

    private static double Median(List<double> values)
    {
        if (values.Count == 0) return 0;
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }
}
