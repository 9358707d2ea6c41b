using System.Numerics;

namespace LstmOrleans.Client.Bench;

/// <summary>
/// A log-linear latency histogram in the manner of HdrHistogram: values below 256 ns are exact, larger values fall
/// into one of 128 equal sub-buckets per power of two, so every recorded value is known to within 1/128 (0.8 %).
/// Fixed size (~3.7k counters), O(1) recording, no allocation; one per worker, merged at the end.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int SubBucketBits = 7;                      // 128 sub-buckets per power of two
    private const int SubBucketCount = 1 << SubBucketBits;
    private const int DirectCount = SubBucketCount * 2;       // values 0..255 get their own bucket
    private readonly long[] _counts = new long[DirectCount + (64 - SubBucketBits - 1) * SubBucketCount];

    public long Count { get; private set; }
    public long Max { get; private set; }
    public long Min { get; private set; } = long.MaxValue;
    private double _sum;

    public double Mean => Count == 0 ? 0 : _sum / Count;

    /// <summary>Records one latency in nanoseconds (negative values count as 0).</summary>
    public void Record(long nanoseconds)
    {
        if (nanoseconds < 0) nanoseconds = 0;
        _counts[IndexOf(nanoseconds)]++;
        Count++;
        _sum += nanoseconds;
        if (nanoseconds > Max) Max = nanoseconds;
        if (nanoseconds < Min) Min = nanoseconds;
    }

    public void Add(LatencyHistogram other)
    {
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        Count += other.Count;
        _sum += other._sum;
        if (other.Count > 0)
        {
            Max = Math.Max(Max, other.Max);
            Min = Math.Min(Min, other.Min);
        }
    }

    /// <summary>
    /// The value at quantile <paramref name="q"/> (0..1): the smallest bucket whose cumulative count reaches
    /// ceil(q * Count), reported as that bucket's midpoint (clamped to the recorded min and max).
    /// </summary>
    public long ValueAtQuantile(double q)
    {
        if (Count == 0) return 0;
        long rank = Math.Max(1, (long)Math.Ceiling(Math.Clamp(q, 0, 1) * Count));
        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank) return Math.Clamp(Midpoint(i), Min, Max);
        }
        return Max;
    }

    internal static int IndexOf(long value)
    {
        if (value < DirectCount) return (int)value;
        int shift = 63 - BitOperations.LeadingZeroCount((ulong)value) - SubBucketBits; // >= 1
        long sub = value >> shift;                                                     // in [128, 256)
        return DirectCount + (shift - 1) * SubBucketCount + (int)(sub - SubBucketCount);
    }

    internal static long LowerBound(int index)
    {
        if (index < DirectCount) return index;
        int shift = (index - DirectCount) / SubBucketCount + 1;
        long sub = (index - DirectCount) % SubBucketCount + SubBucketCount;
        return sub << shift;
    }

    private static long Midpoint(int index)
    {
        if (index < DirectCount) return index;
        int shift = (index - DirectCount) / SubBucketCount + 1;
        return LowerBound(index) + (1L << shift) / 2;
    }
}
