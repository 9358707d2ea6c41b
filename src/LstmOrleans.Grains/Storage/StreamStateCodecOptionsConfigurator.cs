using LstmOrleans.Persistence.GroupCommit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Serialization;
using Orleans.Storage;

namespace LstmOrleans.Grains.Storage;

/// <summary>
/// Wraps the state serializer of the storage provider named <paramref name="name"/> in a <see cref="StreamStateCodecSerializer"/>.
/// Runs after the provider's own defaulting when registered after the provider; if no serializer is set yet, the inner one
/// is Orleans' binary format (<see cref="CompactOrleansGrainStorageSerializer"/>), the providers' default here.
/// </summary>
internal sealed class StreamStateCodecOptionsConfigurator<TOptions>(string name, IServiceProvider services) : IPostConfigureOptions<TOptions>
    where TOptions : class, IStorageProviderSerializerOptions
{
    public void PostConfigure(string? optionsName, TOptions options)
    {
        if (!string.Equals(optionsName, name, StringComparison.Ordinal)) return;
        var inner = options.GrainStorageSerializer ?? new CompactOrleansGrainStorageSerializer(services.GetRequiredService<Serializer>());
        if (inner is not StreamStateCodecSerializer) options.GrainStorageSerializer = new StreamStateCodecSerializer(inner);
    }
}
