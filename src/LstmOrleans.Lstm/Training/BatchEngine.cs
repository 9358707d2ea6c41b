using System.Numerics.Tensors;
using System.Runtime.ExceptionServices;

namespace LstmOrleans.Lstm.Training;

/// <summary>
/// Data-parallel forward/backward over a batch of windows: the batch is cut into one contiguous shard per
/// thread (the cut depends only on the batch size and the thread count), every shard runs on its own
/// <see cref="LstmBptt"/> with its own gradient buffer, and the shard gradients are summed in shard order, so
/// results are identical from run to run for a given thread count. All buffers are sized once.
/// Shards are handed out through <see cref="ShardDispatch"/>: the calling thread and up to Threads − 1 reusable
/// thread-pool work items claim shard indices, so a batch allocates nothing (Parallel.For allocated ~1.5 KB per
/// batch) and no thread outlives the engine. Which thread runs a shard never changes its result.
/// </summary>
internal sealed class BatchEngine
{
    private readonly LstmConfig _config;
    private readonly TrainerOptions _options;
    private readonly Dataset _data;
    private readonly Worker[] _workers;
    private readonly Window[] _batch;          // [BatchSize] the windows of the batch being run
    private readonly ShardDispatch _dispatch;
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
        _dispatch = new ShardDispatch(this, threads);
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
        try
        {
            if (shards == 1) RunShard(0);
            else _dispatch.Run(shards);
        }
        finally
        {
            _run = default;
        }
        return shards;
    }

    /// <summary>Runs shard s of the batch described by <see cref="_run"/>.</summary>
    private void RunShard(int s)
    {
        var (parameters, n, shards, backward) = _run;
        int baseSize = n / shards, extra = n % shards;
        int start = s * baseSize + Math.Min(s, extra);
        int size = baseSize + (s < extra ? 1 : 0);
        _workers[s].Run(parameters!, _data, _options, _batch.AsSpan(start, size), backward);
    }

    /// <summary>
    /// Runs shards 0..n−1 of one batch on the calling thread plus reusable thread-pool work items, allocation-free.
    /// Every participant claims the next unclaimed index with one compare-and-swap on <see cref="_state"/>
    /// (generation | next index | shard count), so a work item that starts late, even during a later batch, can only
    /// claim shards of the batch that is current at that moment, and never one twice. The caller claims shards too, so
    /// a batch finishes even if the pool never runs an item; it then waits only for shards already running elsewhere.
    /// </summary>
    private sealed class ShardDispatch
    {
        private readonly BatchEngine _engine;
        private readonly Helper[] _helpers;                            // [threads - 1] work items, queued at most once at a time
        private readonly ManualResetEventSlim _finished = new(false);  // set when the last shard of the batch completes
        private long _state;       // bits 32..63 generation, 16..31 next unclaimed shard, 0..15 shard count
        private int _remaining;    // shards of the current batch not yet completed
        private Exception? _failure;

        public ShardDispatch(BatchEngine engine, int threads)
        {
            _engine = engine;
            _helpers = new Helper[Math.Max(0, threads - 1)];
            for (int i = 0; i < _helpers.Length; i++) _helpers[i] = new Helper(this);
            _state = 0;   // generation 0, no shards: nothing to claim
        }

        public void Run(int shards)
        {
            if (shards > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(shards));
            _failure = null;
            _finished.Reset();
            Volatile.Write(ref _remaining, shards);
            long generation = (Volatile.Read(ref _state) >> 32) + 1;
            Volatile.Write(ref _state, (generation << 32) | (uint)shards);   // publishes the batch: next = 0
            for (int i = 0; i < Math.Min(_helpers.Length, shards - 1); i++) _helpers[i].QueueIfIdle();
            Participate();
            _finished.Wait();
            if (_failure is { } failure) ExceptionDispatchInfo.Capture(failure).Throw();
        }

        /// <summary>Claims and runs shards of the current batch until none is left unclaimed.</summary>
        private void Participate()
        {
            while (true)
            {
                long state = Volatile.Read(ref _state);
                int next = (int)((state >> 16) & 0xFFFF), shards = (int)(state & 0xFFFF);
                if (next >= shards) return;
                if (Interlocked.CompareExchange(ref _state, state + (1L << 16), state) != state) continue;
                try
                {
                    _engine.RunShard(next);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _failure, e, null);
                }
                if (Interlocked.Decrement(ref _remaining) == 0) _finished.Set();
            }
        }

        private sealed class Helper(ShardDispatch owner) : IThreadPoolWorkItem
        {
            private int _queued;   // 1 while queued or running: never two copies of one item in the pool

            public void QueueIfIdle()
            {
                if (Interlocked.CompareExchange(ref _queued, 1, 0) == 0) ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
            }

            public void Execute()
            {
                try
                {
                    owner.Participate();
                }
                finally
                {
                    Volatile.Write(ref _queued, 0);
                }
            }
        }
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
                        _targets[idx] = counts && options.Residual ? ResidualHead.Change(target, last) : target;
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
