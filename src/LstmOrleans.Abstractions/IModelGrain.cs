using Orleans.Concurrency;

namespace LstmOrleans.Abstractions;

/// <summary>
/// A named model (key = model name): its configuration and its versions of shared weights. Every silo caches the
/// active version locally; the model grain pushes new versions to the caches through <see cref="IModelWeightsObserver"/>.
/// Every call except <see cref="CreateAsync"/> throws <see cref="ModelNotFoundException"/> until the model is created.
/// </summary>
[Alias("lstm.IModelGrain")]
public interface IModelGrain : IGrainWithStringKey
{
    /// <summary>
    /// Creates the model and publishes version 1 with initial weights drawn from <see cref="ModelConfig.Seed"/>.
    /// Idempotent when called again with an equal config; a different config throws <see cref="ModelOperationException"/>,
    /// as does an invalid one (a dimension out of range, more than 2^24 parameters in all, an empty feature name...).
    /// </summary>
    [Alias("Create")]
    Task<ModelInfo> CreateAsync(ModelConfig config);

    [Alias("GetInfo")]
    Task<ModelInfo> GetInfoAsync();

    /// <summary>
    /// Stores a new version (parameter count must match the config, all finite and within the magnitudes under which no
    /// stream's step can overflow float, see ModelParameterBounds in LstmOrleans.Grains); returns its number. Throws
    /// <see cref="ModelOperationException"/> and stores nothing when the parameters are refused (the message names the
    /// first offending tensor, index and value), when <see cref="PublishRequest.ExpectedActiveVersion"/> is not the
    /// active version, when an inactive version could not be retained (the model keeps only one), or when
    /// <see cref="PublishRequest.TrainingRound"/> is not a round id (not positive) or names a round that was closed
    /// (<see cref="CloseRoundAsync"/>).
    /// </summary>
    [Alias("Publish")]
    Task<long> PublishAsync(PublishRequest request);

    /// <summary>Makes a retained version the active one (rollback or roll forward) and pushes it to every silo.</summary>
    [Alias("Activate")]
    Task<ModelInfo> ActivateAsync(long version);

    [Alias("GetActiveWeights")]
    Task<ModelWeights> GetActiveWeightsAsync();

    [Alias("GetWeights")]
    Task<ModelWeights> GetWeightsAsync(long version);

    /// <summary>Retained versions, oldest first.</summary>
    [Alias("ListVersions")]
    Task<ModelVersionInfo[]> ListVersionsAsync();

    /// <summary>
    /// What training round <paramref name="roundId"/> published, even when its version has been pruned since; null when
    /// it is not the latest round that published (the model keeps only that one: a training grain runs one round at a
    /// time and starts the next only after recording the last, so the latest is the only one it can still need).
    /// </summary>
    [Alias("GetRoundPublication")]
    Task<RoundPublication?> GetRoundPublicationAsync(long roundId);

    /// <summary>
    /// Settles whether training round <paramref name="roundId"/> published, for good: what it published, as
    /// <see cref="GetRoundPublicationAsync"/> says; when it published nothing, null, and from then on a publish naming it
    /// (or an earlier round) is refused. For the training grain when it records a round it cannot ask (its activation
    /// died, or the publish call failed): a publish still on its way would otherwise be applied after the round was
    /// recorded as having published nothing. Throws <see cref="ModelOperationException"/> when the id is not positive.
    /// </summary>
    [Alias("CloseRound")]
    Task<RoundPublication?> CloseRoundAsync(long roundId);

    /// <summary>
    /// Registers (or refreshes) a silo cache's observer; registrations expire unless renewed. Returns the active
    /// version and epoch so a cache that missed a push can catch up.
    /// </summary>
    [Alias("Subscribe")]
    Task<ModelActivation> SubscribeAsync(IModelWeightsObserver observer);

    [Alias("Unsubscribe")]
    Task UnsubscribeAsync(IModelWeightsObserver observer);
}

/// <summary>Receives a model's newly active weights (one observer per silo cache).</summary>
[Alias("lstm.IModelWeightsObserver")]
public interface IModelWeightsObserver : IGrainObserver
{
    /// <summary>One-way, so a slow or dead silo never holds up a publish.</summary>
    [OneWay, Alias("WeightsActivated")]
    Task WeightsActivated(ModelWeights weights);
}
