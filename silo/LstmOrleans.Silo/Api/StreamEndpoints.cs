using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using LstmOrleans.Abstractions;
using LstmOrleans.Silo.Hosting;

namespace LstmOrleans.Silo.Api;

/// <summary>Answer to an ingest request: what was applied, and the forecast after the last observation.</summary>
public sealed record IngestResponse(string StreamId, int Received, int Applied, int Duplicates, StepResult Latest, StepResult[]? Results);

public sealed record BindRequest(string? Model);

internal static class StreamEndpoints
{
    private const int MaxHistory = 100_000;

    public static void Map(IEndpointRouteBuilder app)
    {
        var streams = app.MapGroup("/streams/{streamId}").WithTags("Streams");

        streams.MapPost("/observations", IngestAsync)
            .WithSummary("Ingest one observation or a batch (JSON object or array, NDJSON, or CSV with a header).")
            // The body's media types are described for OpenAPI only: as Accepts metadata they also made routing answer
            // every other Content-Type with a bare 415 before the parser could say what is accepted, and that refused
            // the parser's other names for the same formats (text/json, application/ndjson, application/csv...).
            .AddOpenApiOperationTransformer((operation, context, cancellationToken) =>
            {
                operation.RequestBody = IngestBodyDocumentation.RequestBody();
                return Task.CompletedTask;
            })
            .Produces<IngestResponse>()
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409).ProducesProblem(413).ProducesProblem(415).ProducesProblem(422);

        streams.MapGet("/", async (string streamId, IGrainFactory grains) =>
            {
                streamId = Check(streamId);
                var summary = await grains.GetGrain<IStreamGrain>(streamId).GetSummaryAsync();
                // The grain answers any id, with an empty summary for one never used: that was a 200 for a misspelt id,
                // while /prediction and /state said 404. A bound stream exists, values or not.
                return IsUnknown(summary)
                    ? Results.Problem(statusCode: 404, title: "Not found", detail: UnknownStream(streamId))
                    : Results.Ok(summary);
            })
            .WithSummary("The stream's summary (404 for a stream that has neither a value nor a model binding).").Produces<StreamSummary>().ProducesProblem(404);

        streams.MapGet("/prediction", async (string streamId, IGrainFactory grains) =>
            {
                streamId = Check(streamId);
                var prediction = await grains.GetGrain<IStreamGrain>(streamId).GetPredictionAsync();
                return prediction is null
                    ? Results.Problem(statusCode: 404, title: "Not found", detail: $"Stream '{streamId}' has no observations yet.")
                    : Results.Ok(prediction);
            })
            .WithSummary("The current forecast with its prediction interval.").Produces<StepResult>().ProducesProblem(404);

        streams.MapGet("/state", async (string streamId, IGrainFactory grains) =>
            {
                streamId = Check(streamId);
                var grain = grains.GetGrain<IStreamGrain>(streamId);
                var summary = await grain.GetSummaryAsync();
                if (summary.StepCount == 0 && summary.LastSequence is null)
                    return Results.Problem(statusCode: 404, title: "Not found", detail: $"Stream '{streamId}' has no observations yet.");
                return Results.Ok(await grain.GetStateAsync());
            })
            .WithSummary("The stream's durable state (h, c, normalisation and error statistics).").Produces<StreamStateSnapshot>().ProducesProblem(404);

        // [Range] on a query parameter: OpenAPI shows it, and a value that is no integer at all is answered with it (BindingFailure).
        streams.MapGet("/history", async (string streamId, [Range(1, MaxHistory)] int? max, IGrainFactory grains) =>
            {
                var count = max ?? 100;
                if (count is < 1 or > MaxHistory)
                    throw new RequestValidationException($"max must be in 1..{MaxHistory}; got {count}.");
                return Results.Ok(await grains.GetGrain<IStreamGrain>(Check(streamId)).GetHistoryAsync(count));
            })
            .WithSummary("The most recent accepted observations, oldest first.").Produces<Observation[]>();

        streams.MapPut("/model", async (string streamId, BindRequest request, IGrainFactory grains) =>
                Results.Ok(await grains.GetGrain<IStreamGrain>(Check(streamId)).BindAsync(request.Model is null ? null : ModelEndpoints.CheckName(request.Model))))
            .WithSummary("Binds the stream to a model (null = the default model).").Produces<StreamSummary>().ProducesProblem(400).ProducesProblem(404);

        streams.MapPost("/reset", async (string streamId, IGrainFactory grains) =>
            {
                await grains.GetGrain<IStreamGrain>(Check(streamId)).ResetAsync();
                return Results.NoContent();
            })
            .WithSummary("Forgets what the stream learned but keeps its model binding.").Produces(StatusCodes.Status204NoContent);

        streams.MapDelete("/", async (string streamId, IGrainFactory grains) =>
            {
                await grains.GetGrain<IStreamGrain>(Check(streamId)).DeleteAsync();
                return Results.NoContent();
            })
            .WithSummary("Removes the stream's stored state.").Produces(StatusCodes.Status204NoContent);
    }

    private static async Task<IResult> IngestAsync(string streamId, HttpRequest request, IGrainFactory grains, SiloSettings settings, ApiMetrics metrics,
        Microsoft.Extensions.Options.IOptions<LstmOrleans.Grains.StreamGrainOptions> streamOptions, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        streamId = Check(streamId);
        if (request.ContentLength > settings.Http.MaxRequestBodyBytes)
            throw new RequestValidationException($"The body is {request.ContentLength} bytes; the limit is {settings.Http.MaxRequestBodyBytes} (Http:MaxRequestBodyBytes).", StatusCodes.Status413PayloadTooLarge);
        // Kestrel enforces Http:MaxRequestBodyBytes while this reads (413 for chunked bodies that grow past it).
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, cancellationToken);
        var inputs = ObservationParser.Parse(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), request.ContentType, settings.Http.MaxBatchSize);

        var grain = grains.GetGrain<IStreamGrain>(streamId);
        var numbered = inputs[0].Sequence is not null;
        var observations = Stamp(inputs);
        CheckOrder(observations);
        int partSize = Math.Max(1, streamOptions.Value.MaxBatchSize);
        // A body applied in parts is checked whole first: a timestamp too far ahead in a later part was refused only
        // after the parts before it were applied, so a bad reading changed the stream.
        if (observations.Length > partSize) CheckNotTooFarAhead(observations, numbered, streamOptions.Value, DateTimeOffset.UtcNow);
        // The grain applies a batch all or nothing up to its own size limit; larger bodies go in order, chunk by
        // chunk. Everything a grain could reject later (lengths, order) was checked above or is caught by the
        // first chunk, so a rejection leaves the stream unchanged unless another writer moved the stream on between two
        // chunks (ApplyInPartsAsync says so); sequence numbers make a retry safe regardless.
        var results = await ApplyInPartsAsync(observations.Length, partSize, async (offset, count) =>
        {
            // Unnumbered values are numbered (and, without a timestamp, stamped) by the grain as it applies them:
            // numbered here from a summary read first, concurrent requests took the same numbers and all but one
            // were skipped as duplicates, acknowledged but lost.
            if (!numbered) return await grain.IngestAfterLastAsync(Unnumbered(inputs, offset, count));
            if (count == 1) return [await grain.IngestAsync(observations[offset])];
            return await grain.IngestBatchAsync(observations.AsSpan(offset, count).ToArray());
        });
        var duplicates = results.Count(r => r.Duplicate);
        metrics.Ingested(results.Count, results.Count - duplicates, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        var includeAll = string.Equals(request.Query["results"], "all", StringComparison.OrdinalIgnoreCase);
        return Results.Ok(new IngestResponse(streamId, results.Count, results.Count - duplicates, duplicates, results[^1], includeAll ? [.. results] : null));
    }

    /// <summary>
    /// Applies <paramref name="count"/> observations in parts of at most <paramref name="partSize"/>, in order. Only a
    /// concurrent writer to the same stream can make a part after the first one fail (it moved the stream past that
    /// part's timestamps or sequence numbers): the parts before it stay applied, which the refusal then says. It said only
    /// what the failing part broke, as if the request had changed nothing, and a client that resent the whole body
    /// without sequence numbers applied those values twice.
    /// </summary>
    internal static async Task<List<StepResult>> ApplyInPartsAsync(int count, int partSize, Func<int, int, Task<StepResult[]>> apply)
    {
        var results = new List<StepResult>(count);
        for (var offset = 0; offset < count; offset += partSize)
        {
            try
            {
                results.AddRange(await apply(offset, Math.Min(partSize, count - offset)));
            }
            catch (ObservationRejectedException e) when (offset > 0)
            {
                throw new ObservationRejectedException(e.Reason,
                    $"Observations 1 to {offset} of this request were applied (a body over Streams:MaxBatchSize goes to the stream in parts of " +
                    $"{partSize}), then the part from observation {offset + 1} on was refused and none of it applied; another writer to the " +
                    $"stream may have moved it on meanwhile. Send only the rest again. The refusal: {e.Message}", e.Sequence);
            }
        }
        return results;
    }

    /// <summary>
    /// Fills in missing timestamps with the current time and missing sequence numbers (left out by every input: the
    /// parser checks) with the input's index, for <see cref="CheckOrder"/>; such inputs go to the grain as
    /// <see cref="UnnumberedObservation"/>s, which it numbers and stamps itself.
    /// </summary>
    private static Observation[] Stamp(List<ObservationInput> inputs)
    {
        var now = DateTimeOffset.UtcNow;
        var observations = new Observation[inputs.Count];
        for (var i = 0; i < inputs.Count; i++)
            observations[i] = new Observation(inputs[i].Sequence ?? i, inputs[i].Timestamp ?? now, inputs[i].Values);
        return observations;
    }

    private static UnnumberedObservation[] Unnumbered(List<ObservationInput> inputs, int offset, int count)
    {
        var result = new UnnumberedObservation[count];
        for (var i = 0; i < count; i++)
            result[i] = new UnnumberedObservation(inputs[offset + i].Timestamp, inputs[offset + i].Values);
        return result;
    }

    /// <summary>Same feature count throughout, strictly increasing sequences, timestamps that never go back.</summary>
    private static void CheckOrder(Observation[] observations)
    {
        for (var i = 1; i < observations.Length; i++)
        {
            if (observations[i].Values.Length != observations[0].Values.Length)
                throw new RequestValidationException($"Observation [{i}] has {observations[i].Values.Length} values, observation [0] has {observations[0].Values.Length}.");
            if (observations[i].Sequence <= observations[i - 1].Sequence)
                throw new RequestValidationException($"Sequence numbers must increase within a request: [{i}] is {observations[i].Sequence} after {observations[i - 1].Sequence}.");
            if (observations[i].Timestamp < observations[i - 1].Timestamp)
                throw new RequestValidationException($"Timestamps must not go backwards within a request: [{i}] is {observations[i].Timestamp:O} after {observations[i - 1].Timestamp:O}.");
        }
    }

    /// <summary>
    /// Refuses a body whose latest timestamp is further ahead of <paramref name="now"/> than the grains'
    /// <see cref="LstmOrleans.Grains.StreamGrainOptions.MaxTimestampAhead"/> allows, naming the first such observation.
    /// Timestamps never go back within a body (<see cref="CheckOrder"/>), so the last one is the latest.
    /// </summary>
    internal static void CheckNotTooFarAhead(Observation[] observations, bool numbered, LstmOrleans.Grains.StreamGrainOptions options, DateTimeOffset now)
    {
        if (observations.Length == 0 || !options.IsTooFarAhead(observations[^1].Timestamp.UtcTicks, now)) return;
        int i = 0;
        while (!options.IsTooFarAhead(observations[i].Timestamp.UtcTicks, now)) i++;
        throw options.TimestampTooFarAhead($"Observation [{i}]", observations[i].Timestamp, now, numbered ? observations[i].Sequence : null);
    }

    /// <summary>A stream that never received a value and is not bound to a model (never used, or deleted).</summary>
    internal static bool IsUnknown(StreamSummary summary) => summary.ModelName is null && summary.LastSequence is null;

    internal static string UnknownStream(string streamId) =>
        $"Stream '{streamId}' does not exist: it has received no observations and is not bound to a model.";

    /// <summary>
    /// The stream id a route value names, checked. A `/` in an id (the demo's `demo/...`, replay's `replay/...`) is
    /// written `%2F` in the URL, and ASP.NET Core leaves exactly that escape undecoded in route values (so that a `/`
    /// never splits a segment): it is decoded here. An id that really holds the text `%2F` cannot be addressed.
    /// </summary>
    internal static string Check(string streamId)
    {
        streamId = streamId.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        if (LstmOrleansNames.StreamIdProblem(streamId) is { } problem) throw new RequestValidationException(problem);
        return streamId;
    }
}
