namespace LstmOrleans.EndToEnd.Tests;

/// <summary>Calendar features and the residual head through the real `lstmorleans` binary and the real silo process.</summary>
[Collection(SiloCollection.Name)]
public sealed class ClientModelOptionsTests(SiloProcess silo)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private Task<ProcessResult> RunAsync(params string[] args) =>
        Binaries.RunClientAsync(Timeout, silo.DataFolder, [.. args, "--cluster", silo.Gateway, "--cluster-id", "e2e", "--service-id", "e2e", "--connect-timeout", "60"]);

    [Fact]
    public async Task Calendar_models_are_created_exported_with_their_features_and_imported_back()
    {
        var created = await RunAsync("create-model", "cli-calendar", "--hidden", "6", "--calendar");
        Assert.True(created.ExitCode == 0, created.ToString());
        var listed = await RunAsync("models", "cli-calendar");
        Assert.True(listed.ExitCode == 0, listed.ToString());
        Assert.Contains("D=1 H=6", listed.Stdout);
        Assert.Contains("calendar hour_sin,hour_cos,weekday_sin,weekday_cos", listed.Stdout);

        var folder = Binaries.TempFolder("e2e-calendar-io");
        var file = Path.Combine(folder, "calendar.safetensors");
        var exported = await RunAsync("model", "export", "cli-calendar", "--out", file);
        Assert.True(exported.ExitCode == 0, exported.ToString());
        var shown = await Binaries.RunClientAsync(Timeout, folder, "model", "show", file);
        Assert.True(shown.ExitCode == 0, shown.ToString());
        Assert.Contains("input size 5", shown.Stdout);
        Assert.Contains("Calendar:       hour_sin, hour_cos, weekday_sin, weekday_cos", shown.Stdout);

        // Offline, the file reads one value per row and derives the four calendar inputs from the timestamp.
        var csv = Path.Combine(folder, "series.csv");
        await File.WriteAllTextAsync(csv, "timestamp,value\n2024-01-01 00:00:00,1.5\n2024-01-01 06:00:00,-0.25\n");
        var predicted = await Binaries.RunClientAsync(Timeout, folder, "model", "predict", "--model", file, "--data", csv);
        Assert.True(predicted.ExitCode == 0, predicted.ToString());

        var imported = await RunAsync("model", "import", file, "--name", "cli-calendar-copy");
        Assert.True(imported.ExitCode == 0, imported.ToString());
        var copy = await RunAsync("models", "cli-calendar-copy");
        Assert.Contains("D=1 H=6", copy.Stdout);
        Assert.Contains("calendar hour_sin,hour_cos,weekday_sin,weekday_cos", copy.Stdout);

        // A model without calendar features does not take the calendar file's weights.
        Assert.Equal(0, (await RunAsync("create-model", "cli-plain", "--hidden", "6")).ExitCode);
        var mismatch = await RunAsync("model", "import", file, "--name", "cli-plain");
        Assert.Equal(1, mismatch.ExitCode);
        Assert.Contains("has shape", mismatch.Stderr);
    }

    [Fact]
    public async Task Models_are_residual_by_default_and_keep_their_head_through_export_and_import()
    {
        var created = await RunAsync("create-model", "cli-residual", "--hidden", "6");
        Assert.True(created.ExitCode == 0, created.ToString());
        Assert.Contains("residual head", (await RunAsync("models", "cli-residual")).Stdout);
        var level = await RunAsync("create-model", "cli-level", "--hidden", "6", "--residual", "false");
        Assert.True(level.ExitCode == 0, level.ToString());
        Assert.DoesNotContain("residual head", (await RunAsync("models", "cli-level")).Stdout);

        var folder = Binaries.TempFolder("e2e-residual-io");
        var file = Path.Combine(folder, "r.safetensors");
        var exported = await RunAsync("model", "export", "cli-residual", "--out", file);
        Assert.True(exported.ExitCode == 0, exported.ToString());
        var shown = await Binaries.RunClientAsync(Timeout, folder, "model", "show", file);
        Assert.True(shown.ExitCode == 0, shown.ToString());
        Assert.Contains("Head:           residual", shown.Stdout);

        var imported = await RunAsync("model", "import", file, "--name", "cli-residual-copy");
        Assert.True(imported.ExitCode == 0, imported.ToString());
        Assert.Contains("residual head", (await RunAsync("models", "cli-residual-copy")).Stdout);

        // A level model of the same shape does not take a residual file's weights (they mean changes, not levels).
        var mismatch = await RunAsync("model", "import", file, "--name", "cli-level");
        Assert.Equal(1, mismatch.ExitCode);
        Assert.Contains("residual head", mismatch.Stderr);
    }
}
