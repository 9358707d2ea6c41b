using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Training;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.TestingHost;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// Builds in-process clusters for the training tests: grain storage and reminders live in static shared stores (so
/// a cluster can be stopped and a new one started on the same ServiceId, like a restart against a database), the
/// reminder service accepts short periods, and training is on with a few registry shards.
/// </summary>
internal static class TrainingCluster
{
    /// <summary>
    /// Rows a round trains on from a stream that has taken <paramref name="rows"/> steps since binding, all of them in its
    /// window: its first rows, normalised with statistics of fewer than MinStatisticsCount observations, are cut.
    /// </summary>
    public static long UsedRows(int rows) => rows - Math.Min(rows, new TrainingGrainOptions().MinStatisticsCount - 1);

    /// <summary>Kills the cluster's only silo: its activations end without deactivating, like a process that crashed.</summary>
    public static async Task CrashAsync(InProcessTestCluster cluster)
    {
        await cluster.KillSiloAsync(cluster.Silos[0]);
        await cluster.DisposeAsync();
    }

    /// <param name="configureSilo">Runs last on every silo (e.g. to wrap the grain storage).</param>
    public static async Task<InProcessTestCluster> StartAsync(string serviceId, int silos, Action<TrainingGrainOptions>? configure = null,
        Action<ISiloBuilder>? configureSilo = null, Action<IClientBuilder>? configureClient = null)
    {
        var builder = new InProcessTestClusterBuilder((short)silos);
        builder.Options.ServiceId = serviceId;
        builder.Options.ClusterId = serviceId + "-cluster";
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddKeyedSingleton<IGrainStorage>(LstmOrleansNames.StorageName,
                (sp, _) => new SharedGrainStorage(serviceId, sp.GetRequiredService<Serializer>()));
            silo.AddMemoryGrainStorage("PubSubStore");
            silo.AddMemoryStreams(LstmOrleansNames.StreamProviderName);
            silo.Services.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider, CapturedLog>();
            silo.Services.Configure<Microsoft.Extensions.Logging.LoggerFilterOptions>(o => o.Rules.Add(new(null, "LstmOrleans.Grains.Training", Microsoft.Extensions.Logging.LogLevel.Debug, null)));
            silo.AddReminders();
            silo.Services.AddSingleton<IReminderTable>(_ => new SharedReminderTable(serviceId));
            silo.Services.Configure<ReminderOptions>(o =>
            {
                o.MinimumReminderPeriod = TimeSpan.FromSeconds(1);
                o.RefreshReminderListPeriod = TimeSpan.FromSeconds(2);
                o.InitializationTimeout = TimeSpan.FromSeconds(30);
            });
            silo.AddLstmOrleans(
                configureStreams: o => { o.HistoryCapacity = 256; o.MaxBatchSize = 1024; },
                configureCache: o => o.RefreshInterval = TimeSpan.FromSeconds(2));
            silo.AddLstmOrleansTraining(o =>
            {
                o.RegistryShards = 4;
                o.ReportEverySteps = 16;
                o.CheckInterval = TimeSpan.FromSeconds(2);
                o.RegistryFlushInterval = TimeSpan.FromSeconds(1);
                o.AutoStart = false;
                configure?.Invoke(o);
            });
            configureSilo?.Invoke(silo);
        });
        builder.ConfigureClient(client =>
        {
            client.AddMemoryStreams(LstmOrleansNames.StreamProviderName);
            configureClient?.Invoke(client);
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }
}

/// <summary>Noisy sines of different periods, phases, amplitudes and offsets, ingested through the stream grains.</summary>
internal static class SineStreams
{
    public static ModelConfig Config { get; } = new(InputSize: 1, HiddenSize: 16, Layers: 1, Horizons: 4, Features: ["value"], Seed: 7);

    public static float Value(int stream, long t)
    {
        var r = new Random(stream * 7919 + 13);
        double period = 10 + r.NextDouble() * 8;
        double phase = r.NextDouble() * 2 * Math.PI;
        double amplitude = 0.5 + r.NextDouble() * 4;
        double offset = r.NextDouble() * 20 - 10;
        double noise = amplitude * 0.05 * Gaussian(new Random(HashCode.Combine(stream, t)));
        return (float)(offset + amplitude * Math.Sin(2 * Math.PI * t / period + phase) + noise);
    }

    private static double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    public static string Id(string model, int stream) => $"{model}/sensor-{stream}";

    /// <summary>Binds each stream and ingests observations [from, from + count) in one batch per stream.</summary>
    public static async Task IngestAsync(IGrainFactory grains, string model, int streams, long from, int count)
    {
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        await Task.WhenAll(Enumerable.Range(0, streams).Select(async s =>
        {
            var grain = grains.GetGrain<IStreamGrain>(Id(model, s));
            await grain.BindAsync(model);
            var batch = Enumerable.Range(0, count)
                .Select(i => from + i)
                .Select(t => new Observation(t, start.AddSeconds(t), [Value(s, t)]))
                .ToArray();
            await grain.IngestBatchAsync(batch);
        }));
    }
}
