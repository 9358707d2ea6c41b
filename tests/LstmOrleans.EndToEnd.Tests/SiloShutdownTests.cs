using System.Text;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// A clean stop (SIGTERM) of a lone silo that has served streams exits 0 and logs no error and no stack trace. Its
/// streams' last reports to the training registry used to reach shards that were already deactivating, which Orleans
/// 10 then tried to move to another silo: a lone silo has none, so every stop logged "Error while selecting a migration
/// destination" per shard and "Failed to address message" per report, with stack traces (and dropped the reports).
/// </summary>
public sealed class SiloShutdownTests
{
    /// <summary>How .NET prints a frame of a stack trace.</summary>
    private const string StackFrame = "   at ";

    [Fact]
    public async Task SIGTERM_after_serving_streams_stops_cleanly_without_errors()
    {
        var silo = new SiloProcess(SiloProcess.ApiKey, []);
        try
        {
            await silo.InitializeAsync();
            await PushAndStopAsync(silo);
        }
        finally
        {
            await silo.DisposeAsync();
        }
    }

    private static async Task PushAndStopAsync(SiloProcess silo)
    {
        using (var http = silo.CreateHttpClient())
        {
            // Streams over every registry shard (16 by default). A stream reports its first batch at once and later
            // ones every 256 steps, so the second batches are reported when the streams deactivate.
            for (var stream = 0; stream < 40; stream++)
                foreach (var (first, count) in new[] { (1, 20), (21, 5) })
                {
                    var rows = string.Join("\n", Enumerable.Range(first, count).Select(i => $$"""{"sequence":{{i}},"value":{{(stream + i) * 0.25}}}"""));
                    using var pushed = await http.PostAsync($"/streams/e2e-stop-{stream}/observations", new StringContent(rows, Encoding.UTF8, "application/x-ndjson"));
                    Assert.True(pushed.IsSuccessStatusCode, await pushed.Content.ReadAsStringAsync());
                }
        }

        int exitCode = await silo.TerminateAsync(TimeSpan.FromSeconds(60));
        var log = silo.Log;
        Assert.True(exitCode == 0, $"exit {exitCode}:\n{log}");
        Assert.Contains("Application is shutting down", log);
        Assert.False(log.Split('\n').Any(line => line.StartsWith("fail:", StringComparison.Ordinal) || line.StartsWith("crit:", StringComparison.Ordinal)),
            "the stop logged an error:\n" + log);
        Assert.False(log.Contains(StackFrame, StringComparison.Ordinal), "the stop logged a stack trace:\n" + log);
    }
}
