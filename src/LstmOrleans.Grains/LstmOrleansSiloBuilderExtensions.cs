using LstmOrleans.Grains;
using LstmOrleans.Grains.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Serialization;
using Orleans.Storage;

namespace Orleans.Hosting;

/// <summary>Registers what the LstmOrleans grains need on a silo.</summary>
public static class LstmOrleansSiloBuilderExtensions
{
    /// <summary>
    /// Adds the per-silo <see cref="ModelWeightsCache"/> and the grains' options. The silo still has to provide a grain
    /// storage named <c>LstmOrleansNames.StorageName</c> ("lstm") and, for the Orleans streams ingestion path, a
    /// stream provider named <c>LstmOrleansNames.StreamProviderName</c> ("sensors") plus its "PubSubStore".
    /// </summary>
    public static ISiloBuilder AddLstmOrleans(
        this ISiloBuilder builder,
        Action<StreamGrainOptions>? configureStreams = null,
        Action<ModelGrainOptions>? configureModels = null,
        Action<ModelWeightsCacheOptions>? configureCache = null)
    {
        builder.Services.AddLstmOrleans(configureStreams, configureModels, configureCache);
        return builder;
    }

    /// <inheritdoc cref="AddLstmOrleans(ISiloBuilder, Action{StreamGrainOptions}?, Action{ModelGrainOptions}?, Action{ModelWeightsCacheOptions}?)"/>
    public static IServiceCollection AddLstmOrleans(
        this IServiceCollection services,
        Action<StreamGrainOptions>? configureStreams = null,
        Action<ModelGrainOptions>? configureModels = null,
        Action<ModelWeightsCacheOptions>? configureCache = null)
    {
        var streams = services.AddOptions<StreamGrainOptions>().ValidateOnStart();
        if (configureStreams is not null) streams.Configure(configureStreams);
        var models = services.AddOptions<ModelGrainOptions>().ValidateOnStart();
        if (configureModels is not null) models.Configure(configureModels);
        var cache = services.AddOptions<ModelWeightsCacheOptions>().ValidateOnStart();
        if (configureCache is not null) cache.Configure(configureCache);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StreamGrainOptions>, StreamGrainOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ModelGrainOptions>, ModelGrainOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ModelWeightsCacheOptions>, ModelWeightsCacheOptionsValidator>());
        services.Configure<ExceptionSerializationOptions>(o => o.SupportedNamespacePrefixes.UnionWith(ExceptionNamespaces));

        if (services.Any(d => d.ServiceType == typeof(ModelWeightsCache))) return services;
        services.AddSingleton<ModelWeightsCache>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ModelWeightsCache>());
        return services;
    }

    /// <summary>
    /// Namespaces of exceptions a grain call can end in besides Orleans' defaults (Microsoft, System, Azure): ours (a
    /// storage commit of unknown outcome) and the cluster stores' clients (a Redis timeout, a PostgreSQL error). Orleans
    /// serializes an exception of another namespace that has no generated codec not at all: the caller got a
    /// CodecNotFoundException instead of the error. A caller without the type's assembly gets Orleans' fallback
    /// exception, with the type's name and message.
    /// </summary>
    internal static readonly string[] ExceptionNamespaces = ["LstmOrleans", "Npgsql", "StackExchange.Redis"];

    /// <summary>
    /// Makes the grain storage provider <paramref name="name"/> (options type <typeparamref name="TOptions"/>) write the
    /// stream records with the compact <see cref="StreamStateCodec"/>, delegating every other type to the serializer it
    /// has (or Orleans' binary format when none is set). Records written before stay readable. Call it after adding
    /// the provider, e.g. <c>silo.AddSqliteGrainStorage("lstm", ...).AddStreamStateCodec&lt;SqliteGrainStorageOptions&gt;("lstm")</c>.
    /// </summary>
    public static ISiloBuilder AddStreamStateCodec<TOptions>(this ISiloBuilder builder, string name)
        where TOptions : class, IStorageProviderSerializerOptions
    {
        builder.Services.AddStreamStateCodec<TOptions>(name);
        return builder;
    }

    /// <inheritdoc cref="AddStreamStateCodec{TOptions}(ISiloBuilder, string)"/>
    public static IServiceCollection AddStreamStateCodec<TOptions>(this IServiceCollection services, string name)
        where TOptions : class, IStorageProviderSerializerOptions
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        services.AddSingleton<IPostConfigureOptions<TOptions>>(sp => new StreamStateCodecOptionsConfigurator<TOptions>(name, sp));
        return services;
    }
}
