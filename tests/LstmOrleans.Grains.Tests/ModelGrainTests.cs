using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;

namespace LstmOrleans.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ModelGrainTests(ClusterFixture fixture)
{
    private IClusterClient Client => fixture.Client;

    [Fact]
    public async Task Create_is_idempotent_and_validates()
    {
        var model = Client.GetGrain<IModelGrain>("create");
        await Assert.ThrowsAsync<ModelNotFoundException>(() => model.GetInfoAsync());
        await Assert.ThrowsAsync<ModelNotFoundException>(() => model.GetActiveWeightsAsync());

        var config = TestSupport.SmallConfig() with { Features = ["temp", "pressure"] };
        var info = await model.CreateAsync(config);
        Assert.Equal(1, info.ActiveVersion);
        Assert.Equal(LstmParameters.CountFor(new LstmConfig(2, 8, 2, 3)), info.ParameterCount);
        var again = await model.CreateAsync(config with { Features = ["temp", "pressure"] });
        Assert.Equal(info.CreatedAt, again.CreatedAt);
        await Assert.ThrowsAsync<ModelOperationException>(() => model.CreateAsync(config with { HiddenSize = 9 }));

        // Initial weights are PyTorch-style uniform draws from the seed.
        var weights = await model.GetActiveWeightsAsync();
        Assert.Equal(LstmParameters.InitializeUniform(new LstmConfig(2, 8, 2, 3), config.Seed).Data, weights.Parameters);

        var bad = Client.GetGrain<IModelGrain>("create-bad");
        await Assert.ThrowsAsync<ModelOperationException>(() => bad.CreateAsync(config with { HiddenSize = 0 }));
        await Assert.ThrowsAsync<ModelOperationException>(() => bad.CreateAsync(config with { TargetIndex = 2 }));
        await Assert.ThrowsAsync<ModelOperationException>(() => bad.CreateAsync(config with { Features = ["only-one"] }));
        await Assert.ThrowsAsync<ModelNotFoundException>(() => bad.GetInfoAsync());
    }

    [Fact]
    public async Task Names_the_http_api_cannot_address_are_refused_and_create_nothing()
    {
        // The client's create-model and model import call the grain directly: "a/b" was created, listed by GET /models,
        // and out of reach of every /models/{name} route.
        foreach (var name in new[] { "site/pump", "tab\tname", new string('m', 129) })
        {
            var model = Client.GetGrain<IModelGrain>(name);
            var refused = await Assert.ThrowsAsync<ModelOperationException>(() => model.CreateAsync(TestSupport.SmallConfig()));
            Assert.Contains("without '/'", refused.Message);
            await Assert.ThrowsAsync<ModelNotFoundException>(() => model.GetInfoAsync());
        }
        var longest = Client.GetGrain<IModelGrain>(new string('m', 128));
        Assert.Equal(1, (await longest.CreateAsync(TestSupport.SmallConfig())).ActiveVersion);
    }

    [Fact]
    public async Task Publish_validates_and_versions_can_be_listed_and_activated()
    {
        var model = Client.GetGrain<IModelGrain>("versions");
        var info = await model.CreateAsync(TestSupport.SmallConfig());
        var count = info.ParameterCount;

        await Assert.ThrowsAsync<ModelOperationException>(() => model.PublishAsync(new PublishRequest(new float[count - 1])));
        var withNaN = new float[count];
        withNaN[5] = float.NaN;
        await Assert.ThrowsAsync<ModelOperationException>(() => model.PublishAsync(new PublishRequest(withNaN)));
        Assert.Equal(1, (await model.GetInfoAsync()).LatestVersion);

        long v2 = await model.PublishAsync(new PublishRequest(Enumerable.Repeat(0.01f, count).ToArray(), "trained", new Dictionary<string, string> { ["loss"] = "0.5" }));
        long v3 = await model.PublishAsync(new PublishRequest(Enumerable.Repeat(0.02f, count).ToArray(), Activate: false));
        Assert.Equal(2, v2);
        Assert.Equal(3, v3);
        var after = await model.GetInfoAsync();
        Assert.Equal(2, after.ActiveVersion);
        Assert.Equal(3, after.LatestVersion);

        var versions = await model.ListVersionsAsync();
        Assert.Equal([1L, 2L, 3L], versions.Select(v => v.Version));
        Assert.Equal("0.5", versions[1].Metadata["loss"]);

        // A conditional publish stores nothing unless the version it expects is still the active one.
        var stale = await Assert.ThrowsAsync<ModelOperationException>(() =>
            model.PublishAsync(new PublishRequest(Enumerable.Repeat(0.03f, count).ToArray(), ExpectedActiveVersion: 1)));
        Assert.Contains("active version 2", stale.Message);
        Assert.Equal(3, (await model.GetInfoAsync()).LatestVersion);
        Assert.Equal(4, await model.PublishAsync(new PublishRequest(Enumerable.Repeat(0.03f, count).ToArray(), Activate: false, ExpectedActiveVersion: 2)));
        Assert.Equal(4, (await model.GetInfoAsync()).LatestVersion);
        Assert.Equal(0.02f, (await model.GetWeightsAsync(3)).Parameters[0]);

        await Assert.ThrowsAsync<ModelOperationException>(() => model.ActivateAsync(99));
        Assert.Equal(2, (await model.GetInfoAsync()).ActiveVersion);
        Assert.Equal(1, (await model.ActivateAsync(1)).ActiveVersion);
        Assert.Equal(1, (await model.GetActiveWeightsAsync()).Version);
    }

    [Fact]
    public async Task Huge_shapes_and_unnamed_features_are_refused_and_create_nothing()
    {
        var model = Client.GetGrain<IModelGrain>("create-huge");
        var config = TestSupport.SmallConfig();
        foreach (var bad in new[]
        {
            // Every dimension in range, the product not: more parameters than an array holds.
            config with { InputSize = 4096, HiddenSize = 4096, Layers = 16, Horizons = 1 },
            // Just over the limit (4 x 2048 x 2049 + ... ~ 16.8M): a version too large to travel to the silos whole.
            config with { InputSize = 1, HiddenSize = 2048, Layers = 1, Horizons = 1 },
            // In range for the engine, but each stream would write K x K = 1025^2 pending forecasts with every step.
            config with { Horizons = ModelGrain.MaxHorizons + 1 },
            config with { Features = ["temp", null!] },
            config with { Features = ["temp", ""] },
        })
        {
            var e = await Assert.ThrowsAsync<ModelOperationException>(() => model.CreateAsync(bad));
            Assert.Equal("create-huge", e.ModelName);
        }
        await Assert.ThrowsAsync<ModelNotFoundException>(() => model.GetInfoAsync());
        Assert.DoesNotContain("create-huge", (await Client.GetGrain<IModelCatalogGrain>(ModelCatalog.Key).ListAsync("create-hug", 1)).Names);

        // The same grain creates a valid model afterwards.
        Assert.Equal(1, (await model.CreateAsync(config with { Features = ["temp", "pressure"] })).ActiveVersion);
    }

    [Fact]
    public async Task Bad_publishes_and_unknown_versions_or_models_change_nothing()
    {
        var unknown = Client.GetGrain<IModelGrain>("versions-unknown");
        await Assert.ThrowsAsync<ModelNotFoundException>(() => unknown.PublishAsync(new PublishRequest([1f])));
        await Assert.ThrowsAsync<ModelNotFoundException>(() => unknown.ActivateAsync(1));
        await Assert.ThrowsAsync<ModelNotFoundException>(() => unknown.GetWeightsAsync(1));
        await Assert.ThrowsAsync<ModelNotFoundException>(() => unknown.ListVersionsAsync());

        var model = Client.GetGrain<IModelGrain>("versions-bad");
        int count = (await model.CreateAsync(TestSupport.SmallConfig())).ParameterCount;
        var before = await model.GetInfoAsync();
        foreach (var bad in new[]
        {
            new PublishRequest(null!),
            new PublishRequest(Enumerable.Repeat(float.PositiveInfinity, count).ToArray()),
            new PublishRequest(new float[count], Metadata: new Dictionary<string, string> { ["loss"] = "0.1", ["note"] = null! }),
        })
            await Assert.ThrowsAsync<ModelOperationException>(() => model.PublishAsync(bad));
        await Assert.ThrowsAsync<ModelOperationException>(() => model.ActivateAsync(0));
        await Assert.ThrowsAsync<ModelOperationException>(() => model.ActivateAsync(2));
        await Assert.ThrowsAsync<ModelOperationException>(() => model.GetWeightsAsync(-1));
        Assert.Equal(before, await model.GetInfoAsync());
        Assert.Equal([1L], (await model.ListVersionsAsync()).Select(v => v.Version));

        Assert.Equal(2, await model.PublishAsync(new PublishRequest(new float[count], Metadata: new Dictionary<string, string> { ["note"] = "" })));
    }

    [Fact]
    public async Task A_published_version_reaches_every_silo_and_streams_rewarm()
    {
        const string name = "rollout";
        var model = Client.GetGrain<IModelGrain>(name);
        var info = await model.CreateAsync(TestSupport.SmallConfig(seed: 11));
        var config = info.Config;
        var v1 = await model.GetActiveWeightsAsync();

        // Load the model into every silo's cache, as the first stream step on that silo would.
        var caches = fixture.Caches;
        Assert.Equal(ClusterFixture.SiloCount, caches.Count);
        foreach (var cache in caches) Assert.Equal(1, (await cache.GetAsync(name)).Version);

        // A stream with more history than its ring buffer holds (capacity 64).
        var stream = Client.GetGrain<IStreamGrain>("rollout/stream");
        await stream.BindAsync(name);
        var reference = new ReferenceStream(config, TestSupport.ToEngine(v1));
        for (long seq = 1; seq <= 80; seq++) { await stream.IngestAsync(TestSupport.Obs(seq)); reference.Step(TestSupport.Obs(seq).Values); }
        // And a young stream, whose replay is short enough that the zero starting state still shows.
        var young = Client.GetGrain<IStreamGrain>("rollout/young");
        await young.BindAsync(name);
        var youngReference = new ReferenceStream(config, TestSupport.ToEngine(v1));
        for (long seq = 1; seq <= 4; seq++) { await young.IngestAsync(TestSupport.Obs(seq, seed: 1)); youngReference.Step(TestSupport.Obs(seq, seed: 1).Values); }

        var pushesBefore = caches.Select(c => c.PushesReceived).ToArray();
        var trained = LstmParameters.InitializeUniform(new LstmConfig(config.InputSize, config.HiddenSize, config.Layers, config.Horizons), 99);
        long v2 = await model.PublishAsync(new PublishRequest(trained.Data, "retrained"));
        await AllCachesReach(name, v2);
        for (int i = 0; i < caches.Count; i++)
        {
            var cache = caches[i];
            long received = await TestSupport.Eventually(() => Task.FromResult(cache.PushesReceived), n => n > pushesBefore[i]);
            Assert.True(received > pushesBefore[i], $"silo {i} did not get the push");
        }

        // The next step re-derives (h, c) by replaying the ring buffer through the new weights, then steps once.
        var v2Weights = TestSupport.ToEngine(await model.GetActiveWeightsAsync());
        reference.Rewarm(v2Weights, window: 64);
        var result = await stream.IngestAsync(TestSupport.Obs(81));
        Assert.Equal(v2, result.WeightsVersion);
        Assert.Equal(reference.Step(TestSupport.Obs(81).Values), result.Predictions);
        var state = await stream.GetStateAsync();
        Assert.Equal(reference.H, state.Hidden);
        Assert.Equal(reference.C, state.Cell);
        Assert.Equal(v2, state.Summary.WeightsVersion);

        youngReference.Rewarm(v2Weights, window: 64);
        var youngResult = await young.IngestAsync(TestSupport.Obs(5, seed: 1));
        Assert.Equal(youngReference.Step(TestSupport.Obs(5, seed: 1).Values), youngResult.Predictions);
        var youngState = await young.GetStateAsync();
        Assert.Equal(youngReference.H, youngState.Hidden);
        Assert.Equal(youngReference.C, youngState.Cell);

        // Rollback: activate version 1 again; every silo follows and the stream re-warms through v1.
        await model.ActivateAsync(1);
        await AllCachesReach(name, 1);
        reference.Rewarm(TestSupport.ToEngine(v1), window: 64);
        var rolledBack = await stream.IngestAsync(TestSupport.Obs(82));
        Assert.Equal(1, rolledBack.WeightsVersion);
        Assert.Equal(reference.Step(TestSupport.Obs(82).Values), rolledBack.Predictions);
        Assert.Equal(reference.H, (await stream.GetStateAsync()).Hidden);
    }

    [Fact]
    public async Task Steps_taken_while_versions_are_published_and_rolled_back_each_use_exactly_one_version()
    {
        const string name = "switching";
        var model = Client.GetGrain<IModelGrain>(name);
        var info = await model.CreateAsync(TestSupport.SmallConfig(seed: 13));
        var config = info.Config;
        var engine = new LstmConfig(config.InputSize, config.HiddenSize, config.Layers, config.Horizons);
        var single = Client.GetGrain<IStreamGrain>("switching/single");
        var batched = Client.GetGrain<IStreamGrain>("switching/batched");
        await single.BindAsync(name);
        await batched.BindAsync(name);

        // One stream steps one observation per call, the other five per call, while versions change under them.
        var singleAnswers = new List<StepResult>();
        var batchAnswers = new List<StepResult[]>();
        using var switching = new CancellationTokenSource();
        long nextSingle = 1, nextBatch = 1;
        async Task StepSingleAsync() => singleAnswers.Add(await single.IngestAsync(TestSupport.Obs(nextSingle++)));
        async Task StepBatchAsync()
        {
            batchAnswers.Add(await batched.IngestBatchAsync(Enumerable.Range(0, 5).Select(i => TestSupport.Obs(nextBatch + i, seed: 2)).ToArray()));
            nextBatch += 5;
        }
        async Task IngestSingleAsync()
        {
            while (!switching.IsCancellationRequested || nextSingle <= 100) await StepSingleAsync();
        }
        async Task IngestBatchesAsync()
        {
            while (!switching.IsCancellationRequested || nextBatch <= 100) await StepBatchAsync();
        }
        var ingesting = Task.WhenAll(IngestSingleAsync(), IngestBatchesAsync());
        long v2 = await model.PublishAsync(new PublishRequest(LstmParameters.InitializeUniform(engine, 31).Data, "v2"));
        await Task.Delay(20);
        long v3 = await model.PublishAsync(new PublishRequest(LstmParameters.InitializeUniform(engine, 32).Data, "v3"));
        await Task.Delay(20);
        await model.ActivateAsync(1);
        await Task.Delay(20);
        await model.ActivateAsync(v3);
        await model.ActivateAsync(v2);
        await AllCachesReach(name, v2);
        switching.Cancel();
        await ingesting;
        await StepSingleAsync();   // steps that start after every silo holds the final version
        await StepBatchAsync();

        // Every answer is what a stream that switched to exactly that version before the step would give: (h, c)
        // re-derived from the retained history through that version's weights, then one step.
        var weights = new Dictionary<long, LstmWeights>();
        foreach (long v in new[] { 1, v2, v3 }) weights[v] = TestSupport.ToEngine(await model.GetWeightsAsync(v));
        var reference = new ReferenceStream(config, weights[1]);
        long current = 1;
        foreach (var answer in singleAnswers)
        {
            if (answer.WeightsVersion != current) reference.Rewarm(weights[current = answer.WeightsVersion], window: 64);
            Assert.Equal(reference.Step(TestSupport.Obs(answer.Sequence).Values), answer.Predictions);
        }
        var batchReference = new ReferenceStream(config, weights[1]);
        current = 1;
        foreach (var answers in batchAnswers)
        {
            long version = answers[0].WeightsVersion;
            Assert.All(answers, a => Assert.Equal(version, a.WeightsVersion));   // one version for the whole batch
            if (version != current) batchReference.Rewarm(weights[current = version], window: 64);
            foreach (var answer in answers) Assert.Equal(batchReference.Step(TestSupport.Obs(answer.Sequence, seed: 2).Values), answer.Predictions);
        }
        Assert.Equal(v2, singleAnswers[^1].WeightsVersion);
        Assert.Equal(v2, batchAnswers[^1][^1].WeightsVersion);
    }

    [Fact]
    public async Task Retention_drops_the_oldest_versions_but_never_the_active_one()
    {
        var model = Client.GetGrain<IModelGrain>("retention");
        var info = await model.CreateAsync(TestSupport.SmallConfig(seed: 17));
        int retained = new ModelGrainOptions().MaxRetainedVersions;
        float[] Params(long v) => Enumerable.Repeat(v / 1000f, info.ParameterCount).ToArray();
        for (long v = 2; v <= 4; v++) await model.PublishAsync(new PublishRequest(Params(v)));
        await model.ActivateAsync(2);   // roll back; version 2 must outlive the pruning of older and newer versions
        for (long v = 5; v <= retained + 6; v++) await model.PublishAsync(new PublishRequest(Params(v), Activate: false));

        var versions = (await model.ListVersionsAsync()).Select(v => v.Version).ToArray();
        Assert.Equal(retained, versions.Length);
        Assert.Equal(2, versions[0]);
        Assert.Equal(Enumerable.Range(retained + 6 - (retained - 2), retained - 1).Select(v => (long)v), versions[1..]);
        var after = await model.GetInfoAsync();
        Assert.Equal(2, after.ActiveVersion);
        Assert.Equal(retained + 6, after.LatestVersion);
        Assert.Equal(retained, after.RetainedVersions);
        Assert.Equal(Params(2), (await model.GetActiveWeightsAsync()).Parameters);
        await Assert.ThrowsAsync<ModelOperationException>(() => model.ActivateAsync(1));
        await Assert.ThrowsAsync<ModelOperationException>(() => model.GetWeightsAsync(3));
        Assert.Equal(retained + 6, (await model.ActivateAsync(retained + 6)).ActiveVersion);
    }

    [Fact]
    public async Task A_silo_that_missed_a_push_catches_up()
    {
        const string name = "missed";
        var model = Client.GetGrain<IModelGrain>(name);
        var info = await model.CreateAsync(TestSupport.SmallConfig(seed: 5));
        var caches = fixture.Caches;
        foreach (var cache in caches) await cache.GetAsync(name);

        // Silo 0's registration is dropped (and its refresh held back), so the push does not reach it.
        caches[0].RefreshPaused = true;
        try
        {
            await model.UnsubscribeAsync(caches[0].ObserverReference());
            long pushesBefore = caches[0].PushesReceived;
            long v2 = await model.PublishAsync(new PublishRequest(Enumerable.Repeat(0.03f, info.ParameterCount).ToArray()));
            foreach (var cache in caches.Skip(1))
                Assert.Equal(v2, (await TestSupport.Eventually(() => cache.GetAsync(name).AsTask(), m => m.Version == v2)).Version);
            Assert.Equal(1, (await caches[0].GetAsync(name)).Version);
            Assert.Equal(pushesBefore, caches[0].PushesReceived);

            // The periodic refresh (every 2 s here) re-registers and installs the version it missed.
            caches[0].RefreshPaused = false;
            var caughtUp = await TestSupport.Eventually(() => caches[0].GetAsync(name).AsTask(), m => m.Version == v2, TimeSpan.FromSeconds(10));
            Assert.Equal(v2, caughtUp.Version);
            Assert.Equal(pushesBefore, caches[0].PushesReceived); // it came through the refresh, not a push

            // Re-registered: the next publish is pushed to silo 0 again.
            long v3 = await model.PublishAsync(new PublishRequest(Enumerable.Repeat(0.04f, info.ParameterCount).ToArray()));
            var pushed = await TestSupport.Eventually(() => Task.FromResult(caches[0].PushesReceived), n => n > pushesBefore);
            Assert.True(pushed > pushesBefore);
            Assert.Equal(v3, (await TestSupport.Eventually(() => caches[0].GetAsync(name).AsTask(), m => m.Version == v3)).Version);
        }
        finally
        {
            caches[0].RefreshPaused = false;
        }
    }

    private async Task AllCachesReach(string name, long version)
    {
        foreach (var cache in fixture.Caches)
        {
            var held = await TestSupport.Eventually(() => cache.GetAsync(name).AsTask(), m => m.Version == version, TimeSpan.FromSeconds(10));
            Assert.Equal(version, held.Version);
        }
    }

    [Fact]
    public async Task A_closed_round_and_every_earlier_one_can_no_longer_publish_while_later_rounds_and_manual_publishes_can()
    {
        var model = Client.GetGrain<IModelGrain>("close-round");
        var info = await model.CreateAsync(TestSupport.SmallConfig());
        float[] Weights(float value) => Enumerable.Repeat(value, info.ParameterCount).ToArray();

        // Round 3 published: closing it returns its publication and refuses nothing new.
        long published = await model.PublishAsync(new PublishRequest(Weights(0.01f), "training round 3", TrainingRound: 3));
        Assert.Equal(published, (await model.CloseRoundAsync(3))?.Version);
        Assert.Null(await model.GetRoundPublicationAsync(4));

        // Round 5 published nothing: closed, its publish (a late one, as from an activation that died) is refused,
        // and so is an earlier round's, and nothing is stored. Closing it again says the same.
        Assert.Null(await model.CloseRoundAsync(5));
        foreach (long round in new long[] { 5, 4 })
        {
            var refused = await Assert.ThrowsAsync<ModelOperationException>(() =>
                model.PublishAsync(new PublishRequest(Weights(0.02f), $"training round {round}", TrainingRound: round)));
            Assert.Contains($"Training round {round} of model 'close-round' was closed", refused.Message);
        }
        Assert.Null(await model.CloseRoundAsync(5));
        var after = await model.GetInfoAsync();
        Assert.Equal((published, published), (after.ActiveVersion, after.LatestVersion));
        Assert.Null(await model.GetRoundPublicationAsync(5));

        // The next round and a manual publish are not affected.
        long next = await model.PublishAsync(new PublishRequest(Weights(0.03f), "training round 6", TrainingRound: 6));
        Assert.Equal(next, (await model.GetRoundPublicationAsync(6))?.Version);
        Assert.Equal(next + 1, await model.PublishAsync(new PublishRequest(Weights(0.04f), "manual")));
        await Assert.ThrowsAsync<ModelOperationException>(() => model.CloseRoundAsync(0));
    }
}

[Collection(ClusterCollection.Name)]
public sealed class ModelCatalogTests(ClusterFixture fixture)
{
    private IClusterClient Client => fixture.Client;

    private async Task<List<string>> ListAllAsync(int pageSize)
    {
        var catalog = Client.GetGrain<IModelCatalogGrain>(ModelCatalog.Key);
        var names = new List<string>();
        string? after = null;
        int pages = 0;
        do
        {
            var page = await catalog.ListAsync(after, pageSize);
            Assert.InRange(page.Names.Length, page.Next is null ? 0 : pageSize, pageSize);
            names.AddRange(page.Names);
            after = page.Next;
            Assert.True(++pages < 10_000, "the listing does not end");
        }
        while (after is not null);
        return names;
    }

    [Fact]
    public async Task Created_models_are_listed_once_in_ordinal_order_across_pages()
    {
        string[] created = ["catalog-b", "catalog-a", "catalog-c", "catalog-B"];
        foreach (var name in created)
            await Client.GetGrain<IModelGrain>(name).CreateAsync(TestSupport.SmallConfig());
        await Client.GetGrain<IModelGrain>("catalog-a").CreateAsync(TestSupport.SmallConfig());   // idempotent: listed once
        // A refused creation lists nothing.
        await Assert.ThrowsAsync<ModelOperationException>(() => Client.GetGrain<IModelGrain>("catalog-bad").CreateAsync(TestSupport.SmallConfig() with { HiddenSize = 0 }));

        foreach (int pageSize in new[] { 1, 2, 3, ModelCatalog.MaxPageSize })
        {
            var names = await ListAllAsync(pageSize);
            Assert.Equal(names.Distinct().Count(), names.Count);
            Assert.Equal(names.OrderBy(n => n, StringComparer.Ordinal), names);
            Assert.Equal(new[] { "catalog-B", "catalog-a", "catalog-b", "catalog-c" }, names.Where(n => n.StartsWith("catalog-", StringComparison.Ordinal)));
        }

        // A cursor that is not a listed name starts at the next name after it.
        var fromCursor = await Client.GetGrain<IModelCatalogGrain>(ModelCatalog.Key).ListAsync("catalog-aa", 2);
        Assert.Equal(new[] { "catalog-b", "catalog-c" }, fromCursor.Names);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Client.GetGrain<IModelCatalogGrain>(ModelCatalog.Key).ListAsync(null, 0));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Client.GetGrain<IModelCatalogGrain>(ModelCatalog.Key).ListAsync(null, ModelCatalog.MaxPageSize + 1));
    }
}

/// <summary>A model grain that keeps a single version