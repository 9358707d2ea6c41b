using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Serialization;
using Orleans.Storage;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// Fills in Orleans' binary serializer when no state serializer was configured: compact, versioned,
/// and without the type names a JSON serializer would write into every row.
/// </summary>
internal sealed class BinarySerializerDefault<TOptions>(IServiceProvider services) : IPostConfigureOptions<TOptions>
    where TOptions : class, IStorageProviderSerializerOptions
{
    public void PostConfigure(string? name, TOptions options) =>
        options.GrainStorageSerializer ??= new CompactOrleansGrainStorageSerializer(services.GetRequiredService<Serializer>());
}
