using System.Diagnostics;
using System.Text.Json;
using LstmOrleans.Abstractions;
using LstmOrleans.Silo.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace LstmOrleans.Silo.Tests;

/// <summary>
/// The rejection-to-status mapping of <see cref="ApiExceptionHandler"/>, through the silo's own service registration
/// (<see cref="ApiEndpoints.AddLstmOrleansApi"/>) and ASP.NET Core's exception handler middleware. Some reasons cannot be
/// provoked through a running silo (<see cref="RejectionReason.NonFiniteResult"/>: a publish of weights that would
/// overflow is refused), so the request pipeline is run in process with an endpoint that throws the grain's exception.
/// </summary>
public sealed class ApiExceptionHandlerTests
{
    /// <summary>
    /// The status each reason is answered with, written out rather than read from the handler: a reason added to
    /// <see cref="RejectionReason"/> without a decision here fails, instead of silently falling to the handler's 400 default.
    /// </summary>
    private static readonly Dictionary<RejectionReason, int> ExpectedStatus = new()
    {
        [RejectionReason.NonFiniteValue] = StatusCodes.Status400BadRequest,
        [RejectionReason.WrongLength] = StatusCodes.Status400BadRequest,
        [RejectionReason.TimestampBackwards] = StatusCodes.Status409Conflict,
        [RejectionReason.BatchTooLarge] = StatusCodes.Status413PayloadTooLarge,
        [RejectionReason.BatchOutOfOrder] = StatusCodes.Status400BadRequest,
        [RejectionReason.Empty] = StatusCodes.Status400BadRequest,
        [RejectionReason.MissingValues] = StatusCodes.Status400BadRequest,
        [RejectionReason.InvalidTimestamp] = StatusCodes.Status400BadRequest,
        [RejectionReason.SequenceExhausted] = StatusCodes.Status409Conflict,
        [RejectionReason.NonFiniteResult] = StatusCodes.Status422UnprocessableEntity,
        [RejectionReason.InvalidSequence] = StatusCodes.Status400BadRequest,
        [RejectionReason.InvalidStreamId] = StatusCodes.Status400BadRequest,
        // The sender's clock is wrong: bad input like a value beyond the accepted magnitude, not a conflict with the stream.
        [RejectionReason.TimestampTooFarAhead] = StatusCodes.Status400BadRequest,
    };

    public static TheoryData<RejectionReason> EveryReason() => new(Enum.GetValues<RejectionReason>());

    /// <summary>Runs one request through the silo's exception handling, its endpoint throwing <paramref name="exception"/>.</summary>
    private static async Task<(int Status, string? ContentType, JsonElement Body)> ThrowThroughPipelineAsync(Exception exception)
    {
        var services = new ServiceCollection();
        // What the web host provides around the silo's own registrations.
        services.AddLogging();
        services.AddMetrics();
        services.AddSingleton(new DiagnosticListener("LstmOrleans.Silo.Tests"));
        services.AddLstmOrleansApi();
        await using var provider = services.BuildServiceProvider();

        var app = new ApplicationBuilder(provider);
        app.UseExceptionHandler();
        app.Run(_ => throw exception);
        var pipeline = app.Build();

        var context = new DefaultHttpContext { RequestServices = provider };
        context.Request.Method = HttpMethods.Post;
        context.Request.Path = "/streams/s/observations";
        var body = new MemoryStream();
        context.Response.Body = body;
        await pipeline(context);
        var text = System.Text.Encoding.UTF8.GetString(body.ToArray());
        Assert.False(string.IsNullOrEmpty(text), $"no body written with status {context.Response.StatusCode}");
        return (context.Response.StatusCode, context.Response.ContentType, JsonDocument.Parse(text).RootElement.Clone());
    }

    [Theory]
    [MemberData(nameof(EveryReason))]
    public async Task Every_rejection_reason_is_answered_with_its_status_as_problem_details(RejectionReason reason)
    {
        Assert.True(ExpectedStatus.TryGetValue(reason, out int expected),
            $"RejectionReason.{reason} has no expected HTTP status in this test: decide its mapping in ApiExceptionHandler.StatusFor, then add it here.");
        string message = $"test rejection {reason}";

        var (status, contentType, problem) = await ThrowThroughPipelineAsync(new ObservationRejectedException(reason, message, sequence: 7));

        Assert.Equal(expected, status);
        Assert.Equal("application/problem+json", contentType);
        Assert.Equal(expected, problem.GetProperty("status").GetInt32());
        Assert.Equal($"Observation rejected: {reason}", problem.GetProperty("title").GetString());
        Assert.Equal(message, problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task A_non_finite_result_is_422_not_a_client_error_400_nor_a_crash_500()
    {
        // The one reason no request to a running silo can provoke any more; spelled out so a change of its status is
        // seen as such, not as a table edit.
        const string message = "The model's step on this observation came out NaN or infinite; the stream kept its previous state.";
        var (status, _, problem) = await ThrowThroughPipelineAsync(new ObservationRejectedException(RejectionReason.NonFiniteResult, message));

        Assert.Equal(StatusCodes.Status422UnprocessableEntity, status);
        Assert.Equal(StatusCodes.Status422UnprocessableEntity, problem.GetProperty("status").GetInt32());
        Assert.Equal("Observation rejected: NonFiniteResult", problem.GetProperty("title").GetString());
        Assert.Equal(message, problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task An_exception_the_handler_does_not_map_stays_a_500_without_its_message()
    {
        // The control for the pipeline above: the middleware's own default, so the 4xx statuses are the handler's doing.
        var (status, _, problem) = await ThrowThroughPipelineAsync(new InvalidOperationException("internal detail that must not leak"));

        Assert.Equal(StatusCodes.Status500InternalServerError, status);
        Assert.DoesNotContain("internal detail", problem.ToString());
    }
}
