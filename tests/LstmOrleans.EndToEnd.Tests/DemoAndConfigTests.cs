namespace LstmOrleans.EndToEnd.Tests;

/// <summary>The main job (`demo`) on a small slice, and the silo's refusal of bad configuration.</summary>
public sealed class DemoAndConfigTests
{
    [Fact]
    public async Task Demo_on_a_small_slice_finishes_and_writes_plot_and_predictions()
    {
        var folder = Binaries.TempFolder("demo");
        try
        {
            var result = await Binaries.RunClientAsync(TimeSpan.FromSeconds(150), folder,
                "demo", "--rows", "1400", "--streams", "2", "--train-seconds", "4", "--out", "out", "--data", "store");
            Assert.True(result.ExitCode == 0, result.ToString());
            Assert.Contains("Training round 1", result.Stdout);
            // The round fits on the whole training part (700 rows per stream here), not only on the last 512 values a
            // stream keeps by default: the demo's silo keeps that many and the round may use them all.
            var round = System.Text.RegularExpressions.Regex.Match(result.Stdout, @"(\d+)\s+streams,\s+(\d+)\s+rows");
            Assert.True(round.Success, result.Stdout);
            Assert.Equal(2, int.Parse(round.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(int.Parse(round.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) > 2 * 512, round.Value);
            Assert.Contains("Demo finished", result.Stdout);

            var png = await File.ReadAllBytesAsync(Path.Combine(folder, "out", "demo.png"));
            Assert.True(png.Length > 1000);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);

            var lines = await File.ReadAllLinesAsync(Path.Combine(folder, "out", "predictions.csv"));
            // Two streams, rows 700..1399 scored: 700 forecasts each (the first one follows the last phase-1 step).
            Assert.Equal(1 + 2 * 700, lines.Length);

            // The kept store holds the demo's model (H=16): another hidden size on it is refused with the way out.
            var again = await Binaries.RunClientAsync(TimeSpan.FromSeconds(90), folder,
                "demo", "--rows", "1400", "--streams", "2", "--hidden", "8", "--data", "store");
            Assert.True(again.ExitCode == 1, again.ToString());
            Assert.Contains("It has H=16, from an earlier demo run on the same --data folder or cluster: run with --hidden 16", again.Stderr);
        }
        finally
        {
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task Demo_on_the_memory_store_names_no_data_folder()
    {
        var folder = Binaries.TempFolder("demo-memory");
        try
        {
            var result = await Binaries.RunClientAsync(TimeSpan.FromSeconds(120), folder,
                "demo", "--storage", "memory", "--rows", "300", "--streams", "1", "--train-seconds", "1", "--out", "out");
            Assert.True(result.ExitCode == 0, result.ToString());
            Assert.Contains("Cluster: in-process silo (storage memory)", result.Stdout);
            Assert.DoesNotContain("lstmorleans-demo-", result.Stdout);
        }
        finally
        {
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task Demo_rejects_bad_options()
    {
        var folder = Binaries.TempFolder("demo-bad");
        var result = await Binaries.RunClientAsync(TimeSpan.FromSeconds(60), folder, "demo", "--rows", "10");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--rows", result.Stderr);
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task Silo_refuses_bad_configuration_with_a_clear_message()
    {
        var folder = Binaries.TempFolder("badconfig");
        try
        {
            var result = await Binaries.RunSiloAsync(TimeSpan.FromSeconds(60), folder, ["--Storage:Provider=floppy", "--Storage:SqliteSynchronous=sometimes", "--Storage:SqliteWalCheckpointPages=5", "--Cluster:SiloPort=70000", "--Telemetry:OtlpEndpoint=not-a-url",
                "--Dashboard:Enabled=true", "--Dashboard:Path=/models", "--Dashboard:Urls=http://127.0.0.1", "--Streams:PersistEverySteps=0"]);
            Assert.Equal(2, result.ExitCode);
            var message = result.Stderr;
            Assert.Contains("Storage:Provider must be one of sqlite, redis, postgres, memory; got 'floppy'", message);
            Assert.Contains("Storage:SqliteSynchronous must be one of full, normal; got 'sometimes'", message);
            Assert.Contains("Storage:SqliteWalCheckpointPages must be in 100..1000000; got 5", message);
            Assert.Contains("Cluster:SiloPort must be a TCP port", message);
            Assert.Contains("Telemetry:OtlpEndpoint must be an absolute http(s) URL", message);
            Assert.Contains("Dashboard:Path must not shadow the HTTP API", message);
            Assert.Contains("Dashboard:Urls must be ';'-separated http(s) URLs with an explicit port", message);
            Assert.Contains("Streams:PersistEverySteps must be at least 1.", message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
