using LstmOrleans.Silo.Hosting;
using Orleans.Dashboard;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// Serves the Orleans dashboard when Dashboard:Enabled is set. With its own listener (Dashboard:Urls, loopback by
/// default) the dashboard answers only on that listener's ports and nothing else does; without one it shares the
/// API listener under Dashboard:Path. Either way the API key middleware runs first.
/// </summary>
internal sealed class DashboardRouting(DashboardSettings settings)
{
    private readonly HashSet<int> _ports = [.. settings.Ports()];

    public string Path => settings.Path;

    /// <summary>The request arrived on the dashboard's own listener, or asks for the dashboard path.</summary>
    public bool IsDashboardRequest(HttpContext context) =>
        _ports.Contains(context.Connection.LocalPort) || context.Request.Path.StartsWithSegments(settings.Path);

    /// <summary>Adds the dashboard's own listener to the host's URLs.</summary>
    public static string ListenUrls(SiloSettings settings) =>
        settings.Dashboard.Enabled && settings.Dashboard.HasOwnListener ? $"{settings.Http.Urls};{settings.Dashboard.Urls}" : settings.Http.Urls;

    /// <summary>Call after the API key middleware and before routing.</summary>
    public void UseSeparation(WebApplication app)
    {
        if (_ports.Count == 0) return;
        // On the dashboard's listener only the dashboard; everything else there is 404 (and the dashboard's
        // endpoints, restricted to these ports below, are 404 on the API's listener).
        app.Use(async (context, next) =>
        {
            if (_ports.Contains(context.Connection.LocalPort) && !context.Request.Path.StartsWithSegments(settings.Path))
            {
                await Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found",
                    detail: $"This listener serves only the dashboard, at {settings.Path}/.").ExecuteAsync(context);
                return;
            }
            await next(context);
        });
    }

    public void Map(WebApplication app)
    {
        var group = app.MapOrleansDashboard(settings.Path).ExcludeFromDescription();
        if (_ports.Count > 0) group.RequireHost([.. _ports.Select(p => $"*:{p}")]);
    }
}
