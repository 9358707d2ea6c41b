using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LstmOrleans.Abstractions;
using LstmOrleans.Client.Cluster;
using LstmOrleans.Client.Plotting;
using LstmOrleans.Client.Replay;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Training;
using Spectre.Console;

namespace LstmOrleans.Client.Commands;

/// <summary>
/// demo: the whole product in a minute. Starts a silo in this process (or uses --cluster), creates a model, replays
/// bundled real sensor series as streams, fits the shared weights on the early part of every series, rolls the new
/// version out to the running streams, and scores the rest of each series against persistence.
/// </summary>
internal static class DemoCommand
{
    public const string ModelName = "demo";

    public static Command Create()
    {
        var cluster = new ClusterOptions("A running cluster to use instead of a silo in this process (the default): gateways " +
            "host:port[,host:port...] or redis://host:port for Redis membership. The other cluster options apply to it only.");
        var data = new Option<string?>("--data") { Description = "Folder for the in-process silo's SQLite store (default: a temporary folder, removed afterwards)." };
        var storage = new Option<string>("--storage") { Description = "Store of the in-process silo: sqlite or memory.", DefaultValueFactory = _ => "sqlite" };
        var series = new Option<string?>("--series") { Description = "CSV file or folder to replay instead of the bundled NAB series." };
        var rows = new Option<int>("--rows") { Description = "Rows per series (0 = all).", DefaultValueFactory = _ => 0 };
        var streams = new Option<int>("--streams") { Description = "Use at most this many series files (0 = all).", DefaultValueFactory = _ => 0 };
        var copies = new Option<int>("--copies") { Description = "Streams per series, each starting at a different offset.", DefaultValueFactory = _ => 1 };
        var hidden = new Option<int>("--hidden") { Description = "Hidden size of the demo model.", DefaultValueFactory = _ => 16 };
        var trainFraction = new Option<double>("--train-fraction") { Description = "Early part of each series used to fit the weights.", DefaultValueFactory = _ => 0.5 };
        var trainSeconds = new Option<double>("--train-seconds") { Description = "Time budget of the fit.", DefaultValueFactory = _ => 20 };
        var offlineFit = new Option<bool>("--offline-fit") { Description = "Fit in this process with the engine's trainer instead of a training round of the model's training grain." };
        var batch = new Option<int>("--batch") { Description = "Observations per grain call while replaying.", DefaultValueFactory = _ => 64 };
        var output = new Option<string>("--out", "-o") { Description = "Folder for demo.png and predictions.csv.", DefaultValueFactory = _ => "demo-output" };
        storage.AcceptOnlyFromAmong("sqlite", "memory");
        rows.Validators.Add(r => { if (r.ParsedOrNull<int>() is < 0 or (> 0 and < 200)) r.AddError("--rows must be 0 (all) or at least 200."); });
        streams.Validators.Add(r => { if (r.ParsedOrNull<int>() < 0) r.AddError("--streams must not be negative."); });
        copies.Validators.Add(r => { if (r.ParsedOrNull<int>() is < 1 or > 1000) r.AddError("--copies must be in 1..1000."); });
        hidden.Validators.Add(r => { if (r.ParsedOrNull<int>() is < 1 or > 256) r.AddError("--hidden must be in 1..256."); });
        trainFraction.Validators.Add(r => { if (r.ParsedOrNull<double>() is < 0.2 or > 0.9) r.AddError("--train-fraction must be in 0.2..0.9."); });
        trainSeconds.Validators.Add(r => { if (r.ParsedOrNull<double>() is < 1 or > 3600) r.AddError("--train-seconds must be in 1..3600."); });
        batch.Validators.Add(r => { if (r.ParsedOrNull<int>() is < 1 or > 1024) r.AddError("--batch must be in 1..1024."); });

        var command = new Command("demo", "Run the whole pipeline on bundled real sensor data (starts a local silo unless --cluster is given).")
        {
            data, storage, series, rows, streams, copies, hidden, trainFraction, trainSeconds, offlineFit, batch, output,
        };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.RunAsync(async () =>
        {
            var clock = Stopwatch.StartNew();
            var source = result.GetValue(series) ?? Path.Combine(AppContext.BaseDirectory, "data", "nab");
            var maxRows = result.GetValue(rows) is > 0 and var r ? r : int.MaxValue;
            var files = SeriesFile.LoadAll(source, maxRows);
            if (result.GetValue(streams) is > 0 and var s) files = files.Take(s).ToList();
            if (files.Any(f => f.Features.Length != 1))
                throw new ArgumentException("The demo model is univariate: every series needs exactly one value column.");
            var replay = ReplayCommand.Build(files, "demo/", result.GetValue(copies));

            string? tempData = null;
            ClusterConnection connection;
            if (result.GetValue(cluster.Cluster) is null)
            {
                var folder = result.GetValue(data) ?? (tempData = Path.Combine(Path.GetTempPath(), "lstmorleans-demo-" + Guid.NewGuid().ToString("N")[..8]));
                AnsiConsole.MarkupLine("[grey]Starting a silo in this process...[/]");
                // The streams keep the whole training part of their series (at least the default 512), so the training
                // round fits on all of it, not only on its last 512 values.
                var history = Math.Max(512, TrainingRows(replay, result.GetValue(trainFraction)));
                connection = await ClusterConnection.StartLocalSiloAsync(folder, result.GetValue(storage)!, ct, history);
            }
            else
            {
                connection = await ClusterConnection.ConnectAsync(cluster.Target(result), ct);
            }
            try
            {
                await using (connection)
                    return await RunAsync(connection, replay, result.GetValue(hidden), result.GetValue(trainFraction),
                        TimeSpan.FromSeconds(result.GetValue(trainSeconds)), result.GetValue(offlineFit), result.GetValue(batch), result.GetValue(output)!, clock, ct);
            }
            finally
            {
                if (tempData is not null)
                    try { Directory.Delete(tempData, recursive: true); } catch (IOException) { /* best effort */ }
            }
        }));
        return command;
    }

    private static async Task<int> RunAsync(ClusterConnection connection, List<ReplayStream> streams, int hidden, double trainFraction,
        TimeSpan trainBudget, bool offlineFit, int batch, string outputFolder, Stopwatch clock, CancellationToken ct)
    {
        var grains = connection.Grains;
        AnsiConsole.MarkupLine($"Cluster: [bold]{Markup.Escape(connection.Description)}[/]");
        AnsiConsole.MarkupLine($"Streams: {streams.Count} ({string.Join(", ", streams.Select(s => $"{s.StreamId} {s.Count} rows"))})");

        // 1. A univariate model with running z-score normalisation: one set of weights for every stream.
        var model = grains.GetGrain<IModelGrain>(ModelName);
        ModelInfo info;
        try
        {
            info = await model.CreateAsync(new ModelConfig(1, hidden, 1, 1, ["value"], 0, NormalizationMode.RunningZScore, Seed: 7));
        }
        catch (ModelOperationException e)
        {
            // A kept --data folder or a running cluster already holds the demo's model from an earlier run.
            var existing = await model.GetInfoAsync();
            if (existing.Config.HiddenSize == hidden) throw;
            throw new ModelOperationException(ModelName, $"{e.Message} It has H={existing.Config.HiddenSize}, from an earlier demo run on the same " +
                $"--data folder or cluster: run with --hidden {existing.Config.HiddenSize}, or with a fresh --data folder.");
        }
        AnsiConsole.MarkupLine($"Model [bold]{ModelName}[/]: D=1 H={hidden} L=1 K=1, {info.ParameterCount} parameters, active v{info.ActiveVersion}");
        await ReplayCommand.PrepareAsync(grains, streams, ModelName, reset: true);

        // 2. Live phase 1: the early part of every series through the stream grains with the current weights.
        var cut = TrainingRows(streams, trainFraction);
        await ReplayProgress.RunAsync(grains, streams, 0, cut, batch, 0, evaluate: false, keepRows: false, "phase 1 (current weights)", ct);

        // 3. Refit the shared weights on what the streams have seen, then roll the new version out to every silo.
        var version = offlineFit
            ? await FitOfflineAsync(model, streams, hidden, cut, trainBudget, ct)
            : await TrainRoundAsync(grains, trainBudget, maxRowsPerStream: Math.Max(512, cut), ct);
        version = await WaitForRolloutAsync(grains, version, ct);

        // 4. Live phase 2: the rest of every series, scored against persistence (the last value carried forward).
        await ReplayProgress.RunAsync(grains, streams, cut, int.MaxValue, batch, 0, evaluate: true, keepRows: true, $"phase 2 (weights v{version})", ct);
        ReplayProgress.PrintSummary(streams, $"One-step forecasts on the held-out {100 - (int)(trainFraction * 100)} % of each series (model v{version} vs persistence)");

        Directory.CreateDirectory(outputFolder);
        var csv = Path.Combine(outputFolder, "predictions.csv");
        var png = Path.Combine(outputFolder, "demo.png");
        await Replayer.WritePredictionsCsvAsync(csv, streams);
        ForecastPlot.Write(png, PlotCommand.Panels(streams.SelectMany(s => s.Rows), 400, 4));
        var versionsSeen = streams.Select(s => s.LastWeightsVersion).Distinct().ToArray();
        AnsiConsole.MarkupLine($"Streams answered with weights version(s): {string.Join(", ", versionsSeen.Select(v => "v" + v))}");
        AnsiConsole.MarkupLine($"Wrote [bold]{Markup.Escape(Path.GetFullPath(png))}[/] and {Markup.Escape(Path.GetFullPath(csv))}");
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"Demo finished in {clock.Elapsed.TotalSeconds:F1} s."));
        return 0;
    }

    /// <summary>Rows of every series replayed before the refit (the shortest series decides).</summary>
    private static int TrainingRows(List<ReplayStream> streams, double trainFraction) => streams.Select(s => (int)(s.Count * trainFraction)).Min();

    /// <summary>One round of the model's training grain: challenger vs champion on the streams' recent data.</summary>
    private static async Task<long> TrainRoundAsync(IGrainFactory grains, TimeSpan budget, int maxRowsPerStream, CancellationToken ct)
    {
        var training = grains.GetGrain<ITrainingGrain>(ModelName);
        await training.ConfigureAsync(new TrainingSettings(TimeSpan.Zero, 0, 256, 60, budget, 5e-3f, 48,
            Stride: 4, BatchSize: 32, ValidationFraction: 0.2, ClipNorm: 1f, Patience: 6, MaxRowsPerStream: maxRowsPerStream));
        var roundId = await training.StartRoundAsync();
        TrainingRoundRecord? round = null;
        var deadline = Stopwatch.StartNew();
        await AnsiConsole.Status().StartAsync($"Training round {roundId} on the model's training grain...", async _ =>
        {
            while ((round = await training.GetRoundAsync(roundId)) is null)
            {
                if (deadline.Elapsed > budget + TimeSpan.FromSeconds(120))
                    throw new TimeoutException($"Training round {roundId} did not finish within {budget + TimeSpan.FromSeconds(120)}.");
                await Task.Delay(250, ct);
            }
        });
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"Training round {round!.RoundId}: [bold]{round.Decision}[/] ({Markup.Escape(round.Reason)}); {round.StreamsUsed} streams, {round.Rows} rows, " +
            $"{round.EpochsRun} epochs in {round.Duration.TotalSeconds:F1} s; validation MSE challenger {round.ChallengerValidationLoss:G4} vs champion v{round.ChampionVersion} {round.ChampionValidationLoss:G4} " +
            $"vs persistence {round.PersistenceValidationLoss:G4} (normalised units)"));
        return round.PublishedVersion ?? round.ChampionVersion;
    }

    /// <summary>Fits in this process with the engine's trainer on the whole early part of every series and publishes the result.</summary>
    private static async Task<long> FitOfflineAsync(IModelGrain model, List<ReplayStream> streams, int hidden, int cut, TimeSpan budget, CancellationToken ct)
    {
        var active = await model.GetActiveWeightsAsync();
        var initial = new LstmParameters(new LstmConfig(1, hidden, 1, 1));
        active.Parameters.CopyTo(initial.Data, 0);
        var training = streams.Select(s => RunningZScore(s, cut)).ToList();
        var options = new TrainerOptions
        {
            WindowLength = 48, Stride = 8, BatchSize = 32, MaxEpochs = 60, LearningRate = 5e-3f, ClipNorm = 1f,
            ValidationFraction = 0.2, Patience = 6, TimeBudget = budget, BurnIn = 8, Seed = 1,
            Threads = Math.Max(1, Environment.ProcessorCount),
        };
        var fitClock = Stopwatch.StartNew();
        TrainingResult fit = null!;
        await AnsiConsole.Status().StartAsync("Fitting shared weights (BPTT, Adam)...", async status =>
        {
            fit = await Task.Run(() => LstmTrainer.Fit(initial, training, options,
                e => status.Status($"Fitting shared weights: epoch {e.Epoch}, train MSE {e.TrainLoss:G4}, validation MSE {e.ValidationLoss:G4}"), ct), ct);
        });
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"Offline fit: {fit.Epochs.Count} epochs in {fitClock.Elapsed.TotalSeconds:F1} s, best epoch {fit.BestEpoch}, validation MSE {fit.BestValidationLoss:G4} (normalised units; persistence {fit.PersistenceValidationLoss:G4})"));
        return await model.PublishAsync(new PublishRequest(fit.BestParameters.Data, "demo: offline fit on the early part of each series",
            new Dictionary<string, string> { ["epochs"] = fit.Epochs.Count.ToString(CultureInfo.InvariantCulture), ["rows"] = cut.ToString(CultureInfo.InvariantCulture) }));
    }

    /// <summary>
    /// Waits until a stream of the model steps with <paramref name="version"/> (the silo caches get pushes, and
    /// catch up on their refresh otherwise), using a probe stream so the replayed streams are untouched.
    /// </summary>
    private static async Task<long> WaitForRolloutAsync(IGrainFactory grains, long version, CancellationToken ct)
    {
        var probe = grains.GetGrain<IStreamGrain>("demo/_rollout-probe");
        await probe.BindAsync(ModelName);
        await probe.ResetAsync();
        var clock = Stopwatch.StartNew();
        try
        {
            for (long sequence = 1; ; sequence++)
            {
                var step = await probe.IngestAsync(new Observation(sequence, DateTimeOffset.UtcNow, [0f]));
                if (step.WeightsVersion == version)
                {
                    AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"Active version [bold]v{version}[/] serves the streams ({clock.Elapsed.TotalSeconds:F1} s after the decision); the streams keep their state."));
                    return version;
                }
                if (clock.Elapsed > TimeSpan.FromSeconds(30))
                {
                    AnsiConsole.MarkupLine($"[yellow]Streams still step with v{step.WeightsVersion}, not v{version}, after 30 s; continuing.[/]");
                    return step.WeightsVersion;
                }
                await Task.Delay(200, ct);
            }
        }
        finally
        {
            // Its zeros are no sensor's data: out of the model's listing and of later training rounds.
            await probe.DeleteAsync();
        }
    }

    /// <summary>
    /// The series as the stream grain feeds it to the LSTM: each value z-scored with the running mean and population
    /// standard deviation of the values up to and including it (std 1 while the variance is ~0).
    /// </summary>
    private static float[] RunningZScore(ReplayStream stream, int count)
    {
        var z = new float[count];
        double mean = 0, m2 = 0;
        for (var i = 0; i < count; i++)
        {
            double v = stream.TargetAt(i);
            var delta = v - mean;
            mean += delta / (i + 1);
            m2 += delta * (v - mean);
            var variance = m2 / (i + 1);
            z[i] = (float)((v - mean) / (variance < 1e-12 ? 1 : Math.Sqrt(variance)));
        }
        return z;
    }
}
