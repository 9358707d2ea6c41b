using LstmOrleans.Client.Offline;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;
using LstmOrleans.Lstm.Training;
using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>
/// The offline `model` commands observe the token Ctrl+C and SIGTERM cancel: they stop with exit code 130 and leave their
/// output files as they were. (The real process stopped by a signal mid-training: the end-to-end ClientOfflineCancellationTests.)
/// </summary>
public class OfflineCancellationTests
{
    private static CancellationToken Cancelled() => new(canceled: true);

    private static void AssertCancelled(CliResult result)
    {
        Assert.True(result.ExitCode == ClientCommandLine.Cancelled, $"exit {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        Assert.Equal("error: Cancelled.", result.Stderr.Trim());
    }

    [Fact]
    public async Task EveryOfflineModelCommandExits130OnCancellationAndWritesNothing()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv");
        File.WriteAllText(data, ModelCommandsTests.ThreeFeatureCsv(40));
        Assert.Equal(0, Cli.Run("model", "init", "--input-size", "3", "--hidden", "4", "--out", model).ExitCode);
        byte[] original = File.ReadAllBytes(model);

        AssertCancelled(await Cli.RunAsync(Cancelled(), "model", "init", "--input-size", "3", "--hidden", "4", "--out", dir.File("init.safetensors")));
        var show = await Cli.RunAsync(Cancelled(), "model", "show", model);
        AssertCancelled(show);
        Assert.Equal("", show.Stdout);
        AssertCancelled(await Cli.RunAsync(Cancelled(), "model", "predict", "--model", model, "--data", data, "--out", dir.File("p.csv")));
        AssertCancelled(await Cli.RunAsync(Cancelled(), "model", "train", "--model", model, "--data", data, "--window", "4", "--epochs", "3", "--out", model));
        AssertCancelled(await Cli.RunAsync(Cancelled(), "model", "train", "--model", model, "--data", data, "--window", "4", "--epochs", "3", "--deterministic", "--out", model));

        // Nothing new in the folder (no output, no temporary file) and the model that --out named is unchanged.
        Assert.Equal(["d.csv", "m.safetensors"], Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(original, File.ReadAllBytes(model));
    }

    /// <summary>The long steps inside the commands look at the token: reading a CSV, stepping through it, writing predictions and models, training.</summary>
    [Fact]
    public void TheLongStepsThrowWhenCancelledAndLeaveNoPartialFile()
    {
        using var dir = new TempDir();
        var parameters = LstmParameters.InitializeUniform(new LstmConfig(3, 4, 1, 1), seed: 1);
        var table = SensorCsv.Read(new StringReader(ModelCommandsTests.ThreeFeatureCsv(20)), "d.csv");

        Assert.Throws<OperationCanceledException>(() => SensorCsv.Read(new StringReader(ModelCommandsTests.ThreeFeatureCsv(20)), "d.csv", Cancelled()));
        Assert.Throws<OperationCanceledException>(() => OfflineModel.Predict(parameters, ModelMetadata.Empty, table, "d.csv", Cancelled()));
        Assert.Throws<OperationCanceledException>(() => SensorCsv.WritePredictions(new StringWriter(), table.TimestampText, new float[table.RowCount], 1, Cancelled()));
        Assert.Throws<OperationCanceledException>(() => ModelCommands.WriteFileAtomically(dir.File("p.csv"),
            writer => SensorCsv.WritePredictions(writer, table.TimestampText, new float[table.RowCount], 1, Cancelled())));
        Assert.Throws<OperationCanceledException>(() => LstmTrainer.TrainDeterministic(parameters.Clone(), table.Values, 0, 4, 3, 0.01f, OptimizerKind.Sgd, Cancelled()));

        string model = dir.File("m.safetensors");
        ModelFile.Save(model, parameters);
        byte[] original = File.ReadAllBytes(model);
        var other = LstmParameters.InitializeUniform(new LstmConfig(3, 4, 1, 1), seed: 2);
        Assert.Throws<OperationCanceledException>(() => ModelFile.Save(model, other, cancellationToken: Cancelled()));
        Assert.Throws<OperationCanceledException>(() => ModelFile.Load(model, cancellationToken: Cancelled()));

        Assert.Equal(["m.safetensors"], Directory.GetFiles(dir.Path).Select(Path.GetFileName));
        Assert.Equal(original, File.ReadAllBytes(model));
    }
}
