using System.Net;
using System.Text;
using System.Text.Json;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>Listing every model: GET /models and `models --all` against the real silo process.</summary>
[Collection(SiloCollection.Name)]
public sealed class ModelListingTests(SiloProcess silo)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private Task<ProcessResult> RunAsync(params string[] args) =>
        Binaries.RunClientAsync(Timeout, silo.DataFolder, [.. args, "--cluster", silo.Gateway, "--cluster-id", "e2e", "--service-id", "e2e", "--connect-timeout", "60"]);

    [Fact]
    public async Task Models_are_listed_over_http_in_pages_and_by_the_client()
    {
        using var http = silo.CreateHttpClient();
        foreach (var name in new[] { "list-z", "list-m" })
        {
            using var created = await http.PostAsync("/models", new StringContent($$"""{"name":"{{name}}","hiddenSize":4}""", Encoding.UTF8, "application/json"));
            Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        }

        // Page through with limit 1: every name once, in ordinal order, ours and the fixture's default among them.
        var names = new List<string>();
        string? after = null;
        do
        {
            var url = "/models?limit=1" + (after is null ? "" : "&after=" + Uri.EscapeDataString(after));
            using var response = await http.GetAsync(url);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var page = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var models = page.RootElement.GetProperty("models").EnumerateArray().Select(e => e.GetString()!).ToArray();
            Assert.InRange(models.Length, 0, 1);
            names.AddRange(models);
            after = page.RootElement.GetProperty("next").ValueKind == JsonValueKind.Null ? null : page.RootElement.GetProperty("next").GetString();
            Assert.True(names.Count < 1000);
        }
        while (after is not null);
        Assert.Equal(names.Distinct().Count(), names.Count);
        Assert.Equal(names.OrderBy(n => n, StringComparer.Ordinal), names);
        Assert.Contains("default", names);
        Assert.Contains("list-m", names);
        Assert.Contains("list-z", names);

        using var tooBig = await http.GetAsync("/models?limit=1001");
        Assert.Equal(HttpStatusCode.BadRequest, tooBig.StatusCode);
        using var zero = await http.GetAsync("/models?limit=0");
        Assert.Equal(HttpStatusCode.BadRequest, zero.StatusCode);

        var listed = await RunAsync("models", "--all");
        Assert.True(listed.ExitCode == 0, listed.ToString());
        Assert.Contains("model list-m: D=1 H=4", listed.Stdout);
        Assert.Contains("model list-z: D=1 H=4", listed.Stdout);
        Assert.True(listed.Stdout.IndexOf("model list-m:", StringComparison.Ordinal) < listed.Stdout.IndexOf("model list-z:", StringComparison.Ordinal));

        var both = await RunAsync("models", "list-m", "--all");
        Assert.NotEqual(0, both.ExitCode);
        Assert.Contains("not both", both.Stderr);
    }

    /// <summary>
    /// A silo starts with no model (the fixture creates its 'default' itself), so a fresh cluster's catalog is empty:
    /// `models --all` says so instead of printing nothing, its JSON is an empty array, and `models` (the default model)
    /// says the model does not exist.
    /// </summary>
    [Fact]
    public async Task An_empty_catalog_is_reported_as_empty()
    {
        var empty = new SiloProcess(SiloProcess.ApiKey, ["--Storage:Provider=memory"], createDefaultModel: false);
        try
        {
            await empty.InitializeAsync();
            Task<ProcessResult> Run(params string[] args) =>
                Binaries.RunClientAsync(Timeout, empty.DataFolder, [.. args, "--cluster", empty.Gateway, "--cluster-id", "e2e", "--service-id", "e2e", "--connect-timeout", "60"]);

            var text = await Run("models", "--all");
            Assert.True(text.ExitCode == 0, text.ToString());
            Assert.Equal("", text.Stdout.Trim());
            Assert.Contains("(no models: the cluster's catalog is empty; create one with create-model)", text.Stderr);

            var json = await Run("models", "--all", "--json");
            Assert.True(json.ExitCode == 0, json.ToString());
            using var doc = JsonDocument.Parse(json.Stdout);
            Assert.Equal(JsonValueKind.Array, doc.RootElement.GetProperty("models").ValueKind);
            Assert.Equal(0, doc.RootElement.GetProperty("models").GetArrayLength());
            Assert.DoesNotContain("no models", json.Stderr);

            var named = await Run("models");
            Assert.True(named.ExitCode == 1, named.ToString());
            Assert.Contains("Model 'default' does not exist; create it first.", named.Stderr);
        }
        finally
        {
            await empty.DisposeAsync();
        }
    }
}
