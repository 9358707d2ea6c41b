using Xunit;
using LstmOrleans.Client.Bench;

namespace LstmOrleans.Client.Tests.Bench;

public sealed class LatencyHistogramTests
{
    [Fact]
    public void Quantiles_match_a_sorted_array_within_the_bucket_precision()
    {
        var random = new Random(7);
        var values = new long[20_000];
        var histogram = new LatencyHistogram();
        for (int i = 0; i < values.Length; i++)
        {
            // Log-uniform from 100 ns to 100 ms, like real latencies with a long tail.
            values[i] = (long)Math.Exp(random.NextDouble() * (Math.Log(1e8) - Math.Log(100)) + Math.Log(100));
            histogram.Record(values[i]);
        }
        Array.Sort(values);
        foreach (var q in new[] { 0.5, 0.9, 0.99, 0.999 })
        {
            long exact = values[(int)Math.Ceiling(q * values.Length) - 1];
            long estimate = histogram.ValueAtQuantile(q);
            Assert.InRange(estimate, exact * 0.99, exact * 1.01);
        }
        Assert.Equal(values[^1], histogram.Max);
        Assert.Equal(values[0], histogram.Min);
        Assert.Equal(values.Length, histogram.Count);
        Assert.Equal(values.Average(), histogram.Mean, 1e-6 * values.Average());
    }

    [Fact]
    public void Bucket_boundaries_are_contiguous_and_each_value_lands_in_its_bucket()
    {
        foreach (long v in new long[] { 0, 1, 255, 256, 257, 511, 512, 1000, 123_456_789, long.MaxValue / 3 })
        {
            int index = LatencyHistogram.IndexOf(v);
            Assert.True(LatencyHistogram.LowerBound(index) <= v, $"{v} below its bucket");
            Assert.True(LatencyHistogram.LowerBound(index + 1) > v, $"{v} above its bucket");
        }
        for (int i = 0; i < 2000; i++)
            Assert.Equal(i, LatencyHistogram.IndexOf(LatencyHistogram.LowerBound(i)));
    }

    [Fact]
    public void Merging_equals_recording_everything_in_one()
    {
        var a = new LatencyHistogram();
        var b = new LatencyHistogram();
        var all = new LatencyHistogram();
        for (long v = 1; v < 100_000; v += 37)
        {
            (v % 2 == 0 ? a : b).Record(v * 13);
            all.Record(v * 13);
        }
        a.Add(b);
        foreach (var q in new[] { 0.1, 0.5, 0.99 }) Assert.Equal(all.ValueAtQuantile(q), a.ValueAtQuantile(q));
        Assert.Equal(all.Count, a.Count);
        Assert.Equal(all.Max, a.Max);
    }
}
