using Microsoft.Extensions.Logging;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>Log messages shared by the group-commit providers; <c>{Store}</c> is "SQLite" or "PostgreSQL".</summary>
internal static partial class GroupCommitLog
{
    [LoggerMessage(1, LogLevel.Information, "{Store} grain storage {Name} ready for ServiceId={ServiceId} ({Details}, max batch {MaxBatchSize})")]
    public static partial void Initialized(ILogger logger, string store, string name, string serviceId, string details, int maxBatchSize);

    [LoggerMessage(2, LogLevel.Error, "{Store} grain storage {Name} failed to commit a batch of {Count} operation(s); all were rolled back")]
    public static partial void CommitFailed(ILogger logger, Exception exception, string store, string name, int count);

    [LoggerMessage(7, LogLevel.Error, "{Store} grain storage {Name} could not confirm the commit of a batch of {Count} operation(s): the outcome is unknown, the writes may or may not be stored")]
    public static partial void CommitOutcomeUnknown(ILogger logger, Exception exception, string store, string name, int count);

    [LoggerMessage(5, LogLevel.Warning, "{Store} grain storage {Name}: a batch of {Count} operation(s) was rolled back on attempt {Attempt} by a conflict with another transaction and is tried again")]
    public static partial void CommitRetried(ILogger logger, Exception exception, string store, string name, int count, int attempt);

    [LoggerMessage(6, LogLevel.Error, "{Store} grain storage {Name} could not read the stored {StateName} of {GrainId} (version {Version}); the record was left as it is")]
    public static partial void ReadFailed(ILogger logger, Exception exception, string store, string name, string stateName, Orleans.Runtime.GrainId grainId, long version);

    [LoggerMessage(3, LogLevel.Information, "{Store} grain storage {Name} closed after {Batches} batches holding {Operations} operations (largest {Largest})")]
    public static partial void Closed(ILogger logger, string store, string name, long batches, long operations, int largest);

    [LoggerMessage(4, LogLevel.Debug, "{Store} grain storage {Name} committed {Count} operation(s) in one transaction: queued {QueueWaitMs:F2} ms (oldest), applied in {ApplyMs:F2} ms, commit {FlushMs:F2} ms")]
    public static partial void BatchCommitted(ILogger logger, string store, string name, int count, double queueWaitMs, double applyMs, double flushMs);
}
