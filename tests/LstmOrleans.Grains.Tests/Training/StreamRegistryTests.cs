using LstmOrleans.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

[Collection(TrainingCollection.Name)]
public sealed class StreamRegistryTests(TrainingFixture fixture)
{
    [Fact]
    public void Shards_are_stable_and_spread_streams_evenly()
    {
        // Hand-computed FNV-1a over the UTF-16 bytes of "a" (0x61, 0x00): ((2166136261 ^ 0x61) * 16777619 ^ 0) * 16777619 mod 2^32.
        uint h = 2166136261;
        h = (h ^ 0x61) * 16777619;
        h = (h ^ 0x00) * 16777619;
        Assert.Equal((int)(h % 7), StreamRegistryKeys.ShardOf("a", 7));

        const int shards = 16, streams = 100_000;
        var counts = new int[shards];
        for (int i = 0; i < streams; i++) counts[StreamRegistryKeys.ShardOf($"plant-{i % 97}/sensor-{i}", shards)]++;
        Assert.All(counts, c => Assert.InRange(c, streams / shards * 0.9, streams / shards * 1.1));

        Assert.Equal(("plant/a", 3), StreamRegistryKeys.ParseShardKey(StreamRegistryKeys.ShardKey("plant/a", 3)));
        Assert.Throws<ArgumentException>(() => StreamRegistryKeys.ParseShardKey("no-shard"));
        Assert.Throws<ArgumentException>(() => StreamRegistryKeys.ParseShardKey("m/-1"));
    }

    [Fact]
    public async Task Applied_report_is_counted_when_it_returns_and_refuses_bad_input()
    {
        var shard = fixture.Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey("registry-applied", 0));
        await shard.ReportAppliedAsync("a", 3);
        await Assert.ThrowsAsync<ArgumentException>(() => shard.ReportAppliedAsync("", 1));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => shard.ReportAppliedAsync("b", -1));
        // No waiting: the call returned once the report was applied, and the refused ones changed nothing.
        Assert.Equal(new StreamRegistryShardStats(1, 3), await shard.GetStatsAsync());
    }

    [Fact]
    public async Task Shard_registers_once_counts_samples_distinct_and_removes()
    {
        var shard = fixture.Client.GetGrain<IStreamRegistryShardGrain>(StreamRegistryKeys.ShardKey("registry-test", 0));
        for (int i = 0; i < 50; i++) await shard.ReportAsync($"s{i}", 2);
        await shard.ReportAsync("s0", 5);        // already registered: only counted
        await shard.ReportAsync("", 1);          // ignored
        await shard.ReportAsync("s1", -3);       // ignored

        // Reports are one-way: wait until the last of them has been applied.
        var stats = await shard.GetStatsAsync();
        for (var deadline = DateTime.UtcNow.AddSeconds(5); stats.ObservationTotal < 105 && DateTime.UtcNow < deadline; stats = await shard.GetStatsAsync())
            await Task.Delay(50);
        Assert.Equal(50, stats.Streams);
        Assert.Equal(105, stats.ObservationTotal);

        var sample = await shard.SampleAsync(20);
        Assert.Equal(20, sample.Length);
        Assert.Equal(20, sample.Distinct().Count());
        Assert.All(sample, id => Assert.Matches("^s[0-9]+$", id));
        Assert.Equal(50, (await shard.SampleAsync(500)).Length);

        await shard.RemoveAsync(["s3", "s7", "unknown"]);
        var rest = await shard.SampleAsync(100);
        Assert.Equal(48, rest.Length);
        Assert.DoesNotContain("s3", rest);
        Assert.DoesNotContain("s7", rest);
        Assert.Equal(rest.Length, rest.Distinct().Count());
    }
}
