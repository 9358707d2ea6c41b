using LstmOrleans.Abstractions;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// Body of POST /models. Omitted fields take the defaults of a small univariate forecaster. CalendarFeatures (e.g.
/// ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos"]) appends those features of each observation's timestamp
/// to the model input.
/// </summary>
public sealed record CreateModelRequest(
    string Name,
    int InputSize = 1,
    int HiddenSize = 16,
    int Layers = 1,
    int Horizons = 1,
    string[]? Features = null,
    int TargetIndex = 0,
    NormalizationMode Normalization = NormalizationMode.RunningZScore,
    int Seed = 0,
    string[]? CalendarFeatures = null,
    bool Residual = false);

public sealed record PublishVersionRequest(float[] Parameters, string? Description = null, Dictionary<string, string>? Metadata = null, bool Activate = true);

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

        models.MapGet("/{name}", async (string name, IGrainFactory grains) =>
                Results.Ok(await grains.GetGrain<IModelGrain>(CheckName(name)).GetInfoAsync()))
            .WithSummary("A model's configuration and active version.").Produces<ModelInfo>().ProducesProblem(404);

        models.MapGet("/{name}/versions", async (string name, IGrainFactory grains) =>
                Results.Ok(await grains.GetGrain<IModelGrain>(CheckName(name)).ListVersionsAsync()))
            .WithSummary("Retained versions, oldest first.").Produces<ModelVersionInfo[]>().ProducesProblem(404);

        models.MapPost("/{name}/versions", async (string name, PublishVersionRequest request, IGrainFactory grains) =>
            {
                if (request.Parameters is null || request.Parameters.Length == 0)
                    throw new RequestValidationException("'parameters' is required.");
                var version = await grains.GetGrain<IModelGrain>(CheckName(name))
                    .PublishAsync(new PublishRequest(request.Parameters, request.Description, request.Metadata, request.Activate));
                return Results.Created($"/models/{Uri.EscapeDataString(name)}/versions/{version}", new { version });
            })
            .WithSummary("Publishes a new version of the weights (flat LstmParameters layout).").ProducesProblem(400).ProducesProblem(404);

        models.MapPost("/{name}/versions/{version:long}/activate", async (string name, long version, IGrainFactory grains) =>
            {
                var grain = grains.GetGrain<IModelGrain>(CheckName(name));
                var versions = await grain.ListVersionsAsync();
                if (!versions.Any(v => v.Version == version))
                    return Results.Problem(statusCode: 404, title: "Not found",
                        detail: $"Model '{name}' has no retained version {version}; retained: {string.Join(", ", versions.Select(v => v.Version))}.");
                return Results.Ok(await grain.ActivateAsync(version));
            })
            .WithSummary("Makes a retained version active (rollback or roll forward).").Produces<ModelInfo>().ProducesProblem(404);
    }

    internal static string CheckName(string? name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 128 || name.Any(c => char.IsControl(c) || c == '/'))
            throw new RequestValidationException("A model name must be 1..128 printable characters without '/'.");
        return name;
    }
}
