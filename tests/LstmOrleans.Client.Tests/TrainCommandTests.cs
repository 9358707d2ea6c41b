using System.Text.Json;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;
using LstmOrleans.Lstm.Training;
using Xunit;

namespace LstmOrleans.Client.Tests;

public class TrainCommandTests
{
    /// <summary>
    /// Independent reference for the deterministic mode's loss: consecutive windows of <paramref name="window"/>
    /// rows from row 0, zero state per window, one Step per row; output k at row t against column
    /// <paramref name="target"/> of row t + k + 1 of the whole series, entries past the end skipped; mean of squares.
    /// </summary>
    private static double WindowedMse(LstmParameters parameters, float[][] rows, int target, int window)
    {
        var config = parameters.Config;
        var weights = LstmWeights.From(parameters);
        var y = new float[config.Horizons];
        double sum = 0;
        long count = 0;
        for (int start = 0; start + window <= rows.Length; start += window)
        {
            var h = new float[config.StateSize];
            var c = new float[config.StateSize];
            for (int t = start; t < start + window; t++)
            {
                weights.Step(rows[t], h, c, y);
                for (int k = 0; k < config.Horizons; k++)
                {
                    if (t + k + 1 >= rows.Length) continue;
                    double error = y[k] - rows[t + k + 1][target];
                    sum += error * error;
                    count++;
                }
            }
        }
        return sum / count;
    }

    private static double[] Losses(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToArray();
    }

    [Fact]
    public void DeterministicTrainingReportsTheWindowedLossLowersItAndRepeatsBitForBit()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), first = dir.File("a.safetensors"), second = dir.File("b.safetensors");
        File.WriteAllText(data, ModelCommandsTests.ThreeFeatureCsv(30));
        Assert.Equal(0, Cli.Run("model", "init", "--input-size", "3", "--hidden", "4", "--layers", "2", "--horizons", "3", "--seed", "3", "--out", model).ExitCode);

        string[] train = ["model", "train", "--model", model, "--data", data, "--window", "6", "--epochs", "5", "--optimizer", "sgd", "--lr", "0.05", "--deterministic", "--json"];
        var run = Cli.Run([.. train, "--out", first]);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Stderr);
        var losses = Losses(run.Stdout);
        Assert.Equal(5, losses.Length);

        var (_, inputs) = ModelCommandsTests.ReadCsv(data);
        var (initial, _) = ModelFile.Load(model);
        var (trained, trainedMetadata) = ModelFile.Load(first);
        Assert.Equal(initial.Config, trained.Config);
        Assert.Equal(0, trainedMetadata.TargetColumn);

        // Epoch 1's loss is the initial model's loss, recomputed here step by step.
        double before = WindowedMse(initial, inputs, target: 0, window: 6);
        Assert.Equal(before, losses[0], before * 1e-5);
        // Gradient descent lowered it.
        double after = WindowedMse(trained, inputs, target: 0, window: 6);
        Assert.True(after < before, $"loss went from {before} to {after}");
        Assert.True(losses[^1] < losses[0]);

        // Same inputs, same bytes.
        Assert.Equal(0, Cli.Run([.. train, "--out", second]).ExitCode);
        Assert.Equal(File.ReadAllBytes(first), File.ReadAllBytes(second));

        // The CLI hands the trainer the CSV's rows as they are.
        var direct = initial.Clone();
        LstmTrainer.TrainDeterministic(direct, inputs.SelectMany(r => r).ToArray(), 0, 6, 5, 0.05f, OptimizerKind.Sgd);
        Assert.Equal(direct.Data, trained.Data);
    }

    [Fact]
    public void TrainingKeepsMetadataAndTrainsOnNormalisedInputs()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), output = dir.File("out.safetensors");
        File.WriteAllText(data, ModelCommandsTests.ThreeFeatureCsv(24));
        var parameters = LstmParameters.InitializeUniform(new LstmConfig(3, 3, 1, 2), 4);
        float[] mean = [0f, 21f, 0f], std = [1.5f, 1f, 2f];
        var metadata = new ModelMetadata
        {
            ModelName = "m",
            TargetColumn = 1,
            FeatureNames = ["value", "temperature", "load"],
            Normalization = new FeatureNormalization(mean, std),
        };
        ModelFile.Save(model, parameters, metadata);

        var run = Cli.Run("model", "train", "--model", model, "--data", data, "--window", "8", "--epochs", "2", "--optimizer", "adam", "--lr", "0.01", "--deterministic", "--out", output, "--json");
        Assert.Equal(0, run.ExitCode);
        var (_, saved) = ModelFile.Load(output);
        Assert.Equal("m", saved.ModelName);
        Assert.Equal(1, saved.TargetColumn);
        Assert.Equal(metadata.FeatureNames, saved.FeatureNames);
        Assert.Equal(mean, saved.Normalization!.Mean);

        // The first loss is measured in normalised units: inputs z-scored, target = normalised column 1.
        var (_, inputs) = ModelCommandsTests.ReadCsv(data);
        var normalised = inputs.Select(r => r.Select((v, i) => (v - mean[i]) / std[i]).ToArray()).ToArray();
        double expected = WindowedMse(parameters, normalised, target: 1, window: 8);
        Assert.Equal(expected, Losses(run.Stdout)[0], expected * 1e-5);
    }

    [Fact]
    public void FitModeTrainsAndWritesAModelOfTheSameShape()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), output = dir.File("out.safetensors");
        File.WriteAllText(data, ModelCommandsTests.ThreeFeatureCsv(60));
        Assert.Equal(0, Cli.Run("model", "init", "--input-size", "3", "--hidden", "4", "--layers", "2", "--horizons", "3", "--out", model).ExitCode);

        var run = Cli.Run("model", "train", "--model", model, "--data", data, "--window", "10", "--epochs", "3", "--optimizer", "adam", "--lr", "0.01", "--out", output);
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("epoch 3/3: train loss", run.Stdout);
        var (initial, _) = ModelFile.Load(model);
        var (trained, _) = ModelFile.Load(output);
        Assert.Equal(initial.Config, trained.Config);
        Assert.NotEqual(initial.Data, trained.Data);
        Assert.True(trained.AllFinite());
    }

    [Fact]
    public void FitModeOutsideATerminalPrintsOnePlainLinePerEpochWithTheSameLossesAsJson()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), text = dir.File("text.safetensors"), json = dir.File("json.safetensors");
        File.WriteAllText(data, ModelCommandsTests.ThreeFeatureCsv(80));
        Assert.Equal(0, Cli.Run("model", "init", "--input-size", "3", "--hidden", "4", "--horizons", "2", "--seed", "5", "--out", model).ExitCode);
        string[] train = ["model", "train", "--model", model, "--data", data, "--window", "8", "--epochs", "4", "--lr", "0.01", "--seed", "9", "--patience", "0"];

        var plain = Cli.Run([.. train, "--out", text]);
        Assert.True(plain.ExitCode == 0, plain.Stderr);
        Assert.Equal("", plain.Stderr);
        Assert.DoesNotContain('\u001b', plain.Stdout);   // no terminal control sequences in a pipe
        var lines = plain.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var epochLines = lines.Where(l => l.StartsWith("epoch ", StringComparison.Ordinal)).ToArray();
        Assert.Equal(4, epochLines.Length);
        var pattern = new System.Text.RegularExpressions.Regex(@"^epoch (\d)/4: train loss (\S+), validation loss (\S+), \d+\.\d s elapsed$");

        // The same run with --json prints nothing but the JSON document, and its losses are the ones printed above.
        var structured = Cli.Run([.. train, "--out", json, "--json"]);
        Assert.True(structured.ExitCode == 0, structured.Stderr);
        Assert.Equal("", structured.Stderr);
        using var document = JsonDocument.Parse(structured.Stdout);
        var root = document.RootElement;
        var trainLosses = root.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var validationLosses = root.GetProperty("validationLosses").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(4, trainLosses.Length);
        Assert.Equal(4, validationLosses.Length);
        for (int e = 0; e < 4; e++)
        {
            var match = pattern.Match(epochLines[e]);
            Assert.True(match.Success, epochLines[e]);
            Assert.Equal(e + 1, int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(trainLosses[e].ToString("G6"), match.Groups[2].Value);
            Assert.Equal(validationLosses[e].ToString("G6"), match.Groups[3].Value);
        }
        int best = root.GetProperty("bestEpoch").GetInt32();
        Assert.InRange(best, 1, 4);
        Assert.Equal(validationLosses.Min(), root.GetProperty("bestValidationLoss").GetDouble());
        Assert.Equal(validationLosses[best - 1], root.GetProperty("bestValidationLoss").GetDouble());
        Assert.False(root.GetProperty("stoppedEarly").GetBoolean());
        Assert.Contains($"Best epoch {best}: validation loss", plain.Stdout);
        Assert.StartsWith("Wrote ", lines[^1]);
        // Same seed, same data: both runs wrote the same weights.
        Assert.Equal(File.ReadAllBytes(text), File.ReadAllBytes(json));
    }

    [Fact]
    public void FitModeWithoutValidationSaysSoAndACapturedWriterIsNeverATerminal()
    {
        Assert.False(LstmOrleans.Client.Offline.TrainingProgress.IsTerminal(new StringWriter()));
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), output = dir.File("out.safetensors");
        File.WriteAllText(data, ModelCommandsTests.ThreeFeatureCsv(40));
        Assert.Equal(0, Cli.Run("model", "init", "--input-size", "3", "--hidden", "3", "--out", model).ExitCode);
        var run = Cli.Run("model", "train", "--model", model, "--data", data, "--window", "8", "--epochs", "2", "--validation", "0", "--out", output);
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Matches(@"(?m)^epoch 2/2: train loss \S+, \d+\.\d s elapsed\r?$", run.Stdout);
        Assert.DoesNotContain("validation loss", run.Stdout);
        Assert.Contains("no validation split", run.Stdout);
    }

    public static TheoryData<string[], string> TrainErrors => new()
    {
        { ["--window", "5", "--epochs", "2", "--validation", "0.05"], "Use a shorter --window or --validation 0" },
        { ["--window", "5", "--epochs", "2", "--validation", "1"], "--validation must be in [0, 1)" },
        { ["--window", "5", "--epochs", "2", "--patience", "-1"], "--patience must not be negative" },
        { ["--window", "5", "--epochs", "2", "--optimizer", "rmsprop"], "rmsprop" },
        { ["--window", "50", "--epochs", "2"], "has 20 rows, fewer than one window of 50" },
        { ["--window", "0", "--epochs", "2"], "--window must be at least 1" },
        { ["--window", "5", "--epochs", "0"], "--epochs must be at least 1" },
        { ["--window", "5", "--epochs", "2", "--lr", "-1"], "--lr must be positive" },
        { ["--window", "5"], "--epochs" },
    };

    [Theory]
    [MemberData(nameof(TrainErrors))]
    public void BadTrainingArgumentsExitNonZeroAndWriteNothing(string[] extra, string fragment)
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), output = dir.File("out.safetensors");
        File.WriteAllText(data, ModelCommandsTests.ThreeFeatureCsv(20));
        Assert.Equal(0, Cli.Run("model", "init", "--input-size", "3", "--hidden", "2", "--out", model).ExitCode);

        var run = Cli.Run(["model", "train", "--model", model, "--data", data, "--out", output, .. extra]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(fragment, run.Stderr);
        Assert.False(File.Exists(output));
    }
}
