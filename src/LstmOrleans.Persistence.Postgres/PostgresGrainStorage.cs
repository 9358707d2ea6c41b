using System.Diagnostics;
using System.Globalization;
using System.Text;
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
/// the writes of all grains in batches, each batch one transaction sent as one round trip. An acknowledged
/// write is as durable as the server's commit (synchronous_commit, fsync).
///
/// What a caller of a write or clear can assume: a call that returns was committed. A call that fails with an
/// <see cref="Orleans.Runtime.OrleansException"/> saying "none of them was applied" was rolled back (an error before
/// the COMMIT, or one the server answered the COMMIT with). One saying "the outcome is unknown" lost its connection or
/// timed out during the COMMIT: the server may have committed it. In both cases the grain state's ETag is left at the
/// last version known to be stored; a later write with it is checked against the stored version (it applies only if
/// the failed one did not, else it fails with InconsistentStateException), and a read returns what is stored.
/// </summary>
public sealed class PostgresGrainStorage : IGrainStorage, ICompanionWriteGrainStorage, ILifecycleParticipant<ISiloLifecycle>, IAsyncDisposable
{
    private readonly string _name;
    private readonly GroupCommitGrainStorage _storage;

    public PostgresGrainStorage(string name, PostgresGrainStorageOptions options, IOptions<ClusterOptions> clusterOptions, ILogger<PostgresGrainStorage> logger)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(options);
        new PostgresGrainStorageOptionsValidator(options, name).ValidateConfiguration();
        _name = name;
        var serviceId = clusterOptions.Value.ServiceId;
        _storage = new GroupCommitGrainStorage(name, serviceId, options, new PostgresStore(serviceId, options), logger);
    }

    /// <summary>Transactions committed so far.</summary>
    public long CommittedBatches => _storage.CommittedBatches;

    /// <summary>Writes and clears committed so far (including ones rejected for a stale etag).</summary>
    public long CommittedOperations => _storage.CommittedOperations;

    /// <summary>Transactions that failed and were rolled back.</summary>
    public long FailedBatches => _storage.FailedBatches;

    /// <summary>Attempts rolled back by a deadlock or serialization failure and tried again (see <see cref="PostgresGrainStorageOptions.MaxDeadlockRetries"/>).</summary>
    public long RetriedBatches => _storage.RetriedBatches;

    /// <summary>Largest number of operations committed in one transaction.</summary>
    public int LargestBatch => _storage.LargestBatch;

    /// <inheritdoc />
    public void Participate(ISiloLifecycle lifecycle) => _storage.Participate(lifecycle, OptionFormattingUtilities.Name<PostgresGrainStorage>(_name));

    /// <summary>Creates the table if missing and starts the writer.</summary>
    public Task InitializeAsync(CancellationToken cancellationToken) => _storage.InitializeAsync(cancellationToken);

    /// <summary>Commits what is queued, stops the writer and releases its connection.</summary>
    public Task CloseAsync(CancellationToken cancellationToken) => _storage.CloseAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => new(CloseAsync(CancellationToken.None));

    /// <inheritdoc />
    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => _storage.ReadStateAsync(stateName, grainId, grainState);

    /// <inheritdoc />
    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => _storage.WriteStateAsync(stateName, grainId, grainState);

    /// <inheritdoc />
    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => _storage.ClearStateAsync(stateName, grainId, grainState);

    /// <inheritdoc />
    public Task WriteStateWithCompanionsAsync<T, TCompanion>(string stateName, GrainId grainId, IGrainState<T> grainState,
        IReadOnlyList<KeyValuePair<string, TCompanion>> companions) =>
        _storage.WriteStateWithCompanionsAsync(stateName, grainId, grainState, companions);
}

/// <summary>The PostgreSQL half: the schema, readers on the pooled data source, and the single writer (one connection, one transaction and one round trip per batch).</summary>
internal sealed class PostgresStore(string serviceId, PostgresGrainStorageOptions options) : IGroupCommitStore
{
    private NpgsqlDataSource _dataSource = NpgsqlDataSource.Create(options.ConnectionString!);
    private bool _dataSourceDisposed;
    private readonly string _table = QuotedTable(options.TableName);
    private readonly string _selectSql = $"SELECT version, payload FROM {QuotedTable(options.TableName)} WHERE service_id = $1 AND state_name = $2 AND grain_id = $3";

    /// <summary>
    /// The table name as a quoted identifier, the only form it takes in SQL: a name the option check allows may still be
    /// a keyword (a table called "order" or "user" was a syntax error, or worse, at the first read or write). Lower-cased
    /// first because PostgreSQL folds an unquoted name to lower case and a quoted one not at all: earlier versions wrote
    /// the name unquoted, so a TableName of "GrainState" created the table grainstate, and quoting the lower-cased name
    /// keeps finding it. The option check allows only ASCII letters, digits and underscores, so nothing needs escaping
    /// and ToLowerInvariant folds exactly as PostgreSQL does.
    /// </summary>
    internal static string QuotedTable(string tableName) => $"\"{tableName.ToLowerInvariant()}\"";
    private NpgsqlConnection? _connection;

    public string Kind => "postgres";

    public string DisplayName => "PostgreSQL";

    public bool CommitBlocksThread => false;

    public string Describe() => $"table {options.TableName}, up to {options.MaxDeadlockRetries} retries of a batch rolled back by a deadlock";

    // 40P01 deadlock_detected, 40001 serialization_failure: PostgreSQL aborted the transaction because of another one,
    // so nothing of the batch is applied and the same batch may simply run again. Rows are locked in key order, so
    // plain writes never deadlock; a companion unit locks its history rows after its core row, and two activations of
    // one stream on two silos (after a partition) can cross there. Without a retry every caller of the batch, most of
    // them unrelated streams, would get the error.
    public bool ShouldRetry(Exception exception, int attempt) =>
        attempt <= options.MaxDeadlockRetries && exception is PostgresException { SqlState: PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure };

    // PostgreSQL text cannot hold U+0000: a statement binding one fails, and in a batch it rolls back every other write.
    public string? RejectKey(string key) => key.Contains('\0', StringComparison.Ordinal) ? "PostgreSQL text cannot hold the NUL character (U+0000)" : null;

    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        if (_dataSourceDisposed)
        {
            // Opened again after CloseAsync (its silo stopped and started): the old data source is gone.
            _dataSource = NpgsqlDataSource.Create(options.ConnectionString!);
            _dataSourceDisposed = false;
        }

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        // Silos starting together would race on CREATE TABLE IF NOT EXISTS (it is not atomic in
        // PostgreSQL); an advisory lock serialises them.
        await using var command = new NpgsqlCommand(
            $"""
            SELECT pg_advisory_xact_lock(hashtext('lstmorleans:{options.TableName}'));
            CREATE TABLE IF NOT EXISTS {_table} (
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

    public async ValueTask CloseAsync()
    {
        await ReleaseWriterConnectionAsync().ConfigureAwait(false);
        await _dataSource.DisposeAsync().ConfigureAwait(false);
        _dataSourceDisposed = true;
    }

    public async Task<StoredState?> ReadAsync(string stateName, string grainId, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(_selectSql);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = serviceId });
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

    public async Task<TimeSpan> CommitAsync(IReadOnlyList<StorageOperation> batch, CancellationToken cancellationToken)
    {
        try
        {
            _connection ??= await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            return await CommitOnAsync(_connection, batch, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // The connection may be broken or mid-transaction: start the next batch on a fresh one.
            await ReleaseWriterConnectionAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task<TimeSpan> CommitOnAsync(NpgsqlConnection connection, IReadOnlyList<StorageOperation> batch, CancellationToken cancellationToken)
    {
        var table = _table;
        const string Key = "service_id = $1 AND state_name = $2 AND grain_id = $3";

        // Rows are locked in key order, so two silos committing overlapping batches of plain writes cannot deadlock.
        // A companion unit locks its companions (history.*) right after its core row (stream), out of that order; only
        // the activation holding a stream writes its companions, so a cycle needs two activations of one stream on
        // two silos both touching its history.* rows with plain writes (delete, old-layout migration) at once. Then
        // PostgreSQL aborts one batch as a deadlock, and the writer runs it again (ShouldRetry). The sort is stable: operations on
        // one key keep their arrival order.
        var ordered = batch.OrderBy(op => op.StateName, StringComparer.Ordinal).ThenBy(op => op.GrainId, StringComparer.Ordinal).ToArray();

        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var npgsqlBatch = new NpgsqlBatch(connection, transaction) { Timeout = (int)Math.Ceiling(options.CommandTimeout.TotalSeconds) };
        foreach (var operation in ordered)
        {
            if (operation.Companions is { } companions)
            {
                npgsqlBatch.BatchCommands.Add(CompanionUnit(table, operation, companions));
                continue;
            }

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
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = serviceId });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = operation.StateName });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = operation.GrainId });
            if (operation.HasPayload)
            {
                // Only the payload's own bytes (the array may be a larger pooled one); written before the batch completes.
                command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = operation.Payload });
            }

            if (operation.ExpectedVersion is { } expectedVersion)
            {
                command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = expectedVersion });
            }

            npgsqlBatch.BatchCommands.Add(command);
        }

        // Only the companion units return rows (one each: whether their write applied); the other statements report
        // through rows affected, which the reader fills in as it goes past them.
        var unitsApplied = new Queue<bool>();
        await using (var reader = await npgsqlBatch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            do
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    unitsApplied.Enqueue(reader.GetInt64(0) == 1);
                }
            }
            while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
        }

        for (var i = 0; i < ordered.Length; i++)
        {
            var operation = ordered[i];
            var matched = operation.Companions is null ? npgsqlBatch.BatchCommands[i].RecordsAffected == 1 : unitsApplied.Dequeue();
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

        var flushStarted = Stopwatch.GetTimestamp();
        try
        {
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not PostgresException)
        {
            // The server answered nothing (connection lost, timeout): it may have committed before the answer was lost.
            throw new CommitOutcomeUnknownException($"PostgreSQL grain storage: the COMMIT of a batch of {batch.Count} operation(s) got no answer.", e);
        }
        catch (PostgresException e) when (e.InvariantSeverity is "FATAL" or "PANIC")
        {
            // An ERROR the server answers means it rolled the transaction back, as before the COMMIT. A FATAL one ends
            // the session and may come after the commit: a backend terminated while it waits for synchronous replication
            // reports it after committing locally (and a crash mid-COMMIT may have flushed the commit record).
            throw new CommitOutcomeUnknownException($"PostgreSQL grain storage: the COMMIT of a batch of {batch.Count} operation(s) ended the session ({e.SqlState}: {e.MessageText}).", e);
        }

        return Stopwatch.GetElapsedTime(flushStarted);
    }

    /// <summary>
    /// A guarded write and its companions as ONE statement, so "the companions apply only if the write applied" holds
    /// inside the batch's single round trip: the write is a data-modifying CTE that returns a row only when it applied,
    /// each companion an upsert that selects its one row from it, and the statement returns one row, the count of
    /// the write's rows (1: applied, 0: conflict). PostgreSQL runs every data-modifying CTE exactly
    /// once whether or not the outer query reads it. The write's row is locked before its companions' (each grain's
    /// companions are only written after its core row is locked, by the activation that holds it).
    /// Parameters: $1 service_id, $2 state_name, $3 grain_id, $4 payload, [$5 expected version], then per companion
    /// its state name and payload.
    /// </summary>
    private NpgsqlBatchCommand CompanionUnit(string table, StorageOperation operation, IReadOnlyList<StorageOperation> companions)
    {
        if (operation.Kind != StorageOperationKind.Write)
        {
            throw new InvalidOperationException($"Only a write carries companions, not a {operation.Kind}.");
        }

        var sql = new StringBuilder("WITH core AS (");
        sql.Append(operation.ExpectedVersion is null
            ? $"INSERT INTO {table} (service_id, state_name, grain_id, version, payload) VALUES ($1, $2, $3, 1, $4) ON CONFLICT DO NOTHING RETURNING 1"
            : $"UPDATE {table} SET version = version + 1, payload = $4 WHERE service_id = $1 AND state_name = $2 AND grain_id = $3 AND version = $5 RETURNING 1");
        sql.Append(')');
        int parameter = operation.ExpectedVersion is null ? 5 : 6;
        for (var i = 0; i < companions.Count; i++, parameter += 2)
        {
            sql.Append(CultureInfo.InvariantCulture,
                $", companion{i} AS (INSERT INTO {table} AS t (service_id, state_name, grain_id, version, payload) SELECT $1, ${parameter}, $3, 1, ${parameter + 1} FROM core ON CONFLICT (service_id, state_name, grain_id) DO UPDATE SET version = t.version + 1, payload = EXCLUDED.payload)");
        }

        sql.Append(" SELECT count(*) FROM core");
        var command = new NpgsqlBatchCommand(sql.ToString());
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = serviceId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = operation.StateName });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = operation.GrainId });
        command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = operation.Payload });
        if (operation.ExpectedVersion is { } expected)
        {
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = expected });
        }

        foreach (var companion in companions)
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = companion.StateName });
            command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = companion.Payload });
        }

        return command;
    }

    private async ValueTask ReleaseWriterConnectionAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
            _connection = null;
        }
    }
}
