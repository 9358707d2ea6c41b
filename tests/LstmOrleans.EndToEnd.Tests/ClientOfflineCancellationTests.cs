namespace LstmOrleans.EndToEnd.Tests;

/// <summary>The real client binary's offline `model` commands stopped by Ctrl+C or SIGTERM. No cluster needed.</summary>
public sealed class ClientOfflineCancellationTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private readonly string _folder = Binaries.TempFolder("offline-cancel");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>
    /// `model train` with far more epochs than it could run in the test's time, signalled once it has reported its first
    /// epoch (so it is training, not starting up): it stops with 130 and "Cancelled." and writes no model, neither to a new
    /// --out nor over the --model it was told to replace, and no temporary file either.
    /// </summary>
    [Theory]
    [InlineData("TERM", false)]
    [InlineData("INT", true)]
    public async Task Model_train_stops_on_a_signal_and_writes_nothing(string signal, bool outIsModel)
    {
        string model = Path.Combine(_folder, "m.safetensors");
        var init = await Binaries.RunClientAsync(Timeout, _folder, "model", "init", "--input-size", "1", "--hidden", "8", "--out", model);
        Assert.True(init.ExitCode == 0, init.ToString());
        byte[] original = await File.ReadAllBytesAsync(model);
        string output = outIsModel ? model : Path.Combine(_folder, "trained.safetensors");

        var data = Path.Combine(Binaries.BundledData, "rds_cpu_utilization_cc0c53.csv");
        using var process = System.Diagnostics.Process.Start(Binaries.Dotnet(Binaries.ClientDll,
            ["model", "train", "--model", model, "--data", data, "--window", "32", "--epochs", "1000000", "--patience", "0", "--out", output],
            _folder))!;
        var stderr = process.StandardError.ReadToEndAsync();
        // Standard output is not a terminal here, so every epoch prints one line.
        string? line;
        do line = await process.StandardOutput.ReadLineAsync().WaitAsync(Timeout);
        while (line is not null && !line.StartsWith("epoch ", StringComparison.Ordinal));
        // Only then: an interpolated message would wait for the whole standard error, i.e. for the process to end.
        if (line is null) Assert.Fail($"no epoch reported; stderr:\n{await stderr}");
        // Keep reading: an epoch line the test left in a full pipe would block the training thread, not the signal.
        var rest = process.StandardOutput.ReadToEndAsync();

        await ClientTests.AssertCancelledBySignalAsync(process, signal, stderr);
        Assert.DoesNotContain("Wrote ", await rest);
        Assert.Equal([Path.GetFileName(model)], Directory.GetFiles(_folder).Select(Path.GetFileName));
        Assert.Equal(original, await File.ReadAllBytesAsync(model));
    }
}
