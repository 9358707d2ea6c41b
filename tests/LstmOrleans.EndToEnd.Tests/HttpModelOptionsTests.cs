using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>Model options through the HTTP API of the real silo process: calendar features and the residual head.</summary>
[Collection(SiloCollection.Name)]
public sealed class HttpModelOptionsTests(SiloProcess silo)
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<double> ForecastAsync(HttpClient http, string stream, string timestamp)
    {
        using var response = await http.PostAsync($"/streams/{stream}/observations",
            Json($$"""{"sequence":1,"timestamp":"{{timestamp}}","values":[10.5]}"""));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(await http.GetStringAsync($"/streams/{stream}/prediction")).RootElement.GetProperty("predictions")[0].GetDouble();
    }

    [Fact]
    public async Task A_model_created_with_calendar_features_feeds_them_from_the_timestamp()
    {
        using var http = silo.CreateHttpClient();
        using var created = await http.PostAsync("/models",
            // A level head: a new residual model's head starts at zero (version 1 is persistence), so no input could move its forecast.
            Json("""{"name":"e2e-calendar","hiddenSize":8,"residual":false,"calendarFeatures":["hour_sin","hour_cos","weekday_sin","weekday_cos"]}"""));
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var config = JsonDocument.Parse(await http.GetStringAsync("/models/e2e-calendar")).RootElement.GetProperty("config");
        Assert.Equal(1, config.GetProperty("inputSize").GetInt32());
        Assert.Equal(5, config.GetProperty("modelInputSize").GetInt32());
        Assert.Equal(4, config.GetProperty("calendarFeatures").GetArrayLength());

        // The same first value at two times of day: only the calendar inputs differ, and so does the forecast.
        foreach (var s in new[] { "cal-morning", "cal-evening" })
            (await http.PutAsJsonAsync($"/streams/{s}/model", new { model = "e2e-calendar" })).EnsureSuccessStatusCode();
        double morning = await ForecastAsync(http, "cal-morning", "2024-01-01T06:00:00Z");
        double evening = await ForecastAsync(http, "cal-evening", "2024-01-01T18:00:00Z");
        Assert.NotEqual(morning, evening);

        using var unknown = await http.PostAsync("/models", Json("""{"name":"e2e-calendar-bad","calendarFeatures":["moon_phase"]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Contains("moon_phase", await unknown.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_residual_model_starts_as_persistence()
    {
        using var http = silo.CreateHttpClient();
        using var created = await http.PostAsync("/models", Json("""{"name":"e2e-residual","hiddenSize":8,"residual":true}"""));
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        (await http.PutAsJsonAsync("/streams/res-1/model", new { model = "e2e-residual" })).EnsureSuccessStatusCode();
        Assert.Equal(10.5, await ForecastAsync(http, "res-1", "2024-01-01T06:00:00Z"), 4);
    }
}
