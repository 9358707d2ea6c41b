namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// The store-specific half of group commit: applies a whole batch in ONE transaction.
/// </summary>
internal interface IBatchCommitter
{
    /// <summary>
    /// Applies every operation in order inside one transaction, setting each one's
    /// <see cref="StorageOperation.PendingOutcome"/> (a version conflict affects only that operation),
    /// then commits. Throws when the transaction could not be committed; in that case nothing of
    /// the batch may be visible in the store.
    /// </summary>
    /// <returns>How long the COMMIT itself took (the durable flush), for the metrics.</returns>
    Task<TimeSpan> CommitAsync(IReadOnlyList<StorageOperation> batch, CancellationToken cancellationToken);
}
