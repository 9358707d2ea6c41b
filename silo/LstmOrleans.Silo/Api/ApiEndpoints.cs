namespace LstmOrleans.Silo.Api;

using LstmOrleans.Silo.Hosting;

public static class ApiEndpoints
{
    public static IServiceCollection AddLstmOrleansApi(this IServiceCollection services)
    {
        services.AddProblemDetails();
        services.AddOpenApi();
        services.AddSingleton<ApiMetrics>();
        services.AddSingleton<Readiness>();
        services.AddExceptionHandler<ApiExceptionHandler>();
        // A body or parameter that does not bind throws, so ApiExceptionHandler answers with what was wrong; by
        // default it was a bare 400 titled "Bad Request" with no detail.
        services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter());
            // A misspelt property ("hidenSize") was ignored, so the request went through with that field's default: a
            // model created with another configuration than asked for, and for good (a create with the intended one is
            // then a conflict). An unknown property is a 400 naming it, as in ingest bodies.
            o.SerializerOptions.UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow;
        });
        return services;
    }

    public static WebApplication MapLstmOrleansApi(this WebApplication app, SiloSettings settings)
    {
        app.UseExceptionHandler();
        // What routing answers without a body (404, 405, 415) gets a problem saying what is accepted (StatusCodeProblems).
        app.UseStatusCodePages(StatusCodeProblems.WriteAsync);
        var dashboard = settings.Dashboard.Enabled ? new DashboardRouting(settings.Dashboard) : null;
        if (!string.IsNullOrEmpty(settings.Http.ApiKey))
        {
            var apiKey = settings.Http.ApiKey;
            app.Use(next => new ApiKeyMiddleware(next, apiKey, dashboard).InvokeAsync);
        }
        dashboard?.UseSeparation(app);
        CompleteBody.UseBuffering(app);

        var readiness = app.Services.GetRequiredService<Readiness>();
        app.Lifetime.ApplicationStarted.Register(readiness.MarkStarted);
        app.Lifetime.ApplicationStopping.Register(readiness.MarkStopping);

        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapGet("/healthz", () => Results.Text("ok")).WithName("Health").WithSummary("Liveness: the process answers.");
        app.MapGet("/readyz", (Readiness r) => r.IsReady
                ? Results.Text("ready")
                : Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not ready", detail: r.Describe()))
            .WithName("Ready").WithSummary("Readiness: the silo has joined the cluster and is not shutting down.");
        StreamEndpoints.Map(app);
        ModelEndpoints.Map(app);
        TrainingEndpoints.Map(app);
        dashboard?.Map(app);
        return app;
    }
}

/// <summary>Ready between the host's start (the silo has joined the cluster) and the start of shutdown.</summary>
public sealed class Readiness
{
    private volatile int _state; // 0 starting, 1 started, 2 stopping

    public bool IsReady => _state == 1;
    public void MarkStarted() => Interlocked.CompareExchange(ref _state, 1, 0);
    public void MarkStopping() => _state = 2;
    public string Describe() => _state == 0 ? "The silo is starting." : "The silo is shutting down.";
}
