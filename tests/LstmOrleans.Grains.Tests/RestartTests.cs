using LstmOrleans.Abstractions;
using Orleans.Hosting;
using Orleans.TestingHost;

namespace LstmOrleans.Grains.Tests;

/// <summary>A one-silo cluster whose "lstm" storage is a real SQLite database file, so it survives the silo.</summary>
public sealed class RestartClusterFixture : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "lstm-grains-tests-" + Guid.NewGuid().ToString("N"));

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.Options.ServiceId = "lstm-grains-restart-tests";
        builder.Options.ClusterId = "lstm-grains-restart-cluster";
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddSqliteGrainStorage(LstmOrleansNames.StorageName, (LstmOrleans.Persistence.Sqlite.SqliteGrainStorageOptions o) => o.DataSource = Path.Combine(_directory, "grains.db"));
            silo.AddLstmOrleans();
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}

public sealed class RestartTests(RestartClusterFixture fixture) : IClassFixture<RestartClusterFixture>
{
    [Fact]
    public async Task Stream_and_model_state_survive_a_silo_restart()
    {
        var client = fixture.Cluster.Client;
        var config = TestSupport.SmallConfig(seed: 21);
        // No explicit bind: the stream uses the default model.
        var model = client.GetGrain<IModelGrain>(LstmOrleansNames.DefaultModelName);
        await model.CreateAsync(config);
        var info = await model.GetInfoAsync();
        long v2 = await model.PublishAsync(new PublishRequest(Enumerable.Repeat(0.05f, info.ParameterCount).ToArray(), "second"));
        var weights = await model.GetActiveWeightsAsync();

        var stream = client.GetGrain<IStreamGrain>("restart/stream");
        var reference = new ReferenceStream(config, TestSupport.ToEngine(weights));
        for (long seq = 1; seq <= 20; seq++)
        {
            var result = await stream.IngestAsync(TestSupport.Obs(seq));
            Assert.Equal(reference.Step(TestSupport.Obs(seq).Values), result.Predictions);
        }
        Assert.Equal(LstmOrleansNames.DefaultModelName, (await stream.GetSummaryAsync()).ModelName);
        var before = await TestSupport.FullState(stream);

        var oldSilo = fixture.Cluster.Silos[0].SiloAddress;
        await fixture.Cluster.RestartSiloAsync(fixture.Cluster.Silos[0]);
        Assert.Single(fixture.Cluster.Silos);
        Assert.NotEqual(oldSilo, fixture.Cluster.Silos[0].SiloAddress); // a new silo (new generation), so no activation survived
        await TestSupport.Eventually(async () =>
        {
            try { await stream.GetSummaryAsync(); return true; } catch (Exception) { return false; }
        }, ok => ok, TimeSpan.FromSeconds(30));

        Assert.Equal(before, await TestSupport.FullState(stream));
        var infoAfter = await model.GetInfoAsync();
        Assert.Equal(v2, infoAfter.ActiveVersion);
        Assert.Equal([1L, 2L], (await model.ListVersionsAsync()).Select(v => v.Version));

        // A retry of the last observation is still recognised, and stepping continues exactly.
        Assert.True((await stream.IngestAsync(TestSupport.Obs(20))).Duplicate);
        var next = await stream.IngestAsync(TestSupport.Obs(21));
        Assert.Equal(reference.Step(TestSupport.Obs(21).Values), next.Predictions);
        Assert.Equal(v2, next.WeightsVersion);
        Assert.Equal(21, next.StepCount);
    }
}
