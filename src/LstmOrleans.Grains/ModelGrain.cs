using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Utilities;

namespace LstmOrleans.Grains;

/// <summary>Durable state of a model grain.</summary>
[GenerateSerializer, Alias("lstm.ModelState")]
public sealed class ModelState
{
    [Id(0)] public ModelConfig? Config { get; set; }
    [Id(1)] public DateTimeOffset CreatedAt { get; set; }
    [Id(2)] public long ActiveVersion { get; set; }
    [Id(3)] public long LatestVersion { get; set; }
    /// <summary>Increases on every publish or activation; orders pushes to the silo caches.</summary>
    [Id(4)] public long Epoch { get; set; }
    /// <summary>Retained versions, oldest first.</summary>
    [Id(5)] public List<ModelVersionRecord> Versions { get; set; } = [];
    /// <summary>
    /// The latest training round's publish, stored with its version but not pruned with it (see
    /// <see cref="IModelGrain.GetRoundPublicationAsync"/>). Null until a round publishes, and in records written before
    /// it existed.
    /// </summary>
    [Id(6)] public ModelRoundPublication? LastRoundPublication { get; set; }

    /// <summary>
    /// Training rounds up to this id can no longer publish (<see cref="IModelGrain.CloseRoundAsync"/>): their training
    /// grain has settled their outcome from <see cref="LastRoundPublication"/>, and a publish of theirs arriving later
    /// (sent before the activation that ran the round died, or whose answer was lost) is refused, not applied behind an
    /// outcome already recorded as "published nothing". 0 until a round is closed.
    /// </summary>
    [Id(7)] public long ClosedRound { get; set; }

    /// <summary>
    /// A copy to change and commit (the stored state is never changed in place: a failed write restores it). Shallow:
    /// the version list and records are shared, and replaced, never changed, by whoever changes them.
    /// </summary>
    public ModelState Copy() => (ModelState)MemberwiseClone();
}

/// <summary>A training round's publish: its version and what the round attached to it (<see cref="ModelState.LastRoundPublication"/>).</summary>
[GenerateSerializer, Alias("lstm.ModelRoundPublication")]
public sealed class ModelRoundPublication
{
    [Id(0)] public long RoundId { get; set; }
    [Id(1)] public long Version { get; set; }
    [Id(2)] public DateTimeOffset PublishedAt { get; set; }
    [Id(3)] public Dictionary<string, string> Metadata { get; set; } = [];
}

/// <summary>One stored version.</summary>
[GenerateSerializer, Alias("lstm.ModelVersionRecord")]
public sealed class ModelVersionRecord
{
    [Id(0)] public long Version { get; set; }
    [Id(1)] public DateTimeOffset PublishedAt { get; set; }
    [Id(2)] public string? Description { get; set; }
    [Id(3)] public Dictionary<string, string> Metadata { get; set; } = [];
    /// <summary>[P] flat parameters in LstmParameters layout.</summary>
    [Id(4)] public float[] Parameters { get; set; } = [];
}

/// <summary>
/// A model's configuration and weight versions. Pushes every newly active version to the silo caches that
/// registered an observer (registrations expire unless renewed by the caches' refresh loop).
/// Kept alive (models are few) so the in-memory observer registrations are not lost to idle collection; after a
/// silo failure the caches' periodic refresh re-registers them.
/// </summary>
[KeepAlive]
public sealed partial class ModelGrain : Grain, IModelGrain
{
    private readonly IPersistentState<ModelState> _state;
    private readonly ModelGrainOptions _options;
    private readonly ILogger<ModelGrain> _logger;
    private readonly ObserverManager<IModelWeightsObserver> _observers;

    public ModelGrain(
        [PersistentState("model", LstmOrleansNames.StorageName)] IPersistentState<ModelState> state,
        IOptions<ModelGrainOptions> options,
        ILogger<ModelGrain> logger)
    {
        _state = state;
        _options = options.Value;
        _logger = logger;
        _observers = new ObserverManager<IModelWeightsObserver>(_options.ObserverExpiry, logger);
    }

    private string Name => this.GetPrimaryKeyString();

    /// <summary>
    /// Test seam: invoked (with the model's name) at the start of the CPU-heavy parameter work of a create or publish,
    /// on the thread that does it, so a test can see which scheduler that is.
    /// </summary>
    internal static Action<string>? ParameterWorkProbe;

    /// <summary>An existing model makes sure the catalog lists it (it may predate the catalog, or a crash may have
    /// come between its creation and its listing).</summary>
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (_state.State.Config is not null) await RegisterInCatalogAsync();
    }

    private Task RegisterInCatalogAsync() => GrainFactory.GetGrain<IModelCatalogGrain>(ModelCatalog.Key).AddAsync(Name);

    public async Task<ModelInfo> CreateAsync(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        // The HTTP API checks names itself, but the client's create-model and model import reach this grain directly:
        // they created models such as "a/b", listed by GET /models but which no /models/{name} route could address.
        if (_state.State.Config is null && LstmOrleansNames.ModelNameProblem(Name) is { } problem)
            throw new ModelOperationException(Name, problem);
        var normalized = Validate(Name, config);
        if (_state.State.Config is { } existing)
        {
            if (!SameConfig(existing, normalized))
                throw new ModelOperationException(Name, $"Model '{Name}' already exists with a different configuration.");
            await RegisterInCatalogAsync();
            return Info();
        }

        // Up to 2^24 random draws: on the thread pool, not in this turn (the grain is not reentrant, so nothing else
        // runs on it meanwhile and the state read below is the one this call started with).
        string name = Name;
        var parameters = await Task.Run(() =>
        {
            ParameterWorkProbe?.Invoke(name);
            var initial = LstmParameters.InitializeUniform(ToLstmConfig(normalized), normalized.Seed);
            if (normalized.Residual)
            {
                // A residual model starts as persistence (zero change), so the first refit only has to beat that.
                initial.HeadWeight.Clear();
                initial.HeadBias.Clear();
            }
            return initial;
        });
        var now = DateTimeOffset.UtcNow;
        var state = new ModelState
        {
            Config = normalized,
            CreatedAt = now,
            ActiveVersion = 1,
            LatestVersion = 1,
            Epoch = 1,
            Versions = [new ModelVersionRecord { Version = 1, PublishedAt = now, Description = $"initial weights (seed {normalized.Seed})", Parameters = parameters.Data }],
        };
        await CommitAsync(state);
        await RegisterInCatalogAsync();
        LogCreated(Name, normalized.InputSize, normalized.HiddenSize, normalized.Layers, normalized.Horizons);
        return Info();
    }

    public Task<ModelInfo> GetInfoAsync()
    {
        RequireCreated();
        return Task.FromResult(Info());
    }

    public async Task<long> PublishAsync(PublishRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var config = RequireCreated();
        long expected = LstmParameters.CountFor(ToLstmConfig(config));
        if (request.Parameters is null || request.Parameters.Length != expected)
            throw new ModelOperationException(Name, $"Model '{Name}' expects {expected} parameters, got {request.Parameters?.Length ?? 0}.");
        // The copy (the request is immutable, so a local caller's array is not copied for us) and its check scan up to
        // 2^24 floats: both run on the thread pool. The grain is not reentrant, so no other call (publish, activation)
        // runs while this one awaits them: publishes apply in arrival order, and ExpectedActiveVersion and the retention
        // below see the state as it is when this publish applies. The copy is what is checked, so a caller that
        // changes its array meanwhile cannot slip unchecked values in.
        var source = request.Parameters;
        string name = Name;
        var (parameters, problem) = await Task.Run(() =>
        {
            ParameterWorkProbe?.Invoke(name);
            var copy = (float[])source.Clone();
            return (copy, ModelParameterBounds.Check(config, copy));
        });
        if (problem is not null)
            throw new ModelOperationException(Name, $"Parameters for model '{Name}' are refused and nothing was published: {problem}.");
        if (request.Metadata?.FirstOrDefault(kv => kv.Value is null) is { Key: { } emptyKey })
            throw new ModelOperationException(Name, $"Metadata entry '{emptyKey}' for model '{Name}' has no value.");
        if (request.TrainingRound is <= 0)
            throw new ModelOperationException(Name, $"Training round {request.TrainingRound} for model '{Name}' is not a round id (ids start at 1); nothing was published.");

        // Pruning keeps the active version first: with room for one version, an inactive one would be dropped by its
        // own publish, which would still report a version number that no call can use.
        if (!request.Activate && _options.MaxRetainedVersions < 2)
            throw new ModelOperationException(Name,
                $"Model '{Name}' keeps only its active version (MaxRetainedVersions is 1); publish with activation, or retain more versions.");

        var current = _state.State;
        if (request.TrainingRound is { } closing && closing <= current.ClosedRound)
            throw new ModelOperationException(Name,
                $"Training round {closing} of model '{Name}' was closed (recorded as having published nothing) before its publish arrived; nothing was published.");
        if (request.ExpectedActiveVersion is { } expectedActive && current.ActiveVersion != expectedActive)
            throw new ModelOperationException(Name,
                $"Model '{Name}' has active version {current.ActiveVersion}, not {expectedActive} as the publish expected; nothing was published.");
        long version = current.LatestVersion + 1;
        var published = new ModelVersionRecord
        {
            Version = version,
            PublishedAt = DateTimeOffset.UtcNow,
            Description = request.Description,
            Metadata = request.Metadata is null ? [] : new Dictionary<string, string>(request.Metadata),
            Parameters = parameters,
        };
        var versions = new List<ModelVersionRecord>(current.Versions) { published };
        long active = request.Activate ? version : current.ActiveVersion;
        Prune(versions, active);
        var next = current.Copy();
        next.ActiveVersion = active;
        next.LatestVersion = version;
        if (request.Activate) next.Epoch++;
        next.Versions = versions;
        // In the same write as the version, and kept apart from it so pruning does not drop it: the round's training
        // grain records its outcome only after this publish, so when it dies in between (or the publish's answer is
        // lost), this is what says the round published, whatever happened to the version since.
        if (request.TrainingRound is { } round)
            next.LastRoundPublication = new ModelRoundPublication { RoundId = round, Version = version, PublishedAt = published.PublishedAt, Metadata = new Dictionary<string, string>(published.Metadata) };
        await CommitAsync(next);
        LogPublished(Name, version, request.Activate);
        if (request.Activate) await PushActiveAsync();
        return version;
    }

    public async Task<ModelInfo> ActivateAsync(long version)
    {
        RequireCreated();
        var current = _state.State;
        if (current.Versions.All(v => v.Version != version))
            throw new ModelOperationException(Name, $"Model '{Name}' has no retained version {version}.");
        if (current.ActiveVersion == version) return Info();
        var next = current.Copy();
        next.ActiveVersion = version;
        next.Epoch++;
        await CommitAsync(next);
        LogActivated(Name, version);
        await PushActiveAsync();
        return Info();
    }

    public Task<ModelWeights> GetActiveWeightsAsync()
    {
        RequireCreated();
        return Task.FromResult(Weights(_state.State.ActiveVersion));
    }

    public Task<ModelWeights> GetWeightsAsync(long version)
    {
        RequireCreated();
        if (_state.State.Versions.All(v => v.Version != version))
            throw new ModelOperationException(Name, $"Model '{Name}' has no retained version {version}.");
        return Task.FromResult(Weights(version));
    }

    public Task<ModelVersionInfo[]> ListVersionsAsync()
    {
        RequireCreated();
        return Task.FromResult(_state.State.Versions
            .Select(v => new ModelVersionInfo(v.Version, v.PublishedAt, v.Description, new Dictionary<string, string>(v.Metadata), v.Parameters.Length))
            .ToArray());
    }

    public Task<RoundPublication?> GetRoundPublicationAsync(long roundId)
    {
        RequireCreated();
        return Task.FromResult(RoundPublicationOf(roundId));
    }

    public async Task<RoundPublication?> CloseRoundAsync(long roundId)
    {
        RequireCreated();
        if (roundId <= 0)
            throw new ModelOperationException(Name, $"Training round {roundId} for model '{Name}' is not a round id (ids start at 1).");
        // The grain is not reentrant: the round's publish, if it comes at all, is applied either before this (and found
        // here) or after it (and refused), so the answer is final.
        if (RoundPublicationOf(roundId) is { } published) return published;
        var current = _state.State;
        if (current.ClosedRound < roundId)
        {
            var next = current.Copy();
            next.ClosedRound = roundId;
            await CommitAsync(next);
        }
        return null;
    }

    private RoundPublication? RoundPublicationOf(long roundId)
    {
        var s = _state.State;
        if (s.LastRoundPublication is not { } p || p.RoundId != roundId) return null;
        return new RoundPublication(p.RoundId, p.Version, p.PublishedAt, new Dictionary<string, string>(p.Metadata), s.Versions.Any(v => v.Version == p.Version));
    }

    public Task<ModelActivation> SubscribeAsync(IModelWeightsObserver observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        RequireCreated();
        _observers.Subscribe(observer, observer);
        return Task.FromResult(new ModelActivation(_state.State.ActiveVersion, _state.State.Epoch));
    }

    public Task UnsubscribeAsync(IModelWeightsObserver observer)
    {
        _observers.Unsubscribe(observer);
        return Task.CompletedTask;
    }

    private async Task PushActiveAsync()
    {
        var weights = Weights(_state.State.ActiveVersion);
        // Failed observers are dropped by the manager; their caches re-register and catch up on their next refresh.
        await _observers.Notify(o => o.WeightsActivated(weights));
    }

    private ModelWeights Weights(long version)
    {
        var s = _state.State;
        var record = s.Versions.First(v => v.Version == version);
        // The stored array is never mutated after it is written, so it can be handed out as immutable.
        return new ModelWeights(Name, version, s.Config!, record.Parameters, version == s.ActiveVersion ? s.Epoch : 0);
    }

    private ModelInfo Info()
    {
        var s = _state.State;
        var config = s.Config!;
        return new ModelInfo(Name, config, s.ActiveVersion, s.LatestVersion, s.Versions.Count, s.CreatedAt,
            (int)LstmParameters.CountFor(ToLstmConfig(config)));
    }

    private ModelConfig RequireCreated() => _state.State.Config ?? throw new ModelNotFoundException(Name);

    /// <summary>Writes <paramref name="next"/>; on failure the activation is dropped so state reloads from storage.</summary>
    private async Task CommitAsync(ModelState next)
    {
        var previous = _state.State;
        _state.State = next;
        try
        {
            await _state.WriteStateAsync();
        }
        catch
        {
            _state.State = previous;
            DeactivateOnIdle();
            throw;
        }
    }

    private void Prune(List<ModelVersionRecord> versions, long active)
    {
        while (versions.Count > _options.MaxRetainedVersions)
        {
            int oldest = versions.FindIndex(v => v.Version != active);
            versions.RemoveAt(oldest);
        }
    }

    /// <summary>
    /// Most parameters a model may have (2^24, 64 MB of floats). A version travels whole in one Orleans message (every
    /// silo cache fetches or is pushed the active one) and Orleans refuses message bodies over 100 MB by default, with a
    /// float[] costing about 5 bytes per element on the wire; the model's state holds up to
    /// <see cref="ModelGrainOptions.MaxRetainedVersions"/> of them. Each dimension alone is bounded by
    /// <see cref="LstmConfig.MaxDimension"/>, but their product is not: 16 layers of 4096 would not even fit an array.
    /// </summary>
    public const long MaxParameters = 1L << 24;

    /// <summary>
    /// Most horizons a model may forecast (K). Each of its streams keeps the forecasts of its last K steps, K x K
    /// floats, in the record it writes on every step: 4 MiB at 1024 (a week of 10-minute readings), 64 MiB at the
    /// engine's own limit of 4096, which no store writes per value.
    /// </summary>
    public const int MaxHorizons = 1024;

    /// <summary>The engine's shape: the LSTM input is the D values followed by the calendar features.</summary>
    internal static LstmConfig ToLstmConfig(ModelConfig c) => new(c.ModelInputSize, c.HiddenSize, c.Layers, c.Horizons);

    private static ModelConfig Validate(string name, ModelConfig config)
    {
        try
        {
            ToLstmConfig(config).Validate();
        }
        catch (ArgumentException e)
        {
            throw new ModelOperationException(name, $"Invalid configuration for model '{name}': {e.Message}");
        }
        if (config.Horizons > MaxHorizons)
            throw new ModelOperationException(name,
                $"Model '{name}' would forecast {config.Horizons} horizons, more than the {MaxHorizons} a model may have: each stream stores K x K pending forecasts with every step.");
        long parameters = LstmParameters.CountFor(ToLstmConfig(config));
        if (parameters > MaxParameters)
            throw new ModelOperationException(name,
                $"Model '{name}' would have {parameters} parameters, more than the {MaxParameters} a model may have; use a smaller hidden size or fewer layers.");
        var features = config.Features ?? [];
        if (features.Length != 0 && features.Length != config.InputSize)
            throw new ModelOperationException(name, $"Model '{name}' has {config.InputSize} inputs but {features.Length} feature names.");
        // As in a model file (ModelMetadata.Check), which export writes them to.
        if (features.Any(string.IsNullOrEmpty))
            throw new ModelOperationException(name, $"Model '{name}' has an empty feature name; name every feature or none.");
        if (config.TargetIndex < 0 || config.TargetIndex >= config.InputSize)
            throw new ModelOperationException(name, $"Target index {config.TargetIndex} is outside the {config.InputSize} inputs of model '{name}'.");
        if (!Enum.IsDefined(config.Normalization))
            throw new ModelOperationException(name, $"Unknown normalisation mode {(int)config.Normalization} for model '{name}'.");
        var calendar = config.CalendarFeatures ?? [];
        if (ModelInputs.CheckCalendarFeatures(calendar) is { } problem)
            throw new ModelOperationException(name, $"Invalid calendar features for model '{name}': {problem}");
        return config with { Features = features, CalendarFeatures = calendar };
    }

    private static bool SameConfig(ModelConfig a, ModelConfig b) =>
        a.InputSize == b.InputSize && a.HiddenSize == b.HiddenSize && a.Layers == b.Layers && a.Horizons == b.Horizons
        && a.TargetIndex == b.TargetIndex && a.Normalization == b.Normalization && a.Seed == b.Seed
        && a.Features.AsSpan().SequenceEqual(b.Features)
        && (a.CalendarFeatures ?? []).AsSpan().SequenceEqual(b.CalendarFeatures ?? []) && a.Residual == b.Residual;

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {Model} created: D={InputSize} H={HiddenSize} L={Layers} K={Horizons}")]
    private partial void LogCreated(string model, int inputSize, int hiddenSize, int layers, int horizons);

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {Model} published version {Version} (activated: {Activated})")]
    private partial void LogPublished(string model, long version, bool activated);

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {Model} activated version {Version}")]
    private partial void LogActivated(string model, long version);
}
