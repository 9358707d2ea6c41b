using LstmOrleans.Abstractions;
using Orleans.Runtime;

namespace LstmOrleans.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class StreamGrainTests(ClusterFixture fixture)
{
    private IClusterClient Client => fixture.Client;

    private async Task<(ModelConfig Config, ModelWeights Weights)> CreateModelAsync(string name, int seed = 7)
    {
        var config = TestSupport.SmallConfig(seed);
        await Client.GetGrain<IModelGrain>(name).CreateAsync(config);
        return (config, await Client.GetGrain<IModelGrain>(name).GetActiveWeightsAsync());
    }

    private async Task<IStreamGrain> BoundStreamAsync(string model, string id)
    {
        var stream = Client.GetGrain<IStreamGrain>(id);
        await stream.BindAsync(model);
        return stream;
    }

    [Fact]
    public async Task Steps_equal_the_engine_driven_directly()
    {
        var (config, weights) = await CreateModelAsync("exact");
        var stream = await BoundStreamAsync("exact", "plant-1/boiler-1/temp");
        var reference = new ReferenceStream(config, TestSupport.ToEngine(weights));

        float[]? previousForecast = null;
        for (long seq = 1; seq <= 40; seq++)
        {
            var observation = TestSupport.Obs(seq * 3); // gaps in sequence numbers are allowed
            var result = await stream.IngestAsync(observation);
            var expected = reference.Step(observation.Values);

            Assert.False(result.Duplicate);
            Assert.Equal(expected, result.Predictions);
            Assert.Equal(seq, result.StepCount);
            Assert.Equal(1, result.WeightsVersion);
            if (previousForecast is null) Assert.Null(result.PreviousError);
            else Assert.Equal(observation.Values[0] - previousForecast[0], result.PreviousError!.Value, 4);
            for (int k = 0; k < config.Horizons; k++)
            {
                Assert.Equal(Math.Max(0, seq - 1 - k), result.ErrorSamples[k]); // horizon k+1 is first scored at step k+2
                Assert.True(result.Lower[k] <= result.Predictions[k] && result.Predictions[k] <= result.Upper[k]);
            }
            previousForecast = result.Predictions;
        }

        var state = await stream.GetStateAsync();
        Assert.Equal(reference.H, state.Hidden);
        Assert.Equal(reference.C, state.Cell);
        Assert.Equal(40, state.Summary.StepCount);
        Assert.Equal(120, state.Summary.LastSequence);
    }

    [Fact]
    public async Task Another_target_without_normalisation_also_equals_the_engine()
    {
        var config = new ModelConfig(3, HiddenSize: 5, Layers: 1, Horizons: 2, Features: ["a", "b", "c"], TargetIndex: 2, NormalizationMode.None, Seed: 4);
        await Client.GetGrain<IModelGrain>("raw-target").CreateAsync(config);
        var weights = await Client.GetGrain<IModelGrain>("raw-target").GetActiveWeightsAsync();
        var stream = await BoundStreamAsync("raw-target", "raw-target/stream");
        var reference = new ReferenceStream(config, TestSupport.ToEngine(weights));
        float[]? previous = null;
        for (long seq = 1; seq <= 15; seq++)
        {
            var observation = TestSupport.Obs(seq, inputSize: 3);
            var result = await stream.IngestAsync(observation);
            Assert.Equal(reference.Step(observation.Values), result.Predictions);
            if (previous is not null) Assert.Equal(observation.Values[2] - previous[0], result.PreviousError!.Value, 4);
            previous = result.Predictions;
        }
        var state = await stream.GetStateAsync();
        Assert.Equal(reference.H, state.Hidden);
        Assert.Equal(reference.C, state.Cell);
    }

    [Fact]
    public async Task Error_statistics_follow_the_ewma_of_squared_errors()
    {
        await CreateModelAsync("ewma");
        var stream = await BoundStreamAsync("ewma", "ewma/stream");
        var forecasts = new List<float[]>();
        var actuals = new List<float>();
        StepResult last = null!;
        for (long seq = 1; seq <= 12; seq++)
        {
            var observation = TestSupport.Obs(seq);
            last = await stream.IngestAsync(observation);
            forecasts.Add(last.Predictions);
            actuals.Add(observation.Values[0]);
        }

        // Recompute each horizon's EWMA (alpha 0.05, first sample taken as is) from the forecasts the stream reported.
        var state = await stream.GetStateAsync();
        for (int h = 1; h <= 3; h++)
        {
            double ems = 0; long samples = 0;
            for (int t = h; t < actuals.Count; t++)
            {
                double e = (double)actuals[t] - forecasts[t - h][h - 1];
                ems = samples++ == 0 ? e * e : 0.95 * ems + 0.05 * e * e;
            }
            Assert.Equal(samples, state.ErrorSamples[h - 1]);
            Assert.Equal(ems, state.ErrorMeanSquare[h - 1], 9);
            Assert.Equal((float)Math.Sqrt(ems), last.Rmse[h - 1], 5);
            Assert.Equal(last.Predictions[h - 1] + 1.96f * last.Rmse[h - 1], last.Upper[h - 1], 3);
        }
    }

    [Fact]
    public async Task A_retry_never_steps_twice()
    {
        await CreateModelAsync("retry");
        var stream = await BoundStreamAsync("retry", "retry/stream");
        for (long seq = 1; seq <= 5; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var answer = await stream.IngestAsync(TestSupport.Obs(6));
        var before = await TestSupport.FullState(stream);

        var retry = await stream.IngestAsync(TestSupport.Obs(6));
        Assert.True(retry.Duplicate);
        Assert.Equal(answer with { Duplicate = true }, retry with { Predictions = answer.Predictions, Lower = answer.Lower, Upper = answer.Upper, Rmse = answer.Rmse, ErrorSamples = answer.ErrorSamples });
        Assert.Equal(answer.Predictions, retry.Predictions);
        Assert.Equal(answer.Sequence, retry.Sequence);

        var older = await stream.IngestAsync(TestSupport.Obs(2) with { Values = [1f, 2f] });
        Assert.True(older.Duplicate);
        Assert.Equal(6, older.Sequence);

        var batchRetry = await stream.IngestBatchAsync([TestSupport.Obs(5), TestSupport.Obs(6)]);
        Assert.All(batchRetry, r => Assert.True(r.Duplicate));

        Assert.Equal(before, await TestSupport.FullState(stream));
    }

    [Fact]
    public async Task Bad_input_is_rejected_and_changes_nothing()
    {
        await CreateModelAsync("bad");
        var stream = await BoundStreamAsync("bad", "bad/stream");
        for (long seq = 1; seq <= 5; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var before = await TestSupport.FullState(stream);
        var t = TestSupport.Start.AddSeconds(10);

        async Task Rejected(RejectionReason reason, Func<Task> call)
        {
            var e = await Assert.ThrowsAsync<ObservationRejectedException>(call);
            Assert.Equal(reason, e.Reason);
            Assert.Equal(before, await TestSupport.FullState(stream));
        }

        await Rejected(RejectionReason.NonFiniteValue, () => stream.IngestAsync(new Observation(10, t, [float.NaN, 1f])));
        await Rejected(RejectionReason.NonFiniteValue, () => stream.IngestAsync(new Observation(10, t, [1f, float.PositiveInfinity])));
        await Rejected(RejectionReason.NonFiniteValue, () => stream.IngestAsync(new Observation(10, t, [float.NegativeInfinity, 1f])));
        await Rejected(RejectionReason.WrongLength, () => stream.IngestAsync(new Observation(10, t, [1f])));
        await Rejected(RejectionReason.WrongLength, () => stream.IngestAsync(new Observation(10, t, [1f, 2f, 3f])));
        await Rejected(RejectionReason.TimestampBackwards, () => stream.IngestAsync(new Observation(10, TestSupport.Start, [1f, 2f])));
        await Rejected(RejectionReason.BatchTooLarge, () => stream.IngestBatchAsync(Enumerable.Range(10, 101).Select(i => TestSupport.Obs(i)).ToArray()));

        // A stale sequence number is a duplicate: accepted as a retry, applied never.
        var stale = await stream.IngestAsync(TestSupport.Obs(3));
        Assert.True(stale.Duplicate);
        Assert.Equal(before, await TestSupport.FullState(stream));

        // Binding to a model that does not exist.
        var unknown = await Assert.ThrowsAsync<ModelNotFoundException>(() => stream.BindAsync("no-such-model"));
        Assert.Equal("no-such-model", unknown.ModelName);
        Assert.Equal(before, await TestSupport.FullState(stream));

        // A fresh stream with no binding uses the default model, which this cluster never creates.
        var orphan = Client.GetGrain<IStreamGrain>("bad/orphan");
        var orphanBefore = await TestSupport.FullState(orphan);
        await Assert.ThrowsAsync<ModelNotFoundException>(() => orphan.IngestAsync(TestSupport.Obs(1)));
        Assert.Equal(orphanBefore, await TestSupport.FullState(orphan));
        Assert.Null((await orphan.GetSummaryAsync()).ModelName);

        // Still works after all that.
        var next = await stream.IngestAsync(TestSupport.Obs(6));
        Assert.False(next.Duplicate);
        Assert.Equal(6, next.StepCount);
    }

    [Fact]
    public async Task Negative_sequence_numbers_are_rejected_in_every_ingest_call_and_change_nothing()
    {
        // Sequence numbers are 0 or greater, as the HTTP API says: a new stream took -5, then numbered the values sent
        // without a sequence -4, -3, ...; an older one answered -1 as a duplicate.
        await CreateModelAsync("negative");
        var fresh = await BoundStreamAsync("negative", "negative/fresh");
        var used = await BoundStreamAsync("negative", "negative/used");
        for (long seq = 1; seq <= 5; seq++) await used.IngestAsync(TestSupport.Obs(seq));

        foreach (var stream in new[] { fresh, used })
        {
            var before = await TestSupport.FullState(stream);
            async Task Rejected(Func<Task> call, string fragment)
            {
                var e = await Assert.ThrowsAsync<ObservationRejectedException>(call);
                Assert.Equal(RejectionReason.InvalidSequence, e.Reason);
                Assert.Contains(fragment, e.Message);
                Assert.Contains("must be 0 or greater", e.Message);
                Assert.Equal(before, await TestSupport.FullState(stream));
            }
            var later = TestSupport.Start.AddHours(1);
            await Rejected(() => stream.IngestAsync(TestSupport.Obs(-5) with { Timestamp = later }), "Sequence number -5;");
            await Rejected(() => stream.IngestAsync(new Observation(long.MinValue, later, TestSupport.Obs(1).Values)), $"Sequence number {long.MinValue};");
            await Rejected(() => stream.IngestBatchAsync([TestSupport.Obs(-2) with { Timestamp = later }, TestSupport.Obs(10) with { Timestamp = later }]),
                "Batch element 0 has sequence number -2;");
            await Rejected(() => stream.IngestColumnsAsync(ObservationBatch.From([TestSupport.Obs(-1) with { Timestamp = later }], 2)), "Sequence number -1;");
        }

        // 0 is a valid sequence number; values sent without one are numbered after it.
        Assert.Equal(1, (await fresh.IngestAsync(TestSupport.Obs(0))).StepCount);
        var numbered = await fresh.IngestAfterLastAsync([new UnnumberedObservation(null, TestSupport.Obs(1).Values)]);
        Assert.Equal(1, numbered[0].Sequence);
        Assert.Equal(6, (await used.IngestAsync(TestSupport.Obs(6))).StepCount);
    }

    [Fact]
    public async Task A_stream_id_the_HTTP_API_could_not_address_is_never_bound_by_any_call()
    {
        // The HTTP routes refuse such ids, but push and replay reach the grain directly: they created streams with a
        // 300-character id or a newline in it, listed by GET /models/{name}/streams but addressable by no route (and
        // the listing's after cursor refused the long one, so a page ending on it had no next page).
        await CreateModelAsync("unaddressable");
        await Client.GetGrain<IModelGrain>(LstmOrleansNames.DefaultModelName).CreateAsync(TestSupport.SmallConfig());   // unbound streams' model
        foreach (var id in new[] { new string('L', 257), "line\nbreak", "tab\there" })
        {
            var stream = Client.GetGrain<IStreamGrain>(id);
            async Task Refused(Func<Task> call)
            {
                var e = await Assert.ThrowsAsync<ObservationRejectedException>(call);
                Assert.Equal(RejectionReason.InvalidStreamId, e.Reason);
                Assert.Equal("A stream id must be 1..256 printable characters.", e.Message);
                var summary = await stream.GetSummaryAsync();
                Assert.Null(summary.ModelName);
                Assert.Null(summary.LastSequence);
            }
            await Refused(() => stream.BindAsync("unaddressable"));
            await Refused(() => stream.IngestAsync(TestSupport.Obs(1)));
            await Refused(() => stream.IngestBatchAsync([TestSupport.Obs(1), TestSupport.Obs(2)]));
            await Refused(() => stream.IngestColumnsAsync(ObservationBatch.From([TestSupport.Obs(1)], 2)));
            await Refused(() => stream.IngestAfterLastAsync([new UnnumberedObservation(null, TestSupport.Obs(1).Values)]));
        }

        // The longest id the HTTP API takes, and any printable one, still work.
        var longest = await BoundStreamAsync("unaddressable", new string('L', 256));
        Assert.Equal(1, (await longest.IngestAsync(TestSupport.Obs(1))).StepCount);
        Assert.Equal(1, (await Client.GetGrain<IStreamGrain>("caf\u00e9 \U0001F600").IngestAsync(TestSupport.Obs(1))).StepCount);
    }

    [Fact]
    public async Task A_single_value_the_stream_numbers_is_rejected_as_an_observation_not_as_batch_element_0()
    {
        // push without --seq (and HTTP without a sequence) sends one value through IngestAfterLastAsync, a batch of one:
        // its refusal spoke of "Batch element 0 (sequence 4)". A batch of more keeps the element's index.
        await CreateModelAsync("single-message");
        var stream = await BoundStreamAsync("single-message", "single-message/stream");
        for (long seq = 1; seq <= 3; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var last = TestSupport.Obs(3).Timestamp;
        var before = await TestSupport.FullState(stream);

        var single = await Assert.ThrowsAsync<ObservationRejectedException>(
            () => stream.IngestAfterLastAsync([new UnnumberedObservation(TestSupport.Start, TestSupport.Obs(4).Values)]));
        Assert.Equal(RejectionReason.TimestampBackwards, single.Reason);
        Assert.Equal($"Observation 4 at {TestSupport.Start:O} is earlier than the last accepted one at {last:O}.", single.Message);
        var nan = await Assert.ThrowsAsync<ObservationRejectedException>(
            () => stream.IngestAfterLastAsync([new UnnumberedObservation(null, [float.NaN, 1f])]));
        Assert.StartsWith("Observation 4 value 0 is NaN;", nan.Message);

        var batch = await Assert.ThrowsAsync<ObservationRejectedException>(() => stream.IngestAfterLastAsync(
            [new UnnumberedObservation(last.AddSeconds(2), TestSupport.Obs(4).Values), new UnnumberedObservation(last.AddSeconds(1), TestSupport.Obs(5).Values)]));
        Assert.Equal($"Batch element 1 (sequence 5) at {last.AddSeconds(1):O} is earlier than {last.AddSeconds(2):O}.", batch.Message);
        Assert.Equal(before, await TestSupport.FullState(stream));
    }

    [Fact]
    public async Task Null_members_and_bad_arguments_are_rejected_and_change_nothing_even_with_new_weights_pending()
    {
        var (config, _) = await CreateModelAsync("nulls");
        var stream = await BoundStreamAsync("nulls", "nulls/stream");
        for (long seq = 1; seq <= 5; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        // A new version: the next accepted call re-warms first, so a rejection must come before that work.
        var model = Client.GetGrain<IModelGrain>("nulls");
        long v2 = await model.PublishAsync(new PublishRequest(Enumerable.Repeat(0.02f, (await model.GetInfoAsync()).ParameterCount).ToArray()));
        foreach (var cache in fixture.Caches) await TestSupport.Eventually(() => cache.GetAsync("nulls").AsTask(), m => m.Version == v2);
        var before = await TestSupport.FullState(stream);
        var t = TestSupport.Start.AddSeconds(10);

        async Task Rejected<TException>(Func<Task> call) where TException : Exception
        {
            await Assert.ThrowsAsync<TException>(call);
            Assert.Equal(before, await TestSupport.FullState(stream));
        }

        await Rejected<ObservationRejectedException>(() => stream.IngestAsync(null!));
        await Rejected<ObservationRejectedException>(() => stream.IngestAsync(new Observation(10, t, null!)));
        await Rejected<ObservationRejectedException>(() => stream.IngestBatchAsync(null!));
        await Rejected<ObservationRejectedException>(() => stream.IngestBatchAsync([TestSupport.Obs(10), null!]));
        await Rejected<ObservationRejectedException>(() => stream.IngestBatchAsync([TestSupport.Obs(10), new Observation(11, t, null!)]));
        await Rejected<ObservationRejectedException>(() => stream.IngestColumnsAsync(null!));
        await Rejected<ArgumentException>(() => stream.BindAsync(" "));
        await Rejected<ArgumentOutOfRangeException>(() => stream.GetHistoryAsync(-1));
        await Rejected<ArgumentOutOfRangeException>(() => stream.GetTrainingWindowAsync(-1));

        // Nothing of the rejected calls stuck: the next one re-warms and steps as usual.
        var next = await stream.IngestAsync(TestSupport.Obs(6));
        Assert.Equal(v2, next.WeightsVersion);
        Assert.Equal(6, next.StepCount);
        Assert.Equal(config.Horizons, next.Predictions.Length);
    }

    [Fact]
    public async Task A_batch_is_all_or_nothing_and_equals_sequential_steps()
    {
        await CreateModelAsync("batch");
        var batched = await BoundStreamAsync("batch", "batch/batched");
        var sequential = await BoundStreamAsync("batch", "batch/sequential");
        for (long seq = 1; seq <= 3; seq++) { await batched.IngestAsync(TestSupport.Obs(seq)); await sequential.IngestAsync(TestSupport.Obs(seq)); }
        var before = await TestSupport.FullState(batched);

        var good = Enumerable.Range(4, 30).Select(i => TestSupport.Obs(i)).ToArray();
        async Task Rejected(RejectionReason reason, Observation[] batch)
        {
            var e = await Assert.ThrowsAsync<ObservationRejectedException>(() => batched.IngestBatchAsync(batch));
            Assert.Equal(reason, e.Reason);
            Assert.Equal(before, await TestSupport.FullState(batched));
        }

        var lastIsNaN = good.ToArray();
        lastIsNaN[^1] = lastIsNaN[^1] with { Values = [float.NaN, 0f] };
        await Rejected(RejectionReason.NonFiniteValue, lastIsNaN);
        var middleGoesBack = good.ToArray();
        middleGoesBack[15] = middleGoesBack[15] with { Timestamp = TestSupport.Start };
        await Rejected(RejectionReason.TimestampBackwards, middleGoesBack);
        var outOfOrder = good.ToArray();
        (outOfOrder[10], outOfOrder[11]) = (outOfOrder[11], outOfOrder[10]);
        await Rejected(RejectionReason.BatchOutOfOrder, outOfOrder);
        var shortOne = good.ToArray();
        shortOne[20] = shortOne[20] with { Values = [1f] };
        await Rejected(RejectionReason.WrongLength, shortOne);

        // Overlapping retry: the first two are duplicates, the rest are applied, in one commit.
        var withOverlap = new[] { TestSupport.Obs(2), TestSupport.Obs(3) }.Concat(good).ToArray();
        var results = await batched.IngestBatchAsync(withOverlap);
        Assert.True(results[0].Duplicate && results[1].Duplicate);
        Assert.All(results.Skip(2), r => Assert.False(r.Duplicate));

        var sequentialResults = new List<StepResult>();
        foreach (var o in good) sequentialResults.Add(await sequential.IngestAsync(o));
        for (int i = 0; i < good.Length; i++)
        {
            Assert.Equal(sequentialResults[i].Predictions, results[i + 2].Predictions);
            Assert.Equal(sequentialResults[i].PreviousError, results[i + 2].PreviousError);
            Assert.Equal(sequentialResults[i].Rmse, results[i + 2].Rmse);
        }
        var a = await batched.GetStateAsync();
        var b = await sequential.GetStateAsync();
        Assert.Equal(b.Hidden, a.Hidden);
        Assert.Equal(b.Cell, a.Cell);
        Assert.Equal(b.Mean, a.Mean);
        Assert.Equal(b.ErrorMeanSquare, a.ErrorMeanSquare);
    }

    [Fact]
    public async Task Concurrent_callers_see_one_consistent_order()
    {
        var (config, weights) = await CreateModelAsync("concurrent");
        var stream = await BoundStreamAsync("concurrent", "concurrent/stream");
        long next = 0;
        var accepted = new System.Collections.Concurrent.ConcurrentBag<(Observation Observation, StepResult Result)>();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            for (int i = 0; i < 25; i++)
            {
                var observation = TestSupport.Obs(Interlocked.Increment(ref next));
                var result = await stream.IngestAsync(observation);
                if (!result.Duplicate) accepted.Add((observation, result));
            }
        })));

        // Every accepted observation got its own step number, 1..n, and sequence numbers rise with the step number.
        var ordered = accepted.OrderBy(a => a.Result.StepCount).ToList();
        var summary = await stream.GetSummaryAsync();
        Assert.Equal(summary.StepCount, ordered.Count);
        Assert.Equal(Enumerable.Range(1, ordered.Count).Select(i => (long)i), ordered.Select(a => a.Result.StepCount));
        Assert.True(ordered.Zip(ordered.Skip(1)).All(p => p.First.Observation.Sequence < p.Second.Observation.Sequence));
        Assert.True(ordered.Count >= 10, $"only {ordered.Count} of 200 observations were accepted; the test would say little");

        // The state equals applying exactly those observations, in that order, to the engine.
        var reference = new ReferenceStream(config, TestSupport.ToEngine(weights));
        foreach (var (observation, result) in ordered) Assert.Equal(reference.Step(observation.Values), result.Predictions);
        var state = await stream.GetStateAsync();
        Assert.Equal(reference.H, state.Hidden);
        Assert.Equal(reference.C, state.Cell);
    }

    [Fact]
    public async Task State_survives_deactivation()
    {
        var (config, weights) = await CreateModelAsync("deactivate");
        var stream = await BoundStreamAsync("deactivate", "deactivate/stream");
        var reference = new ReferenceStream(config, TestSupport.ToEngine(weights));
        for (long seq = 1; seq <= 10; seq++)
        {
            await stream.IngestAsync(TestSupport.Obs(seq));
            reference.Step(TestSupport.Obs(seq).Values);
        }
        var before = await TestSupport.FullState(stream);

        await fixture.Cluster.DeactivateAsync(stream);
        var management = Client.GetGrain<IManagementGrain>(0);
        var grainId = stream.GetGrainId();
        var active = await TestSupport.Eventually<List<GrainId>>(
            () => management.GetActiveGrains(grainId.Type).AsTask(),
            grains => !grains.Contains(grainId));
        Assert.DoesNotContain(grainId, active);

        Assert.Equal(before, await TestSupport.FullState(stream));
        var result = await stream.IngestAsync(TestSupport.Obs(11));
        Assert.Equal(reference.Step(TestSupport.Obs(11).Values), result.Predictions);
        Assert.Equal(11, result.StepCount);
    }

    [Fact]
    public async Task Reset_forgets_everything_but_the_binding_and_delete_removes_the_stream()
    {
        var (config, weights) = await CreateModelAsync("reset");
        var stream = await BoundStreamAsync("reset", "reset/stream");
        for (long seq = 1; seq <= 6; seq++) await stream.IngestAsync(TestSupport.Obs(seq));

        await stream.ResetAsync();
        var summary = await stream.GetSummaryAsync();
        Assert.Equal("reset", summary.ModelName);
        Assert.Equal(0, summary.StepCount);
        Assert.Null(summary.LastSequence);
        Assert.Empty(await stream.GetHistoryAsync(100));

        // After a reset the stream behaves like a new one (old sequence numbers are accepted again).
        var reference = new ReferenceStream(config, TestSupport.ToEngine(weights));
        var result = await stream.IngestAsync(TestSupport.Obs(1));
        Assert.False(result.Duplicate);
        Assert.Equal(reference.Step(TestSupport.Obs(1).Values), result.Predictions);

        await stream.DeleteAsync();
        var afterDelete = await stream.GetSummaryAsync();
        Assert.Null(afterDelete.ModelName);
        Assert.Equal(0, afterDelete.StepCount);
    }

    [Fact]
    public async Task History_is_a_ring_of_the_most_recent_observations()
    {
        await CreateModelAsync("history");
        var stream = await BoundStreamAsync("history", "history/stream");
        for (long seq = 1; seq <= 70; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var all = await stream.GetHistoryAsync(1000);
        Assert.Equal(64, all.Length); // configured capacity
        Assert.Equal(Enumerable.Range(7, 64).Select(i => (long)i), all.Select(o => o.Sequence));
        Assert.Equal(TestSupport.Obs(70).Values, all[^1].Values);
        Assert.Equal(TestSupport.Obs(70).Timestamp, all[^1].Timestamp);
        var recent = await stream.GetHistoryAsync(3);
        Assert.Equal([68L, 69L, 70L], recent.Select(o => o.Sequence));
    }
}
