using System.CommandLine;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;
using LstmOrleans.Lstm.Training;

namespace LstmOrleans.Client.Offline;

/// <summary>`model train`: refits a model file's weights on a CSV by BPTT, in-process.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var modelPath = new Option<string>("--model") { Description = "Model file to start from (.safetensors).", Required = true };
        var data = new Option<string>("--data") { Description = "Training CSV with a header; first column a timestamp, then the model's input columns.", Required = true };
        var window = new Option<int>("--window") { Description = "Steps per training window (BPTT length T).", Required = true };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the data (--deterministic: full-batch steps).", Required = true };
        var optimizer = new Option<string>("--optimizer") { Description = "Update rule.", DefaultValueFactory = _ => "adam" };
        optimizer.AcceptOnlyFromAmong("sgd", "adam");
        var learningRate = new Option<float>("--lr") { Description = "Learning rate.", DefaultValueFactory = _ => 1e-3f };
        var output = new Option<string>("--out") { Description = "Model file to write (.safetensors); may equal --model.", Required = true };
        var deterministic = new Option<bool>("--deterministic")
        {
            Description = "Reproducible mode: consecutive windows from the first row, one full batch per epoch, no shuffling, clipping or validation, single-threaded.",
        };
        var seed = new Option<int>("--seed") { Description = "Seed of the window shuffling (ignored with --deterministic).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };

        var command = new Command("train", "Train a model file's weights on a CSV by backpropagation through time and write the result.")
        {
            modelPath, data, window, epochs, optimizer, learningRate, output, deterministic, seed, json,
        };
        command.SetAction(parse => ModelCommands.Run(parse, stdout =>
        {
            int windowLength = parse.GetValue(window), epochCount = parse.GetValue(epochs);
            float lr = parse.GetValue(learningRate);
            if (windowLength < 1) throw new CliException($"--window must be at least 1, got {windowLength}.");
            if (epochCount < 1) throw new CliException($"--epochs must be at least 1, got {epochCount}.");
            if (!(lr > 0f) || !float.IsFinite(lr)) throw new CliException($"--lr must be positive and finite, got {lr}.");
            var kind = parse.GetValue(optimizer) == "sgd" ? OptimizerKind.Sgd : OptimizerKind.Adam;

            var (parameters, metadata) = ModelFile.Load(parse.GetValue(modelPath)!);
            string dataPath = parse.GetValue(data)!;
            var table = SensorCsv.Read(dataPath);
            var config = parameters.Config;
            OfflineModel.CheckColumns(config, metadata, table, dataPath);
            float[] rows = OfflineModel.EncodeRows(config, metadata, table);     // [N, D], model inputs (normalised if the model says so)
            if (table.RowCount < windowLength)
                throw new CliException($"{dataPath} has {table.RowCount} rows, fewer than one window of {windowLength}.");

            IReadOnlyList<double> losses;
            LstmParameters trained;
            try
            {
                if (parse.GetValue(deterministic))
                {
                    trained = parameters.Clone();
                    losses = LstmTrainer.TrainDeterministic(trained, rows, metadata.TargetColumn, windowLength, epochCount, lr, kind)
                        .Select(l => (double)l).ToList();
                }
                else
                {
                    var options = new TrainerOptions
                    {
                        WindowLength = windowLength,
                        Stride = Math.Max(1, windowLength / 4),
                        MaxEpochs = epochCount,
                        LearningRate = lr,
                        Optimizer = kind,
                        TargetColumn = metadata.TargetColumn,
                        Seed = parse.GetValue(seed),
                        ValidationFraction = 0,
                        Patience = 0,
                    };
                    var result = LstmTrainer.Fit(parameters, [rows], options,
                        report => { if (!parse.GetValue(json)) stdout.WriteLine($"epoch {report.Epoch}: train loss {report.TrainLoss:G6}"); });
                    trained = result.BestParameters;
                    losses = result.Epochs.Select(e => e.TrainLoss).ToList();
                }
            }
            catch (ArgumentException e)
            {
                throw new CliException($"Cannot train on {dataPath}: {e.Message}");
            }
            if (!trained.AllFinite())
                throw new CliException("Training diverged (the weights became NaN or infinite); try a smaller --lr. Nothing was written.");

            string path = parse.GetValue(output)!;
            ModelFile.Save(path, trained, metadata);
            if (parse.GetValue(json))
            {
                ModelCommands.WriteJson(stdout, w =>
                {
                    w.WriteString("path", path);
                    w.WriteNumber("rows", table.RowCount);
                    w.WriteBoolean("deterministic", parse.GetValue(deterministic));
                    w.WriteStartArray("losses");
                    foreach (double l in losses) { if (double.IsFinite(l)) w.WriteNumberValue(l); else w.WriteNullValue(); }
                    w.WriteEndArray();
                });
            }
            else
            {
                if (parse.GetValue(deterministic))
                    for (int e = 0; e < losses.Count; e++) stdout.WriteLine($"epoch {e + 1}: loss {losses[e]:G6}");
                stdout.WriteLine($"Wrote {path}: {ModelCommands.Describe(config)}, trained {losses.Count} epochs on {table.RowCount} rows.");
            }
            return 0;
        }));
        return command;
    }
}
