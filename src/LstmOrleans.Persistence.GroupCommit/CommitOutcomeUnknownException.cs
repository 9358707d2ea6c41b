namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// Thrown by a store when the COMMIT itself failed (SQLite: the WAL write or its fsync; PostgreSQL: the connection lost
/// or timed out while the COMMIT was in flight): unlike a failure before it, which rolls the transaction back, the
/// batch may or may not be stored. The WAL frames of a failed fsync may still reach the disk and be replayed by the
/// next open, and a server may have committed before the connection broke. Never retried. The callers of the batch
/// get an <see cref="Orleans.Runtime.OrleansException"/> with this as its inner exception and the original error inside it.
/// </summary>
internal sealed class CommitOutcomeUnknownException(string message, Exception innerException) : Exception(message, innerException)
{
    /// <summary>True when <paramref name="exception"/> or one of its inner exceptions reports a commit of unknown outcome.</summary>
    public static bool IsIn(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is CommitOutcomeUnknownException) return true;
        }

        return false;
    }
}
