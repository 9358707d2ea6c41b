using LstmOrleans.Grains.Storage;
using LstmOrleans.Persistence.GroupCommit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.Storage;

namespace Orleans.Hosting;

/// <summary>Registers <see cref="LocalMemoryGrainStorage"/>, the way Orleans' own providers register.</summary>
public static class LocalMemoryGrainStorageExtensions
{
    /// <summary>Adds a process-local in-memory grain storage named <paramref name="name"/> (no grain hop; not durable).</summary>
    public static ISiloBuilder AddLocalMemoryGrainStorage(this ISiloBuilder builder, string name, Action<LocalMemoryGrainStorageOptions>? configureOptions = null) =>
        builder.ConfigureServices(services => services.AddLocalMemoryGrainStorage(name, configureOptions));

    /// <inheritdoc cref="AddLocalMemoryGrainStorage(ISiloBuilder, string, Action{LocalMemoryGrainStorageOptions}?)"/>
    public static IServiceCollection AddLocalMemoryGrainStorage(this IServiceCollection services, string name, Action<LocalMemoryGrainStorageOptions>? configureOptions = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var options = services.AddOptions<LocalMemoryGrainStorageOptions>(name);
        if (configureOptions is not null) options.Configure(configureOptions);
        services.TryAddEnumerable(ServiceDescriptor.Transient<IPostConfigureOptions<LocalMemoryGrainStorageOptions>, BinarySerializerDefault>());
        services.AddTransient<IConfigurationValidator>(sp =>
            new LocalMemoryGrainStorageOptionsValidator(sp.GetRequiredService<IOptionsMonitor<LocalMemoryGrainStorageOptions>>().Get(name), name));
        return services.AddGrainStorage(name, static (sp, providerName) =>
            new LocalMemoryGrainStorage(providerName, sp.GetRequiredService<IOptionsMonitor<LocalMemoryGrainStorageOptions>>().Get(providerName),
                sp.GetRequiredService<ILogger<LocalMemoryGrainStorage>>()));
    }

    /// <summary>Fills in Orleans' binary serializer when none was configured.</summary>
    private sealed class BinarySerializerDefault(IServiceProvider services) : IPostConfigureOptions<LocalMemoryGrainStorageOptions>
    {
        public void PostConfigure(string? name, LocalMemoryGrainStorageOptions options) =>
            options.GrainStorageSerializer ??= new CompactOrleansGrainStorageSerializer(services.GetRequiredService<Serializer>());
    }
}
