using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LstmOrleans.Abstractions;

namespace LstmOrleans.Client.Commands;

/// <summary>`streams`: the streams registered with a model, from its sharded registry, optionally with a summary of each.</summary>
internal static class StreamListCommand
{
    public static Command Create()
    {
        var cluster = new ClusterOptions();
        var model = new Option<string>("--model", "-m") { Description = "Model whose streams to list.", DefaultValueFactory = _ => LstmOrleansNames.DefaultModelName };
        model.AddModelNameCheck();
        var limit = new Option<int>("--limit", "-n") { Description = "Most streams to print (fetched in pages of at most 1000).", DefaultValueFactory = _ => 100 };
        var after = new Option<string?>("--after") { Description = "Start after this stream id (the 'next' of an earlier listing)." };
        var summary = new Option<bool>("--summary") { Description = "Ask each listed stream for its last sequence, step count and last forecast." };
        var concurrency = new Option<int>("--concurrency") { Description = "Stream summaries requested at once with --summary.", DefaultValueFactory = _ => 16 };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        limit.Validators.Add(r => { if (r.ParsedOrNull<int>() is < 1 or > 1_000_000) r.AddError("--limit must be in 1..1000000."); });
        concurrency.Validators.Add(r => { if (r.ParsedOrNull<int>() is < 1 or > 256) r.AddError("--concurrency must be in 1..256."); });
        var command = new Command("streams", "List the streams registered with a model (ordered by id), optionally with a short summary of each.")
        {
            model, limit, after, summary, concurrency, json,
        };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var name = result.GetValue(model)!;
            await connection.Grains.GetGrain<IModelGrain>(name).GetInfoAsync();   // unknown model: ModelNotFoundException, exit 1
            var registry = connection.Grains.GetGrain<IStreamRegistryGrain>(name);

            // Page through the registry until --limit ids are in hand or it runs out.
            int wanted = result.GetValue(limit);
            var ids = new List<string>();
            string? cursor = result.GetValue(after);
            bool more = true;
            while (ids.Count < wanted && more)
            {
                var page = await registry.ListStreamsAsync(cursor, Math.Min(StreamRegistryKeys.MaxPageSize, wanted - ids.Count));
                ids.AddRange(page.StreamIds);
                cursor = page.Next;
                more = page.Next is not null;
            }
            string? next = more && ids.Count > 0 ? ids[^1] : null;

            StreamSummary?[]? summaries = null;
            if (result.GetValue(summary))
            {
                summaries = new StreamSummary?[ids.Count];
                await Parallel.ForEachAsync(Enumerable.Range(0, ids.Count),
                    new ParallelOptions { MaxDegreeOfParallelism = result.GetValue(concurrency), CancellationToken = ct },
                    async (i, _) => summaries[i] = await connection.Grains.GetGrain<IStreamGrain>(ids[i]).GetSummaryAsync());
            }

            if (result.GetValue(json)) WriteJson(name, ids, summaries, next);
            else WriteText(name, result.GetValue(after), ids, summaries, next);
            return 0;
        }));
        return command;
    }

    private static void WriteText(string model, string? after, List<string> ids, StreamSummary?[]? summaries, string? next)
    {
        if (summaries is null)
            foreach (var id in ids) Console.WriteLine(id);
        else
        {
            var rows = ids.Select((id, i) => (Id: id, S: summaries[i]!)).ToList();
            int width = Math.Max(6, rows.Count == 0 ? 0 : rows.Max(r => r.Id.Length));
            Console.WriteLine($"{"stream".PadRight(width)}  {"last seq",10}  {"steps",10}  last forecast");
            foreach (var (id, s) in rows)
            {
                var forecast = s.Latest is { } latest
                    ? string.Join(" ", latest.Predictions.Select((p, k) => $"t+{k + 1}={CommandSupport.Format(p)}"))
                    : "-";
                Console.WriteLine($"{id.PadRight(width)}  {s.LastSequence?.ToString(CultureInfo.InvariantCulture) ?? "-",10}  {s.StepCount,10}  {forecast}");
            }
        }
        // On stderr, so stdout stays one stream id per line for pipes. An empty listing printed nothing at all, which
        // reads as a failure.
        if (next is not null) Console.Error.WriteLine($"(more streams follow: --after \"{next}\")");
        else if (ids.Count == 0)
            Console.Error.WriteLine(after is null ? $"(no streams registered with model '{model}')" : $"(no streams registered with model '{model}' after \"{after}\")");
    }

    private static void WriteJson(string model, List<string> ids, StreamSummary?[]? summaries, string? next) =>
        ModelCommands.WriteJson(Console.Out, w =>
        {
            w.WriteString("model", model);
            w.WriteStartArray("streams");
            for (int i = 0; i < ids.Count; i++)
            {
                w.WriteStartObject();
                w.WriteString("id", ids[i]);
                if (summaries?[i] is { } s)
                {
                    if (s.LastSequence is { } seq) w.WriteNumber("lastSequence", seq); else w.WriteNull("lastSequence");
                    w.WriteNumber("steps", s.StepCount);
                    w.WriteNumber("weightsVersion", s.WeightsVersion);
                    if (s.Latest is { } latest)
                    {
                        w.WriteStartArray("lastPrediction");
                        foreach (var p in latest.Predictions) w.WriteNumberValue(p);
                        w.WriteEndArray();
                    }
                    else w.WriteNull("lastPrediction");
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (next is null) w.WriteNull("next"); else w.WriteString("next", next);
        });
}
