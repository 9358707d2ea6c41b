using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Storage;
using LstmOrleans.Persistence.Postgres;
using LstmOrleans.Persistence.Sqlite;
using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Persistence;
using Orleans.Storage;
using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>
/// The silo host (<see cref="SiloHostingExtensions.UseLstmOrleansSilo"/>, used by the silo, the demo and the bench) gives
/// the "lstm" storage of every provider the stream-record codec, over the provider's Orleans binary serializer.
/// Builds the host without starting it, so no database or server is needed.
/// </summary>
public sealed class StateCodecWiringTests
{
    /// <summary>Checks the "lstm" storage serializer of a host built for <paramref name="provider"/> (while the host lives).</summary>
    private static void AssertCodecOverBinary<TOptions>(string provider) where TOptions : class, IStorageProviderSerializerOptions
    {
        var settings = new SiloSettings();
        settings.Storage.Provider = provider;
        settings.Storage.DataFolder = Path.Combine(Path.GetTempPath(), "lstm-codec-wiring-" + Guid.NewGuid().ToString("N"));
        settings.ConnectionStrings.Redis = "127.0.0.1:1";
        settings.ConnectionStrings.Postgres = "Host=127.0.0.1;Port=1;Username=none";
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleans(silo => silo.UseLstmOrleansSilo(settings));
        using var host = builder.Build();
        var serializer = host.Services.GetRequiredService<IOptionsMonitor<TOptions>>().Get(LstmOrleansNames.StorageName).GrainStorageSerializer;
        var codec = Assert.IsType<StreamStateCodecSerializer>(serializer);
        Assert.IsNotType<StreamStateCodecSerializer>(codec.Inner);
        // The inner serializer writes Orleans' binary format (not JSON): a string round-trips and is not JSON text.
        var bytes = codec.Inner.Serialize("probe").ToArray();
        Assert.NotEqual((byte)'"', bytes[0]);
        Assert.Equal("probe", codec.Inner.Deserialize<string>(new BinaryData(bytes)));
    }

    [Fact] public void Memory_store_uses_the_codec() => AssertCodecOverBinary<LocalMemoryGrainStorageOptions>(StorageSettings.Memory);

    [Fact] public void Sqlite_store_uses_the_codec() => AssertCodecOverBinary<SqliteGrainStorageOptions>(StorageSettings.Sqlite);

    [Fact] public void Postgres_store_uses_the_codec() => AssertCodecOverBinary<PostgresGrainStorageOptions>(StorageSettings.Postgres);

    [Fact] public void Redis_store_uses_the_codec() => AssertCodecOverBinary<RedisStorageOptions>(StorageSettings.Redis);
}
