using System.Text.Json;
using Xunit;

namespace LstmOrleans.Client.Tests.Bench;

/// <summary>The bench's two batch phases: the columnar API (batch) and the row API (batch-rows), in one run.</summary>
public sealed class BatchApiBenchTests
{
    [Fact]
    public async Task Bench_measures_the_columnar_and_the_row_batch_api_in_one_run()
    {
        var (exit, stdout, stderr) = await LstmOrleansProcess.RunAsync(
            "bench", "--stores", "memory", "--streams", "10", "--concurrency", "4", "--batch", "16", "--hidden", "4",
            "--tests", "batch,batch-rows", "--duration", "0.5", "--warmup", "0.2", "--json");
        Assert.True(exit == 0, $"exit {exit}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        using var json = JsonDocument.Parse(stdout);
        var phases = json.RootElement.GetProperty("results")[0].GetProperty("phases").EnumerateArray().ToList();
        Assert.Equal(["batch", "batch-rows"], phases.Select(p => p.GetProperty("test").GetString()));
        foreach (var phase in phases)
        {
            Assert.True(phase.GetProperty("calls").GetInt64() > 0);
            Assert.Equal(0, phase.GetProperty("errors").GetInt64());
            Assert.Equal(16, phase.GetProperty("batchSize").GetInt32());
        }
        Assert.Contains("columns: IngestColumns", stderr);
        Assert.Contains("rows: IngestBatch", stderr);
    }
}
