using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;

namespace LstmOrleans.Reliability.Tests;

/// <summary>
/// What an uninterrupted stream computes, re-implemented from the specification on the engine alone (no Orleans,
/// no grain code): Welford running mean / population variance including the current observation, std = 1 while the
/// variance is below 1e-12, x_norm = (x - mean) / std, one <see cref="LstmWeights.Step"/>, predictions
/// de-normalised with the target's statistics of the same step.
/// </summary>
internal sealed class ReferenceStream(ModelConfig config, LstmWeights weights)
{
    private readonly double[] _mean = new double[config.InputSize];  // [D]
    private readonly double[] _m2 = new double[config.InputSize];    // [D]
    private long _count;

    public float[] H { get; } = new float[config.Layers * config.HiddenSize];  // [L*H]
    public float[] C { get; } = new float[config.Layers * config.HiddenSize];  // [L*H]
    public long Steps => _count;

    /// <summary>One step; returns the de-normalised forecasts [K].</summary>
    public float[] Step(float[] values)
    {
        _count++;
        for (int i = 0; i < values.Length; i++)
        {
            double v = values[i];
            double delta = v - _mean[i];
            _mean[i] += delta / _count;
            _m2[i] += delta * (v - _mean[i]);
        }
        var x = new float[values.Length];                             // [D]
        for (int i = 0; i < values.Length; i++)
            x[i] = config.Normalization == NormalizationMode.RunningZScore ? (float)((values[i] - _mean[i]) / Std(i)) : values[i];
        var y = new float[config.Horizons];                           // [K]
        weights.Step(x, H, C, y);
        if (config.Normalization == NormalizationMode.RunningZScore)
        {
            int t = config.TargetIndex;
            for (int k = 0; k < y.Length; k++) y[k] = (float)(y[k] * Std(t) + _mean[t]);
        }
        return y;
    }

    private double Std(int i)
    {
        double variance = _m2[i] / _count;
        return variance > 1e-12 ? Math.Sqrt(variance) : 1.0;
    }

    public static LstmWeights ToEngine(ModelWeights weights)
    {
        var c = weights.Config;
        var parameters = new LstmParameters(new LstmConfig(c.InputSize, c.HiddenSize, c.Layers, c.Horizons));
        weights.Parameters.AsSpan().CopyTo(parameters.Data);
        return LstmWeights.From(parameters);
    }
}

internal static class Bits
{
    /// <summary>Float arrays as their exact bit patterns, so Assert.Equal compares bitwise (NaN-safe, -0 != +0).</summary>
    public static int[] Of(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();
}

/// <summary>Deterministic test signals: every run (and the reference) sees exactly the same input.</summary>
internal static class Signals
{
    public static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static Observation Obs(int stream, long sequence, int inputSize = 1)
    {
        var values = new float[inputSize];
        for (int i = 0; i < inputSize; i++)
            values[i] = (float)(20 + 5 * Math.Sin(0.3 * sequence + stream + i) + 0.37 * Math.Cos(1.7 * sequence * ((stream % 7) + i + 1)));
        return new Observation(sequence, Start.AddSeconds(sequence), values);
    }

    public static ModelConfig Config(int inputSize = 1) =>
        new(inputSize, HiddenSize: 16, Layers: 2, Horizons: 3, Features: [], TargetIndex: 0, NormalizationMode.RunningZScore, Seed: 11);
}
