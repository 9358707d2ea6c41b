using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using CsCheck;
using LstmOrleans.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace LstmOrleans.Reliability.Tests;

/// <summary>One real silo process (localhost clustering, memory storage, at most 20 observations per request).</summary>
public sealed class SingleSiloProcess : IAsyncLifetime
{
    public const int MaxBatchSize = 20;
    public SiloProcess Silo { get; } = new("http-silo",
    [
        "--Cluster:ClusterId=reliability-http",
        "--Cluster:ServiceId=reliability-http",
        "--Storage:Provider=memory",
        $"--Http:MaxBatchSize={MaxBatchSize}",
    ]);
    public IHost Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Silo.Start();
        await Silo.WaitReadyAsync(TimeSpan.FromSeconds(120));
        Client = await SiloProcess.ConnectClientAsync([Silo.Gateway], "reliability-http", TimeSpan.FromSeconds(30));
        await Client.Services.GetRequiredService<IGrainFactory>().GetGrain<IModelGrain>(LstmOrleansNames.DefaultModelName).CreateAsync(Signals.Config());
    }

    public async Task DisposeAsync()
    {
        await Client.StopAsync();
        Client.Dispose();
        await Silo.DisposeAsync();
    }
}

/// <summary>
/// Random malformed ingest bodies (JSON, NDJSON, CSV, garbage, wrong media types, oversized, non-finite, wrong
/// length, backwards time, half-valid batches) against the real HTTP API: every answer is a 4xx problem document,
/// never a 5xx, and no stream changes.
/// </summary>
public sealed class HttpFuzzTests(SingleSiloProcess fixture) : IClassFixture<SingleSiloProcess>
{
    private const int SeededStreams = 4;
    private const string SeedTimestamp = "2026-01-01T00:00:01Z";

    private static string Json(long seq, string timestamp, string values) => $"{{\"sequence\":{seq},\"timestamp\":\"{timestamp}\",\"values\":[{values}]}}";
    private static string Ts(int second) => Signals.Start.AddSeconds(second).ToString("O");

    /// <summary>(content type, body) pairs that must each be refused; the index says which malformation.</summary>
    private static (string ContentType, byte[] Body) Malformed(int kind, int a, int b, string noise)
    {
        long seq = 2 + a % 5;
        string good = Json(seq, Ts(10 + a % 5), "21.5");
        (string, string) text = (kind % 16) switch
        {
            0 => ("application/json", Json(seq, Ts(10), new[] { "NaN", "Infinity", "-Infinity", "\"NaN\"", "1e999", "-3.5e39", "null", "\"x\"", "true" }[a % 9])),
            1 => ("application/json", Json(seq, Ts(10), string.Join(",", Enumerable.Repeat("1.5", new[] { 0, 2, 3, 7 }[a % 4])))),
            2 => ("application/json", good[..(1 + a % (good.Length - 1))]),                    // every proper prefix is unfinished
            3 => ("application/json", noise),                                                  // cannot contain a "values" key
            4 => ("application/x-ndjson", string.Join("\n", Enumerable.Range(0, 3).Select(i =>
                     i == a % 3 ? Json(seq + i, Ts(10 + i), "1e999") : Json(seq + i, Ts(10 + i), "21.5")))),
            5 => ("application/x-ndjson", Json(seq, Ts(10), "21.5") + "\n" + noise + "}"),   // never a blank line
            6 => ("application/x-ndjson", string.Join("\n", Enumerable.Range(0, SingleSiloProcess.MaxBatchSize + 1 + a % 10).Select(i => Json(seq + i, Ts(10 + i), "21.5")))),
            7 => ("text/csv", $"sequence,timestamp,value\n{seq},{Ts(10)},{new[] { "abc", "NaN", "", "1e999", "1,2", "--1" }[a % 6]}\n"),
            8 => ("text/csv", new[] { "", "\n", "sequence,timestamp\n2,2026-01-01T00:00:10Z\n", $"value\n1.5\n2.5,3.5\n" }[a % 4]),
            9 => (new[] { "text/plain", "application/xml", "image/png", "multipart/form-data", "application/x-www-form-urlencoded" }[a % 5], good),
            10 => ("application/json", Json(seq, "2025-06-01T00:00:00Z", "21.5")),         // before the stream's last timestamp
            11 => ("application/json", $"[{Json(seq, Ts(10), "21.5")},{{\"timestamp\":\"{Ts(11)}\",\"values\":[22.5]}}]"), // some numbered, some not
            12 => ("application/json", $"[{Json(seq + 1, Ts(10), "21.5")},{Json(seq, Ts(11), "22.5")}]"),            // sequences go down
            13 => ("application/json", $"[{Json(seq, Ts(11), "21.5")},{Json(seq + 1, Ts(10), "22.5")}]"),            // time goes back
            14 => ("application/json", Json(seq, new[] { "yesterday", "2026-13-01T00:00:00Z", "", "12" }[a % 4], "21.5")),
            _ => ("application/json", $"{{\"sequence\":{new[] { "-1", "1.5", "\"2\"", "1e30", "99999999999999999999" }[a % 5]},\"values\":[21.5]}}"),
        };
        var bytes = Encoding.UTF8.GetBytes(text.Item2);
        // Now and then, break the UTF-8 itself (not in CSV, where a mangled header name could become a feature column).
        if (b % 7 == 0 && bytes.Length > 0 && text.Item1 != "text/csv") bytes[b % bytes.Length] = 0xFF;
        return (text.Item1, bytes);
    }

    [Fact]
    public async Task MalformedBodiesGetProblemDetails4xxAndChangeNothing()
    {
        using var http = new HttpClient { BaseAddress = fixture.Silo.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        for (int s = 0; s < SeededStreams; s++)
        {
            using var seed = await http.PostAsync($"streams/fuzz-{s}/observations", new StringContent(Json(1, SeedTimestamp, "20.5"), Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, seed.StatusCode);
        }
        var before = await StatesAsync(http);

        // Printable noise from JSON punctuation and digits only: never a valid observation (it has no "values" key).
        var noise = Gen.Char["{}[],:\"0123456789.-eE tn"].Array[0, 40].Select(chars => new string(chars));
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        var request = Gen.Select(Gen.Int[0, 15], Gen.Int[0, 1000], Gen.Int[0, 1000], noise, Gen.Int[0, SeededStreams - 1]);
        await Task.Run(() => request.Sample(t =>
        {
            var (kind, a, b, text, stream) = t;
            var (contentType, body) = Malformed(kind, a, b, text);
            var content = new ByteArrayContent(body);
            content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            using var response = http.PostAsync($"streams/fuzz-{stream}/observations", content).GetAwaiter().GetResult();
            var answer = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            int status = (int)response.StatusCode;
            statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
            Assert.True(status is >= 400 and < 500, $"kind {kind}: {contentType} '{Encoding.UTF8.GetString(body)}' -> {status} {answer}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            using var problem = JsonDocument.Parse(answer);
            Assert.Equal(status, problem.RootElement.GetProperty("status").GetInt32());
        }, iter: 1500));

        Assert.Equal(before, await StatesAsync(http));
        Assert.True(statuses.Keys.Count >= 3, $"statuses seen: {string.Join(", ", statuses)}"); // 400, 409, 413/415 at least

        // The silo is still healthy: a valid observation is accepted afterwards.
        using var after = await http.PostAsync("streams/fuzz-0/observations", new StringContent(Json(2, Ts(20), "21.5"), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    private static async Task<string[]> StatesAsync(HttpClient http) =>
        await Task.WhenAll(Enumerable.Range(0, SeededStreams).Select(s => http.GetStringAsync($"streams/fuzz-{s}/state")));
}
