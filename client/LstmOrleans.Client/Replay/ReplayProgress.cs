using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace LstmOrleans.Client.Replay;

/// <summary>Runs a replay under a Spectre.Console progress bar whose caption is a live summary (rate, model vs persistence error).</summary>
internal static class ReplayProgress
{
    public static async Task RunAsync(IGrainFactory grains, IReadOnlyList<ReplayStream> streams, int from, int to, int batchSize,
        double rate, bool evaluate, bool keepRows, string title, CancellationToken cancellationToken, RetryPolicy? retry = null)
    {
        var total = streams.Sum(s => Math.Max(0, Math.Min(to, s.Count) - from));
        long done = 0;
        var clock = Stopwatch.StartNew();
        var replay = Replayer.RunAsync(grains, streams, from, to, batchSize, rate, evaluate, keepRows,
            n => Interlocked.Add(ref done, n), cancellationToken, retry);

        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            // Redirected output: no redraws, one line every few seconds instead.
            while (await Task.WhenAny(replay, Task.Delay(5000, cancellationToken)) != replay)
                Console.Error.WriteLine($"{title}: {Caption(streams, Interlocked.Read(ref done), total, clock.Elapsed)}");
            await replay;
            Console.WriteLine($"{title}: {Caption(streams, total, total, clock.Elapsed)}");
            return;
        }

        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(title, maxValue: Math.Max(1, total));
                while (!replay.IsCompleted)
                {
                    await Task.WhenAny(replay, Task.Delay(250, cancellationToken));
                    var current = Interlocked.Read(ref done);
                    task.Value = current;
                    task.Description = Markup.Escape($"{title}: {Caption(streams, current, total, clock.Elapsed)}");
                }
                await replay;
                task.Value = total;
            });
    }

    private static string Caption(IReadOnlyList<ReplayStream> streams, long done, long total, TimeSpan elapsed)
    {
        var model = new ErrorTally();
        var persistence = new ErrorTally();
        // Tallies are updated by the replay tasks; a slightly stale read is fine for a caption.
        foreach (var s in streams) { model.Add(s.Model); persistence.Add(s.Persistence); }
        var rate = elapsed.TotalSeconds > 0 ? done / elapsed.TotalSeconds : 0;
        var errors = model.Count == 0 ? "" : string.Create(CultureInfo.InvariantCulture,
            $", MAE model {model.Mae:G4} vs persistence {persistence.Mae:G4}");
        return string.Create(CultureInfo.InvariantCulture, $"{done}/{total} obs, {rate:F0} obs/s{errors}");
    }

    /// <summary>Per-stream table of one-step errors: model vs persistence (last value carried forward).</summary>
    public static void PrintSummary(IReadOnlyList<ReplayStream> streams, string heading)
    {
        // Redirected output has no terminal width; do not wrap the table into an unreadable column.
        if (!AnsiConsole.Profile.Capabilities.Interactive && AnsiConsole.Profile.Width < 140) AnsiConsole.Profile.Width = 140;
        var table = new Table().Title(Markup.Escape(heading)).AddColumns("stream", "scored", "MAE model", "MAE persistence", "RMSE model", "RMSE persistence", "RMSE ratio");
        var model = new ErrorTally();
        var persistence = new ErrorTally();
        foreach (var s in streams)
        {
            table.AddRow(Row(s.StreamId, s.Model, s.Persistence));
            model.Add(s.Model);
            persistence.Add(s.Persistence);
        }
        if (streams.Count > 1) table.AddRow(Row("all (pooled)", model, persistence));
        AnsiConsole.Write(table);
    }

    private static string[] Row(string name, ErrorTally model, ErrorTally persistence) =>
    [
        Markup.Escape(name), model.Count.ToString(CultureInfo.InvariantCulture),
        F(model.Mae), F(persistence.Mae), F(model.Rmse), F(persistence.Rmse),
        persistence.Rmse > 0 ? (model.Rmse / persistence.Rmse).ToString("F3", CultureInfo.InvariantCulture) : "-",
    ];

    private static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("G5", CultureInfo.InvariantCulture);
}
