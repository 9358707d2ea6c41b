using System.Diagnostics;
using System.Runtime.InteropServices;

namespace LstmOrleans.Client.Bench;

/// <summary>
/// Open-loop fixed-rate load. Call n (n = 0, 1, 2, ...) is due at start + n / rate and goes to stream n mod streams.
/// One pacing loop on a dedicated thread (<see cref="Start"/>) sleeps precisely until the next call is due (at least
/// <c>burstTicks</c>, so it wakes a few thousand times a second, not once per call), then issues every call that is due,
/// whatever earlier calls are doing: a slow call delays no other stream.
/// <para>
/// Each stream still has at most one call in flight, so its sequence numbers reach the silo in order. A call that is due
/// while its stream's previous call has not returned is <b>queued</b> behind it (not skipped: skipping would drop exactly
/// the load a slow silo should feel) and sent the moment that call returns. Such calls are counted
/// (<see cref="PacerResult.Queued"/>, <see cref="PacerResult.MaxBacklog"/>). Every call's latency counts from its
/// scheduled time, so a queued call is charged its wait behind its own stream and a late pacer is charged too (no
/// coordinated omission). <see cref="PacerResult.SendLag"/> is how late the pacer itself reached each call (its own lag,
/// not the silo's); a queued call's extra wait is in its latency, not in its send lag. <see cref="PacerResult.DispatchLag"/>
/// is how late each call that did not queue was actually made (send lag plus, on the thread pool, the hand-over): the
/// client's whole share of such a call's latency before Orleans takes it.
/// </para>
/// <para>
/// Sending on the thread pool (<c>sendOnThreadPool</c>, what the bench does): the pacing thread only hands each due
/// stream to the pool, and the call is made there. Orleans' client keeps its per-call objects in pools that are
/// per thread and unbounded (<c>ConcurrentObjectPool</c>: a <c>ThreadLocal&lt;Stack&lt;T&gt;&gt;</c>); a call taken from
/// the pacing thread's pool is returned to the pool of the thread that completes it, so calls made on the pacing thread
/// pile completed objects up in the pool threads' stacks for good: they survive into gen1 and gen2, grow the stacks into
/// the large-object heap and make the load generator's own gen1/gen2 pauses part of the measured latency. Made on pool
/// threads, the calls take and return those objects on the same few threads.
/// </para>
/// <para>
/// Per stream, one reusable slot is the work item, the call's continuation and its queue: a call costs the bench no
/// allocation of its own beyond what the call itself allocates (no async state machine, no closure, no work item).
/// </para>
/// The clock is injectable (<c>now</c>, <c>ticksPerSecond</c>) so tests drive <see cref="IssueDue"/> without real time.
/// </summary>
internal sealed class FixedRatePacer
{
    /// <summary>The shortest pause of the pacing loop: 100 us, i.e. at most ~10k wake-ups a second, each issuing a small burst.</summary>
    public static readonly long DefaultBurstTicks = Stopwatch.Frequency / 10_000;

    private const int MaxErrors = 1000;

    private readonly int _streams;
    private readonly Func<int, Task> _call;
    private readonly Func<long> _now;
    private readonly double _ticksPerCall;
    private readonly double _nanosPerTick;
    private readonly long _start;
    private readonly long _end;
    private readonly bool _sendOnThreadPool;
    private readonly StreamSlot[] _slots;
    private readonly Stripe[] _stripes;
    private readonly LatencyHistogram _sendLag = new();   // written by the pacing thread only
    private readonly Action<long>? _onLatency;
    private readonly Action? _onError;
    private readonly CancellationToken _cancellationToken;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private long _next;            // index of the next call the pacer reaches (pacing thread only)
    private long _outstanding = 1; // calls issued or queued and not yet finished, +1 held by the pacer until it stops
    private long _queued;
    private int _maxBacklog;
    private long _errors;
    private string? _firstError;
    private volatile bool _stopped;
    private int _finished;
    private long _wakeUps;
    private double _pacerCpuSeconds = double.NaN;

    /// <param name="streams">Streams called round-robin (call n goes to stream n mod streams).</param>
    /// <param name="callsPerSecond">Offered load.</param>
    /// <param name="start">Timestamp (in the clock's ticks) at which call 0 is due.</param>
    /// <param name="end">No call due at or after this timestamp is made.</param>
    /// <param name="call">Makes one call to a stream; invoked with at most one call in flight per stream.</param>
    /// <param name="now">The clock (ticks).</param>
    /// <param name="ticksPerSecond">The clock's frequency.</param>
    /// <param name="onLatency">Also receives every successful call's latency in ns (any thread; for interval reports).</param>
    /// <param name="onError">Also told of every failed call.</param>
    /// <param name="sendOnThreadPool">Make each call on a thread-pool thread instead of on the thread that runs
    /// <see cref="IssueDue"/> (see the type's remarks); false makes a due call before <see cref="IssueDue"/> returns.</param>
    public FixedRatePacer(int streams, double callsPerSecond, long start, long end, Func<int, Task> call, Func<long> now, long ticksPerSecond,
        Action<long>? onLatency = null, Action? onError = null, CancellationToken cancellationToken = default, bool sendOnThreadPool = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(streams, 1);
        if (!(callsPerSecond > 0) || !double.IsFinite(callsPerSecond)) throw new ArgumentOutOfRangeException(nameof(callsPerSecond), callsPerSecond, "must be a positive rate");
        _streams = streams;
        _call = call;
        _now = now;
        _ticksPerCall = ticksPerSecond / callsPerSecond;
        _nanosPerTick = 1e9 / ticksPerSecond;
        _start = start;
        _end = end;
        _sendOnThreadPool = sendOnThreadPool;
        _slots = new StreamSlot[streams];
        for (int i = 0; i < streams; i++) _slots[i] = new StreamSlot(this, i);
        // Completions record on thread-pool threads: one lock-guarded histogram per stripe of streams keeps contention low.
        _stripes = new Stripe[Math.Min(streams, 16)];
        for (int i = 0; i < _stripes.Length; i++) _stripes[i] = new Stripe();
        _onLatency = onLatency;
        _onError = onError;
        _cancellationToken = cancellationToken;
    }

    /// <summary>When call <paramref name="n"/> is due (clock ticks).</summary>
    public long ScheduledTime(long n) => _start + (long)(n * _ticksPerCall);

    /// <summary>Done when every call due before the end has finished (or the pacer stopped after too many errors or cancellation).</summary>
    public Task Completion => _drained.Task;

    /// <summary>
    /// Issues (or queues behind their stream) every call due by now, in schedule order, and returns when the next call
    /// is due, or <see cref="long.MaxValue"/> when no more calls will be made (end reached, stopped). Pacing thread only.
    /// </summary>
    public long IssueDue()
    {
        while (true)
        {
            if (_stopped || _cancellationToken.IsCancellationRequested) return long.MaxValue;
            long scheduled = ScheduledTime(_next);
            if (scheduled >= _end) return long.MaxValue;
            long reached = _now();
            if (scheduled > reached) return scheduled;
            _sendLag.Record((long)((reached - scheduled) * _nanosPerTick));
            int stream = (int)(_next % _streams);
            _next++;
            var slot = _slots[stream];
            Interlocked.Increment(ref _outstanding);
            lock (slot)
            {
                if (slot.Busy)
                {
                    var backlog = slot.Backlog ??= new Queue<long>();
                    backlog.Enqueue(scheduled);
                    _queued++;
                    if (backlog.Count > _maxBacklog) _maxBacklog = backlog.Count;
                    continue;
                }
                slot.Busy = true;
                slot.Scheduled = scheduled;
            }
            if (_sendOnThreadPool) ThreadPool.UnsafeQueueUserWorkItem(slot, preferLocal: false);
            else slot.Send();
        }
    }

    /// <summary>
    /// The pacer will make no more calls: releases its hold on <see cref="Completion"/>, which completes once the calls
    /// already issued or queued have finished. Idempotent.
    /// </summary>
    public void Finish()
    {
        if (Interlocked.Exchange(ref _finished, 1) == 0) Release();
    }

    /// <summary>Runs the pacing loop on a dedicated thread (Stopwatch clock only); await <see cref="Completion"/>.</summary>
    public void Start(long burstTicks)
    {
        var thread = new Thread(() =>
        {
            double cpuAtStart = ThreadCpu.Seconds();
            try
            {
                PreciseSleep.TightenThisThread();
                long sleepCap = Stopwatch.Frequency / 20; // wake at least every 50 ms to notice cancellation
                long wakeUps = 0;
                while (true)
                {
                    long due = IssueDue();
                    if (due == long.MaxValue) break;
                    long now = Stopwatch.GetTimestamp();
                    PreciseSleep.Until(Math.Min(Math.Max(due, now + burstTicks), now + sleepCap));
                    wakeUps++;
                }
                _wakeUps = wakeUps;
            }
            catch (Exception ex)
            {
                _drained.TrySetException(ex);
            }
            finally
            {
                _pacerCpuSeconds = ThreadCpu.Seconds() - cpuAtStart;
                Finish();
            }
        })
        {
            IsBackground = true,
            Name = "bench pacer",
        };
        thread.Start();
    }

    /// <summary>The figures so far (complete once <see cref="Completion"/> has completed).</summary>
    public PacerResult Result()
    {
        var latency = new LatencyHistogram();
        var dispatchLag = new LatencyHistogram();
        foreach (var stripe in _stripes)
            lock (stripe)
            {
                latency.Add(stripe.Latency);
                dispatchLag.Add(stripe.DispatchLag);
            }
        return new PacerResult(latency, _sendLag, _next, Interlocked.Read(ref _queued), Volatile.Read(ref _maxBacklog),
            Interlocked.Read(ref _errors), _firstError)
        {
            PacerCpuSeconds = double.IsFinite(_pacerCpuSeconds) ? _pacerCpuSeconds : null,
            PacerWakeUps = _wakeUps,
            DispatchLag = _sendOnThreadPool ? dispatchLag : null,
        };
    }

    /// <summary>
    /// Records a finished call (its latency from <paramref name="scheduled"/>, or its error) and, under the slot's lock,
    /// takes the next call queued behind it. Returns whether there is one (its scheduled time in the slot).
    /// </summary>
    private bool Finished(StreamSlot slot, Task task, long scheduled)
    {
        if (task.IsCompletedSuccessfully)
        {
            long latency = (long)((_now() - scheduled) * _nanosPerTick);
            var stripe = _stripes[slot.Stream % _stripes.Length];
            lock (stripe) stripe.Latency.Record(latency);
            _onLatency?.Invoke(latency);
        }
        else
        {
            var ex = task.Exception?.InnerException ?? new TaskCanceledException(task);
            if (ex is OperationCanceledException && _cancellationToken.IsCancellationRequested)
            {
                _stopped = true;
            }
            else
            {
                _onError?.Invoke();
                if (Interlocked.Increment(ref _errors) == 1) _firstError = $"{ex.GetType().Name}: {ex.Message}";
                if (Interlocked.Read(ref _errors) > MaxErrors) _stopped = true;
            }
        }
        int dropped = 0;
        bool more;
        lock (slot)
        {
            if ((_stopped || _cancellationToken.IsCancellationRequested) && slot.Backlog is { Count: > 0 } abandoned)
            {
                dropped = abandoned.Count;
                abandoned.Clear();
            }
            more = slot.Backlog is { Count: > 0 } backlog;
            if (more) slot.Scheduled = slot.Backlog!.Dequeue();
            else slot.Busy = false;
        }
        for (int i = 0; i < dropped; i++) Release();
        Release();
        return more;
    }

    private void Release()
    {
        if (Interlocked.Decrement(ref _outstanding) == 0) _drained.TrySetResult();
    }

    /// <summary>
    /// One stream: busy flag and backlog (under its lock), the scheduled time of its call in flight, and the call loop
    /// itself. It is its own thread-pool work item and its own continuation, both reused for every call.
    /// </summary>
    private sealed class StreamSlot : IThreadPoolWorkItem
    {
        private readonly FixedRatePacer _pacer;
        private readonly Action _onCompleted;
        private Task? _inFlight;

        public StreamSlot(FixedRatePacer pacer, int stream)
        {
            _pacer = pacer;
            Stream = stream;
            _onCompleted = OnCompleted;
        }

        public int Stream { get; }
        public bool Busy;
        public long Scheduled;       // the scheduled time of the call being made (set before Send, read by its completion)
        public Queue<long>? Backlog; // scheduled times of this stream's calls due while it was busy, oldest first

        public void Execute()
        {
            // The hand-over's delay (pacer lag + thread pool) for a call that did not queue behind its stream.
            long lag = (long)((_pacer._now() - Scheduled) * _pacer._nanosPerTick);
            var stripe = _pacer._stripes[Stream % _pacer._stripes.Length];
            lock (stripe) stripe.DispatchLag.Record(lag);
            Send();
        }

        /// <summary>Makes this stream's call, then each call queued behind it, one at a time.</summary>
        public void Send()
        {
            while (true)
            {
                long scheduled = Scheduled;
                Task task;
                try
                {
                    task = _pacer._call(Stream);
                }
                catch (Exception ex)
                {
                    task = Task.FromException(ex);
                }
                if (!task.IsCompleted)
                {
                    _inFlight = task;
                    task.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_onCompleted);
                    return;
                }
                if (!_pacer.Finished(this, task, scheduled)) return;
            }
        }

        private void OnCompleted()
        {
            var task = _inFlight!;
            _inFlight = null;
            if (_pacer.Finished(this, task, Scheduled)) Send();
        }
    }

    private sealed class Stripe
    {
        public readonly LatencyHistogram Latency = new();
        public readonly LatencyHistogram DispatchLag = new();
    }
}

/// <summary>
/// What a fixed-rate run measured. <paramref name="Calls"/> counts every call the schedule made (issued or queued);
/// <paramref name="Queued"/> those that had to wait for their own stream's previous call; <paramref name="MaxBacklog"/>
/// the most calls ever waiting behind one stream.
/// </summary>
internal sealed record PacerResult(LatencyHistogram Latency, LatencyHistogram SendLag, long Calls, long Queued, int MaxBacklog, long Errors, string? FirstError)
{
    /// <summary>CPU time of the pacing thread over its whole run (null when it did not run on its own thread, or the OS cannot tell).</summary>
    public double? PacerCpuSeconds { get; init; }

    /// <summary>How many times the pacing thread slept and woke up.</summary>
    public long PacerWakeUps { get; init; }

    /// <summary>
    /// Sending on the thread pool: for each call that did not queue behind its stream, from its scheduled time to the
    /// moment a pool thread made it (null when the pacing thread made the calls itself: then it equals the send lag).
    /// </summary>
    public LatencyHistogram? DispatchLag { get; init; }
}

/// <summary>The calling thread's CPU time (Linux: clock_gettime(CLOCK_THREAD_CPUTIME_ID)); NaN elsewhere.</summary>
internal static partial class ThreadCpu
{
    private const int ClockThreadCpuTimeId = 3;

    public static double Seconds()
    {
        if (!OperatingSystem.IsLinux()) return double.NaN;
        return clock_gettime(ClockThreadCpuTimeId, out var time) == 0 ? time.Seconds + time.Nanoseconds * 1e-9 : double.NaN;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc")]
    private static partial int clock_gettime(int clockId, out Timespec time);
}

/// <summary>Sleeps until a Stopwatch timestamp with sub-millisecond precision (nanosleep on Linux; Thread.Sleep's 1 ms elsewhere).</summary>
internal static partial class PreciseSleep
{
    public static void Until(long timestamp)
    {
        long remaining = timestamp - Stopwatch.GetTimestamp();
        if (remaining <= 0) return;
        if (OperatingSystem.IsLinux())
        {
            long nanos = (long)(remaining * (1e9 / Stopwatch.Frequency));
            var request = new Timespec { Seconds = nanos / 1_000_000_000, Nanoseconds = nanos % 1_000_000_000 };
            _ = nanosleep(in request, out _); // interrupted early (EINTR): the caller's loop just looks again
        }
        else
        {
            Thread.Sleep(TimeSpan.FromMilliseconds(Math.Max(1, remaining * 1000.0 / Stopwatch.Frequency)));
        }
    }

    /// <summary>
    /// Linux: sets this thread's timer slack to 1 ns (PR_SET_TIMERSLACK), so its sleeps end when asked instead of up to
    /// the default 50 us later. Best effort: elsewhere, or if refused, nothing changes.
    /// </summary>
    public static void TightenThisThread()
    {
        if (OperatingSystem.IsLinux()) _ = prctl(PrSetTimerSlack, 1, 0, 0, 0);
    }

    private const int PrSetTimerSlack = 29;

    [LibraryImport("libc")]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;     // time_t (64-bit on the 64-bit Linux targets .NET 10 supports)
        public long Nanoseconds; // long
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int nanosleep(in Timespec request, out Timespec remaining);
}
