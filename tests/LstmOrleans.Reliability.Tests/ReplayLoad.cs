using System.Collections.Concurrent;
using System.Diagnostics;
using LstmOrleans.Abstractions;
using LstmOrleans.Client.Replay;

namespace LstmOrleans.Reliability.Tests;

/// <summary>
/// Replays deterministic observations into many streams at once, each stream in order. A call that fails transiently
/// (<see cref="RetryPolicy.IsTransient"/>, the policy <c>lstmorleans replay</c> uses) is retried with the SAME
/// observation (same sequence number) until it is acknowledged, so an ingest that was applied but whose answer was lost comes back as a duplicate, never as a
/// second step. Every acknowledgement is recorded with its time for the service-gap measurement.
/// </summary>
/// <param name="attemptTimeout">
/// When set, the client gives up on an attempt after exactly this long and resends (the abandoned call is observed and
/// dropped; if it was applied after all, the resend is answered as a duplicate). Orleans' own response timeout fires
/// up to about a second late (a 2 s timeout was seen to fail calls 2.4-3.1 s after they were sent), so this bounds the
/// wait on a call lost with a killed silo more tightly.
/// </param>
internal sealed class ReplayLoad(IGrainFactory grains, string modelName, int streams, int inputSize, TimeSpan pacing, TimeSpan? attemptTimeout = null)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    // Every acknowledgement: when it came, for which stream, and when the attempt that got it was sent.
    private readonly ConcurrentQueue<(double AtMs, int Stream, double SentMs)> _successes = new();
    private readonly ConcurrentQueue<(int Stream, long Sequence, StepResult Result)> _acks = new();
    private readonly ConcurrentQueue<(double SentMs, double FailedMs, int Stream, string Error)> _failures = new();
    private readonly long[] _acknowledged = new long[streams];
    private long _retries;
    private long _total;

    public string StreamId(int stream) => $"{modelName}/sensor-{stream:D5}";
    public double NowMs => _clock.Elapsed.TotalMilliseconds;
    public long Retries => Interlocked.Read(ref _retries);
    public long TotalAcknowledged => Interlocked.Read(ref _total);
    public long Acknowledged(int stream) => Interlocked.Read(ref _acknowledged[stream]);
    public IReadOnlyCollection<(int Stream, long Sequence, StepResult Result)> Acks => _acks;
    public ConcurrentQueue<string> Errors { get; } = new();

    /// <summary>Runs every stream until <paramref name="keepGoing"/>(sequence) is false for its next sequence.</summary>
    public Task RunAsync(Func<long, bool> keepGoing, TimeSpan giveUpAfter) =>
        Task.WhenAll(Enumerable.Range(0, streams).Select(s => Task.Run(() => RunStreamAsync(s, keepGoing, giveUpAfter))));

    private async Task RunStreamAsync(int stream, Func<long, bool> keepGoing, TimeSpan giveUpAfter)
    {
        var grain = grains.GetGrain<IStreamGrain>(StreamId(stream));
        await RetryAsync(stream, () => grain.BindAsync(modelName), giveUpAfter);
        for (long sequence = 1; keepGoing(sequence); sequence++)
        {
            var observation = Signals.Obs(stream, sequence, inputSize);
            var (result, sentMs) = await RetryAsync(stream, () => grain.IngestAsync(observation), giveUpAfter);
            _successes.Enqueue((NowMs, stream, sentMs));
            _acks.Enqueue((stream, sequence, result));
            Interlocked.Exchange(ref _acknowledged[stream], sequence);
            Interlocked.Increment(ref _total);
            if (pacing > TimeSpan.Zero) await Task.Delay(pacing);
        }
    }

    // The replay command's retry policy, set for a chaos run: resend after 50 ms for as long as the run's budget lasts.
    private readonly RetryPolicy _retry = new()
    {
        AttemptTimeout = attemptTimeout,
        MaxRetries = int.MaxValue,
        InitialDelay = TimeSpan.FromMilliseconds(50),
        MaxDelay = TimeSpan.FromMilliseconds(50),
        Jitter = 0,
    };

    /// <summary>The first answer, and when the attempt that got it was sent.</summary>
    private async Task<(T Answer, double SentMs)> RetryAsync<T>(int stream, Func<Task<T>> call, TimeSpan giveUpAfter)
    {
        double attemptStartedMs = NowMs;
        var answer = await (_retry with { GiveUpAfter = giveUpAfter }).ExecuteAsync(() =>
        {
            attemptStartedMs = NowMs;
            return call();
        }, notice =>
        {
            // Silo gone, gateway closed, activation moving, response timed out: all safe to resend.
            Interlocked.Increment(ref _retries);
            _failures.Enqueue((attemptStartedMs, NowMs, stream, notice.Error.GetType().Name));
            if (Errors.Count < 20) Errors.Enqueue($"{notice.Error.GetType().Name}: {notice.Error.Message.Split('\n')[0]}");
        });
        return (answer, attemptStartedMs);
    }

    /// <summary>
    /// The attempts of one stream that ended after <paramref name="fromMs"/>, as "sent at +s ms, failed at +t ms
    /// with Exception", times relative to <paramref name="fromMs"/>: shows where a stall's time went (response
    /// timeouts, rejections, retries).
    /// </summary>
    public string AttemptTimeline(int stream, double fromMs, double untilMs)
    {
        var failures = _failures.Where(f => f.Stream == stream && f.FailedMs > fromMs && f.FailedMs <= untilMs)
            .Select(f => $"sent {f.SentMs - fromMs:+0;-0} ms, failed {f.FailedMs - fromMs:+0;-0} ms: {f.Error}");
        var success = _successes.Where(a => a.Stream == stream && a.AtMs == untilMs)
            .Select(a => $"sent {a.SentMs - fromMs:+0;-0} ms, acknowledged {a.AtMs - fromMs:+0;-0} ms");
        return string.Join("; ", failures.Concat(success));
    }

    /// <summary>
    /// Longest stretch after <paramref name="fromMs"/> with no successful call anywhere, and the longest time any single
    /// stream waited between two of its acknowledgements after that point (minus the pacing it waits anyway): which
    /// stream, and when that wait ended.
    /// </summary>
    public (double ClusterGapMs, double WorstStreamStallMs, int WorstStream, double WorstStallEndsMs) Gaps(double fromMs)
    {
        var all = _successes.ToArray();
        var times = all.Select(s => s.AtMs).Where(t => t > fromMs).Order().ToArray();
        double clusterGap = 0, previous = fromMs;
        foreach (var t in times) { clusterGap = Math.Max(clusterGap, t - previous); previous = t; }

        double worstStall = 0, worstStallEnds = 0;
        int worstStream = -1;
        foreach (var group in all.GroupBy(s => s.Stream))
        {
            var ts = group.Select(s => s.AtMs).Order().ToArray();
            for (int i = 1; i < ts.Length; i++)
            {
                double stall = ts[i] - ts[i - 1] - pacing.TotalMilliseconds;
                if (ts[i] > fromMs && stall > worstStall) (worstStall, worstStream, worstStallEnds) = (stall, group.Key, ts[i]);
            }
        }
        return (clusterGap, worstStall, worstStream, worstStallEnds);
    }
}
