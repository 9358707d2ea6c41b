using LstmOrleans.Persistence.Sqlite;
using Orleans.Storage;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

/// <summary>A temp folder for SQLite files, removed after the test class.</summary>
public sealed class SqliteFolderFixture : IDisposable
{
    public string Directory { get; } = Path.Combine(Path.GetTempPath(), $"lstmorleans-sqlite-{Guid.NewGuid():N}");

    public string NewDatabasePath() => Path.Combine(Directory, $"{Guid.NewGuid():N}.db");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        LstmOrleans.Tests.Shared.ExternalServer.TryDeleteDirectory(Directory);
    }
}

[Collection(ClusterCollection.Name)]
public sealed class SqliteDurabilityTests(SqliteFolderFixture folder) : GrainStorageDurabilityTests, IClassFixture<SqliteFolderFixture>
{
    // One database file for the class: tests stay apart through their ServiceIds, as services sharing a file would.
    private readonly string _path = Path.Combine(folder.Directory, "durability.db");

    protected override string Prefix => "sqlite";

    protected override Dictionary<string, string?> Settings() => new()
    {
        [StorageSettings.Kind] = "sqlite",
        [StorageSettings.SqlitePath] = _path,
    };

    [Fact] public Task WriteDeactivateAndReadBack() => WriteDeactivateAndReadBackCore();

    [Fact] public Task WholeClusterRestartKeepsState() => WholeClusterRestartKeepsStateCore();

    [Fact] public Task StaleEtagLosesAcrossTwoSilos() => StaleEtagLosesAcrossTwoSilosCore();

    [Fact] public Task ClearRemovesState() => ClearRemovesStateCore();

    [Fact] public Task ManyGrainsWritingConcurrentlyAllPersist() => ManyGrainsWritingConcurrentlyAllPersistCore();
}

[Collection(ClusterCollection.Name)]
public sealed class SqliteGroupCommitClusterTests(SqliteFolderFixture folder) : GroupCommitClusterTests, IClassFixture<SqliteFolderFixture>
{
    private readonly string _path = Path.Combine(folder.Directory, "group-commit.db");

    protected override string Prefix => "sqlite";

    protected override Dictionary<string, string?> Settings(string faultKey) => new()
    {
        [StorageSettings.Kind] = "sqlite",
        [StorageSettings.SqlitePath] = _path,
        [StorageSettings.FaultKey] = faultKey,
    };

    protected override (long Batches, long Operations, int Largest, long Failed) Statistics(IGrainStorage storage)
    {
        var sqlite = Assert.IsType<SqliteGrainStorage>(storage);
        return (sqlite.CommittedBatches, sqlite.CommittedOperations, sqlite.LargestBatch, sqlite.FailedBatches);
    }

    [Fact] public Task ConcurrentWritesAreGroupCommitted() => ConcurrentWritesAreGroupCommittedCore();

    [Fact] public Task InjectedCommitFailureLeavesStateAndRetryConverges() => InjectedCommitFailureLeavesStateAndRetryConvergesCore();

    [Fact] public Task FailedBatchUnderLoadLeavesOnlyOldOrNewValues() => FailedBatchUnderLoadLeavesOnlyOldOrNewValuesCore();
}
