using System.Collections.Concurrent;
using System.Globalization;
using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Training;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;
using Xunit.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// How a round's outcome is found when its training grain could not record it: the model keeps the latest round's
/// publish (<see cref="IModelGrain.GetRoundPublicationAsync"/>) past the pruning of its version, only for publishes that
/// name the round (<see cref="PublishRequest.TrainingRound"/>), never for a manual publish whatever its metadata says.
/// Crashes are simulated as in <see cref="TrainingCrashTests"/>: the only silo is killed and a new cluster comes up on
/// the same ServiceId, the state coming back from the shared store.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class TrainingRoundPublicationTests(ITestOutputHelper output)
{
    /// <summary>Versions each model keeps here: a few publishes push a round's version out.</summary>
    private const int Retained = 3;

    // No schedule (so only the test starts rounds, and nothing activates the training grain behind the test's back).
    private static TrainingSettings Manual => new(
        Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: 16, Epochs: 2, TimeBudget: TimeSpan.FromSeconds(2),
        LearningRate: 0.01f, WindowLength: 16, Stride: 8, MaxRowsPerStream: 128);

    // Epochs enough to beat the untrained version 1 on the sines (as in TrainingCrashTests), so the round publishes.
    private static TrainingSettings Publishing => new(Period: TimeSpan.Zero, MinNewObservations: 0, SampleSize: 16, Epochs: 30,
        TimeBudget: TimeSpan.FromSeconds(4), LearningRate: 0.01f, WindowLength: 24, Stride: 4, BatchSize: 16,
        ValidationFraction: 0.25, Patience: 0, MaxRowsPerStream: 256);

    private static Task<InProcessTestCluster> StartAsync(string serviceId) =>
        TrainingCluster.StartAsync(serviceId, silos: 1,
            configureSilo: silo =>
            {
                silo.AddOutgoingGrainCallFilter<HeldCallFilter>();
                silo.AddOutgoingGrainCallFilter<FailAfterApplyFilter>();
                silo.Services.Configure<ModelGrainOptions>(o => o.MaxRetainedVersions = Retained);
                silo.Services.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(3));
            },
            configureClient: client => client.Services.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(3)));

    private static string NewServiceId() => "lstm-round-publication-" + Guid.NewGuid().ToString("N")[..8];

    private static float[] Parameters(ModelInfo info, float value) => Enumerable.Repeat(value, info.ParameterCount).ToArray();

    /// <summary>A model with six sine streams registered and its training configured to publish.</summary>
    private static async Task<(IModelGrain Model, ITrainingGrain Training)> PublishingModelAsync(IClusterClient client, string model)
    {
        var modelGrain = client.GetGrain<IModelGrain>(model);
        await modelGrain.CreateAsync(SineStreams.Config);
        await SineStreams.IngestAsync(client, model, streams: 6, from: 0, count: 200);
        await TrainingFixture.WaitForRegistryAsync(client, model, 6);
        var training = client.GetGrain<ITrainingGrain>(model);
        await training.ConfigureAsync(Publishing);
        return (modelGrain, training);
    }

    [Fact]
    public async Task A_round_that_published_just_before_a_crash_is_recorded_as_accepted_after_its_version_was_pruned()
    {
        const string model = "published-then-pruned";
        string serviceId = NewServiceId();
        var first = await StartAsync(serviceId);
        TestHold answer;
        long round;
        ModelVersionInfo published;
        try
        {
            var (modelGrain, training) = await PublishingModelAsync(first.Client, model);
            // The publish is made and stored, but the round does not hear back: it has published and recorded nothing
            // when the silo dies.
            answer = HeldCallFilter.HoldResponse(modelGrain.GetGrainId(), nameof(IModelGrain.PublishAsync)).ReleaseAfter(TimeSpan.FromMinutes(3));
            round = await training.StartRoundAsync();
            if (await Task.WhenAny(answer.Entered, Task.Delay(TimeSpan.FromSeconds(90))) != answer.Entered)
                Assert.Fail($"round {round} published nothing: {(await training.GetRoundAsync(round))?.Reason ?? "still running"}");
            published = (await modelGrain.ListVersionsAsync()).Single(v => v.Metadata.GetValueOrDefault(TrainingGrain.RoundMetadata) == round.ToString(CultureInfo.InvariantCulture));
            Assert.Null(await training.GetRoundAsync(round));
        }
        catch
        {
            await first.DisposeAsync();
            throw;
        }
        await TrainingCluster.CrashAsync(first);

        var second = await StartAsync(serviceId);
        try
        {
            // While the training grain is down (nothing activates it: no schedule, no streams reporting), the model gets
            // more versions than it retains, so the round's is pruned before its next activation looks for it.
            var modelGrain = second.Client.GetGrain<IModelGrain>(model);
            var info = await modelGrain.GetInfoAsync();
            for (int i = 1; i <= Retained; i++) await modelGrain.PublishAsync(new PublishRequest(Parameters(info, 0.01f * i), $"manual {i}"));
            Assert.DoesNotContain(published.Version, (await modelGrain.ListVersionsAsync()).Select(v => v.Version));

            var training = second.Client.GetGrain<ITrainingGrain>(model);
            var record = await training.GetRoundAsync(round);
            Assert.NotNull(record);
            output.WriteLine($"round {record.RoundId}: {record.Decision} published {record.PublishedVersion}; {record.Reason}");
            Assert.Equal(TrainingDecision.Accepted, record.Decision);
            Assert.Equal(published.Version, record.PublishedVersion);
            Assert.Equal(1, record.ChampionVersion);
            Assert.Equal(TrainingTrigger.Manual, record.Trigger);
            Assert.Equal(double.Parse(published.Metadata[TrainingGrain.ValidationLossMetadata], CultureInfo.InvariantCulture), record.ChallengerValidationLoss);
            Assert.Equal(double.Parse(published.Metadata[TrainingGrain.ChampionValidationLossMetadata], CultureInfo.InvariantCulture), record.ChampionValidationLoss);
            Assert.True(record.ChallengerValidationLoss < record.ChampionValidationLoss);
            Assert.Equal(6, record.StreamsUsed);
            Assert.Contains($"version {published.Version}", record.Reason);
            Assert.Contains("no longer retained", record.Reason);
            Assert.DoesNotContain("Interrupted", record.Reason);

            // Recorded once, as the latest round: the next one is numbered on.
            var status = await training.GetStatusAsync();
            Assert.False(status.Running);
            Assert.Equal(round, status.RecentRounds[^1].RoundId);
            await training.ConfigureAsync(Manual);
            Assert.Equal(round + 1, (await training.TrainNowAsync()).RoundId);
        }
        finally
        {
            await TestSupport.StopAsync(second);
            // Only now: let go, the dead silo's round could still write its own record over the shared store.
            answer.Release();
        }
    }

    [Fact]
    public async Task A_manual_publish_whose_metadata_names_an_interrupted_round_is_not_taken_for_that_round()
    {
        const string model = "forged-round";
        string serviceId = NewServiceId();
        var first = await StartAsync(serviceId);
        TestHold hold;
        long round;
        try
        {
            var client = first.Client;
            await client.GetGrain<IModelGrain>(model).CreateAsync(SineStreams.Config);
            var training = client.GetGrain<ITrainingGrain>(model);
            await training.ConfigureAsync(Manual);
            // The round is held at its first step (the registry's counts) when the silo dies: it published nothing.
            var shard = client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(model, 0));
            hold = HeldCallFilter.Hold(shard.GetGrainId(), nameof(IStreamRegistryShardGrain.GetStatsAsync)).ReleaseAfter(TimeSpan.FromMinutes(2));
            round = await training.StartRoundAsync();
            await hold.Entered.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch
        {
            await first.DisposeAsync();
            throw;
        }
        await TrainingCluster.CrashAsync(first);

        var second = await StartAsync(serviceId);
        try
        {
            // A user's publish (the HTTP API passes metadata through) that says it is that round's, as the round's own would.
            var modelGrain = second.Client.GetGrain<IModelGrain>(model);
            var info = await modelGrain.GetInfoAsync();
            long manual = await modelGrain.PublishAsync(new PublishRequest(Parameters(info, 0.02f), "manual", new Dictionary<string, string>
            {
                [TrainingGrain.RoundMetadata] = round.ToString(CultureInfo.InvariantCulture),
                [TrainingGrain.ParentMetadata] = "1",
                [TrainingGrain.ValidationLossMetadata] = "0.1",
                [TrainingGrain.StreamsMetadata] = "3",
            }));

            var record = await second.Client.GetGrain<ITrainingGrain>(model).GetRoundAsync(round);
            Assert.NotNull(record);
            output.WriteLine($"round {record.RoundId}: {record.Decision} published {record.PublishedVersion}; manual publish v{manual}; {record.Reason}");
            Assert.Equal(TrainingDecision.Failed, record.Decision);
            Assert.Contains("Interrupted", record.Reason);
            Assert.Null(record.PublishedVersion);
            Assert.Null(await modelGrain.GetRoundPublicationAsync(round));
        }
        finally
        {
            await TestSupport.StopAsync(second);
            hold.Release();
        }
    }

    [Fact]
    public async Task A_round_whose_publish_call_fails_after_the_model_stored_it_is_recorded_as_accepted()
    {
        const string model = "publish-answer-lost";
        var cluster = await StartAsync(NewServiceId());
        try
        {
            var (modelGrain, training) = await PublishingModelAsync(cluster.Client, model);
            // The model applies the publish, then its caller gets an error instead of the version (as when the answer
            // times out or the store reports a failed write that was stored).
            using var fail = FailAfterApplyFilter.Arm(modelGrain.GetGrainId(), nameof(IModelGrain.PublishAsync));
            var record = await training.TrainNowAsync();
            output.WriteLine($"round {record.RoundId}: {record.Decision} published {record.PublishedVersion}; {record.Reason}");
            Assert.True(fail.Failed > 0, $"round {record.RoundId} did not publish: {record.Decision}, {record.Reason}");

            var info = await modelGrain.GetInfoAsync();
            var stored = (await modelGrain.ListVersionsAsync()).Single(v => v.Version == info.ActiveVersion);
            Assert.Equal(record.RoundId.ToString(CultureInfo.InvariantCulture), stored.Metadata[TrainingGrain.RoundMetadata]);
            Assert.Equal(TrainingDecision.Accepted, record.Decision);
            Assert.Equal(stored.Version, record.PublishedVersion);
            Assert.Equal(1, record.ChampionVersion);
            Assert.Equal(6, record.StreamsUsed);
        }
        finally
        {
            await TestSupport.StopAsync(cluster);
        }
    }

    [Fact]
    public async Task The_model_keeps_the_latest_rounds_publish_past_pruning_rollbacks_and_restarts_and_only_for_publishes_naming_a_round()
    {
        const string model = "round-publication";
        string serviceId = NewServiceId();
        var first = await StartAsync(serviceId);
        long roundVersion;
        try
        {
            var grain = first.Client.GetGrain<IModelGrain>(model);
            var info = await grain.CreateAsync(SineStreams.Config);
            var metadata = new Dictionary<string, string> { ["training.round"] = "5", ["training.streams"] = "4" };
            roundVersion = await grain.PublishAsync(new PublishRequest(Parameters(info, 0.01f), "training round 5", metadata, TrainingRound: 5));

            var publication = await grain.GetRoundPublicationAsync(5);
            Assert.NotNull(publication);
            Assert.Equal((5L, roundVersion, true), (publication.RoundId, publication.Version, publication.Retained));
            Assert.Equal(metadata, publication.Metadata);
            Assert.Equal((await grain.ListVersionsAsync()).Single(v => v.Version == roundVersion).PublishedAt, publication.PublishedAt);
            Assert.Null(await grain.GetRoundPublicationAsync(4));

            // A bad round id is refused and changes nothing.
            foreach (long bad in new[] { 0L, -1L })
            {
                var e = await Assert.ThrowsAsync<ModelOperationException>(() => grain.PublishAsync(new PublishRequest(Parameters(info, 0.02f), TrainingRound: bad)));
                Assert.Contains("round", e.Message);
            }
            Assert.Equal(roundVersion, (await grain.GetInfoAsync()).LatestVersion);

            // Publishes that name no round (whatever their metadata) and rollbacks leave it; the version is pruned.
            await grain.PublishAsync(new PublishRequest(Parameters(info, 0.03f), Metadata: new Dictionary<string, string> { ["training.round"] = "6" }));
            await grain.ActivateAsync(1);
            for (int i = 0; i < Retained; i++) await grain.PublishAsync(new PublishRequest(Parameters(info, 0.04f + 0.01f * i)));
            Assert.DoesNotContain(roundVersion, (await grain.ListVersionsAsync()).Select(v => v.Version));
            Assert.Null(await grain.GetRoundPublicationAsync(6));
        }
        catch
        {
            await first.DisposeAsync();
            throw;
        }
        await TestSupport.StopAsync(first);

        // Durable: a new cluster reads it back from the store.
        var second = await StartAsync(serviceId);
        try
        {
            var grain = second.Client.GetGrain<IModelGrain>(model);
            var publication = await grain.GetRoundPublicationAsync(5);
            Assert.NotNull(publication);
            Assert.Equal((5L, roundVersion, false), (publication.RoundId, publication.Version, publication.Retained));
            Assert.Equal("4", publication.Metadata["training.streams"]);

            // The next round's publish replaces it.
            var info = await grain.GetInfoAsync();
            long next = await grain.PublishAsync(new PublishRequest(Parameters(info, 0.05f), TrainingRound: 6));
            Assert.Null(await grain.GetRoundPublicationAsync(5));
            Assert.Equal(next, (await grain.GetRoundPublicationAsync(6))?.Version);
        }
        finally
        {
            await TestSupport.StopAsync(second);
        }
    }

    [Fact]
    public void A_model_record_written_before_round_publications_were_kept_still_loads()
    {
        // A ModelState serialised by the build before LastRoundPublication (Id 6) existed: version 2 of a model,
        // published by round 3, active. It has no field 6,
        // so the new field keeps its default: null, as for a model no round has published to.
        const string OldRecord =
            "2020E80005010501050105210003410B76616C7565E00101090305011DC1010101E021800010C987FF4DDF08810000000000000000E00109010901092100032100092180006E993A004EDF08810000000000000000E04121747261696E696E6720726F756E642033210103411D747261696E696E672E726F756E64400333E0210005610000003F60000080BFE0E0E0E0";
        var serializer = new ServiceCollection().AddSerializer(b => b.AddAssembly(typeof(ModelState).Assembly)).BuildServiceProvider()
            .GetRequiredService<Serializer>();
        var state = Assert.IsType<ModelState>(serializer.Deserialize<ModelState>(Convert.FromHexString(OldRecord)));
        Assert.Null(state.LastRoundPublication);
        Assert.Equal((2L, 2L, 2L), (state.ActiveVersion, state.LatestVersion, state.Epoch));
        Assert.Equal(new DateTimeOffset(2026, 11, 29, 10, 0, 0, TimeSpan.Zero), state.CreatedAt);
        Assert.Equal((1, "value"), (state.Config!.HiddenSize, Assert.Single(state.Config.Features!)));
        var version = Assert.Single(state.Versions);
        Assert.Equal("3", version.Metadata["training.round"]);
        Assert.Equal([0.5f, -1f], version.Parameters);

        // Written again by this build, it reads back with the field.
        state.LastRoundPublication = new ModelRoundPublication { RoundId = 3, Version = 2, PublishedAt = version.PublishedAt, Metadata = version.Metadata };
        var again = Assert.IsType<ModelState>(serializer.Deserialize<ModelState>(serializer.SerializeToArray(state)));
        var publication = again.LastRoundPublication;
        Assert.NotNull(publication);
        Assert.Equal((3L, 2L), (publication.RoundId, publication.Version));
        Assert.Equal(version.Metadata, publication.Metadata);
    }
}

/// <summary>
/// Test-only outgoing call filter: a grain's call of a chosen method on a chosen grain is made (and its effect stored),
/// then its caller gets a <see cref="TimeoutException"/> instead of the answer, as when the answer is lost.
/// </summary>
internal sealed class FailAfterApplyFilter : IOutgoingGrainCallFilter
{
    private static readonly ConcurrentDictionary<(GrainId Target, string Method), Armed> Targets = new();

    public sealed class Armed(Action disarm) : IDisposable
    {
        private int _failed;

        /// <summary>Calls failed so far.</summary>
        public int Failed => Volatile.Read(ref _failed);

        internal void Count() => Interlocked.Increment(ref _failed);

        public void Dispose() => disarm();
    }

    public static Armed Arm(GrainId target, string method)
    {
        Armed? armed = null;
        armed = new Armed(() => Targets.TryRemove(new KeyValuePair<(GrainId, string), Armed>((target, method), armed!)));
        if (!Targets.TryAdd((target, method), armed)) throw new InvalidOperationException($"Calls of {method} on {target} are already failed.");
        return armed;
    }

    public async Task Invoke(IOutgoingGrainCallContext context)
    {
        await context.Invoke();
        if (Targets.TryGetValue((context.TargetId, context.InterfaceMethod.Name), out var armed))
        {
            armed.Count();
            throw new TimeoutException($"Test: the answer of {context.InterfaceMethod.Name} on {context.TargetId} was lost.");
        }
    }
}
