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
public sealed class PostgresGrainStorageTests(PostgresServerFixture postgres) : GroupCommitProviderTests
{
    // A fresh table per test: instances opened on it share it, as silos of one service would.
    protected override string NewLocation() => $"t_{Guid.NewGuid():N}";

    protected override async Task<ProviderUnderTest> OpenProviderAsync(string location, Func<int, ValueTask>? onBeforeCommit = null, string serviceId = "service-a")
    {
        var storage = await OpenAsync(o => o.OnBeforeCommit = onBeforeCommit, serviceId, table: location);
        return new ProviderUnderTest(storage, () => storage.CommittedOperations, () => storage.FailedBatches, storage.DisposeAsync);
    }

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

    [PostgresFact] public Task PooledPayloadsNeverLeakBetweenWrites() => PooledPayloadsNeverLeakBetweenWritesCore();

    [PostgresFact] public Task CompanionsCommitWithTheirGuardedWriteOrNotAtAll() => CompanionsCommitWithTheirGuardedWriteOrNotAtAllCore();

    [PostgresFact] public Task StaleEtagFromSecondInstanceConflictsAndChangesNothing() => StaleEtagFromSecondInstanceConflictsAndChangesNothingCore();

    [PostgresFact] public Task MalformedEtagsAreRejectedAndWriteNothing() => MalformedEtagsAreRejectedAndWriteNothingCore();

    [PostgresFact] public Task ClearLeavesTombstoneThatStillRejectsWritersFromBeforeTheClear() => ClearLeavesTombstoneThatStillRejectsWritersFromBeforeTheClearCore();

    [PostgresFact] public Task ClearOfMissingRecordIsANoOpButClearWithoutEtagOfExistingRecordConflicts() => ClearOfMissingRecordIsANoOpButClearWithoutEtagOfExistingRecordConflictsCore();

    [PostgresFact] public Task ConflictingWriteInABatchFailsAloneAndTheRestCommits() => ConflictingWriteInABatchFailsAloneAndTheRestCommitsCore();

    [PostgresFact] public Task FailedCommitFailsEveryCallInTheBatchChangesNothingAndRetryConverges() => FailedCommitFailsEveryCallInTheBatchChangesNothingAndRetryConvergesCore();

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
