using System.CommandLine;
using System.Globalization;
using LstmOrleans.Abstractions;

namespace LstmOrleans.Client.Commands;

/// <summary>push, predict, stream, watch.</summary>
internal static class StreamCommands
{
    public static Command Push()
    {
        var cluster = new ClusterOptions();
        var stream = StreamArgument();
        var values = new Argument<string[]>("VALUE") { Description = "Feature values (one per model input).", Arity = ArgumentArity.OneOrMore };
        var sequence = new Option<long?>("--seq") { Description = "Sequence number, 0 or greater (default: one after the stream's last)." };
        // The stream refuses a negative one too (the HTTP API always did); refused here it is exit 2 without connecting.
        sequence.Validators.Add(r => { if (r.ParsedOrNull<long>() < 0) r.AddError("--seq must be 0 or greater (or left out: the stream numbers the value after its last one)."); });
        var time = new Option<string?>("--time") { Description = "ISO 8601 timestamp (default: now)." };
        var json = JsonOption();
        var command = new Command("push", "Send one observation to a stream and print its new forecast.") { stream, values, sequence, time, json };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.RunAsync(async () =>
        {
            var parsed = result.GetValue(values)!.Select(ParseValue).ToArray();
            DateTimeOffset? timestamp = null;
            if (result.GetValue(time) is { } text)
                timestamp = DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsedTime)
                    ? parsedTime
                    : throw new ArgumentException($"--time: '{text}' is not a timestamp.");
            return await CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
            {
                var grain = connection.Grains.GetGrain<IStreamGrain>(result.GetValue(stream)!);
                // Without --seq the stream numbers the value (and, without --time, stamps it) in the turn that applies
                // it: numbered here from a summary read first, two pushes at once took the same number and the second
                // was answered as a duplicate, acknowledged but dropped (and after the last possible sequence the
                // number wrapped around to the same fate).
                var step = result.GetValue(sequence) is { } seq
                    ? await grain.IngestAsync(new Observation(seq, timestamp ?? DateTimeOffset.UtcNow, parsed))
                    : (await grain.IngestAfterLastAsync([new UnnumberedObservation(timestamp, parsed)]))[0];
                if (result.GetValue(json)) CommandSupport.WriteJson(step);
                else Console.WriteLine(CommandSupport.Describe(step));
                return 0;
            });
        }));
        return command;
    }

    private static Option<bool> JsonOption() => new("--json") { Description = "Print the result as JSON." };

    /// <summary>STREAM: a grain key, so not empty or blank (Orleans' own refusal names its 'primaryKey' parameter).</summary>
    private static Argument<string> StreamArgument()
    {
        var stream = new Argument<string>("STREAM") { Description = "Stream id." };
        stream.Validators.Add(r => { if (string.IsNullOrWhiteSpace(r.GetValueOrDefault<string>())) r.AddError("STREAM must not be empty or blank."); });
        return stream;
    }

    private static float ParseValue(string text)
    {
        if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !Observation.IsAcceptable(value))
            throw new ArgumentException($"'{text}' is not a finite number of at most {Observation.MaxMagnitude:G} in magnitude.");
        return value;
    }

    public static Command Predict()
    {
        var cluster = new ClusterOptions();
        var stream = StreamArgument();
        var json = JsonOption();
        var command = new Command("predict", "Print a stream's current forecast with its prediction interval.") { stream, json };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var id = result.GetValue(stream)!;
            var prediction = await connection.Grains.GetGrain<IStreamGrain>(id).GetPredictionAsync();
            if (prediction is null) return CommandSupport.Fail(1, $"Stream '{id}' has no observations yet.");
            if (result.GetValue(json)) CommandSupport.WriteJson(prediction);
            else Console.WriteLine(CommandSupport.Describe(prediction));
            return 0;
        }));
        return command;
    }

    public static Command Stream()
    {
        var cluster = new ClusterOptions();
        var stream = StreamArgument();
        var json = JsonOption();
        var command = new Command("stream", "Print a stream's summary: model, weights version, last sequence and its time, steps, history held and latest forecast.") { stream, json };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var id = result.GetValue(stream)!;
            var s = await connection.Grains.GetGrain<IStreamGrain>(id).GetSummaryAsync();
            // The grain answers any id: a misspelt one printed an empty summary and exit 0. As predict (and HTTP's 404).
            if (s.ModelName is null && s.LastSequence is null)
                return CommandSupport.Fail(1, $"Stream '{id}' does not exist: it has received no observations and is not bound to a model.");
            if (result.GetValue(json))
            {
                CommandSupport.WriteJson(s);
                return 0;
            }
            Console.WriteLine($"stream {s.StreamId}: model {s.ModelName ?? "(unbound)"} weights v{s.WeightsVersion}, " +
                $"last sequence {s.LastSequence?.ToString(CultureInfo.InvariantCulture) ?? "-"} at {s.LastTimestamp?.ToString("u") ?? "-"}, " +
                $"{s.StepCount} steps, history {s.HistoryCount}/{s.HistoryCapacity}");
            if (s.Latest is { } latest) Console.WriteLine(CommandSupport.Describe(latest));
            return 0;
        }));
        return command;
    }

    public static Command Watch()
    {
        var cluster = new ClusterOptions();
        var stream = StreamArgument();
        var interval = new Option<double>("--interval") { Description = "Seconds between polls.", DefaultValueFactory = _ => 1 };
        var count = new Option<int>("--count") { Description = "Stop after this many polls (0 = until Ctrl+C).", DefaultValueFactory = _ => 0 };
        interval.Validators.Add(r => { if (r.ParsedOrNull<double>() is < 0.05 or > 3600) r.AddError("--interval must be in 0.05..3600 seconds."); });
        count.Validators.Add(r => { if (r.ParsedOrNull<int>() < 0) r.AddError("--count must not be negative."); });
        var command = new Command("watch", "Poll a stream and print each new forecast.") { stream, interval, count };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var grain = connection.Grains.GetGrain<IStreamGrain>(result.GetValue(stream)!);
            var polls = result.GetValue(count);
            // Each change is printed once, as a new forecast is: "no observations yet" too (it printed on every poll),
            // again only after the stream had values and lost them (deleted or reset).
            long? lastSeen = null;
            bool emptyShown = false;
            for (var i = 0; polls == 0 || i < polls; i++)
            {
                if (i > 0) await Task.Delay(TimeSpan.FromSeconds(result.GetValue(interval)), ct);
                var prediction = await grain.GetPredictionAsync();
                if (prediction is null)
                {
                    if (!emptyShown) Console.WriteLine($"{DateTimeOffset.Now:HH:mm:ss} no observations yet");
                    emptyShown = true;
                    lastSeen = null;
                    continue;
                }
                emptyShown = false;
                if (prediction.StepCount != lastSeen) Console.WriteLine($"{DateTimeOffset.Now:HH:mm:ss} {CommandSupport.Describe(prediction)}");
                lastSeen = prediction.StepCount;
            }
            return 0;
        }));
        return command;
    }
}
