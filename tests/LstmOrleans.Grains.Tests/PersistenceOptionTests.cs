using LstmOrleans.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;

namespace LstmOrleans.Grains.Tests;

/// <summary>A one-silo cluster configured to persist streams every 5 steps instead of every step.</summary>
public sealed class DeferredPersistenceFixture : IAsyncLifetime
{
    public InProcessTestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.Options.ServiceId = "lstm-grains-deferred-tests";
        builder.Options.ClusterId = "lstm-grains-deferred-cluster";
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddGrainStorage(LstmOrleansNames.StorageName, (sp, _) => new ProcessWideGrainStorage(sp.GetRequiredService<Serializer>()));
            silo.AddLstmOrleans(configureStreams: o => o.PersistEverySteps = 5);
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}

public sealed class PersistenceOptionTests(DeferredPersistenceFixture fixture) : IClassFixture<DeferredPersistenceFixture>
{
    [Fact]
    public async Task Persisting_every_n_steps_defers_writes_and_flushes_on_deactivation()
    {
        var client = fixture.Cluster.Client;
        await client.GetGrain<IModelGrain>("deferred").CreateAsync(TestSupport.SmallConfig());
        var stream = client.GetGrain<IStreamGrain>("deferred/stream");
        await stream.BindAsync("deferred");
        var serializer = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<Serializer>();
        StreamState? Stored() => ProcessWideGrainStorage.Peek<StreamState>(serializer, "stream", stream.GetGrainId());

        for (long seq = 1; seq <= 7; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        Assert.Equal(7, (await stream.GetSummaryAsync()).StepCount);
        Assert.Equal(5, Stored()!.StepCount);   // acknowledged steps 6 and 7 are not durable yet
        Assert.Equal(5, Stored()!.LastSequence);

        for (long seq = 8; seq <= 10; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
        Assert.Equal(10, Stored()!.StepCount);

        await stream.IngestAsync(TestSupport.Obs(11));
        Assert.Equal(10, Stored()!.StepCount);
        await fixture.Cluster.DeactivateAsync(stream);
        var flushed = await TestSupport.Eventually(() => Task.FromResult(Stored()!), s => s.StepCount == 11);
        Assert.Equal(11, flushed.StepCount);
        Assert.Equal(11, (await stream.GetSummaryAsync()).StepCount);
    }
}
