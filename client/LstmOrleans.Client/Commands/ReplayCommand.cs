using System.CommandLine;
using LstmOrleans.Abstractions;
using LstmOrleans.Client.Plotting;
using LstmOrleans.Client.Replay;

namespace LstmOrleans.Client.Commands;

/// <summary>replay FILE.csv|FOLDER: sends real series to the cluster as streams and scores the forecasts.</summary>
internal static class ReplayCommand
{
    public static Command Create()
    {
        var cluster = new ClusterOptions();
        var source = new Argument<string>("SOURCE") { Description = "A CSV file (timestamp,value[,...]) or a folder of them: one stream per file." };
        var prefix = new Option<string>("--prefix") { Description = "Stream id prefix.", DefaultValueFactory = _ => "replay/" };
        var copies = new Option<int>("--copies") { Description = "Streams per file, each starting at a different offset of the series.", DefaultValueFactory = _ => 1 };
        var rate = new Option<double>("--rate") { Description = "Observations per second over all streams (0 = as fast as possible).", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch") { Description = "Observations per grain call (1 = one call per observation).", DefaultValueFactory = _ => 1 };
        var rows = new Option<int>("--rows") { Description = "Use at most this many rows of each file (0 = all).", DefaultValueFactory = _ => 0 };
        var model = new Option<string?>("--model") { Description = "Bind the streams to this model first (default: the streams' current or default model)." };
        model.AddModelNameCheck();
        var reset = new Option<bool>("--reset") { Description = "Reset the streams first so the replay starts from a clean state." };
        var output = new Option<string?>("--out") { Description = "Write every scored forecast to this CSV (for `plot`)." };
        var attemptTimeout = new Option<double>("--attempt-timeout")
        {
            Description = "Seconds before a call is given up on and sent again (0 = wait for the cluster's response timeout).",
            DefaultValueFactory = _ => RetryPolicy.Default.AttemptTimeout!.Value.TotalSeconds,
        };
        var retries = new Option<int>("--retries")
        {
            Description = "Times a call that failed transiently (timeout, silo or gateway gone) is sent again before the replay stops; " +
                "a rejected observation is never retried. Safe: a retried observation that was applied comes back as a duplicate.",
            DefaultValueFactory = _ => RetryPolicy.Default.MaxRetries,
        };
        var retryDelay = new Option<double>("--retry-delay")
        {
            Description = "Seconds before the first retry; doubles on each further retry (with +-20 % jitter) up to --retry-max-delay.",
            DefaultValueFactory = _ => RetryPolicy.Default.InitialDelay.TotalSeconds,
        };
        var retryMaxDelay = new Option<double>("--retry-max-delay")
        {
            Description = "Longest wait between two retries, in seconds.",
            DefaultValueFactory = _ => RetryPolicy.Default.MaxDelay.TotalSeconds,
        };
        copies.Validators.Add(r => { if (r.ParsedOrNull<int>() is < 1 or > 10_000) r.AddError("--copies must be in 1..10000."); });
        rate.Validators.Add(r => { if (r.ParsedOrNull<double>() is { } value && value is not (>= 0 and <= 1e9)) r.AddError("--rate must be in 0..1000000000 observations/s (0 = as fast as possible)."); });
        batch.Validators.Add(r => { if (r.ParsedOrNull<int>() is < 1 or > 100_000) r.AddError("--batch must be in 1..100000."); });
        rows.Validators.Add(r => { if (r.ParsedOrNull<int>() < 0) r.AddError("--rows must not be negative."); });
        attemptTimeout.Validators.Add(r => { if (r.ParsedOrNull<double>() is < 0 or > 3600 or double.NaN) r.AddError("--attempt-timeout must be in 0..3600 seconds."); });
        retries.Validators.Add(r => { if (r.ParsedOrNull<int>() is < 0 or > 1000) r.AddError("--retries must be in 0..1000."); });
        retryDelay.Validators.Add(r => { if (r.ParsedOrNull<double>() is < 0 or > 600 or double.NaN) r.AddError("--retry-delay must be in 0..600 seconds."); });
        retryMaxDelay.Validators.Add(r => { if (r.ParsedOrNull<double>() is < 0 or > 600 or double.NaN) r.AddError("--retry-max-delay must be in 0..600 seconds."); });
        var command = new Command("replay", "Replay recorded series as live streams; print model vs persistence error.")
        {
            source, prefix, copies, rate, batch, rows, model, reset, output, attemptTimeout, retries, retryDelay, retryMaxDelay,
        };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.RunAsync(async () =>
        {
            var retry = RetryPolicy.Default with
            {
                AttemptTimeout = result.GetValue(attemptTimeout) is > 0 and var limit ? TimeSpan.FromSeconds(limit) : null,
                MaxRetries = result.GetValue(retries),
                InitialDelay = TimeSpan.FromSeconds(result.GetValue(retryDelay)),
                MaxDelay = TimeSpan.FromSeconds(result.GetValue(retryMaxDelay)),
            };
            retry.Validated();
            var maxRows = result.GetValue(rows) is > 0 and var r ? r : int.MaxValue;
            var series = SeriesFile.LoadAll(result.GetValue(source)!, maxRows);
            var streams = Build(series, result.GetValue(prefix)!, result.GetValue(copies));
            return await CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
            {
                await PrepareAsync(connection.Grains, streams, result.GetValue(model), result.GetValue(reset), retry);
                var outPath = result.GetValue(output);
                await ReplayProgress.RunAsync(connection.Grains, streams, 0, int.MaxValue, result.GetValue(batch), result.GetValue(rate),
                    evaluate: true, keepRows: outPath is not null, "replay", ct, retry);
                ReplayProgress.PrintSummary(streams, $"One-step forecasts on {connection.Description}");
                Console.WriteLine(Counts(streams));
                if (outPath is not null)
                {
                    await Replayer.WritePredictionsCsvAsync(outPath, streams);
                    Console.WriteLine($"predictions: {Path.GetFullPath(outPath)}");
                }
                return 0;
            });
        }));
        return command;
    }

    public static List<ReplayStream> Build(IReadOnlyList<SeriesFile> series, string prefix, int copies)
    {
        var streams = new List<ReplayStream>();
        foreach (var file in series)
            for (var copy = 0; copy < copies; copy++)
            {
                var id = copies == 1 ? prefix + file.Name : $"{prefix}{file.Name}#{copy}";
                streams.Add(new ReplayStream(id, file, rotation: copies == 1 ? 0 : copy * file.Count / copies));
            }
        return streams;
    }

    /// <summary>
    /// Binds and resets the streams first; both are safe to repeat, so they go through the same retry policy (a reset
    /// repeated before any observation is sent leaves the same empty stream).
    /// </summary>
    public static async Task PrepareAsync(IGrainFactory grains, IReadOnlyList<ReplayStream> streams, string? model, bool reset, RetryPolicy? retry = null)
    {
        retry ??= RetryPolicy.None;
        if (model is not null)
        {
            // Before any bind: a rebind clears the stream's history and state, and the first batch, with values the model
            // cannot take, was refused only after it, so a replay of the wrong file left its streams emptied and bound
            // to a model they could not be fed.
            var info = await retry.ExecuteAsync(() => grains.GetGrain<IModelGrain>(model).GetInfoAsync());
            int inputSize = info.Config.InputSize;
            if (streams.Select(s => s.Series).FirstOrDefault(f => f.Features.Length != inputSize) is { } misfit)
                throw new ArgumentException(
                    $"{misfit.Path} has {misfit.Features.Length} value column(s) ({string.Join(", ", misfit.Features)}) but model '{model}' " +
                    $"takes {inputSize} (input size {inputSize}); no stream was bound.");
        }
        await Task.WhenAll(streams.Select(async s =>
        {
            var grain = grains.GetGrain<IStreamGrain>(s.StreamId);
            if (model is not null) await retry.ExecuteAsync(() => grain.BindAsync(model));
            if (reset) await retry.ExecuteAsync(async () => { await grain.ResetAsync(); return true; });
        }));
    }

    /// <summary>
    /// What the replay did to the streams, honestly counted: observations applied by its calls, observations answered
    /// as duplicates (applied before: by an attempt whose answer was lost and that was then retried, or by an earlier
    /// run; never stepped twice), and calls sent again after a transient failure.
    /// </summary>
    public static string Counts(IReadOnlyList<ReplayStream> streams) =>
        $"observations: {streams.Sum(s => s.Accepted)} applied, {streams.Sum(s => s.Duplicates)} duplicates (already applied, not stepped again), " +
        $"{streams.Sum(s => s.Retries)} calls retried";
}

/// <summary>plot PREDICTIONS.csv: draws actual vs forecast with the interval, one panel per stream.</summary>
internal static class PlotCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("PREDICTIONS") { Description = "CSV written by `replay --out` or `demo`." };
        var output = new Option<string>("--out", "-o") { Description = "PNG to write.", DefaultValueFactory = _ => "forecast.png" };
        var last = new Option<int>("--last") { Description = "Plot only the last N points of each stream (0 = all).", DefaultValueFactory = _ => 600 };
        var maxStreams = new Option<int>("--streams") { Description = "Plot at most this many streams.", DefaultValueFactory = _ => 4 };
        last.Validators.Add(r => { if (r.ParsedOrNull<int>() < 0) r.AddError("--last must not be negative."); });
        maxStreams.Validators.Add(r => { if (r.ParsedOrNull<int>() < 1) r.AddError("--streams must be at least 1."); });
        var command = new Command("plot", "Draw actual vs predicted with the prediction interval to a PNG.") { input, output, last, maxStreams };
        command.SetAction((result, _) => CommandSupport.RunAsync(() =>
        {
            var rows = ForecastPlot.ReadPredictionsCsv(result.GetValue(input)!);
            if (rows.Count == 0) throw new FormatException($"{result.GetValue(input)}: no predictions to plot, only the header.");
            var panels = Panels(rows, result.GetValue(last), result.GetValue(maxStreams));
            ForecastPlot.Write(result.GetValue(output)!, panels);
            Console.WriteLine($"plot: {Path.GetFullPath(result.GetValue(output)!)} ({panels.Count} streams)");
            return Task.FromResult(0);
        }));
        return command;
    }

    public static List<(string, IReadOnlyList<PredictionRow>)> Panels(IEnumerable<PredictionRow> rows, int last, int maxStreams) =>
        rows.GroupBy(r => r.StreamId).Take(maxStreams)
            .Select(g => (g.Key, (IReadOnlyList<PredictionRow>)(last > 0 ? g.TakeLast(last).ToList() : g.ToList())))
            .ToList();
}
