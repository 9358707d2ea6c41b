using LstmOrleans.Silo.Api;
using LstmOrleans.Silo.Hosting;
using OpenTelemetry.Metrics;
using Orleans.Dashboard;

// Configuration sources, later ones win: appsettings.json, appsettings.{Environment}.json, plain environment
// variables, LSTMORLEANS_* environment variables, command line (--Storage:Provider=memory).
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Configuration.AddEnvironmentVariables("LSTMORLEANS_");
builder.Configuration.AddCommandLine(args);

SiloSettings settings;
try
{
    settings = SiloSettings.Load(builder.Configuration);
    settings.Storage.CreateDataFolder();
}
catch (SiloConfigurationException ex)
{
    Console.Error.WriteLine(ex.Message);
    return 2;
}

// Orleans' own bind does not fail on a port another Orleans process listens on (see OrleansPortCheck).
if (OrleansPortCheck.FindTakenPort(settings.Cluster) is { } takenPort)
{
    Console.Error.WriteLine($"lstmorleans silo failed to start: {takenPort}");
    return 1;
}

builder.Logging.AddLstmOrleansLogFilters();
// Re-apply the configuration's Logging section after the defaults above so an operator can still turn Orleans up.
builder.Logging.AddConfiguration(builder.Configuration.GetSection("Logging"));
builder.Host.ConfigureHostOptions(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
builder.WebHost.UseUrls(DashboardRouting.ListenUrls(settings));
builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = settings.Http.MaxRequestBodyBytes);
builder.UseOrleans(silo =>
{
    silo.UseLstmOrleansSilo(settings);
    // The dashboard's grain service and call profiler run only when it is switched on.
    if (settings.Dashboard.Enabled) silo.AddDashboard();
});
builder.Services.AddSingleton(settings);
builder.Services.AddLstmOrleansApi();
if (!string.IsNullOrWhiteSpace(settings.Telemetry.OtlpEndpoint))
{
    // Opt-in metrics export over OTLP: our API and storage meters plus Orleans' own.
    builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
        .AddMeter("LstmOrleans", "LstmOrleans.Storage", "Microsoft.Orleans")
        .AddOtlpExporter(o => o.Endpoint = new Uri(settings.Telemetry.OtlpEndpoint)));
}

var app = builder.Build();
app.MapLstmOrleansApi(settings);
// Which collector runs matters for the latency tail (see RuntimeGcSettings), so the log says so.
SiloLog.RuntimeStarted(app.Logger, Environment.Version.ToString(), Environment.ProcessorCount, RuntimeGcSettings.Describe());
// Taken now: once RunAsync returns or throws, the host (and app.Lifetime with it) is disposed.
var started = app.Lifetime.ApplicationStarted;
var stopping = app.Lifetime.ApplicationStopping;
try
{
    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (stopping.IsCancellationRequested && !started.IsCancellationRequested)
{
    // SIGTERM/Ctrl+C before the silo finished starting (joining the cluster, waiting for its primary or for Redis)
    // cancels the start: a requested stop of a silo that never served, not a crash. The start does not always end in
    // an OperationCanceledException: a membership read cut short by the stop rethrows its last connection error.
    Console.Error.WriteLine("lstmorleans silo stopped before it finished starting (shutdown requested).");
    if (ex is not OperationCanceledException) Console.Error.WriteLine($"  the interrupted start ended with {ex.GetType().Name}: {ex.Message}");
    return 0;
}
catch (Microsoft.AspNetCore.Connections.AddressInUseException ex)
{
    // Orleans' own listeners throw this bare (Kestrel wraps it in an IOException naming its URL), and it says no port.
    Console.Error.WriteLine($"lstmorleans silo failed to start: {ex.Message}: Cluster:SiloPort {settings.Cluster.SiloPort} or Cluster:GatewayPort {settings.Cluster.GatewayPort} is taken by another process.");
    return 1;
}
catch (Exception ex) when (ex is SiloConfigurationException or IOException or System.Net.Sockets.SocketException)
{
    Console.Error.WriteLine($"lstmorleans silo failed to start: {ex.Message}");
    return 1;
}
