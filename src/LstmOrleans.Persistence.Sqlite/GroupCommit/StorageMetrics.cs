using System.Diagnostics.Metrics;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// Instruments shared by the LstmOrleans storage providers. The batch-size histogram shows whether
/// group commit is actually grouping (many writes per transaction) under load.
/// </summary>
internal static class StorageMetrics
{
    public const string MeterName = "LstmOrleans.Storage";
    public const string BatchSizeInstrument = "lstmorleans.storage.batch_size";
    public const string CommitFailuresInstrument = "lstmorleans.storage.commit_failures";
    public const string ConflictsInstrument = "lstmorleans.storage.etag_conflicts";
    public const string CommitDurationInstrument = "lstmorleans.storage.commit_duration";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Histogram<int> BatchSize = Meter.CreateHistogram<int>(
        BatchSizeInstrument, unit: "{operation}", description: "Operations committed per storage transaction.");

    public static readonly Histogram<double> CommitDuration = Meter.CreateHistogram<double>(
        CommitDurationInstrument, unit: "s", description: "Time the writer spent applying and committing one batch.");

    public static readonly Counter<long> CommitFailures = Meter.CreateCounter<long>(
        CommitFailuresInstrument, unit: "{batch}", description: "Storage transactions that failed and were rolled back.");

    public static readonly Counter<long> Conflicts = Meter.CreateCounter<long>(
        ConflictsInstrument, unit: "{operation}", description: "Writes or clears rejected because of a stale etag.");
}
