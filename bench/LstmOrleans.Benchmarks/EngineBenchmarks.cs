using BenchmarkDotNet.Attributes;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Training;

namespace LstmOrleans.Benchmarks;

/// <summary>One stream, one step: D = 1, K = 1, one layer (the per-value cost of a sensor grain); H = 64 is the target case.</summary>
[MemoryDiagnoser]
public class StepBenchmark
{
    private LstmWeights _weights = null!;
    private readonly float[] _x = [0.3f], _y = new float[1];
    private float[] _h = [], _c = [];

    [Params(32, 64, 128)]
    public int Hidden { get; set; } = 64;

    [GlobalSetup]
    public void Setup()
    {
        _weights = LstmWeights.From(LstmParameters.InitializeUniform(new LstmConfig(1, Hidden, 1, 1), 1));
        _h = new float[Hidden];
        _c = new float[Hidden];
    }

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

/// <summary>
/// The trainer's batch step through <see cref="BatchEngine"/> (B = 32 windows of T = 64, D = 1, H = 64, K = 1):
/// forward, MSE, backward and Adam with the batch split over <see cref="Threads"/> threads. Multi-threaded, so
/// wall time is the figure; sequences/s = 32 / time per step.
/// </summary>
[MemoryDiagnoser]
public class BatchTrainingBenchmark
{
    public const int Batch = 32, Steps = 64;
    private LstmParameters _parameters = null!;
    private BatchEngine _engine = null!;
    private AdamOptimizer _adam = null!;
    private Window[] _windows = [];
    private float[] _gradient = [];

    [Params(1, 2)]
    public int Threads { get; set; } = 1;

    [GlobalSetup]
    public void Setup()
    {
        var config = new LstmConfig(1, 64, 1, 1);
        var options = new TrainerOptions { WindowLength = Steps, BatchSize = Batch, Threads = Threads, Stride = 16 };
        var series = Enumerable.Range(0, 4096).Select(i => MathF.Sin(i * 0.05f) + 0.1f * MathF.Sin(i * 0.71f)).ToArray();
        var data = Dataset.Create(config, [series], options);
        _windows = data.TrainWindows.Take(Batch).ToArray();
        _parameters = LstmParameters.InitializeUniform(config, 1);
        _engine = new BatchEngine(config, options, data);
        _adam = new AdamOptimizer(_parameters.Count);
        _gradient = new float[_parameters.Count];
    }

    [Benchmark]
    public float TrainingStep()
    {
        var (sse, count) = _engine.ForwardBackward(_parameters, _windows, _gradient);
        _adam.Step(_parameters.Data, _gradient);
        return (float)(sse / count);
    }
}
