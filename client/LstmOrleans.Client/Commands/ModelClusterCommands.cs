using System.CommandLine;
using System.Globalization;
using LstmOrleans.Abstractions;
using LstmOrleans.Grains;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;

namespace LstmOrleans.Client.Commands;

/// <summary>models, create-model, rollback: model administration on the cluster.</summary>
internal static class ModelClusterCommands
{
    public static Command Models()
    {
        var cluster = new ClusterOptions();
        var names = new Argument<string[]>("MODEL") { Description = "Any number of model names (none: the default model).", Arity = ArgumentArity.ZeroOrMore };
        names.AddModelNameCheck();
        var json = new Option<bool>("--json") { Description = "Print the models as JSON (info and retained versions of each)." };
        var all = new Option<bool>("--all") { Description = "Show every model the cluster has (from its model catalog) instead of the named ones." };
        var command = new Command("models", "Show models: configuration, active version and retained versions.") { names, json, all };
        cluster.AddTo(command);
        command.Validators.Add(r =>
        {
            if (r.GetValue(all) && r.GetValue(names) is { Length: > 0 }) r.AddError("Give model names or --all, not both.");
        });
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var list = result.GetValue(all) ? await AllModelNamesAsync(connection.Grains)
                : result.GetValue(names) is { Length: > 0 } given ? given : [LstmOrleansNames.DefaultModelName];
            if (result.GetValue(json))
            {
                var models = new List<object>();
                foreach (var name in list)
                {
                    var grain = connection.Grains.GetGrain<IModelGrain>(name);
                    models.Add(new { info = await grain.GetInfoAsync(), versions = await grain.ListVersionsAsync() });
                }
                CommandSupport.WriteJson(new { models });
                return 0;
            }
            // An empty catalog printed nothing at all, which reads as a failure. On stderr, as `streams` says that a
            // listing is empty or continues, so stdout holds only models.
            if (list.Length == 0) Console.Error.WriteLine("(no models: the cluster's catalog is empty; create one with create-model)");
            foreach (var name in list)
            {
                var grain = connection.Grains.GetGrain<IModelGrain>(name);
                var info = await grain.GetInfoAsync();
                var c = info.Config;
                Console.WriteLine($"model {info.Name}: D={c.InputSize} H={c.HiddenSize} L={c.Layers} K={c.Horizons} " +
                    (c.CalendarFeatures is { Length: > 0 } cal ? $"calendar {string.Join(",", cal)}, " : "") + (c.Residual ? "residual head, " : "") +
                    $"normalization {c.Normalization}, {info.ParameterCount} parameters, active v{info.ActiveVersion} (latest v{info.LatestVersion})");
                foreach (var v in await grain.ListVersionsAsync())
                    Console.WriteLine($"  {(v.Version == info.ActiveVersion ? "*" : " ")} v{v.Version}  {v.PublishedAt:u}  {v.Description}");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>Every name in the cluster's model catalog, page by page.</summary>
    private static async Task<string[]> AllModelNamesAsync(IGrainFactory grains)
    {
        var catalog = grains.GetGrain<IModelCatalogGrain>(ModelCatalog.Key);
        var names = new List<string>();
        string? after = null;
        do
        {
            var page = await catalog.ListAsync(after, ModelCatalog.MaxPageSize);
            names.AddRange(page.Names);
            after = page.Next;
        }
        while (after is not null);
        return [.. names];
    }

    public static Command CreateModel()
    {
        var cluster = new ClusterOptions();
        var name = new Argument<string>("MODEL") { Description = "Model name.", DefaultValueFactory = _ => LstmOrleansNames.DefaultModelName };
        name.AddModelNameCheck();
        var inputs = new Option<int>("--inputs") { Description = "Features per observation (D).", DefaultValueFactory = _ => 1 };
        // Defaults from the evaluation on the NAB series (QUALITY.md, "Recommended defaults"): H = 32, residual head.
        var hidden = new Option<int>("--hidden") { Description = "Hidden size (H).", DefaultValueFactory = _ => 32 };
        var layers = new Option<int>("--layers") { Description = "LSTM layers (L).", DefaultValueFactory = _ => 1 };
        var horizons = new Option<int>("--horizons") { Description = "Forecast horizons (K).", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Seed of the initial weights.", DefaultValueFactory = _ => 0 };
        var calendar = new Option<bool>("--calendar")
        {
            Description = "Append calendar features of each observation's timestamp to the model input: time of day and day of week as sine/cosine pairs.",
        };
        var residual = new Option<bool>("--residual")
        {
            Description = "Residual head (the default; --residual false for a level head): the model predicts the change from the last value (in normalised units) instead of the level; starts as persistence.",
            DefaultValueFactory = _ => true,
        };
        var command = new Command("create-model", "Create a model on the cluster (idempotent for an equal configuration).") { name, inputs, hidden, layers, horizons, seed, calendar, residual };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var config = new ModelConfig(result.GetValue(inputs), result.GetValue(hidden), result.GetValue(layers), result.GetValue(horizons), [],
                Seed: result.GetValue(seed), CalendarFeatures: result.GetValue(calendar) ? AllCalendarFeatures : null,
                Residual: result.GetValue(residual));
            var info = await connection.Grains.GetGrain<IModelGrain>(result.GetValue(name)!).CreateAsync(config);
            Console.WriteLine($"model {info.Name}: active v{info.ActiveVersion}, {info.ParameterCount} parameters");
            return 0;
        }));
        return command;
    }

    /// <summary>Every calendar feature, in the model file format's order and names.</summary>
    internal static string[] AllCalendarFeatures { get; } =
        [.. new[] { CalendarFeature.HourSin, CalendarFeature.HourCos, CalendarFeature.WeekdaySin, CalendarFeature.WeekdayCos }
            .Select(ModelMetadataCodec.CalendarFeatureName)];

    public static Command Rollback()
    {
        var cluster = new ClusterOptions();
        var name = new Argument<string>("MODEL") { Description = "Model name." };
        name.AddModelNameCheck();
        var version = new Argument<long>("VERSION")
        {
            Description = "Retained version to make active (a positive integer, as 'models' lists them).",
            // Parsed here: the default parser's error for "abc" named the .NET type ("as expected type 'System.Int64'"),
            // and 0 or -5 needs the same answer as abc, in the words the HTTP API uses for its version parameter.
            CustomParser = r =>
            {
                var token = r.Tokens.Count == 1 ? r.Tokens[0].Value : string.Join(" ", r.Tokens.Select(t => t.Value));
                if (long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed) && parsed >= 1) return parsed;
                r.AddError($"VERSION must be a positive integer; got '{token}'.");
                return 0;
            },
        };
        var command = new Command("rollback", "Make a retained version of a model active on every silo.") { name, version };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var grain = connection.Grains.GetGrain<IModelGrain>(result.GetValue(name)!);
            var wanted = result.GetValue(version);
            var versions = await grain.ListVersionsAsync();
            if (!versions.Any(v => v.Version == wanted))
                return CommandSupport.Fail(1, $"Model '{result.GetValue(name)}' has no retained version {wanted}; retained: {string.Join(", ", versions.Select(v => v.Version))}.");
            var info = await grain.ActivateAsync(wanted);
            Console.WriteLine($"model {info.Name}: active v{info.ActiveVersion} (latest v{info.LatestVersion})");
            return 0;
        }));
        return command;
    }

    /// <summary>`model import FILE`: publish a model file's weights to a model on the cluster and make them active.</summary>
    public static Command Import()
    {
        var cluster = new ClusterOptions();
        var file = new Argument<string>("FILE") { Description = "Model file (.safetensors) whose weights to publish." };
        var name = new Option<string?>("--name") { Description = "Model name on the cluster (default: the file's model name, else the default model)." };
        name.AddModelNameCheck();
        var normalization = new Option<NormalizationMode>("--normalization")
        {
            Description = "How the model's streams scale their values when the model is created here: RunningZScore (per-stream running statistics) or None.",
            DefaultValueFactory = _ => NormalizationMode.RunningZScore,
        };
        var command = new Command("import", "Publish a model file's weights to a model on the cluster (created with the file's shape if it does not exist) and make them active on every silo.") { file, name, normalization };
        cluster.AddTo(command);
        command.SetAction((result, ct) =>
        {
            // Read and validate the file before connecting, so a bad file fails fast and touches nothing.
            ModelFileContents contents;
            try { contents = ModelFile.Load(result.GetValue(file)!); }
            catch (Exception e) when (e is ModelFileException or IOException or UnauthorizedAccessException)
            {
                return Task.FromResult(CommandSupport.Fail(2, e.Message));
            }
            if (contents.Metadata.Normalization is not null)
                return Task.FromResult(CommandSupport.Fail(2,
                    "This model file has fixed normalisation; stream grains normalise each stream with its own running statistics, so the cluster cannot serve it."));
            var shape = contents.Parameters.Config;
            var fileCalendar = contents.Metadata.CalendarFeatures.Select(ModelMetadataCodec.CalendarFeatureName).ToArray();
            int fileValues = contents.Metadata.RawFeatureCount(shape.InputSize);
            var modelName = result.GetValue(name) ?? contents.Metadata.ModelName ?? LstmOrleansNames.DefaultModelName;
            return CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
            {
                var grain = connection.Grains.GetGrain<IModelGrain>(modelName);
                ModelInfo? existing;
                try
                {
                    existing = await grain.GetInfoAsync();
                }
                catch (ModelNotFoundException)
                {
                    existing = null;
                }
                var c = existing?.Config ?? new ModelConfig(fileValues, shape.HiddenSize, shape.Layers, shape.Horizons,
                    [.. contents.Metadata.FeatureNames], contents.Metadata.TargetColumn, result.GetValue(normalization),
                    CalendarFeatures: fileCalendar, Residual: contents.Metadata.Residual);
                var clusterCalendar = c.CalendarFeatures ?? [];
                if (c.InputSize != fileValues || c.HiddenSize != shape.HiddenSize || c.Layers != shape.Layers || c.Horizons != shape.Horizons
                    || !clusterCalendar.SequenceEqual(fileCalendar) || c.Residual != contents.Metadata.Residual)
                    return CommandSupport.Fail(1, $"Model '{modelName}' has shape D={c.InputSize} H={c.HiddenSize} L={c.Layers} K={c.Horizons} " +
                        $"calendar [{string.Join(",", clusterCalendar)}]{(c.Residual ? " residual head" : "")}; the file has D={fileValues} H={shape.HiddenSize} L={shape.Layers} K={shape.Horizons} " +
                        $"calendar [{string.Join(",", fileCalendar)}]{(contents.Metadata.Residual ? " residual head" : "")}.");
                // The model grain would refuse the publish too, but only after this command had created the model: checked
                // here first (the bounds depend on the model's normalisation), so a refused file leaves the cluster as it was.
                if (ModelParameterBounds.Check(c, contents.Parameters.Data) is { } problem)
                    return CommandSupport.Fail(2, $"Model file '{result.GetValue(file)}' cannot be served by model '{modelName}': {problem}. Nothing was changed on the cluster.");
                if (existing is null) await grain.CreateAsync(c);
                var version = await grain.PublishAsync(new PublishRequest(contents.Parameters.Data, $"imported from {Path.GetFileName(result.GetValue(file))}"));
                Console.WriteLine($"model {modelName}: published and activated v{version}");
                return 0;
            });
        });
        return command;
    }

    /// <summary>
    /// What <c>model export</c> writes for <paramref name="weights"/> of model <paramref name="modelName"/>: the parameters
    /// and the metadata offline commands read (the stream normalisation among them); null when the weights do not fit
    /// the model's shape. Its own method so tests export exactly as the command does.
    /// </summary>
    internal static (LstmParameters Parameters, ModelMetadata Metadata)? ToModelFile(string modelName, ModelWeights weights)
    {
        var c = weights.Config;
        var parameters = new LstmParameters(new LstmConfig(c.ModelInputSize, c.HiddenSize, c.Layers, c.Horizons));
        if (weights.Parameters.Length != parameters.Count) return null;
        weights.Parameters.AsSpan().CopyTo(parameters.Data);
        var metadata = new ModelMetadata
        {
            ModelName = modelName,
            ModelVersion = weights.Version.ToString(System.Globalization.CultureInfo.InvariantCulture),
            TargetColumn = c.TargetIndex,
            FeatureNames = c.Features.Length == c.InputSize ? c.Features : [],
            CalendarFeatures = [.. (c.CalendarFeatures ?? []).Select(n => ModelMetadataCodec.TryParseCalendarFeature(n, out var f)
                ? f : throw new InvalidOperationException($"Model '{modelName}' has an unknown calendar feature '{n}'."))],
            Residual = c.Residual,
            // Per-stream running statistics live in each stream, not in the model: record the mode only (offline predict
            // replays them from the series, as a new stream would).
            Extra = new Dictionary<string, string> { [LstmOrleans.Client.Offline.OfflineModel.StreamNormalizationKey] = c.Normalization.ToString() },
        };
        return (parameters, metadata);
    }

    /// <summary>`model export MODEL --out FILE`: write a model version from the cluster as a safetensors file.</summary>
    public static Command Export()
    {
        var cluster = new ClusterOptions();
        var name = new Argument<string>("MODEL") { Description = "Model name on the cluster.", DefaultValueFactory = _ => LstmOrleansNames.DefaultModelName };
        name.AddModelNameCheck();
        var output = new Option<string>("--out") { Description = "Model file to write (.safetensors).", Required = true };
        var version = new Option<long?>("--version") { Description = "Retained version to export (default: the active one)." };
        var command = new Command("export", "Write a model's active (or a retained) version from the cluster to a safetensors file.") { name, output, version };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var modelName = result.GetValue(name)!;
            var grain = connection.Grains.GetGrain<IModelGrain>(modelName);
            var weights = result.GetValue(version) is { } v ? await grain.GetWeightsAsync(v) : await grain.GetActiveWeightsAsync();
            if (ToModelFile(modelName, weights) is not var (parameters, metadata))
                return CommandSupport.Fail(1, $"Model '{modelName}' v{weights.Version} has {weights.Parameters.Length} parameters; its shape does not take that many.");
            ModelFile.Save(result.GetValue(output)!, parameters, metadata);
            Console.WriteLine($"model {modelName}: wrote v{weights.Version} to {result.GetValue(output)}");
            return 0;
        }));
        return command;
    }
}
