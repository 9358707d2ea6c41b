using System.Diagnostics;
using LstmOrleans.Persistence.GroupCommit;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Persistence.Sqlite;

/// <summary>
/// Orleans grain storage on an embedded SQLite file in WAL mode. Rows are keyed by
/// (ServiceId, state name, grain id) and carry a version used as the etag. Writes from all grains
/// go through one writer that commits them in batches (group commit); reads use pooled connections
/// beside it. What an acknowledged write survives is set by <see cref="SqliteGrainStorageOptions.Synchronous"/>.
/// </summary>
public sealed class SqliteGrainStorage : IGrainStorage, ILifecycleParticipant<ISiloLifecycle>, IAsyncDisposable
{
    private readonly string _name;
    private readonly GroupCommitGrainStorage _storage;

    public SqliteGrainStorage(string name, SqliteGrainStorageOptions options, IOptions<ClusterOptions> clusterOptions, ILogger<SqliteGrainStorage> logger)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(options);
        new SqliteGrainStorageOptionsValidator(options, name).ValidateConfiguration();
        _name = name;
        var serviceId = clusterOptions.Value.ServiceId;
        _storage = new GroupCommitGrainStorage(name, serviceId, options, new SqliteStore(name, serviceId, options), logger);
    }

    /// <summary>Transactions committed so far.</summary>
    public long CommittedBatches => _storage.CommittedBatches;

    /// <summary>Writes and clears committed so far (including ones rejected for a stale etag).</summary>
    public long CommittedOperations => _storage.CommittedOperations;

    /// <summary>Transactions that failed and were rolled back.</summary>
    public long FailedBatches => _storage.FailedBatches;

    /// <summary>Largest number of operations committed in one transaction.</summary>
    public int LargestBatch => _storage.LargestBatch;

    /// <inheritdoc />
    public void Participate(ISiloLifecycle lifecycle) => _storage.Participate(lifecycle, OptionFormattingUtilities.Name<SqliteGrainStorage>(_name));

    /// <summary>Opens the database (WAL, synchronous level, table) and starts the writer.</summary>
    public Task InitializeAsync(CancellationToken cancellationToken) => _storage.InitializeAsync(cancellationToken);

    /// <summary>Commits what is queued, stops the writer and closes its connection.</summary>
    public Task CloseAsync(CancellationToken cancellationToken) => _storage.CloseAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => new(CloseAsync(CancellationToken.None));

    /// <inheritdoc />
    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => _storage.ReadStateAsync(stateName, grainId, grainState);

    /// <inheritdoc />
    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => _storage.WriteStateAsync(stateName, grainId, grainState);

    /// <inheritdoc />
    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => _storage.ClearStateAsync(stateName, grainId, grainState);
}

/// <summary>
/// The SQLite half: the schema, the single writer (one connection, prepared statements, one transaction per
/// batch, run on its own thread because Microsoft.Data.Sqlite blocks) and pooled readers.
/// </summary>
internal sealed class SqliteStore(string name, string serviceId, SqliteGrainStorageOptions options) : IGroupCommitStore, IDisposable
{
    private readonly string _connectionString = new SqliteConnectionStringBuilder
    {
        DataSource = Path.GetFullPath(options.DataSource!),
        Mode = SqliteOpenMode.ReadWriteCreate,
        Cache = SqliteCacheMode.Private,
        Pooling = true,
        DefaultTimeout = (int)Math.Ceiling(options.BusyTimeout.TotalSeconds),
    }.ToString();

    private readonly string _selectSql = $"SELECT version, payload FROM {options.TableName} WHERE service_id = $service AND state_name = $state AND grain_id = $grain";
    private SqliteConnection? _connection;
    private SqliteCommand? _insert;
    private SqliteCommand? _update;
    private SqliteCommand? _clear;
    private SqliteCommand? _exists;

    public string Kind => "sqlite";

    public string DisplayName => "SQLite";

    public bool CommitBlocksThread => true;

    public string Describe() => $"file {options.DataSource}, synchronous={options.Synchronous}, checkpoint every {options.WalAutoCheckpointPages} WAL pages";

    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(options.DataSource!));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        await Task.Run(Open, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask CloseAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    // Reads run on the thread pool: Microsoft.Data.Sqlite's async calls complete synchronously, and a
    // grain turn must never block on I/O.
    public Task<StoredState?> ReadAsync(string stateName, string grainId, CancellationToken cancellationToken) =>
        Task.Run(() => Read(stateName, grainId), cancellationToken);

    private StoredState? Read(string stateName, string grainId)
    {
        using var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = _selectSql;
        command.Parameters.AddWithValue("$service", serviceId);
        command.Parameters.AddWithValue("$state", stateName);
        command.Parameters.AddWithValue("$grain", grainId);
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        var version = reader.GetInt64(0);
        var payload = reader.IsDBNull(1) ? null : (byte[])reader.GetValue(1);
        return new StoredState(version, payload);
    }

    private void Open()
    {
        var table = options.TableName;
        _connection = new SqliteConnection(_connectionString);
        _connection.Open();
        using (var pragma = _connection.CreateCommand())
        {
            pragma.CommandText = "PRAGMA journal_mode=WAL;";
            var mode = Convert.ToString(pragma.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException($"SQLite grain storage '{name}' could not switch {options.DataSource} to WAL mode (got '{mode}').");
            }

            pragma.CommandText = $"PRAGMA synchronous={(int)options.Synchronous}; PRAGMA wal_autocheckpoint={options.WalAutoCheckpointPages};";
            pragma.ExecuteNonQuery();
            // An ordinary rowid table with the key as a separate unique index, not WITHOUT ROWID: a WITHOUT ROWID
            // row longer than ~1 KB (a stream's state at H=32 is ~1.3 KB) does not fit its 4 KB b-tree page and
            // spills to an overflow page, so every update rewrote two pages and churned the freelist (measured:
            // 2.2x the CPU per update). Here an update rewrites one table page; the key index never changes.
            // Files created by earlier versions keep their WITHOUT ROWID table and keep working.
            pragma.CommandText =
                $"""
                CREATE TABLE IF NOT EXISTS {table} (
                    service_id TEXT NOT NULL,
                    state_name TEXT NOT NULL,
                    grain_id   TEXT NOT NULL,
                    version    INTEGER NOT NULL,
                    payload    BLOB NULL,
                    PRIMARY KEY (service_id, state_name, grain_id)
                );
                """;
            pragma.ExecuteNonQuery();
        }

        const string Key = "service_id = $service AND state_name = $state AND grain_id = $grain";
        _insert = Prepare($"INSERT INTO {table} (service_id, state_name, grain_id, version, payload) VALUES ($service, $state, $grain, 1, $payload) ON CONFLICT DO NOTHING", withVersion: false, withPayload: true);
        _update = Prepare($"UPDATE {table} SET version = version + 1, payload = $payload WHERE {Key} AND version = $version", withVersion: true, withPayload: true);
        _clear = Prepare($"UPDATE {table} SET version = version + 1, payload = NULL WHERE {Key} AND version = $version", withVersion: true, withPayload: false);
        _exists = Prepare($"SELECT 1 FROM {table} WHERE {Key}", withVersion: false, withPayload: false);
    }

    private SqliteCommand Prepare(string sql, bool withVersion, bool withPayload)
    {
        var command = _connection!.CreateCommand();
        command.CommandText = sql;
        command.Parameters.Add("$service", SqliteType.Text).Value = serviceId;
        command.Parameters.Add("$state", SqliteType.Text);
        command.Parameters.Add("$grain", SqliteType.Text);
        if (withVersion)
        {
            command.Parameters.Add("$version", SqliteType.Integer);
        }

        if (withPayload)
        {
            command.Parameters.Add("$payload", SqliteType.Blob);
        }

        command.Prepare();
        return command;
    }

    public async Task<TimeSpan> CommitAsync(IReadOnlyList<StorageOperation> batch, CancellationToken cancellationToken)
    {
        try
        {
            if (_connection is null)
            {
                Open();
            }

            return await CommitOnAsync(_connection!, batch).ConfigureAwait(false);
        }
        catch
        {
            // If even the rollback failed the connection could be stuck inside a transaction:
            // start the next batch on a fresh one.
            Dispose();
            throw;
        }
    }

    private async Task<TimeSpan> CommitOnAsync(SqliteConnection connection, IReadOnlyList<StorageOperation> batch)
    {
        // BEGIN IMMEDIATE: take the write lock up front, so a second writer on the same file waits
        // (busy timeout) instead of failing mid-batch.
        using var transaction = connection.BeginTransaction(deferred: false);
        _insert!.Transaction = _update!.Transaction = _clear!.Transaction = _exists!.Transaction = transaction;
        foreach (var operation in batch)
        {
            operation.PendingOutcome = Apply(operation);
        }

        if (options.OnBeforeCommit is { } beforeCommit)
        {
            await beforeCommit(batch.Count).ConfigureAwait(false);
        }

        var flushStarted = Stopwatch.GetTimestamp();
        transaction.Commit();
        return Stopwatch.GetElapsedTime(flushStarted);
    }

    // The writer is the only one changing rows through this provider, and the transaction holds the
    // database write lock, so "matches the expected version" is decided by rows affected: 0 means
    // another writer got there first, and nothing was changed.
    private CommitOutcome Apply(StorageOperation operation)
    {
        switch (operation.Kind, operation.ExpectedVersion)
        {
            case (StorageOperationKind.Write, null):
                return Execute(_insert!, operation) == 1 ? CommitOutcome.Applied(1) : CommitOutcome.Conflicted;
            case (StorageOperationKind.Write, long expected):
                return Execute(_update!, operation) == 1 ? CommitOutcome.Applied(expected + 1) : CommitOutcome.Conflicted;
            case (StorageOperationKind.Clear, null):
                // Nothing was ever read: fine if there is still nothing, a conflict if someone wrote.
                SetKey(_exists!, operation);
                return _exists!.ExecuteScalar() is null ? CommitOutcome.Applied(null) : CommitOutcome.Conflicted;
            case (StorageOperationKind.Clear, long expected):
                return Execute(_clear!, operation) == 1 ? CommitOutcome.Applied(expected + 1) : CommitOutcome.Conflicted;
            default:
                throw new InvalidOperationException($"Unknown storage operation {operation.Kind}.");
        }
    }

    // Parameters are addressed by position (fixed by Prepare) to skip name lookups on the hot path:
    // 0 $service, 1 $state, 2 $grain, then $version and/or $payload.
    private static int Execute(SqliteCommand command, StorageOperation operation)
    {
        SetKey(command, operation);
        var next = 3;
        if (operation.ExpectedVersion is { } expected)
        {
            command.Parameters[next++].Value = expected;
        }

        if (operation.Payload is { } payload)
        {
            command.Parameters[next].Value = payload;
        }

        return command.ExecuteNonQuery();
    }

    private static void SetKey(SqliteCommand command, StorageOperation operation)
    {
        command.Parameters[1].Value = operation.StateName;
        command.Parameters[2].Value = operation.GrainId;
    }

    public void Dispose()
    {
        _insert?.Dispose();
        _update?.Dispose();
        _clear?.Dispose();
        _exists?.Dispose();
        _insert = _update = _clear = _exists = null;
        _connection?.Dispose();
        _connection = null;
    }
}
