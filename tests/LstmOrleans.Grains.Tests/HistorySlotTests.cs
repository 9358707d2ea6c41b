using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Storage;
using LstmOrleans.Lstm;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// The closed-history ring of slots (<see cref="StreamComputation.ClosedChunksToWrite"/>,
/// <see cref="StreamComputation.StoredSlots"/>, <see cref="StreamComputation.Window"/>), driven without Orleans against
/// a dictionary standing in for the store, and checked against the list of everything sent: the window is always
/// exactly the newest min(maxCount, N) observations, with the values received and the inputs the LSTM was fed.
/// </summary>
public sealed class HistorySlotTests
{
    private static (StreamState State, CachedModel Model) NewStream(int capacity, int chunk, int calendarFeatures)
    {
        var config = TestSupport.SmallConfig(seed: 3) with
        {
            CalendarFeatures = calendarFeatures == 0 ? null : [.. new[] { "hour_sin", "hour_cos" }.Take(calendarFeatures)],
        };
        var parameters = LstmParameters.InitializeUniform(new LstmConfig(config.ModelInputSize, config.HiddenSize, config.Layers, config.Horizons), seed: 3);
        var model = new CachedModel("slots", 1, 1, config, LstmWeights.From(parameters));
        var s = new StreamState();
        StreamComputation.Bind(s, model, capacity, chunk);
        return (s, model);
    }

    /// <summary>What a write does to the store: every chunk to its slot (a codec round trip, as a provider stores it), then the core moves on.</summary>
    private static int Write(StreamState s, Dictionary<int, StreamHistory> store)
    {
        var chunks = StreamComputation.ClosedChunksToWrite(s);
        foreach (var chunk in chunks)
        {
            Assert.True(chunk.Count <= StreamComputation.HistoryChunkSize(s));
            store[StreamComputation.HistorySlot(s, chunk.StartIndex)] =
                StreamStateCodec.Read<StreamHistory>(StreamStateCodec.ToArray(new StreamHistory { Generation = s.Generation, Closed = chunk }));
        }
        s.PendingClosed = null;
        return chunks.Count;
    }

    /// <summary>What a read does: only the slots <see cref="StreamComputation.StoredSlots"/> names (each once), whatever they hold.</summary>
    private static ObservationChunk Read(StreamState s, Dictionary<int, StreamHistory> store, int maxCount, StreamHistory? legacy = null)
    {
        var slots = StreamComputation.StoredSlots(s, maxCount);
        Assert.True(slots.Length <= StreamComputation.HistorySlotCount(s));
        Assert.Equal(slots.Length, slots.Distinct().Count());
        var records = new StreamHistory?[StreamComputation.HistorySlotCount(s)];
        foreach (int slot in slots) records[slot] = store.GetValueOrDefault(slot);
        return StreamComputation.Window(s, records, legacy, maxCount);
    }

    private static void AssertWindow(List<Observation> sent, List<float[]> inputs, ObservationChunk window, int expectedCount, int d, int w)
    {
        Assert.Equal(expectedCount, window.Count);
        for (int i = 0; i < window.Count; i++)
        {
            int k = sent.Count - expectedCount + i;
            Assert.Equal(sent[k].Sequence, window.Sequences[i]);
            Assert.Equal(sent[k].Timestamp.UtcTicks, window.Ticks[i]);
            Assert.Equal(sent[k].Values, window.Values.AsSpan(i * d, d).ToArray());
            Assert.Equal(inputs[k], window.Inputs.AsSpan(i * w, w).ToArray());
        }
    }

    [Theory]
    [InlineData(16, 4, 0, 1)]     // a write per step (the default durability)
    [InlineData(10, 3, 2, 1)]     // N not a multiple of C; two calendar features (D_in = D + 2)
    [InlineData(16, 4, 0, 7)]     // a write every 7 steps: several chunks close between writes
    [InlineData(10, 3, 2, 40)]    // a write every 40 steps (> N + C): chunks out of the window are never written
    public void The_window_is_exactly_the_newest_observations_at_every_step(int capacity, int chunk, int calendarFeatures, int stepsPerWrite)
    {
        var (s, model) = NewStream(capacity, chunk, calendarFeatures);
        int d = s.InputSize, w = s.InputWidth;
        var store = new Dictionary<int, StreamHistory>();
        var sent = new List<Observation>();
        var inputs = new List<float[]>();
        int chunkWrites = 0;
        for (long seq = 1; seq <= 30 * capacity; seq++)
        {
            var o = TestSupport.Obs(seq);
            StreamComputation.Step(s, "s/1", o, model, new StreamGrainOptions());
            sent.Add(o);
            inputs.Add(s.Tail.Inputs.AsSpan((s.Tail.Count - 1) * w, w).ToArray());   // what the step fed the LSTM (checked against the reference elsewhere)
            if (seq % stepsPerWrite == 0) chunkWrites += Write(s, store);

            foreach (int maxCount in new[] { 1, chunk, capacity - 1, capacity, 3 * capacity })
                AssertWindow(sent, inputs, Read(s, store, maxCount), Math.Min(sent.Count, Math.Min(maxCount, capacity)), d, w);
        }
        Assert.True(chunkWrites >= 10, $"only {chunkWrites} chunk writes");
        Assert.True(store.Count <= StreamComputation.HistorySlotCount(s));
        Assert.All(store.Values, h => Assert.True(h.Closed.Count <= chunk));
    }

    [Theory]
    [InlineData(16, 4)]
    [InlineData(10, 3)]
    public void A_crash_after_the_chunk_write_leaves_the_old_core_its_whole_window(int capacity, int chunk)
    {
        var (s, model) = NewStream(capacity, chunk, calendarFeatures: 0);
        int d = s.InputSize, w = s.InputWidth;
        var store = new Dictionary<int, StreamHistory>();
        var sent = new List<Observation>();
        var inputs = new List<float[]>();
        for (long seq = 1; seq <= 6 * capacity; seq++)
        {
            var durable = s.Clone();                  // the core as last written (its pending chunks already stored)
            durable.PendingClosed = null;
            var o = TestSupport.Obs(seq);
            StreamComputation.Step(s, "s/1", o, model, new StreamGrainOptions());
            var input = s.Tail.Inputs.AsSpan((s.Tail.Count - 1) * w, w).ToArray();
            if (s.PendingClosed is { Count: > 0 })
            {
                // The chunk goes to its slot; the core write "crashes": the old core must still read its full window.
                foreach (var c in StreamComputation.ClosedChunksToWrite(s))
                    store[StreamComputation.HistorySlot(s, c.StartIndex)] = new StreamHistory { Generation = s.Generation, Closed = c };
                AssertWindow(sent, inputs, Read(durable, store, capacity), Math.Min(sent.Count, capacity), d, w);
                s.PendingClosed = null;               // ... and then it succeeds after all
            }
            sent.Add(o);
            inputs.Add(input);
            AssertWindow(sent, inputs, Read(s, store, capacity), Math.Min(sent.Count, capacity), d, w);
        }
    }

    [Fact]
    public void Records_of_another_chunk_or_missing_ones_shorten_the_window_from_its_old_end()
    {
        var (s, model) = NewStream(capacity: 16, chunk: 4, calendarFeatures: 0);
        var store = new Dictionary<int, StreamHistory>();
        for (long seq = 1; seq <= 50; seq++)
        {
            StreamComputation.Step(s, "s/1", TestSupport.Obs(seq), model, new StreamGrainOptions());
            Write(s, store);
        }
        // 50 sent: closed 0..47 (chunks at 32, 36, 40, 44 are the retained ones below the watermark), tail 48..49.
        Assert.Equal(16, Read(s, store, 16).Count);
        int slotOf36 = StreamComputation.HistorySlot(s, 36);
        var real = store[slotOf36];
        store[slotOf36] = new StreamHistory { Generation = s.Generation, Closed = store[StreamComputation.HistorySlot(s, 28)].Closed };   // a stale chunk
        var window = Read(s, store, 16);
        Assert.Equal(40, window.StartIndex);      // 40..49: the run newer than the bad record
        Assert.Equal(Enumerable.Range(41, 10).Select(i => (long)i), window.Sequences.Take(window.Count));
        store.Remove(slotOf36);
        Assert.Equal(10, Read(s, store, 16).Count);
        store[slotOf36] = new StreamHistory { Generation = s.Generation + 1, Closed = real.Closed };  // another generation's record is not read
        Assert.Equal(10, Read(s, store, 16).Count);
        // An old single record of this generation fills the gap (the slot's own record is preferred where both cover an index).
        var single = new StreamHistory { Generation = s.Generation, Closed = real.Closed };
        Assert.Equal(16, Read(s, store, 16, legacy: single).Count);
        Assert.Equal(10, Read(s, store, 16, legacy: new StreamHistory { Generation = s.Generation - 1, Closed = real.Closed }).Count);
        store[slotOf36] = real;
        Assert.Equal(16, Read(s, store, 16).Count);
    }

    [Fact]
    public void A_ring_of_more_than_1024_records_is_refused_by_the_options_validator()
    {
        var validator = new StreamGrainOptionsValidator();
        Assert.True(validator.Validate(null, new StreamGrainOptions { HistoryCapacity = 32 * 1024, HistoryChunkSize = 32 }).Succeeded);
        var bad = validator.Validate(null, new StreamGrainOptions { HistoryCapacity = 32 * 1024 + 1, HistoryChunkSize = 32 });
        Assert.True(bad.Failed);
        Assert.Contains("must be at most 1024", bad.FailureMessage);
        Assert.True(validator.Validate(null, new StreamGrainOptions { HistoryCapacity = 1_000_000, HistoryChunkSize = 1000 }).Succeeded);

        // Tools that size the history from data get a chunk size that keeps the ring within the cap.
        var sized = new StreamGrainOptions();
        sized.SetHistoryCapacity(100_000);
        Assert.Equal(98, sized.HistoryChunkSize);
        Assert.True(validator.Validate(null, sized).Succeeded);
        var small = new StreamGrainOptions();
        small.SetHistoryCapacity(11_000);
        Assert.Equal(new StreamGrainOptions().HistoryChunkSize, small.HistoryChunkSize); // 11 needed, the default is larger
    }

    [Theory]
    [InlineData(16, 4)]
    [InlineData(10, 3)]
    public void An_old_single_history_record_is_recut_into_slots_with_the_same_window(int capacity, int chunk)
    {
        var (s, model) = NewStream(capacity, chunk, calendarFeatures: 0);
        int d = s.InputSize, w = s.InputWidth;
        var sent = new List<Observation>();
        for (long seq = 1; seq <= 5 * capacity + 2; seq++)
        {
            var o = TestSupport.Obs(seq);
            StreamComputation.Step(s, "s/1", o, model, new StreamGrainOptions());
            sent.Add(o);
        }
        // The old layout: every closed observation in one record (here more than N of them, and some beyond the
        // watermark, as a crash before the core write left it).
        var everything = s.PendingClosed!.Clone();
        long durable = s.ClosedCount - chunk;
        s.PendingClosed = null;
        var core = s.Clone();
        core.ClosedCount = durable;                   // the old core's watermark is one chunk back ...
        core.Tail = ObservationChunk.Create(durable, s.Tail.Capacity, d, w);   // ... with an empty tail
        var migrated = StreamComputation.LegacyChunks(core, everything);
        Assert.All(migrated, c => Assert.True(c.EndIndex <= durable && c.Count <= chunk));
        Assert.Equal(Math.Min(capacity, durable), migrated.Sum(c => c.Count));      // N before the watermark, each entry once
        Assert.Equal(migrated.Count, migrated.Select(c => StreamComputation.HistorySlot(core, c.StartIndex)).Distinct().Count());
        var store = new Dictionary<int, StreamHistory>();
        foreach (var c in migrated) store[StreamComputation.HistorySlot(core, c.StartIndex)] = new StreamHistory { Generation = core.Generation, Closed = c };
        var window = Read(core, store, capacity);
        Assert.Equal(Math.Min(capacity, (int)durable), window.Count);
        Assert.Equal(sent.Take((int)durable).TakeLast(window.Count).Select(o => o.Sequence), window.Sequences.Take(window.Count));
    }
}
