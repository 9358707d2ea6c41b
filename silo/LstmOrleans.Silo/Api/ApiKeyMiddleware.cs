using System.Security.Cryptography;
using System.Text;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// When an API key is configured, every request except the health probes must carry it in X-Api-Key; otherwise it
/// is answered 401 before any handler (and so any grain call) runs. Requests for the dashboard may present the key
/// as the password of HTTP Basic authentication instead (any user name), because a browser cannot add a header to
/// the dashboard's own requests but does prompt for, and then resend, Basic credentials.
/// </summary>
internal sealed class ApiKeyMiddleware(RequestDelegate next, string apiKey, DashboardRouting? dashboard)
{
    public const string HeaderName = "X-Api-Key";
    private readonly byte[] _expected = Encoding.UTF8.GetBytes(apiKey);

    public async Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path;
        if (path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz"))
        {
            await next(context);
            return;
        }
        bool forDashboard = dashboard?.IsDashboardRequest(context) == true;
        var presented = context.Request.Headers[HeaderName].ToString();
        if (presented.Length == 0 && forDashboard) presented = BasicPassword(context.Request) ?? "";
        // Fixed-time comparison so the key cannot be guessed byte by byte from response timing.
        if (presented.Length == 0 || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _expected))
        {
            if (forDashboard)
                context.Response.Headers.WWWAuthenticate = "Basic realm=\"LstmOrleans dashboard (password: the silo's API key)\", charset=\"UTF-8\"";
            var problem = Results.Problem(
                statusCode: StatusCodes.Status401Unauthorized,
                title: "Unauthorized",
                detail: presented.Length == 0
                    ? $"The {HeaderName} header is required{(forDashboard ? " (or the API key as the Basic authentication password)" : "")}."
                    : $"The {HeaderName} header is not valid.");
            await problem.ExecuteAsync(context);
            return;
        }
        await next(context);
    }

    /// <summary>The password of an "Authorization: Basic base64(user:password)" header, or null.</summary>
    private static string? BasicPassword(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return null;
        try
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..].Trim()));
            int colon = decoded.IndexOf(':');
            return colon < 0 ? null : decoded[(colon + 1)..];
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
