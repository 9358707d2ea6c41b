using LstmOrleans.Persistence.GroupCommit;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Persistence.Sqlite;

/// <summary>
/// SQLite's PRAGMA synchronous levels, as they apply in WAL mode (the provider always uses WAL). "Survives" below
/// means: a write whose call returned is still there after that event.
/// </summary>
public enum SqliteSynchronousMode
{
    /// <summary>
    /// No fsync at all. Survives the silo process being killed (the WAL is written to the OS before the call
    /// returns); an OS crash or power loss can lose acknowledged writes and can corrupt the database.
    /// </summary>
    Off = 0,

    /// <summary>
    /// The WAL is synced only at checkpoints. Survives the silo process being killed (SIGKILL, crash, OOM);
    /// an OS crash or power loss can lose the writes acknowledged since the last checkpoint, but leaves a
    /// consistent database. Faster than <see cref="Full"/> because no commit waits for the disk; an opt-in
    /// for deployments that accept that loss.
    /// </summary>
    Normal = 1,

    /// <summary>
    /// The WAL is synced (fsync) before every commit returns: an acknowledged write survives a process kill,
    /// an OS crash and a power loss (as far as the disk honours fsync). The default.
    /// </summary>
    Full = 2,

    /// <summary>Like <see cref="Full"/>, and also syncs the directory after WAL resets.</summary>
    Extra = 3,
}

/// <summary>Options of the SQLite grain storage provider.</summary>
public sealed class SqliteGrainStorageOptions : IGroupCommitStorageOptions
{
    /// <summary>Path of the database file (created if missing, with its directory). Required.</summary>
    public string? DataSource { get; set; }

    /// <summary>
    /// Table holding the grain states; created if missing. A plain identifier (letters, digits, underscore, at most 63
    /// characters, not starting with a digit); SQL keywords such as "order" are fine, the provider quotes the name. Names starting with sqlite_ are refused (SQLite reserves them).
    /// </summary>
    public string TableName { get; set; } = "lstm_grain_state";

    /// <summary>Most writes committed in one transaction.</summary>
    public int MaxBatchSize { get; set; } = 2048;

    /// <summary>
    /// How long the writer waits for more writes when a batch is not full. Zero (default) commits as
    /// soon as the queue is drained; writes arriving during a commit still form the next batch.
    /// </summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// PRAGMA synchronous: what an acknowledged write survives. <see cref="SqliteSynchronousMode.Full"/> (default):
    /// process kill, OS crash and power loss. <see cref="SqliteSynchronousMode.Normal"/>: process kill only, faster.
    /// </summary>
    public SqliteSynchronousMode Synchronous { get; set; } = SqliteSynchronousMode.Full;

    /// <summary>
    /// PRAGMA wal_autocheckpoint: the writer copies the WAL back into the database file once it holds this many
    /// pages (4 KB each). SQLite's own default is 1000; the provider uses 100000 (a WAL file of up to ~400 MB, reused
    /// from its start after each checkpoint) because stream states are rewritten over and over: a checkpoint copies
    /// each distinct page once, so a longer WAL copies far fewer pages per write, and the checkpoint (which also
    /// fsyncs the database file, inside the commit that crosses the threshold) stalls the commit path less often.
    /// Measured with 1,000 streams in batches of 64 (BENCHMARKS.md, session 8): p99 15-21 ms against 38-52 ms at
    /// 10000. Lower it to bound the WAL file's size and crash-recovery time (recovery reads the whole WAL).
    /// </summary>
    public int WalAutoCheckpointPages { get; set; } = DefaultWalAutoCheckpointPages;

    /// <summary>The default of <see cref="WalAutoCheckpointPages"/>.</summary>
    public const int DefaultWalAutoCheckpointPages = 100_000;

    /// <summary>The range <see cref="WalAutoCheckpointPages"/> accepts.</summary>
    public const int MinWalAutoCheckpointPages = 100, MaxWalAutoCheckpointPages = 1_000_000;

    /// <summary>
    /// Page cache of the writer connection, in KiB (PRAGMA cache_size=-N). Every write first finds its row's page;
    /// when the working set (about 1.5 KB per stream) outgrows the cache, each write re-reads that page from the OS
    /// (a pread, from the WAL or the database file). SQLite's default is 2 MiB (~1,300 streams); the provider uses
    /// 64 MiB (~45,000 streams' rows), allocated only as pages are touched.
    /// </summary>
    public int WriterCacheSizeKiB { get; set; } = 64 * 1024;

    /// <summary>
    /// Gather the WAL writes of each commit into one write (a VFS shim on the writer connection): SQLite writes every
    /// WAL frame as two system calls, which cost the writer thread ~40 % of its time here. Takes effect only with
    /// <see cref="Synchronous"/> Full or Extra, where SQLite syncs the WAL (and so writes the buffer) before a commit is
    /// visible to anyone; with Normal or Off it is ignored. On by default; off gives SQLite's own writes.
    /// </summary>
    public bool BufferWalWrites { get; set; } = true;

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
public sealed class SqliteGrainStorageOptionsValidator(SqliteGrainStorageOptions options, string name) : IConfigurationValidator
{
    public void ValidateConfiguration()
    {
        var prefix = $"Invalid configuration for SQLite grain storage '{name}': {nameof(SqliteGrainStorageOptions)}.";
        if (string.IsNullOrWhiteSpace(options.DataSource))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.DataSource)} is required (path of the database file).");
        }

        if (options.DataSource.Trim().Equals(":memory:", StringComparison.OrdinalIgnoreCase) || options.DataSource.Contains("mode=memory", StringComparison.OrdinalIgnoreCase))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.DataSource)} must be a file: an in-memory database is not durable and cannot be shared by the reader and writer connections.");
        }

        if (!Enum.IsDefined(options.Synchronous))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.Synchronous)} has the undefined value {(int)options.Synchronous}.");
        }

        if (options.WalAutoCheckpointPages is < SqliteGrainStorageOptions.MinWalAutoCheckpointPages or > SqliteGrainStorageOptions.MaxWalAutoCheckpointPages)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.WalAutoCheckpointPages)} must be between 100 and 1000000 pages, was {options.WalAutoCheckpointPages}.");
        }

        if (options.WriterCacheSizeKiB is < 256 or > 16 * 1024 * 1024)
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.WriterCacheSizeKiB)} must be between 256 KiB and 16 GiB, was {options.WriterCacheSizeKiB} KiB.");
        }

        GroupCommitRegistration.ValidateTimeout(prefix, nameof(options.BusyTimeout), options.BusyTimeout, TimeSpan.FromMinutes(10));
        GroupCommitRegistration.ValidateCommon(prefix, options, "AddSqliteGrainStorage");
        // Keywords are fine (the provider quotes the name), but SQLite refuses to create a table named sqlite_*, in any
        // case: without this the silo would pass the check and fail at start with "object name reserved for internal use".
        if (options.TableName.StartsWith("sqlite_", StringComparison.OrdinalIgnoreCase))
        {
            throw new OrleansConfigurationException($"{prefix}{nameof(options.TableName)} '{options.TableName}' starts with 'sqlite_', which SQLite reserves for its own tables; choose another name.");
        }
    }
}
