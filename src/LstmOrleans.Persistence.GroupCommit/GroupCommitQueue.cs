using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// Funnels the writes of every grain using one storage provider into a single writer that commits
/// them in batches: each batch is ONE transaction, and each caller's task completes only after that
/// transaction committed. While one batch commits (and syncs to disk), the next one fills up, so the
/// cost of a durable commit is shared by all writes that arrived meanwhile.
/// </summary>
internal sealed class GroupCommitQueue
{
    private Channel<StorageOperation> _channel = NewChannel();

    private readonly IBatchCommitter _committer;
    private readonly string _storeDisplayName;
    private readonly string _providerName;
    private readonly int _maxBatchSize;
    private readonly TimeSpan _maxDelay;
    private readonly bool _dedicatedThread;
    private readonly ILogger _logger;
    private readonly KeyValuePair<string, object?>[] _tags;
    private Task? _writerLoop;
    private long _committedBatches;
    private long _committedOperations;
    private long _failedBatches;
    private long _retriedBatches;
    private int _largestBatch;

    /// <param name="committer">Applies one batch in one transaction.</param>
    /// <param name="providerName">Provider name, for errors, logs and metric tags.</param>
    /// <param name="storeKind">"sqlite" or "postgres", for metric tags.</param>
    /// <param name="storeDisplayName">"SQLite" or "PostgreSQL", for logs.</param>
    /// <param name="maxBatchSize">Upper bound on operations per transaction.</param>
    /// <param name="maxDelay">How long the writer lingers for more operations when a batch is not full; zero commits as soon as the queue is drained.</param>
    /// <param name="dedicatedThread">
    /// Run the writer on its own thread: for a committer that blocks (SQLite's commit waits for fsync), so
    /// it never holds one of the few thread-pool threads the grains run on.
    /// </param>
    /// <param name="logger">Logs failed batches (error) and every batch's size and timings (debug).</param>
    public GroupCommitQueue(
        IBatchCommitter committer,
        string providerName,
        string storeKind,
        string storeDisplayName,
        int maxBatchSize,
        TimeSpan maxDelay,
        bool dedicatedThread,
        ILogger logger)
    {
        _committer = committer;
        _providerName = providerName;
        _storeDisplayName = storeDisplayName;
        _maxBatchSize = maxBatchSize;
        _maxDelay = maxDelay;
        _dedicatedThread = dedicatedThread;
        _logger = logger;
        _tags =
        [
            new("lstmorleans.storage.provider", providerName),
            new("lstmorleans.storage.store", storeKind),
        ];
    }

    public long CommittedBatches => Interlocked.Read(ref _committedBatches);

    public long CommittedOperations => Interlocked.Read(ref _committedOperations);

    public long FailedBatches => Interlocked.Read(ref _failedBatches);

    /// <summary>Attempts that the committer rolled back and asked to repeat (<see cref="IBatchCommitter.ShouldRetry"/>).</summary>
    public long RetriedBatches => Interlocked.Read(ref _retriedBatches);

    public int LargestBatch => Volatile.Read(ref _largestBatch);

    public void Start()
    {
        // Started again after StopAsync (a provider closed and opened again): the old channel is completed and its
        // writer has ended, so without a fresh pair every write would be refused as "stopped".
        if (_writerLoop is { IsCompleted: true })
        {
            _channel = NewChannel();
            _writerLoop = null;
        }

        _writerLoop ??= _dedicatedThread
            ? Task.Factory.StartNew(RunWriterThread, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            : Task.Run(RunWriterAsync);
    }

    private static Channel<StorageOperation> NewChannel() => Channel.CreateUnbounded<StorageOperation>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = false, AllowSynchronousContinuations = false });

    /// <summary>Queues an operation and waits until the transaction holding it committed (or failed).</summary>
    public Task<CommitOutcome> EnqueueAsync(StorageOperation operation)
    {
        if (_writerLoop is null)
        {
            throw new InvalidOperationException($"Storage provider '{_providerName}' is not started.");
        }

        operation.EnqueuedAt = Stopwatch.GetTimestamp();
        if (!_channel.Writer.TryWrite(operation))
        {
            throw new InvalidOperationException($"Storage provider '{_providerName}' is stopped and accepts no more writes.");
        }

        return operation.Completion;
    }

    /// <summary>Stops accepting operations, commits what is already queued, and waits for the writer.</summary>
    public async Task StopAsync()
    {
        _channel.Writer.TryComplete();
        if (_writerLoop is not null)
        {
            await _writerLoop.ConfigureAwait(false);
        }
    }

    private async Task RunWriterAsync()
    {
        var reader = _channel.Reader;
        var batch = new List<StorageOperation>(_maxBatchSize);
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            Drain(reader, batch);
            if (batch.Count < _maxBatchSize && _maxDelay > TimeSpan.Zero)
            {
                await LingerAsync(reader, batch).ConfigureAwait(false);
            }

            await CommitAsync(batch).ConfigureAwait(false);
            batch.Clear();
        }
    }

    // The same loop for a blocking committer, on its own thread: it sleeps in the waits and the commit
    // instead of handing a thread-pool thread back and forth.
    private void RunWriterThread()
    {
        var reader = _channel.Reader;
        var batch = new List<StorageOperation>(_maxBatchSize);
        while (WaitToRead(reader))
        {
            Drain(reader, batch);
            if (batch.Count < _maxBatchSize && _maxDelay > TimeSpan.Zero)
            {
                LingerAsync(reader, batch).GetAwaiter().GetResult();
            }

            CommitAsync(batch).GetAwaiter().GetResult();
            batch.Clear();
        }
    }

    private static bool WaitToRead(ChannelReader<StorageOperation> reader)
    {
        var wait = reader.WaitToReadAsync();
        return wait.IsCompleted ? wait.Result : wait.AsTask().GetAwaiter().GetResult();
    }

    private void Drain(ChannelReader<StorageOperation> reader, List<StorageOperation> batch)
    {
        while (batch.Count < _maxBatchSize && reader.TryRead(out var operation))
        {
            batch.Add(operation);
        }
    }

    // Waits up to MaxDelay for the batch to fill: trades a little latency for bigger transactions.
    private async Task LingerAsync(ChannelReader<StorageOperation> reader, List<StorageOperation> batch)
    {
        using var linger = new CancellationTokenSource(_maxDelay);
        try
        {
            while (batch.Count < _maxBatchSize && await reader.WaitToReadAsync(linger.Token).ConfigureAwait(false))
            {
                Drain(reader, batch);
            }
        }
        catch (OperationCanceledException) when (linger.IsCancellationRequested)
        {
            // The delay is over: commit what we have.
        }
    }

    // Completes a batch's callers from ONE thread-pool work item: the writer goes straight on to the next
    // batch, and the batch pays one hand-off (one worker wake-up) instead of one per operation, which on a
    // busy 2-core silo was a large part of the CPU per durable write. The list is reused by the writer, so
    // the work item gets its own array.
    private static void Complete(List<StorageOperation> batch, Exception? failure)
    {
        // The transaction is over (committed or rolled back): the store has copied or sent every payload, so pooled
        // ones go back to the pool before any caller can resume.
        foreach (var operation in batch)
        {
            operation.ReleasePayload();
        }

        var operations = batch.ToArray();
        ThreadPool.UnsafeQueueUserWorkItem(
            static state =>
            {
                var (operations, failure) = state;
                foreach (var operation in operations)
                {
                    if (failure is null)
                    {
                        operation.Publish();
                    }
                    else
                    {
                        operation.Fail(failure);
                    }
                }
            },
            (operations, failure),
            preferLocal: false);
    }

    private async Task CommitAsync(List<StorageOperation> batch)
    {
        var started = Stopwatch.GetTimestamp();
        var queueWait = Stopwatch.GetElapsedTime(batch[0].EnqueuedAt, started);
        TimeSpan flush;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                flush = await _committer.CommitAsync(batch, CancellationToken.None).ConfigureAwait(false);
                break;
            }
            catch (Exception exception) when (_committer.ShouldRetry(exception, attempt))
            {
                // Rolled back because it met another transaction (a deadlock): the same batch again, after a short
                // pause that grows with each attempt and is jittered so two writers that collided do not collide again.
                Interlocked.Increment(ref _retriedBatches);
                StorageMetrics.CommitRetries.Add(1, _tags);
                GroupCommitLog.CommitRetried(_logger, exception, _storeDisplayName, _providerName, batch.Count, attempt);
                foreach (var operation in batch)
                {
                    operation.PendingOutcome = default;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 10 * attempt + 1))).ConfigureAwait(false);
            }
            catch (CommitOutcomeUnknownException exception)
            {
                // The COMMIT itself failed: no caller is told "applied" (no ack) nor "not applied" (the message says so,
                // and the etags stay at the last version known to be stored, which a later write is still checked against).
                Interlocked.Increment(ref _failedBatches);
                StorageMetrics.CommitFailures.Add(1, _tags);
                GroupCommitLog.CommitOutcomeUnknown(_logger, exception.InnerException ?? exception, _storeDisplayName, _providerName, batch.Count);
                var inner = exception.InnerException ?? exception;
                var failure = new Orleans.Runtime.OrleansException(
                    $"Storage provider '{_providerName}' could not confirm the commit of a batch of {batch.Count} operation(s): the outcome is unknown, each of them may or may not be stored. Read the state again before relying on it; a write with the etag held before this one is still checked against what is stored. {inner.GetType().Name}: {inner.Message}",
                    exception);
                Complete(batch, failure);
                return;
            }
            catch (Exception exception)
            {
                Interlocked.Increment(ref _failedBatches);
                StorageMetrics.CommitFailures.Add(1, _tags);
                GroupCommitLog.CommitFailed(_logger, exception, _storeDisplayName, _providerName, batch.Count);
                var failure = new Orleans.Runtime.OrleansException(
                    $"Storage provider '{_providerName}' failed to commit a batch of {batch.Count} operation(s); none of them was applied. {exception.GetType().Name}: {exception.Message}",
                    exception);
                Complete(batch, failure);
                return;
            }
        }

        var total = Stopwatch.GetElapsedTime(started);

        // Committed: only now may callers treat their writes as done.
        var conflicts = 0;
        foreach (var operation in batch)
        {
            if (operation.PendingOutcome.Conflict)
            {
                conflicts++;
            }
        }

        // Counters first, so a caller that sees its write acknowledged also sees it counted.
        Interlocked.Increment(ref _committedBatches);
        Interlocked.Add(ref _committedOperations, batch.Count);
        var largest = Volatile.Read(ref _largestBatch);
        while (batch.Count > largest)
        {
            var seen = Interlocked.CompareExchange(ref _largestBatch, batch.Count, largest);
            if (seen == largest)
            {
                break;
            }

            largest = seen;
        }

        Complete(batch, failure: null);

        StorageMetrics.BatchSize.Record(batch.Count, _tags);
        StorageMetrics.Transactions.Add(1, _tags);
        StorageMetrics.Operations.Add(batch.Count, _tags);
        StorageMetrics.CommitDuration.Record(total.TotalSeconds, _tags);
        StorageMetrics.FlushDuration.Record(flush.TotalSeconds, _tags);
        StorageMetrics.QueueWait.Record(queueWait.TotalSeconds, _tags);
        if (conflicts > 0)
        {
            StorageMetrics.Conflicts.Add(conflicts, _tags);
        }

        GroupCommitLog.BatchCommitted(_logger, _storeDisplayName, _providerName, batch.Count,
            queueWait.TotalMilliseconds, (total - flush).TotalMilliseconds, flush.TotalMilliseconds);
    }
}
