using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using LstmOrleans.Client.Bench;
using Xunit;

namespace LstmOrleans.Client.Tests.Bench;

/// <summary>
/// The open-loop pacer driven by a fake clock (ticks of 1 us): which call is made when and on which stream, that a
/// stream never has two calls in flight and keeps its order, and that latency is charged from the scheduled time.
/// No assertion depends on real time.
/// </summary>
public sealed class FixedRatePacerTests
{
    private const long TicksPerSecond = 1_000_000; // the fake clock counts microseconds
    private const long NanosPerTick = 1000;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private sealed class FakeClock
    {
        public long Now;
    }

    [Fact]
    public void Calls_are_made_at_their_scheduled_times_round_robin_and_none_at_or_after_the_end()
    {
        var clock = new FakeClock { Now = 10_000 };
        var made = new List<(int Stream, long At)>();
        var latencies = new List<long>();
        // 1000 calls/s: call n is due at 10_000 + 1000 n; the end (20_000) admits calls 0..9.
        var pacer = new FixedRatePacer(3, 1000, start: 10_000, end: 20_000, stream =>
        {
            made.Add((stream, clock.Now));
            return Task.CompletedTask;
        }, () => clock.Now, TicksPerSecond, onLatency: latencies.Add);

        Assert.Equal(11_000, pacer.IssueDue());           // call 0 is due now; call 1 next, at 11_000
        Assert.Equal([(0, 10_000L)], made);

        clock.Now = 10_999;
        Assert.Equal(11_000, pacer.IssueDue());           // nothing due yet: nothing made early
        Assert.Single(made);

        clock.Now = 13_500;
        Assert.Equal(14_000, pacer.IssueDue());           // calls 1, 2, 3 (due 11k, 12k, 13k) in one burst
        Assert.Equal([(0, 10_000L), (1, 13_500L), (2, 13_500L), (0, 13_500L)], made);

        clock.Now = 50_000;
        Assert.Equal(long.MaxValue, pacer.IssueDue());    // calls 4..9, then the end
        Assert.Equal(10, made.Count);
        Assert.Equal([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], made.Select(m => m.Stream));
        for (int n = 0; n < 10; n++) Assert.Equal(10_000 + 1000 * n, pacer.ScheduledTime(n));

        pacer.Finish();
        Assert.True(pacer.Completion.IsCompletedSuccessfully);
        var result = pacer.Result();
        Assert.Equal(10, result.Calls);
        Assert.Equal(0, result.Queued);
        Assert.Equal(0, result.Errors);
        // Each call completed as soon as it was made, so its latency is exactly how late the pacer reached it,
        // counted from its scheduled time: 0, then 2.5, 1.5, 0.5 ms, then 50 - 14 .. 50 - 19 ms.
        long[] expected = [0, 2_500, 1_500, 500, 36_000, 35_000, 34_000, 33_000, 32_000, 31_000];
        Assert.Equal(expected.Select(t => t * NanosPerTick), latencies);
        Assert.Equal(10, result.SendLag.Count);
        Assert.Equal(36_000 * NanosPerTick, result.SendLag.Max);
        Assert.Equal(0, result.SendLag.Min);
        Assert.Equal(36_000 * NanosPerTick, result.Latency.Max);
        Assert.Null(result.DispatchLag); // made on the calling thread: its lag is the send lag
        Assert.Equal(expected.Average() * NanosPerTick, result.Latency.Mean, 1e-6);
    }

    [Fact]
    public async Task A_busy_stream_queues_its_due_calls_sends_them_in_order_and_charges_them_from_their_scheduled_time()
    {
        var clock = new FakeClock { Now = 0 };
        var calls = Channel.CreateUnbounded<(int Stream, long Sequence, TaskCompletionSource Done)>();
        var sequences = new long[2];
        var inFlight = new int[2];
        int overlaps = 0;
        var latencies = new ConcurrentQueue<long>();
        var pacer = new FixedRatePacer(2, 1000, start: 0, end: 6_000, stream =>
        {
            if (Interlocked.Increment(ref inFlight[stream]) > 1) Interlocked.Increment(ref overlaps);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            calls.Writer.TryWrite((stream, ++sequences[stream], done));
            return done.Task.ContinueWith(t => { Interlocked.Decrement(ref inFlight[stream]); t.GetAwaiter().GetResult(); },
                TaskContinuationOptions.ExecuteSynchronously);
        }, () => Interlocked.Read(ref clock.Now), TicksPerSecond, onLatency: latencies.Enqueue);

        // Calls 0..5 (streams 0,1,0,1,0,1, due at 0..5 ms) all come due while nothing returns: one per stream is sent,
        // the other four wait behind their stream.
        Interlocked.Exchange(ref clock.Now, 5_000);
        Assert.Equal(long.MaxValue, pacer.IssueDue());
        pacer.Finish();
        var first0 = await NextCall();
        var first1 = await NextCall();
        Assert.Equal((0, 1L), (first0.Stream, first0.Sequence));
        Assert.Equal((1, 1L), (first1.Stream, first1.Sequence));
        Assert.False(calls.Reader.TryRead(out _));

        // Stream 0's first call returns at 7 ms: its queued call 2 (due at 2 ms) goes out at once, as sequence 2.
        Interlocked.Exchange(ref clock.Now, 7_000);
        first0.Done.SetResult();
        var second0 = await NextCall();
        Assert.Equal((0, 2L), (second0.Stream, second0.Sequence));
        Assert.Equal(7_000 * NanosPerTick, await NextLatency());      // call 0: 7 ms after it was due

        Interlocked.Exchange(ref clock.Now, 9_000);
        second0.Done.SetResult();
        var third0 = await NextCall();
        Assert.Equal((0, 3L), (third0.Stream, third0.Sequence));
        Assert.Equal(7_000 * NanosPerTick, await NextLatency());      // call 2: sent at 7 ms, returned at 9, due at 2: 7 ms

        Interlocked.Exchange(ref clock.Now, 10_000);
        third0.Done.SetResult();
        Assert.Equal(6_000 * NanosPerTick, await NextLatency());      // call 4: due at 4 ms

        // Stream 1 fails its first call: counted, and its queue still drains in order.
        first1.Done.SetException(new InvalidOperationException("boom"));
        var second1 = await NextCall();
        Assert.Equal((1, 2L), (second1.Stream, second1.Sequence));
        Assert.False(pacer.Completion.IsCompleted);                   // stream 1 still owes calls 3 and 5
        second1.Done.SetResult();
        var third1 = await NextCall();
        Assert.Equal((1, 3L), (third1.Stream, third1.Sequence));
        Interlocked.Exchange(ref clock.Now, 12_000);
        third1.Done.SetResult();

        await pacer.Completion.WaitAsync(Patience);
        var result = pacer.Result();
        Assert.Equal(0, overlaps);
        Assert.Equal(6, result.Calls);
        Assert.Equal(4, result.Queued);
        Assert.Equal(2, result.MaxBacklog);
        Assert.Equal(1, result.Errors);
        Assert.Equal("InvalidOperationException: boom", result.FirstError);
        Assert.Equal(5, result.Latency.Count);
        Assert.Equal([3L, 3L], sequences);
        Assert.Equal(7_000 * NanosPerTick, result.Latency.Max);       // call 5, due at 5 ms, returned at 12 ms
        Assert.Equal(6, result.SendLag.Count);
        Assert.Equal(5_000 * NanosPerTick, result.SendLag.Max);       // the pacer reached call 0 at 5 ms

        async Task<(int Stream, long Sequence, TaskCompletionSource Done)> NextCall() =>
            await calls.Reader.ReadAsync().AsTask().WaitAsync(Patience);

        async Task<long> NextLatency()
        {
            var wait = Stopwatch.StartNew();
            while (wait.Elapsed < Patience)
            {
                if (latencies.TryDequeue(out var latency)) return latency;
                await Task.Delay(1);
            }
            throw new TimeoutException("no latency recorded");
        }
    }

    [Fact]
    public void A_call_that_throws_synchronously_counts_as_an_error_and_frees_its_stream()
    {
        var clock = new FakeClock { Now = 0 };
        int attempts = 0;
        var pacer = new FixedRatePacer(1, 1000, start: 0, end: 3_000, _ =>
        {
            attempts++;
            throw new ArgumentException("bad");
        }, () => clock.Now, TicksPerSecond);
        clock.Now = 3_000;
        Assert.Equal(long.MaxValue, pacer.IssueDue());
        pacer.Finish();
        Assert.True(pacer.Completion.IsCompletedSuccessfully);
        var result = pacer.Result();
        Assert.Equal(3, attempts);
        Assert.Equal(3, result.Errors);
        Assert.Equal(0, result.Queued);
        Assert.Equal(0, result.Latency.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task On_its_own_thread_with_the_real_clock_it_makes_exactly_the_scheduled_calls_in_order_per_stream(bool sendOnThreadPool)
    {
        // 20k calls/s for 50 ms over 7 streams: exactly 1000 calls, whatever the machine's load (only their timing varies).
        var perStream = new ConcurrentDictionary<int, ConcurrentQueue<long>>();
        var sequences = new long[7];
        long start = Stopwatch.GetTimestamp();
        long end = start + Stopwatch.Frequency / 20;
        var pacer = new FixedRatePacer(7, 20_000, start, end, async stream =>
        {
            long sequence = ++sequences[stream];
            perStream.GetOrAdd(stream, _ => new()).Enqueue(sequence);
            if (sequence % 3 == 0) await Task.Yield(); // some calls complete later, on another thread
        }, Stopwatch.GetTimestamp, Stopwatch.Frequency, sendOnThreadPool: sendOnThreadPool);
        pacer.Start(FixedRatePacer.DefaultBurstTicks);
        await pacer.Completion.WaitAsync(Patience);

        var result = pacer.Result();
        Assert.Equal(1000, result.Calls);
        Assert.Equal(1000, result.Latency.Count);
        Assert.Equal(0, result.Errors);
        for (int s = 0; s < 7; s++)
        {
            int expected = 1000 / 7 + (s < 1000 % 7 ? 1 : 0);
            Assert.Equal(Enumerable.Range(1, expected).Select(i => (long)i), perStream[s]);
        }
    }

    [Fact]
    public async Task Sending_on_the_thread_pool_makes_every_due_call_off_the_pacing_thread_in_order_and_charges_it_from_its_schedule()
    {
        // The clock stands still at 20 ms while 12 calls (3 streams, due at 0..11 ms) are issued, so every latency is
        // exactly 20 ms minus the call's scheduled time, whichever thread makes it and whether or not it queued.
        var clock = new FakeClock { Now = 20_000 };
        int pacingThread = Environment.CurrentManagedThreadId;
        int onPacingThread = 0, offPool = 0, overlaps = 0;
        var inFlight = new int[3];
        var perStream = new ConcurrentDictionary<int, ConcurrentQueue<long>>();
        var sequences = new long[3];
        var latencies = new ConcurrentBag<long>();
        var pacer = new FixedRatePacer(3, 1000, start: 0, end: 12_000, async stream =>
        {
            if (Environment.CurrentManagedThreadId == pacingThread) Interlocked.Increment(ref onPacingThread);
            if (!Thread.CurrentThread.IsThreadPoolThread) Interlocked.Increment(ref offPool);
            if (Interlocked.Increment(ref inFlight[stream]) > 1) Interlocked.Increment(ref overlaps);
            perStream.GetOrAdd(stream, _ => new()).Enqueue(++sequences[stream]);
            if (sequences[stream] % 2 == 0) await Task.Yield(); // half the calls complete later, through the continuation
            Interlocked.Decrement(ref inFlight[stream]);
        }, () => Interlocked.Read(ref clock.Now), TicksPerSecond, onLatency: latencies.Add, sendOnThreadPool: true);

        Assert.Equal(long.MaxValue, pacer.IssueDue());
        pacer.Finish();
        await pacer.Completion.WaitAsync(Patience);

        var result = pacer.Result();
        Assert.Equal(0, onPacingThread);
        Assert.Equal(0, offPool);
        Assert.Equal(0, overlaps);
        Assert.Equal(12, result.Calls);
        Assert.Equal(0, result.Errors);
        Assert.InRange(result.Queued, 0, 12 - 3);                     // how many waited behind their stream depends on the pool
        for (int s = 0; s < 3; s++) Assert.Equal([1L, 2L, 3L, 4L], perStream[s]);
        var expected = Enumerable.Range(0, 12).Select(n => (20_000L - 1000L * n) * NanosPerTick).Order();
        Assert.Equal(expected, latencies.Order());
        Assert.Equal(12, result.SendLag.Count);
        Assert.Equal(20_000 * NanosPerTick, result.SendLag.Max);
        // Every call that did not wait behind its stream was handed over once; with the clock standing still its
        // dispatch lag is its latency, 20 ms minus its schedule, at most 20 ms (call 0) and at least 9 ms (call 11).
        Assert.NotNull(result.DispatchLag);
        Assert.Equal(12 - result.Queued, result.DispatchLag.Count);
        Assert.InRange(result.DispatchLag.Max, 9_000 * NanosPerTick, 20_000 * NanosPerTick);
        Assert.InRange(result.DispatchLag.Min, 9_000 * NanosPerTick, 20_000 * NanosPerTick);
        Assert.Equal(20_000 * NanosPerTick, result.DispatchLag.Max); // call 0 never queues: its stream was idle
    }

    [Fact]
    public async Task Sending_on_the_thread_pool_counts_failed_and_synchronously_throwing_calls_and_keeps_going()
    {
        var clock = new FakeClock { Now = 10_000 };
        int attempts = 0;
        var pacer = new FixedRatePacer(2, 1000, start: 0, end: 10_000, stream =>
        {
            int attempt = Interlocked.Increment(ref attempts);
            if (stream == 0) throw new ArgumentException("sync");
            return Task.FromException(new InvalidOperationException("async"));
        }, () => clock.Now, TicksPerSecond, sendOnThreadPool: true);
        Assert.Equal(long.MaxValue, pacer.IssueDue());
        pacer.Finish();
        await pacer.Completion.WaitAsync(Patience);
        var result = pacer.Result();
        Assert.Equal(10, attempts);
        Assert.Equal(10, result.Errors);
        Assert.Equal(0, result.Latency.Count);
        Assert.Contains(result.FirstError, new[] { "ArgumentException: sync", "InvalidOperationException: async" });
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new FixedRatePacer(0, 10, 0, 1, _ => Task.CompletedTask, () => 0, TicksPerSecond));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FixedRatePacer(1, 0, 0, 1, _ => Task.CompletedTask, () => 0, TicksPerSecond));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FixedRatePacer(1, double.NaN, 0, 1, _ => Task.CompletedTask, () => 0, TicksPerSecond));
    }
}
