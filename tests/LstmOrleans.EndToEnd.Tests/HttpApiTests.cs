using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>The HTTP API of the real silo process, including every rejection path.</summary>
[Collection(SiloCollection.Name)]
public sealed class HttpApiTests(SiloProcess silo)
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"expected {(int)expected}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal((int)expected, problem.GetProperty("status").GetInt32());
        return problem;
    }

    private async Task CreateModelAsync(HttpClient http, string name)
    {
        using var response = await http.PostAsync("/models", Json($$"""{"name":"{{name}}","hiddenSize":8}"""));
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    private static async Task<long> StepCountAsync(HttpClient http, string stream)
    {
        using var response = await http.GetAsync($"/streams/{stream}/");
        // 404: the stream has never received a value (and is not bound), so no steps.
        if (response.StatusCode == HttpStatusCode.NotFound) return 0;
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("stepCount").GetInt64();
    }

    /// <summary>Polls the Location of a started round until its record is there (a 404 while it runs).</summary>
    private static async Task<JsonElement> FinishedRoundAsync(HttpClient http, HttpResponseMessage start)
    {
        var location = start.Headers.Location!.ToString();
        for (var i = 0; i < 240; i++)
        {
            using var poll = await http.GetAsync(location);
            var body = await poll.Content.ReadAsStringAsync();
            if (poll.StatusCode == HttpStatusCode.OK) return JsonDocument.Parse(body).RootElement;
            Assert.True(poll.StatusCode == HttpStatusCode.NotFound, $"{(int)poll.StatusCode}: {body}");
            await Task.Delay(500);
        }
        throw new Xunit.Sdk.XunitException($"The round at {location} did not finish within 2 minutes.");
    }

    [Fact]
    public void The_silo_logs_the_collector_its_runtimeconfig_asks_for()
    {
        // The silo host ships server GC with DATAS aiming at a lower GC cost than the runtime's default (the latency
        // tail at half load, BENCHMARKS.md "Session 14"); the running process reports what the runtime actually applied.
        var shipped = Path.Combine(Path.GetDirectoryName(Binaries.SiloDll)!, "LstmOrleans.Silo.runtimeconfig.json");
        using var config = JsonDocument.Parse(File.ReadAllText(shipped));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        var target = properties.GetProperty("System.GC.DTargetTCP").GetInt32();
        Assert.Equal(1, target);
        // The runtime falls back to workstation GC (and so no DATAS) on a single processor.
        if (Environment.ProcessorCount == 1) { Assert.Contains(" processors, workstation GC", silo.Log); return; }
        Assert.Contains(" processors, server GC, ", silo.Log);
        Assert.Contains($"; DATAS target TCP {target} %", silo.Log);
    }

    [Fact]
    public async Task Health_endpoints_answer_without_a_key()
    {
        using var http = silo.CreateHttpClient(withKey: false);
        Assert.Equal("ok", await http.GetStringAsync("/healthz"));
        Assert.Equal("ready", await http.GetStringAsync("/readyz"));
    }

    [Fact]
    public async Task Missing_or_wrong_api_key_is_401_and_nothing_is_ingested()
    {
        using var anonymous = silo.CreateHttpClient(withKey: false);
        var problem = await ProblemAsync(await anonymous.PostAsync("/streams/keyless/observations", Json("""{"value":1}""")), HttpStatusCode.Unauthorized);
        Assert.Contains("X-Api-Key", problem.GetProperty("detail").GetString());

        using var wrong = silo.CreateHttpClient(withKey: false);
        wrong.DefaultRequestHeaders.Add("X-Api-Key", "not-the-key");
        await ProblemAsync(await wrong.PostAsync("/streams/keyless/observations", Json("""{"value":1}""")), HttpStatusCode.Unauthorized);
        await ProblemAsync(await wrong.GetAsync("/models/default"), HttpStatusCode.Unauthorized);

        using var http = silo.CreateHttpClient();
        Assert.Equal(0, await StepCountAsync(http, "keyless"));
    }

    [Fact]
    public async Task Ingest_json_single_and_batch_then_read_prediction_history_and_state()
    {
        using var http = silo.CreateHttpClient();
        await CreateModelAsync(http, "e2e-json");
        (await http.PutAsJsonAsync("/streams/json-1/model", new { model = "e2e-json" })).EnsureSuccessStatusCode();

        using var single = await http.PostAsync("/streams/json-1/observations",
            Json("""{"sequence":1,"timestamp":"2024-01-01T00:00:00Z","values":[10.5]}"""));
        Assert.True(single.IsSuccessStatusCode, await single.Content.ReadAsStringAsync());

        var batch = string.Join(",", Enumerable.Range(2, 99).Select(i =>
            $$"""{"sequence":{{i}},"timestamp":"2024-01-01T{{i / 60:00}}:{{i % 60:00}}:00Z","values":[{{10 + Math.Sin(i / 5.0):R}}]}"""));
        using var batchResponse = await http.PostAsync("/streams/json-1/observations", Json($"[{batch}]"));
        var body = JsonDocument.Parse(await batchResponse.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.OK, batchResponse.StatusCode);
        Assert.Equal(99, body.GetProperty("received").GetInt32());
        Assert.Equal(99, body.GetProperty("applied").GetInt32());
        Assert.Equal(100, body.GetProperty("latest").GetProperty("stepCount").GetInt64());

        // A retry of the same batch is recognised by its sequence numbers: nothing is applied twice.
        using var retry = await http.PostAsync("/streams/json-1/observations", Json($"[{batch}]"));
        var retried = JsonDocument.Parse(await retry.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(99, retried.GetProperty("duplicates").GetInt32());
        Assert.Equal(100, await StepCountAsync(http, "json-1"));

        var prediction = JsonDocument.Parse(await http.GetStringAsync("/streams/json-1/prediction")).RootElement;
        Assert.Equal(100, prediction.GetProperty("sequence").GetInt64());
        var forecast = prediction.GetProperty("predictions")[0].GetDouble();
        Assert.True(double.IsFinite(forecast));
        Assert.True(prediction.GetProperty("lower")[0].GetDouble() <= forecast && forecast <= prediction.GetProperty("upper")[0].GetDouble());

        var history = JsonDocument.Parse(await http.GetStringAsync("/streams/json-1/history?max=5")).RootElement;
        Assert.Equal(5, history.GetArrayLength());
        Assert.Equal(100, history[4].GetProperty("sequence").GetInt64());

        var state = JsonDocument.Parse(await http.GetStringAsync("/streams/json-1/state")).RootElement;
        Assert.Equal(8, state.GetProperty("hidden").GetArrayLength());
    }

    [Fact]
    public async Task A_stream_id_with_a_slash_is_addressed_with_percent_2F()
    {
        // The demo's and replay's streams are named "demo/..." and "replay/...". An id is one route segment, so its slash
        // travels escaped (either case), and every stream route reaches the grain the client calls "site-7/pump-2".
        using var http = silo.CreateHttpClient();
        using var ingest = await http.PostAsync("/streams/site-7%2Fpump-2/observations", Json("""[{"value":1.5},{"value":2.5}]"""));
        var body = await ingest.Content.ReadAsStringAsync();
        Assert.True(ingest.IsSuccessStatusCode, body);
        Assert.Equal("site-7/pump-2", JsonDocument.Parse(body).RootElement.GetProperty("streamId").GetString());

        var summary = JsonDocument.Parse(await http.GetStringAsync("/streams/site-7%2fpump-2/")).RootElement;
        Assert.Equal("site-7/pump-2", summary.GetProperty("streamId").GetString());
        Assert.Equal(2, summary.GetProperty("stepCount").GetInt64());
        var prediction = JsonDocument.Parse(await http.GetStringAsync("/streams/site-7%2Fpump-2/prediction")).RootElement;
        Assert.Equal("site-7/pump-2", prediction.GetProperty("streamId").GetString());
        Assert.Equal(2, JsonDocument.Parse(await http.GetStringAsync("/streams/site-7%2Fpump-2/history")).RootElement.GetArrayLength());
        Assert.Contains("site-7/pump-2", await http.GetStringAsync("/models/default/streams"));
        // Unescaped, the slash splits the id into two segments, which is no stream route.
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/streams/site-7/pump-2/")).StatusCode);
    }

    [Fact]
    public async Task Ndjson_and_csv_bodies_are_ingested_in_order()
    {
        using var http = silo.CreateHttpClient();
        var ndjson = string.Join("\n", Enumerable.Range(1, 20).Select(i => $$"""{"sequence":{{i}},"value":{{i}}}"""));
        using var nd = await http.PostAsync("/streams/nd-1/observations", new StringContent(ndjson, Encoding.UTF8, "application/x-ndjson"));
        Assert.True(nd.IsSuccessStatusCode, await nd.Content.ReadAsStringAsync());
        Assert.Equal(20, await StepCountAsync(http, "nd-1"));

        // NAB's own format; sequences are numbered by the server after the stream's last one.
        var csv = "timestamp,value\n" + string.Join("\n", Enumerable.Range(0, 30).Select(i => $"2014-02-14 14:{i:00}:00,{i * 0.5:R}"));
        using var c = await http.PostAsync("/streams/csv-1/observations", new StringContent(csv, Encoding.UTF8, "text/csv"));
        Assert.True(c.IsSuccessStatusCode, await c.Content.ReadAsStringAsync());
        var history = JsonDocument.Parse(await http.GetStringAsync("/streams/csv-1/history?max=100")).RootElement;
        Assert.Equal(30, history.GetArrayLength());
        Assert.Equal(30, history[29].GetProperty("sequence").GetInt64());
        Assert.Equal(14.5, history[29].GetProperty("values")[0].GetDouble(), 5);
    }

    [Fact]
    public async Task Bad_bodies_are_400_problem_details_and_change_nothing()
    {
        using var http = silo.CreateHttpClient();
        await CreateModelAsync(http, "e2e-bad");
        (await http.PutAsJsonAsync("/streams/bad-1/model", new { model = "e2e-bad" })).EnsureSuccessStatusCode();
        (await http.PostAsync("/streams/bad-1/observations", Json("""{"sequence":1,"value":1}"""))).EnsureSuccessStatusCode();

        var malformed = await ProblemAsync(await http.PostAsync("/streams/bad-1/observations", Json("""{"sequence":2,"value":1""")), HttpStatusCode.BadRequest);
        Assert.Contains("Malformed JSON", malformed.GetProperty("detail").GetString());

        var nan = await ProblemAsync(await http.PostAsync("/streams/bad-1/observations", Json("""{"sequence":2,"values":["NaN"]}""")), HttpStatusCode.BadRequest);
        Assert.Contains("finite", nan.GetProperty("detail").GetString());
        await ProblemAsync(await http.PostAsync("/streams/bad-1/observations", Json("""{"sequence":2,"value":1e400}""")), HttpStatusCode.BadRequest);

        var dims = await ProblemAsync(await http.PostAsync("/streams/bad-1/observations", Json("""{"sequence":2,"values":[1,2]}""")), HttpStatusCode.BadRequest);
        Assert.Contains("expects 1", dims.GetProperty("detail").GetString());

        // One bad element spoils the whole batch: the good element before it is not applied either.
        await ProblemAsync(await http.PostAsync("/streams/bad-1/observations",
            Json("""[{"sequence":2,"value":1},{"sequence":3,"values":[1,2]}]""")), HttpStatusCode.BadRequest);
        await ProblemAsync(await http.PostAsync("/streams/bad-1/observations", Json("""[{"sequence":3,"value":1},{"sequence":2,"value":1}]""")), HttpStatusCode.BadRequest);
        await ProblemAsync(await http.PostAsync("/streams/bad-1/observations", Json("""{"sequence":2,"valu":1}""")), HttpStatusCode.BadRequest);
        await ProblemAsync(await http.PostAsync("/streams/bad-1/observations", new StringContent("x", Encoding.UTF8, "text/plain")), HttpStatusCode.UnsupportedMediaType);
        await ProblemAsync(await http.PostAsync("/streams/bad-1/observations", new StringContent("timestamp,value\n2024-01-01,abc", Encoding.UTF8, "text/csv")), HttpStatusCode.BadRequest);

        Assert.Equal(1, await StepCountAsync(http, "bad-1"));
    }

    [Fact]
    public async Task A_csv_body_without_a_header_is_400_not_short_of_its_first_row()
    {
        // The first line was taken for column names whatever it held: the row was dropped and the rest applied.
        using var http = silo.CreateHttpClient();
        foreach (var body in new[] { "1\n2\n3\n", "2024-01-01 00:00:00,1\n2024-01-01 00:05:00,2\n" })
        {
            var problem = await ProblemAsync(await http.PostAsync("/streams/headerless-1/observations",
                new StringContent(body, Encoding.UTF8, "text/csv")), HttpStatusCode.BadRequest);
            Assert.Contains("header", problem.GetProperty("detail").GetString());
        }
        Assert.Equal(0, await StepCountAsync(http, "headerless-1"));
        (await http.PostAsync("/streams/headerless-1/observations", new StringContent("value\n1\n2\n", Encoding.UTF8, "text/csv"))).EnsureSuccessStatusCode();
        Assert.Equal(2, await StepCountAsync(http, "headerless-1"));
    }

    [Fact]
    public async Task An_unsupported_content_type_is_415_saying_what_is_accepted_and_every_parsed_one_is_accepted()
    {
        // Routing answered every Content-Type but three with a bare 415 before the parser could name the accepted
        // ones, refusing the parser's other names for the same formats too.
        using var http = silo.CreateHttpClient();
        var problem = await ProblemAsync(await http.PostAsync("/streams/media-1/observations",
            new StringContent("1", Encoding.UTF8, "text/plain")), HttpStatusCode.UnsupportedMediaType);
        var detail = problem.GetProperty("detail").GetString();
        Assert.Contains("text/plain", detail);
        Assert.Contains("text/csv", detail);
        Assert.Equal(0, await StepCountAsync(http, "media-1"));

        (await http.PostAsync("/streams/media-1/observations", new StringContent("value\n1\n", Encoding.UTF8, "application/csv"))).EnsureSuccessStatusCode();
        (await http.PostAsync("/streams/media-1/observations", new StringContent("""{"value":2}""", Encoding.UTF8, "text/json"))).EnsureSuccessStatusCode();
        (await http.PostAsync("/streams/media-1/observations", new StringContent("""{"value":3}""", Encoding.UTF8, "application/ndjson"))).EnsureSuccessStatusCode();
        Assert.Equal(3, await StepCountAsync(http, "media-1"));

        // The OpenAPI document still describes the body's formats.
        var doc = JsonDocument.Parse(await http.GetStringAsync("/openapi/v1.json")).RootElement;
        var content = doc.GetProperty("paths").GetProperty("/streams/{streamId}/observations").GetProperty("post").GetProperty("requestBody").GetProperty("content");
        Assert.True(content.TryGetProperty("text/csv", out _));
        Assert.True(content.TryGetProperty("application/x-ndjson", out _));
    }

    [Fact]
    public async Task A_misspelt_property_is_400_naming_it_and_creates_nothing()
    {
        // "hidenSize" was ignored: the model was created with H = 32, and a create with the intended H a conflict.
        using var http = silo.CreateHttpClient();
        var problem = await ProblemAsync(await http.PostAsync("/models", Json("""{"name":"e2e-misspelt","hidenSize":8}""")), HttpStatusCode.BadRequest);
        Assert.Contains("hidenSize", problem.GetProperty("detail").GetString());
        await ProblemAsync(await http.GetAsync("/models/e2e-misspelt"), HttpStatusCode.NotFound);
        await CreateModelAsync(http, "e2e-misspelt");
    }

    [Fact]
    public async Task Values_too_large_to_forecast_with_are_400_and_change_nothing()
    {
        // Finite float32 values near float.MaxValue used to be applied, then overflow the forecast: 500, and every
        // later read of the stream 500 too (JSON cannot carry infinity).
        using var http = silo.CreateHttpClient();
        (await http.PostAsync("/streams/huge-1/observations", Json("""{"sequence":1,"value":1}"""))).EnsureSuccessStatusCode();

        var problem = await ProblemAsync(await http.PostAsync("/streams/huge-1/observations",
            Json("""[{"sequence":2,"value":1e38},{"sequence":3,"value":-1e38}]""")), HttpStatusCode.BadRequest);
        Assert.Contains("magnitude", problem.GetProperty("detail").GetString());
        await ProblemAsync(await http.PostAsync("/streams/huge-1/observations",
            new StringContent("sequence,value\n2,3e38\n", Encoding.UTF8, "text/csv")), HttpStatusCode.BadRequest);
        // Past the grain's batch size (1024) the body goes in several grain calls: a bad value late in it must be
        // refused before the first call, not after it applied the rows before it.
        var rows = string.Join("\n", Enumerable.Range(2, 1500).Select(i => $$"""{"sequence":{{i}},"value":{{(i == 1501 ? "2e30" : "1")}}}"""));
        await ProblemAsync(await http.PostAsync("/streams/huge-1/observations", new StringContent(rows, Encoding.UTF8, "application/x-ndjson")), HttpStatusCode.BadRequest);

        Assert.Equal(1, await StepCountAsync(http, "huge-1"));
        (await http.GetAsync("/streams/huge-1/prediction")).EnsureSuccessStatusCode();
        (await http.PostAsync("/streams/huge-1/observations", Json("""{"sequence":2,"value":1e30}"""))).EnsureSuccessStatusCode();
        (await http.GetAsync("/streams/huge-1/prediction")).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task Server_numbering_with_no_sequence_left_is_409_not_a_silent_duplicate()
    {
        // After sequence long.MaxValue the next number wrapped to long.MinValue, which the stream took for a
        // duplicate: 200 with the value dropped.
        using var http = silo.CreateHttpClient();
        (await http.PostAsync("/streams/maxseq-1/observations", Json($$"""{"sequence":{{long.MaxValue - 1}},"value":1}"""))).EnsureSuccessStatusCode();
        await ProblemAsync(await http.PostAsync("/streams/maxseq-1/observations", Json("""[{"value":2},{"value":3}]""")), HttpStatusCode.Conflict);
        Assert.Equal(1, await StepCountAsync(http, "maxseq-1"));

        // One number is left: it is used.
        (await http.PostAsync("/streams/maxseq-1/observations", Json("""{"value":2}"""))).EnsureSuccessStatusCode();
        Assert.Equal(2, await StepCountAsync(http, "maxseq-1"));
        var problem = await ProblemAsync(await http.PostAsync("/streams/maxseq-1/observations", Json("""{"value":3}""")), HttpStatusCode.Conflict);
        Assert.Contains("no room", problem.GetProperty("detail").GetString());
        Assert.Equal(2, await StepCountAsync(http, "maxseq-1"));
    }

    [Fact]
    public async Task Concurrent_requests_without_sequence_numbers_are_all_applied()
    {
        // The HTTP layer used to number such values from a summary read before the ingest: concurrent requests got the
        // same numbers and all but one were answered 200 'duplicates: 1' with their value dropped.
        using var http = silo.CreateHttpClient();
        const int requests = 24;
        var responses = await Task.WhenAll(Enumerable.Range(1, requests).Select(i =>
            http.PostAsync("/streams/concurrent-1/observations", Json($$"""{"value":{{i}}}"""))));
        foreach (var response in responses)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            Assert.Equal(1, JsonDocument.Parse(body).RootElement.GetProperty("applied").GetInt32());
        }
        Assert.Equal(requests, await StepCountAsync(http, "concurrent-1"));
        var history = JsonDocument.Parse(await http.GetStringAsync("/streams/concurrent-1/history")).RootElement;
        Assert.Equal(Enumerable.Range(1, requests).Select(i => (double)i), history.EnumerateArray().Select(o => o.GetProperty("values")[0].GetDouble()).Order());
    }

    [Fact]
    public async Task Bodies_with_a_byte_order_mark_are_read()
    {
        using var http = silo.CreateHttpClient();
        static ByteArrayContent WithBom(string text, string mediaType)
        {
            var content = new ByteArrayContent([.. Encoding.UTF8.Preamble, .. Encoding.UTF8.GetBytes(text)]);
            content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
            return content;
        }
        using var csv = await http.PostAsync("/streams/bom-1/observations", WithBom("timestamp,value\n2024-01-01 00:00:00,1.5\n", "text/csv"));
        Assert.True(csv.IsSuccessStatusCode, await csv.Content.ReadAsStringAsync());
        using var json = await http.PostAsync("/streams/bom-1/observations", WithBom("""{"timestamp":"2024-01-01T00:01:00Z","value":2.5}""", "application/json"));
        Assert.True(json.IsSuccessStatusCode, await json.Content.ReadAsStringAsync());
        var history = JsonDocument.Parse(await http.GetStringAsync("/streams/bom-1/history")).RootElement;
        Assert.Equal(2, history.GetArrayLength());
        Assert.Equal(new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero), history[0].GetProperty("timestamp").GetDateTimeOffset());
    }

    [Fact]
    public async Task Bodies_and_parameters_that_do_not_bind_are_400_saying_what_is_wrong()
    {
        using var http = silo.CreateHttpClient();
        // Malformed JSON: the problem names the parameter and where the JSON broke (it was a bare "Bad Request").
        var truncated = await ProblemAsync(await http.PutAsync("/streams/bind-bad/model", Json("""{"model": """)), HttpStatusCode.BadRequest);
        Assert.Contains("as JSON", truncated.GetProperty("detail").GetString());
        Assert.Contains("(line 1, byte 11)", truncated.GetProperty("detail").GetString());
        var wrongType = await ProblemAsync(await http.PostAsync("/models", Json("""{"name":"bind-bad","hiddenSize":"eight"}""")), HttpStatusCode.BadRequest);
        Assert.Contains("hiddenSize", wrongType.GetProperty("detail").GetString());
        // A query value that is not a number.
        var query = await ProblemAsync(await http.GetAsync("/streams/bind-bad/history?max=many"), HttpStatusCode.BadRequest);
        Assert.Contains("many", query.GetProperty("detail").GetString());
        await ProblemAsync(await http.GetAsync("/models/bind-bad"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Binding_to_a_blank_or_invalid_model_name_is_400()
    {
        using var http = silo.CreateHttpClient();
        await ProblemAsync(await http.PutAsync("/streams/bind-bad-1/model", Json("""{"model":""}""")), HttpStatusCode.BadRequest);
        await ProblemAsync(await http.PutAsync("/streams/bind-bad-1/model", Json("""{"model":"   "}""")), HttpStatusCode.BadRequest);
        await ProblemAsync(await http.PutAsync("/streams/bind-bad-1/model", Json("""{"model":"a/b"}""")), HttpStatusCode.BadRequest);
        // Still never bound and without values: no stream.
        await ProblemAsync(await http.GetAsync("/streams/bind-bad-1/"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task A_model_with_too_many_parameters_is_400()
    {
        // Every dimension is in range; their product is not (about 2.1 billion parameters).
        using var http = silo.CreateHttpClient();
        var problem = await ProblemAsync(await http.PostAsync("/models", Json("""{"name":"e2e-too-big","hiddenSize":4096,"layers":16}""")), HttpStatusCode.BadRequest);
        Assert.Contains("parameters", problem.GetProperty("detail").GetString());
        await ProblemAsync(await http.GetAsync("/models/e2e-too-big"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Timestamp_going_backwards_is_409()
    {
        using var http = silo.CreateHttpClient();
        (await http.PostAsync("/streams/time-1/observations", Json("""{"sequence":1,"timestamp":"2024-06-01T00:00:00Z","value":1}"""))).EnsureSuccessStatusCode();
        await ProblemAsync(await http.PostAsync("/streams/time-1/observations", Json("""{"sequence":2,"timestamp":"2024-05-01T00:00:00Z","value":1}""")), HttpStatusCode.Conflict);
        Assert.Equal(1, await StepCountAsync(http, "time-1"));
    }

    [Fact]
    public async Task A_timestamp_far_ahead_of_the_silo_clock_is_400_and_changes_nothing()
    {
        // A sensor clock glitch (year 9999) was accepted, and since timestamps never go back every real reading after
        // it was a 409 (unnumbered ones too) until the stream was reset.
        using var http = silo.CreateHttpClient();
        (await http.PostAsync("/streams/future-1/observations", Json("""{"sequence":1,"timestamp":"2024-06-01T00:00:00Z","value":1}"""))).EnsureSuccessStatusCode();

        var problem = await ProblemAsync(await http.PostAsync("/streams/future-1/observations",
            Json("""{"sequence":2,"timestamp":"9999-01-01T00:00:00Z","value":1}""")), HttpStatusCode.BadRequest);
        Assert.Equal("Observation rejected: TimestampTooFarAhead", problem.GetProperty("title").GetString());
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.StartsWith("Observation 2 at 9999-01-01T00:00:00.0000000+00:00 is more than 1.00:00:00 ahead of the silo's clock (", detail);
        Assert.Contains("Streams:MaxTimestampAhead", detail);
        await ProblemAsync(await http.PostAsync("/streams/future-1/observations", Json("""{"timestamp":"9999-01-01T00:00:00Z","value":1}""")), HttpStatusCode.BadRequest);
        // Past the grain's batch size (1024) the body goes in several grain calls: a glitch late in it is refused before
        // the first call, not after it applied the rows before it.
        // (The others without a timestamp: stamped with the silo's clock, and the body stays within Http:MaxRequestBodyBytes.)
        var rows = string.Join("\n", Enumerable.Range(2, 1500).Select(i =>
            i == 1501 ? $$"""{"sequence":{{i}},"timestamp":"9999-01-01T00:00:00Z","value":1}""" : $$"""{"sequence":{{i}},"value":1}"""));
        var parts = await ProblemAsync(await http.PostAsync("/streams/future-1/observations", new StringContent(rows, Encoding.UTF8, "application/x-ndjson")), HttpStatusCode.BadRequest);
        Assert.StartsWith("Observation [1499] at 9999-01-01T00:00:00.0000000+00:00 is more than", parts.GetProperty("detail").GetString());
        Assert.Equal(1, await StepCountAsync(http, "future-1"));

        // Real readings still go in, numbered or not.
        (await http.PostAsync("/streams/future-1/observations", Json("""{"sequence":2,"timestamp":"2024-06-02T00:00:00Z","value":1}"""))).EnsureSuccessStatusCode();
        (await http.PostAsync("/streams/future-1/observations", Json("""{"value":2}"""))).EnsureSuccessStatusCode();
        Assert.Equal(3, await StepCountAsync(http, "future-1"));
    }

    [Fact]
    public async Task Oversized_requests_are_413()
    {
        using var http = silo.CreateHttpClient();
        var big = "[" + string.Join(",", Enumerable.Repeat("""{"value":1.0}""", SiloProcess.MaxBodyBytes / 10)) + "]";
        Assert.True(Encoding.UTF8.GetByteCount(big) > SiloProcess.MaxBodyBytes);
        // Expect: 100-continue makes the refusal deterministic: the server answers 413 before the body is sent.
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/streams/big-1/observations") { Content = Json(big) })
        {
            request.Headers.ExpectContinue = true;
            await ProblemAsync(await http.SendAsync(request), HttpStatusCode.RequestEntityTooLarge);
        }

        // Same body without a Content-Length (chunked): Kestrel stops reading at the limit and answers 413, then
        // drops the connection with the rest of the upload unread, so the client may see the reset instead of the
        // answer. Never a success; at least one of three attempts must read the 413.
        var saw413 = false;
        for (var attempt = 0; attempt < 3 && !saw413; attempt++)
        {
            var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
            chunked.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var request = new HttpRequestMessage(HttpMethod.Post, "/streams/big-1/observations") { Content = chunked };
            request.Headers.TransferEncodingChunked = true;
            try
            {
                using var response = await http.SendAsync(request);
                await ProblemAsync(response, HttpStatusCode.RequestEntityTooLarge);
                saw413 = true;
            }
            catch (HttpRequestException) { }
        }
        Assert.True(saw413, "a chunked oversized body never got its 413");

        // Small in bytes, but more observations than Http:MaxBatchSize.
        var many = "[" + string.Join(",", Enumerable.Repeat("{\"value\":1}", SiloProcess.MaxBatch + 1)) + "]";
        Assert.True(Encoding.UTF8.GetByteCount(many) < SiloProcess.MaxBodyBytes);
        await ProblemAsync(await http.PostAsync("/streams/big-1/observations", Json(many)), HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(0, await StepCountAsync(http, "big-1"));
    }

    [Fact]
    public async Task Models_versions_and_rollback()
    {
        using var http = silo.CreateHttpClient();
        await CreateModelAsync(http, "e2e-models");
        // Same config again: idempotent. Different config: conflict.
        Assert.Equal(HttpStatusCode.Created, (await http.PostAsync("/models", Json("""{"name":"e2e-models","hiddenSize":8}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await http.PostAsync("/models", Json("""{"name":"e2e-models","hiddenSize":9}"""))).StatusCode);

        var info = JsonDocument.Parse(await http.GetStringAsync("/models/e2e-models")).RootElement;
        var parameterCount = info.GetProperty("parameterCount").GetInt32();
        var parameters = string.Join(",", Enumerable.Repeat("0.01", parameterCount));
        using var publish = await http.PostAsync("/models/e2e-models/versions", Json($$"""{"parameters":[{{parameters}}],"description":"e2e"}"""));
        Assert.True(publish.StatusCode == HttpStatusCode.Created, await publish.Content.ReadAsStringAsync());
        await ProblemAsync(await http.PostAsync("/models/e2e-models/versions", Json("""{"parameters":[1,2,3]}""")), HttpStatusCode.BadRequest);
        // Finite but absurd weights, on which every stream's step would overflow: refused naming the tensor, nothing stored.
        var absurd = string.Join(",", Enumerable.Repeat("1e38", parameterCount));
        var refused = await ProblemAsync(await http.PostAsync("/models/e2e-models/versions", Json($$"""{"parameters":[{{absurd}}]}""")), HttpStatusCode.BadRequest);
        Assert.Contains("lstm.weight_ih_l0[0]", refused.GetProperty("detail").GetString());

        var versions = JsonDocument.Parse(await http.GetStringAsync("/models/e2e-models/versions")).RootElement;
        Assert.Equal(2, versions.GetArrayLength());
        Assert.Equal(2, JsonDocument.Parse(await http.GetStringAsync("/models/e2e-models")).RootElement.GetProperty("activeVersion").GetInt64());

        using var rollback = await http.PostAsync("/models/e2e-models/versions/1/activate", null);
        Assert.True(rollback.IsSuccessStatusCode, await rollback.Content.ReadAsStringAsync());
        Assert.Equal(1, JsonDocument.Parse(await rollback.Content.ReadAsStringAsync()).RootElement.GetProperty("activeVersion").GetInt64());

        await ProblemAsync(await http.PostAsync("/models/e2e-models/versions/99/activate", null), HttpStatusCode.NotFound);
        await ProblemAsync(await http.GetAsync("/models/no-such-model"), HttpStatusCode.NotFound);
        await ProblemAsync(await http.PutAsJsonAsync("/streams/unbound-1/model", new { model = "no-such-model" }), HttpStatusCode.NotFound);
        await ProblemAsync(await http.GetAsync("/streams/never-seen/prediction"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Training_round_on_demand_is_recorded()
    {
        using var http = silo.CreateHttpClient();
        await CreateModelAsync(http, "e2e-train");
        (await http.PutAsJsonAsync("/streams/train-1/model", new { model = "e2e-train" })).EnsureSuccessStatusCode();
        var rows = string.Join("\n", Enumerable.Range(1, 300).Select(i => $$"""{"sequence":{{i}},"value":{{Math.Sin(i / 6.0):R}}}"""));
        (await http.PostAsync("/streams/train-1/observations", new StringContent(rows, Encoding.UTF8, "application/x-ndjson"))).EnsureSuccessStatusCode();

        using var start = await http.PostAsync("/models/e2e-train/training/rounds", null);
        Assert.True(start.StatusCode == HttpStatusCode.Accepted, await start.Content.ReadAsStringAsync());
        var round = await FinishedRoundAsync(http, start);
        Assert.Contains(round.GetProperty("decision").GetString(), new[] { "Accepted", "Rejected" });
        Assert.Equal(1, round.GetProperty("streamsUsed").GetInt32());
        var status = JsonDocument.Parse(await http.GetStringAsync("/models/e2e-train/training")).RootElement;
        Assert.True(status.GetProperty("recentRounds").GetArrayLength() >= 1);
        await ProblemAsync(await http.GetAsync("/models/no-such-model/training"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task A_skipped_round_and_the_status_listing_it_are_served_with_their_unmeasured_losses()
    {
        // A round on a model without streams is skipped and records NaN losses (not measured). The serializer refused to
        // write NaN, so the round and the training status were a 500 until ten more rounds had pushed it out.
        using var http = silo.CreateHttpClient();
        await CreateModelAsync(http, "e2e-skipped");
        using var start = await http.PostAsync("/models/e2e-skipped/training/rounds", null);
        Assert.True(start.StatusCode == HttpStatusCode.Accepted, await start.Content.ReadAsStringAsync());
        var round = await FinishedRoundAsync(http, start);
        Assert.Equal("Skipped", round.GetProperty("decision").GetString());
        Assert.Equal("NaN", round.GetProperty("challengerValidationLoss").GetString());
        Assert.Equal("NaN", round.GetProperty("persistenceValidationLoss").GetString());

        using var status = await http.GetAsync("/models/e2e-skipped/training");
        var text = await status.Content.ReadAsStringAsync();
        Assert.True(status.StatusCode == HttpStatusCode.OK, text);
        var recent = JsonDocument.Parse(text).RootElement.GetProperty("recentRounds");
        Assert.Equal("NaN", Assert.Single(recent.EnumerateArray()).GetProperty("championValidationLoss").GetString());
    }

    [Fact]
    public async Task OpenApi_document_describes_the_api()
    {
        using var http = silo.CreateHttpClient();
        var doc = JsonDocument.Parse(await http.GetStringAsync("/openapi/v1.json")).RootElement;
        var paths = doc.GetProperty("paths");
        Assert.True(paths.TryGetProperty("/streams/{streamId}/observations", out _));
        Assert.True(paths.TryGetProperty("/models/{name}/versions/{version}/activate", out _));

        // The success answers are the ones the routes give: publish and start-round listed only their errors, and
        // reset and delete a 200 for their 204.
        Assert.True(Responses("/models/{name}/versions", "post").TryGetProperty("201", out var published));
        Assert.True(published.GetProperty("content").TryGetProperty("application/json", out _));
        Assert.True(Responses("/models/{name}/training/rounds", "post").TryGetProperty("202", out var started));
        Assert.True(started.GetProperty("content").TryGetProperty("application/json", out _));
        foreach (var (path, method) in new[] { ("/streams/{streamId}/reset", "post"), ("/streams/{streamId}", "delete") })
        {
            Assert.True(Responses(path, method).TryGetProperty("204", out _), $"{method} {path}");
            Assert.False(Responses(path, method).TryGetProperty("200", out _), $"{method} {path}");
        }

        // The ingest body, per media type, as the parser reads it. One object schema shared by all three marked sequence
        // and timestamp required, lacked "value", allowed no array, and described CSV and NDJSON as JSON objects.
        var content = paths.GetProperty("/streams/{streamId}/observations").GetProperty("post").GetProperty("requestBody").GetProperty("content");
        var json = content.GetProperty("application/json").GetProperty("schema");
        var shapes = json.GetProperty("oneOf").EnumerateArray().ToList();
        Assert.Equal(["object", "array"], shapes.Select(Type));
        var observation = shapes[0];
        Assert.Equal("object", Type(shapes[1].GetProperty("items")));
        Assert.Equal(1, shapes[1].GetProperty("minItems").GetInt32());
        Assert.False(observation.TryGetProperty("required", out _));
        var properties = observation.GetProperty("properties");
        foreach (var name in new[] { "sequence", "timestamp", "values", "value" })
            Assert.True(properties.TryGetProperty(name, out _), name);
        Assert.Equal("number", Type(properties.GetProperty("value")));
        Assert.Equal("array", Type(properties.GetProperty("values")));
        // 'values' or 'value' is what is required.
        Assert.Equal(["values", "value"], observation.GetProperty("anyOf").EnumerateArray().Select(a => a.GetProperty("required").EnumerateArray().Single().GetString()));
        foreach (var text in new[] { "application/x-ndjson", "text/csv" })
            Assert.Equal("string", Type(content.GetProperty(text).GetProperty("schema")));

        // The training settings' required properties are the ones PUT .../training/settings refuses to go without
        // (an omitted one was bound as 0 although the document said required), and no others.
        var settings = doc.GetProperty("components").GetProperty("schemas").GetProperty("TrainingSettings");
        Assert.Equal(["period", "minNewObservations", "sampleSize", "epochs", "timeBudget", "learningRate", "windowLength"],
            settings.GetProperty("required").EnumerateArray().Select(e => e.GetString()));

        static string? Type(JsonElement schema) => schema.GetProperty("type").GetString();
        JsonElement Responses(string path, string method) => paths.GetProperty(path).GetProperty(method).GetProperty("responses");
    }
}
