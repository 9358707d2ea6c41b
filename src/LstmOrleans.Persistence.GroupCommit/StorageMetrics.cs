using System.Diagnostics.Metrics;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// Instruments shared by the LstmOrleans storage providers (meter <see cref="MeterName"/>, so
/// <c>dotnet-counters monitor --counters LstmOrleans.Storage</c> shows them). Together they say whether group commit
/// actually groups (operations per transaction), how many transactions a second the store takes, and where a
/// write's latency goes: waiting in the queue, applying the rows, or the durable commit (WAL write + fsync).
/// </summary>
internal static class StorageMetrics
{
    public const string MeterName = "LstmOrleans.Storage";
    public const string BatchSizeInstrument = "lstmorleans.storage.batch_size";
    public const string TransactionsInstrument = "lstmorleans.storage.transactions";
    public const string OperationsInstrument = "lstmorleans.storage.operations";
    public const string CommitFailuresInstrument = "lstmorleans.storage.commit_failures";
    public const string CommitRetriesInstrument = "lstmorleans.storage.commit_retries";
    public const string ConflictsInstrument = "lstmorleans.storage.etag_conflicts";
    public const string CommitDurationInstrument = "lstmorleans.storage.commit_duration";
    public const string FlushDurationInstrument = "lstmorleans.storage.flush_duration";
    public const string QueueWaitInstrument = "lstmorleans.storage.queue_wait";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Histogram<int> BatchSize = Meter.CreateHistogram<int>(
        BatchSizeInstrument, unit: "{operation}", description: "Operations committed per storage transaction.");

    public static readonly Counter<long> Transactions = Meter.CreateCounter<long>(
        TransactionsInstrument, unit: "{transaction}", description: "Storage transactions committed (dotnet-counters shows the rate).");

    public static readonly Counter<long> Operations = Meter.CreateCounter<long>(
        OperationsInstrument, unit: "{operation}", description: "Writes and clears committed, including ones rejected for a stale etag.");

    public static readonly Histogram<double> CommitDuration = Meter.CreateHistogram<double>(
        CommitDurationInstrument, unit: "s", description: "Time the writer spent on one batch: applying its rows and committing.");

    public static readonly Histogram<double> FlushDuration = Meter.CreateHistogram<double>(
        FlushDurationInstrument, unit: "s", description: "Time of the COMMIT itself (writing the log and, when the store syncs, fsync).");

    public static readonly Histogram<double> QueueWait = Meter.CreateHistogram<double>(
        QueueWaitInstrument, unit: "s", description: "How long the oldest operation of a batch waited in the queue before its transaction began.");

    public static readonly Counter<long> CommitFailures = Meter.CreateCounter<long>(
        CommitFailuresInstrument, unit: "{batch}", description: "Storage transactions that failed and were rolled back.");

    public static readonly Counter<long> CommitRetries = Meter.CreateCounter<long>(
        CommitRetriesInstrument, unit: "{batch}", description: "Storage transactions rolled back by a deadlock with another writer and tried again.");

    public static readonly Counter<long> Conflicts = Meter.CreateCounter<long>(
        ConflictsInstrument, unit: "{operation}", description: "Writes or clears rejected because of a stale etag.");
}
