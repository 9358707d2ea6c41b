using LstmOrleans.Persistence.GroupCommit;
using LstmOrleans.Persistence.Postgres;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Providers;
using Orleans.Runtime;
using Orleans.Runtime.Hosting;

namespace Orleans.Hosting;

/// <summary>Registers the PostgreSQL grain storage provider, the way Orleans' own providers register.</summary>
public static class PostgresGrainStorageExtensions
{
    /// <summary>Uses PostgreSQL as the default grain storage.</summary>
    public static ISiloBuilder AddPostgresGrainStorageAsDefault(this ISiloBuilder builder, Action<PostgresGrainStorageOptions> configureOptions) =>
        builder.AddPostgresGrainStorage(ProviderConstants.DEFAULT_STORAGE_PROVIDER_NAME, configureOptions);

    /// <summary>Adds a PostgreSQL grain storage provider named <paramref name="name"/>.</summary>
    public static ISiloBuilder AddPostgresGrainStorage(this ISiloBuilder builder, string name, Action<PostgresGrainStorageOptions> configureOptions) =>
        builder.ConfigureServices(services => services.AddPostgresGrainStorage(name, ob => ob.Configure(configureOptions)));

    /// <summary>Adds a PostgreSQL grain storage provider named <paramref name="name"/>, configured through an options builder.</summary>
    public static ISiloBuilder AddPostgresGrainStorage(this ISiloBuilder builder, string name, Action<OptionsBuilder<PostgresGrainStorageOptions>>? configureOptions = null) =>
        builder.ConfigureServices(services => services.AddPostgresGrainStorage(name, configureOptions));

    /// <summary>Adds a PostgreSQL grain storage provider named <paramref name="name"/>.</summary>
    public static IServiceCollection AddPostgresGrainStorage(this IServiceCollection services, string name, Action<OptionsBuilder<PostgresGrainStorageOptions>>? configureOptions = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        configureOptions?.Invoke(services.AddOptions<PostgresGrainStorageOptions>(name));
        services.AddTransient<IConfigurationValidator>(sp =>
            new PostgresGrainStorageOptionsValidator(sp.GetRequiredService<IOptionsMonitor<PostgresGrainStorageOptions>>().Get(name), name));
        services.TryAddEnumerable(ServiceDescriptor.Transient<IPostConfigureOptions<PostgresGrainStorageOptions>, BinarySerializerDefault<PostgresGrainStorageOptions>>());
        services.ConfigureNamedOptionForLogging<PostgresGrainStorageOptions>(name);
        return services.AddGrainStorage(name, static (sp, providerName) =>
            ActivatorUtilities.CreateInstance<PostgresGrainStorage>(sp, providerName, sp.GetRequiredService<IOptionsMonitor<PostgresGrainStorageOptions>>().Get(providerName)));
    }
}
