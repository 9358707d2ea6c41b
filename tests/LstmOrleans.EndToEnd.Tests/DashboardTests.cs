using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// Two extra real silo processes with the Orleans dashboard switched on: one sharing the API listener without an
/// API key, one on its own loopback listener behind the API key. Started together to keep the suite quick.
/// </summary>
public sealed class DashboardSilos : IAsyncLifetime
{
    public const string Key = "dashboard-key";

    public int DashboardPort { get; } = Binaries.FreeTcpPort();

    /// <summary>Dashboard on the API listener at /ops/dashboard, no API key.</summary>
    public SiloProcess Open { get; } = new(apiKey: null, ["--Dashboard:Enabled=true", "--Dashboard:Urls=", "--Dashboard:Path=/ops/dashboard", "--Storage:Provider=memory"]);

    /// <summary>Dashboard on its own listener (default path /dashboard), API key required.</summary>
    public SiloProcess Protected { get; }

    public DashboardSilos() =>
        Protected = new(Key, ["--Dashboard:Enabled=true", $"--Dashboard:Urls=http://127.0.0.1:{DashboardPort}", "--Storage:Provider=memory"]);

    public Uri DashboardAddress => new($"http://127.0.0.1:{DashboardPort}");

    public Task InitializeAsync() => Task.WhenAll(Open.InitializeAsync(), Protected.InitializeAsync());

    public Task DisposeAsync() => Task.WhenAll(Open.DisposeAsync(), Protected.DisposeAsync());
}

public sealed class DashboardTests(DashboardSilos silos) : IClassFixture<DashboardSilos>
{
    private static async Task<string> ExpectAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"expected {(int)expected}, got {(int)response.StatusCode}: {body}");
        return body;
    }

    [Fact]
    public async Task Dashboard_on_the_api_listener_serves_its_page_and_live_cluster_data()
    {
        using var http = silos.Open.CreateHttpClient(withKey: false);
        using var page = await http.GetAsync("/ops/dashboard/");
        var html = await ExpectAsync(page, HttpStatusCode.OK);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("<html", html, StringComparison.OrdinalIgnoreCase);

        // The dashboard's JSON API reads the running cluster: one active silo (once its first counter update ran).
        int hosts = -1;
        for (var attempt = 0; attempt < 40 && hosts != 1; attempt++)
        {
            if (attempt > 0) await Task.Delay(500);
            using var counters = await http.GetAsync("/ops/dashboard/DashboardCounters");
            hosts = JsonDocument.Parse(await ExpectAsync(counters, HttpStatusCode.OK)).RootElement.GetProperty("totalActiveHostCount").GetInt32();
        }
        Assert.Equal(1, hosts);

        // The API itself is unaffected.
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/models/default")).StatusCode);
    }

    [Fact]
    public async Task Dashboard_behind_the_api_key_is_401_without_it_and_200_with_it()
    {
        using var anonymous = new HttpClient { BaseAddress = silos.DashboardAddress };
        using var denied = await anonymous.GetAsync("/dashboard/");
        await ExpectAsync(denied, HttpStatusCode.Unauthorized);
        // Browsers prompt for Basic credentials on this challenge.
        Assert.Contains(denied.Headers.WwwAuthenticate, h => h.Scheme == "Basic");
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/dashboard/DashboardCounters")).StatusCode);

        using var wrong = new HttpRequestMessage(HttpMethod.Get, "/dashboard/");
        wrong.Headers.Add("X-Api-Key", "not-the-key");
        await ExpectAsync(await anonymous.SendAsync(wrong), HttpStatusCode.Unauthorized);

        using var withHeader = new HttpRequestMessage(HttpMethod.Get, "/dashboard/");
        withHeader.Headers.Add("X-Api-Key", DashboardSilos.Key);
        Assert.Contains("<html", await ExpectAsync(await anonymous.SendAsync(withHeader), HttpStatusCode.OK), StringComparison.OrdinalIgnoreCase);

        using var withBasic = new HttpRequestMessage(HttpMethod.Get, "/dashboard/DashboardCounters");
        withBasic.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("anyone:" + DashboardSilos.Key)));
        await ExpectAsync(await anonymous.SendAsync(withBasic), HttpStatusCode.OK);

        using var wrongBasic = new HttpRequestMessage(HttpMethod.Get, "/dashboard/");
        wrongBasic.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("anyone:guess")));
        await ExpectAsync(await anonymous.SendAsync(wrongBasic), HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Dashboard_listener_and_api_listener_serve_only_their_own_paths()
    {
        using var dashboardPort = new HttpClient { BaseAddress = silos.DashboardAddress };
        dashboardPort.DefaultRequestHeaders.Add("X-Api-Key", DashboardSilos.Key);
        await ExpectAsync(await dashboardPort.GetAsync("/models/default"), HttpStatusCode.NotFound);

        using var apiPort = silos.Protected.CreateHttpClient();
        await ExpectAsync(await apiPort.GetAsync("/dashboard/"), HttpStatusCode.NotFound);
        await ExpectAsync(await apiPort.GetAsync("/models/default"), HttpStatusCode.OK);
        // Basic credentials do not open the API: only the X-Api-Key header does.
        using var basicOnApi = new HttpRequestMessage(HttpMethod.Get, "/models/default");
        basicOnApi.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("anyone:" + DashboardSilos.Key)));
        using var anonymousApi = silos.Protected.CreateHttpClient(withKey: false);
        await ExpectAsync(await anonymousApi.SendAsync(basicOnApi), HttpStatusCode.Unauthorized);
    }
}

/// <summary>The shared silo runs with the dashboard switched off (the default).</summary>
[Collection(SiloCollection.Name)]
public sealed class DashboardOffTests(SiloProcess silo)
{
    [Fact]
    public async Task Dashboard_is_off_by_default_so_its_path_is_404()
    {
        using var http = silo.CreateHttpClient();
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/dashboard/")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/dashboard/DashboardCounters")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/models/default")).StatusCode);
    }
}
