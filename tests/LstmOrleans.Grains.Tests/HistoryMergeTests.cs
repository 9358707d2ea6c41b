using LstmOrleans.Grains.Storage;
using LstmOrleans.Lstm;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// <see cref="StreamComputation.MergeHistory"/> reuses the stored chunk it was given when the merged record has its
/// exact size (the steady state of a full history). The record it writes must be byte for byte the one the
/// allocating merge writes, at every chunk close from the first to long after the history is full.
/// </summary>
public sealed class HistoryMergeTests
{
    /// <summary>The same entries in arrays one entry longer: the merge cannot reuse them, so it takes the allocating path.</summary>
    private static StreamHistory WithSlack(StreamHistory h, int d, int w)
    {
        var c = h.Closed;
        var copy = ObservationChunk.Create(c.StartIndex, c.Capacity + 1, d, w);
        for (int i = 0; i < c.Count; i++) copy.AppendFrom(c, i, d, w);
        return new StreamHistory { Generation = h.Generation, Closed = copy };
    }

    private static StreamHistory RoundTrip(StreamHistory h) => StreamStateCodec.Read<StreamHistory>(StreamStateCodec.ToArray(h));

    [Theory]
    [InlineData(16, 4, 0)]    // D = D_in: no calendar features
    [InlineData(10, 3, 2)]    // capacity not a multiple of the chunk; two calendar features (D_in = D + 2)
    public void The_in_place_merge_writes_exactly_what_the_allocating_merge_writes(int capacity, int chunk, int calendarFeatures)
    {
        var config = TestSupport.SmallConfig(seed: 3) with
        {
            CalendarFeatures = calendarFeatures == 0 ? null : [.. new[] { "hour_sin", "hour_cos" }.Take(calendarFeatures)],
        };
        var parameters = LstmParameters.InitializeUniform(new LstmConfig(config.ModelInputSize, config.HiddenSize, config.Layers, config.Horizons), seed: 3);
        var model = new CachedModel("merge", 1, 1, config, LstmWeights.From(parameters));
        var s = new StreamState();
        StreamComputation.Bind(s, model, capacity, chunk);
        int d = s.InputSize, w = s.InputWidth;

        var stored = new StreamHistory();   // what the store holds (nothing yet)
        int merges = 0, inPlace = 0;
        for (long seq = 1; seq <= 12 * capacity; seq++)
        {
            StreamComputation.Step(s, "s/1", TestSupport.Obs(seq), model, new StreamGrainOptions());
            if (s.PendingClosed is not { Count: > 0 }) continue;

            var expected = StreamStateCodec.ToArray(StreamComputation.MergeHistory(s, stored.Closed.Capacity == 0 ? RoundTrip(stored) : WithSlack(RoundTrip(stored), d, w)));
            var read = RoundTrip(stored);      // as a provider hands it over: a private copy
            var merged = StreamComputation.MergeHistory(s, read);
            Assert.Equal(expected, StreamStateCodec.ToArray(merged));
            merges++;
            if (ReferenceEquals(merged.Closed, read.Closed)) inPlace++;

            stored = merged;                   // the history write; then the core write clears the pending chunks
            s.PendingClosed = null;
        }
        Assert.True(merges >= 10, $"only {merges} chunk closes");
        Assert.True(inPlace >= merges / 2, $"the in-place merge ran {inPlace} of {merges} times; the steady state should reuse the stored chunk");
        // The stored history ends as exactly the retained window before the watermark: N + one chunk at most.
        Assert.Equal(s.ClosedCount, stored.Closed.EndIndex);
    }
}
