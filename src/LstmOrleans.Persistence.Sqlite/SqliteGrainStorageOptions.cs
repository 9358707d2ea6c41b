using System.Text.RegularExpressions;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Persistence.Sqlite;

/// <summary>SQLite's PRAGMA synchronous levels (WAL mode).</summary>
public enum SqliteSynchronousMode
{
    /// <summary>No fsync: fastest, a power loss can lose committed transactions or corrupt the file.</summary>
    Off = 0,

    /// <summary>WAL is synced at checkpoints only: survives a process crash, a power loss may lose the latest commits.</summary>
    Normal = 1,

    /// <summary>WAL is synced on every commit: an acknowledged write survives power loss (default).</summary>
    Full = 2,

    /// <summary>Like Full, and also syncs the directory after WAL resets.</summary>
    Extra = 3,
}

/// <summary>Options of the SQLite grain storage provider.</summary>
public sealed class SqliteGrainStorageOptions : IStorageProviderSerializerOptions
{
    /// <summary>Path of the database file (created if missing, with its directory). Required.</summary>
    public string? DataSource { get; set; }

    /// <summary>Table holding the grain states; created if missing.</summary>
    public string TableName { get; set; } = "lstm_grain_state";

    /// <summary>Most writes committed in one transaction.</summary>
    public int MaxBatchSize { get; set; } = 2048;

    /// <summary>
    /// How long the writer waits for more writes when a batch is not full. Zero (default) commits as
    /// soon as the queue is drained; writes arriving during a commit still form the next batch.
    /// </summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.Zero;

    /// <summary>PRAGMA synchronous. Full (default) makes every acknowledged write durable.</summary>
    public SqliteSynchronousMode Synchronous { get; set; } = SqliteSynchronousMode.Full;

    /// <summary>How long a connection waits for a lock held by another process or provider instance.</summary>
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Silo lifecycle stage at which the database is opened.</summary>
    public int InitStage { get; set; } = ServiceLifecycleStage.ApplicationServices;

    /// <summary>
    /// State serializer. When left null the Orleans binary serializer (<see cref="OrleansGrainStorageSerializer"/>) is used.
    /// </summary>
    public IGrainStorageSerializer GrainStorageSerializer { get; set; } = null!;

    /// <summary>
    /// Fault-injection seam for tests: called inside the open transaction right before it commits, with
    /// the number of operations in the batch. Throwing (or timing out and throwing) rolls the whole
    /// batch back and fails every call in it.
    /// </summary>
    public Func<int, ValueTask>? OnBeforeCommit { get; set; }
}

/// <summary>Rejects unusable <see cref="SqliteGrainStorageOptions"/> at silo start with a message naming the provider and setting.</summary>
public sealed partial class SqliteGrainStorageOptionsValidator : IConfigurationValidator
{
    private readonly SqliteGrainStorageOptions _options;
    private readonly string _name;

    public SqliteGrainStorageOptionsValidator(SqliteGrainStorageOptions options, string name)
    {
        _options = options;
        _name = name;
    }

    public void ValidateConfiguration()
    {
        var prefix = $"Invalid configuration for SQLite grain storage '{_name}': {nameof(SqliteGrainStorageOptions)}.";
        if (string.IsNullOrWhiteSpace(_options.DataSource))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.DataSource)} is required (path of the database file).");
        }

        if (_options.DataSource.Trim().Equals(":memory:", StringComparison.OrdinalIgnoreCase) || _options.DataSource.Contains("mode=memory", StringComparison.OrdinalIgnoreCase))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.DataSource)} must be a file: an in-memory database is not durable and cannot be shared by the reader and writer connections.");
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

        if (!Enum.IsDefined(_options.Synchronous))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.Synchronous)} has the undefined value {(int)_options.Synchronous}.");
        }

        if (_options.BusyTimeout <= TimeSpan.Zero || _options.BusyTimeout > TimeSpan.FromMinutes(10))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.BusyTimeout)} must be positive and at most 10 minutes, was {_options.BusyTimeout}.");
        }

        if (_options.GrainStorageSerializer is null)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(_options.GrainStorageSerializer)} is null; register the provider with AddSqliteGrainStorage so the Orleans serializer is filled in.");
        }
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    internal static partial Regex TableNamePattern();
}
