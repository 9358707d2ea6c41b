using LstmOrleans.Abstractions;

namespace LstmOrleans.Silo.Api;

/// <summary>Answer to POST /models/{name}/training/rounds (202, Location = the round's record).</summary>
public sealed record StartRoundResponse(long RoundId);

/// <summary>The training grain of a model: status, settings, pause/resume, and rounds on demand.</summary>
internal static class TrainingEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        var training = app.MapGroup("/models/{name}/training").WithTags("Training");

        training.MapGet("/", async (string name, IGrainFactory grains) =>
                Results.Ok(await Grain(grains, name).GetStatusAsync()))
            .WithSummary("Training status: settings, schedule, recent rounds.").Produces<TrainingStatus>().ProducesProblem(404);

        training.MapPut("/settings", async (string name, TrainingSettings settings, HttpRequest request, IGrainFactory grains) =>
            {
                // A replacement: an omitted required property is a 400, not a 0 (CompleteBody).
                await CompleteBody.CheckAsync<TrainingSettings>(request);
                return Results.Ok(await Grain(grains, name).ConfigureAsync(settings));
            })
            .WithMetadata(CompleteBody.Metadata)
            .WithSummary("Replaces the training settings: the seven required ones must all be given, the others take their defaults (validated; nothing changes on a bad or missing value).")
            .Produces<TrainingStatus>().ProducesProblem(400).ProducesProblem(404);

        training.MapPost("/pause", async (string name, IGrainFactory grains) => Results.Ok(await Grain(grains, name).PauseAsync()))
            .WithSummary("Stops scheduled and manual rounds until resumed.").Produces<TrainingStatus>().ProducesProblem(404);

        training.MapPost("/resume", async (string name, IGrainFactory grains) => Results.Ok(await Grain(grains, name).ResumeAsync()))
            .WithSummary("Re-enables the schedule.").Produces<TrainingStatus>().ProducesProblem(404);

        training.MapPost("/rounds", async (string name, IGrainFactory grains) =>
            {
                var roundId = await Grain(grains, name).StartRoundAsync();
                return Results.Accepted($"/models/{Uri.EscapeDataString(name)}/training/rounds/{roundId}", new StartRoundResponse(roundId));
            })
            // Typed, so that OpenAPI shows the 202 and its body (with an anonymous type it listed only the errors).
            .WithSummary("Starts a training round now (or joins the running one); poll the returned location.")
            .Produces<StartRoundResponse>(202).ProducesProblem(400).ProducesProblem(404);

        training.MapGet("/rounds/{roundId}", async (string name, long roundId, IGrainFactory grains) =>   // no :long: a 400 saying why, not a bare 404
                await Grain(grains, name).GetRoundAsync(roundId) is { } round
                    ? Results.Ok(round)
                    : Results.Problem(statusCode: 404, title: "Not found", detail: $"Round {roundId} of model '{name}' is running or unknown."))
            .WithSummary("A finished round's record (404 while it runs).").Produces<TrainingRoundRecord>().ProducesProblem(400).ProducesProblem(404);
    }

    private static ITrainingGrain Grain(IGrainFactory grains, string name) => grains.GetGrain<ITrainingGrain>(ModelEndpoints.CheckName(name));
}
