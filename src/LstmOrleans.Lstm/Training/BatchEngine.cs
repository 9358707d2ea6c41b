using System.Numerics.Tensors;

namespace LstmOrleans.Lstm.Training;

/// <summary>
/// Data-parallel forward/backward over a batch of windows: the batch is cut into one contiguous shard per
/// thread (the cut depends only on the batch size and the thread count), every shard runs on its own
/// <see cref="LstmBptt"/> with its own gradient buffer, and the shard gradients are summed in shard order, so
/// results are identical from run to run for a given thread count. All buffers are sized once.
/// </summary>
internal sealed class BatchEngine
{
    private readonly LstmConfig _config;
    private readonly TrainerOptions _options;
    private readonly Dataset _data;
    private readonly Worker[] _workers;
    private readonly Window[] _batch;          // [BatchSize] the windows of the batch being run
    private readonly ParallelOptions _parallel;
    private readonly Action<int> _runShard;    // RunShard, bound once
    private (LstmParameters? Parameters, int Count, int Shards, bool Backward) _run;   // the batch being run

    public BatchEngine(LstmConfig config, TrainerOptions options, Dataset data)
    {
        _config = config;
        _options = options;
        _data = data;
        int threads = Math.Min(options.Threads, options.BatchSize);
        int shardMax = (options.BatchSize + threads - 1) / threads;
        _workers = new Worker[threads];
        for (int w = 0; w < threads; w++) _workers[w] = new Worker(config, shardMax, options.WindowLength);
        _batch = new Window[options.BatchSize];
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = threads };
        _runShard = RunShard;
    }

    /// <summary>
    /// Runs the batch and writes the gradient of the batch MSE into <paramref name="gradient"/> [P].
    /// Returns the batch's sum of squared errors and the number of counted entries.
    /// </summary>
    public (double Sse, long Count) ForwardBackward(LstmParameters parameters, ReadOnlySpan<Window> batch, float[] gradient)
    {
        int shards = Run(parameters, batch, backward: true);
        double sse = 0;
        long count = 0;
        for (int s = 0; s < shards; s++) { sse += _workers[s].Sse; count += _workers[s].Count; }
        // Each shard produced the gradient of its SSE; the sum over shards, in shard order, over the total count
        // is the gradient of the batch mean.
        _workers[0].Gradient.CopyTo(gradient, 0);
        for (int s = 1; s < shards; s++) TensorPrimitives.Add(gradient, _workers[s].Gradient, gradient);
        if (count > 0) TensorPrimitives.Multiply(gradient, (float)(1.0 / count), gradient);
        return (sse, count);
    }

    /// <summary>Forward only over <paramref name="windows"/>: model MSE and persistence MSE on the counted entries.</summary>
    public EvaluationResult Evaluate(LstmParameters parameters, Window[] windows, CancellationToken ct)
    {
        double sse = 0, persistence = 0;
        long count = 0;
        for (int start = 0; start < windows.Length; start += _options.BatchSize)
        {
            ct.ThrowIfCancellationRequested();
            int n = Math.Min(_options.BatchSize, windows.Length - start);
            int shards = Run(parameters, windows.AsSpan(start, n), backward: false);
            for (int s = 0; s < shards; s++)
            {
                sse += _workers[s].Sse;
                persistence += _workers[s].PersistenceSse;
                count += _workers[s].Count;
            }
        }
        return count == 0
            ? new EvaluationResult(double.NaN, double.NaN, 0)
            : new EvaluationResult(sse / count, persistence / count, checked((int)count));
    }

    private int Run(LstmParameters parameters, ReadOnlySpan<Window> batch, bool backward)
    {
        batch.CopyTo(_batch);
        int n = batch.Length;
        int shards = Math.Min(_workers.Length, n);
        _run = (parameters, n, shards, backward);
        if (shards == 1) RunShard(0);
        else Parallel.For(0, shards, _parallel, _runShard);
        _run = default;
        return shards;
    }

    /// <summary>Runs shard s of the batch described by <see cref="_run"/>; a method, not a closure, so a step allocates nothing.</summary>
    private void RunShard(int s)
    {
        var (parameters, n, shards, backward) = _run;
        int baseSize = n / shards, extra = n % shards;
        int start = s * baseSize + Math.Min(s, extra);
        int size = baseSize + (s < extra ? 1 : 0);
        _workers[s].Run(parameters!, _data, _options, _batch.AsSpan(start, size), backward);
    }

    private sealed class Worker
    {
        private readonly LstmBptt _bptt;
        private readonly float[] _inputs;    // [B, T, D]
        private readonly float[] _targets;   // [B, T, K]
        private readonly float[] _mask;      // [B, T, K]

        public Worker(LstmConfig config, int maxBatch, int steps)
        {
            _bptt = new LstmBptt(config, maxBatch, steps);
            _inputs = new float[maxBatch * steps * config.InputSize];
            _targets = new float[maxBatch * steps * config.Horizons];
            _mask = new float[maxBatch * steps * config.Horizons];
            Gradient = new float[LstmParameters.CountFor(config)];
        }

        public float[] Gradient { get; }     // [P] gradient of this shard's SSE
        public double Sse { get; private set; }
        public double PersistenceSse { get; private set; }
        public long Count { get; private set; }

        public void Run(LstmParameters parameters, Dataset data, TrainerOptions options, ReadOnlySpan<Window> windows, bool backward)
        {
            var config = parameters.Config;
            int b = windows.Length, t = options.WindowLength, d = config.InputSize, k = config.Horizons, column = options.TargetColumn;
            double persistence = 0;
            for (int w = 0; w < b; w++)
            {
                var window = windows[w];
                float[] rows = data.Series[window.Series];
                rows.AsSpan(window.Start * d, t * d).CopyTo(_inputs.AsSpan(w * t * d, t * d));
                for (int step = 0; step < t; step++)
                {
                    int row = window.Start + step;
                    float last = rows[row * d + column];
                    for (int q = 0; q < k; q++)
                    {
                        int idx = (w * t + step) * k + q, targetRow = row + q + 1;
                        bool counts = step >= options.BurnIn && row >= window.ScoredFrom && targetRow < window.Limit;
                        float target = counts ? data.Target(window.Series, row, targetRow, column) : 0f;
                        // Residual: the head's output is the change from the current row, so its target is too
                        // (forecast - target = output - (target - last), the same error).
                        _targets[idx] = counts && options.Residual ? target - last : target;
                        _mask[idx] = counts ? 1f : 0f;
                        if (counts) persistence += ((double)last - target) * ((double)last - target);
                    }
                }
            }
            int entries = b * t * k;
            _bptt.Forward(parameters, b, _inputs.AsSpan(0, b * t * d), _targets.AsSpan(0, entries), _mask.AsSpan(0, entries));
            Sse = _bptt.Activations.SumSquaredError;
            Count = _bptt.Activations.Count;
            PersistenceSse = persistence;
            if (backward) _bptt.Backward(parameters, Gradient, lossScale: 1.0);
        }
    }
}
