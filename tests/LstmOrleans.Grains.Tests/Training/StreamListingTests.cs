using LstmOrleans.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>Paged listing of a model's streams across the registry shards of a 3-silo TestingHost cluster.</summary>
[Collection(TrainingCollection.Name)]
public sealed class StreamListingTests(TrainingFixture fixture)
{
    private const int Shards = 4;   // TrainingCluster's RegistryShards

    private async Task<string[]> RegisterAsync(string model, int count)
    {
        var ids = Enumerable.Range(0, count).Select(i => $"plant-{i % 7}/sensor-{i:D3}").ToArray();
        foreach (var id in ids)
            await fixture.Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey(model, StreamRegistryKeys.ShardOf(id, Shards))).ReportAsync(id, 1);
        await TrainingFixture.WaitForRegistryAsync(fixture.Client, model, count, Shards);
        return ids;
    }

    [Fact]
    public async Task Pages_cover_every_stream_once_in_ordinal_order_across_shards()
    {
        var ids = await RegisterAsync("listing-model", 103);
        // The streams really are spread over every shard, so the listing has to merge.
        Assert.Equal(Shards, ids.Select(id => StreamRegistryKeys.ShardOf(id, Shards)).Distinct().Count());

        var registry = fixture.Client.GetGrain<IStreamRegistryGrain>("listing-model");
        var listed = new List<string>();
        string? cursor = null;
        int pages = 0;
        do
        {
            var page = await registry.ListStreamsAsync(cursor, 10);
            Assert.InRange(page.StreamIds.Length, 1, 10);
            listed.AddRange(page.StreamIds);
            cursor = page.Next;
            pages++;
            Assert.True(pages <= 11, "the listing does not terminate");
        } while (cursor is not null);

        var expected = ids.Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expected, listed);
        Assert.Equal(11, pages);   // 10 full pages and a last one of 3

        // One page that holds everything has no next cursor; a cursor between ids starts after it.
        var all = await registry.ListStreamsAsync(null, 1000);
        Assert.Equal(expected, all.StreamIds);
        Assert.Null(all.Next);
        var fromMiddle = await registry.ListStreamsAsync(expected[49] + "\0", 5);
        Assert.Equal(expected[50..55], fromMiddle.StreamIds);
        Assert.Equal(expected[54], fromMiddle.Next);
    }

    [Fact]
    public async Task A_deleted_or_rebound_stream_leaves_its_models_listing_at_once()
    {
        var client = fixture.Client;
        foreach (var model in new[] { "listing-delete-a", "listing-delete-b" })
            await client.GetGrain<IModelGrain>(model).CreateAsync(new ModelConfig(InputSize: 1, HiddenSize: 4, Layers: 1, Horizons: 1, Features: ["v"]));
        var ids = new[] { "site/kept", "site/deleted", "site/moved" };
        foreach (var id in ids)
        {
            var stream = client.GetGrain<IStreamGrain>(id);
            await stream.BindAsync("listing-delete-a");
            await stream.IngestAsync(new Observation(1, DateTimeOffset.UnixEpoch, [1f]));
        }
        await TrainingFixture.WaitForRegistryAsync(client, "listing-delete-a", 3, Shards);
        var a = client.GetGrain<IStreamRegistryGrain>("listing-delete-a");
        var b = client.GetGrain<IStreamRegistryGrain>("listing-delete-b");

        // Without unlisting they stayed listed (and sampled for training) until a round found them gone or rebound.
        await client.GetGrain<IStreamGrain>("site/deleted").DeleteAsync();
        await client.GetGrain<IStreamGrain>("site/moved").BindAsync("listing-delete-b");
        Assert.Equal(["site/kept"], (await a.ListStreamsAsync(null, 10)).StreamIds);
        await TrainingFixture.WaitForRegistryAsync(client, "listing-delete-b", 1, Shards);
        Assert.Equal(["site/moved"], (await b.ListStreamsAsync(null, 10)).StreamIds);

        // A deleted stream that is bound and written again is listed again.
        var revived = client.GetGrain<IStreamGrain>("site/deleted");
        await revived.BindAsync("listing-delete-a");
        await revived.IngestAsync(new Observation(1, DateTimeOffset.UnixEpoch, [2f]));
        await TrainingFixture.WaitForRegistryAsync(client, "listing-delete-a", 2, Shards);
        Assert.Equal(["site/deleted", "site/kept"], (await a.ListStreamsAsync(null, 10)).StreamIds);
    }

    [Fact]
    public async Task Listing_follows_removals_and_rejects_bad_page_sizes()
    {
        var ids = await RegisterAsync("listing-removal", 12);
        var registry = fixture.Client.GetGrain<IStreamRegistryGrain>("listing-removal");
        Assert.Equal(12, (await registry.ListStreamsAsync(null, 100)).StreamIds.Length);

        var gone = ids[3];
        await fixture.Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey("listing-removal", StreamRegistryKeys.ShardOf(gone, Shards))).RemoveAsync([gone]);
        var after = await registry.ListStreamsAsync(null, 100);
        Assert.Equal(ids.Where(id => id != gone).Order(StringComparer.Ordinal), after.StreamIds);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => registry.ListStreamsAsync(null, 0));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => registry.ListStreamsAsync(null, StreamRegistryKeys.MaxPageSize + 1));
        var shard = fixture.Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey("listing-removal", 0));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => shard.ListAsync(null, -1));

        // A model nobody registered with lists as empty.
        var empty = await fixture.Client.GetGrain<IStreamRegistryGrain>("listing-nobody").ListStreamsAsync(null, 10);
        Assert.Empty(empty.StreamIds);
        Assert.Null(empty.Next);
    }
}
