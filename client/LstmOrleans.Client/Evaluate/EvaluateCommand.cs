using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LstmOrleans.Abstractions;
using LstmOrleans.Client.Offline;
using LstmOrleans.Silo.Hosting;
using Spectre.Console;

namespace LstmOrleans.Client.Evaluate;

/// <summary>
/// `evaluate`: forecast quality on recorded sensor data. Replays one file (or every CSV of a folder, one stream per
/// file sharing one model) through a real in-process cluster, refitting on a schedule, and scores the model's online
/// forecasts against persistence, seasonal naive and a moving average on exactly the same steps.
/// </summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "A sensor CSV (timestamp,value...) or a folder of them (one stream per file, one shared model).", Required = true };
        var column = new Option<string?>("--column") { Description = "Value column to predict (default: the first value column)." };
        var downsample = new Option<int>("--downsample") { Description = "Average every N consecutive rows into one step before replaying.", DefaultValueFactory = _ => 1 };
        var fromStep = new Option<int>("--from-step") { Description = "First step replayed (after --downsample); earlier rows are skipped.", DefaultValueFactory = _ => 0 };
        var untilStep = new Option<int?>("--until-step") { Description = "Replay stops before this step (after --downsample); default: the end of each file." };
        var warmup = new Option<int>("--warmup") { Description = "Steps replayed before the first refit; forecasts issued before it are not scored.", DefaultValueFactory = _ => 512 };
        var horizon = new Option<int>("--horizon") { Description = "K: the model forecasts 1..K steps ahead; each horizon is scored.", DefaultValueFactory = _ => 3 };
        var hidden = new Option<int>("--hidden") { Description = "Hidden size H.", DefaultValueFactory = _ => 32 };
        var layers = new Option<int>("--layers") { Description = "Stacked LSTM layers L.", DefaultValueFactory = _ => 1 };
        var window = new Option<int>("--window") { Description = "Training window length T (BPTT steps).", DefaultValueFactory = _ => 64 };
        var lr = new Option<float>("--lr") { Description = "Adam learning rate of each refit.", DefaultValueFactory = _ => 3e-3f };
        var epochs = new Option<int>("--epochs") { Description = "Maximum epochs per refit (early stopping on the held-out 20 %).", DefaultValueFactory = _ => 20 };
        var refitEvery = new Option<int?>("--refit-every") { Description = "Refit after every N steps (observations per stream). Default 512 unless --refit-period is given." };
        var refitPeriod = new Option<string?>("--refit-period") { Description = "Refit whenever this much series time passed, e.g. 7d, 12h, 30m." };
        var history = new Option<int>("--history") { Description = "Observations each stream keeps (ring buffer) = most rows per stream a refit trains on.", DefaultValueFactory = _ => 512 };
        var timeBudget = new Option<double>("--time-budget") { Description = "Seconds each refit may train.", DefaultValueFactory = _ => 60 };
        var season = new Option<int?>("--season") { Description = "Season (in steps) of the seasonal-naive baseline; default: detected by autocorrelation per stream." };
        var maWindow = new Option<int>("--ma-window") { Description = "Window of the moving-average baseline.", DefaultValueFactory = _ => 12 };
        var seed = new Option<int>("--seed") { Description = "Seed of the initial weights.", DefaultValueFactory = _ => 0 };
        var calendar = new Option<bool>("--calendar")
        {
            Description = "Give the model calendar features of each row's timestamp (time of day and day of week as sine/cosine pairs) besides the value.",
        };
        var residual = new Option<bool>("--residual")
        {
            Description = "Residual head: the model predicts the change from the last value (in normalised units) instead of the level. " +
                "On by default (the better head on every NAB set, QUALITY.md); --residual false for a level head.",
            DefaultValueFactory = _ => true,
        };
        var stride = new Option<int>("--stride") { Description = "Rows between the starts of consecutive training windows of a refit.", DefaultValueFactory = _ => 4 };
        var batchSize = new Option<int>("--batch-size") { Description = "Training windows per optimizer step.", DefaultValueFactory = _ => 32 };
        var patience = new Option<int>("--patience") { Description = "A refit stops after this many epochs without a better validation loss (0 = never early).", DefaultValueFactory = _ => 5 };
        var pooledLoss = new Option<bool>("--pooled-loss")
        {
            Description = "Refit on the plain pooled MSE of all streams instead of weighting each stream by 1 / its persistence MSE (the default).",
        };
        var storedTargets = new Option<bool>("--stored-targets")
        {
            Description = "Refit on the targets as the streams stored them (normalised with the target step's own running statistics) " +
                "instead of in the forecast origin's statistics (the default).",
        };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON." };
        var diagnose = new Option<bool>("--diagnose")
        {
            Description = "Also score every published version offline on the scored steps (live state vs training-style zero-state windows, " +
                "burn-in, target normalisation, the refit's own validation part) and print the table to stderr.",
        };

        var command = new Command("evaluate", "Replay recorded series through an in-process cluster and score the online forecasts against baselines.")
        {
            data, column, downsample, fromStep, untilStep, warmup, horizon, hidden, layers, window, lr, epochs, refitEvery, refitPeriod,
            history, timeBudget, season, maWindow, seed, calendar, residual, stride, batchSize, patience, pooledLoss, storedTargets, json, diagnose,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            try
            {
                TimeSpan? period = parse.GetValue(refitPeriod) is { } text ? ParseDuration(text) : null;
                int? every = parse.GetValue(refitEvery) ?? (period is null ? 512 : null);
                var settings = new EvaluationSettings(
                    parse.GetValue(hidden), parse.GetValue(layers), parse.GetValue(horizon), parse.GetValue(window), parse.GetValue(lr),
                    parse.GetValue(epochs), parse.GetValue(warmup), every, period, parse.GetValue(history),
                    TimeSpan.FromSeconds(parse.GetValue(timeBudget)), parse.GetValue(seed), Stride: parse.GetValue(stride),
                    BatchSize: parse.GetValue(batchSize), Patience: parse.GetValue(patience), Calendar: parse.GetValue(calendar),
                    Residual: parse.GetValue(residual), PooledLoss: parse.GetValue(pooledLoss), StoredTargets: parse.GetValue(storedTargets));
                if (settings.Check() is { } problem) throw new CliException(problem);
                int ma = parse.GetValue(maWindow);
                if (ma < 1) throw new CliException($"--ma-window must be at least 1, got {ma}.");
                int? m = parse.GetValue(season);
                if (m is < 1) throw new CliException($"--season must be at least 1, got {m}.");

                var slice = new SliceOptions(parse.GetValue(column), parse.GetValue(downsample), parse.GetValue(fromStep), parse.GetValue(untilStep));
                var series = EvaluationData.Load(parse.GetValue(data)!, slice);
                foreach (var s in series.Where(s => s.DroppedRows > 0))
                    stderr.WriteLine($"note: {s.Name}: dropped {s.DroppedRows} row(s) whose timestamp went backwards (a stream grain rejects them).");
                foreach (var s in series)
                    if (s.Length < settings.Warmup + settings.Horizons + 1)
                        throw new CliException($"Stream '{s.Name}' has {s.Length} steps; --warmup {settings.Warmup} and --horizon {settings.Horizons} need at least {settings.Warmup + settings.Horizons + 1}.");

                var report = await RunAsync(series, settings, m, ma, stderr, cancellationToken, parse.GetValue(diagnose));
                if (parse.GetValue(json)) WriteJson(stdout, report, slice, parse.GetValue(data)!);
                else WriteTables(stdout, report);
                return 0;
            }
            catch (Exception e) when (e is CliException or CsvFormatException or IOException or UnauthorizedAccessException or FormatException or SiloConfigurationException)
            {
                stderr.WriteLine($"error: {e.Message}");
                return 2;
            }
            catch (Exception e) when (e is ModelOperationException or ModelNotFoundException or ObservationRejectedException or TimeoutException)
            {
                stderr.WriteLine($"error: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    /// <summary>Everything the command prints.</summary>
    internal sealed record EvaluationReport(EvaluationSettings Settings, ReplayResult Replay, IReadOnlyList<StreamScores> Streams, OverallScores Overall, int MaWindow);

    internal static async Task<EvaluationReport> RunAsync(IReadOnlyList<EvaluationSeries> series, EvaluationSettings settings,
        int? season, int maWindow, TextWriter progress, CancellationToken cancellationToken, bool diagnose = false)
    {
        await using var cluster = await EvaluationCluster.StartAsync(settings.History, cancellationToken, balanceStreams: !settings.PooledLoss,
            originScaledTargets: !settings.StoredTargets);
        var replay = new EvaluationReplay(cluster, settings)
        {
            OnRound = r => progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"refit after step {r.AfterStep}: {r.Record.Decision} in {r.Record.Duration.TotalSeconds:F1} s, {r.Record.EpochsRun} epochs, " +
                $"validation MSE challenger {r.Record.ChallengerValidationLoss:G4} / champion {r.Record.ChampionValidationLoss:G4} / persistence {r.Record.PersistenceValidationLoss:G4}")),
        };
        var result = await replay.RunAsync(series, cancellationToken);
        if (diagnose) WriteDiagnostics(progress, await EvaluationDiagnostics.RunAsync(cluster.Grains, result, settings, cancellationToken));
        var scores = result.Streams.Select(s => EvaluationScorer.Score(s, settings.Horizons, settings.Warmup, season, maWindow)).ToList();
        return new EvaluationReport(settings, result, scores, EvaluationScorer.Overall(scores, settings.Horizons), maWindow);
    }

    private static void WriteDiagnostics(TextWriter writer, IReadOnlyList<DiagnosticRow> rows)
    {
        writer.WriteLine("diagnose: RMSE / persistence RMSE in normalised units of each origin (stored = targets as the streams stored them, each in its own step's statistics; " +
            "validation = the publishing round's held-out part, this stream and horizon alone, targets in origin units)");
        writer.WriteLine("stream | h | n | persistence MSE | live | replayed | windowed | burn-in | windowed vs stored targets | validation n | validation");
        foreach (var r in rows)
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Stream} | {r.Horizon} | {r.Count} | {F(r.Persistence)} | {Ratio(r.Live, r.Persistence)} | {Ratio(r.Replayed, r.Persistence)} | {Ratio(r.Windowed, r.Persistence)} | " +
                $"{Ratio(r.BurnIn, r.Persistence)} | {Ratio(r.StoredTarget, r.Persistence)} | {r.ValidationCount} | {Ratio(r.Validation, r.ValidationPersistence)}"));
        static string Ratio(double mse, double persistence) => F(Math.Sqrt(mse / persistence));
    }

    /// <summary>"7d", "12h", "30m", "45s", or a TimeSpan ("1.00:00:00").</summary>
    internal static TimeSpan ParseDuration(string text)
    {
        text = text.Trim();
        if (text.Length >= 2 && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out double amount) && amount > 0)
        {
            switch (char.ToLowerInvariant(text[^1]))
            {
                case 'd': return TimeSpan.FromDays(amount);
                case 'h': return TimeSpan.FromHours(amount);
                case 'm': return TimeSpan.FromMinutes(amount);
                case 's': return TimeSpan.FromSeconds(amount);
            }
        }
        if (TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero) return span;
        throw new CliException($"--refit-period: '{text}' is not a positive duration like 7d, 12h, 30m, 45s or 1.00:00:00.");
    }

    // ------------------------------------------------------------------ output

    private static void WriteTables(TextWriter writer, EvaluationReport report)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 160;
        var s = report.Settings;
        int k = s.Horizons;
        writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Model: hidden {s.Hidden}, {s.Layers} layer(s), {k} horizon(s){(s.Calendar ? ", calendar features" : "")}{(s.Residual ? ", residual head" : "")}{(s.PooledLoss ? ", pooled loss" : "")}{(s.StoredTargets ? ", stored targets" : "")}; refit {RefitText(s)}; window {s.Window}, lr {s.LearningRate:G3}, " +
            $"epochs {s.Epochs}, history {s.History}; warm-up {s.Warmup} steps; {report.Replay.Rounds.Count} refits " +
            $"({report.Replay.Rounds.Count(r => r.Record.Decision == TrainingDecision.Accepted)} published) in {report.Replay.Elapsed.TotalSeconds:F1} s."));

        foreach (var stream in report.Streams)
        {
            writer.WriteLine();
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{stream.Name}: {stream.Steps} steps, scored from step {stream.FirstOrigin}, season {stream.Season}{(stream.SeasonDetected ? " (detected)" : "")}, MA window {stream.MaWindow}"));
            var table = new Table();
            table.AddColumns("horizon", "forecaster", "n", "MAE", "RMSE", "NRMSE", "WAPE", "RMSE / persistence");
            for (int h = 1; h <= k; h++)
                foreach (var f in EvaluationScorer.All)
                {
                    var m = stream.Of(f, h);
                    table.AddRow(h.ToString(CultureInfo.InvariantCulture), EvaluationScorer.Label(f), m.Count.ToString(CultureInfo.InvariantCulture),
                        F(m.Mae), F(m.Rmse), F(m.Nrmse), F(m.Wape), F(stream.RmseRatio(f, h)));
                }
            console.Write(table);
        }

        if (report.Streams.Count > 1)
        {
            writer.WriteLine();
            writer.WriteLine("Per stream: RMSE as a ratio of persistence's (below 1 = better than persistence)");
            var per = new Table();
            per.AddColumn("stream");
            for (int h = 1; h <= k; h++)
                foreach (var f in EvaluationScorer.All.Where(f => f != Forecaster.Persistence))
                    per.AddColumn($"h{h} {EvaluationScorer.Label(f)}");
            foreach (var stream in report.Streams)
            {
                var cells = new List<string> { Markup.Escape(stream.Name) };
                for (int h = 1; h <= k; h++)
                    foreach (var f in EvaluationScorer.All.Where(f => f != Forecaster.Persistence))
                        cells.Add(F(stream.RmseRatio(f, h)));
                per.AddRow(cells.ToArray());
            }
            console.Write(per);

            writer.WriteLine();
            writer.WriteLine($"Overall over {report.Overall.Streams} streams: geometric mean of error / persistence error; streams where the LSTM has the lower RMSE");
            var overall = new Table();
            overall.AddColumns("horizon", "forecaster", "RMSE ratio", "MAE ratio", "LSTM wins");
            for (int h = 1; h <= k; h++)
                foreach (var f in EvaluationScorer.All)
                    overall.AddRow(h.ToString(CultureInfo.InvariantCulture), EvaluationScorer.Label(f),
                        F(report.Overall.GeoMeanRmseRatio[(int)f][h - 1]), F(report.Overall.GeoMeanMaeRatio[(int)f][h - 1]),
                        f == Forecaster.Model ? "-" : $"{report.Overall.ModelWins[(int)f][h - 1]}/{report.Overall.Streams}");
            console.Write(overall);
        }
    }

    private static string RefitText(EvaluationSettings s) =>
        string.Join(" and ", new[]
        {
            s.RefitEvery is { } n ? $"every {n} steps" : null,
            s.RefitPeriod is { } p ? $"every {p} of series time" : null,
        }.Where(x => x is not null)) + " after the warm-up";

    private static string F(double v) => double.IsFinite(v) ? v.ToString("G4", CultureInfo.InvariantCulture) : "n/a";

    private static void WriteJson(TextWriter writer, EvaluationReport report, SliceOptions slice, string dataPath) =>
        ModelCommands.WriteJson(writer, w =>
        {
            var s = report.Settings;
            w.WriteString("data", dataPath);
            w.WriteStartObject("settings");
            w.WriteNumber("hidden", s.Hidden);
            w.WriteNumber("layers", s.Layers);
            w.WriteNumber("horizons", s.Horizons);
            w.WriteNumber("window", s.Window);
            w.WriteNumber("learningRate", s.LearningRate);
            w.WriteNumber("epochs", s.Epochs);
            w.WriteNumber("warmup", s.Warmup);
            if (s.RefitEvery is { } every) w.WriteNumber("refitEvery", every); else w.WriteNull("refitEvery");
            if (s.RefitPeriod is { } period) w.WriteString("refitPeriod", period.ToString("c", CultureInfo.InvariantCulture)); else w.WriteNull("refitPeriod");
            w.WriteNumber("history", s.History);
            w.WriteNumber("timeBudgetSeconds", s.TimeBudget.TotalSeconds);
            w.WriteNumber("seed", s.Seed);
            w.WriteBoolean("calendar", s.Calendar);
            w.WriteBoolean("residual", s.Residual);
            w.WriteBoolean("pooledLoss", s.PooledLoss);
            w.WriteBoolean("storedTargets", s.StoredTargets);
            w.WriteNumber("stride", s.Stride);
            w.WriteNumber("batchSize", s.BatchSize);
            w.WriteNumber("patience", s.Patience);
            w.WriteNumber("maWindow", report.MaWindow);
            w.WriteNumber("downsample", slice.Downsample);
            w.WriteNumber("fromStep", slice.FromStep);
            if (slice.UntilStep is { } until) w.WriteNumber("untilStep", until); else w.WriteNull("untilStep");
            w.WriteEndObject();
            w.WriteNumber("elapsedSeconds", report.Replay.Elapsed.TotalSeconds);

            w.WriteStartArray("refits");
            foreach (var r in report.Replay.Rounds)
            {
                w.WriteStartObject();
                w.WriteNumber("afterStep", r.AfterStep);
                w.WriteString("decision", r.Record.Decision.ToString());
                if (r.Record.PublishedVersion is { } v) w.WriteNumber("publishedVersion", v); else w.WriteNull("publishedVersion");
                w.WriteNumber("seconds", r.Record.Duration.TotalSeconds);
                w.WriteNumber("epochs", r.Record.EpochsRun);
                Number(w, "challengerValidationMse", r.Record.ChallengerValidationLoss);
                Number(w, "championValidationMse", r.Record.ChampionValidationLoss);
                Number(w, "persistenceValidationMse", r.Record.PersistenceValidationLoss);
                w.WriteEndObject();
            }
            w.WriteEndArray();

            w.WriteStartArray("streams");
            foreach (var stream in report.Streams)
            {
                w.WriteStartObject();
                w.WriteString("name", stream.Name);
                w.WriteNumber("steps", stream.Steps);
                w.WriteNumber("firstScoredOrigin", stream.FirstOrigin);
                w.WriteNumber("season", stream.Season);
                w.WriteBoolean("seasonDetected", stream.SeasonDetected);
                w.WriteStartArray("horizons");
                for (int h = 1; h <= s.Horizons; h++)
                {
                    w.WriteStartObject();
                    w.WriteNumber("horizon", h);
                    foreach (var f in EvaluationScorer.All)
                    {
                        var m = stream.Of(f, h);
                        w.WriteStartObject(EvaluationScorer.JsonName(f));
                        w.WriteNumber("count", m.Count);
                        Number(w, "mae", m.Mae);
                        Number(w, "rmse", m.Rmse);
                        Number(w, "nrmse", m.Nrmse);
                        Number(w, "wape", m.Wape);
                        Number(w, "rmseRatioToPersistence", stream.RmseRatio(f, h));
                        w.WriteEndObject();
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();

            w.WriteStartObject("overall");
            w.WriteNumber("streams", report.Overall.Streams);
            w.WriteStartArray("horizons");
            for (int h = 1; h <= s.Horizons; h++)
            {
                w.WriteStartObject();
                w.WriteNumber("horizon", h);
                foreach (var f in EvaluationScorer.All)
                {
                    w.WriteStartObject(EvaluationScorer.JsonName(f));
                    Number(w, "geoMeanRmseRatioToPersistence", report.Overall.GeoMeanRmseRatio[(int)f][h - 1]);
                    Number(w, "geoMeanMaeRatioToPersistence", report.Overall.GeoMeanMaeRatio[(int)f][h - 1]);
                    if (f != Forecaster.Model) w.WriteNumber("modelWins", report.Overall.ModelWins[(int)f][h - 1]);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });

    private static void Number(Utf8JsonWriter w, string name, double value)
    {
        if (double.IsFinite(value)) w.WriteNumber(name, value);
        else w.WriteNull(name);
    }
}
