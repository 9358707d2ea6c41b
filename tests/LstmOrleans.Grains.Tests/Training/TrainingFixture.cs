using LstmOrleans.Abstractions;
using Orleans.TestingHost;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>A 3-silo cluster shared by the training tests (one collection, so they never run in parallel).</summary>
public sealed class TrainingFixture : IAsyncLifetime
{
    public const int SiloCount = 3;
    public const string ServiceId = "lstm-training-tests";

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public IClusterClient Client => Cluster.Client;

    public async Task InitializeAsync() => Cluster = await TrainingCluster.StartAsync(ServiceId, SiloCount);

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }

    /// <summary>Waits until the model's registry shards hold <paramref name="streams"/> streams (reports are one-way).</summary>
    public static async Task WaitForRegistryAsync(IGrainFactory grains, string model, int streams, int shards = 4)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        int seen = 0;
        while (DateTime.UtcNow < deadline)
        {
            var stats = await Task.WhenAll(Enumerable.Range(0, shards)
                .Select(s => grains.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(model, s)).GetStatsAsync()));
            seen = stats.Sum(s => s.Streams);
            if (seen == streams) return;
            await Task.Delay(200);
        }
        Assert.Fail($"Registry of '{model}' holds {seen} streams, expected {streams}.");
    }
}

[CollectionDefinition(Name)]
public sealed class TrainingCollection : ICollectionFixture<TrainingFixture>
{
    public const string Name = "training";
}
