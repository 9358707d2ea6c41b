using LstmOrleans.Abstractions;
using Orleans.Runtime;
using Orleans.Streams;

namespace LstmOrleans.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class OrleansStreamsTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Observations_published_on_the_stream_are_stepped_once_each()
    {
        var client = fixture.Client;
        var modelGrain = client.GetGrain<IModelGrain>("streamed");
        var config = TestSupport.SmallConfig(seed: 3);
        await modelGrain.CreateAsync(config);
        const string key = "plant-7/boiler-3/temp";
        var grain = client.GetGrain<IStreamGrain>(key);
        await grain.BindAsync("streamed");

        var provider = client.GetStreamProvider(LstmOrleansNames.StreamProviderName);
        var stream = provider.GetStream<Observation>(StreamId.Create(LstmOrleansNames.ObservationStreamNamespace, key));
        var reference = new ReferenceStream(config, TestSupport.ToEngine(await modelGrain.GetActiveWeightsAsync()));
        for (long seq = 1; seq <= 10; seq++)
        {
            await stream.OnNextAsync(TestSupport.Obs(seq));
            reference.Step(TestSupport.Obs(seq).Values);
        }
        // Duplicates and an invalid observation: ignored (the invalid one is logged and dropped).
        await stream.OnNextAsync(TestSupport.Obs(4));
        await stream.OnNextAsync(TestSupport.Obs(10));
        await stream.OnNextAsync(new Observation(11, TestSupport.Start.AddSeconds(11), [float.NaN, 0f]));
        await stream.OnNextAsync(TestSupport.Obs(12));
        reference.Step(TestSupport.Obs(12).Values);

        // Memory streams deliver through polling agents; allow for a slow, loaded machine.
        var summary = await TestSupport.Eventually(grain.GetSummaryAsync, s => s.LastSequence == 12, TimeSpan.FromSeconds(60));
        Assert.Equal(12, summary.LastSequence);
        Assert.Equal(11, summary.StepCount);
        Assert.Equal([1L, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12], (await grain.GetHistoryAsync(100)).Select(o => o.Sequence));
        var state = await grain.GetStateAsync();
        Assert.Equal(reference.H, state.Hidden);
        Assert.Equal(reference.C, state.Cell);
    }
}
