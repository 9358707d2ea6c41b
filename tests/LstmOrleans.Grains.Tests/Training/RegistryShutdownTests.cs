using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Training;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Storage;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// A graceful stop keeps the observations the streams have not yet reported to their registry shards: a stream
/// reports every <see cref="TrainingGrainOptions.ReportEverySteps"/> steps and the rest when it deactivates, and on a
/// silo stop the streams deactivate before the shards they report to, so the shards store those last counts. (Before,
/// every grain deactivated at once: a shard already deactivating queued the streams' last reports, and a lone silo,
/// with nowhere to move the shard, dropped them, logging an error per shard.)
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class RegistryShutdownTests
{
    private const string Model = "shutdown";
    private const int Streams = 24, Steps = 20;

    /// <summary>
    /// <see cref="Steps"/> steps per stream in two batches: the first (16 = ReportEverySteps) is reported at once, the
    /// second (4) only when the stream deactivates.
    /// </summary>
    private static async Task IngestAsync(IGrainFactory grains)
    {
        await SineStreams.IngestAsync(grains, Model, Streams, from: 0, count: 16);
        await SineStreams.IngestAsync(grains, Model, Streams, from: 16, count: Steps - 16);
    }

    // Its own serializer: the silos' and the client's are disposed when the cluster stops.
    private static readonly Serializer Serializer = new ServiceCollection()
        .AddSerializer(b => b.AddAssembly(typeof(StreamRegistryShardState).Assembly)).BuildServiceProvider().GetRequiredService<Serializer>();

    /// <summary>The observation counts the model's shards have stored (read from the shared store, not through the grains).</summary>
    private static long StoredTotal(string serviceId) =>
        Enumerable.Range(0, 4)
            .Select(s => SharedGrainStorage.Peek<StreamRegistryShardState>(serviceId, "registry",
                GrainId.Create("streamregistryshard", StreamRegistryKeys.ShardKey(Model, s)), Serializer))
            .Sum(state => state?.ObservationTotal ?? 0);

    /// <summary>
    /// A cluster whose registry shards write like a database, not instantly: a shard's deactivation (its final write)
    /// lasts long enough for reports sent meanwhile to find it deactivating, as against SQLite in the silo host.
    /// </summary>
    private static Task<Orleans.TestingHost.InProcessTestCluster> StartAsync(string serviceId, int silos) =>
        TrainingCluster.StartAsync(serviceId, silos, configureSilo: silo => silo.Services.AddKeyedSingleton<IGrainStorage>(LstmOrleansNames.StorageName,
            (sp, _) => new SlowRegistryWrites(new SharedGrainStorage(serviceId, sp.GetRequiredService<Serializer>()))));

    private sealed class SlowRegistryWrites(IGrainStorage inner) : IGrainStorage
    {
        public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.ReadStateAsync(stateName, grainId, grainState);

        public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            if (stateName == "registry") await Task.Delay(200);
            await inner.WriteStateAsync(stateName, grainId, grainState);
        }

        public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.ClearStateAsync(stateName, grainId, grainState);
    }

    [Fact]
    public async Task A_lone_silo_stores_the_streams_last_reports_when_it_stops()
    {
        string serviceId = "lstm-registry-stop-" + Guid.NewGuid().ToString("N")[..8];
        var cluster = await StartAsync(serviceId, silos: 1);
        try
        {
            await cluster.Client.GetGrain<IModelGrain>(Model).CreateAsync(SineStreams.Config);
            await IngestAsync(cluster.Client);
            await TrainingFixture.WaitForRegistryAsync(cluster.Client, Model, Streams);
            // Precondition: the shards have counted the first batches (reports are one-way), not the second.
            long live = 0;
            for (var deadline = DateTime.UtcNow.AddSeconds(20); live < Streams * 16 && DateTime.UtcNow < deadline; await Task.Delay(100))
                live = (await Task.WhenAll(Enumerable.Range(0, 4).Select(s =>
                    cluster.Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(Model, s)).GetStatsAsync()))).Sum(s => s.ObservationTotal);
            Assert.Equal(Streams * 16, live);

            await cluster.StopAllSilosAsync();
            Assert.Equal(Streams * Steps, StoredTotal(serviceId));
        }
        finally
        {
            await cluster.DisposeAsync();
        }
    }

    [Fact]
    public async Task Stopping_one_of_two_silos_and_then_the_other_keeps_every_count()
    {
        string serviceId = "lstm-registry-stop2-" + Guid.NewGuid().ToString("N")[..8];
        var cluster = await StartAsync(serviceId, silos: 2);
        try
        {
            await cluster.Client.GetGrain<IModelGrain>(Model).CreateAsync(SineStreams.Config);
            await IngestAsync(cluster.Client);
            await TrainingFixture.WaitForRegistryAsync(cluster.Client, Model, Streams);

            // The secondary's streams report their last counts to shards that live on, or move to, the primary.
            await cluster.StopSiloAsync(cluster.Silos[1]);
            var stats = await Task.WhenAll(Enumerable.Range(0, 4).Select(s =>
                cluster.Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(Model, s)).GetStatsAsync()));
            Assert.Equal(Streams, stats.Sum(s => s.Streams));

            await cluster.StopAllSilosAsync();
            Assert.Equal(Streams * Steps, StoredTotal(serviceId));
        }
        finally
        {
            await cluster.DisposeAsync();
        }
    }
}
