using LstmOrleans.Lstm.Training;

namespace LstmOrleans.Lstm.Tests;

/// <summary>The data-parallel batch engine's shard dispatch: same bits every run, equal to one thread, no allocation per batch.</summary>
public class BatchEngineTests
{
    private static (LstmConfig Config, TrainerOptions Options, Dataset Data, LstmParameters Parameters) Setup(int threads, int batch)
    {
        var config = new LstmConfig(1, 8, 1, 2);
        var rnd = new Random(11);
        var series = new List<float[]>
        {
            Enumerable.Range(0, 600).Select(t => (float)(Math.Sin(t * 0.2) + 0.1 * rnd.NextDouble())).ToArray(),
            Enumerable.Range(0, 300).Select(t => (float)(Math.Cos(t * 0.3) + 0.1 * rnd.NextDouble())).ToArray(),
        };
        var options = new TrainerOptions { WindowLength = 12, Stride = 4, BatchSize = batch, BurnIn = 2, Threads = threads, ValidationFraction = 0.1 };
        return (config, options, Dataset.Create(config, series, options), LstmParameters.InitializeUniform(config, 5));
    }

    [Theory]
    [InlineData(2, 9)]
    [InlineData(3, 10)]
    [InlineData(4, 3)]    // fewer windows than threads in the batch: shards = 3
    public void RepeatedBatches_AreBitIdenticalAcrossEngines_AndMatchOneThread(int threads, int batch)
    {
        var (config, options, data, p) = Setup(threads, batch);
        var first = new BatchEngine(config, options, data);
        var second = new BatchEngine(config, options, data);
        var single = new BatchEngine(config, options with { Threads = 1 }, data);
        var g1 = new float[p.Count]; var g2 = new float[p.Count]; var g0 = new float[p.Count];
        for (int b = 0; b + batch <= data.TrainWindows.Length && b < 20 * batch; b += batch)
        {
            var windows = data.TrainWindows.AsSpan(b, batch);
            var (sse1, count1) = first.ForwardBackward(p, windows, g1);
            var (sse2, count2) = second.ForwardBackward(p, windows, g2);
            var (sse0, count0) = single.ForwardBackward(p, windows, g0);
            Assert.Equal(sse1, sse2);                // deterministic: shard cut and merge order fixed, whichever thread ran a shard
            Assert.Equal(g1, g2);
            Assert.Equal(count0, count1);
            Assert.Equal(sse0, sse1, 1e-9);          // the shard sums differ from one thread only by float rounding
            for (int n = 0; n < g0.Length; n++) Assert.Equal(g0[n], g1[n], 1e-6f);
            Assert.Contains(g1, g => g != 0f);
        }
    }

    [Fact]
    public void SteadyStateBatches_AllocateNothingOnTheCallingThread()
    {
        var (config, options, data, p) = Setup(threads: 2, batch: 8);
        var engine = new BatchEngine(config, options, data);
        var gradient = new float[p.Count];
        var windows = data.TrainWindows.AsSpan(0, 8).ToArray();
        for (int i = 0; i < 20; i++) engine.ForwardBackward(p, windows, gradient);   // warm-up: lazy event handles, thread-pool queue segments
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 200; i++) engine.ForwardBackward(p, windows, gradient);
        long perBatch = (GC.GetAllocatedBytesForCurrentThread() - before) / 200;
        // Parallel.For allocated about 1.5 KB per batch here; a thread-pool queue segment grown now and then may add a few bytes on average.
        Assert.True(perBatch < 16, $"{perBatch} bytes per batch");
    }

    [Fact]
    public void ShardFailure_SurfacesToTheCaller_AndTheEngineKeepsWorking()
    {
        var (config, options, data, p) = Setup(threads: 2, batch: 6);
        var engine = new BatchEngine(config, options, data);
        var gradient = new float[p.Count];
        var windows = data.TrainWindows.AsSpan(0, 6).ToArray();
        var wrong = LstmParameters.InitializeUniform(new LstmConfig(1, 8, 1, 2), 5);
        engine.ForwardBackward(wrong, windows, gradient);
        var badConfig = LstmParameters.InitializeUniform(new LstmConfig(2, 8, 1, 2), 5);   // input size the workers were not sized for
        Assert.ThrowsAny<Exception>(() => engine.ForwardBackward(badConfig, windows, gradient));
        var again = new float[p.Count];
        engine.ForwardBackward(wrong, windows, again);
        Assert.Equal(gradient, again);
    }
}
