using LstmOrleans.Persistence.Postgres;
using LstmOrleans.Tests.Shared;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Orleans;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Storage;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

[Collection(ClusterCollection.Name)]
public sealed class PostgresDurabilityTests(PostgresServerFixture postgres) : GrainStorageDurabilityTests
{
    protected override string Prefix => "postgres";

    protected override Dictionary<string, string?> Settings() => new()
    {
        [StorageSettings.Kind] = "postgres",
        [StorageSettings.PostgresConnectionString] = postgres.ConnectionString,
    };

    [PostgresFact] public Task WriteDeactivateAndReadBack() => WriteDeactivateAndReadBackCore();

    [PostgresFact] public Task WholeClusterRestartKeepsState() => WholeClusterRestartKeepsStateCore();

    [PostgresFact] public Task StaleEtagLosesAcrossTwoSilos() => StaleEtagLosesAcrossTwoSilosCore();

    [PostgresFact] public Task ClearRemovesState() => ClearRemovesStateCore();

    [PostgresFact] public Task ManyGrainsWritingConcurrentlyAllPersist() => ManyGrainsWritingConcurrentlyAllPersistCore();
}

[Collection(ClusterCollection.Name)]
public sealed class PostgresGroupCommitClusterTests(PostgresServerFixture postgres) : GroupCommitClusterTests
{
    protected override string Prefix => "postgres";

    protected override Dictionary<string, string?> Settings(string faultKey) => new()
    {
        [StorageSettings.Kind] = "postgres",
        [StorageSettings.PostgresConnectionString] = postgres.ConnectionString,
        [StorageSettings.FaultKey] = faultKey,
    };

    protected override (long Batches, long Operations, int Largest, long Failed) Statistics(IGrainStorage storage)
    {
        var pg = Assert.IsType<PostgresGrainStorage>(storage);
        return (pg.CommittedBatches, pg.CommittedOperations, pg.LargestBatch, pg.FailedBatches);
    }

    [PostgresFact] public Task ConcurrentWritesAreGroupCommitted() => ConcurrentWritesAreGroupCommittedCore();

    [PostgresFact] public Task InjectedCommitFailureLeavesStateAndRetryConverges() => InjectedCommitFailureLeavesStateAndRetryConvergesCore();

    [PostgresFact] public Task FailedBatchUnderLoadLeavesOnlyOldOrNewValues() => FailedBatchUnderLoadLeavesOnlyOldOrNewValuesCore();
}

/// <summary>The PostgreSQL provider used directly, without a cluster.</summary>
[Collection(ClusterCollection.Name)]
public sealed class PostgresGrainStorageTests(PostgresServerFixture postgres)
{
    private const string StateName = "sensor";

    private async Task<PostgresGrainStorage> OpenAsync(Action<PostgresGrainStorageOptions>? configure = null, string serviceId = "service-a", string table = "lstm_grain_state")
    {
        var options = new PostgresGrainStorageOptions { ConnectionString = postgres.ConnectionString, TableName = table, GrainStorageSerializer = TestSerializer.Instance };
        configure?.Invoke(options);
        var storage = new PostgresGrainStorage(
            $"pg-{Guid.NewGuid():N}",
            options,
            Options.Create(new ClusterOptions { ServiceId = serviceId, ClusterId = "test" }),
            NullLogger<PostgresGrainStorage>.Instance);
        await storage.InitializeAsync(CancellationToken.None);
        return storage;
    }

    private static GrainId NewGrainId() => GrainId.Create("sensor", Guid.NewGuid().ToString("N"));

    private static async Task<GrainState<SensorTestState>> ReadAsync(IGrainStorage storage, GrainId grainId)
    {
        var state = new GrainState<SensorTestState>(new SensorTestState());
        await storage.ReadStateAsync(StateName, grainId, state);
        return state;
    }

    private static SensorTestState Sample(long sequence, string note = "") => GrainStorageDurabilityTests.Sample(sequence, note: note);

    [PostgresFact]
    public async Task CreatesItsTableAndRoundTripsAcrossInstances()
    {
        var table = $"t_{Guid.NewGuid():N}";
        var grainId = NewGrainId();
        await using (var writer = await OpenAsync(table: table))
        {
            var state = new GrainState<SensorTestState>(Sample(1));
            await writer.WriteStateAsync(StateName, grainId, state);
            Assert.Equal("1", state.ETag);
        }

        await using var reader = await OpenAsync(table: table);
        var read = await ReadAsync(reader, grainId);
        Assert.True(read.RecordExists);
        Assert.Equal("1", read.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(1), read.State);

        await using var connection = new NpgsqlConnection(postgres.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT service_id, state_name, grain_id, octet_length(payload) FROM {table}", connection);
        await using var row = await command.ExecuteReaderAsync();
        Assert.True(await row.ReadAsync());
        Assert.Equal("service-a", row.GetString(0));
        Assert.Equal(StateName, row.GetString(1));
        Assert.Equal(grainId.ToString(), row.GetString(2));
        Assert.InRange(row.GetInt32(3), 32, 80); // Orleans binary, not JSON
    }

    [PostgresFact]
    public async Task StaleEtagFromSecondInstanceConflictsAndChangesNothing()
    {
        await using var a = await OpenAsync();
        await using var b = await OpenAsync();
        var grainId = NewGrainId();
        await a.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(1)));
        var viaA = await ReadAsync(a, grainId);
        var viaB = await ReadAsync(b, grainId);

        viaA.State = Sample(2, "A");
        await a.WriteStateAsync(StateName, grainId, viaA);
        viaB.State = Sample(3, "B");
        await Assert.ThrowsAsync<InconsistentStateException>(() => b.WriteStateAsync(StateName, grainId, viaB));
        Assert.Equal("1", viaB.ETag);
        await Assert.ThrowsAsync<InconsistentStateException>(() => b.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(9))));

        var stored = await ReadAsync(b, grainId);
        GrainStorageDurabilityTests.AssertSameState(Sample(2, "A"), stored.State);
        Assert.Equal("2", stored.ETag);
    }

    [PostgresFact]
    public async Task ClearLeavesTombstoneThatRejectsWritersFromBeforeTheClear()
    {
        await using var storage = await OpenAsync();
        var grainId = NewGrainId();
        var state = new GrainState<SensorTestState>(Sample(1));
        await storage.WriteStateAsync(StateName, grainId, state);
        var etagBeforeClear = state.ETag;
        await storage.ClearStateAsync(StateName, grainId, state);
        Assert.Equal("2", state.ETag);
        Assert.False(state.RecordExists);

        var read = await ReadAsync(storage, grainId);
        Assert.False(read.RecordExists);
        Assert.Equal("2", read.ETag);
        await Assert.ThrowsAsync<InconsistentStateException>(() =>
            storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(7), etagBeforeClear)));

        var missing = new GrainState<SensorTestState>(new SensorTestState());
        await storage.ClearStateAsync(StateName, NewGrainId(), missing);
        Assert.Null(missing.ETag);
        await Assert.ThrowsAsync<InconsistentStateException>(() =>
            storage.ClearStateAsync(StateName, grainId, new GrainState<SensorTestState>(new SensorTestState())));
    }

    [PostgresFact]
    public async Task BatchCommitsTogetherAConflictFailsAloneAndAFailedCommitChangesNothing()
    {
        var gate = new CommitGate(1, 3);
        gate.FailingCommits.Add(4);
        await using var storage = await OpenAsync(o => o.OnBeforeCommit = gate.BeforeCommit);
        var contested = NewGrainId();
        var first = storage.WriteStateAsync(StateName, contested, new GrainState<SensorTestState>(Sample(1)));
        await gate.Entered;

        // Batch 2: fifty new grains plus two writers racing on one grain with the same etag.
        var ids = Enumerable.Range(0, 50).Select(_ => NewGrainId()).ToArray();
        var states = ids.Select((_, i) => new GrainState<SensorTestState>(Sample(10 + i))).ToArray();
        var writes = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])).ToList();
        var winner = new GrainState<SensorTestState>(Sample(2, "winner"), "1");
        var loser = new GrainState<SensorTestState>(Sample(3, "loser"), "1");
        var winnerWrite = storage.WriteStateAsync(StateName, contested, winner);
        var loserWrite = storage.WriteStateAsync(StateName, contested, loser);
        gate.Release();
        await first;
        await Task.WhenAll(writes);
        await winnerWrite;
        await Assert.ThrowsAsync<InconsistentStateException>(() => loserWrite);
        Assert.Equal([1, 52], gate.BatchSizes);
        GrainStorageDurabilityTests.AssertSameState(Sample(2, "winner"), (await ReadAsync(storage, contested)).State);

        // Batch 4 fails inside its transaction: every call fails, nothing changes, etags stay.
        var etags = states.Select(s => s.ETag).ToArray();
        var holder = storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(0)));
        await gate.EnteredCommit(3); // batch 3 is held open, so all fifty updates queue into batch 4
        foreach (var (state, i) in states.Select((s, i) => (s, i)))
        {
            state.State = Sample(500 + i);
        }

        var failing = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])).ToArray();
        gate.ReleaseCommit(3);
        await holder;
        foreach (var write in failing)
        {
            await Assert.ThrowsAsync<OrleansException>(() => write);
        }

        for (var i = 0; i < ids.Length; i++)
        {
            Assert.Equal(etags[i], states[i].ETag);
            GrainStorageDurabilityTests.AssertSameState(Sample(10 + i), (await ReadAsync(storage, ids[i])).State);
        }

        // The writer reconnects after the failure; the retry converges.
        await Task.WhenAll(ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])));
        for (var i = 0; i < ids.Length; i++)
        {
            GrainStorageDurabilityTests.AssertSameState(Sample(500 + i), (await ReadAsync(storage, ids[i])).State);
        }

        Assert.Equal(1, storage.FailedBatches);
        Assert.Equal(50, gate.BatchSizes[3]);
    }

    [Fact]
    public void InvalidOptionsAreRejectedWithClearErrors()
    {
        var options = new PostgresGrainStorageOptions { ConnectionString = "Host=127.0.0.1", GrainStorageSerializer = TestSerializer.Instance };
        new PostgresGrainStorageOptionsValidator(options, "ok").ValidateConfiguration();

        options.ConnectionString = "";
        Assert.Contains("ConnectionString is required", Assert.Throws<OrleansConfigurationException>(() => new PostgresGrainStorageOptionsValidator(options, "p").ValidateConfiguration()).Message);
        options.ConnectionString = "Host=127.0.0.1;NoSuchKeyword=1";
        Assert.Contains("ConnectionString is malformed", Assert.Throws<OrleansConfigurationException>(() => new PostgresGrainStorageOptionsValidator(options, "p").ValidateConfiguration()).Message);
        options.ConnectionString = "Host=127.0.0.1";
        options.TableName = "x y";
        Assert.Contains("must be a plain identifier", Assert.Throws<OrleansConfigurationException>(() => new PostgresGrainStorageOptionsValidator(options, "p").ValidateConfiguration()).Message);
        options.TableName = "ok";
        options.MaxBatchSize = 0;
        Assert.Contains("MaxBatchSize must be between 1 and 100000", Assert.Throws<OrleansConfigurationException>(() => new PostgresGrainStorageOptionsValidator(options, "p").ValidateConfiguration()).Message);
    }
}
