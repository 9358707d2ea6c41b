using System.Text;
using Microsoft.Data.Sqlite;
using Orleans;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

/// <summary>AddSqliteGrainStorage wiring inside a real silo: validation at start and the default serializer.</summary>
[Collection(ClusterCollection.Name)]
public sealed class SqliteRegistrationTests(SqliteFolderFixture folder) : IClassFixture<SqliteFolderFixture>
{
    [Fact]
    public async Task SiloWithoutDataSourceFailsToStartNamingTheSetting()
    {
        var settings = new Dictionary<string, string?> { [StorageSettings.Kind] = "sqlite" };
        var error = await Assert.ThrowsAnyAsync<Exception>(() => StorageCluster.StartAsync(StorageCluster.NewServiceId("sqlite"), settings));
        Assert.Contains("SqliteGrainStorageOptions.DataSource is required", error.ToString());
    }

    [Fact]
    public async Task SiloStoresStateWithOrleansBinarySerializerByDefault()
    {
        var path = folder.NewDatabasePath();
        var serviceId = StorageCluster.NewServiceId("sqlite");
        await using (var cluster = await StorageCluster.StartAsync(serviceId, new Dictionary<string, string?>
        {
            [StorageSettings.Kind] = "sqlite",
            [StorageSettings.SqlitePath] = path,
        }))
        {
            await cluster.GrainFactory.GetGrain<IDurableTestGrain>("binary").WriteAsync(GrainStorageDurabilityTests.Sample(3));
        }

        await using var connection = new SqliteConnection($"Data Source={path}");
        connection.Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT service_id, state_name, grain_id, version, payload FROM lstm_grain_state";
        await using var reader = command.ExecuteReader();
        Assert.True(reader.Read());
        Assert.Equal(serviceId, reader.GetString(0));
        Assert.Equal("sensor", reader.GetString(1));
        Assert.Contains("binary", reader.GetString(2));
        Assert.Equal(1, reader.GetInt64(3));
        var payload = (byte[])reader.GetValue(4);
        Assert.InRange(payload.Length, 32, 80);
        Assert.NotEqual((byte)'{', payload[0]);
        Assert.DoesNotContain("SensorTestState", Encoding.UTF8.GetString(payload));
        Assert.False(reader.Read());
    }
}
