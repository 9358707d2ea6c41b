using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Runtime.Hosting;
using Orleans.Storage;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>Registration and option checks shared by the group-commit providers' Add* methods and validators.</summary>
internal static partial class GroupCommitRegistration
{
    /// <summary>
    /// Registers a named provider the way Orleans' own providers do: named options, a validator run at silo
    /// start, Orleans' binary serializer as the default state format, options logged, and the storage itself.
    /// </summary>
    public static IServiceCollection AddGroupCommitGrainStorage<TOptions, TStorage>(
        this IServiceCollection services,
        string name,
        Action<OptionsBuilder<TOptions>>? configureOptions,
        Func<TOptions, string, IConfigurationValidator> createValidator)
        where TOptions : class, IStorageProviderSerializerOptions
        where TStorage : class, IGrainStorage
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        configureOptions?.Invoke(services.AddOptions<TOptions>(name));
        services.AddTransient(sp => createValidator(sp.GetRequiredService<IOptionsMonitor<TOptions>>().Get(name), name));
        services.TryAddEnumerable(ServiceDescriptor.Transient<IPostConfigureOptions<TOptions>, BinarySerializerDefault<TOptions>>());
        services.ConfigureNamedOptionForLogging<TOptions>(name);
        return services.AddGrainStorage(name, static (sp, providerName) =>
            ActivatorUtilities.CreateInstance<TStorage>(sp, providerName, sp.GetRequiredService<IOptionsMonitor<TOptions>>().Get(providerName)));
    }

    /// <summary>
    /// Checks the settings every group-commit provider has; throws an <see cref="OrleansConfigurationException"/>
    /// starting with <paramref name="prefix"/> (which names the provider and options type).
    /// </summary>
    public static void ValidateCommon(string prefix, IGroupCommitStorageOptions options, string registerMethod)
    {
        if (!TableNamePattern().IsMatch(options.TableName ?? string.Empty))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.TableName)} '{options.TableName}' must be a plain identifier (letters, digits, underscore; at most 63 characters, not starting with a digit).");
        }

        if (options.MaxBatchSize is < 1 or > 100_000)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.MaxBatchSize)} must be between 1 and 100000, was {options.MaxBatchSize}.");
        }

        if (options.MaxBatchDelay < TimeSpan.Zero || options.MaxBatchDelay > TimeSpan.FromSeconds(1))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.MaxBatchDelay)} must be between 0 and 1 s, was {options.MaxBatchDelay}.");
        }

        if (options.GrainStorageSerializer is null)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.GrainStorageSerializer)} is null; register the provider with {registerMethod} so the Orleans serializer is filled in.");
        }
    }

    /// <summary>A timeout setting must be positive and at most <paramref name="max"/>.</summary>
    public static void ValidateTimeout(string prefix, string setting, TimeSpan value, TimeSpan max)
    {
        if (value <= TimeSpan.Zero || value > max)
        {
            throw new OrleansConfigurationException($"{prefix}{setting} must be positive and at most {max.TotalMinutes:0} minutes, was {value}.");
        }
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    private static partial Regex TableNamePattern();
}
