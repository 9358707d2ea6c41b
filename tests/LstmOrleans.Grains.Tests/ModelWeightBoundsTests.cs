using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// Weights that would overflow a stream's step are refused at publish (<see cref="ModelParameterBounds"/>), and a step
/// that nonetheless comes out non-finite is refused by the stream, which keeps its state.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ModelWeightBoundsTests(ClusterFixture fixture)
{
    private IClusterClient Client => fixture.Client;

    private static LstmConfig Engine(ModelConfig c) => new(c.ModelInputSize, c.HiddenSize, c.Layers, c.Horizons);

    [Fact]
    public async Task Finite_but_absurd_weights_are_refused_naming_the_tensor_and_nothing_is_published()
    {
        var model = Client.GetGrain<IModelGrain>("bounds-absurd");
        var info = await model.CreateAsync(TestSupport.SmallConfig());
        var versionsBefore = await model.ListVersionsAsync();

        // Every parameter 1e38: finite, so a NaN/infinity check alone let it through, and every stream then overflowed.
        var e = await Assert.ThrowsAsync<ModelOperationException>(() =>
            model.PublishAsync(new PublishRequest(Enumerable.Repeat(1e38f, info.ParameterCount).ToArray())));
        Assert.Contains("lstm.weight_ih_l0[0]", e.Message);
        Assert.Contains("1E+38", e.Message);
        Assert.Contains("10000", e.Message);
        Assert.Equal("bounds-absurd", e.ModelName);

        // One value just past the bound, in the head: the message names that tensor and index.
        var p = LstmParameters.InitializeUniform(Engine(info.Config), 3);
        p.HeadBias[2] = -1.5e4f;
        e = await Assert.ThrowsAsync<ModelOperationException>(() => model.PublishAsync(new PublishRequest(p.Data, ExpectedActiveVersion: 1)));
        Assert.Contains($"parameter {p.Count - 1} (head.bias[2]) is -15000", e.Message);

        // A conditional or inactive publish is refused the same way.
        await Assert.ThrowsAsync<ModelOperationException>(() => model.PublishAsync(new PublishRequest(p.Data, Activate: false)));

        var after = await model.GetInfoAsync();
        Assert.Equal((1L, 1L, 1), (after.ActiveVersion, after.LatestVersion, after.RetainedVersions));
        Assert.Equal(versionsBefore.Select(v => v.Version), (await model.ListVersionsAsync()).Select(v => v.Version));
        Assert.Equal(1, (await model.GetActiveWeightsAsync()).Version);

        // At the bound exactly is accepted.
        p.HeadBias[2] = -ModelParameterBounds.MaxNormalizedHeadMagnitude;
        p.WeightHh(1)[5] = ModelParameterBounds.MaxGateMagnitude;
        Assert.Equal(2, await model.PublishAsync(new PublishRequest(p.Data)));
    }

    [Fact]
    public void The_check_names_every_tensor_at_its_layout_offset()
    {
        var config = TestSupport.SmallConfig() with { CalendarFeatures = ["hour_sin"] };
        var engine = Engine(config);
        // The model file's tensor names, located through the engine's own views of its layout.
        var cases = new (string Name, Func<LstmParameters, Span<float>> Tensor)[]
        {
            ("lstm.weight_ih_l0", q => q.WeightIh(0)), ("lstm.weight_hh_l0", q => q.WeightHh(0)),
            ("lstm.bias_ih_l0", q => q.BiasIh(0)), ("lstm.bias_hh_l0", q => q.BiasHh(0)),
            ("lstm.weight_ih_l1", q => q.WeightIh(1)), ("lstm.weight_hh_l1", q => q.WeightHh(1)),
            ("lstm.bias_ih_l1", q => q.BiasIh(1)), ("lstm.bias_hh_l1", q => q.BiasHh(1)),
            ("head.weight", q => q.HeadWeight), ("head.bias", q => q.HeadBias),
        };
        Assert.Null(ModelParameterBounds.Check(config, LstmParameters.InitializeUniform(engine, 1).Data));
        foreach (var (name, tensor) in cases)
        {
            var p = LstmParameters.InitializeUniform(engine, 1);
            var span = tensor(p);
            span[^1] = float.NaN;
            Assert.Equal($"parameter {FlatIndex(p, span) + span.Length - 1} ({name}[{span.Length - 1}]) is NaN; parameters must be finite",
                ModelParameterBounds.Check(config, p.Data));
            span[^1] = 2e4f;
            Assert.Contains($"({name}[{span.Length - 1}]) is 20000; {name} values must be at most 10000 in magnitude", ModelParameterBounds.Check(config, p.Data));
        }

        // A model that does not normalise forecasts in its values' own units: its head may reach their scale, its gates may not.
        var raw = config with { Normalization = NormalizationMode.None };
        var r = LstmParameters.InitializeUniform(engine, 1);
        r.HeadBias[0] = 1e20f;
        r.HeadWeight[0] = -1e26f;
        Assert.Null(ModelParameterBounds.Check(raw, r.Data));
        Assert.NotNull(ModelParameterBounds.Check(config, r.Data));
        r.WeightIh(0)[0] = 1e5f;
        Assert.Contains("(lstm.weight_ih_l0[0]) is 100000", ModelParameterBounds.Check(raw, r.Data));
        r.WeightIh(0)[0] = 0;
        r.HeadBias[0] = 2e26f;
        Assert.Contains("(head.bias[0]) is 2E+26; head.bias values must be at most 1E+26 in magnitude", ModelParameterBounds.Check(raw, r.Data));

        static int FlatIndex(LstmParameters p, Span<float> tensor)
        {
            // The tensor's offset in the flat vector: mark its first element and look for the mark.
            float saved = tensor[0];
            tensor[0] = 12345.5f;
            int index = Array.IndexOf(p.Data, 12345.5f);
            tensor[0] = saved;
            return index;
        }
    }

    [Theory]
    [InlineData(NormalizationMode.RunningZScore, false)]
    [InlineData(NormalizationMode.RunningZScore, true)]
    [InlineData(NormalizationMode.None, false)]
    [InlineData(NormalizationMode.None, true)]
    public async Task Weights_at_the_bounds_keep_every_step_finite_for_the_most_extreme_accepted_values(NormalizationMode mode, bool residual)
    {
        string name = $"bounds-extreme-{mode}-{residual}";
        var model = Client.GetGrain<IModelGrain>(name);
        var config = TestSupport.SmallConfig() with { Normalization = mode, Residual = residual };
        var info = await model.CreateAsync(config);

        // Every parameter at its bound, same sign: the largest gate sums and head outputs the bounds allow.
        var p = new LstmParameters(Engine(info.Config));
        Array.Fill(p.Data, ModelParameterBounds.MaxGateMagnitude);
        p.HeadWeight.Fill(ModelParameterBounds.MaxHeadMagnitude(mode));
        p.HeadBias.Fill(ModelParameterBounds.MaxHeadMagnitude(mode));
        await model.PublishAsync(new PublishRequest(p.Data));

        var stream = Client.GetGrain<IStreamGrain>($"{name}/s");
        await stream.BindAsync(name);
        float m = Observation.MaxMagnitude;
        var values = new[] { new[] { m, m }, [-m, -m], [m, -m], [0f, m], [m, m], [-m, 0f], [1f, 1f] };
        for (int i = 0; i < values.Length; i++)
        {
            var result = await stream.IngestAsync(new Observation(i + 1, TestSupport.Start.AddSeconds(i), values[i]));
            Assert.All(result.Predictions, v => Assert.True(float.IsFinite(v), $"step {i + 1}: forecast {v}"));
            Assert.All(result.Lower.Concat(result.Upper), v => Assert.True(float.IsFinite(v), $"step {i + 1}: interval bound {v}"));
        }
        var state = await stream.GetStateAsync();
        Assert.All(state.Hidden.Concat(state.Cell), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public async Task A_step_that_comes_out_non_finite_is_refused_and_the_stream_keeps_its_state()
    {
        const string name = "bounds-guard";
        var model = Client.GetGrain<IModelGrain>(name);
        var info = await model.CreateAsync(TestSupport.SmallConfig());
        var good = await model.GetActiveWeightsAsync();
        var stream = Client.GetGrain<IStreamGrain>($"{name}/old");
        await stream.BindAsync(name);
        for (long seq = 1; seq <= 20; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        var fresh = Client.GetGrain<IStreamGrain>($"{name}/fresh");
        await fresh.BindAsync(name);
        var before = await TestSupport.FullState(stream);
        var freshBefore = await TestSupport.FullState(fresh);

        // Weights the model grain now refuses (as a version stored before the check could be): installed in every
        // silo's cache directly, with an epoch no real activation of this model reaches.
        var absurd = good with { Version = 50, Parameters = Enumerable.Repeat(1e38f, info.ParameterCount).ToArray(), Epoch = 1_000_000 };
        foreach (var cache in fixture.Caches) await ((IModelWeightsObserver)cache).WeightsActivated(absurd);
        foreach (var cache in fixture.Caches) Assert.Equal(50, (await cache.GetAsync(name)).Version);

        // The old stream re-warms on the new weights first; the fresh one (no history) steps at once. Single steps and
        // batches (20 steps: enough to be computed off the grain scheduler in this cluster) are all refused.
        var calls = new (IStreamGrain Stream, Func<Task> Call)[]
        {
            (stream, () => stream.IngestAsync(TestSupport.Obs(21))),
            (stream, () => stream.IngestBatchAsync([.. Enumerable.Range(21, 20).Select(s => TestSupport.Obs(s))])),
            (fresh, () => fresh.IngestAsync(TestSupport.Obs(1))),
            (fresh, () => fresh.IngestBatchAsync([.. Enumerable.Range(1, 20).Select(s => TestSupport.Obs(s))])),
        };
        foreach (var (target, call) in calls)
        {
            var e = await Assert.ThrowsAsync<ObservationRejectedException>(call);
            Assert.Equal(RejectionReason.NonFiniteResult, e.Reason);
            Assert.Contains($"Model '{name}' version 50", e.Message);
            Assert.Contains("nothing in the stream changed", e.Message);
        }
        Assert.Equal(before, await TestSupport.FullState(stream));
        Assert.Equal(freshBefore, await TestSupport.FullState(fresh));

        // Good weights again (a newer activation): both streams carry on from where they were.
        var restored = good with { Version = 51, Epoch = 1_000_001 };
        foreach (var cache in fixture.Caches) await ((IModelWeightsObserver)cache).WeightsActivated(restored);
        var next = await stream.IngestAsync(TestSupport.Obs(21));
        Assert.Equal(51, next.WeightsVersion);
        Assert.Equal(21, next.StepCount);
        Assert.All(next.Predictions, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(1, (await fresh.IngestAsync(TestSupport.Obs(1))).StepCount);
    }

    [Fact]
    public async Task Parameter_work_of_create_publish_and_the_silo_caches_runs_off_the_grain_scheduler()
    {
        const string name = "bounds-offload";
        var seen = new System.Collections.Concurrent.ConcurrentQueue<(string Where, TaskScheduler Scheduler)>();
        ModelGrain.ParameterWorkProbe = model => { if (model == name) seen.Enqueue(("model grain", TaskScheduler.Current)); };
        var caches = fixture.Caches;
        foreach (var cache in caches)
            cache.BuildProbe = model => { if (model == name) seen.Enqueue(("silo cache", TaskScheduler.Current)); };
        try
        {
            // A large model: about a million parameters (4 MB) per version.
            var model = Client.GetGrain<IModelGrain>(name);
            var info = await model.CreateAsync(new ModelConfig(1, 512, 1, 1, []));
            Assert.True(info.ParameterCount > 1_000_000);

            // The first step of a stream on a silo loads the model into that silo's cache, in the stream grain's turn.
            var stream = Client.GetGrain<IStreamGrain>($"{name}/s");
            await stream.BindAsync(name);
            await stream.IngestAsync(TestSupport.Obs(1, inputSize: 1));

            var pushes = caches.Select(c => c.PushesReceived).ToArray();
            var p = LstmParameters.InitializeUniform(new LstmConfig(1, 512, 1, 1), 5);
            Assert.Equal(2, await model.PublishAsync(new PublishRequest(p.Data)));
            // The silo that holds the model gets the new version pushed, and builds its snapshot.
            Assert.Equal(2, await TestSupport.Eventually(() => Task.FromResult(caches.Select(c => c.TryGet(name, out var m) ? m.Version : 0).Max()),
                v => v == 2, TimeSpan.FromSeconds(60)));

            var work = seen.ToArray();
            Assert.Contains(work, w => w.Where == "model grain");
            Assert.True(work.Count(w => w.Where == "silo cache") >= 2, string.Join(", ", work.Select(w => w.Where)));
            // On the thread pool's scheduler, not an activation's: no grain turn is blocked by the scan, copy or packing.
            Assert.All(work, w => Assert.True(ReferenceEquals(w.Scheduler, TaskScheduler.Default), $"{w.Where} ran on {w.Scheduler.GetType().Name}"));
        }
        finally
        {
            ModelGrain.ParameterWorkProbe = null;
            foreach (var cache in caches) cache.BuildProbe = null;
        }
    }
}
