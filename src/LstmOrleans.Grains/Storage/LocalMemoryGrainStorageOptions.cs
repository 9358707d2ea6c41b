using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Grains.Storage;

/// <summary>Options of <see cref="LocalMemoryGrainStorage"/>.</summary>
public sealed class LocalMemoryGrainStorageOptions : IStorageProviderSerializerOptions
{
    /// <summary>State serializer. When left null the Orleans binary serializer (<see cref="OrleansGrainStorageSerializer"/>) is used.</summary>
    public IGrainStorageSerializer GrainStorageSerializer { get; set; } = null!;
}

/// <summary>Rejects an unusable <see cref="LocalMemoryGrainStorageOptions"/> at silo start, naming the provider.</summary>
public sealed class LocalMemoryGrainStorageOptionsValidator(LocalMemoryGrainStorageOptions options, string name) : IConfigurationValidator
{
    public void ValidateConfiguration()
    {
        if (options.GrainStorageSerializer is null)
            throw new OrleansConfigurationException(
                $"Invalid configuration for local memory grain storage '{name}': {nameof(LocalMemoryGrainStorageOptions)}.{nameof(options.GrainStorageSerializer)} is required.");
    }
}
