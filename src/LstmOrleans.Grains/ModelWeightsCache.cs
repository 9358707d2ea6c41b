using System.Collections.Concurrent;
using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LstmOrleans.Grains;

/// <summary>An immutable snapshot of a model's active weights as held by one silo.</summary>
public sealed record CachedModel(string Name, long Version, long Epoch, ModelConfig Config, LstmWeights Weights)
{
    /// <summary>The model's calendar features in input order (parsed once per snapshot, not per step).</summary>
    public LstmOrleans.Lstm.Serialization.CalendarFeature[] Calendar { get; } = ModelInputs.CalendarFeatures(Config);
}

/// <summary>
/// Per-silo cache of each model's active weights, shared by every stream grain on the silo so that a step never
/// calls another grain. Filled on first use from the model grain; kept current by pushes from the model grain
/// (this cache registers an <see cref="IModelWeightsObserver"/> with each model it holds) and by a periodic refresh
/// that renews those registrations and compares activation epochs, so a silo that missed a push catches up.
/// </summary>
public sealed partial class ModelWeightsCache : IModelWeightsObserver, ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private readonly IGrainFactory _grainFactory;
    private readonly ModelWeightsCacheOptions _options;
    private readonly ILogger<ModelWeightsCache> _logger;
    private readonly ConcurrentDictionary<string, CachedModel> _models = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<Task<CachedModel>>> _loading = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _observerLock = new();
    private IModelWeightsObserver? _observerReference;
    private Task _refreshLoop = Task.CompletedTask;
    private int _disposed;

    public ModelWeightsCache(IGrainFactory grainFactory, IOptions<ModelWeightsCacheOptions> options, ILogger<ModelWeightsCache> logger)
    {
        _grainFactory = grainFactory;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>Valid pushes received from model grains (for diagnostics and tests).</summary>
    public long PushesReceived => Interlocked.Read(ref _pushesReceived);
    private long _pushesReceived;

    /// <summary>Test seam: while set, the periodic refresh skips its work (to simulate a silo that misses pushes).</summary>
    internal volatile bool RefreshPaused;

    /// <summary>The cached snapshot of <paramref name="modelName"/>, if this silo holds one.</summary>
    public bool TryGet(string modelName, out CachedModel model) => _models.TryGetValue(modelName, out model!);

    /// <summary>
    /// The active weights of <paramref name="modelName"/>; completes synchronously when cached. On a miss, fetches them
    /// from the model grain (throws <see cref="ModelNotFoundException"/> for an unknown model) and registers for pushes.
    /// </summary>
    public ValueTask<CachedModel> GetAsync(string modelName)
    {
        if (_models.TryGetValue(modelName, out var cached)) return ValueTask.FromResult(cached);
        return new ValueTask<CachedModel>(LoadAsync(modelName));
    }

    private async Task<CachedModel> LoadAsync(string modelName)
    {
        var lazy = _loading.GetOrAdd(modelName, name => new Lazy<Task<CachedModel>>(() => FetchAndSubscribeAsync(name)));
        try
        {
            return await lazy.Value;
        }
        finally
        {
            _loading.TryRemove(new KeyValuePair<string, Lazy<Task<CachedModel>>>(modelName, lazy));
        }
    }

    private async Task<CachedModel> FetchAndSubscribeAsync(string modelName)
    {
        var grain = _grainFactory.GetGrain<IModelGrain>(modelName);
        var weights = await grain.GetActiveWeightsAsync();
        var snapshot = await InstallAsync(weights);
        try
        {
            var activation = await grain.SubscribeAsync(ObserverReference());
            if (activation.Epoch > snapshot.Epoch) snapshot = await InstallAsync(await grain.GetActiveWeightsAsync());
        }
        catch (Exception e) when (e is not ModelNotFoundException)
        {
            // Pushes will be missed until the next refresh registers again; the weights themselves are valid.
            LogSubscribeFailed(e, modelName);
        }
        return _models.TryGetValue(modelName, out var current) ? current : snapshot;
    }

    /// <summary>Push from a model grain: install the weights unless this silo already holds a newer activation.</summary>
    async Task IModelWeightsObserver.WeightsActivated(ModelWeights weights)
    {
        try
        {
            await InstallAsync(weights);
            Interlocked.Increment(ref _pushesReceived);
        }
        catch (Exception e)
        {
            LogPushRejected(e, weights.ModelName, weights.Version);
        }
    }

    /// <summary>Test seam: invoked (with the model's name) when a snapshot is built, on the thread that builds it.</summary>
    internal Action<string>? BuildProbe;

    /// <summary>Installs <paramref name="weights"/> if its epoch is newer than what is held; returns what is held afterwards.</summary>
    private async Task<CachedModel> InstallAsync(ModelWeights weights)
    {
        // An activation this silo already holds, or an older one, needs no snapshot (a push and a refresh can both
        // deliver the same version).
        if (_models.TryGetValue(weights.ModelName, out var held) && weights.Epoch <= held.Epoch) return held;
        // Copying up to 2^24 floats (twice) and packing them for the kernel runs on the thread pool: the first load of
        // a model usually happens inside a stream grain's turn, which would otherwise be blocked for all of it.
        // Installation itself is the epoch comparison below, atomic per model, so snapshots finishing out of order
        // still leave the newest activation installed.
        var built = await Task.Run(() => Build(weights));
        var result = _models.AddOrUpdate(weights.ModelName, built, (_, existing) => weights.Epoch > existing.Epoch ? built : existing);
        if (ReferenceEquals(result, built)) LogInstalled(weights.ModelName, weights.Version, weights.Epoch);
        return result;
    }

    private CachedModel Build(ModelWeights weights)
    {
        BuildProbe?.Invoke(weights.ModelName);
        var config = ModelGrain.ToLstmConfig(weights.Config).Validate();
        var parameters = new LstmParameters(config);
        if (weights.Parameters.Length != parameters.Count)
            throw new InvalidOperationException($"Model '{weights.ModelName}' version {weights.Version} has {weights.Parameters.Length} parameters, expected {parameters.Count}.");
        weights.Parameters.AsSpan().CopyTo(parameters.Data);
        return new CachedModel(weights.ModelName, weights.Version, weights.Epoch, weights.Config, LstmWeights.From(parameters));
    }

    /// <summary>Renews observer registrations and catches up on any activation this silo missed.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken = default)
    {
        foreach (var (name, held) in _models.ToArray())
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                var grain = _grainFactory.GetGrain<IModelGrain>(name);
                var activation = await grain.SubscribeAsync(ObserverReference());
                if (activation.Epoch > held.Epoch)
                {
                    await InstallAsync(await grain.GetActiveWeightsAsync());
                    LogCaughtUp(name, activation.Version);
                }
            }
            catch (ModelNotFoundException)
            {
                _models.TryRemove(new KeyValuePair<string, CachedModel>(name, held));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogRefreshFailed(e, name);
            }
        }
    }

    internal IModelWeightsObserver ObserverReference()
    {
        lock (_observerLock)
            return _observerReference ??= _grainFactory.CreateObjectReference<IModelWeightsObserver>(this);
    }

    void ILifecycleParticipant<ISiloLifecycle>.Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(ModelWeightsCache), ServiceLifecycleStage.Active, StartAsync, StopAsync);

    private Task StartAsync(CancellationToken cancellationToken)
    {
        // Create the observer reference here, outside any grain activation: Orleans refuses to create a local
        // object reference from inside a grain turn, and the first model load usually happens in a stream
        // grain's turn.
        ObserverReference();
        _refreshLoop = Task.Run(RefreshLoopAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _disposed) == 0) _stopping.Cancel();
        try { await _refreshLoop.WaitAsync(cancellationToken); }
        catch (OperationCanceledException) { }
    }

    private async Task RefreshLoopAsync()
    {
        using var timer = new PeriodicTimer(_options.RefreshInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
                if (!RefreshPaused) await RefreshAsync(_stopping.Token);
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>Idempotent: the container disposes this once per registration (as itself and as a lifecycle participant).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _stopping.Cancel();
        lock (_observerLock)
        {
            if (_observerReference is not null)
            {
                try { _grainFactory.DeleteObjectReference<IModelWeightsObserver>(_observerReference); } catch (Exception) { }
                _observerReference = null;
            }
        }
        _stopping.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Installed model {Model} version {Version} (epoch {Epoch}) in the silo cache")]
    private partial void LogInstalled(string model, long version, long epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo cache caught up on model {Model}: version {Version}")]
    private partial void LogCaughtUp(string model, long version);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not register the silo cache for pushes of model {Model}")]
    private partial void LogSubscribeFailed(Exception exception, string model);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refreshing model {Model} in the silo cache failed")]
    private partial void LogRefreshFailed(Exception exception, string model);

    [LoggerMessage(Level = LogLevel.Error, Message = "Rejected a pushed version {Version} of model {Model}")]
    private partial void LogPushRejected(Exception exception, string model, long version);
}
