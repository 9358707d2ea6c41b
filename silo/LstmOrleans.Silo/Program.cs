using LstmOrleans.Silo.Api;
using LstmOrleans.Silo.Hosting;
using OpenTelemetry.Metrics;
using Orleans.Dashboard;

// Configuration sources, later ones win: appsettings.json, appsettings.{Environment}.json, plain environment
// variables, LSTMORLEANS_* environment variables, command line (--Storage:Provider=memory).
if (CommandLineCheck.Problems(args) is { Count: > 0 } argumentProblems)
{
    Console.Error.WriteLine(new SiloConfigurationException(argumentProblems).Message);
    return 2;
}

WebApplicationBuilder builder;
try
{
    builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
    builder.Configuration.AddEnvironmentVariables("LSTMORLEANS_");
    builder.Configuration.AddCommandLine(args);
}
catch (InvalidDataException ex)
{
    // A malformed appsettings*.json: the file and the parser's line and position, as a configuration error, instead of
    // an unhandled exception (exit 134, a core dump where enabled).
    Console.Error.WriteLine($"Invalid configuration:{Environment.NewLine}  - {ex.Message} {ex.InnerException?.InnerException?.Message ?? ex.InnerException?.Message}");
    return 2;
}

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

// Held until the process exits: a silo of another cluster must not start on this SQLite folder meanwhile.
using var dataFolderLock = DataFolderLock.Acquire(settings, out var dataFolderConflict);
if (dataFolderConflict is not null)
{
    Console.Error.WriteLine($"lstmorleans silo failed to start: {dataFolderConflict}");
    return 1;
}

builder.Logging.AddLstmOrleansLogFilters();
// Until the host has started, the start's own failure is reported below, once, not by every logger that saw it.
var hostStarted = new CancellationTokenSource();
var startAbandoned = new CancellationTokenSource();
builder.Logging.AddSiloStartFailureLogFilters(
    starting: () => !hostStarted.IsCancellationRequested,
    abandoned: () => startAbandoned.IsCancellationRequested);
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
var stopping = app.Lifetime.ApplicationStopping;
app.Lifetime.ApplicationStarted.Register(hostStarted.Cancel);
// A stop requested before the start finished (SIGTERM while joining) abandons the start.
stopping.Register(() => { if (!hostStarted.IsCancellationRequested) startAbandoned.Cancel(); });
try
{
    try
    {
        await app.StartAsync();
    }
    catch (Exception ex) when (stopping.IsCancellationRequested)
    {
        // SIGTERM/Ctrl+C before the silo finished starting (joining the cluster, waiting for its primary or for Redis)
        // cancels the start: a requested stop of a silo that never served, not a crash. The start does not always end in
        // an OperationCanceledException: a membership read cut short by the stop rethrows its last connection error.
        Console.Error.WriteLine("lstmorleans silo stopped before it finished starting (shutdown requested).");
        if (ex is not OperationCanceledException) Console.Error.WriteLine($"  the interrupted start ended with {ex.GetType().Name}: {ex.Message}");
        return 0;
    }
    catch (Exception)
    {
        startAbandoned.Cancel();
        // The host stops nothing it started when a later service fails (the silo is up when Kestrel cannot bind its
        // port), and disposing it would tear the running silo down under its own work in flight, every piece of which
        // logs an error with a stack trace. Stop it properly first; the start's failure is the one reported below.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await app.StopAsync(timeout.Token);
        }
        catch (Exception)
        {
            // Stopping a half-started silo may fail too; the failed start is what the operator needs to see.
        }
        throw;
    }
    await app.WaitForShutdownAsync();
    return 0;
}
catch (Microsoft.AspNetCore.Connections.AddressInUseException ex)
{
    // Orleans' own listeners throw this bare (Kestrel wraps it in an IOException naming its URL), and it says no port.
    Console.Error.WriteLine($"lstmorleans silo failed to start: {ex.Message}: Cluster:SiloPort {settings.Cluster.SiloPort} or Cluster:GatewayPort {settings.Cluster.GatewayPort} is taken by another process.");
    return 1;
}
catch (Exception ex) when (ServiceConnectFailure.Describe(ex, settings) is { } reason)
{
    Console.Error.WriteLine($"lstmorleans silo failed to start: {reason}");
    return 1;
}
catch (Exception ex) when (ex is SiloConfigurationException or IOException or System.Net.Sockets.SocketException)
{
    Console.Error.WriteLine($"lstmorleans silo failed to start: {ex.Message}");
    return 1;
}
catch (Exception ex)
{
    // Unexpected: the whole exception with its stack trace, since the host's own "Hosting failed to start" entry is
    // filtered out (AddLstmOrleansLogFilters), and exit 1 rather than an unhandled exception's abort (134).
    Console.Error.WriteLine($"lstmorleans silo failed: {ex}");
    return 1;
}
finally
{
    await app.DisposeAsync();
}
