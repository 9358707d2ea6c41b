using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>The client's `train` (start a round and follow it) and the --json output of the cluster commands.</summary>
[Collection(SiloCollection.Name)]
public sealed class ClusterCommandTests(SiloProcess silo)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(180);

    private Task<ProcessResult> RunAsync(params string[] args) =>
        Binaries.RunClientAsync(Timeout, silo.DataFolder, [.. args, "--cluster", silo.Gateway, "--cluster-id", "e2e", "--service-id", "e2e", "--connect-timeout", "60"]);

    [Fact]
    public async Task Train_follows_a_round_to_its_decision_and_refuses_unknown_models()
    {
        using var http = silo.CreateHttpClient();
        (await http.PostAsync("/models", new StringContent("""{"name":"e2e-cli-train","hiddenSize":8}""", Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
        (await http.PutAsJsonAsync("/streams/cli-train-1/model", new { model = "e2e-cli-train" })).EnsureSuccessStatusCode();
        // A small round keeps the test quick: 3 epochs of 32-step windows, at most 10 s.
        using var settings = await http.PutAsync("/models/e2e-cli-train/training/settings", new StringContent(
            """{"period":"01:00:00","minNewObservations":0,"sampleSize":16,"epochs":3,"timeBudget":"00:00:10","learningRate":0.001,"windowLength":32}""",
            Encoding.UTF8, "application/json"));
        Assert.True(settings.IsSuccessStatusCode, await settings.Content.ReadAsStringAsync());
        var rows = string.Join("\n", Enumerable.Range(1, 300).Select(i => $$"""{"sequence":{{i}},"value":{{Math.Sin(i / 6.0):R}}}"""));
        (await http.PostAsync("/streams/cli-train-1/observations", new StringContent(rows, Encoding.UTF8, "application/x-ndjson"))).EnsureSuccessStatusCode();

        var followed = await RunAsync("train", "e2e-cli-train", "--json", "--timeout", "150");
        Assert.True(followed.ExitCode == 0, followed.ToString());
        var record = JsonDocument.Parse(followed.Stdout).RootElement;
        long roundId = record.GetProperty("roundId").GetInt64();
        Assert.True(roundId >= 1);
        Assert.Equal("Manual", record.GetProperty("trigger").GetString());
        Assert.Contains(record.GetProperty("decision").GetString(), new[] { "Accepted", "Rejected" });
        Assert.Equal(1, record.GetProperty("streamsUsed").GetInt32());

        // The cluster kept the same record.
        var status = JsonDocument.Parse(await http.GetStringAsync("/models/e2e-cli-train/training")).RootElement;
        Assert.Contains(status.GetProperty("recentRounds").EnumerateArray(), r => r.GetProperty("roundId").GetInt64() == roundId
            && r.GetProperty("decision").GetString() == record.GetProperty("decision").GetString());

        var unknown = await RunAsync("train", "no-such-model");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no-such-model", unknown.Stderr);

        var badTimeout = await RunAsync("train", "e2e-cli-train", "--timeout", "0");
        Assert.NotEqual(0, badTimeout.ExitCode);
        Assert.Contains("--timeout must be in", badTimeout.Stderr);
    }

    [Fact]
    public async Task Cluster_commands_print_json_for_scripts()
    {
        var pushed = await RunAsync("push", "json-stream-1", "2.5", "--seq", "1", "--time", "2024-01-01T00:00:00Z", "--json");
        Assert.True(pushed.ExitCode == 0, pushed.ToString());
        var step = JsonDocument.Parse(pushed.Stdout).RootElement;
        Assert.Equal("json-stream-1", step.GetProperty("streamId").GetString());
        Assert.Equal(1, step.GetProperty("sequence").GetInt64());

        var predicted = await RunAsync("predict", "json-stream-1", "--json");
        Assert.True(predicted.ExitCode == 0, predicted.ToString());
        var prediction = JsonDocument.Parse(predicted.Stdout).RootElement;
        Assert.Equal(step.GetProperty("predictions")[0].GetSingle(), prediction.GetProperty("predictions")[0].GetSingle());

        var summary = await RunAsync("stream", "json-stream-1", "--json");
        Assert.True(summary.ExitCode == 0, summary.ToString());
        var s = JsonDocument.Parse(summary.Stdout).RootElement;
        Assert.Equal(1, s.GetProperty("lastSequence").GetInt64());
        Assert.Equal("default", s.GetProperty("modelName").GetString());

        var models = await RunAsync("models", "default", "--json");
        Assert.True(models.ExitCode == 0, models.ToString());
        var model = JsonDocument.Parse(models.Stdout).RootElement.GetProperty("models")[0];
        Assert.Equal("default", model.GetProperty("info").GetProperty("name").GetString());
        Assert.Equal(8, model.GetProperty("info").GetProperty("config").GetProperty("hiddenSize").GetInt32());
        Assert.True(model.GetProperty("versions").GetArrayLength() >= 1);
    }
}
