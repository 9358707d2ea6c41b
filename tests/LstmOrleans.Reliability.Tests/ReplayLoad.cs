using System.Collections.Concurrent;
using System.Diagnostics;
using LstmOrleans.Abstractions;

namespace LstmOrleans.Reliability.Tests;

/// <summary>
/// Replays deterministic observations into many streams at once, each stream in order. A call that fails for any
/// reason other than a rejection is retried with the SAME observation (same sequence number) until it is
/// acknowledged, so an ingest that was applied but whose answer was lost comes back as a duplicate, never as a
/// second step. Every acknowledgement is recorded with its time for the service-gap measurement.
/// </summary>
internal sealed class ReplayLoad(IGrainFactory grains, string modelName, int streams, int inputSize, TimeSpan pacing)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentQueue<(double AtMs, int Stream)> _successes = new();
    private readonly ConcurrentQueue<(int Stream, long Sequence, StepResult Result)> _acks = new();
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
        await RetryAsync(() => grain.BindAsync(modelName), giveUpAfter);
        for (long sequence = 1; keepGoing(sequence); sequence++)
        {
            var observation = Signals.Obs(stream, sequence, inputSize);
            var result = await RetryAsync(() => grain.IngestAsync(observation), giveUpAfter);
            _successes.Enqueue((NowMs, stream));
            _acks.Enqueue((stream, sequence, result));
            Interlocked.Exchange(ref _acknowledged[stream], sequence);
            Interlocked.Increment(ref _total);
            if (pacing > TimeSpan.Zero) await Task.Delay(pacing);
        }
    }

    private async Task<T> RetryAsync<T>(Func<Task<T>> call, TimeSpan giveUpAfter)
    {
        var started = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (e is not ObservationRejectedException && started.Elapsed < giveUpAfter)
            {
                // Silo gone, gateway closed, activation moving, response timed out: all safe to resend.
                Interlocked.Increment(ref _retries);
                if (Errors.Count < 20) Errors.Enqueue($"{e.GetType().Name}: {e.Message.Split('\n')[0]}");
                await Task.Delay(50);
            }
        }
    }

    /// <summary>
    /// Longest stretch after <paramref name="fromMs"/> with no successful call anywhere, and the longest time any single
    /// stream waited between two of its acknowledgements after that point (minus the pacing it waits anyway).
    /// </summary>
    public (double ClusterGapMs, double WorstStreamStallMs) Gaps(double fromMs)
    {
        var all = _successes.ToArray();
        var times = all.Select(s => s.AtMs).Where(t => t > fromMs).Order().ToArray();
        double clusterGap = 0, previous = fromMs;
        foreach (var t in times) { clusterGap = Math.Max(clusterGap, t - previous); previous = t; }

        double worstStall = 0;
        foreach (var group in all.GroupBy(s => s.Stream))
        {
            var ts = group.Select(s => s.AtMs).Order().ToArray();
            for (int i = 1; i < ts.Length; i++)
                if (ts[i] > fromMs)
                    worstStall = Math.Max(worstStall, ts[i] - ts[i - 1] - pacing.TotalMilliseconds);
        }
        return (clusterGap, worstStall);
    }
}
