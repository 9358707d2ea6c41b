using System.Runtime.CompilerServices;

namespace LstmOrleans.Lstm;

/// <summary>
/// The per-step arithmetic of running z-score normalisation, in one place: the stream grains apply it to every
/// observation, and offline <c>model predict</c> / <c>model train</c> replay a CSV through the same routine, so a model
/// exported from the cluster gives offline exactly the forecasts its streams give for the same series (a second copy of
/// this arithmetic drifted from the first once already: offline fed raw values).
/// <para>
/// On each observation the per-feature running mean and Welford sum M2 are first updated with it, then
/// x_norm[i] = (x[i] - mean[i]) / std[i], std = sqrt(M2 / n), or 1 while that variance is below <see cref="MinVariance"/>
/// (the first observation, or a constant feature). Forecasts are de-normalised with the target's statistics of the
/// same step: y * std[target] + mean[target].
/// </para>
/// Allocation-free, spans only: it sits on the ingest hot path.
/// </summary>
public static class RunningZScore
{
    /// <summary>Below this population variance a feature is treated as constant and normalised with std 1.</summary>
    public const double MinVariance = 1e-12;

    /// <summary>The normalising standard deviation of a feature with Welford sum <paramref name="m2"/> over <paramref name="count"/> values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Std(double m2, long count)
    {
        double variance = count > 0 ? m2 / count : 0;
        return variance > MinVariance ? Math.Sqrt(variance) : 1.0;
    }

    /// <summary>
    /// Welford update with one observation <paramref name="values"/> [D]: the statistics after <paramref name="count"/>
    /// - 1 values (<paramref name="mean"/>, <paramref name="m2"/>, [D] each) become those after <paramref name="count"/>
    /// in <paramref name="newMean"/>, <paramref name="newM2"/> ([D] each). The destinations may be the sources (updated
    /// in place): each feature reads its old values before writing its new ones.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // inlined into the stream step, as the loops were before they moved here
    public static void Update(ReadOnlySpan<float> values, ReadOnlySpan<double> mean, ReadOnlySpan<double> m2, long count,
        Span<double> newMean, Span<double> newM2)
    {
        for (int i = 0; i < values.Length; i++)
        {
            double v = values[i];
            double delta = v - mean[i];
            double updated = mean[i] + delta / count;
            newM2[i] = m2[i] + delta * (v - updated);
            newMean[i] = updated;
        }
    }

    /// <summary>
    /// Writes <paramref name="raw"/> [D] normalised with statistics (<paramref name="mean"/>, <paramref name="m2"/>, [D]
    /// each, over <paramref name="count"/> values) that already include it into <paramref name="x"/> [D].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // inlined into the stream step, as the loops were before they moved here
    public static void Normalize(ReadOnlySpan<float> raw, ReadOnlySpan<double> mean, ReadOnlySpan<double> m2, long count, Span<float> x)
    {
        for (int i = 0; i < raw.Length; i++)
            x[i] = (float)((raw[i] - mean[i]) / Std(m2[i], count));
    }

    /// <summary>Head outputs <paramref name="y"/> [K] (normalised target units) back to the target's units, in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // inlined into the stream step, as the loops were before they moved here
    public static void Denormalize(double mean, double std, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++) y[i] = (float)(y[i] * std + mean);
    }
}
