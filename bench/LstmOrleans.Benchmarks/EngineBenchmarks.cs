using BenchmarkDotNet.Attributes;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Training;

namespace LstmOrleans.Benchmarks;

/// <summary>One stream, one step: D = 1, H = 64, K = 1, one layer (the per-value cost of a sensor grain).</summary>
[MemoryDiagnoser]
public class StepBenchmark
{
    private readonly LstmWeights _weights = LstmWeights.From(LstmParameters.InitializeUniform(new LstmConfig(1, 64, 1, 1), 1));
    private readonly float[] _x = [0.3f], _h = new float[64], _c = new float[64], _y = new float[1];

    [Benchmark]
    public float Step()
    {
        _weights.Step(_x, _h, _c, _y);
        return _y[0];
    }
}

/// <summary>1024 streams stepped together: D = 1, H = 64, K = 1 (divide by 1024 for the per-stream cost).</summary>
[MemoryDiagnoser]
public class StepManyBenchmark
{
    public const int Streams = 1024;
    private readonly LstmWeights _weights = LstmWeights.From(LstmParameters.InitializeUniform(new LstmConfig(1, 64, 1, 1), 1));
    private readonly float[] _x = Enumerable.Range(0, Streams).Select(i => MathF.Sin(i)).ToArray();
    private readonly float[] _h = new float[Streams * 64], _c = new float[Streams * 64], _y = new float[Streams];

    [Benchmark(OperationsPerInvoke = Streams)]
    public float StepMany()
    {
        _weights.StepMany(_x, _h, _c, _y);
        return _y[0];
    }
}

/// <summary>One training step on one thread: B = 32 windows of T = 64, D = 1, H = 64, K = 1: forward, MSE, backward, Adam.</summary>
[MemoryDiagnoser]
public class TrainingStepBenchmark
{
    public const int Batch = 32, Steps = 64;
    private readonly LstmParameters _parameters = LstmParameters.InitializeUniform(new LstmConfig(1, 64, 1, 1), 1);
    private readonly LstmBptt _bptt = new(new LstmConfig(1, 64, 1, 1), Batch, Steps);
    private readonly AdamOptimizer _adam;
    private readonly float[] _gradient;
    private readonly float[] _inputs = Enumerable.Range(0, Batch * Steps).Select(i => MathF.Sin(i * 0.3f)).ToArray();
    private readonly float[] _targets = Enumerable.Range(0, Batch * Steps).Select(i => MathF.Sin((i + 1) * 0.3f)).ToArray();

    public TrainingStepBenchmark()
    {
        _adam = new AdamOptimizer(_parameters.Count);
        _gradient = new float[_parameters.Count];
    }

    [Benchmark]
    public float TrainingStep()
    {
        float loss = _bptt.Forward(_parameters, Batch, _inputs, _targets);
        _bptt.Backward(_parameters, _gradient);
        _adam.Step(_parameters.Data, _gradient);
        return loss;
    }
}
