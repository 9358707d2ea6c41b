using System.Text.RegularExpressions;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Persistence.Postgres;

/// <summary>Options of the PostgreSQL grain storage provider.</summary>
public sealed class PostgresGrainStorageOptions : IStorageProviderSerializerOptions
{
    /// <summary>Npgsql connection string. Required.</summary>
    [Redact]
    public string? ConnectionString { get; set; }

    /// <summary>Table holding the grain states; created if missing.</summary>
    public string TableName { get; set; } = "lstm_grain_state";

    /// <summary>Most writes committed in one transaction (sent as one round trip).</summary>
    public int MaxBatchSize { get; set; } = 2048;

    /// <summary>
    /// How long the writer waits for more writes when a batch is not full. Zero (default) commits as
    /// soon as the queue is drained; writes arriving during a commit still form the next batch.
    /// </summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.Zero;

    /// <summary>Timeout of one batch's statements.</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Silo lifecycle stage at which the table is created and the writer started.</summary>
    public int InitStage { get; set; } = ServiceLifecycleStage.ApplicationServices;

    /// <summary>State serializer. When left null the Orleans binary serializer is used.</summary>
    public IGrainStorageSerializer GrainStorageSerializer { get; set; } = null!;

    /// <summary>
    /// Fault-injection seam for tests: called inside the open transaction right before it commits, with
    /// the number of operations in the batch. Throwing rolls the whole batch back and fails every call in it.
    /// </summary>
    public Func<int, ValueTask>? OnBeforeCommit { get; set; }
}

/// <summary>Rejects unusable <see cref="PostgresGrainStorageOptions"/> at silo start with a message naming the provider and setting.</summary>
public sealed partial class PostgresGrainStorageOptionsValidator : IConfigurationValidator
{
    private readonly PostgresGrainStorageOptions _options;
    private readonly string _name;

    public PostgresGrainStorageOptionsValidator(PostgresGrainStorageOptions options, string name)
    {
        _options = options;
        _name = name;
    }

    public void ValidateConfiguration()
    {
        var prefix = $"Invalid configuration for PostgreSQL grain storage '{_name}': {nameof(PostgresGrainStorageOptions)}.";
        if (string.IsNullOrWhiteSpace(_options.ConnectionString))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.ConnectionString)} is required.");
        }

        try
        {
            _ = new Npgsql.NpgsqlConnectionStringBuilder(_options.ConnectionString);
        }
        catch (ArgumentException exception)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.ConnectionString)} is malformed: {exception.Message}");
        }

        if (!TableNamePattern().IsMatch(_options.TableName ?? string.Empty))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.TableName)} '{_options.TableName}' must be a plain identifier (letters, digits, underscore; at most 63 characters, not starting with a digit).");
        }

        if (_options.MaxBatchSize is < 1 or > 100_000)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.MaxBatchSize)} must be between 1 and 100000, was {_options.MaxBatchSize}.");
        }

        if (_options.MaxBatchDelay < TimeSpan.Zero || _options.MaxBatchDelay > TimeSpan.FromSeconds(1))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.MaxBatchDelay)} must be between 0 and 1 s, was {_options.MaxBatchDelay}.");
        }

        if (_options.CommandTimeout <= TimeSpan.Zero || _options.CommandTimeout > TimeSpan.FromMinutes(10))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.CommandTimeout)} must be positive and at most 10 minutes, was {_options.CommandTimeout}.");
        }

        if (_options.GrainStorageSerializer is null)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.GrainStorageSerializer)} is null; register the provider with AddPostgresGrainStorage so the Orleans serializer is filled in.");
        }
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    internal static partial Regex TableNamePattern();
}
