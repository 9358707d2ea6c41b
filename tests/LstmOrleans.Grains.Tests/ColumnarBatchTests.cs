using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// The columnar batch path (<see cref="IStreamGrain.IngestColumnsAsync"/>): the same answers and the same state as the
/// row batch path and as one observation at a time, bit for bit; the same rejections, changing nothing; duplicates.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ColumnarBatchTests(ClusterFixture fixture)
{
    private IClusterClient Client => fixture.Client;

    private async Task<IStreamGrain[]> StreamsAsync(string model, ModelConfig config, params string[] ids)
    {
        await Client.GetGrain<IModelGrain>(model).CreateAsync(config);
        var streams = new IStreamGrain[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            streams[i] = Client.GetGrain<IStreamGrain>($"{model}/{ids[i]}");
            await streams[i].BindAsync(model);
        }
        return streams;
    }

    /// <summary>Bit patterns, so -0 vs 0 and NaN payloads count as differences.</summary>
    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    private static void AssertSameAnswer(StepResult expected, StepResult actual)
    {
        Assert.Equal(expected.Sequence, actual.Sequence);
        Assert.Equal(expected.Timestamp, actual.Timestamp);
        Assert.Equal(expected.Timestamp.Offset, actual.Timestamp.Offset);
        Assert.Equal(Bits(expected.Predictions), Bits(actual.Predictions));
        Assert.Equal(Bits(expected.Lower), Bits(actual.Lower));
        Assert.Equal(Bits(expected.Upper), Bits(actual.Upper));
        Assert.Equal(Bits(expected.Rmse), Bits(actual.Rmse));
        Assert.Equal(expected.ErrorSamples, actual.ErrorSamples);
        Assert.Equal(expected.PreviousError is { } e ? BitConverter.SingleToInt32Bits(e) : (int?)null,
            actual.PreviousError is { } a ? BitConverter.SingleToInt32Bits(a) : (int?)null);
        Assert.Equal(expected.WeightsVersion, actual.WeightsVersion);
        Assert.Equal(expected.Duplicate, actual.Duplicate);
        Assert.Equal(expected.StepCount, actual.StepCount);
    }

    /// <summary>Everything observable of a stream, with its own id blanked so two streams can be compared.</summary>
    private static async Task<string> StateOf(IStreamGrain stream) =>
        (await TestSupport.FullState(stream)).Replace(stream.GetPrimaryKeyString(), "<stream>");

    public static TheoryData<string> Models => new() { "plain", "calendar" };

    private static ModelConfig Config(string kind) => kind == "plain"
        ? TestSupport.SmallConfig(seed: 21)
        : new ModelConfig(InputSize: 1, HiddenSize: 8, Layers: 2, Horizons: 3, Features: ["load"], TargetIndex: 0, NormalizationMode.RunningZScore,
            Seed: 12, CalendarFeatures: ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos"], Residual: true);

    /// <summary>Readings of either model; the calendar model's are at UTC+02:00 every 37 minutes, so the clock offset matters.</summary>
    private static Observation Obs(string kind, long t) => kind == "plain"
        ? TestSupport.Obs(t)
        : new Observation(t, new DateTimeOffset(2026, 1, 3, 22, 0, 0, TimeSpan.FromHours(2)).AddMinutes(37 * t),
            [(float)(50 + 20 * Math.Sin(2 * Math.PI * t * 37 / 1440.0) + 3 * Math.Cos(1.3 * t))]);

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Columns_rows_and_singles_give_the_same_answers_and_state_bit_for_bit(string kind)
    {
        var config = Config(kind);
        int d = config.InputSize;
        var streams = await StreamsAsync($"columns-equal-{kind}", config, "singles", "rows", "columns");
        var (singles, rows, columns) = (streams[0], streams[1], streams[2]);

        // Batch sizes cross tail-chunk closures (32) and the history capacity (64), and fall on both sides of the
        // fixture's offload threshold (~16 steps); sequence gaps of 2.
        long t = 0;
        foreach (int size in new[] { 1, 5, 17, 64, 3, 100, 40 })
        {
            var batch = Enumerable.Range(0, size).Select(_ => Obs(kind, t += 2)).ToArray();
            var expected = new List<StepResult>();
            foreach (var o in batch) expected.Add(await singles.IngestAsync(o));
            var rowAnswers = await rows.IngestBatchAsync(batch);
            var request = ObservationBatch.From(batch, d);
            var forecast = await columns.IngestColumnsAsync(request);
            Assert.Equal(0, forecast.DuplicateCount);
            Assert.Equal(size, forecast.NewCount);
            var columnAnswers = forecast.ToStepResults(request);
            for (int i = 0; i < size; i++)
            {
                AssertSameAnswer(expected[i], rowAnswers[i]);
                AssertSameAnswer(expected[i], columnAnswers[i]);
            }
        }

        var reference = await StateOf(singles);
        Assert.Equal(reference, await StateOf(rows));
        Assert.Equal(reference, await StateOf(columns));
        var hc = await singles.GetStateAsync();
        var columnHc = await columns.GetStateAsync();
        Assert.Equal(Bits(hc.Hidden), Bits(columnHc.Hidden));
        Assert.Equal(Bits(hc.Cell), Bits(columnHc.Cell));
        Assert.Equal(230, hc.Summary.StepCount);

        // The stored "latest" answer (what a retry gets) is the same too.
        AssertSameAnswer((await singles.GetPredictionAsync())!, (await columns.GetPredictionAsync())!);
    }

    [Fact]
    public async Task Singles_equal_the_engine_driven_directly_so_columns_do_too()
    {
        // Anchors the three-way equality above to an independent reference (the engine, stepped by hand).
        var config = TestSupport.SmallConfig(seed: 22);
        var stream = (await StreamsAsync("columns-reference", config, "columns"))[0];
        var weights = await Client.GetGrain<IModelGrain>("columns-reference").GetActiveWeightsAsync();
        var reference = new ReferenceStream(config, TestSupport.ToEngine(weights));
        var batch = Enumerable.Range(1, 50).Select(i => TestSupport.Obs(i)).ToArray();
        var request = ObservationBatch.From(batch, config.InputSize);
        var answers = (await stream.IngestColumnsAsync(request)).ToStepResults(request);
        for (int i = 0; i < batch.Length; i++) Assert.Equal(Bits(reference.Step(batch[i].Values)), Bits(answers[i].Predictions));
        var state = await stream.GetStateAsync();
        Assert.Equal(Bits(reference.H), Bits(state.Hidden));
        Assert.Equal(Bits(reference.C), Bits(state.Cell));
    }

    [Fact]
    public async Task Every_rejection_changes_nothing()
    {
        var config = TestSupport.SmallConfig(seed: 23);
        var stream = (await StreamsAsync("columns-reject", config, "s"))[0];
        for (long seq = 1; seq <= 5; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var before = await StateOf(stream);

        var good = Enumerable.Range(6, 30).Select(i => TestSupport.Obs(i)).ToArray();
        var sequences = good.Select(o => o.Sequence).ToArray();
        var ticks = good.Select(o => o.Timestamp.UtcTicks).ToArray();
        var values = good.SelectMany(o => o.Values).ToArray();

        async Task Rejected(RejectionReason reason, ObservationBatch batch)
        {
            var e = await Assert.ThrowsAsync<ObservationRejectedException>(() => stream.IngestColumnsAsync(batch));
            Assert.Equal(reason, e.Reason);
            Assert.Equal(before, await StateOf(stream));
        }

        T[] With<T>(T[] source, int index, T value) { var copy = (T[])source.Clone(); copy[index] = value; return copy; }

        await Rejected(RejectionReason.NonFiniteValue, new ObservationBatch(sequences, ticks, With(values, values.Length - 1, float.NaN)));
        await Rejected(RejectionReason.NonFiniteValue, new ObservationBatch(sequences, ticks, With(values, 7, float.PositiveInfinity)));
        await Rejected(RejectionReason.TimestampBackwards, new ObservationBatch(sequences, With(ticks, 15, TestSupport.Start.UtcTicks), values));
        await Rejected(RejectionReason.TimestampBackwards, new ObservationBatch(sequences, With(ticks, 0, TestSupport.Start.UtcTicks), values));   // before the stored last
        await Rejected(RejectionReason.BatchOutOfOrder, new ObservationBatch(With(sequences, 11, sequences[10]), ticks, values));
        await Rejected(RejectionReason.WrongLength, new ObservationBatch(sequences, ticks, values[..^1]));
        await Rejected(RejectionReason.WrongLength, new ObservationBatch(sequences, ticks[..^1], values));
        await Rejected(RejectionReason.WrongLength, new ObservationBatch(sequences, ticks, values, new short[3]));
        await Rejected(RejectionReason.InvalidTimestamp, new ObservationBatch(sequences, ticks, values, Enumerable.Repeat((short)(15 * 60), 30).ToArray()));
        await Rejected(RejectionReason.InvalidTimestamp, new ObservationBatch(sequences, With(ticks, 29, -1L), values));
        var huge = Enumerable.Range(6, 101).Select(i => TestSupport.Obs(i)).ToArray();   // MaxBatchSize is 100 here
        await Rejected(RejectionReason.BatchTooLarge, ObservationBatch.From(huge, 2));

        // A later duplicate prefix does not excuse a fault after it.
        var overlapping = new[] { TestSupport.Obs(4), TestSupport.Obs(5) }.Concat(good).ToArray();
        var bad = overlapping.ToArray();
        bad[^1] = bad[^1] with { Values = [1f, float.NegativeInfinity] };
        await Rejected(RejectionReason.NonFiniteValue, ObservationBatch.From(bad, 2));

        // After all that, the good batch applies.
        var forecast = await stream.IngestColumnsAsync(new ObservationBatch(sequences, ticks, values));
        Assert.Equal(30, forecast.NewCount);
        Assert.Equal(35, (await stream.GetSummaryAsync()).StepCount);
    }

    /// <summary>The ETag of the stream's stored core record: unchanged means nothing was written.</summary>
    private async Task<string?> StoredETag(IStreamGrain stream)
    {
        var storage = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<Orleans.Storage.IGrainStorage>(LstmOrleansNames.StorageName);
        var record = new GrainState<StreamState>();
        await storage.ReadStateAsync("stream", stream.GetGrainId(), record);
        return record.ETag;
    }

    [Fact]
    public async Task An_empty_batch_or_one_without_a_column_is_rejected_and_changes_nothing()
    {
        var stream = (await StreamsAsync("columns-empty", TestSupport.SmallConfig(seed: 25), "s"))[0];
        for (long seq = 1; seq <= 5; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var before = await StateOf(stream);
        var stored = await StoredETag(stream);

        async Task Rejected(RejectionReason reason, Func<Task> call)
        {
            var e = await Assert.ThrowsAsync<ObservationRejectedException>(call);
            Assert.Equal(reason, e.Reason);
            Assert.Equal(before, await StateOf(stream));
            Assert.Equal(stored, await StoredETag(stream));
        }

        await Rejected(RejectionReason.Empty, () => stream.IngestColumnsAsync(new ObservationBatch([], [], [])));
        await Rejected(RejectionReason.Empty, () => stream.IngestBatchAsync([]));

        // A sender whose message lacks a column (Orleans leaves a field it did not get null): told so, not a NullReferenceException.
        foreach (var column in new[] { "_sequences", "_timestampTicks", "_values" })
        {
            var batch = ObservationBatch.From([TestSupport.Obs(6), TestSupport.Obs(7)], 2);
            typeof(ObservationBatch).GetField(column, System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.SetValue(batch, null);
            await Rejected(RejectionReason.MissingValues, () => stream.IngestColumnsAsync(batch));
        }

        var forecast = await stream.IngestColumnsAsync(ObservationBatch.From([TestSupport.Obs(6), TestSupport.Obs(7)], 2));
        Assert.Equal(2, forecast.NewCount);
        Assert.Equal(7, (await stream.GetSummaryAsync()).StepCount);
        Assert.NotEqual(stored, await StoredETag(stream));
    }

    [Fact]
    public async Task A_duplicate_prefix_is_skipped_and_a_retried_batch_returns_duplicates()
    {
        var config = TestSupport.SmallConfig(seed: 24);
        var streams = await StreamsAsync("columns-dup", config, "columns", "singles");
        var (columns, singles) = (streams[0], streams[1]);
        var first = Enumerable.Range(1, 10).Select(i => TestSupport.Obs(i)).ToArray();
        foreach (var o in first) await singles.IngestAsync(o);
        var firstRequest = ObservationBatch.From(first, 2);
        var firstAnswer = await columns.IngestColumnsAsync(firstRequest);
        var last = (await columns.GetPredictionAsync())!;
        var afterFirst = await StateOf(columns);

        // The exact retry: every element a duplicate, each answered with the last answer, nothing changes.
        var retry = await columns.IngestColumnsAsync(firstRequest);
        Assert.Equal(10, retry.DuplicateCount);
        Assert.Equal(0, retry.NewCount);
        var retried = retry.ToStepResults(firstRequest);
        Assert.All(retried, r => AssertSameAnswer(last with { Duplicate = true }, r));
        AssertSameAnswer(firstAnswer.ToStepResults(firstRequest)[^1] with { Duplicate = true }, retried[^1]);
        Assert.Equal(afterFirst, await StateOf(columns));

        // Overlap: 8..15 applies 11..15 only, equal to singles.
        var overlap = Enumerable.Range(8, 8).Select(i => TestSupport.Obs(i)).ToArray();
        var request = ObservationBatch.From(overlap, 2);
        var answer = await columns.IngestColumnsAsync(request);
        Assert.Equal(3, answer.DuplicateCount);
        Assert.Equal(5, answer.NewCount);
        Assert.Equal(11, answer.FirstStepCount);
        var results = answer.ToStepResults(request);
        for (int i = 0; i < 3; i++) AssertSameAnswer(last with { Duplicate = true }, results[i]);
        for (int i = 3; i < 8; i++) AssertSameAnswer(await singles.IngestAsync(overlap[i]), results[i]);
        Assert.Equal(await StateOf(singles), await StateOf(columns));
    }

    [Fact]
    public async Task The_messages_round_trip_through_the_Orleans_serializer_as_compact_blocks()
    {
        var serializer = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<Serializer>();
        const int n = 64;
        var sequences = Enumerable.Range(0, n).Select(i => 1_000_000_000_000L + i).ToArray();
        var ticks = Enumerable.Range(0, n).Select(i => TestSupport.Start.UtcTicks + i * TimeSpan.TicksPerSecond).ToArray();
        var values = Enumerable.Range(0, 2 * n).Select(i => MathF.Sin(i) * 1e6f).ToArray();
        var offsets = Enumerable.Range(0, n).Select(i => (short)(i % 3 == 0 ? -330 : 120)).ToArray();
        var batch = new ObservationBatch(sequences, ticks, values, offsets);

        var bytes = serializer.SerializeToArray(batch);
        var copy = serializer.Deserialize<ObservationBatch>(bytes)!;
        Assert.Equal(sequences, copy.Sequences.ToArray());
        Assert.Equal(ticks, copy.TimestampTicks.ToArray());
        Assert.Equal(Bits(values), Bits(copy.Values.ToArray()));
        Assert.Equal(offsets, copy.OffsetMinutes.ToArray());
        Assert.Equal(new DateTimeOffset(ticks[3], TimeSpan.Zero), copy.Timestamp(3));
        Assert.Equal(TimeSpan.FromMinutes(-330), copy.Timestamp(3).Offset);
        Assert.Null(copy.CheckShape(2));
        // Blocks, not elements: the 64 x (8 + 8 + 2 x 4 + 2) payload bytes plus a small fixed overhead.
        Assert.InRange(bytes.Length, n * 26, n * 26 + 64);

        var utc = serializer.Deserialize<ObservationBatch>(serializer.SerializeToArray(new ObservationBatch(sequences, ticks, values)))!;
        Assert.True(utc.OffsetMinutes.IsEmpty);
        Assert.Equal(TimeSpan.Zero, utc.Timestamp(5).Offset);

        const int k = 3;
        var predictions = Enumerable.Range(0, n * k).Select(i => i * 0.25f - 7).ToArray();
        var rmse = Enumerable.Range(0, n * k).Select(i => Math.Sqrt(i + 0.5)).ToArray();
        var errors = Enumerable.Range(0, n).Select(i => i == 0 ? float.NaN : -i * 0.5f).ToArray();
        var duplicate = new StepResult("s", 9, TestSupport.Start, [1f, 2f, 3f], [0f, 1f, 2f], [2f, 3f, 4f], [0.5f, 0.5f, 0.5f], [1, 0, 0], 0.25f, 4, true, 9);
        var forecast = new BatchForecast("s", n + 2, k, 2, duplicate, 4, 10, 1.96, [70, 69, 68], predictions, rmse, errors);
        var forecastBytes = serializer.SerializeToArray(forecast);
        var back = serializer.Deserialize<BatchForecast>(forecastBytes)!;
        Assert.Equal("s", back.StreamId);
        Assert.Equal((n + 2, k, 2, n, 4L, 10L, 1.96), (back.Count, back.Horizons, back.DuplicateCount, back.NewCount, back.WeightsVersion, back.FirstStepCount, back.IntervalZ));
        Assert.Equal(Bits(predictions), Bits(back.Predictions.ToArray()));
        Assert.Equal(rmse, back.Rmse.ToArray());
        Assert.Equal(Bits(errors), Bits(back.PreviousError.ToArray()));
        Assert.Equal([70L, 69L, 68L], back.LastErrorSamples);
        Assert.NotNull(back.DuplicateAnswer);
        AssertSameAnswer(duplicate, back.DuplicateAnswer!);
    }

    [Fact]
    public void Answers_are_rebuilt_from_columns_as_specified()
    {
        // Hand-built columns: two duplicates, then three steps with step counts 1, 2, 3 (a stream's first steps), K = 2.
        var duplicate = new StepResult("s", 0, TestSupport.Start, [], [], [], [], [], null, 1, true, 0);
        var forecast = new BatchForecast("s", 5, 2, 2, duplicate, 7, 1, 2.0, [2, 1],
            [10f, 11f, 20f, 21f, 30f, 31f], [1.0, 4.0, 0.5, 0.25, 0.1, 0.2], [float.NaN, -1.5f, 2.5f]);
        var request = new ObservationBatch([1L, 2, 3, 4, 5], [10L, 20, 30, 40, 50], new float[5], [0, 0, 60, 60, 60]);
        var results = forecast.ToStepResults(request);
        Assert.Same(duplicate, results[0]);
        Assert.Same(duplicate, results[1]);
        var third = results[2];
        Assert.Equal((3L, 1L, 7L, false), (third.Sequence, third.StepCount, third.WeightsVersion, third.Duplicate));
        Assert.Equal(new DateTimeOffset(30 + TimeSpan.TicksPerHour, TimeSpan.FromHours(1)), third.Timestamp);
        Assert.Null(third.PreviousError);
        Assert.Equal([10f, 11f], third.Predictions);
        Assert.Equal([1f, 4f], third.Rmse);
        Assert.Equal([(float)(10 - 2.0 * 1.0), (float)(11 - 2.0 * 4.0)], third.Lower);
        Assert.Equal([(float)(10 + 2.0 * 1.0), (float)(11 + 2.0 * 4.0)], third.Upper);
        // Error samples: the 1st step scores nothing, the 2nd scores h=1, the 3rd h=1 and h=2; the last counts are [2, 1].
        Assert.Equal([0L, 0L], third.ErrorSamples);
        Assert.Equal([1L, 0L], results[3].ErrorSamples);
        Assert.Equal(-1.5f, results[3].PreviousError);
        Assert.Equal([2L, 1L], results[4].ErrorSamples);
        Assert.Equal(2.5f, results[4].PreviousError);
        Assert.Equal(3L, results[4].StepCount);
        Assert.Throws<ArgumentException>(() => forecast.ToStepResults(new ObservationBatch([1L], [1L], [0f])));
    }

    [Fact]
    public void Offload_work_is_counted_in_multiply_adds_of_the_model()
    {
        // SmallConfig: D = 2, H = 8, L = 2, K = 3: layer 0 4*8*(2+8) = 320, layer 1 4*8*(8+8) = 512, head 3*8 = 24.
        Assert.Equal(856, StreamComputation.MultiplyAddsPerStep(new LstmConfig(2, 8, 2, 3)));
        // The bench model (D = 1, H = 32, L = 1, K = 3): 4*32*33 + 96 = 4320; a batch of 64 stays well under the default.
        Assert.Equal(4320, StreamComputation.MultiplyAddsPerStep(new LstmConfig(1, 32, 1, 3)));
        Assert.True(64 * (4320 + StreamComputation.StepOverheadMultiplyAdds) < new StreamGrainOptions().OffloadMultiplyAdds);
        Assert.True(64 * StreamComputation.MultiplyAddsPerStep(new LstmConfig(1, 128, 1, 3)) > new StreamGrainOptions().OffloadMultiplyAdds);

        // The decision itself, on real weights: a 64-batch of the bench model stays in the turn, of an H = 128 model it leaves.
        static CachedModel Model(int hidden) => new("m", 1, 1,
            new ModelConfig(1, hidden, 1, 3, [], 0, NormalizationMode.RunningZScore, 1),
            LstmWeights.From(LstmParameters.InitializeUniform(new LstmConfig(1, hidden, 1, 3), 1)));
        var defaults = new StreamGrainOptions();
        Assert.False(StreamComputation.ShouldOffload(Model(32), 64, defaults));
        Assert.True(StreamComputation.ShouldOffload(Model(32), 512, defaults));    // a full re-warm replay: ~3.2M
        Assert.True(StreamComputation.ShouldOffload(Model(128), 64, defaults));
        Assert.True(StreamComputation.ShouldOffload(Model(32), 1, new StreamGrainOptions { OffloadMultiplyAdds = 1 }));

        var validator = new StreamGrainOptionsValidator();
        Assert.True(validator.Validate(null, new StreamGrainOptions()).Succeeded);
        var bad = validator.Validate(null, new StreamGrainOptions { OffloadMultiplyAdds = 0 });
        Assert.True(bad.Failed);
        Assert.Contains(nameof(StreamGrainOptions.OffloadMultiplyAdds), bad.FailureMessage);
    }
}
