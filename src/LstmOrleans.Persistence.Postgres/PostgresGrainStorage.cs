using LstmOrleans.Persistence.GroupCommit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Orleans;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Persistence.Postgres;

/// <summary>
/// Orleans grain storage on PostgreSQL with the same design as the SQLite provider: rows keyed by
/// (ServiceId, state name, grain id) carrying a version used as the etag, and one writer that commits
/// the writes of all grains in batches, each batch one transaction sent as one round trip.
/// </summary>
public sealed partial class PostgresGrainStorage : IGrainStorage, ILifecycleParticipant<ISiloLifecycle>, IAsyncDisposable
{
    private readonly string _name;
    private readonly string _serviceId;
    private readonly PostgresGrainStorageOptions _options;
    private readonly ILogger _logger;
    private readonly NpgsqlDataSource _dataSource;
    private readonly GroupCommitGrainStorageCore _core;
    private readonly GroupCommitQueue _queue;
    private readonly Writer _writer;
    private readonly string _selectSql;
    private bool _initialized;

    public PostgresGrainStorage(string name, PostgresGrainStorageOptions options, IOptions<ClusterOptions> clusterOptions, ILogger<PostgresGrainStorage> logger)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(options);
        new PostgresGrainStorageOptionsValidator(options, name).ValidateConfiguration();
        _name = name;
        _options = options;
        _logger = logger;
        _serviceId = clusterOptions.Value.ServiceId;
        _dataSource = NpgsqlDataSource.Create(options.ConnectionString!);
        _selectSql = $"SELECT version, payload FROM {options.TableName} WHERE service_id = $1 AND state_name = $2 AND grain_id = $3";
        _writer = new Writer(this);
        _queue = new GroupCommitQueue(_writer, name, "postgres", options.MaxBatchSize, options.MaxBatchDelay,
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
        lifecycle.Subscribe(OptionFormattingUtilities.Name<PostgresGrainStorage>(_name), _options.InitStage, InitializeAsync, CloseAsync);

    /// <summary>Creates the table if missing and starts the writer.</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        if (_initialized)
        {
            return;
        }

        await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false))
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
        {
            // Silos starting together would race on CREATE TABLE IF NOT EXISTS (it is not atomic in
            // PostgreSQL); an advisory lock serialises them.
            await using var command = new NpgsqlCommand(
                $"""
                SELECT pg_advisory_xact_lock(hashtext('lstmorleans:{_options.TableName}'));
                CREATE TABLE IF NOT EXISTS {_options.TableName} (
                    service_id text   NOT NULL,
                    state_name text   NOT NULL,
                    grain_id   text   NOT NULL,
                    version    bigint NOT NULL,
                    payload    bytea  NULL,
                    PRIMARY KEY (service_id, state_name, grain_id)
                );
                """, connection, transaction);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        _queue.Start();
        _initialized = true;
        LogInitialized(_logger, _name, _serviceId, _options.TableName, _options.MaxBatchSize);
    }

    /// <summary>Commits what is queued, stops the writer and releases its connection.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken)
    {
        if (!_initialized)
        {
            return;
        }

        _initialized = false;
        await _queue.StopAsync().ConfigureAwait(false);
        await _writer.DisposeAsync().ConfigureAwait(false);
        await _dataSource.DisposeAsync().ConfigureAwait(false);
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

    [LoggerMessage(1, LogLevel.Information, "PostgreSQL grain storage {Name} ready on table {Table} for ServiceId={ServiceId} (max batch {MaxBatchSize})")]
    private static partial void LogInitialized(ILogger logger, string name, string serviceId, string table, int maxBatchSize);

    [LoggerMessage(2, LogLevel.Error, "PostgreSQL grain storage {Name} failed to commit a batch of {Count} operation(s); all were rolled back")]
    private static partial void LogCommitFailed(ILogger logger, Exception exception, string name, int count);

    [LoggerMessage(3, LogLevel.Information, "PostgreSQL grain storage {Name} closed after {Batches} batches holding {Operations} operations")]
    private static partial void LogClosed(ILogger logger, string name, long batches, long operations);

    private sealed class Reader(PostgresGrainStorage storage) : IStateReader
    {
        public async Task<StoredState?> ReadAsync(string stateName, string grainId, CancellationToken cancellationToken)
        {
            await using var command = storage._dataSource.CreateCommand(storage._selectSql);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = storage._serviceId });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = stateName });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = grainId });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            var version = reader.GetInt64(0);
            var payload = await reader.IsDBNullAsync(1, cancellationToken).ConfigureAwait(false) ? null : reader.GetFieldValue<byte[]>(1);
            return new StoredState(version, payload);
        }
    }

    /// <summary>The single writer: one connection, one transaction and one round trip per batch.</summary>
    private sealed class Writer(PostgresGrainStorage storage) : IBatchCommitter, IAsyncDisposable
    {
        private NpgsqlConnection? _connection;

        public async Task CommitAsync(IReadOnlyList<StorageOperation> batch, CancellationToken cancellationToken)
        {
            try
            {
                _connection ??= await storage._dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                await CommitOnAsync(_connection, batch, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                // The connection may be broken or mid-transaction: start the next batch on a fresh one.
                if (_connection is not null)
                {
                    await _connection.DisposeAsync().ConfigureAwait(false);
                    _connection = null;
                }

                throw;
            }
        }

        private async Task CommitOnAsync(NpgsqlConnection connection, IReadOnlyList<StorageOperation> batch, CancellationToken cancellationToken)
        {
            var options = storage._options;
            var table = options.TableName;
            const string Key = "service_id = $1 AND state_name = $2 AND grain_id = $3";

            // Rows are locked in key order, so two silos committing overlapping batches cannot
            // deadlock. The sort is stable: operations on one key keep their arrival order.
            var ordered = batch.OrderBy(op => op.StateName, StringComparer.Ordinal).ThenBy(op => op.GrainId, StringComparer.Ordinal).ToArray();

            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using var npgsqlBatch = new NpgsqlBatch(connection, transaction) { Timeout = (int)Math.Ceiling(options.CommandTimeout.TotalSeconds) };
            foreach (var operation in ordered)
            {
                var command = (operation.Kind, operation.ExpectedVersion) switch
                {
                    (StorageOperationKind.Write, null) => new NpgsqlBatchCommand(
                        $"INSERT INTO {table} (service_id, state_name, grain_id, version, payload) VALUES ($1, $2, $3, 1, $4) ON CONFLICT DO NOTHING"),
                    (StorageOperationKind.Write, not null) => new NpgsqlBatchCommand(
                        $"UPDATE {table} SET version = version + 1, payload = $4 WHERE {Key} AND version = $5"),
                    // Nothing was ever read: fine if there is still nothing, a conflict if a row appeared.
                    // (A no-op UPDATE reports the match through rows affected, like the other statements.)
                    (StorageOperationKind.Clear, null) => new NpgsqlBatchCommand(
                        $"UPDATE {table} SET version = version WHERE {Key}"),
                    (StorageOperationKind.Clear, not null) => new NpgsqlBatchCommand(
                        $"UPDATE {table} SET version = version + 1, payload = NULL WHERE {Key} AND version = $4"),
                    _ => throw new InvalidOperationException($"Unknown storage operation {operation.Kind}."),
                };
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = storage._serviceId });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = operation.StateName });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = operation.GrainId });
                if (operation.Payload is { } payload)
                {
                    command.Parameters.Add(new NpgsqlParameter<byte[]> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = payload });
                }

                if (operation.ExpectedVersion is { } expectedVersion)
                {
                    command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = expectedVersion });
                }

                npgsqlBatch.BatchCommands.Add(command);
            }

            await npgsqlBatch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < ordered.Length; i++)
            {
                var operation = ordered[i];
                var matched = npgsqlBatch.BatchCommands[i].RecordsAffected == 1;
                operation.PendingOutcome = (operation.Kind, operation.ExpectedVersion) switch
                {
                    (StorageOperationKind.Write, null) => matched ? CommitOutcome.Applied(1) : CommitOutcome.Conflicted,
                    (StorageOperationKind.Clear, null) => matched ? CommitOutcome.Conflicted : CommitOutcome.Applied(null),
                    (_, long expected) => matched ? CommitOutcome.Applied(expected + 1) : CommitOutcome.Conflicted,
                    _ => throw new InvalidOperationException($"Unknown storage operation {operation.Kind}."),
                };
            }

            if (options.OnBeforeCommit is { } beforeCommit)
            {
                await beforeCommit(batch.Count).ConfigureAwait(false);
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            if (_connection is not null)
            {
                await _connection.DisposeAsync().ConfigureAwait(false);
                _connection = null;
            }
        }
    }
}
