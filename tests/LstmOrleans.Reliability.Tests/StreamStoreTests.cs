using LstmOrleans.Abstractions;
using LstmOrleans.Grains;
using LstmOrleans.Persistence.Postgres;
using LstmOrleans.Persistence.Sqlite;
using LstmOrleans.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.Runtime;
using Orleans.Storage;
using Orleans.TestingHost;
using StackExchange.Redis;

namespace LstmOrleans.Reliability.Tests;

/// <summary>
/// The stream grain itself on every store a silo can be given (SQLite, Redis, PostgreSQL): state and history across
/// chunk boundaries, single values and a batch that closes several chunks at once, through deactivation, a whole-cluster
/// restart and a delete. SQLite and PostgreSQL write the closed chunks in one atomic unit with the core; on Redis the
/// core goes first and carries them until they are copied into their records; the results must be the same, bit for bit, as the engine-only reference.
/// </summary>
public abstract class StreamStoreTests
{
    private const string Model = "stores";
    private const int Capacity = 40, Chunk = 8;

    protected abstract void AddStore(ISiloBuilder silo);

    private string ServiceId { get; } = $"stream-stores-{Guid.NewGuid():N}";

    private async Task<InProcessTestCluster> StartAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.Options.ServiceId = ServiceId;                    // storage keys include it: the restart must find the same rows
        builder.Options.ClusterId = ServiceId;
        builder.ConfigureSilo((_, silo) =>
        {
            AddStore(silo);
            silo.AddLstmOrleans(configureStreams: o =>
            {
                o.HistoryCapacity = Capacity;
                o.HistoryChunkSize = Chunk;
            });
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    private static async Task AssertStreamAsync(IStreamGrain stream, ReferenceStream reference, int streamIndex, long sent)
    {
        var state = await stream.GetStateAsync();
        Assert.Equal(sent, state.Summary.StepCount);
        Assert.Equal(sent, state.Summary.LastSequence);
        Assert.Equal(Bits.Of(reference.H), Bits.Of(state.Hidden));
        Assert.Equal(Bits.Of(reference.C), Bits.Of(state.Cell));
        var history = await stream.GetHistoryAsync(int.MaxValue);
        long retained = Math.Min(sent, Capacity);
        Assert.Equal(Enumerable.Range(1, (int)retained).Select(i => sent - retained + i), history.Select(o => o.Sequence));
        Assert.All(history, o => Assert.Equal(Signals.Obs(streamIndex, o.Sequence).Values, o.Values));
        Assert.All(history, o => Assert.Equal(Signals.Obs(streamIndex, o.Sequence).Timestamp, o.Timestamp));
    }

    protected async Task StateAndHistorySurviveDeactivationRestartAndDeleteCore()
    {
        var cluster = await StartAsync();
        try
        {
            await cluster.Client.GetGrain<IModelGrain>(Model).CreateAsync(Signals.Config());
            var weights = await cluster.Client.GetGrain<IModelGrain>(Model).GetActiveWeightsAsync();
            var reference = new ReferenceStream(weights.Config, ReferenceStream.ToEngine(weights));
            const int streamIndex = 4;
            var stream = cluster.Client.GetGrain<IStreamGrain>("plant-1/boiler-4/temp");
            await stream.BindAsync(Model);
            long sent = 0;
            async Task SendSinglesAsync(int count)
            {
                for (int i = 0; i < count; i++)
                {
                    var o = Signals.Obs(streamIndex, ++sent);
                    Assert.Equal(Bits.Of(reference.Step(o.Values)), Bits.Of((await stream.IngestAsync(o)).Predictions));
                }
            }
            async Task SendBatchAsync(int count)
            {
                var batch = Enumerable.Range(1, count).Select(i => Signals.Obs(streamIndex, sent + i)).ToArray();
                sent += count;
                var results = await stream.IngestBatchAsync(batch);
                Assert.Equal(batch.Select(o => Bits.Of(reference.Step(o.Values))), results.Select(r => Bits.Of(r.Predictions)));
            }

            await SendSinglesAsync(13);
            await AssertStreamAsync(stream, reference, streamIndex, sent);
            await SendBatchAsync(3 * Chunk + 5);                 // closes four chunks in one write (8..39)
            await SendSinglesAsync(2 * Chunk);
            await AssertStreamAsync(stream, reference, streamIndex, sent);
            await SendBatchAsync(Capacity + 2 * Chunk + 1);      // more than N at once: the oldest closed chunks are never written
            await AssertStreamAsync(stream, reference, streamIndex, sent);

            await cluster.DeactivateAsync(stream);
            await AssertStreamAsync(stream, reference, streamIndex, sent);

            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
            cluster = await StartAsync();
            stream = cluster.Client.GetGrain<IStreamGrain>("plant-1/boiler-4/temp");
            await AssertStreamAsync(stream, reference, streamIndex, sent);
            await SendSinglesAsync(Chunk + 3);
            await AssertStreamAsync(stream, reference, streamIndex, sent);

            await stream.DeleteAsync();
            var storage = cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(LstmOrleansNames.StorageName);
            var grainId = stream.GetGrainId();
            foreach (var name in new[] { "stream", "history" }.Concat(Enumerable.Range(0, Capacity / Chunk + 3).Select(i => $"history.{i}")))
            {
                var record = new GrainState<object>();
                await storage.ReadStateAsync(name, grainId, record);
                Assert.False(record.RecordExists, $"{name} still exists after the delete");
            }
            Assert.Empty(await stream.GetHistoryAsync(int.MaxValue));
            Assert.Equal(0, (await stream.GetSummaryAsync()).StepCount);
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }
}

public sealed class SqliteStreamStoreTests : StreamStoreTests, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"lstm-stream-store-{Guid.NewGuid():N}");

    public SqliteStreamStoreTests() => Directory.CreateDirectory(_directory);

    protected override void AddStore(ISiloBuilder silo)
    {
        silo.AddSqliteGrainStorage(LstmOrleansNames.StorageName, (SqliteGrainStorageOptions o) => o.DataSource = Path.Combine(_directory, "state.db"));
        silo.AddStreamStateCodec<SqliteGrainStorageOptions>(LstmOrleansNames.StorageName);
    }

    [Fact] public Task StateAndHistorySurviveDeactivationRestartAndDelete() => StateAndHistorySurviveDeactivationRestartAndDeleteCore();

    public void Dispose()
    {
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}

public sealed class RedisStreamStoreTests(RedisServerFixture redis) : StreamStoreTests, IClassFixture<RedisServerFixture>
{
    protected override void AddStore(ISiloBuilder silo)
    {
        silo.AddRedisGrainStorage(LstmOrleansNames.StorageName, o => o.ConfigurationOptions = ConfigurationOptions.Parse(redis.ConfigurationString));
        silo.AddStreamStateCodec<Orleans.Persistence.RedisStorageOptions>(LstmOrleansNames.StorageName);
    }

    [RedisFact] public Task StateAndHistorySurviveDeactivationRestartAndDelete() => StateAndHistorySurviveDeactivationRestartAndDeleteCore();
}

public sealed class PostgresStreamStoreTests(PostgresServerFixture postgres) : StreamStoreTests, IClassFixture<PostgresServerFixture>
{
    protected override void AddStore(ISiloBuilder silo)
    {
        silo.AddPostgresGrainStorage(LstmOrleansNames.StorageName, (PostgresGrainStorageOptions o) => o.ConnectionString = postgres.ConnectionString);
        silo.AddStreamStateCodec<PostgresGrainStorageOptions>(LstmOrleansNames.StorageName);
    }

    [PostgresFact] public Task StateAndHistorySurviveDeactivationRestartAndDelete() => StateAndHistorySurviveDeactivationRestartAndDeleteCore();
}
