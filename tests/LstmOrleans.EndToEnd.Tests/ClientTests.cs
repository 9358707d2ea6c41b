using System.Text;

namespace LstmOrleans.EndToEnd.Tests;

/// <summary>The real `lstmorleans` binary against the real silo process.</summary>
[Collection(SiloCollection.Name)]
public sealed class ClientTests(SiloProcess silo)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private Task<ProcessResult> RunAsync(params string[] args) =>
        Binaries.RunClientAsync(Timeout, silo.DataFolder, [.. args, "--cluster", silo.Gateway, "--cluster-id", "e2e", "--service-id", "e2e", "--connect-timeout", "60"]);

    [Fact]
    public async Task Create_model_push_predict_and_rollback()
    {
        var created = await RunAsync("create-model", "cli-model", "--hidden", "8");
        Assert.True(created.ExitCode == 0, created.ToString());

        var pushed = await RunAsync("push", "cli-stream-1", "4.25", "--seq", "1", "--time", "2024-01-01T00:00:00Z");
        Assert.True(pushed.ExitCode == 0, pushed.ToString());
        Assert.Contains("cli-stream-1 seq 1", pushed.Stdout);

        var second = await RunAsync("push", "cli-stream-1", "4.5");
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("seq 2", second.Stdout);

        // With no sequence number left after the stream's last, a push without --seq is refused, not wrapped around
        // into an acknowledged duplicate.
        var last = await RunAsync("push", "cli-stream-1", "4.75", "--seq", long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(last.ExitCode == 0, last.ToString());
        var exhausted = await RunAsync("push", "cli-stream-1", "5");
        Assert.Equal(1, exhausted.ExitCode);
        Assert.Contains("no room after it", exhausted.Stderr);

        var predicted = await RunAsync("predict", "cli-stream-1");
        Assert.True(predicted.ExitCode == 0, predicted.ToString());
        Assert.Contains("t+1:", predicted.Stdout);

        var models = await RunAsync("models", "cli-model");
        Assert.True(models.ExitCode == 0, models.ToString());
        Assert.Contains("* v1", models.Stdout);

        var badRollback = await RunAsync("rollback", "cli-model", "42");
        Assert.Equal(1, badRollback.ExitCode);
        Assert.Contains("no retained version 42", badRollback.Stderr);
    }

    [Fact]
    public async Task Stream_of_an_id_never_used_is_exit_1_saying_so_and_a_pushed_one_is_shown()
    {
        // It printed an empty summary ("model (unbound) weights v0, last sequence -") and exit 0 for any id.
        foreach (var args in new[] { new[] { "stream", "cli-never-used" }, ["stream", "cli-never-used", "--json"] })
        {
            var unknown = await RunAsync(args);
            Assert.True(unknown.ExitCode == 1, unknown.ToString());
            Assert.Contains("Stream 'cli-never-used' does not exist: it has received no observations and is not bound to a model.", unknown.Stderr);
            Assert.Equal("", unknown.Stdout.Trim());
        }

        var pushed = await RunAsync("push", "cli-stream-shown", "1.5");
        Assert.True(pushed.ExitCode == 0, pushed.ToString());
        var shown = await RunAsync("stream", "cli-stream-shown");
        Assert.True(shown.ExitCode == 0, shown.ToString());
        Assert.Contains("stream cli-stream-shown: model default", shown.Stdout);
        Assert.Contains("1 steps", shown.Stdout);
    }

    [Fact]
    public async Task Replay_writes_scored_predictions()
    {
        var output = Path.Combine(silo.DataFolder, "replay-out.csv");
        var file = Path.Combine(Binaries.BundledData, "rds_cpu_utilization_cc0c53.csv");
        var result = await RunAsync("replay", file, "--rows", "300", "--batch", "50", "--prefix", "e2e-replay/", "--out", output);
        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = File.ReadAllLines(output);
        Assert.StartsWith("stream,sequence,timestamp,actual,predicted,lower,upper", lines[0]);
        Assert.Equal(300, lines.Length); // header + 299 scored forecasts (the first step has no earlier forecast)
        Assert.Contains("MAE model", result.Stdout);
    }

    [Fact]
    public async Task Argument_errors_exit_non_zero_with_a_message_on_stderr()
    {
        var missing = await Binaries.RunClientAsync(Timeout, silo.DataFolder, "push");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("Required argument missing", missing.Stderr);

        var notANumber = await RunAsync("push", "cli-stream-2", "abc");
        Assert.Equal(2, notANumber.ExitCode);
        Assert.Contains("not a finite number", notANumber.Stderr);

        var wrongDims = await RunAsync("push", "cli-stream-2", "1", "2");
        Assert.Equal(1, wrongDims.ExitCode);
        Assert.Contains("expects 1", wrongDims.Stderr);

        var badCluster = await Binaries.RunClientAsync(Timeout, silo.DataFolder, "predict", "x", "--cluster", "not-an-address");
        Assert.Equal(2, badCluster.ExitCode);
        Assert.Contains("not a gateway address", badCluster.Stderr);

        var unknownCommand = await Binaries.RunClientAsync(Timeout, silo.DataFolder, "frobnicate");
        Assert.NotEqual(0, unknownCommand.ExitCode);

        var missingFile = await RunAsync("replay", Path.Combine(silo.DataFolder, "nope.csv"));
        Assert.Equal(2, missingFile.ExitCode);
        Assert.Contains("No such file", missingFile.Stderr);

        var malformed = Path.Combine(silo.DataFolder, "malformed.csv");
        await File.WriteAllTextAsync(malformed, "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,oops\n", Encoding.UTF8);
        var malformedResult = await RunAsync("replay", malformed);
        Assert.Equal(2, malformedResult.ExitCode);
        Assert.Contains("line 3", malformedResult.Stderr);
    }

    [Fact]
    public async Task Replay_onto_a_model_its_file_does_not_fit_binds_nothing_and_keeps_the_streams()
    {
        // The binds came first and the first batch was refused after them: the replay's stream lost its history to a
        // model it could not be fed, and stayed bound to it.
        Assert.Equal(0, (await RunAsync("create-model", "cli-replay-one", "--hidden", "4")).ExitCode);
        Assert.Equal(0, (await RunAsync("create-model", "cli-replay-three", "--inputs", "3", "--hidden", "4")).ExitCode);
        var file = Path.Combine(silo.DataFolder, "replay-fit.csv");
        await File.WriteAllTextAsync(file, "timestamp,value\n" + string.Concat(Enumerable.Range(0, 20).Select(i => $"2024-01-01 00:{i:00}:00,{i}\n")), Encoding.UTF8);
        var first = await RunAsync("replay", file, "--model", "cli-replay-one", "--prefix", "cli-replay-fit/");
        Assert.True(first.ExitCode == 0, first.ToString());
        var before = await RunAsync("stream", "cli-replay-fit/replay-fit", "--json");
        Assert.Contains("\"modelName\": \"cli-replay-one\"", before.Stdout);

        var misfit = await RunAsync("replay", file, "--model", "cli-replay-three", "--prefix", "cli-replay-fit/");
        Assert.True(misfit.ExitCode == 2, misfit.ToString());
        Assert.Contains("has 1 value column(s) (value) but model 'cli-replay-three' takes 3 (input size 3); no stream was bound.", misfit.Stderr);
        var after = await RunAsync("stream", "cli-replay-fit/replay-fit", "--json");
        Assert.Equal(before.Stdout, after.Stdout);
    }

    [Fact]
    public async Task Watch_prints_each_change_once_no_observations_included()
    {
        // Polls of a stream without values: one line saying so, not one per poll.
        var empty = await RunAsync("watch", "cli-watch-empty", "--interval", "0.05", "--count", "4");
        Assert.True(empty.ExitCode == 0, empty.ToString());
        Assert.Single(empty.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("no observations yet"));

        var pushed = await RunAsync("push", "cli-watch-one", "1.5");
        Assert.True(pushed.ExitCode == 0, pushed.ToString());
        var one = await RunAsync("watch", "cli-watch-one", "--interval", "0.05", "--count", "4");
        Assert.True(one.ExitCode == 0, one.ToString());
        var lines = one.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.DoesNotContain("no observations yet", lines[0]);
    }

    [Theory]
    [InlineData("INT")]    // Ctrl+C, as watch's --count help says
    [InlineData("TERM")]   // what timeout(1), systemd and docker stop send
    public async Task Watch_stops_on_a_signal(string signal)
    {
        using var process = System.Diagnostics.Process.Start(Binaries.Dotnet(Binaries.ClientDll,
            ["watch", "cli-watch-signal", "--interval", "0.2", "--cluster", silo.Gateway, "--cluster-id", "e2e", "--service-id", "e2e", "--connect-timeout", "60"],
            silo.DataFolder))!;
        var stderr = process.StandardError.ReadToEndAsync();
        // Connected and polling once the first poll is printed.
        Assert.Contains("no observations yet", await process.StandardOutput.ReadLineAsync().WaitAsync(Timeout));
        await AssertCancelledBySignalAsync(process, signal, stderr);
    }

    [Fact]
    public async Task Replay_stops_on_SIGTERM()
    {
        var file = Path.Combine(Binaries.BundledData, "rds_cpu_utilization_cc0c53.csv");
        using var process = System.Diagnostics.Process.Start(Binaries.Dotnet(Binaries.ClientDll,
            ["replay", file, "--rate", "20", "--prefix", "e2e-replay-signal/",
             "--cluster", silo.Gateway, "--cluster-id", "e2e", "--service-id", "e2e", "--connect-timeout", "60"],
            silo.DataFolder))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        // Replaying (at 20 observations a second: minutes for the file) once its first progress line is printed.
        string? line;
        do line = await process.StandardError.ReadLineAsync().WaitAsync(Timeout);
        while (line is not null && !line.StartsWith("replay: ", StringComparison.Ordinal));
        Assert.NotNull(line);
        await AssertCancelledBySignalAsync(process, "TERM", process.StandardError.ReadToEndAsync());
        Assert.DoesNotContain("observations:", await stdout);   // it stopped, not finished
    }

    /// <summary>
    /// Sends <paramref name="signal"/> and expects the command itself to stop: its token cancelled, "Cancelled." and exit
    /// code 130 (README), within seconds. A process the signal merely killed would print nothing and exit 128+signal.
    /// </summary>
    internal static async Task AssertCancelledBySignalAsync(System.Diagnostics.Process process, string signal, Task<string> stderr)
    {
        using (var kill = System.Diagnostics.Process.Start("kill", ["-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"still running 30 s after SIG{signal}");
        }
        var errors = await stderr;
        Assert.True(process.ExitCode == 130, $"exit {process.ExitCode} after SIG{signal}; stderr:\n{errors}");
        Assert.Contains("error: Cancelled.", errors);
        Assert.DoesNotContain("   at ", errors);
    }

    [Fact]
    public async Task Unreachable_cluster_exits_3()
    {
        var port = Binaries.FreeTcpPort();
        var result = await Binaries.RunClientAsync(Timeout, silo.DataFolder, "predict", "x", "--cluster", $"127.0.0.1:{port}", "--connect-timeout", "3");
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("Cannot reach the cluster", result.Stderr);
    }

    [Fact]
    public async Task Model_files_import_to_and_export_from_the_cluster()
    {
        var folder = Binaries.TempFolder("e2e-model-io");
        var original = Path.Combine(folder, "m.safetensors");
        var init = await Binaries.RunClientAsync(Timeout, folder, "model", "init", "--input-size", "1", "--hidden", "6", "--layers", "2",
            "--horizons", "3", "--seed", "7", "--out", original);
        Assert.True(init.ExitCode == 0, init.ToString());

        // Streams that do not normalise: offline predict on the exported file then feeds the values as the original's does
        // (with running z-scores it would replay the stream statistics, as the cluster's streams do, and answer otherwise).
        var imported = await RunAsync("model", "import", original, "--name", "imported-model", "--normalization", "None");
        Assert.True(imported.ExitCode == 0, imported.ToString());
        Assert.Contains("published and activated v2", imported.Stdout);   // v1 is the model's initial weights

        var exportedPath = Path.Combine(folder, "back.safetensors");
        var exported = await RunAsync("model", "export", "imported-model", "--out", exportedPath);
        Assert.True(exported.ExitCode == 0, exported.ToString());

        // The same weights: offline predictions from both files agree to the last bit.
        var csv = Path.Combine(folder, "series.csv");
        await File.WriteAllTextAsync(csv, "timestamp,value\n2024-01-01 00:00:00,1.5\n2024-01-01 00:05:00,-0.25\n2024-01-01 00:10:00,3\n");
        var first = await Binaries.RunClientAsync(Timeout, folder, "model", "predict", "--model", original, "--data", csv);
        var second = await Binaries.RunClientAsync(Timeout, folder, "model", "predict", "--model", exportedPath, "--data", csv);
        Assert.True(first.ExitCode == 0 && second.ExitCode == 0, first + "\n" + second);
        Assert.Contains("y1,y2,y3", first.Stdout);
        Assert.Equal(first.Stdout, second.Stdout);

        // A file of another shape does not replace the model's weights.
        var other = Path.Combine(folder, "other.safetensors");
        Assert.Equal(0, (await Binaries.RunClientAsync(Timeout, folder, "model", "init", "--input-size", "1", "--hidden", "4", "--out", other)).ExitCode);
        var mismatch = await RunAsync("model", "import", other, "--name", "imported-model");
        Assert.Equal(1, mismatch.ExitCode);
        Assert.Contains("has shape", mismatch.Stderr);

        // A malformed file is refused before anything reaches the cluster.
        var garbage = Path.Combine(folder, "garbage.safetensors");
        await File.WriteAllBytesAsync(garbage, [1, 2, 3]);
        var refused = await RunAsync("model", "import", garbage, "--name", "imported-model");
        Assert.Equal(2, refused.ExitCode);

        // A well-formed file whose weights would overflow every stream's step (head.bias[2], its last float, set to
        // 1e38) is refused before anything changes: neither a version of the existing model nor a new model.
        var absurd = Path.Combine(folder, "absurd.safetensors");
        var bytes = await File.ReadAllBytesAsync(original);
        BitConverter.TryWriteBytes(bytes.AsSpan(bytes.Length - 4), 1e38f);
        Assert.True(BitConverter.IsLittleEndian);
        await File.WriteAllBytesAsync(absurd, bytes);
        foreach (var target in new[] { "imported-model", "absurd-model" })
        {
            var absurdImport = await RunAsync("model", "import", absurd, "--name", target);
            Assert.True(absurdImport.ExitCode == 2, absurdImport.ToString());
            Assert.Contains("head.bias[2]", absurdImport.Stderr);
            Assert.Contains("Nothing was changed", absurdImport.Stderr);
        }
        var notCreated = await RunAsync("models", "absurd-model");
        Assert.True(notCreated.ExitCode != 0 && notCreated.Stderr.Contains("does not exist"), notCreated.ToString());

        var models = await RunAsync("models", "imported-model");
        Assert.True(models.ExitCode == 0, models.ToString());
        Assert.Contains("* v2", models.Stdout);
        Assert.DoesNotContain("v3", models.Stdout);
    }
}
