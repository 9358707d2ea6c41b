using LstmOrleans.Abstractions;
using LstmOrleans.Silo.Api;

namespace LstmOrleans.Silo.Tests;

/// <summary>How an HTTP ingest body larger than the grain's batch limit is applied, part by part.</summary>
public sealed class IngestPartsTests
{
    private static StepResult Step(long sequence) =>
        new("s", sequence, DateTimeOffset.UnixEpoch.AddMinutes(sequence), [1f], [0f], [2f], [1f], [1], null, 1, false, sequence);

    private static Func<int, int, Task<StepResult[]>> RefusingPart(int refusedOffset, List<(int Offset, int Count)> calls) => (offset, count) =>
    {
        calls.Add((offset, count));
        if (offset == refusedOffset)
            throw new ObservationRejectedException(RejectionReason.TimestampBackwards, "Batch element 0 (sequence 5) at X is earlier than Y.", 5);
        return Task.FromResult(Enumerable.Range(offset + 1, count).Select(i => Step(i)).ToArray());
    };

    [Fact]
    public async Task A_part_refused_after_others_were_applied_says_how_many_were_and_keeps_its_reason()
    {
        // Another writer between two parts made the third one fail: parts one and two stayed applied, but the 409 said
        // only what the third broke, as if the request had changed nothing, and a resend without sequence numbers
        // applied them twice.
        var calls = new List<(int, int)>();
        var e = await Assert.ThrowsAsync<ObservationRejectedException>(() => StreamEndpoints.ApplyInPartsAsync(10, 4, RefusingPart(8, calls)));
        Assert.Equal([(0, 4), (4, 4), (8, 2)], calls);
        Assert.Equal(RejectionReason.TimestampBackwards, e.Reason);
        Assert.Equal(5, e.Sequence);
        Assert.StartsWith("Observations 1 to 8 of this request were applied (a body over Streams:MaxBatchSize goes to the stream in parts of 4), " +
            "then the part from observation 9 on was refused and none of it applied;", e.Message);
        Assert.EndsWith("The refusal: Batch element 0 (sequence 5) at X is earlier than Y.", e.Message);
    }

    [Fact]
    public async Task A_refused_first_part_is_passed_on_as_it_is_and_parts_that_pass_are_all_answered()
    {
        var calls = new List<(int, int)>();
        var first = await Assert.ThrowsAsync<ObservationRejectedException>(() => StreamEndpoints.ApplyInPartsAsync(10, 4, RefusingPart(0, calls)));
        Assert.Equal("Batch element 0 (sequence 5) at X is earlier than Y.", first.Message);
        Assert.Equal([(0, 4)], calls);

        var all = await StreamEndpoints.ApplyInPartsAsync(10, 4, RefusingPart(-1, []));
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), all.Select(r => r.Sequence));
    }

    [Fact]
    public void A_body_in_parts_is_refused_whole_when_a_timestamp_is_too_far_ahead()
    {
        // A body over Streams:MaxBatchSize goes in parts: a reading from the future in a later part was refused only
        // after the earlier parts were applied. The body is checked first; its timestamps never go back (CheckOrder),
        // so its last is its latest.
        var now = new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
        var options = new LstmOrleans.Grains.StreamGrainOptions();
        var glitch = new DateTimeOffset(9999, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Observation[] Body(params DateTimeOffset[] timestamps) => [.. timestamps.Select((t, i) => new Observation(i + 10, t, [1f]))];

        var e = Assert.Throws<ObservationRejectedException>(() => StreamEndpoints.CheckNotTooFarAhead(Body(now, now.AddHours(1), glitch, glitch), numbered: true, options, now));
        Assert.Equal(RejectionReason.TimestampTooFarAhead, e.Reason);
        Assert.Equal(12, e.Sequence);
        Assert.Equal($"Observation [2] at {glitch:O} is more than 1.00:00:00 ahead of the silo's clock ({now:O}); the limit is the silo's " +
            "Streams:MaxTimestampAhead (1.00:00:00, 00:00:00 turns it off). Nothing in the stream changed.", e.Message);
        // Without sequence numbers there is no sequence to name yet: the grain numbers them as it applies them.
        Assert.Null(Assert.Throws<ObservationRejectedException>(() => StreamEndpoints.CheckNotTooFarAhead(Body(now, glitch), numbered: false, options, now)).Sequence);

        StreamEndpoints.CheckNotTooFarAhead(Body(now, now.AddDays(1)), numbered: true, options, now);
        StreamEndpoints.CheckNotTooFarAhead(Body(now, glitch), numbered: true, new LstmOrleans.Grains.StreamGrainOptions { MaxTimestampAhead = TimeSpan.Zero }, now);
    }
}
