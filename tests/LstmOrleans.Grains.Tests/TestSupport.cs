using System.Text.Json;
using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// An independent re-implementation of what a stream is specified to do, driving the engine directly:
/// running mean/variance (Welford, population variance, std = 1 while the variance is below 1e-12),
/// x_norm = (x - mean) / std with statistics that include the current observation, y de-normalised with the
/// target's statistics.
/// </summary>
internal sealed class ReferenceStream(ModelConfig config, LstmWeights weights)
{
    private readonly double[] _mean = new double[config.InputSize];
    private readonly double[] _m2 = new double[config.InputSize];
    private long _count;
    private LstmWeights _weights = weights;

    public float[] H { get; } = new float[config.Layers * config.HiddenSize];
    public float[] C { get; } = new float[config.Layers * config.HiddenSize];
    public List<float[]> Inputs { get; } = [];

    public float[] Step(float[] values)
    {
        _count++;
        for (int i = 0; i < values.Length; i++)
        {
            double delta = values[i] - _mean[i];
            _mean[i] += delta / _count;
            _m2[i] += delta * (values[i] - _mean[i]);
        }
        var x = new float[values.Length];
        for (int i = 0; i < values.Length; i++)
            x[i] = config.Normalization == NormalizationMode.RunningZScore ? (float)((values[i] - _mean[i]) / Std(i)) : values[i];
        Inputs.Add(x);
        var y = new float[config.Horizons];
        _weights.Step(x, H, C, y);
        return Denormalize(y);
    }

    /// <summary>Switch weights: zero state, then replay the last <paramref name="window"/> inputs.</summary>
    public float[] Rewarm(LstmWeights weights, int window)
    {
        _weights = weights;
        Array.Clear(H);
        Array.Clear(C);
        var y = new float[config.Horizons];
        foreach (var x in Inputs.Skip(Math.Max(0, Inputs.Count - window))) _weights.Step(x, H, C, y);
        return Denormalize(y);
    }

    private float[] Denormalize(float[] y)
    {
        if (config.Normalization != NormalizationMode.RunningZScore) return y;
        int t = config.TargetIndex;
        return y.Select(v => (float)(v * Std(t) + _mean[t])).ToArray();
    }

    private double Std(int i)
    {
        double variance = _m2[i] / _count;
        return variance > 1e-12 ? Math.Sqrt(variance) : 1.0;
    }
}

internal static class TestSupport
{
    /// <summary>Starts a one-silo in-process cluster whose silo <paramref name="configure"/> sets up (storage, stream grains).</summary>
    public static async Task<Orleans.TestingHost.InProcessTestCluster> StartSingleSiloAsync(string serviceId, string clusterId, Action<Orleans.Hosting.ISiloBuilder> configure)
    {
        var builder = new Orleans.TestingHost.InProcessTestClusterBuilder(1);
        builder.Options.ServiceId = serviceId;
        builder.Options.ClusterId = clusterId;
        builder.ConfigureSilo((_, silo) => configure(silo));
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    /// <summary>The stored closed-history records of a stream ("history.0" .. "history.15") by slot; missing slots are left out.</summary>
    public static async Task<Dictionary<int, GrainState<StreamHistory>>> ReadSlotsAsync(Orleans.Storage.IGrainStorage storage, GrainId grainId)
    {
        var slots = new Dictionary<int, GrainState<StreamHistory>>();
        for (int slot = 0; slot < 16; slot++)
        {
            var record = new GrainState<StreamHistory>();
            await storage.ReadStateAsync($"history.{slot}", grainId, record);
            if (record.RecordExists) slots[slot] = record;
        }
        return slots;
    }

    /// <summary>Stops every silo of <paramref name="cluster"/> (grains write their state) and disposes it.</summary>
    public static async Task StopAsync(Orleans.TestingHost.InProcessTestCluster cluster)
    {
        await cluster.StopAllSilosAsync();
        await cluster.DisposeAsync();
    }

    public static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static ModelConfig SmallConfig(int seed = 7, int inputSize = 2) =>
        new(inputSize, HiddenSize: 8, Layers: 2, Horizons: 3, Features: [], TargetIndex: 0, NormalizationMode.RunningZScore, seed);

    /// <summary>A deterministic multi-feature signal: a noisy sine and a slower cosine.</summary>
    public static Observation Obs(long sequence, int inputSize = 2, int seed = 0)
    {
        var values = new float[inputSize];
        for (int i = 0; i < inputSize; i++)
            values[i] = (float)(20 + 5 * Math.Sin(0.3 * sequence + i + seed) + 0.37 * Math.Cos(1.7 * sequence * (i + 1)));
        return new Observation(sequence, Start.AddSeconds(sequence), values);
    }

    public static LstmWeights ToEngine(ModelWeights weights)
    {
        var parameters = new LstmParameters(new LstmConfig(weights.Config.InputSize, weights.Config.HiddenSize, weights.Config.Layers, weights.Config.Horizons));
        weights.Parameters.AsSpan().CopyTo(parameters.Data);
        return LstmWeights.From(parameters);
    }

    /// <summary>The whole observable state of a stream (durable state, forecast and history) as one exact string.</summary>
    public static async Task<string> FullState(IStreamGrain stream)
    {
        var state = await stream.GetStateAsync();
        var history = await stream.GetHistoryAsync(int.MaxValue);
        return JsonSerializer.Serialize(new { state, history });
    }

    public static async Task<T> Eventually<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        while (true)
        {
            var value = await probe();
            if (done(value) || DateTime.UtcNow > deadline) return value;
            await Task.Delay(50);
        }
    }
}
