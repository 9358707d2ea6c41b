using System.Security.Cryptography;
using System.Text;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// When an API key is configured, every request except the health probes must carry it in X-Api-Key; otherwise it
/// is answered 401 before any handler (and so any grain call) runs.
/// </summary>
internal sealed class ApiKeyMiddleware(RequestDelegate next, string apiKey)
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
        var presented = context.Request.Headers[HeaderName].ToString();
        // Fixed-time comparison so the key cannot be guessed byte by byte from response timing.
        if (presented.Length == 0 || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _expected))
        {
            var problem = Results.Problem(
                statusCode: StatusCodes.Status401Unauthorized,
                title: "Unauthorized",
                detail: presented.Length == 0 ? $"The {HeaderName} header is required." : $"The {HeaderName} header is not valid.");
            await problem.ExecuteAsync(context);
            return;
        }
        await next(context);
    }
}
