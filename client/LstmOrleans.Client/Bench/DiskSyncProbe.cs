using System.Diagnostics;
using Microsoft.Win32.SafeHandles;

namespace LstmOrleans.Client.Bench;

/// <summary>
/// What one fsync costs on the disk under a store's data folder, the way PostgreSQL's <c>pg_test_fsync</c> measures it:
/// append a block to a file and flush it to disk, over and over, and time each flush. A store that acknowledges a write
/// only after its commit is on disk (SQLite at <c>synchronous=FULL</c>) cannot answer faster than this, so the bench
/// reports it beside the store's latencies.
/// </summary>
internal static class DiskSyncProbe
{
    /// <summary>Default flushes measured: enough for a p99 (about a second on a ~1 ms disk).</summary>
    public const int DefaultSyncs = 500;

    /// <summary>Default block appended before each flush: a commit of ~16 pages of 4 KiB, a mid-sized group commit.</summary>
    public const int DefaultBlockBytes = 64 * 1024;

    /// <summary>Appends <paramref name="blockBytes"/> and flushes, <paramref name="syncs"/> times, in a temporary file in <paramref name="folder"/>.</summary>
    public static DiskSyncResult Measure(string folder, int syncs = DefaultSyncs, int blockBytes = DefaultBlockBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(syncs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockBytes, 1);
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, $"fsync-probe-{Guid.NewGuid():N}.bin");
        var block = new byte[blockBytes];
        Random.Shared.NextBytes(block);   // not zeros: nothing along the way may treat the block as sparse
        var histogram = new LatencyHistogram();
        var clock = Stopwatch.StartNew();
        try
        {
            using SafeFileHandle file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.None);
            long offset = 0;
            for (int i = 0; i < syncs; i++)
            {
                RandomAccess.Write(file, block, offset);
                offset += blockBytes;
                long started = Stopwatch.GetTimestamp();
                RandomAccess.FlushToDisk(file);
                histogram.Record((long)Stopwatch.GetElapsedTime(started).TotalNanoseconds);
            }
        }
        finally
        {
            File.Delete(path);
        }
        return new DiskSyncResult(folder, syncs, blockBytes, syncs / clock.Elapsed.TotalSeconds, LatencyResult.From(histogram));
    }
}

/// <summary>
/// <see cref="DiskSyncProbe"/>'s figures: <paramref name="Syncs"/> flushes of <paramref name="BlockBytes"/> appended
/// each, in <paramref name="Folder"/>; <paramref name="SyncsPerSecond"/> counts the writes too; <paramref name="Latency"/> is the flush alone.
/// </summary>
internal sealed record DiskSyncResult(string Folder, int Syncs, int BlockBytes, double SyncsPerSecond, LatencyResult Latency);
