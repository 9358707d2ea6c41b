using System.Collections.Concurrent;
using System.Diagnostics;
using LstmOrleans.Persistence.GroupCommit;
using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;
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
///
/// What a caller of a write or clear can assume: a call that returns was committed. A call that fails with an
/// <see cref="Orleans.Runtime.OrleansException"/> saying "none of them was applied" failed before the COMMIT and was
/// rolled back. One saying "the outcome is unknown" failed in the COMMIT itself (the WAL write or its fsync): the write
/// may or may not be stored, now or after the next open (WAL recovery may replay frames whose fsync failed). In both
/// cases the grain state's ETag is left at the last version known to be stored, so it is never ahead of the store; a
/// later write with it is checked against the stored version (it applies only if the failed one did not, else it fails
/// with InconsistentStateException), and a read returns what is stored.
/// </summary>
public sealed class SqliteGrainStorage : IGrainStorage, ICompanionWriteGrainStorage, ILifecycleParticipant<ISiloLifecycle>, IAsyncDisposable
{
    private readonly string _name;
    private readonly SqliteStore _store;
    private readonly GroupCommitGrainStorage _storage;

    public SqliteGrainStorage(string name, SqliteGrainStorageOptions options, IOptions<ClusterOptions> clusterOptions, ILogger<SqliteGrainStorage> logger)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(options);
        new SqliteGrainStorageOptionsValidator(options, name).ValidateConfiguration();
        _name = name;
        var serviceId = clusterOptions.Value.ServiceId;
        _store = new SqliteStore(name, serviceId, options);
        _storage = new GroupCommitGrainStorage(name, serviceId, options, _store, logger);
    }

    /// <summary>
    /// The synchronous level the open database actually runs with (PRAGMA synchronous read back after setting
    /// it); null before <see cref="InitializeAsync"/>. Also in the start-up log line.
    /// </summary>
    public SqliteSynchronousMode? EffectiveSynchronous => _store.EffectiveSynchronous;

    /// <summary>
    /// Whether the writer gathers each commit's WAL writes into one (<see cref="SqliteGrainStorageOptions.BufferWalWrites"/>
    /// and a synchronous level that syncs every commit). Also in the start-up log line.
    /// </summary>
    public bool WalWritesBuffered => _store.WritesBuffered;

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

    /// <inheritdoc />
    public Task WriteStateWithCompanionsAsync<T, TCompanion>(string stateName, GrainId grainId, IGrainState<T> grainState,
        IReadOnlyList<KeyValuePair<string, TCompanion>> companions) =>
        _storage.WriteStateWithCompanionsAsync(stateName, grainId, grainState, companions);
}

/// <summary>
/// The SQLite half: the schema, the single writer (one connection, prepared statements, one transaction per
/// batch, run on its own thread because Microsoft.Data.Sqlite blocks) and pooled readers.
/// </summary>
internal sealed class SqliteStore(string name, string serviceId, SqliteGrainStorageOptions options) : IGroupCommitStore, IDisposable
{
    private readonly string _connectionString = ConnectionString(Path.GetFullPath(options.DataSource!), options);

    /// <summary>
    /// The writer's connection: the same file, through <see cref="WalWriteBufferVfs"/> when its WAL writes are buffered
    /// (a URI filename names the VFS, the path percent-escaped; readers keep the default VFS and see only what a commit
    /// synced).
    /// </summary>
    private readonly string _writerConnectionString = BuffersWalWrites(options)
        ? ConnectionString($"{new Uri(Path.GetFullPath(options.DataSource!)).AbsoluteUri}?vfs={WalWriteBufferVfs.Name}", options)
        : ConnectionString(Path.GetFullPath(options.DataSource!), options);

    private static string ConnectionString(string dataSource, SqliteGrainStorageOptions options) => new SqliteConnectionStringBuilder
    {
        DataSource = dataSource,
        Mode = SqliteOpenMode.ReadWriteCreate,
        Cache = SqliteCacheMode.Private,
        Pooling = true,
        DefaultTimeout = (int)Math.Ceiling(options.BusyTimeout.TotalSeconds),
    }.ToString();

    /// <summary>Whether the writer buffers its WAL writes: asked for, and SQLite syncs the WAL at every commit.</summary>
    private static bool BuffersWalWrites(SqliteGrainStorageOptions options) =>
        options.BufferWalWrites && options.Synchronous >= SqliteSynchronousMode.Full;

    /// <summary>
    /// The table name as a quoted identifier, the only form it takes in SQL: a name the option check allows may still be
    /// a keyword (a table called "order" or "select" was a syntax error at the first read or write). SQLite matches
    /// table names case-insensitively whether quoted or not, so a table created unquoted by an earlier version is the
    /// same table; the option check allows no character that would need escaping inside the quotes.
    /// </summary>
    internal static string QuotedTable(string tableName) => $"\"{tableName}\"";

    private readonly string _table = QuotedTable(options.TableName);

    // ?1 service_id, ?2 state_name, ?3 grain_id, as in the writer's statements (RawStatement binds them).
    private readonly string _selectSql = $"SELECT version, payload FROM {QuotedTable(options.TableName)} WHERE service_id = ?1 AND state_name = ?2 AND grain_id = ?3";
    private readonly ConcurrentBag<ReaderSession> _readers = [];
    private bool _closed;
    private SqliteConnection? _connection;
    private RawStatement? _insert;
    private RawStatement? _update;
    private RawStatement? _clear;
    private RawStatement? _exists;
    private RawStatement? _upsert;

    public string Kind => "sqlite";

    public string DisplayName => "SQLite";

    public bool CommitBlocksThread => true;

    /// <summary>Whether the writer connection goes through <see cref="WalWriteBufferVfs"/>.</summary>
    public bool WritesBuffered { get; } = BuffersWalWrites(options);

    /// <summary>PRAGMA synchronous as read back from the writer connection; null until the store is opened.</summary>
    public SqliteSynchronousMode? EffectiveSynchronous { get; private set; }

    /// <summary>PRAGMA wal_autocheckpoint as read back from the writer connection; null until the store is opened.</summary>
    public int? EffectiveWalAutoCheckpointPages { get; private set; }

    public string Describe() => $"file {options.DataSource}, synchronous={EffectiveSynchronous} (PRAGMA synchronous={(int?)EffectiveSynchronous}), checkpoint every {EffectiveWalAutoCheckpointPages} WAL pages (PRAGMA wal_autocheckpoint), writer cache {options.WriterCacheSizeKiB} KiB, WAL writes {(WritesBuffered ? "buffered per commit" : "unbuffered")}";

    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        Volatile.Write(ref _closed, false);   // a store closed with its silo may be opened again: readers are kept again
        try
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(options.DataSource!));
            if (!string.IsNullOrEmpty(directory))
            {
                Directory.CreateDirectory(directory);
            }

            await Task.Run(Open, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SqliteException { SqliteErrorCode: not raw.SQLITE_ERROR })
        {
            // The bare errors ("SQLite Error 14: 'unable to open database file'", "The file '...' already exists")
            // name neither the provider nor the setting that points at the unusable place. A plain SQL error
            // (SQLITE_ERROR) is not about the file: left as it is, not blamed on DataSource.
            DisposeWriter();
            throw new InvalidOperationException(
                $"SQLite grain storage '{name}' could not open its database {options.DataSource} ({nameof(SqliteGrainStorageOptions)}.{nameof(SqliteGrainStorageOptions.DataSource)}): its folder must exist or be creatable, the folder and file must be readable and writable by this process, and an existing file must be a SQLite database. {e.GetType().Name}: {e.Message}",
                e);
        }
    }

    public ValueTask CloseAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The writer and every idle reader (a read in flight disposes its own reader when it finishes).</summary>
    public void Dispose()
    {
        Volatile.Write(ref _closed, true);
        DisposeWriter();
        while (_readers.TryTake(out var reader)) reader.Dispose();
    }

    // Reads run on the thread pool: Microsoft.Data.Sqlite's async calls complete synchronously, and a
    // grain turn must never block on I/O.
    public Task<StoredState?> ReadAsync(string stateName, string grainId, CancellationToken cancellationToken) =>
        Task.Run(() => Read(stateName, grainId), cancellationToken);

    private StoredState? Read(string stateName, string grainId)
    {
        var reader = _readers.TryTake(out var pooled) ? pooled : OpenReader();
        try
        {
            var row = reader.Select.ReadRow(stateName, grainId);
            if (Volatile.Read(ref _closed)) reader.Dispose();
            else _readers.Add(reader);
            return row;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A reader connection with the SELECT prepared once on its raw handle. Readers are kept open and reused: a fresh
    /// (pooled) Microsoft.Data.Sqlite command per read parsed and prepared the statement every time and boxed its
    /// parameters, and WAL lets any number of them read beside the writer. A reader holds no read transaction
    /// between reads (the statement is reset after each), so it never holds a checkpoint back.
    /// </summary>
    private ReaderSession OpenReader()
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            connection.Open();
            return new ReaderSession(connection, new RawStatement(connection.Handle!, _selectSql, serviceId));
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private sealed class ReaderSession(SqliteConnection connection, RawStatement select) : IDisposable
    {
        public RawStatement Select { get; } = select;

        public void Dispose()
        {
            Select.Dispose();
            connection.Dispose();
        }
    }

    private void Open()
    {
        var table = _table;
        if (WritesBuffered)
        {
            WalWriteBufferVfs.EnsureRegistered();
        }

        _connection = new SqliteConnection(_writerConnectionString);
        _connection.Open();
        using (var pragma = _connection.CreateCommand())
        {
            pragma.CommandText = "PRAGMA journal_mode=WAL;";
            var mode = Convert.ToString(pragma.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException($"SQLite grain storage '{name}' could not switch {options.DataSource} to WAL mode (got '{mode}').");
            }

            pragma.CommandText = $"PRAGMA synchronous={(int)options.Synchronous}; PRAGMA wal_autocheckpoint={options.WalAutoCheckpointPages}; PRAGMA cache_size=-{options.WriterCacheSizeKiB};";
            pragma.ExecuteNonQuery();
            // Read the level back: it is what every acknowledged write's durability rests on, and the start-up log
            // (Describe) reports this value, not the requested one.
            pragma.CommandText = "PRAGMA synchronous;";
            var synchronous = (SqliteSynchronousMode)Convert.ToInt32(pragma.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
            if (synchronous != options.Synchronous)
            {
                throw new InvalidOperationException($"SQLite grain storage '{name}' asked {options.DataSource} for synchronous={options.Synchronous} but got {synchronous}.");
            }

            EffectiveSynchronous = synchronous;
            pragma.CommandText = "PRAGMA wal_autocheckpoint;";
            EffectiveWalAutoCheckpointPages = Convert.ToInt32(pragma.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
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

        // The hot statements are prepared on the raw SQLite handle (SQLitePCLRaw, what Microsoft.Data.Sqlite
        // itself calls): the ServiceId is bound once for the statement's lifetime, the state name only when it
        // changes, and the grain id is encoded into a reused UTF-8 buffer, so a write costs a few native calls
        // instead of a data reader, boxed parameter values and a UTF-8 array per key column.
        // ?1 service_id, ?2 state_name, ?3 grain_id, ?4 expected version, ?5 payload.
        const string Key = "service_id = ?1 AND state_name = ?2 AND grain_id = ?3";
        var handle = _connection.Handle!;
        _insert = new RawStatement(handle, $"INSERT INTO {table} (service_id, state_name, grain_id, version, payload) VALUES (?1, ?2, ?3, 1, ?5) ON CONFLICT DO NOTHING", serviceId);
        _update = new RawStatement(handle, $"UPDATE {table} SET version = version + 1, payload = ?5 WHERE {Key} AND version = ?4", serviceId);
        _clear = new RawStatement(handle, $"UPDATE {table} SET version = version + 1, payload = NULL WHERE {Key} AND version = ?4", serviceId);
        _exists = new RawStatement(handle, $"SELECT 1 FROM {table} WHERE {Key}", serviceId);
        _upsert = new RawStatement(handle,
            $"INSERT INTO {table} (service_id, state_name, grain_id, version, payload) VALUES (?1, ?2, ?3, 1, ?5) " +
            "ON CONFLICT (service_id, state_name, grain_id) DO UPDATE SET version = version + 1, payload = excluded.payload", serviceId);
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
            DisposeWriter();
            throw;
        }
    }

    private async Task<TimeSpan> CommitOnAsync(SqliteConnection connection, IReadOnlyList<StorageOperation> batch)
    {
        // BEGIN IMMEDIATE: take the write lock up front, so a second writer on the same file waits
        // (busy timeout) instead of failing mid-batch.
        using var transaction = connection.BeginTransaction(deferred: false);
        foreach (var operation in batch)
        {
            var outcome = Apply(operation);
            operation.PendingOutcome = outcome;
            if (!outcome.Conflict && operation.Companions is { } companions)
            {
                foreach (var companion in companions)
                {
                    Apply(companion);
                }
            }
        }

        if (options.OnBeforeCommit is { } beforeCommit)
        {
            await beforeCommit(batch.Count).ConfigureAwait(false);
        }

        var flushStarted = Stopwatch.GetTimestamp();
        try
        {
            transaction.Commit();
        }
        catch (Exception e)
        {
            // The COMMIT writes the batch's WAL frames and (synchronous FULL/EXTRA) fsyncs them. If that fails the frames
            // may still be in the file, whole: this connection does not publish them (and is closed by the caller), but
            // the next open's WAL recovery may replay them. So the batch may or may not be stored.
            throw new CommitOutcomeUnknownException($"SQLite grain storage '{name}': the COMMIT of a batch of {batch.Count} operation(s) failed.", e);
        }

        return Stopwatch.GetElapsedTime(flushStarted);
    }

    // The writer is the only one changing rows through this provider, and the transaction holds the
    // database write lock, so "matches the expected version" is decided by rows affected: 0 means
    // another writer got there first, and nothing was changed.
    private CommitOutcome Apply(StorageOperation operation)
    {
        var (stateName, grainId) = (operation.StateName, operation.GrainId);
        var payload = operation.Payload.Span;
        switch (operation.Kind, operation.ExpectedVersion)
        {
            case (StorageOperationKind.Write, null):
                return _insert!.Execute(stateName, grainId, version: null, payload, bindPayload: true) == 1 ? CommitOutcome.Applied(1) : CommitOutcome.Conflicted;
            case (StorageOperationKind.Write, long expected):
                return _update!.Execute(stateName, grainId, expected, payload, bindPayload: true) == 1 ? CommitOutcome.Applied(expected + 1) : CommitOutcome.Conflicted;
            case (StorageOperationKind.Clear, null):
                // Nothing was ever read: fine if there is still nothing, a conflict if someone wrote.
                return _exists!.Execute(stateName, grainId, version: null, payload: default, bindPayload: false) == 0 ? CommitOutcome.Applied(null) : CommitOutcome.Conflicted;
            case (StorageOperationKind.Clear, long expected):
                return _clear!.Execute(stateName, grainId, expected, payload: default, bindPayload: false) == 1 ? CommitOutcome.Applied(expected + 1) : CommitOutcome.Conflicted;
            case (StorageOperationKind.Upsert, _):
                _upsert!.Execute(stateName, grainId, version: null, payload, bindPayload: true);
                return CommitOutcome.Applied(null);
            default:
                throw new InvalidOperationException($"Unknown storage operation {operation.Kind}.");
        }
    }

    private void DisposeWriter()
    {
        _insert?.Dispose();
        _update?.Dispose();
        _clear?.Dispose();
        _exists?.Dispose();
        _upsert?.Dispose();
        _insert = _update = _clear = _exists = _upsert = null;
        _connection?.Dispose();
        _connection = null;
    }
}

/// <summary>
/// A statement prepared once on a raw SQLite handle (the writer's, or one reader's), with parameters ?1 service_id,
/// ?2 state_name, ?3 grain_id, ?4 expected version, ?5 payload (each statement uses a subset). SQLite keeps bindings
/// across resets, so the ServiceId is bound once and the state name only when a different one comes. Not thread-safe:
/// the writer's are used by the writer thread only, a reader's by whoever holds that reader.
/// </summary>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3 _database;
    private readonly sqlite3_stmt _statement;
    private readonly bool _returnsRows;
    private string? _boundStateName;
    private byte[] _grainIdUtf8 = new byte[256];

    public RawStatement(sqlite3 database, string sql, string serviceId)
    {
        _database = database;
        Check(raw.sqlite3_prepare_v3(database, sql, raw.SQLITE_PREPARE_PERSISTENT, out _statement));
        _returnsRows = raw.sqlite3_column_count(_statement) > 0;
        Check(raw.sqlite3_bind_text(_statement, 1, serviceId));
    }

    /// <summary>
    /// Binds and runs the statement once. Returns the rows changed (INSERT/UPDATE) or, for a query, 1 when it
    /// found a row and 0 when not.
    /// </summary>
    public int Execute(string stateName, string grainId, long? version, ReadOnlySpan<byte> payload, bool bindPayload)
    {
        BindKey(stateName, grainId);
        if (version is { } expected)
        {
            Check(raw.sqlite3_bind_int64(_statement, 4, expected));
        }

        if (bindPayload)
        {
            // An empty span would reach SQLite as a null pointer, i.e. NULL: the tombstone. Bind an empty blob.
            // sqlite3_bind_blob with a span binds SQLITE_TRANSIENT: SQLite copies the bytes before returning, so the
            // (pooled) array may be reused as soon as the batch is over.
            Check(payload.Length == 0 ? raw.sqlite3_bind_zeroblob(_statement, 5, 0) : raw.sqlite3_bind_blob(_statement, 5, payload));
        }

        try
        {
            var result = raw.sqlite3_step(_statement);
            if (result == raw.SQLITE_ROW && _returnsRows)
            {
                return 1;
            }

            if (result != raw.SQLITE_DONE)
            {
                Check(result);
            }

            return _returnsRows ? 0 : raw.sqlite3_changes(_database);
        }
        finally
        {
            raw.sqlite3_reset(_statement);
        }
    }

    /// <summary>?2 state_name (only when it changed since the last call) and ?3 grain_id (UTF-8, through a reused buffer).</summary>
    private void BindKey(string stateName, string grainId)
    {
        if (!ReferenceEquals(stateName, _boundStateName))
        {
            Check(raw.sqlite3_bind_text(_statement, 2, stateName));
            _boundStateName = stateName;
        }

        var length = Encoding.UTF8.GetMaxByteCount(grainId.Length);
        if (length > _grainIdUtf8.Length)
        {
            _grainIdUtf8 = new byte[length];
        }

        length = Encoding.UTF8.GetBytes(grainId, _grainIdUtf8);
        Check(raw.sqlite3_bind_text(_statement, 3, _grainIdUtf8.AsSpan(0, length)));
    }

    /// <summary>For a SELECT of (version, payload): binds the key and returns the row, or null when there is none.</summary>
    public StoredState? ReadRow(string stateName, string grainId)
    {
        BindKey(stateName, grainId);
        try
        {
            var result = raw.sqlite3_step(_statement);
            if (result == raw.SQLITE_DONE) return null;
            if (result != raw.SQLITE_ROW) Check(result);
            long version = raw.sqlite3_column_int64(_statement, 0);
            // NULL is a clear's tombstone; an empty blob is an empty payload (as Microsoft.Data.Sqlite read them).
            byte[]? payload = raw.sqlite3_column_type(_statement, 1) == raw.SQLITE_NULL ? null : raw.sqlite3_column_blob(_statement, 1).ToArray();
            return new StoredState(version, payload);
        }
        finally
        {
            raw.sqlite3_reset(_statement);
        }
    }

    private void Check(int result)
    {
        if (result != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(result, _database);
        }
    }

    public void Dispose() => _statement.Dispose();
}
