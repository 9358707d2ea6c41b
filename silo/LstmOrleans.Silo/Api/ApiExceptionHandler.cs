using LstmOrleans.Abstractions;
using Microsoft.AspNetCore.Diagnostics;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// Maps the grains' "nothing changed" exceptions and request errors to RFC 9457 problem details with a 4xx status;
/// anything else stays a 500 without internals in the body.
/// </summary>
internal sealed class ApiExceptionHandler(IProblemDetailsService problemDetails, ApiMetrics metrics) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        (int status, string title, string detail)? mapped = exception switch
        {
            RequestValidationException e => (e.StatusCode, TitleFor(e.StatusCode), e.Message),
            ObservationRejectedException e => (StatusFor(e.Reason), $"Observation rejected: {e.Reason}", e.Message),
            ModelNotFoundException e => (StatusCodes.Status404NotFound, "Model not found", e.Message),
            ModelOperationException e => (StatusCodes.Status400BadRequest, "Invalid model operation", e.Message),
            // A parameter or body that did not bind: what was wrong and what is accepted, without .NET type names.
            BadHttpRequestException e => (e.StatusCode, TitleFor(e.StatusCode), BindingFailure.Describe(context, e)),
            _ => null,
        };
        if (mapped is not { } m)
            return false;
        if (m.status < 500) metrics.Rejected();
        context.Response.StatusCode = m.status;
        return await problemDetails.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = { Status = m.status, Title = m.title, Detail = m.detail },
        });
    }

    internal static int StatusFor(RejectionReason reason) => reason switch
    {
        // The stream already moved past this time (or its last sequence): a conflict with its state, not a malformed request.
        RejectionReason.TimestampBackwards or RejectionReason.SequenceExhausted => StatusCodes.Status409Conflict,
        RejectionReason.BatchTooLarge => StatusCodes.Status413PayloadTooLarge,
        // Well-formed and valid, but the model cannot process it: not the request's fault (400), and not a crash (500).
        RejectionReason.NonFiniteResult => StatusCodes.Status422UnprocessableEntity,
        // A reading the sender's clock got wrong, like a value beyond the accepted magnitude: the request's fault (400),
        // not a conflict with the stream's state (409), and not valid input the model cannot process (422).
        RejectionReason.TimestampTooFarAhead => StatusCodes.Status400BadRequest,
        _ => StatusCodes.Status400BadRequest,
    };

    internal static string TitleFor(int status) => status switch
    {
        StatusCodes.Status405MethodNotAllowed => "Method not allowed",
        StatusCodes.Status413PayloadTooLarge => "Request too large",
        StatusCodes.Status415UnsupportedMediaType => "Unsupported media type",
        StatusCodes.Status404NotFound => "Not found",
        StatusCodes.Status409Conflict => "Conflict",
        _ => "Invalid request",
    };
}
