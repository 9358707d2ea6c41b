using LstmOrleans.Persistence.GroupCommit;
using LstmOrleans.Persistence.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Providers;

namespace Orleans.Hosting;

/// <summary>Registers the SQLite grain storage provider, the way Orleans' own providers register.</summary>
public static class SqliteGrainStorageExtensions
{
    /// <summary>Uses SQLite as the default grain storage.</summary>
    public static ISiloBuilder AddSqliteGrainStorageAsDefault(this ISiloBuilder builder, Action<SqliteGrainStorageOptions> configureOptions) =>
        builder.AddSqliteGrainStorage(ProviderConstants.DEFAULT_STORAGE_PROVIDER_NAME, configureOptions);

    /// <summary>Adds a SQLite grain storage provider named <paramref name="name"/>.</summary>
    public static ISiloBuilder AddSqliteGrainStorage(this ISiloBuilder builder, string name, Action<SqliteGrainStorageOptions> configureOptions) =>
        builder.ConfigureServices(services => services.AddSqliteGrainStorage(name, ob => ob.Configure(configureOptions)));

    /// <summary>Adds a SQLite grain storage provider named <paramref name="name"/>, configured through an options builder.</summary>
    public static ISiloBuilder AddSqliteGrainStorage(this ISiloBuilder builder, string name, Action<OptionsBuilder<SqliteGrainStorageOptions>>? configureOptions = null) =>
        builder.ConfigureServices(services => services.AddSqliteGrainStorage(name, configureOptions));

    /// <summary>Adds a SQLite grain storage provider named <paramref name="name"/>.</summary>
    public static IServiceCollection AddSqliteGrainStorage(this IServiceCollection services, string name, Action<OptionsBuilder<SqliteGrainStorageOptions>>? configureOptions = null) =>
        services.AddGroupCommitGrainStorage<SqliteGrainStorageOptions, SqliteGrainStorage>(
            name, configureOptions, static (options, providerName) => new SqliteGrainStorageOptionsValidator(options, providerName));
}
