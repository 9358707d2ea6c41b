using LstmOrleans.Abstractions;
using LstmOrleans.Client.Commands;
using LstmOrleans.Client.Evaluate;
using LstmOrleans.Client.Offline;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;
using System.Runtime.CompilerServices;
using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>
/// Offline <c>model predict</c> on a file written by <c>model export</c> answers what the cluster's streams answer for
/// the same series, checked against real stream grains on an in-process cluster. It fed the CSV's raw values to a
/// model whose streams normalise with running z-scores, so its forecasts were not the cluster's.
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
    public async Task Offline_predict_on_an_exported_model_gives_the_cluster_streams_forecasts_at_every_step(
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
        await using (var cluster = await EvaluationCluster.StartAsync(historyCapacity: 128, CancellationToken.None))
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
}
