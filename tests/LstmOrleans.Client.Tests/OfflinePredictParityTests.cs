using LstmOrleans.Abstractions;
using LstmOrleans.Client.Commands;
using LstmOrleans.Client.Evaluate;
using LstmOrleans.Client.Offline;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;
using LstmOrleans.Lstm.Training;
using System.Runtime.CompilerServices;
using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>
/// Offline <c>model predict</c> on a file written by <c>model export</c> answers what the cluster's streams answer for
/// the same series, and <c>model train</c> fits the windows the cluster's training rounds fit, checked against real
/// stream grains on an in-process cluster. Both fed the CSV's raw values to a model whose streams normalise with
/// running z-scores, so predictions were not the cluster's and trained weights did not fit the model.
/// </summary>
public sealed class OfflinePredictParityTests
{
    private const int Horizons = 3;

    /// <summary>A NAB slice bundled with the evaluate tests (Evaluate/data).</summary>
    private static string Bundled(string name, [CallerFilePath] string source = "") =>
        Path.Combine(Path.GetDirectoryName(source)!, "Evaluate", "data", name);

    public static TheoryData<string, string, NormalizationMode, bool, bool> Cases() => new()
    {
        // file (a bundled NAB slice, or the synthetic 3-feature series), normalisation, calendar features, residual head
        { "machine_temperature_600.csv", "value", NormalizationMode.RunningZScore, false, false },
        { "machine_temperature_600.csv", "value", NormalizationMode.RunningZScore, true, true },
        { "three-features", "value,temperature,load", NormalizationMode.RunningZScore, true, false },
        // Without normalisation offline predict already matched the cluster: it must not change.
        { "machine_temperature_600.csv", "value", NormalizationMode.None, true, false },
        { "three-features", "value,temperature,load", NormalizationMode.None, false, true },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Offline_predict_gives_the_cluster_streams_forecasts_at_every_step_and_train_fits_their_normalised_windows(
        string file, string features, NormalizationMode normalization, bool calendar, bool residual)
    {
        using var dir = new TempDir();
        string data = dir.File("series.csv");
        if (file == "three-features") File.WriteAllText(data, ModelCommandsTests.ThreeFeatureCsv(300));
        else File.Copy(Bundled(file), data);
        var table = SensorCsv.Read(data);
        int n = table.RowCount, d = table.FeatureCount;

        // The cluster: a new stream of the model takes the whole series, in batches, and answers K forecasts per step.
        var clusterForecasts = new float[n * Horizons];                 // [N, K]
        string modelName = "parity";
        string exported = dir.File("exported.safetensors");
        await using (var cluster = await EvaluationCluster.StartAsync(historyCapacity: 1024, CancellationToken.None))
        {
            var model = cluster.Grains.GetGrain<IModelGrain>(modelName);
            var config = new ModelConfig(d, 8, 1, Horizons, features.Split(','), 0, normalization, Seed: 11,
                calendar ? ModelClusterCommands.AllCalendarFeatures : null, residual);
            await model.CreateAsync(config);
            // Weights with a non-zero head: a new residual model forecasts persistence (a zero head), which raw and
            // normalised inputs agree on, and would hide a wrong normalisation.
            var weights = LstmParameters.InitializeUniform(new LstmConfig(config.ModelInputSize, 8, 1, Horizons), 5);
            await model.PublishAsync(new PublishRequest(weights.Data, "parity test weights"));
            var stream = cluster.Grains.GetGrain<IStreamGrain>("parity-stream");
            await stream.BindAsync(modelName);
            const int chunk = 100;
            for (int from = 0; from < n; from += chunk)
            {
                int count = Math.Min(chunk, n - from);
                var sequences = new long[count];
                var ticks = new long[count];
                for (int i = 0; i < count; i++)
                {
                    sequences[i] = from + i + 1;
                    ticks[i] = new DateTimeOffset(table.Timestamps[from + i], TimeSpan.Zero).UtcTicks;
                }
                var forecast = await stream.IngestColumnsAsync(new ObservationBatch(sequences, ticks, table.Values.AsSpan(from * d, count * d)));
                Assert.Equal(count, forecast.NewCount);
                forecast.Predictions.CopyTo(clusterForecasts.AsSpan(from * Horizons, count * Horizons));
            }

            if (normalization == NormalizationMode.RunningZScore)
                Offline_train_normalises_as_the_clusters_training_rounds(await stream.GetTrainingWindowAsync(n), table, data, exported, dir,
                    ModelClusterCommands.ToModelFile(modelName, await model.GetActiveWeightsAsync())!.Value);

            // Exported as `model export` writes it.
            var (parameters, metadata) = ModelClusterCommands.ToModelFile(modelName, await model.GetActiveWeightsAsync())!.Value;
            Assert.Equal(normalization.ToString(), metadata.Extra[OfflineModel.StreamNormalizationKey]);
            ModelFile.Save(exported, parameters, metadata);
        }

        string output = dir.File("predictions.csv");
        var result = Cli.Run("model", "predict", "--model", exported, "--data", data, "--out", output);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal("", result.Stderr);   // no warning: the values go in as the cluster's streams put them
        var (timestamps, offline) = ModelCommandsTests.ReadCsv(output);
        Assert.Equal(n, timestamps.Length);
        for (int row = 0; row < n; row++)
            for (int h = 0; h < Horizons; h++)
            {
                float expected = clusterForecasts[row * Horizons + h], actual = offline[row][h];
                Assert.True(Math.Abs(actual - expected) <= 1e-5 * Math.Max(1.0, Math.Abs(expected)),
                    $"step {row} ({timestamps[row]}), horizon {h + 1}: offline {actual:R}, cluster {expected:R}");
            }
    }

    /// <summary>
    /// Offline train on the same exported file normalises as the cluster's training rounds see the stream: the rows it
    /// fits are the stream's stored training inputs (its running z-scores, calendar features), its per-row target
    /// statistics de-normalise those inputs back to the series and end at the stream's own, and the weights it writes
    /// are what the trainer fits on the cluster's window with those statistics, its first 63 rows cut (as the rounds
    /// do with their default MinStatisticsCount 64). It trained on the raw values.
    /// </summary>
    private static void Offline_train_normalises_as_the_clusters_training_rounds(StreamTrainingWindow window, SensorTable table, string data,
        string exported, TempDir dir, (LstmParameters Parameters, ModelMetadata Metadata) file)
    {
        var (parameters, metadata) = file;
        int n = table.RowCount, w = window.InputSize, target = metadata.TargetColumn;
        Assert.Equal(n, window.Rows);
        float[] rows = OfflineModel.EncodeRows(parameters.Config, metadata, table, out var scale);
        Assert.NotNull(scale);
        for (int i = 0; i < rows.Length; i++)
            Assert.True(Math.Abs(rows[i] - window.Inputs[i]) <= 1e-6 * Math.Max(1, Math.Abs(window.Inputs[i])),
                $"row {i / w}, input {i % w}: offline {rows[i]:R}, stream {window.Inputs[i]:R}");
        for (int row = 0; row < n; row++)
        {
            double raw = table.Row(row)[target], back = window.Inputs[row * w + target] * scale.Std[row] + scale.Mean[row];
            Assert.True(Math.Abs(back - raw) <= 1e-5 * Math.Max(1, Math.Abs(raw)), $"row {row}: de-normalised {back}, series {raw}");
        }
        Assert.Equal(window.Mean[target], scale.Mean[n - 1], 9);
        Assert.Equal(window.Std[target], scale.Std[n - 1], 9);

        ModelFile.Save(exported, parameters, metadata);
        string trained = dir.File("trained.safetensors");
        var result = Cli.Run("model", "train", "--model", exported, "--data", data, "--window", "16", "--epochs", "2", "--lr", "0.01", "--out", trained);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal("", result.Stderr);
        const int skip = 63;
        var defaults = new TrainerOptions();
        var expected = LstmTrainer.Fit(parameters, [window.Inputs[(skip * w)..]], new TrainerOptions
        {
            WindowLength = 16, Stride = 4, MaxEpochs = 2, LearningRate = 0.01f, Optimizer = OptimizerKind.Adam,
            TargetColumn = target, Seed = 0, ValidationFraction = defaults.ValidationFraction, Patience = defaults.Patience,
        }, scales: [new SeriesScale(scale.Mean[skip..], scale.Std[skip..])]).BestParameters;
        var actual = ModelFile.Load(trained).Parameters;
        for (int i = 0; i < expected.Data.Length; i++)
            Assert.True(Math.Abs(actual.Data[i] - expected.Data[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected.Data[i])),
                $"parameter {i}: offline train {actual.Data[i]:R}, trainer on the stream's window {expected.Data[i]:R}");
    }
}
