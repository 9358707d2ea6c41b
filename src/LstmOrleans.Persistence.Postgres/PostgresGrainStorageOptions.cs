using LstmOrleans.Persistence.GroupCommit;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Persistence.Postgres;

/// <summary>Options of the PostgreSQL grain storage provider.</summary>
public sealed class PostgresGrainStorageOptions : IGroupCommitStorageOptions
{
    /// <summary>Npgsql connection string. Required.</summary>
    [Redact]
    public string? ConnectionString { get; set; }

    /// <summary>
    /// Table holding the grain states; created if missing. A plain identifier (letters, digits, underscore, at most 63
    /// characters, not starting with a digit); SQL keywords such as "order" are fine, the provider quotes the name. PostgreSQL folds it to lower case, as earlier versions (which wrote it unquoted) did, so an existing table keeps being found.
    /// </summary>
    public string TableName { get; set; } = "lstm_grain_state";

    /// <summary>Most writes committed in one transaction (sent as one round trip).</summary>
    public int MaxBatchSize { get; set; } = 2048;

    /// <summary>
    /// How long the writer waits for more writes when a batch is not full. Zero (default) commits as
    /// soon as the queue is drained; writes arriving during a commit still form the next batch.
    /// </summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// How many times a batch that PostgreSQL rolled back as a deadlock (or serialization failure) is run again before
    /// its callers get the error; 0 fails them at once. Such a batch applied nothing, so running it again is safe.
    /// </summary>
    public int MaxDeadlockRetries { get; set; } = 3;

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
public sealed class PostgresGrainStorageOptionsValidator(PostgresGrainStorageOptions options, string name) : IConfigurationValidator
{
    public void ValidateConfiguration()
    {
        var prefix = $"Invalid configuration for PostgreSQL grain storage '{name}': {nameof(PostgresGrainStorageOptions)}.";
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.ConnectionString)} is required.");
        }

        try
        {
            _ = new Npgsql.NpgsqlConnectionStringBuilder(options.ConnectionString);
        }
        catch (ArgumentException exception)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.ConnectionString)} is malformed: {exception.Message}");
        }

        if (options.MaxDeadlockRetries is < 0 or > 100)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.MaxDeadlockRetries)} must be between 0 and 100, was {options.MaxDeadlockRetries}.");
        }

        GroupCommitRegistration.ValidateTimeout(prefix, nameof(options.CommandTimeout), options.CommandTimeout, TimeSpan.FromMinutes(10));
        GroupCommitRegistration.ValidateCommon(prefix, options, "AddPostgresGrainStorage");
    }
}
