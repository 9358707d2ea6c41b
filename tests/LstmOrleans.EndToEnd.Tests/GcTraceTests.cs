using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>Runs alone: the traced process is this test process, and other tests' allocations would blur what it made.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GcTraceCollection
{
    public const string Name = "gc-trace of the test process";
}

/// <summary>
/// The bench binary's <c>gc-trace PID SECONDS FILE</c> (BENCHMARKS.md's allocation profiles) records a running process's
/// GC events and reports them. Its target here is this test process while it allocates a type of its own and forces
/// gen0 collections, so the report can be checked against what is known to have happened: the collections, and the
/// marker type on top of the allocations with the method that allocated it.
/// </summary>
[Collection(GcTraceCollection.Name)]
public sealed class GcTraceTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(180);
    private readonly string _folder = Binaries.TempFolder("gctrace");

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task Gc_trace_reports_the_collections_and_allocations_of_the_traced_process()
    {
        var file = Path.Combine(_folder, "test.nettrace");
        var pid = Environment.ProcessId;
        var trace = Binaries.RunBenchAsync(Timeout, _folder, "gc-trace", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "4", file);
        int forced = await Task.Run(() => AllocateUntil(trace));
        var result = await trace;

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains($"recorded 4 s of process {pid} into {file}", result.Stdout);
        Assert.True(new FileInfo(file).Length > 0);
        var collections = Regex.Match(result.Stdout, @"^collections: gen0 (\d+), gen1 (\d+), gen2 (\d+)", RegexOptions.Multiline);
        Assert.True(collections.Success, result.ToString());
        // The session starts a moment after the process does and ends 4 s later: a part of the forced collections,
        // at least one every ~20 ms of the window. Some of them may be reported as deeper ones.
        int total = int.Parse(collections.Groups[1].Value) + int.Parse(collections.Groups[2].Value) + int.Parse(collections.Groups[3].Value);
        Assert.True(total >= 20 && total <= forced + 1000, $"{total} collections reported, {forced} forced\n{result}");
        Assert.Matches(@"(?m)^pauses: \d+, ", result.Stdout);

        // The allocation samples: the marker type is the most allocated one, and its stack names the allocating method.
        var byType = Regex.Match(result.Stdout, @"by type:\n\s+([\d.]+) %  (\S+)");
        Assert.True(byType.Success, result.ToString());
        Assert.Equal(typeof(GcTraceMarker).FullName, byType.Groups[2].Value);
        Assert.True(double.Parse(byType.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 50, result.ToString());
        Assert.Matches($@"(?m)^\s+[\d.]+ %  {Regex.Escape(typeof(GcTraceMarker).FullName!)} <- [^\n]*{nameof(AllocateMarkers)}", result.Stdout);

        // --file reads the kept trace again: the same report.
        var again = await Binaries.RunBenchAsync(Timeout, _folder, "gc-trace", "--file", file);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(result.Stdout[result.Stdout.IndexOf("collections:", StringComparison.Ordinal)..], again.Stdout);
    }

    [Fact]
    public async Task Gc_trace_without_a_process_id_prints_its_usage_and_exits_2()
    {
        var result = await Binaries.RunBenchAsync(Timeout, _folder, "gc-trace");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("usage: gc-trace PID [SECONDS] [FILE] | gc-trace --file FILE", result.Stderr);
    }

    /// <summary>Allocates markers and forces gen0 collections until <paramref name="until"/> completes; returns how many it forced.</summary>
    private static int AllocateUntil(Task until)
    {
        var keep = new GcTraceMarker[4096];
        int forced = 0;
        var limit = System.Diagnostics.Stopwatch.StartNew();
        while (!until.IsCompleted && limit.Elapsed < Timeout)
        {
            AllocateMarkers(keep);
            GC.Collect(0, GCCollectionMode.Forced, blocking: true);
            forced++;
            Thread.Sleep(5);
        }
        return forced;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AllocateMarkers(GcTraceMarker[] keep)
    {
        // ~100 KB per call over many objects: about one allocation sample (one per ~100 KB) a call.
        for (var i = 0; i < 2500; i++)
            keep[i % keep.Length] = new GcTraceMarker(i, i, i, i);
    }
}

/// <summary>The type whose allocations gc-trace must find (48 bytes an instance).</summary>
internal sealed record GcTraceMarker(long A, long B, long C, long D);
