using System.Text.Json;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// Endpoint metadata for a JSON body that must hold every required property of its type (see
/// <see cref="BindingFailure.RequiredProperties"/>). System.Text.Json gives an omitted constructor parameter its type's
/// default, so <c>{"epochs":10}</c> as training settings bound with a sample size of 0 (refused with a misleading
/// "SampleSize must be between 1 and 100000, got 0") and a body without "period" turned the schedule off, although the
/// OpenAPI document and the unknown-property message call those properties required. The serializer's own option
/// (<c>RespectRequiredConstructorParameters</c>) is no fix: it applies to every body, so it would make nullable ones
/// such as the bind body's "model" required too, and its message names only the first few missing properties.
/// Routes with this metadata have their body buffered (<see cref="UseBuffering"/>), so that after binding
/// <see cref="CheckAsync{T}"/> can read which properties were sent.
/// </summary>
internal sealed class CompleteBody
{
    public static CompleteBody Metadata { get; } = new();

    private CompleteBody() { }

    /// <summary>Buffers the request body of routes with <see cref="Metadata"/> (the body must be read twice).</summary>
    public static void UseBuffering(IApplicationBuilder app) =>
        app.Use((context, next) =>
        {
            if (context.GetEndpoint()?.Metadata.GetMetadata<CompleteBody>() is not null) context.Request.EnableBuffering();
            return next(context);
        });

    /// <summary>
    /// Throws a 400 naming every required property of <typeparamref name="T"/> that the (already bound) body lacks.
    /// Runs before the handler does anything, so nothing has changed.
    /// </summary>
    public static async Task CheckAsync<T>(HttpRequest request)
    {
        if (!request.Body.CanSeek) throw new InvalidOperationException($"The body of {request.Path} is not buffered; add {nameof(CompleteBody)}.{nameof(Metadata)} to its route.");
        request.Body.Position = 0;
        using var body = await JsonDocument.ParseAsync(request.Body, cancellationToken: request.HttpContext.RequestAborted);
        // Binding accepted it, so it is an object; names match as in binding (case-insensitively, the web defaults).
        var sent = body.RootElement.EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var missing = BindingFailure.RequiredProperties(typeof(T)).Where(name => !sent.Contains(name)).ToList();
        if (missing.Count == 0) return;
        throw new RequestValidationException(
            $"The request body lacks the required {(missing.Count == 1 ? "property" : "properties")} {string.Join(", ", missing)}; nothing was changed. " +
            $"It must be {BindingFailure.Shape(typeof(T))}.");
    }
}
