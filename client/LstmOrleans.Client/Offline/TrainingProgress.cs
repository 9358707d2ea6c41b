using System.Globalization;
using LstmOrleans.Lstm.Training;
using Spectre.Console;

namespace LstmOrleans.Client.Offline;

/// <summary>
/// How `model train` shows its epochs: a Spectre.Console progress display when stdout is a terminal, one plain line
/// per epoch when it is not (pipes, files, tests), nothing with --json (the JSON result says it all).
/// </summary>
internal static class TrainingProgress
{
    /// <param name="validated">A validation split exists (without one the trainer reports the train loss as validation loss).</param>
    public static TrainingResult Run(TextWriter stdout, bool json, int maxEpochs, bool validated, Func<Action<EpochReport>, TrainingResult> train)
    {
        if (json) return train(_ => { });
        if (!IsTerminal(stdout)) return train(report => stdout.WriteLine(Line(report, maxEpochs, validated)));

        TrainingResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new ElapsedTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape($"epoch 0/{maxEpochs}"), maxValue: maxEpochs);
                // The trainer calls back on this thread after each epoch; Spectre redraws from its own.
                result = train(report =>
                {
                    task.Value = report.Epoch;
                    task.Description = Markup.Escape(Caption(report, maxEpochs, validated));
                });
                if (result.StoppedEarly) task.Description = Markup.Escape($"{Caption(result.Epochs[^1], maxEpochs, validated)}, stopped early");
                task.Value = maxEpochs;
            });
        return result!;
    }

    /// <summary>Only the real console counts as a terminal: a command writing to a captured writer is never one.</summary>
    internal static bool IsTerminal(TextWriter stdout) =>
        ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    internal static string Line(EpochReport report, int maxEpochs, bool validated) =>
        $"{Caption(report, maxEpochs, validated)}, {report.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)} s elapsed";

    private static string Caption(EpochReport report, int maxEpochs, bool validated)
    {
        var text = string.Create(CultureInfo.InvariantCulture, $"epoch {report.Epoch}/{maxEpochs}: train loss {report.TrainLoss:G6}");
        return validated
            ? text + string.Create(CultureInfo.InvariantCulture, $", validation loss {report.ValidationLoss:G6}")
            : text;
    }
}
