using System.ComponentModel.DataAnnotations;
using System.Globalization;
using LstmOrleans.Abstractions;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// Body of POST /models. Omitted fields take the defaults of a small univariate forecaster, chosen by the evaluation on
/// the NAB series (QUALITY.md): H = 32, one layer, one horizon, running z-score, residual head. CalendarFeatures (e.g.
/// ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos"]) appends those features of each observation's timestamp
/// to the model input.
/// </summary>
public sealed record CreateModelRequest(
    string Name,
    int InputSize = 1,
    int HiddenSize = 32,
    int Layers = 1,
    int Horizons = 1,
    string[]? Features = null,
    int TargetIndex = 0,
    NormalizationMode Normalization = NormalizationMode.RunningZScore,
    int Seed = 0,
    string[]? CalendarFeatures = null,
    bool Residual = true);

/// <summary>One page of GET /models/{name}/streams; pass <c>next</c> as <c>after</c> for the following page (null on the last).</summary>
public sealed record StreamListResponse(string Model, string[] Streams, string? Next);

/// <summary>Answer to POST /models/{name}/versions: the version number the weights were published as.</summary>
public sealed record PublishVersionResponse(long Version);

public sealed record PublishVersionRequest(float[] Parameters, string? Description = null, Dictionary<string, string>? Metadata = null, bool Activate = true);

/// <summary>One page of model names; <c>next</c> is the cursor of the following page (null on the last).</summary>
public sealed record ModelListResponse(string[] Models, string? Next);

internal static class ModelEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        var models = app.MapGroup("/models").WithTags("Models");

        models.MapPost("/", async (CreateModelRequest request, IGrainFactory grains) =>
            {
                var name = CheckName(request.Name);
                var config = new ModelConfig(request.InputSize, request.HiddenSize, request.Layers, request.Horizons,
                    request.Features ?? [], request.TargetIndex, request.Normalization, request.Seed, request.CalendarFeatures, request.Residual);
                try
                {
                    var info = await grains.GetGrain<IModelGrain>(name).CreateAsync(config);
                    return Results.Created($"/models/{Uri.EscapeDataString(name)}", info);
                }
                catch (ModelOperationException ex) when (ex.Message.Contains("exists", StringComparison.OrdinalIgnoreCase) || ex.Message.Contains("different", StringComparison.OrdinalIgnoreCase))
                {
                    return Results.Problem(statusCode: 409, title: "Conflict", detail: ex.Message);
                }
            })
            .WithSummary("Creates a model (idempotent for an equal config) and publishes version 1.")
            .Produces<ModelInfo>(201).ProducesProblem(400).ProducesProblem(409);

        models.MapGet("/", async ([Range(1, ModelCatalog.MaxPageSize)] int? limit, string? after, IGrainFactory grains) =>
            {
                var size = limit ?? 100;
                if (size is < 1 or > ModelCatalog.MaxPageSize)
                    throw new RequestValidationException($"limit must be in 1..{ModelCatalog.MaxPageSize}; got {size}.");
                var page = await grains.GetGrain<IModelCatalogGrain>(ModelCatalog.Key).ListAsync(after is null ? null : CheckName(after), size);
                return Results.Ok(new ModelListResponse(page.Names, page.Next));
            })
            .WithSummary("Names of the created models, in ordinal order, one page at a time (limit 1..1000, default 100; after = the previous page's next).")
            .Produces<ModelListResponse>().ProducesProblem(400);

        models.MapGet("/{name}", async (string name, IGrainFactory grains) =>
                Results.Ok(await grains.GetGrain<IModelGrain>(CheckName(name)).GetInfoAsync()))
            .WithSummary("A model's configuration and active version.").Produces<ModelInfo>().ProducesProblem(404);

        models.MapGet("/{name}/streams", async (string name, [Range(1, StreamRegistryKeys.MaxPageSize)] int? limit, string? after, IGrainFactory grains) =>
            {
                var model = CheckName(name);
                var size = limit ?? 100;
                if (size is < 1 or > StreamRegistryKeys.MaxPageSize)
                    throw new RequestValidationException($"limit must be in 1..{StreamRegistryKeys.MaxPageSize}; got {size}.");
                if (after is not null && (after.Length == 0 || after.Length > 256))
                    throw new RequestValidationException("after must be a stream id (1..256 characters), the 'next' of the previous page.");
                await grains.GetGrain<IModelGrain>(model).GetInfoAsync();   // 404 for an unknown model
                var page = await grains.GetGrain<IStreamRegistryGrain>(model).ListStreamsAsync(after, size);
                return Results.Ok(new StreamListResponse(model, page.StreamIds, page.Next));
            })
            .WithSummary("Streams registered with the model, in ordinal order of their ids, one page at a time (limit 1..1000, default 100).")
            .Produces<StreamListResponse>().ProducesProblem(400).ProducesProblem(404);

        models.MapGet("/{name}/versions", async (string name, IGrainFactory grains) =>
                Results.Ok(await grains.GetGrain<IModelGrain>(CheckName(name)).ListVersionsAsync()))
            .WithSummary("Retained versions, oldest first.").Produces<ModelVersionInfo[]>().ProducesProblem(404);

        models.MapPost("/{name}/versions", async (string name, PublishVersionRequest request, IGrainFactory grains) =>
            {
                if (request.Parameters is null || request.Parameters.Length == 0)
                    throw new RequestValidationException("'parameters' is required.");
                var version = await grains.GetGrain<IModelGrain>(CheckName(name))
                    .PublishAsync(new PublishRequest(request.Parameters, request.Description, request.Metadata, request.Activate));
                return Results.Created($"/models/{Uri.EscapeDataString(name)}/versions/{version}", new PublishVersionResponse(version));
            })
            // Typed, so that OpenAPI shows the 201 and its body (with an anonymous type it listed only the errors).
            .WithSummary("Publishes a new version of the weights (flat LstmParameters layout).")
            .Produces<PublishVersionResponse>(201).ProducesProblem(400).ProducesProblem(404);

        // No :long route constraint: with it "versions/abc/activate" matched no route, a bare 404; now a 400 that says
        // what a version is (BindingFailure).
        models.MapPost("/{name}/versions/{version}/activate", async (string name, [Range(1, long.MaxValue)] long version, IGrainFactory grains) =>
            {
                // [Range] only documents (OpenAPI, the message for a non-number): 0 and -1 bound and were a 404 "no
                // retained version", as if they could be one.
                if (version < 1)
                    throw new RequestValidationException(BindingFailure.ParameterProblem("path parameter", "version", "a positive integer", version.ToString(CultureInfo.InvariantCulture)));
                var grain = grains.GetGrain<IModelGrain>(CheckName(name));
                var versions = await grain.ListVersionsAsync();
                if (!versions.Any(v => v.Version == version))
                    return Results.Problem(statusCode: 404, title: "Not found",
                        detail: $"Model '{name}' has no retained version {version}; retained: {string.Join(", ", versions.Select(v => v.Version))}.");
                return Results.Ok(await grain.ActivateAsync(version));
            })
            .WithSummary("Makes a retained version active (rollback or roll forward).").Produces<ModelInfo>().ProducesProblem(400).ProducesProblem(404);
    }

    internal static string CheckName(string? name)
    {
        if (LstmOrleansNames.ModelNameProblem(name) is { } problem)
            throw new RequestValidationException(problem);
        return name!;
    }
}
