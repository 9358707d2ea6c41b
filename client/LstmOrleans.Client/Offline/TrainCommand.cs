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
        var defaults = new TrainerOptions();
        var validation = new Option<double>("--validation")
        {
            Description = "Fraction of the rows (the end of the series) held out for validation and early stopping; 0 = none (ignored with --deterministic).",
            DefaultValueFactory = _ => defaults.ValidationFraction,
        };
        var patience = new Option<int>("--patience")
        {
            Description = "Stop after this many epochs without a better validation loss; 0 = never (ignored with --deterministic).",
            DefaultValueFactory = _ => defaults.Patience,
        };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };

        var command = new Command("train", "Train a model file's weights on a CSV by backpropagation through time and write the result.")
        {
            modelPath, data, window, epochs, optimizer, learningRate, output, deterministic, seed, validation, patience, json,
        };
        command.SetAction((parse, ct) => ModelCommands.RunAsync(parse, ct, (stdout, cancellationToken) =>
        {
            int windowLength = parse.GetValue(window), epochCount = parse.GetValue(epochs);
            float lr = parse.GetValue(learningRate);
            if (windowLength < 1) throw new CliException($"--window must be at least 1, got {windowLength}.");
            if (epochCount < 1) throw new CliException($"--epochs must be at least 1, got {epochCount}.");
            if (!(lr > 0f) || !float.IsFinite(lr)) throw new CliException($"--lr must be positive and finite, got {lr}.");
            double validationFraction = parse.GetValue(validation);
            if (!(validationFraction >= 0 && validationFraction < 1)) throw new CliException($"--validation must be in [0, 1), got {validationFraction}.");
            int patienceEpochs = parse.GetValue(patience);
            if (patienceEpochs < 0) throw new CliException($"--patience must not be negative, got {patienceEpochs}.");
            var kind = parse.GetValue(optimizer) == "sgd" ? OptimizerKind.Sgd : OptimizerKind.Adam;

            var (parameters, metadata) = ModelFile.Load(parse.GetValue(modelPath)!, cancellationToken: cancellationToken);
            string dataPath = parse.GetValue(data)!;
            var table = SensorCsv.Read(dataPath, cancellationToken);
            var config = parameters.Config;
            OfflineModel.CheckColumns(config, metadata, table, dataPath);
            float[] rows = OfflineModel.EncodeRows(config, metadata, table, out var targetScale);     // [N, D], model inputs (normalised if the model says so)
            SeriesScale[]? scales = null;
            int skipped = 0;
            if (targetScale is not null)
            {
                // Running z-scores: train as the cluster's rounds (default options) train on one stream that received these
                // rows from its first: targets scored in their origin row's normalisation, and rows whose statistics cover
                // fewer than MinStatisticsCount observations left out (PrepareSeries in TrainingGrain).
                if (parse.GetValue(deterministic))
                    throw new CliException("--deterministic cannot train this model as the cluster does (its streams normalise with running z-scores, and " +
                        "the cluster scores each target in its origin row's normalisation, which --deterministic does not): drop --deterministic.");
                skipped = Math.Clamp(new LstmOrleans.Grains.Training.TrainingGrainOptions().MinStatisticsCount - 1, 0, table.RowCount);
                rows = rows[(skipped * config.InputSize)..];
                scales = [new SeriesScale(targetScale.Mean[skipped..], targetScale.Std[skipped..])];
            }
            if (table.RowCount - skipped < windowLength)
                throw new CliException($"{dataPath} has {table.RowCount} rows{(skipped > 0 ? $", {table.RowCount - skipped} after the first {skipped} (the cluster's training leaves out rows whose running statistics cover few observations)" : "")}, fewer than one window of {windowLength}.");

            IReadOnlyList<double> losses;
            LstmParameters trained;
            TrainingResult? fit = null;
            bool asJson = parse.GetValue(json);
            try
            {
                if (parse.GetValue(deterministic))
                {
                    trained = parameters.Clone();
                    losses = LstmTrainer.TrainDeterministic(trained, rows, metadata.TargetColumn, windowLength, epochCount, lr, kind, cancellationToken)
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
                        ValidationFraction = validationFraction,
                        Patience = patienceEpochs,
                    };
                    fit = TrainingProgress.Run(stdout, asJson, epochCount, validationFraction > 0, onEpoch => LstmTrainer.Fit(parameters, [rows], options, onEpoch, cancellationToken, scales));
                    trained = fit.BestParameters;
                    losses = fit.Epochs.Select(e => e.TrainLoss).ToList();
                }
            }
            catch (ArgumentException e)
            {
                var hint = e.Message.Contains("validation window", StringComparison.OrdinalIgnoreCase) ? " Use a shorter --window or --validation 0." : "";
                throw new CliException($"Cannot train on {dataPath}: {e.Message}{hint}");
            }
            if (!trained.AllFinite())
                throw new CliException("Training diverged (the weights became NaN or infinite); try a smaller --lr. Nothing was written.");

            string path = parse.GetValue(output)!;
            // Through a temporary file: a cancellation while it is written leaves --out (which may be --model) as it was.
            ModelFile.Save(path, trained, metadata, cancellationToken);
            if (asJson)
            {
                ModelCommands.WriteJson(stdout, w =>
                {
                    w.WriteString("path", path);
                    w.WriteNumber("rows", table.RowCount);
                    w.WriteBoolean("deterministic", parse.GetValue(deterministic));
                    w.WriteStartArray("losses");
                    foreach (double l in losses) WriteLoss(w, l);
                    w.WriteEndArray();
                    if (fit is null) return;
                    // The written weights are those of the best epoch (lowest validation loss; train loss without a split).
                    w.WriteNumber("epochs", fit.Epochs.Count);
                    w.WriteNumber("bestEpoch", fit.BestEpoch);
                    w.WriteBoolean("stoppedEarly", fit.StoppedEarly);
                    if (validationFraction > 0)
                    {
                        w.WriteStartArray("validationLosses");
                        foreach (var e in fit.Epochs) WriteLoss(w, e.ValidationLoss);
                        w.WriteEndArray();
                        w.WritePropertyName("bestValidationLoss");
                        WriteLoss(w, fit.BestValidationLoss);
                        w.WritePropertyName("persistenceValidationLoss");
                        WriteLoss(w, fit.PersistenceValidationLoss);
                    }
                });
            }
            else
            {
                if (parse.GetValue(deterministic))
                    for (int e = 0; e < losses.Count; e++) stdout.WriteLine($"epoch {e + 1}: loss {losses[e]:G6}");
                if (fit is not null)
                    stdout.WriteLine(validationFraction > 0
                        ? $"Best epoch {fit.BestEpoch}: validation loss {fit.BestValidationLoss:G6} (persistence {fit.PersistenceValidationLoss:G6}){(fit.StoppedEarly ? ", stopped early" : "")}."
                        : $"Best epoch {fit.BestEpoch} by train loss (no validation split).");
                stdout.WriteLine($"Wrote {path}: {ModelCommands.Describe(config)}, trained {losses.Count} epochs on {table.RowCount} rows.");
            }
            return 0;
        }));
        return command;
    }

    private static void WriteLoss(System.Text.Json.Utf8JsonWriter w, double loss)
    {
        if (double.IsFinite(loss)) w.WriteNumberValue(loss); else w.WriteNullValue();
    }
}
