using System.Diagnostics;
using LstmOrleans.Abstractions;
using Orleans.Runtime;
using Orleans.Runtime.Messaging;
using Orleans.Storage;

namespace LstmOrleans.Client.Replay;

/// <summary>One failed attempt that will be retried: which retry comes next, why, and how long it waits first.</summary>
internal readonly record struct RetryNotice(int Retry, Exception Error, TimeSpan Delay);

/// <summary>
/// Per-attempt timeout and bounded retries with exponential backoff for cluster calls that are safe to repeat: stream
/// ingests are idempotent by sequence number (a retried observation that was applied after all comes back as a
/// duplicate, never as a second step), binds and reads change nothing on a repeat. Only transport failures are retried
/// (<see cref="IsTransient"/>); a rejection of the input (<see cref="ObservationRejectedException"/>, unknown model...)
/// fails at once, since sending it again cannot help. Used by <c>lstmorleans replay</c> and by the chaos harness
/// (tests/LstmOrleans.Reliability.Tests/ReplayLoad.cs), so both mean the same thing by "retry".
/// </summary>
internal sealed record RetryPolicy
{
    /// <summary>Gives up on an attempt after this long and resends (null: wait for Orleans' own response timeout).</summary>
    public TimeSpan? AttemptTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries after the first attempt; 0 = one attempt only.</summary>
    public int MaxRetries { get; init; } = 8;

    /// <summary>Wait before the first retry; doubles with every further retry, up to <see cref="MaxDelay"/>.</summary>
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Each wait is scaled by a random factor in [1 - Jitter, 1 + Jitter] so that many streams failing together do not
    /// all come back in the same instant. 0 = exact waits.
    /// </summary>
    public double Jitter { get; init; } = 0.2;

    /// <summary>No retry starts after this much time since the first attempt (null: only <see cref="MaxRetries"/> bounds it).</summary>
    public TimeSpan? GiveUpAfter { get; init; }

    /// <summary>The replay command's defaults: 30 s per attempt, 8 retries from 0.2 s doubling to 10 s (about 33 s of waiting in all).</summary>
    public static RetryPolicy Default { get; } = new();

    /// <summary>One attempt, no client-side timeout: the behaviour without a policy.</summary>
    public static RetryPolicy None { get; } = new() { AttemptTimeout = null, MaxRetries = 0 };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range.</summary>
    public RetryPolicy Validated()
    {
        if (AttemptTimeout is { } t && t <= TimeSpan.Zero) throw new ArgumentException($"The attempt timeout must be positive; got {t}.");
        if (MaxRetries < 0) throw new ArgumentException($"The number of retries must not be negative; got {MaxRetries}.");
        if (InitialDelay < TimeSpan.Zero || MaxDelay < InitialDelay)
            throw new ArgumentException($"Retry delays must satisfy 0 <= initial ({InitialDelay}) <= maximum ({MaxDelay}).");
        if (Jitter is < 0 or > 1 || double.IsNaN(Jitter)) throw new ArgumentException($"Jitter must be in 0..1; got {Jitter}.");
        return this;
    }

    /// <summary>
    /// True for failures of the transport or of the cluster's placement, after which the same call may well succeed:
    /// a response timeout (Orleans' or this policy's), a message rejected or a silo unavailable (a silo died, a gateway
    /// closed, an activation moved), a failed or aborted connection, a busy gateway, and an ETag conflict of a second
    /// activation during failover (the state is durable; the repeat reads it). False for rejections of the request
    /// itself (bad observations, stale sequence rules, unknown models, refused model operations) and for anything
    /// unexpected: those are reported, never repeated.
    /// </summary>
    /// <param name="cancellationToken">The caller's token: a cancellation it asked for is not a transient failure.</param>
    public static bool IsTransient(Exception error, CancellationToken cancellationToken = default) => error switch
    {
        ArgumentException or ModelNotFoundException or ModelOperationException => false,   // includes ObservationRejectedException
        TimeoutException => true,
        OrleansMessageRejectionException => true,                                          // includes SiloUnavailableException
        ConnectionFailedException or GatewayTooBusyException => true,
        InconsistentStateException => true,
        // A connection torn down under the call (ASP.NET's ConnectionAbortedException is an OperationCanceledException).
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        _ => false,
    };

    /// <summary>The wait before retry <paramref name="retry"/> (1-based), without jitter: InitialDelay x 2^(retry-1), capped.</summary>
    public TimeSpan DelayBefore(int retry)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retry, 1);
        double ticks = InitialDelay.Ticks * Math.Pow(2, Math.Min(retry - 1, 62));
        return ticks >= MaxDelay.Ticks ? MaxDelay : TimeSpan.FromTicks((long)ticks);
    }

    /// <summary>
    /// Runs <paramref name="call"/> until it answers, a failure is not transient, or the retries or the time budget
    /// are spent (then the last failure is thrown). An attempt that overruns <see cref="AttemptTimeout"/> fails with a
    /// <see cref="TimeoutException"/> and is abandoned (its eventual outcome is observed and dropped).
    /// <paramref name="call"/> must send the same request every time (same sequence numbers).
    /// </summary>
    /// <param name="onRetry">Told about every failed attempt that will be retried, before the wait.</param>
    public async Task<T> ExecuteAsync<T>(Func<Task<T>> call, Action<RetryNotice>? onRetry = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        for (int retry = 1; ; retry++)
        {
            Task<T>? pending = null;
            try
            {
                pending = call();
                return AttemptTimeout is { } limit
                    ? await pending.WaitAsync(limit, cancellationToken)
                    : await pending.WaitAsync(cancellationToken);
            }
            catch (Exception error) when (retry <= MaxRetries && IsTransient(error, cancellationToken)
                                          && (GiveUpAfter is not { } budget || clock.Elapsed < budget))
            {
                // An abandoned attempt may still fail later: observe it so its exception is not left unobserved.
                if (pending is { IsCompleted: false })
                    _ = pending.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                        TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                var delay = DelayBefore(retry);
                if (Jitter > 0) delay = delay * (1 + Jitter * (2 * Random.Shared.NextDouble() - 1));
                onRetry?.Invoke(new RetryNotice(retry, error, delay));
                await Task.Delay(delay, cancellationToken);
            }
        }
    }
}
