namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// The store-specific half of group commit: applies a whole batch in ONE transaction.
/// </summary>
internal interface IBatchCommitter
{
    /// <summary>
    /// Applies every operation in order inside one transaction, setting each one's
    /// <see cref="StorageOperation.PendingOutcome"/> (a version conflict affects only that operation),
    /// then commits. Throws when the transaction could not be committed. A failure before the COMMIT rolls the batch
    /// back: nothing of it may be visible in the store. A failure of the COMMIT itself (the WAL write or fsync, a
    /// connection lost while it was in flight) leaves the outcome unknown and is thrown as
    /// <see cref="CommitOutcomeUnknownException"/>, so no caller is told its write was not applied when it may have been.
    /// </summary>
    /// <returns>How long the COMMIT itself took (the durable flush), for the metrics.</returns>
    Task<TimeSpan> CommitAsync(IReadOnlyList<StorageOperation> batch, CancellationToken cancellationToken);

    /// <summary>
    /// Whether a batch that failed with <paramref name="exception"/> on its <paramref name="attempt"/>-th try (1 = the
    /// first) is tried again as a whole. Only for errors that guarantee the transaction was rolled back and that come
    /// from meeting another transaction, not from the batch itself (PostgreSQL's deadlock and serialization failures),
    /// so a retry applies the same operations to the same rows and cannot apply anything twice. A failure whose
    /// outcome is unknown (a connection lost during COMMIT) is never retried: the callers get the error.
    /// </summary>
    bool ShouldRetry(Exception exception, int attempt) => false;
}
