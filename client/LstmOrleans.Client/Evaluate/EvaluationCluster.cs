using System.Net;
using System.Net.Sockets;
using LstmOrleans.Grains;
using LstmOrleans.Grains.Training;
using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Client.Evaluate;

/// <summary>
/// A real single-silo Orleans cluster in this process, configured by the silo host's own <c>UseLstmOrleansSilo</c>
/// (memory storage, free ports, a fresh cluster and service id) plus training. The training schedule is left off
/// (<see cref="TrainingGrainOptions.AutoStart"/> = false): the evaluation decides when rounds run.
/// </summary>
internal sealed class EvaluationCluster : IAsyncDisposable
{
    private readonly IHost _host;

    private EvaluationCluster(IHost host)
    {
        _host = host;
        Grains = host.Services.GetRequiredService<IGrainFactory>();
        WeightsCache = host.Services.GetRequiredService<ModelWeightsCache>();
    }

    public IGrainFactory Grains { get; }

    /// <summary>The silo's weights cache: the replay waits on it after a publish so every stream steps with the new version.</summary>
    public ModelWeightsCache WeightsCache { get; }

    /// <param name="historyCapacity">Observations each stream keeps (its ring buffer, which is all a training round can read).</param>
    /// <param name="originScaledTargets">Rounds score targets in their origin's normalisation (<see cref="TrainingGrainOptions.OriginScaledTargets"/>).</param>
    /// <param name="balanceStreams">Rounds weight each stream by 1 / its persistence MSE (<see cref="TrainingGrainOptions.BalanceStreams"/>).</param>
    public static async Task<EvaluationCluster> StartAsync(int historyCapacity, CancellationToken cancellationToken, bool balanceStreams = true,
        bool originScaledTargets = true)
    {
        var settings = new SiloSettings();
        string id = "lstmorleans-evaluate-" + Guid.NewGuid().ToString("N")[..8];
        settings.Cluster.ClusterId = id;
        settings.Cluster.ServiceId = id;
        settings.Cluster.SiloPort = FreeTcpPort();
        settings.Cluster.GatewayPort = FreeTcpPort();
        settings.Storage.Provider = StorageSettings.Memory;
        var errors = settings.Validate();
        if (errors.Count > 0) throw new SiloConfigurationException(errors);

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(LogLevel.Error);
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
        builder.UseOrleans(silo =>
        {
            silo.UseLstmOrleansSilo(settings);
            silo.AddLstmOrleansTraining(o =>
            {
                o.AutoStart = false;
                o.RegistryShards = 1;
                o.ReportEverySteps = 1;
                o.TrainerThreads = 1;   // bit-for-bit repeatable rounds (the no-look-ahead test compares runs)
                o.BalanceStreams = balanceStreams;
                o.OriginScaledTargets = originScaledTargets;
            });
        });
        builder.Services.Configure<StreamGrainOptions>(o =>
        {
            o.SetHistoryCapacity(historyCapacity);
            o.MaxBatchSize = Math.Max(o.MaxBatchSize, EvaluationReplay.MaxChunk);
        });
        builder.Services.Configure<Orleans.Configuration.SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(5));
        var host = builder.Build();
        await host.StartAsync(cancellationToken);
        return new EvaluationCluster(host);
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            await _host.StopAsync(stop.Token);
        }
        finally
        {
            _host.Dispose();
        }
    }

    private static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
