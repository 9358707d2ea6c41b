using LstmOrleans.Abstractions;
using Orleans.Runtime;
using Orleans.Streams;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// A timestamp far ahead of the silo's clock (a sensor clock glitch, year 9999) was accepted, and since timestamps never
/// go back every real reading after it was refused as <see cref="RejectionReason.TimestampBackwards"/> until a reset:
/// one bad reading poisoned the stream. Now it is refused (<see cref="RejectionReason.TimestampTooFarAhead"/>) on every
/// ingest path and changes nothing. The cluster's silos have the default limit of a day; timestamps years ahead of any
/// clock this runs on keep the tests deterministic.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class TimestampAheadTests(ClusterFixture fixture)
{
    private static readonly DateTimeOffset Glitch = new(9999, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private IClusterClient Client => fixture.Client;

    private async Task<IStreamGrain> StreamWithFiveValuesAsync(string model, string id)
    {
        await Client.GetGrain<IModelGrain>(model).CreateAsync(TestSupport.SmallConfig());
        var stream = Client.GetGrain<IStreamGrain>(id);
        await stream.BindAsync(model);
        for (long seq = 1; seq <= 5; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        return stream;
    }

    [Fact]
    public async Task A_timestamp_too_far_ahead_is_refused_by_every_ingest_call_and_changes_nothing()
    {
        var stream = await StreamWithFiveValuesAsync("ahead", "ahead/stream");
        var before = await TestSupport.FullState(stream);

        async Task Refused(Func<Task> call, string subject)
        {
            var e = await Assert.ThrowsAsync<ObservationRejectedException>(call);
            Assert.Equal(RejectionReason.TimestampTooFarAhead, e.Reason);
            Assert.StartsWith($"{subject} at {Glitch:O} is more than 1.00:00:00 ahead of the silo's clock (", e.Message);
            Assert.Contains("Streams:MaxTimestampAhead (1.00:00:00, 00:00:00 turns it off)", e.Message);
            Assert.Equal(before, await TestSupport.FullState(stream));
        }

        var values = TestSupport.Obs(6).Values;
        await Refused(() => stream.IngestAsync(TestSupport.Obs(6) with { Timestamp = Glitch }), "Observation 6");
        // In a batch the glitch need not be last: a later element at the same time is just as far ahead.
        await Refused(() => stream.IngestBatchAsync([TestSupport.Obs(6), TestSupport.Obs(7) with { Timestamp = Glitch }, TestSupport.Obs(8) with { Timestamp = Glitch }]),
            "Batch element 1 (sequence 7)");
        await Refused(() => stream.IngestColumnsAsync(ObservationBatch.From([TestSupport.Obs(6), TestSupport.Obs(7) with { Timestamp = Glitch }], 2)),
            "Batch element 1 (sequence 7)");
        await Refused(() => stream.IngestColumnsAsync(ObservationBatch.From([TestSupport.Obs(6) with { Timestamp = Glitch }], 2)), "Observation 6");
        // Readings the stream numbers may carry their own timestamps.
        await Refused(() => stream.IngestAfterLastAsync([new UnnumberedObservation(Glitch, values)]), "Observation 6");
        await Refused(() => stream.IngestAfterLastAsync([new UnnumberedObservation(null, values), new UnnumberedObservation(Glitch, values)]),
            "Batch element 1 (sequence 7)");

        // The next real reading is accepted, and so is one a little ahead of the clock (a sensor clock running fast).
        var next = await stream.IngestAsync(TestSupport.Obs(6));
        Assert.Equal((6L, 6L, false), (next.Sequence, next.StepCount, next.Duplicate));
        var fast = await stream.IngestAfterLastAsync([new UnnumberedObservation(DateTimeOffset.UtcNow.AddHours(1), values)]);
        Assert.Equal((7L, 7L), (fast[0].Sequence, fast[0].StepCount));
    }

    [Fact]
    public async Task A_timestamp_too_far_ahead_on_the_Orleans_stream_is_dropped_and_the_next_reading_is_stepped()
    {
        const string key = "ahead/orleans-stream";
        var grain = await StreamWithFiveValuesAsync("ahead-streamed", key);
        var stream = Client.GetStreamProvider(LstmOrleansNames.StreamProviderName)
            .GetStream<Observation>(StreamId.Create(LstmOrleansNames.ObservationStreamNamespace, key));

        await stream.OnNextAsync(TestSupport.Obs(6) with { Timestamp = Glitch });
        await stream.OnNextAsync(TestSupport.Obs(7));

        // Memory streams deliver through polling agents; allow for a slow, loaded machine. Accepted, the glitch made 7 a
        // TimestampBackwards, dropped too, and the stream stopped at 6.
        var summary = await TestSupport.Eventually(grain.GetSummaryAsync, s => s.LastSequence == 7, TimeSpan.FromSeconds(60));
        Assert.Equal((7L, 6L, TestSupport.Obs(7).Timestamp), (summary.LastSequence, summary.StepCount, summary.LastTimestamp));
        Assert.Equal([1L, 2, 3, 4, 5, 7], (await grain.GetHistoryAsync(100)).Select(o => o.Sequence));
    }
}

/// <summary>The limit itself, against a fixed clock: where it lies, how it is turned off, and what it costs a valid batch.</summary>
public sealed class TimestampAheadLimitTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private static ObservationBatch Batch(params DateTimeOffset[] timestamps) =>
        ObservationBatch.From(timestamps.Select((t, i) => TestSupport.Obs(i + 1) with { Timestamp = t }).ToArray(), 2);

    [Fact]
    public void The_limit_is_inclusive_compares_instants_and_is_off_at_zero()
    {
        var options = new StreamGrainOptions();
        Assert.Equal(TimeSpan.FromDays(1), options.MaxTimestampAhead);
        var limit = Now + options.MaxTimestampAhead;

        Assert.False(options.IsTooFarAhead(limit.UtcTicks, Now));
        Assert.True(options.IsTooFarAhead(limit.UtcTicks + 1, Now));
        // The same instant written with a clock offset of +14:00 (local time past the limit) is still within it.
        StreamComputation.CheckNotTooFarAhead(Batch(limit.ToOffset(TimeSpan.FromHours(14))), 0, Now, options);
        var e = Assert.Throws<ObservationRejectedException>(() => StreamComputation.CheckNotTooFarAhead(Batch(limit.AddTicks(1)), 0, Now, options));
        Assert.Equal(RejectionReason.TimestampTooFarAhead, e.Reason);
        Assert.Equal(1, e.Sequence);
        Assert.Equal($"Observation 1 at {limit.AddTicks(1):O} is more than 1.00:00:00 ahead of the silo's clock ({Now:O}); the limit is the silo's " +
            "Streams:MaxTimestampAhead (1.00:00:00, 00:00:00 turns it off). Nothing in the stream changed.", e.Message);

        // Off: any valid date, however far ahead (data stamped in the future on purpose).
        var off = new StreamGrainOptions { MaxTimestampAhead = TimeSpan.Zero };
        Assert.False(off.IsTooFarAhead(DateTimeOffset.MaxValue.UtcTicks, Now));
        StreamComputation.CheckNotTooFarAhead(Batch(Now, DateTimeOffset.MaxValue), 0, Now, off);
        // The largest limit overflows no date.
        var widest = new StreamGrainOptions { MaxTimestampAhead = TimeSpan.MaxValue };
        Assert.False(widest.IsTooFarAhead(DateTimeOffset.MaxValue.UtcTicks, DateTimeOffset.MinValue));
    }

    [Fact]
    public void A_batch_names_its_first_new_element_too_far_ahead_and_ignores_its_duplicate_prefix()
    {
        var options = new StreamGrainOptions { MaxTimestampAhead = TimeSpan.FromHours(2) };
        var far = Now.AddHours(3);
        var batch = Batch(Now, Now.AddHours(1), far, far);
        var e = Assert.Throws<ObservationRejectedException>(() => StreamComputation.CheckNotTooFarAhead(batch, 0, Now, options));
        Assert.Equal(3, e.Sequence);
        Assert.StartsWith($"Batch element 2 (sequence 3) at {far:O} is more than 02:00:00 ahead", e.Message);
        // Elements the stream already has are not applied: only the new ones are checked.
        StreamComputation.CheckNotTooFarAhead(Batch(far, Now.AddHours(1)), firstNew: 1, Now, options);
        StreamComputation.CheckNotTooFarAhead(Batch(far), firstNew: 1, Now, options);
    }

    [Fact]
    public void A_valid_batch_is_checked_against_the_clock_without_allocating()
    {
        var options = new StreamGrainOptions();
        var batch = Batch([.. Enumerable.Range(0, 64).Select(i => Now.AddMinutes(i))]);
        for (int i = 0; i < 10; i++) StreamComputation.CheckNotTooFarAhead(batch, 0, Now, options);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            StreamComputation.CheckNotTooFarAhead(batch, 0, Now, options);
            options.IsTooFarAhead(Now.UtcTicks, Now);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        // The check measured is the one that refuses.
        Assert.Throws<ObservationRejectedException>(() => StreamComputation.CheckNotTooFarAhead(Batch(Now, Now.AddDays(2)), 0, Now, options));
    }

    [Theory]
    [InlineData("-00:00:01", false)]
    [InlineData("-00:00:00.001", false)]   // Timeout.InfiniteTimeSpan: 00:00:00 is the one way to turn the limit off
    [InlineData("00:00:00", true)]
    [InlineData("00:05:00", true)]
    [InlineData("3650.00:00:00", true)]
    public void The_validator_takes_zero_or_a_positive_limit(string value, bool valid)
    {
        var options = new StreamGrainOptions { MaxTimestampAhead = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture) };
        var result = new StreamGrainOptionsValidator().Validate(null, options);
        Assert.Equal(valid, result.Succeeded);
        if (!valid) Assert.Equal([$"MaxTimestampAhead must be positive, or 00:00:00 for no limit; got {options.MaxTimestampAhead}."], result.Failures);
    }
}
