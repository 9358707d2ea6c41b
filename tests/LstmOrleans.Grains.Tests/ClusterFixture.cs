using LstmOrleans.Abstractions;
using LstmOrleans.Grains;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// One 3-silo in-process cluster shared by the tests of the "cluster" collection: memory grain storage for "lstm",
/// memory streams for the Orleans streams ingestion path, and a short cache refresh interval.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public const int SiloCount = 3;

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public IClusterClient Client => Cluster.Client;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(SiloCount);
        builder.Options.ServiceId = "lstm-grains-tests";
        builder.Options.ClusterId = "lstm-grains-tests-cluster";
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddMemoryGrainStorage(LstmOrleansNames.StorageName);
            silo.AddMemoryGrainStorage("PubSubStore");
            silo.AddMemoryStreams(LstmOrleansNames.StreamProviderName);
            silo.AddLstmOrleans(
                configureStreams: o => { o.HistoryCapacity = 64; o.MaxBatchSize = 100; o.OffloadMultiplyAdds = 16 * 2_856; },   // ~16 steps of TestSupport.SmallConfig, so tests exercise both sides of the offload decision
                configureCache: o => o.RefreshInterval = TimeSpan.FromSeconds(2));
        });
        builder.ConfigureClient(client => client.AddMemoryStreams(LstmOrleansNames.StreamProviderName));
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    /// <summary>The weights cache of every running silo.</summary>
    public IReadOnlyList<ModelWeightsCache> Caches =>
        Cluster.Silos.Select(s => s.ServiceProvider.GetRequiredService<ModelWeightsCache>()).ToArray();

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
