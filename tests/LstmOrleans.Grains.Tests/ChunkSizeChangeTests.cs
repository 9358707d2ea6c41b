using LstmOrleans.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.Storage;
using Orleans.TestingHost;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// Changing <see cref="StreamGrainOptions.HistoryChunkSize"/> between silo runs (as the session-12 default change from 32
/// to 64 does on upgrade) over one SQLite file: a stream keeps the chunk size of its generation, so its history reads
/// back whole after the change; a reset starts a generation with the new size and a smaller ring; deleting the stream
/// then removes every record, including the old generation's slots past the new ring.
/// </summary>
public sealed class ChunkSizeChangeTests : IAsyncLifetime
{
    private const int Capacity = 32, OldChunk = 4, NewChunk = 16; // rings of 32/4+1 = 9 and 32/16+1 = 3 slots
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "lstm-chunk-change-" + Guid.NewGuid().ToString("N"));

    private Task<InProcessTestCluster> StartAsync(int chunk) =>
        TestSupport.StartSingleSiloAsync("lstm-chunk-change-tests", "lstm-chunk-change-" + chunk, silo =>
        {
            silo.AddSqliteGrainStorage(LstmOrleansNames.StorageName, (LstmOrleans.Persistence.Sqlite.SqliteGrainStorageOptions o) => o.DataSource = Path.Combine(_directory, "grains.db"));
            silo.AddLstmOrleans(configureStreams: o => { o.HistoryCapacity = Capacity; o.HistoryChunkSize = chunk; });
        });

    private static Task StopAsync(InProcessTestCluster cluster) => TestSupport.StopAsync(cluster);

    private static async Task<List<int>> StoredSlotsAsync(InProcessTestCluster cluster, GrainId grainId) =>
        [.. (await TestSupport.ReadSlotsAsync(cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(LstmOrleansNames.StorageName), grainId)).Keys.Order()];

    [Fact]
    public async Task A_stream_keeps_its_chunk_size_until_reset_and_delete_removes_the_old_larger_ring()
    {
        const string Id = "chunk-change/stream";
        var cluster = await StartAsync(OldChunk);
        try
        {
            await cluster.Client.GetGrain<IModelGrain>("chunk-change").CreateAsync(TestSupport.SmallConfig(seed: 5));
            var stream = cluster.Client.GetGrain<IStreamGrain>(Id);
            await stream.BindAsync("chunk-change");
            for (long seq = 1; seq <= 60; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
            Assert.Equal(Enumerable.Range(0, 9), await StoredSlotsAsync(cluster, stream.GetGrainId())); // the whole old ring
        }
        finally
        {
            await StopAsync(cluster);
        }

        cluster = await StartAsync(NewChunk);
        try
        {
            var stream = cluster.Client.GetGrain<IStreamGrain>(Id);
            var grainId = stream.GetGrainId();
            // Same generation, same chunk of 4: the newest 32 come back whole, and stepping on keeps the old ring.
            Assert.Equal(Enumerable.Range(29, 32).Select(i => (long)i), (await stream.GetHistoryAsync(100)).Select(o => o.Sequence));
            for (long seq = 61; seq <= 70; seq++) await stream.IngestAsync(TestSupport.Obs(seq));
            Assert.Equal(Enumerable.Range(39, 32).Select(i => (long)i), (await stream.GetHistoryAsync(100)).Select(o => o.Sequence));
            Assert.Equal(Enumerable.Range(0, 9), await StoredSlotsAsync(cluster, grainId));

            // A reset starts a generation in chunks of 16: its ring is slots 0..2; the old slots 3..8 are left over.
            await stream.ResetAsync();
            for (long seq = 1; seq <= 40; seq++) await stream.IngestAsync(TestSupport.Obs(seq, seed: 2));
            Assert.Equal(Enumerable.Range(9, 32).Select(i => (long)i), (await stream.GetHistoryAsync(100)).Select(o => o.Sequence));
            Assert.Equal(TestSupport.Obs(40, seed: 2).Values, (await stream.GetHistoryAsync(1))[0].Values);
            Assert.Equal(Enumerable.Range(0, 9), await StoredSlotsAsync(cluster, grainId));

            await stream.DeleteAsync();
            Assert.Empty(await StoredSlotsAsync(cluster, grainId));
            var core = new GrainState<StreamState>();
            await cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(LstmOrleansNames.StorageName).ReadStateAsync("stream", grainId, core);
            Assert.False(core.RecordExists);
            Assert.Empty(await stream.GetHistoryAsync(100));
        }
        finally
        {
            await StopAsync(cluster);
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
        return Task.CompletedTask;
    }
}
