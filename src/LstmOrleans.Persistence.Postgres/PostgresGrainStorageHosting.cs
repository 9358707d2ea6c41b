using LstmOrleans.Persistence.GroupCommit;
using LstmOrleans.Persistence.Postgres;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Providers;

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
    public static IServiceCollection AddPostgresGrainStorage(this IServiceCollection services, string name, Action<OptionsBuilder<PostgresGrainStorageOptions>>? configureOptions = null) =>
        services.AddGroupCommitGrainStorage<PostgresGrainStorageOptions, PostgresGrainStorage>(
            name, configureOptions, static (options, providerName) => new PostgresGrainStorageOptionsValidator(options, providerName));
}
