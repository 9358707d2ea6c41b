using LstmOrleans.Client.Bench;
using Xunit;

namespace LstmOrleans.Client.Tests.Bench;

public sealed class DiskSyncProbeTests
{
    [Fact]
    public void Times_every_flush_and_leaves_nothing_behind_in_the_folder()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"lstmorleans-fsync-test-{Guid.NewGuid():N}", "data");
        try
        {
            var result = DiskSyncProbe.Measure(folder, syncs: 40, blockBytes: 8192);

            Assert.Equal(folder, result.Folder);
            Assert.Equal(40, result.Syncs);
            Assert.Equal(8192, result.BlockBytes);
            // Every flush is a system call that takes real time; the percentiles are ordered and within the run.
            Assert.True(result.Latency.P50Us > 0);
            Assert.True(result.Latency.P50Us <= result.Latency.P99Us && result.Latency.P99Us <= result.Latency.MaxUs);
            Assert.True(result.SyncsPerSecond > 0 && result.SyncsPerSecond <= 1e6 / result.Latency.MeanUs * 1.0001,
                $"{result.SyncsPerSecond}/s cannot beat the flushes' own time (mean {result.Latency.MeanUs} us)");
            Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(folder)!, recursive: true);
        }
    }

    [Theory]
    [InlineData(0, 4096)]
    [InlineData(10, 0)]
    public void Refuses_an_empty_measurement(int syncs, int blockBytes) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => DiskSyncProbe.Measure(Path.GetTempPath(), syncs, blockBytes));
}
