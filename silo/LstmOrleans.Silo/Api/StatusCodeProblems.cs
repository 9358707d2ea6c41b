using Microsoft.AspNetCore.Diagnostics;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// The problem body of a status that routing sets without one: a request no route matches (404), a method its route
/// does not take (405), a body its route does not take (415). ASP.NET Core's status code pages wrote only the status
/// and its reason phrase; these say what is accepted. Responses that already have a body (every handler's own
/// problems) never reach here.
/// </summary>
internal static class StatusCodeProblems
{
    /// <summary>Every route whose body the router checks takes JSON (the ingest route parses its own media types).</summary>
    private const string JsonMediaType = "application/json";

    public static async Task WriteAsync(StatusCodeContext statusCode)
    {
        var context = statusCode.HttpContext;
        var request = context.Request;
        int status = context.Response.StatusCode;
        string? detail = status switch
        {
            StatusCodes.Status404NotFound => $"No route matches {request.Method} {request.Path}; the routes are listed at /openapi/v1.json.",
            StatusCodes.Status405MethodNotAllowed => $"{request.Path} does not take {request.Method}; it takes {AllowedMethods(context.Response)}.",
            StatusCodes.Status415UnsupportedMediaType => UnsupportedBody(request.ContentType),
            _ => null,
        };
        var problems = context.RequestServices.GetRequiredService<IProblemDetailsService>();
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            // The handler's titles for the statuses described here; any other keeps the framework's default.
            ProblemDetails = { Status = status, Title = detail is null ? null : ApiExceptionHandler.TitleFor(status), Detail = detail },
        });
    }

    /// <summary>
    /// Why a JSON body was refused for its Content-Type, in the ingest route's words. Routing refuses a media type the
    /// route does not list; a body sent without any Content-Type gets as far as binding, which refuses it too.
    /// </summary>
    public static string UnsupportedBody(string? contentType)
    {
        var mediaType = contentType?.Split(';')[0].Trim().ToLowerInvariant();
        return string.IsNullOrEmpty(mediaType)
            ? $"The request has a body but no Content-Type; use {JsonMediaType}."
            : $"Unsupported Content-Type '{mediaType}'; use {JsonMediaType}.";
    }

    private static string AllowedMethods(HttpResponse response)
    {
        var allow = response.Headers.Allow.ToString().Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return allow.Length switch
        {
            0 => "another method",
            1 => allow[0],
            _ => string.Join(", ", allow[..^1]) + " or " + allow[^1],
        };
    }
}
