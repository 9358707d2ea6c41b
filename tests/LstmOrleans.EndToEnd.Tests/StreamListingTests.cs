using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>GET /models/{name}/streams and the client's `streams` command against the real silo process.</summary>
[Collection(SiloCollection.Name)]
public sealed class StreamListingTests(SiloProcess silo)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private static readonly string[] Streams = ["list-e", "list-a", "list-d", "list-b", "list-c"];

    private Task<ProcessResult> RunClientAsync(params string[] args) =>
        Binaries.RunClientAsync(Timeout, silo.DataFolder, [.. args, "--cluster", silo.Gateway, "--cluster-id", "e2e", "--service-id", "e2e", "--connect-timeout", "60"]);

    /// <summary>A model with five streams of three observations each, once every stream shows in its registry (reports are one-way).</summary>
    private static async Task SeedAsync(HttpClient http, string model)
    {
        using var created = await http.PostAsync("/models", new StringContent($$"""{"name":"{{model}}","hiddenSize":8}""", Encoding.UTF8, "application/json"));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        foreach (var stream in Streams)
        {
            (await http.PutAsJsonAsync($"/streams/{model}-{stream}/model", new { model })).EnsureSuccessStatusCode();
            var rows = string.Join("\n", Enumerable.Range(1, 3).Select(i => $$"""{"sequence":{{i}},"value":{{i * 0.5}}}"""));
            (await http.PostAsync($"/streams/{model}-{stream}/observations", new StringContent(rows, Encoding.UTF8, "application/x-ndjson"))).EnsureSuccessStatusCode();
        }
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var listed = JsonDocument.Parse(await http.GetStringAsync($"/models/{model}/streams?limit=1000")).RootElement;
            if (listed.GetProperty("streams").GetArrayLength() == Streams.Length) return;
            await Task.Delay(100);
        }
        Assert.Fail($"The registry of {model} did not list {Streams.Length} streams within 10 s.");
    }

    private static string[] Expected(string model) => [.. Streams.Select(s => $"{model}-{s}").Order(StringComparer.Ordinal)];

    [Fact]
    public async Task Http_listing_pages_in_id_order_and_rejects_bad_requests()
    {
        using var http = silo.CreateHttpClient();
        await SeedAsync(http, "e2e-list-http");

        var listed = new List<string>();
        string? after = null;
        var pageSizes = new List<int>();
        do
        {
            var url = "/models/e2e-list-http/streams?limit=2" + (after is null ? "" : "&after=" + Uri.EscapeDataString(after));
            var page = JsonDocument.Parse(await http.GetStringAsync(url)).RootElement;
            Assert.Equal("e2e-list-http", page.GetProperty("model").GetString());
            var ids = page.GetProperty("streams").EnumerateArray().Select(e => e.GetString()!).ToArray();
            pageSizes.Add(ids.Length);
            listed.AddRange(ids);
            after = page.GetProperty("next").GetString();
        } while (after is not null && pageSizes.Count < 10);
        Assert.Equal(Expected("e2e-list-http"), listed);
        Assert.Equal([2, 2, 1], pageSizes);

        foreach (var bad in new[] { "limit=0", "limit=1001", "limit=abc", "after=" + new string('x', 300) })
        {
            using var response = await http.GetAsync($"/models/e2e-list-http/streams?{bad}");
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{bad}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }
        using var unknown = await http.GetAsync("/models/no-such-model/streams");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task Client_streams_command_lists_with_limit_and_summaries()
    {
        using var http = silo.CreateHttpClient();
        await SeedAsync(http, "e2e-list-cli");
        var expected = Expected("e2e-list-cli");

        var firstThree = await RunClientAsync("streams", "--model", "e2e-list-cli", "--limit", "3");
        Assert.True(firstThree.ExitCode == 0, firstThree.ToString());
        Assert.Equal(expected[..3], firstThree.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Contains($"--after \"{expected[2]}\"", firstThree.Stderr);

        // The rest, from the cursor, as a table with each stream's summary.
        var rest = await RunClientAsync("streams", "--model", "e2e-list-cli", "--after", expected[2], "--summary");
        Assert.True(rest.ExitCode == 0, rest.ToString());
        var lines = rest.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith("stream", lines[0]);
        Assert.Equal(expected[3..], lines[1..].Select(l => l.Split(' ')[0]));
        Assert.All(lines[1..], l => Assert.Matches(@"^\S+\s+3\s+3\s+t\+1=\S+$", l));   // last seq 3, 3 steps, a forecast
        Assert.DoesNotContain("more streams follow", rest.Stderr);

        var json = await RunClientAsync("streams", "--model", "e2e-list-cli", "--summary", "--json", "--concurrency", "2");
        Assert.True(json.ExitCode == 0, json.ToString());
        var doc = JsonDocument.Parse(json.Stdout).RootElement;
        Assert.Equal(JsonValueKind.Null, doc.GetProperty("next").ValueKind);
        var streams = doc.GetProperty("streams").EnumerateArray().ToArray();
        Assert.Equal(expected, streams.Select(s => s.GetProperty("id").GetString()));
        foreach (var s in streams)
        {
            Assert.Equal(3, s.GetProperty("lastSequence").GetInt64());
            Assert.Equal(3, s.GetProperty("steps").GetInt64());
            var prediction = s.GetProperty("lastPrediction");
            Assert.Equal(1, prediction.GetArrayLength());
            Assert.True(float.IsFinite(prediction[0].GetSingle()));
        }
        // The same forecast the stream itself reports.
        var direct = JsonDocument.Parse(await http.GetStringAsync($"/streams/{expected[0]}/prediction")).RootElement;
        Assert.Equal(direct.GetProperty("predictions")[0].GetSingle(), streams[0].GetProperty("lastPrediction")[0].GetSingle());

        // An empty listing says so (on stderr: stdout stays one id per line), past the last stream or of a model without streams.
        var pastTheEnd = await RunClientAsync("streams", "--model", "e2e-list-cli", "--after", expected[^1]);
        Assert.True(pastTheEnd.ExitCode == 0, pastTheEnd.ToString());
        Assert.Equal("", pastTheEnd.Stdout.Trim());
        Assert.Contains($"(no streams registered with model 'e2e-list-cli' after \"{expected[^1]}\")", pastTheEnd.Stderr);
        using (var created = await http.PostAsync("/models", new StringContent("""{"name":"e2e-list-none","hiddenSize":4}""", Encoding.UTF8, "application/json")))
            Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var none = await RunClientAsync("streams", "--model", "e2e-list-none");
        Assert.True(none.ExitCode == 0, none.ToString());
        Assert.Equal("", none.Stdout.Trim());
        Assert.Contains("(no streams registered with model 'e2e-list-none')", none.Stderr);

        var unknown = await RunClientAsync("streams", "--model", "no-such-model");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no-such-model", unknown.Stderr);

        var badLimit = await RunClientAsync("streams", "--limit", "0");
        Assert.NotEqual(0, badLimit.ExitCode);
        Assert.Contains("--limit must be in", badLimit.Stderr);
    }
}
