using System.Net;
using System.Text;
using System.Text.Json;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// Requests that do not bind (a query value that is no number, a wrong JSON type, no body, a version that is no number)
/// and unknown streams: problem details that say what is wrong and what is accepted, without .NET type names.
/// </summary>
[Collection(SiloCollection.Name)]
public sealed class HttpRequestErrorTests(SiloProcess silo)
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>The problem's detail, after checking status, media type and that it names no .NET type.</summary>
    private static async Task<string> DetailAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(expected == response.StatusCode, $"expected {(int)expected}, got {(int)response.StatusCode}: {body}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var detail = JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString()!;
            foreach (var internals in new[] { "LstmOrleans.", "Nullable<", "Int32", "Int64", "System.", "Did you mean", "Service" })
                Assert.DoesNotContain(internals, detail);
            return detail;
        }
    }

    [Fact]
    public async Task A_query_value_that_is_not_an_integer_is_400_naming_the_parameter_and_its_range()
    {
        using var http = silo.CreateHttpClient();
        // It was 'Failed to bind parameter "Nullable<int> max" from "abc".'
        Assert.Equal("The query parameter 'max' must be an integer in 1..100000; got 'abc'.",
            await DetailAsync(await http.GetAsync("/streams/query-bad/history?max=abc"), HttpStatusCode.BadRequest));
        Assert.Equal("The query parameter 'limit' must be an integer in 1..1000; got '1.5'.",
            await DetailAsync(await http.GetAsync("/models?limit=1.5"), HttpStatusCode.BadRequest));
        Assert.Equal("The query parameter 'limit' must be an integer in 1..1000; got 'ten'.",
            await DetailAsync(await http.GetAsync("/models/default/streams?limit=ten"), HttpStatusCode.BadRequest));
    }

    [Fact]
    public async Task A_wrong_JSON_type_or_enum_value_names_the_property_and_what_it_accepts_and_creates_nothing()
    {
        using var http = silo.CreateHttpClient();
        // It was "The JSON value could not be converted to LstmOrleans.Silo.Api.CreateModelRequest", without the names.
        var enumValue = await DetailAsync(await http.PostAsync("/models", Json("""{"name":"json-type-bad","normalization":"foo"}""")), HttpStatusCode.BadRequest);
        Assert.StartsWith("In the request body, 'normalization' must be one of None, RunningZScore (line 1, byte ", enumValue);
        var integer = await DetailAsync(await http.PostAsync("/models", Json("""{"name":"json-type-bad","hiddenSize":"eight"}""")), HttpStatusCode.BadRequest);
        Assert.StartsWith("In the request body, 'hiddenSize' must be an integer (line 1, byte ", integer);
        var element = await DetailAsync(await http.PostAsync("/models", Json("""{"name":"json-type-bad","features":["a",2]}""")), HttpStatusCode.BadRequest);
        Assert.StartsWith("In the request body, 'features[1]' must be a string (line 1, byte ", element);
        var flag = await DetailAsync(await http.PostAsync("/models", Json("""{"name":"json-type-bad","residual":"yes"}""")), HttpStatusCode.BadRequest);
        Assert.StartsWith("In the request body, 'residual' must be true or false", flag);
        var array = await DetailAsync(await http.PostAsync("/models", Json("""[{"name":"json-type-bad"}]""")), HttpStatusCode.BadRequest);
        Assert.StartsWith("The request body must be an object with the properties name (required), inputSize, hiddenSize, ", array);
        // A misspelt property: the accepted ones are listed (the message named the .NET type).
        var unknown = await DetailAsync(await http.PostAsync("/models", Json("""{"name":"json-type-bad","hidenSize":8}""")), HttpStatusCode.BadRequest);
        Assert.StartsWith("The request body has an unknown property 'hidenSize' (line 1, byte ", unknown);
        Assert.Contains("; it must be an object with the properties name (required), inputSize, hiddenSize, layers, horizons, features, targetIndex, normalization, seed, calendarFeatures, residual.", unknown);
        // Training settings: a duration and a number.
        var duration = await DetailAsync(await http.PutAsync("/models/default/training/settings", Json("""{"period":5}""")), HttpStatusCode.BadRequest);
        Assert.StartsWith("In the request body, 'period' must be a duration string, e.g. \"00:05:00\"", duration);
        // Malformed JSON still says where it broke.
        var truncated = await DetailAsync(await http.PutAsync("/streams/json-type-bad/model", Json("""{"model": """)), HttpStatusCode.BadRequest);
        Assert.StartsWith("The request body could not be read as JSON: ", truncated);
        Assert.EndsWith("(line 1, byte 11).", truncated);

        await DetailAsync(await http.GetAsync("/models/json-type-bad"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Training_settings_without_a_required_property_are_400_naming_every_missing_one_and_change_nothing()
    {
        using var http = silo.CreateHttpClient();
        var before = await ModelWithSettingsAsync(http, "settings-partial",
            """{"period":"02:00:00","minNewObservations":5,"sampleSize":7,"epochs":3,"timeBudget":"00:00:30","learningRate":0.002,"windowLength":16}""");

        // It bound the omitted ones as 0: "SampleSize must be between 1 and 100000, got 0".
        var epochsOnly = await DetailAsync(await http.PutAsync("/models/settings-partial/training/settings", Json("""{"epochs":10}""")), HttpStatusCode.BadRequest);
        Assert.StartsWith("The request body lacks the required properties period, minNewObservations, sampleSize, timeBudget, learningRate, windowLength; nothing was changed. " +
            "It must be an object with the properties period (required), minNewObservations (required), ", epochsOnly);
        Assert.DoesNotContain("got 0", epochsOnly);
        // Without "period" it was accepted with a period of 0: the schedule silently off. Names match case-insensitively, as in binding.
        var noPeriod = await DetailAsync(await http.PutAsync("/models/settings-partial/training/settings",
            Json("""{"MinNewObservations":0,"sampleSize":16,"epochs":3,"timeBudget":"00:00:30","learningRate":0.002,"windowLength":16,"stride":4}""")), HttpStatusCode.BadRequest);
        Assert.StartsWith("The request body lacks the required property period; nothing was changed.", noPeriod);
        Assert.Equal(before, await SettingsAsync(http, "settings-partial"));

        // The optional ones (stride, batchSize, ...) may be omitted: they take their defaults.
        var settings = JsonDocument.Parse(before).RootElement;
        Assert.Equal(32, settings.GetProperty("batchSize").GetInt32());
        Assert.Equal("02:00:00", settings.GetProperty("period").GetString());
    }

    [Fact]
    public async Task A_training_period_shorter_than_the_minimum_reminder_period_is_400_naming_the_minimum()
    {
        using var http = silo.CreateHttpClient();
        const string complete = """{"period":"02:00:00","minNewObservations":0,"sampleSize":7,"epochs":3,"timeBudget":"00:00:30","learningRate":0.002,"windowLength":16}""";
        var before = await ModelWithSettingsAsync(http, "settings-period", complete);

        // The schedule ticks on a reminder, which this silo (Orleans' default) lets tick at most once a minute: a
        // period of 1 s was accepted and silently ran rounds a minute or more apart.
        var tooShort = await DetailAsync(await http.PutAsync("/models/settings-period/training/settings", Json(complete.Replace("02:00:00", "00:00:01"))), HttpStatusCode.BadRequest);
        Assert.Contains("Period must be zero (no periodic rounds) or at least 00:01:00", tooShort);
        Assert.EndsWith("got 00:00:01.", tooShort);
        Assert.Equal(before, await SettingsAsync(http, "settings-period"));
        // The minimum itself, and zero (no schedule), are accepted.
        foreach (var period in new[] { "00:01:00", "00:00:00" })
        {
            using var accepted = await http.PutAsync("/models/settings-period/training/settings", Json(complete.Replace("02:00:00", period)));
            Assert.True(accepted.IsSuccessStatusCode, await accepted.Content.ReadAsStringAsync());
            Assert.Equal(period, JsonDocument.Parse(await SettingsAsync(http, "settings-period")).RootElement.GetProperty("period").GetString());
        }
    }

    /// <summary>Creates <paramref name="model"/> with its training <paramref name="settings"/>; returns them as stored.</summary>
    private static async Task<string> ModelWithSettingsAsync(HttpClient http, string model, string settings)
    {
        (await http.PostAsync("/models", Json($$"""{"name":"{{model}}","hiddenSize":8}"""))).EnsureSuccessStatusCode();
        using (var configured = await http.PutAsync($"/models/{model}/training/settings", Json(settings)))
            Assert.True(configured.IsSuccessStatusCode, await configured.Content.ReadAsStringAsync());
        return await SettingsAsync(http, model);
    }

    /// <summary>The model's training settings as the API shows them (raw JSON, to compare before and after).</summary>
    private static async Task<string> SettingsAsync(HttpClient http, string model) =>
        JsonDocument.Parse(await http.GetStringAsync($"/models/{model}/training")).RootElement.GetProperty("settings").GetRawText();

    [Fact]
    public async Task A_missing_body_says_a_JSON_body_is_required_and_what_it_holds()
    {
        using var http = silo.CreateHttpClient();
        // It was "Implicit body inferred for parameter "request" but no body was provided. Did you mean to use a Service instead?"
        Assert.Equal("A JSON body is required: an object with the properties model.",
            await DetailAsync(await http.PutAsync("/streams/no-body/model", Json("")), HttpStatusCode.BadRequest));
        Assert.Equal("A JSON body is required: an object with the properties model.",
            await DetailAsync(await http.PutAsync("/streams/no-body/model", Json("null")), HttpStatusCode.BadRequest));
        var create = await DetailAsync(await http.PostAsync("/models", Json("")), HttpStatusCode.BadRequest);
        Assert.StartsWith("A JSON body is required: an object with the properties name (required), inputSize, ", create);
        // No body and no Content-Type (curl -XPUT without -d).
        using var bare = new HttpRequestMessage(HttpMethod.Put, "/streams/no-body/model");
        Assert.Equal("A JSON body is required: an object with the properties model.", await DetailAsync(await http.SendAsync(bare), HttpStatusCode.BadRequest));

        await DetailAsync(await http.GetAsync("/streams/no-body/"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task A_JSON_route_answers_another_or_no_content_type_with_415_saying_the_body_must_be_JSON()
    {
        using var http = silo.CreateHttpClient();
        // Routing refused these with a problem that had only the status's name, unlike the ingest route's 415.
        Assert.Equal("Unsupported Content-Type 'text/plain'; use application/json.",
            await DetailAsync(await http.PostAsync("/models", new StringContent("""{"name":"ct-bad"}""", Encoding.UTF8, "text/plain")), HttpStatusCode.UnsupportedMediaType));
        Assert.Equal("Unsupported Content-Type 'text/plain'; use application/json.",
            await DetailAsync(await http.PutAsync("/models/default/training/settings", new StringContent("{}", Encoding.UTF8, "text/plain")), HttpStatusCode.UnsupportedMediaType));
        Assert.Equal("Unsupported Content-Type 'text/json'; use application/json.",
            await DetailAsync(await http.PutAsync("/streams/ct-bad/model", new StringContent("""{"model":null}""", Encoding.UTF8, "text/json")), HttpStatusCode.UnsupportedMediaType));
        // A body without a Content-Type passes routing and was refused by binding: "Expected a supported JSON media type but got """.
        using var untyped = new ByteArrayContent(Encoding.UTF8.GetBytes("""{"name":"ct-bad"}"""));
        Assert.Null(untyped.Headers.ContentType);
        Assert.Equal("The request has a body but no Content-Type; use application/json.",
            await DetailAsync(await http.PostAsync("/models", untyped), HttpStatusCode.UnsupportedMediaType));

        await DetailAsync(await http.GetAsync("/models/ct-bad"), HttpStatusCode.NotFound);
        await DetailAsync(await http.GetAsync("/streams/ct-bad/"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task An_unknown_route_or_a_method_its_route_does_not_take_is_a_problem_saying_so()
    {
        using var http = silo.CreateHttpClient();
        // Both had a problem body with only the status's name.
        Assert.Equal("No route matches GET /no-such-route; the routes are listed at /openapi/v1.json.",
            await DetailAsync(await http.GetAsync("/no-such-route"), HttpStatusCode.NotFound));
        using (var delete = await http.DeleteAsync("/healthz"))
        {
            Assert.Equal("GET", delete.Content.Headers.Allow.Single());
            Assert.Equal("/healthz does not take DELETE; it takes GET.", await DetailAsync(delete, HttpStatusCode.MethodNotAllowed));
        }
        Assert.Equal("/models/default/versions/1/activate does not take GET; it takes POST.",
            await DetailAsync(await http.GetAsync("/models/default/versions/1/activate"), HttpStatusCode.MethodNotAllowed));
    }

    [Fact]
    public async Task A_version_or_round_that_is_not_a_number_is_400_saying_what_it_must_be()
    {
        using var http = silo.CreateHttpClient();
        // It matched no route: a bare 404, as if the model did not exist.
        Assert.Equal("The path parameter 'version' must be a positive integer; got 'abc'.",
            await DetailAsync(await http.PostAsync("/models/default/versions/abc/activate", null), HttpStatusCode.BadRequest));
        Assert.Equal("The path parameter 'roundId' must be an integer; got 'latest'.",
            await DetailAsync(await http.GetAsync("/models/default/training/rounds/latest"), HttpStatusCode.BadRequest));
        // Numbers that can be no version: they bound, and were the 404 of a version that is not retained.
        foreach (var notPositive in new[] { "0", "-1" })
            Assert.Equal($"The path parameter 'version' must be a positive integer; got '{notPositive}'.",
                await DetailAsync(await http.PostAsync($"/models/default/versions/{notPositive}/activate", null), HttpStatusCode.BadRequest));
        // A number that is no retained version is still a 404 that lists the retained ones.
        Assert.Contains("has no retained version 999", await DetailAsync(await http.PostAsync("/models/default/versions/999/activate", null), HttpStatusCode.NotFound));
    }

    [Fact]
    public async Task A_stream_that_was_never_used_is_404_on_every_read_but_a_bound_one_without_values_exists()
    {
        using var http = silo.CreateHttpClient();
        // The summary of any id was a 200 with an empty summary, while /prediction and /state said 404.
        Assert.Equal("Stream 'never-used-1' does not exist: it has received no observations and is not bound to a model.",
            await DetailAsync(await http.GetAsync("/streams/never-used-1/"), HttpStatusCode.NotFound));
        await DetailAsync(await http.GetAsync("/streams/never-used-1/prediction"), HttpStatusCode.NotFound);
        await DetailAsync(await http.GetAsync("/streams/never-used-1/state"), HttpStatusCode.NotFound);

        // Bound, no values yet: it exists.
        using (var bound = await http.PutAsync("/streams/bound-empty-1/model", Json("""{"model":"default"}""")))
            Assert.True(bound.IsSuccessStatusCode, await bound.Content.ReadAsStringAsync());
        var summary = JsonDocument.Parse(await http.GetStringAsync("/streams/bound-empty-1/")).RootElement;
        Assert.Equal("default", summary.GetProperty("modelName").GetString());
        Assert.Equal(0, summary.GetProperty("stepCount").GetInt64());

        // Deleted, it is gone again.
        using (var deleted = await http.DeleteAsync("/streams/bound-empty-1/"))
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        await DetailAsync(await http.GetAsync("/streams/bound-empty-1/"), HttpStatusCode.NotFound);
    }
}
