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
/// beside it.
/// </summary>
public sealed partial class SqliteGrainStorage : IGrainStorage, ILifecycleParticipant<ISiloLifecycle>, IAsyncDisposable
{
    private readonly string _name;
    private readonly string _serviceId;
    private readonly SqliteGrainStorageOptions _options;
    private readonly ILogger _logger;
    private readonly string _connectionString;
    private readonly GroupCommitGrainStorageCore _core;
    private readonly GroupCommitQueue _queue;
    private readonly Writer _writer;
    private readonly string _selectSql;
    private bool _initialized;

    public SqliteGrainStorage(string name, SqliteGrainStorageOptions options, IOptions<ClusterOptions> clusterOptions, ILogger<SqliteGrainStorage> logger)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(options);
        new SqliteGrainStorageOptionsValidator(options, name).ValidateConfiguration();
        _name = name;
        _options = options;
        _logger = logger;
        _serviceId = clusterOptions.Value.ServiceId;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path.GetFullPath(options.DataSource!),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = (int)Math.Ceiling(options.BusyTimeout.TotalSeconds),
        }.ToString();
        _selectSql = $"SELECT version, payload FROM {options.TableName} WHERE service_id = $service AND state_name = $state AND grain_id = $grain";
        _writer = new Writer(this);
        _queue = new GroupCommitQueue(_writer, name, "sqlite", options.MaxBatchSize, options.MaxBatchDelay,
            (exception, count) => LogCommitFailed(_logger, exception, _name, count));
        _core = new GroupCommitGrainStorageCore(name, _serviceId, options.GrainStorageSerializer, new Reader(this), _queue);
    }

    /// <summary>Transactions committed so far.</summary>
    public long CommittedBatches => _queue.CommittedBatches;

    /// <summary>Writes and clears committed so far (including ones rejected for a stale etag).</summary>
    public long CommittedOperations => _queue.CommittedOperations;

    /// <summary>Transactions that failed and were rolled back.</summary>
    public long FailedBatches => _queue.FailedBatches;

    /// <summary>Largest number of operations committed in one transaction.</summary>
    public int LargestBatch => _queue.LargestBatch;

    /// <inheritdoc />
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(OptionFormattingUtilities.Name<SqliteGrainStorage>(_name), _options.InitStage, InitializeAsync, CloseAsync);

    /// <summary>Opens the database (WAL, synchronous level, table) and starts the writer.</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        if (_initialized)
        {
            return;
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(_options.DataSource!));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        await Task.Run(_writer.Open, cancellationToken).ConfigureAwait(false);
        _queue.Start();
        _initialized = true;
        LogInitialized(_logger, _name, _serviceId, _options.DataSource!, _options.Synchronous, _options.MaxBatchSize);
    }

    /// <summary>Commits what is queued, stops the writer and closes its connection.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken)
    {
        if (!_initialized)
        {
            return;
        }

        _initialized = false;
        await _queue.StopAsync().ConfigureAwait(false);
        _writer.Dispose();
        LogClosed(_logger, _name, _queue.CommittedBatches, _queue.CommittedOperations);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => new(CloseAsync(CancellationToken.None));

    /// <inheritdoc />
    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        _core.ReadStateAsync(stateName, grainId, grainState);

    /// <inheritdoc />
    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        _core.WriteStateAsync(stateName, grainId, grainState);

    /// <inheritdoc />
    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        _core.ClearStateAsync(stateName, grainId, grainState);

    [LoggerMessage(1, LogLevel.Information, "SQLite grain storage {Name} opened {DataSource} for ServiceId={ServiceId} (synchronous={Synchronous}, max batch {MaxBatchSize})")]
    private static partial void LogInitialized(ILogger logger, string name, string serviceId, string dataSource, SqliteSynchronousMode synchronous, int maxBatchSize);

    [LoggerMessage(2, LogLevel.Error, "SQLite grain storage {Name} failed to commit a batch of {Count} operation(s); all were rolled back")]
    private static partial void LogCommitFailed(ILogger logger, Exception exception, string name, int count);

    [LoggerMessage(3, LogLevel.Information, "SQLite grain storage {Name} closed after {Batches} batches holding {Operations} operations")]
    private static partial void LogClosed(ILogger logger, string name, long batches, long operations);

    // Reads run on the thread pool: Microsoft.Data.Sqlite's async calls complete synchronously, and a
    // grain turn must never block on I/O.
    private sealed class Reader(SqliteGrainStorage storage) : IStateReader
    {
        public Task<StoredState?> ReadAsync(string stateName, string grainId, CancellationToken cancellationToken) =>
            Task.Run(() => Read(stateName, grainId), cancellationToken);

        private StoredState? Read(string stateName, string grainId)
        {
            using var connection = new SqliteConnection(storage._connectionString);
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = storage._selectSql;
            command.Parameters.AddWithValue("$service", storage._serviceId);
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
    }

    /// <summary>The single writer: one connection, prepared statements, one transaction per batch.</summary>
    private sealed class Writer(SqliteGrainStorage storage) : IBatchCommitter, IDisposable
    {
        private SqliteConnection? _connection;
        private SqliteCommand? _insert;
        private SqliteCommand? _update;
        private SqliteCommand? _clear;
        private SqliteCommand? _exists;

        public void Open()
        {
            var options = storage._options;
            var table = options.TableName;
            _connection = new SqliteConnection(storage._connectionString);
            _connection.Open();
            using (var pragma = _connection.CreateCommand())
            {
                pragma.CommandText = "PRAGMA journal_mode=WAL;";
                var mode = Convert.ToString(pragma.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
                if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                {
                    throw new InvalidOperationException($"SQLite grain storage '{storage._name}' could not switch {options.DataSource} to WAL mode (got '{mode}').");
                }

                pragma.CommandText = $"PRAGMA synchronous={(int)options.Synchronous};";
                pragma.ExecuteNonQuery();
                pragma.CommandText =
                    $"""
                    CREATE TABLE IF NOT EXISTS {table} (
                        service_id TEXT NOT NULL,
                        state_name TEXT NOT NULL,
                        grain_id   TEXT NOT NULL,
                        version    INTEGER NOT NULL,
                        payload    BLOB NULL,
                        PRIMARY KEY (service_id, state_name, grain_id)
                    ) WITHOUT ROWID;
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
            command.Parameters.Add("$service", SqliteType.Text).Value = storage._serviceId;
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

        public async Task CommitAsync(IReadOnlyList<StorageOperation> batch, CancellationToken cancellationToken)
        {
            try
            {
                if (_connection is null)
                {
                    Open();
                }

                await CommitOnAsync(_connection!, batch).ConfigureAwait(false);
            }
            catch
            {
                // If even the rollback failed the connection could be stuck inside a transaction:
                // start the next batch on a fresh one.
                Dispose();
                throw;
            }
        }

        private async Task CommitOnAsync(SqliteConnection connection, IReadOnlyList<StorageOperation> batch)
        {

            // BEGIN IMMEDIATE: take the write lock up front, so a second writer on the same file waits
            // (busy timeout) instead of failing mid-batch.
            using var transaction = connection.BeginTransaction(deferred: false);
            _insert!.Transaction = _update!.Transaction = _clear!.Transaction = _exists!.Transaction = transaction;
            foreach (var operation in batch)
            {
                operation.PendingOutcome = Apply(operation);
            }

            if (storage._options.OnBeforeCommit is { } beforeCommit)
            {
                await beforeCommit(batch.Count).ConfigureAwait(false);
            }

            transaction.Commit();
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
}
