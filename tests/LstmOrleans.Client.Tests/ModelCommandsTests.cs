using System.Globalization;
using System.Text;
using System.Text.Json;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;
using Xunit;

namespace LstmOrleans.Client.Tests;

public class ModelCommandsTests
{
    /// <summary>A CSV with <paramref name="rows"/> rows of 3 features, 5 minutes apart, values varied but smooth.</summary>
    internal static string ThreeFeatureCsv(int rows)
    {
        var text = new StringBuilder("timestamp,value,temperature,load\n");
        var start = new DateTime(2013, 12, 2, 21, 15, 0);
        for (int i = 0; i < rows; i++)
        {
            float a = MathF.Sin(i * 0.3f) * 2f, b = 20f + i * 0.125f, c = (i % 7) - 3.5f;
            text.Append(start.AddMinutes(5 * i).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture))
                .Append(',').Append(a.ToString("R", CultureInfo.InvariantCulture))
                .Append(',').Append(b.ToString("R", CultureInfo.InvariantCulture))
                .Append(',').Append(c.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        }
        return text.ToString();
    }

    internal static (string[] Timestamps, float[][] Values) ReadCsv(string path)
    {
        var lines = File.ReadAllLines(path);
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToArray();
        return (rows.Select(r => r[0]).ToArray(),
                rows.Select(r => r.Skip(1).Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray());
    }

    [Fact]
    public void Predict_and_train_on_an_exported_model_whose_streams_normalise_say_nothing_and_train_as_the_cluster_does()
    {
        // model export records a cluster model's running z-scores in the metadata only (the statistics live in each
        // stream). Predict and train replay them as a new stream would (OfflinePredictParityTests) without a warning;
        // train, as the cluster's rounds, leaves out the first 63 rows (statistics of fewer than 64 observations).
        using var dir = new TempDir();
        string data = dir.File("series.csv"), shortData = dir.File("short.csv");
        File.WriteAllText(data, ThreeFeatureCsv(100));
        File.WriteAllText(shortData, ThreeFeatureCsv(70));
        string exported = dir.File("exported.safetensors"), plain = dir.File("plain.safetensors");
        var parameters = LstmParameters.InitializeUniform(new LstmConfig(3, 4, 1, 1), 3);
        ModelFile.Save(exported, parameters, new ModelMetadata { Extra = new Dictionary<string, string> { ["lstmorleans.stream_normalization"] = "RunningZScore" } });
        ModelFile.Save(plain, parameters, new ModelMetadata { Extra = new Dictionary<string, string> { ["lstmorleans.stream_normalization"] = "None" } });

        string[][] commands =
        [
            ["model", "predict", "--model", "MODEL", "--data", data, "--out", dir.File("p.csv")],
            ["model", "train", "--model", "MODEL", "--data", data, "--window", "8", "--epochs", "1", "--out", dir.File("t.safetensors")],
        ];
        foreach (var command in commands)
            foreach (var model in new[] { exported, plain })
            {
                var quiet = Cli.Run([.. command.Select(a => a == "MODEL" ? model : a)]);
                Assert.True(quiet.ExitCode == 0, quiet.Stderr);
                Assert.Equal("", quiet.Stderr);
            }

        var tooShort = Cli.Run("model", "train", "--model", exported, "--data", shortData, "--window", "8", "--epochs", "1", "--out", dir.File("t.safetensors"));
        Assert.Equal(2, tooShort.ExitCode);
        Assert.Contains("has 70 rows, 7 after the first 63", tooShort.Stderr);
        var deterministic = Cli.Run("model", "train", "--model", exported, "--data", data, "--window", "8", "--epochs", "1", "--deterministic", "--out", dir.File("t.safetensors"));
        Assert.Equal(2, deterministic.ExitCode);
        Assert.Contains("--deterministic cannot train this model as the cluster does", deterministic.Stderr);
        Assert.True(Cli.Run("model", "train", "--model", plain, "--data", shortData, "--window", "8", "--epochs", "1", "--deterministic", "--out", dir.File("t.safetensors")).ExitCode == 0);
    }

    [Theory]
    [InlineData("7")]
    [InlineData("Standard")]
    public void Predict_refuses_a_stream_normalisation_it_does_not_know(string mode)
    {
        using var dir = new TempDir();
        string data = dir.File("series.csv"), model = dir.File("m.safetensors");
        File.WriteAllText(data, ThreeFeatureCsv(10));
        ModelFile.Save(model, LstmParameters.InitializeUniform(new LstmConfig(3, 4, 1, 1), 3),
            new ModelMetadata { Extra = new Dictionary<string, string> { ["lstmorleans.stream_normalization"] = mode } });
        var result = Cli.Run("model", "predict", "--model", model, "--data", data);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"lstmorleans.stream_normalization is '{mode}'", result.Stderr);
    }

    [Fact]
    public void InitWritesTheSeededInitialisationAndShowReportsIt()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors");

        var init = Cli.Run("model", "init", "--input-size", "3", "--hidden", "5", "--layers", "2", "--horizons", "3", "--seed", "11", "--out", model);
        Assert.Equal(0, init.ExitCode);
        Assert.Equal("", init.Stderr);

        var config = new LstmConfig(3, 5, 2, 3);
        var (parameters, metadata) = ModelFile.Load(model);
        Assert.Equal(config, parameters.Config);
        Assert.Equal(LstmParameters.InitializeUniform(config, 11).Data, parameters.Data);
        Assert.Null(metadata.Normalization);

        var show = Cli.Run("model", "show", model, "--json");
        Assert.Equal(0, show.ExitCode);
        using var json = JsonDocument.Parse(show.Stdout);
        var root = json.RootElement;
        Assert.Equal(3, root.GetProperty("inputSize").GetInt32());
        Assert.Equal(5, root.GetProperty("hiddenSize").GetInt32());
        Assert.Equal(2, root.GetProperty("layers").GetInt32());
        Assert.Equal(3, root.GetProperty("horizons").GetInt32());
        Assert.Equal(LstmParameters.CountFor(config), root.GetProperty("parameters").GetInt64());
        Assert.Equal(new FileInfo(model).Length, root.GetProperty("fileBytes").GetInt64());

        var text = Cli.Run("model", "show", model);
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("input size 3, hidden size 5, 2 layers, 3 horizons", text.Stdout);
        Assert.Contains($"Parameters:     {LstmParameters.CountFor(config)}", text.Stdout);
    }

    [Fact]
    public void InitStoresNameAndFeatureNames()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors");
        var init = Cli.Run("model", "init", "--input-size", "2", "--hidden", "3", "--out", model, "--name", "taxi", "--feature-names", "value,temp", "--target-column", "1", "--json");
        Assert.Equal(0, init.ExitCode);
        using (JsonDocument.Parse(init.Stdout)) { }
        var (_, metadata) = ModelFile.Load(model);
        Assert.Equal("taxi", metadata.ModelName);
        Assert.Equal(new[] { "value", "temp" }, metadata.FeatureNames);
        Assert.Equal(1, metadata.TargetColumn);

        var bad = Cli.Run("model", "init", "--input-size", "2", "--hidden", "3", "--out", model, "--feature-names", "a,b,c");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("3 feature names", bad.Stderr);
    }

    [Fact]
    public void PredictMatchesStepByStepReferenceForATwoLayerThreeHorizonModel()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), output = dir.File("p.csv");
        File.WriteAllText(data, ThreeFeatureCsv(25));
        Assert.Equal(0, Cli.Run("model", "init", "--input-size", "3", "--hidden", "4", "--layers", "2", "--horizons", "3", "--seed", "5", "--out", model).ExitCode);

        var predict = Cli.Run("model", "predict", "--model", model, "--data", data, "--out", output);
        Assert.Equal(0, predict.ExitCode);
        Assert.Equal("", predict.Stderr);

        var lines = File.ReadAllLines(output);
        Assert.Equal("timestamp,y1,y2,y3", lines[0]);
        var (inputStamps, inputs) = ReadCsv(data);
        var (stamps, predictions) = ReadCsv(output);
        Assert.Equal(inputStamps, stamps);

        // Reference: the same parameters, zero state, one Step per row, values as they are.
        var weights = LstmWeights.From(LstmParameters.InitializeUniform(new LstmConfig(3, 4, 2, 3), 5));
        var h = new float[8];
        var c = new float[8];
        var y = new float[3];
        for (int row = 0; row < inputs.Length; row++)
        {
            weights.Step(inputs[row], h, c, y);
            Assert.Equal(y, predictions[row]);   // exact: the CSV holds round-trip text
        }
    }

    /// <summary>Without --out the predictions are the CSV on stdout: --json was ignored there, and a script asking for JSON got CSV.</summary>
    [Fact]
    public void PredictRefusesJsonWithoutOutAndDescribesTheFileWithIt()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), output = dir.File("p.csv");
        File.WriteAllText(data, ThreeFeatureCsv(5));
        Assert.Equal(0, Cli.Run("model", "init", "--input-size", "3", "--hidden", "4", "--out", model).ExitCode);

        var refused = Cli.Run("model", "predict", "--model", model, "--data", data, "--json");
        Assert.Equal(2, refused.ExitCode);
        // No predictions' header line (a parse error prints the help there).
        Assert.DoesNotContain("timestamp,y1", refused.Stdout.Split('\n', StringSplitOptions.TrimEntries));
        Assert.Contains("--json needs --out", refused.Stderr);

        var described = Cli.Run("model", "predict", "--model", model, "--data", data, "--out", output, "--json");
        Assert.Equal(0, described.ExitCode);
        using var json = JsonDocument.Parse(described.Stdout);
        Assert.Equal(output, json.RootElement.GetProperty("path").GetString());
        Assert.Equal(5, json.RootElement.GetProperty("rows").GetInt32());
    }

    [Fact]
    public void PredictAppliesNormalisationAndDenormalisesTheTarget()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), output = dir.File("p.csv");
        File.WriteAllText(data, ThreeFeatureCsv(10));
        var config = new LstmConfig(3, 3, 1, 2);
        var parameters = LstmParameters.InitializeUniform(config, 8);
        float[] mean = [0.5f, 20f, -1f], std = [2f, 4f, 0.5f];
        ModelFile.Save(model, parameters, new ModelMetadata
        {
            TargetColumn = 1,
            FeatureNames = ["value", "temperature", "load"],
            Normalization = new FeatureNormalization(mean, std),
        });

        var predict = Cli.Run("model", "predict", "--model", model, "--data", data, "--out", output, "--json");
        Assert.Equal(0, predict.ExitCode);
        using (var json = JsonDocument.Parse(predict.Stdout))
            Assert.Equal(10, json.RootElement.GetProperty("rows").GetInt32());

        var (_, inputs) = ReadCsv(data);
        var (_, predictions) = ReadCsv(output);
        var weights = LstmWeights.From(parameters);
        var h = new float[3];
        var c = new float[3];
        var y = new float[2];
        var x = new float[3];
        for (int row = 0; row < inputs.Length; row++)
        {
            for (int i = 0; i < 3; i++) x[i] = (inputs[row][i] - mean[i]) / std[i];
            weights.Step(x, h, c, y);
            Assert.Equal(new[] { y[0] * 4f + 20f, y[1] * 4f + 20f }, predictions[row]);
        }
    }

    [Fact]
    public void PredictReadsAPyTorchStyleFileWithoutMetadata()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv");
        File.WriteAllText(data, "timestamp,value\n2013-12-02 21:15:00,1.5\n2013-12-02 21:20:00,2\n");
        ModelFile.Save(model, LstmParameters.InitializeUniform(new LstmConfig(1, 2, 1, 1), 1));
        var predict = Cli.Run("model", "predict", "--model", model, "--data", data);
        Assert.Equal(0, predict.ExitCode);

        // Without --out the predictions go to standard output.
        var weights = LstmWeights.From(LstmParameters.InitializeUniform(new LstmConfig(1, 2, 1, 1), 1));
        var h = new float[2];
        var c = new float[2];
        var y1 = new float[1];
        var y2 = new float[1];
        weights.Step([1.5f], h, c, y1);
        weights.Step([2f], h, c, y2);
        string expected = $"timestamp,y1\n2013-12-02 21:15:00,{y1[0]:R}\n2013-12-02 21:20:00,{y2[0]:R}\n";
        Assert.Equal(expected, predict.Stdout);
    }

    [Fact]
    public void HelpIsAvailableEverywhere()
    {
        foreach (var path in new[] { new[] { "model" }, ["model", "init"], ["model", "show"], ["model", "predict"] })
        {
            var help = Cli.Run([.. path, "--help"]);
            Assert.Equal(0, help.ExitCode);
            Assert.Contains("Usage:", help.Stdout);
        }
        Assert.Contains("--input-size", Cli.Run("model", "init", "--help").Stdout);
        Assert.Contains("--data", Cli.Run("model", "predict", "--help").Stdout);
    }

    public static TheoryData<string[], string> ArgumentErrors => new()
    {
        { ["model", "init", "--hidden", "4", "--out", "x.safetensors"], "--input-size" },
        { ["model", "init", "--input-size", "0", "--hidden", "4", "--out", "x.safetensors"], "Input size must be between 1 and 4096, got 0" },
        { ["model", "init", "--input-size", "2", "--hidden", "4", "--layers", "99", "--out", "x.safetensors"], "Layer count must be between" },
        { ["model", "init", "--input-size", "two", "--hidden", "4", "--out", "x.safetensors"], "two" },
        { ["model", "init", "--input-size", "4096", "--hidden", "4096", "--layers", "8", "--horizons", "4096", "--out", "x.safetensors"], "1090785280 parameters" },
        { ["model", "predict", "--model", "m.safetensors"], "--data" },
        { ["model", "show"], "Required argument missing for command: 'show'" },
        { ["model", "frobnicate"], "frobnicate" },
    };

    [Theory]
    [MemberData(nameof(ArgumentErrors))]
    public void ArgumentErrorsExitTwoWithAMessage(string[] args, string fragment)
    {
        var result = Cli.Run(args);
        Assert.Equal(2, result.ExitCode);   // README: 2 = bad arguments, for parse errors as for the commands' own checks
        Assert.Contains(fragment, result.Stderr);
        Assert.False(File.Exists("x.safetensors"));
    }

    public static TheoryData<string, string> BadCsvs => new()
    {
        { "timestamp,a,b,c\n2013-12-02 21:15:00,1,2,3\n2013-12-02 21:20:00,1,2\n", "line 3: 3 fields, but the header has 4 columns" },
        { "timestamp,a,b,c\n2013-12-02 21:15:00,1,2,3\n\n2013-12-02 21:25:00,1,NaN,3\n", "line 4, column 'b': 'NaN' is not a finite number" },
        { "timestamp,a,b,c\n2013-12-02 21:15:00,1,2,1e39\n", "line 2, column 'c': '1e39' is not a finite number" },
        { "timestamp,a,b,c\n2013-12-02 21:15:00,1,x,3\n", "line 2, column 'b': 'x' is not a number" },
        { "timestamp,a,b,c\nyesterday,1,2,3\n", "line 2: 'yesterday' is not a timestamp" },
        { "timestamp,a,b\n2013-12-02 21:15:00,1,2\n", "has 2 value columns (a, b) but the model takes 3" },
        { "timestamp,a,b,c,d\n2013-12-02 21:15:00,1,2,3,4\n", "d.csv has 4 value columns (a, b, c, d) but the model takes 3 (input size 3)." },
        { "timestamp,a,b,c\n", "no data rows" },
        { "", "the file is empty" },
        { "timestamp,a,a,c\n", "column 'a' appears twice" },
        { "timestamp,a,b,c\n\"2013-12-02 21:15:00,1,2,3\n", "line 2: a quoted field is not closed" },
    };

    [Theory]
    [MemberData(nameof(BadCsvs))]
    public void MalformedDataIsReportedWithItsLine(string csv, string fragment)
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), output = dir.File("p.csv");
        File.WriteAllText(data, csv);
        ModelFile.Save(model, LstmParameters.InitializeUniform(new LstmConfig(3, 2, 1, 1), 1));

        var result = Cli.Run("model", "predict", "--model", model, "--data", data, "--out", output);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(fragment, result.Stderr);
        Assert.StartsWith("error: ", result.Stderr);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void MissingAndMalformedFilesAreReported()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv"), output = dir.File("p.csv");
        File.WriteAllText(data, ThreeFeatureCsv(3));

        var missingModel = Cli.Run("model", "predict", "--model", model, "--data", data, "--out", output);
        Assert.Equal(2, missingModel.ExitCode);
        Assert.Contains("does not exist", missingModel.Stderr);

        File.WriteAllBytes(model, Encoding.UTF8.GetBytes("definitely not a safetensors file"));
        var garbage = Cli.Run("model", "show", model);
        Assert.Equal(2, garbage.ExitCode);
        Assert.Contains("exceeds the limit", garbage.Stderr);

        ModelFile.Save(model, LstmParameters.InitializeUniform(new LstmConfig(3, 2, 1, 1), 1));
        var missingData = Cli.Run("model", "predict", "--model", model, "--data", dir.File("none.csv"), "--out", output);
        Assert.Equal(2, missingData.ExitCode);
        Assert.Contains("none.csv' does not exist", missingData.Stderr);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void FeatureNamesInTheModelMustMatchTheHeader()
    {
        using var dir = new TempDir();
        string model = dir.File("m.safetensors"), data = dir.File("d.csv");
        File.WriteAllText(data, ThreeFeatureCsv(3));
        ModelFile.Save(model, LstmParameters.InitializeUniform(new LstmConfig(3, 2, 1, 1), 1),
            new ModelMetadata { FeatureNames = ["value", "load", "temperature"] });
        var result = Cli.Run("model", "predict", "--model", model, "--data", data);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("built for (value, load, temperature)", result.Stderr);
    }
}
