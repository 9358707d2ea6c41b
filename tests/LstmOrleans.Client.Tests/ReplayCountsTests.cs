using LstmOrleans.Abstractions;
using LstmOrleans.Client.Replay;
using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>How a replayed stream counts and scores answers when a retried batch comes back as duplicates.</summary>
public sealed class ReplayCountsTests
{
    private static readonly DateTimeOffset Start = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static StepResult Answer(long sequence, float prediction, bool duplicate = false) =>
        new("s", sequence, Start.AddMinutes(sequence), [prediction], [prediction - 1], [prediction + 1], [1f], [1], null, 1, duplicate, sequence);

    [Fact]
    public void Duplicates_are_counted_apart_and_a_forecast_the_replay_never_saw_is_not_scored()
    {
        // Rows 0..4 hold 1..5 (sequences 1..5).
        var series = new SeriesFile("s", "s.csv", [.. Enumerable.Range(0, 5).Select(i => Start.AddMinutes(i + 1))],
            [.. Enumerable.Range(1, 5).Select(v => new[] { (float)v })], ["value"]);
        var stream = new ReplayStream("s", series);

        stream.Record(0, Answer(1, 10), evaluate: true, keepRows: true);
        stream.Record(1, Answer(2, 20), evaluate: true, keepRows: true);
        // Rows 2-3 went out as one batch that was applied but whose answer was lost; the retry gets the stream's latest
        // answer (the one made after row 3, sequence 4) as a duplicate for both rows.
        var latest = Answer(4, 40, duplicate: true);
        stream.Record(2, latest, evaluate: true, keepRows: true);
        stream.Record(3, latest, evaluate: true, keepRows: true);
        stream.Record(4, Answer(5, 50), evaluate: true, keepRows: true);

        Assert.Equal(3, stream.Accepted);
        Assert.Equal(2, stream.Duplicates);
        // Scored: row 1 against 10 (|2 - 10| = 8), row 2 against 20 (|3 - 20| = 17), row 4 against 40 (|5 - 40| = 35).
        // Row 3's forecast (made after row 2) was never seen, and the duplicate's 40 was made after row 3 itself.
        Assert.Equal(3, stream.Model.Count);
        Assert.Equal((8 + 17 + 35) / 3.0, stream.Model.Mae, 12);
        Assert.Equal(1.0, stream.Persistence.Mae, 12);
        Assert.Equal([2L, 3L, 5L], stream.Rows.Select(r => r.Sequence));
        Assert.Equal([10f, 20f, 40f], stream.Rows.Select(r => r.Predicted));
        Assert.Equal("observations: 3 applied, 2 duplicates (already applied, not stepped again), 0 calls retried",
            Commands.ReplayCommand.Counts([stream]));
    }
}
