using System.Text;
using System.Text.Json;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// The real silo process on its default SQLite store (fsync per group commit, WAL writes gathered by the write
/// buffer) is SIGKILLed while streams are being written: a silo started on the same data folder has every
/// acknowledged observation, each applied exactly once, and at most the ones that were in flight beyond that.
/// </summary>
public sealed class SqliteKillTests
{
    private const int Streams = 8;

    [Fact]
    public async Task Sigkill_of_a_sqlite_silo_mid_write_loses_no_acknowledged_observation()
    {
        var first = new SiloProcess(SiloProcess.ApiKey, []);
        SiloProcess? second = null;
        try
        {
            await first.InitializeAsync();
            Assert.Contains("WAL writes buffered per commit", first.Log);
            var acknowledged = new long[Streams];
            var sent = new long[Streams];
            using var stop = new CancellationTokenSource();
            var writers = Enumerable.Range(0, Streams).Select(s => Task.Run(async () =>
            {
                using var http = first.CreateHttpClient();
                for (long sequence = 1; !stop.IsCancellationRequested; sequence++)
                {
                    Volatile.Write(ref sent[s], sequence);
                    var body = $$"""{"sequence":{{sequence}},"timestamp":"2024-01-01T00:00:00Z","values":[{{Math.Sin(sequence / 7.0 + s):R}}]}""";
                    try
                    {
                        using var response = await http.PostAsync($"/streams/kill-{s}/observations", new StringContent(body, Encoding.UTF8, "application/json"));
                        if (!response.IsSuccessStatusCode) return;
                    }
                    catch (HttpRequestException) { return; }
                    catch (TaskCanceledException) { return; }
                    Volatile.Write(ref acknowledged[s], sequence);
                }
            })).ToArray();

            await Task.Delay(TimeSpan.FromSeconds(3));
            for (int s = 0; s < Streams; s++)
                Assert.True(Volatile.Read(ref acknowledged[s]) > 10, $"stream {s} made progress before the kill");
            await first.KillAsync();
            stop.Cancel();
            await Task.WhenAll(writers);

            second = new SiloProcess(SiloProcess.ApiKey, [], first.DataFolder);
            await second.InitializeAsync();
            using var reader = second.CreateHttpClient();
            for (int s = 0; s < Streams; s++)
            {
                var summary = JsonDocument.Parse(await reader.GetStringAsync($"/streams/kill-{s}/")).RootElement;
                long last = summary.GetProperty("lastSequence").GetInt64();
                long steps = summary.GetProperty("stepCount").GetInt64();
                Assert.InRange(last, acknowledged[s], sent[s]);
                Assert.Equal(last, steps);   // sequences 1..last, each applied once
                var history = JsonDocument.Parse(await reader.GetStringAsync($"/streams/kill-{s}/history?max=3")).RootElement;
                Assert.Equal([last - 2, last - 1, last], history.EnumerateArray().Select(o => o.GetProperty("sequence").GetInt64()).ToArray());
            }
        }
        finally
        {
            if (second is not null) await second.DisposeAsync();
            await first.DisposeAsync();   // the first silo owns the data folder and removes it
        }
    }
}
