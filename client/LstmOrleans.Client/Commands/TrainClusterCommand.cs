using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LstmOrleans.Abstractions;
using Spectre.Console;

namespace LstmOrleans.Client.Commands;

/// <summary>`train MODEL`: start a training round on the cluster and follow it to its decision.</summary>
internal static class TrainClusterCommand
{
    public static Command Create()
    {
        var cluster = new ClusterOptions();
        var model = new Argument<string>("MODEL") { Description = "Model to train.", DefaultValueFactory = _ => LstmOrleansNames.DefaultModelName };
        model.AddModelNameCheck();
        var timeout = new Option<double>("--timeout") { Description = "Seconds to follow the round before giving up (it keeps running on the cluster).", DefaultValueFactory = _ => 600 };
        var noWait = new Option<bool>("--no-wait") { Description = "Start the round and print its id without following it." };
        var json = new Option<bool>("--json") { Description = "Print the round's record as JSON (with --no-wait: the model and the round's id)." };
        timeout.Validators.Add(r => { if (r.ParsedOrNull<double>() is < 1 or > 86_400) r.AddError("--timeout must be in 1..86400 seconds."); });
        var command = new Command("train", "Start a training round of a model on the cluster (or join the running one) and follow it: sampled streams, losses, decision.")
        {
            model, timeout, noWait, json,
        };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var name = result.GetValue(model)!;
            var grain = connection.Grains.GetGrain<ITrainingGrain>(name);
            long roundId = await grain.StartRoundAsync();   // unknown model: ModelNotFoundException; paused: ModelOperationException
            if (result.GetValue(noWait))
            {
                if (result.GetValue(json)) CommandSupport.WriteJson(new { model = name, roundId });
                else Console.WriteLine($"model {name}: training round {roundId} started");
                return 0;
            }

            var limit = TimeSpan.FromSeconds(result.GetValue(timeout));
            var record = !result.GetValue(json) && AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected
                ? await AnsiConsole.Status().StartAsync($"model {Markup.Escape(name)}: training round {roundId} running...",
                    status => FollowAsync(grain, roundId, limit, elapsed => status.Status(
                        Markup.Escape($"model {name}: training round {roundId} running ({elapsed.TotalSeconds:F0} s)")), ct))
                : await FollowAsync(grain, roundId, limit, _ => { }, ct);
            if (record is null)
                return CommandSupport.Fail(1, $"Training round {roundId} of model '{name}' was still running after {limit.TotalSeconds:0} s; it goes on on the cluster.");

            if (result.GetValue(json)) CommandSupport.WriteJson(record);
            else Print(name, record);
            return 0;
        }));
        return command;
    }

    /// <summary>Polls until the round's record exists (its end) or <paramref name="limit"/> passes.</summary>
    private static async Task<TrainingRoundRecord?> FollowAsync(ITrainingGrain grain, long roundId, TimeSpan limit, Action<TimeSpan> tick, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await grain.GetRoundAsync(roundId) is { } record) return record;
            if (clock.Elapsed >= limit) return null;
            tick(clock.Elapsed);
            await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
        }
    }

    private static void Print(string model, TrainingRoundRecord r)
    {
        static string F(double v) => double.IsFinite(v) ? v.ToString("G5", CultureInfo.InvariantCulture) : "-";
        Console.WriteLine($"model {model}: training round {r.RoundId} ({r.Trigger}) {r.Decision} in {r.Duration.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)} s");
        Console.WriteLine($"  {r.Reason}");
        Console.WriteLine($"  streams: {r.StreamsUsed} used of {r.StreamsSampled} sampled ({r.StreamsUnanswered} unanswered); {r.Rows} rows, {r.TrainWindows} training windows, {r.ValidationEntries} validation entries");
        Console.WriteLine($"  validation loss: challenger {F(r.ChallengerValidationLoss)}, champion v{r.ChampionVersion} {F(r.ChampionValidationLoss)}, persistence {F(r.PersistenceValidationLoss)}");
        Console.WriteLine($"  epochs: {r.EpochsRun} (best {r.BestEpoch}{(r.StoppedEarly ? ", stopped early" : "")}{(r.RanOutOfTime ? ", ran out of time" : "")})" +
            (r.PublishedVersion is { } v ? $"; published v{v}" : ""));
    }
}
