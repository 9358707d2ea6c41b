using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using LstmOrleans.Client.Offline;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;

namespace LstmOrleans.Client;

/// <summary>`model ...`: offline commands that use the engine directly and need no cluster.</summary>
internal static class ModelCommands
{
    public static Command Create()
    {
        var model = new Command("model", "Model files: offline commands (no cluster needed), and import/export to and from a cluster.");
        model.Subcommands.Add(CreateInit());
        model.Subcommands.Add(CreateShow());
        model.Subcommands.Add(CreatePredict());
        model.Subcommands.Add(TrainCommand.Create());
        // Against a cluster: move model files in and out of a model grain.
        model.Subcommands.Add(Commands.ModelClusterCommands.Import());
        model.Subcommands.Add(Commands.ModelClusterCommands.Export());
        return model;
    }

    // ------------------------------------------------------------------ model init

    private static Command CreateInit()
    {
        var inputSize = new Option<int>("--input-size") { Description = "Input size D: values per row (raw features).", Required = true };
        var hidden = new Option<int>("--hidden") { Description = "Hidden size H of every LSTM layer.", Required = true };
        var layers = new Option<int>("--layers") { Description = "Number of stacked LSTM layers L.", DefaultValueFactory = _ => 1 };
        var horizons = new Option<int>("--horizons") { Description = "Number of outputs K; output k predicts the target k steps ahead.", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Seed of the uniform(-1/sqrt(H), 1/sqrt(H)) initialisation.", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Model file to write (.safetensors).", Required = true };
        var name = new Option<string?>("--name") { Description = "Model name stored in the file's metadata." };
        var features = new Option<string?>("--feature-names") { Description = "Comma-separated names of the D input columns, checked against CSV headers later." };
        var target = new Option<int>("--target-column") { Description = "Index (0-based) of the predicted column among the inputs.", DefaultValueFactory = _ => 0 };
        var json = JsonOption();

        var command = new Command("init", "Create a model file with freshly initialised weights.")
        {
            inputSize, hidden, layers, horizons, seed, output, name, features, target, json,
        };
        command.SetAction((parse, ct) => RunAsync(parse, ct, (stdout, cancellationToken) =>
        {
            var config = new LstmConfig(parse.GetValue(inputSize), parse.GetValue(hidden), parse.GetValue(layers), parse.GetValue(horizons));
            LstmParameters parameters;
            try
            {
                // Validates each size and, beyond that, refuses a shape with more parameters than the engine supports.
                parameters = LstmParameters.InitializeUniform(config, parse.GetValue(seed));
            }
            catch (ArgumentException e)
            {
                throw new CliException(e.Message);
            }
            var metadata = new ModelMetadata
            {
                ModelName = parse.GetValue(name),
                TargetColumn = parse.GetValue(target),
                FeatureNames = parse.GetValue(features) is { } list
                    ? list.Split(',', StringSplitOptions.TrimEntries)
                    : [],
            };
            if (metadata.Check(config) is { } problem)
                throw new CliException(problem);
            string path = parse.GetValue(output)!;
            ModelFile.Save(path, parameters, metadata, cancellationToken);

            if (parse.GetValue(json))
                WriteJson(stdout, w =>
                {
                    w.WriteString("path", path);
                    WriteConfig(w, config);
                    w.WriteNumber("parameters", parameters.Count);
                });
            else
                stdout.WriteLine($"Wrote {path}: {Describe(config)}, {parameters.Count} parameters.");
            return 0;
        }));
        return command;
    }

    // ------------------------------------------------------------------ model show

    private static Command CreateShow()
    {
        var modelPath = new Argument<string>("model") { Description = "Model file (.safetensors)." };
        var json = JsonOption();
        var command = new Command("show", "Print a model file's shape, parameter count and metadata.") { modelPath, json };
        command.SetAction((parse, ct) => RunAsync(parse, ct, (stdout, cancellationToken) =>
        {
            string path = parse.GetValue(modelPath)!;
            var (parameters, metadata) = ModelFile.Load(path, cancellationToken: cancellationToken);
            var config = parameters.Config;
            long bytes = new FileInfo(path).Length;
            if (parse.GetValue(json))
            {
                WriteJson(stdout, w =>
                {
                    w.WriteString("path", path);
                    w.WriteNumber("fileBytes", bytes);
                    WriteConfig(w, config);
                    w.WriteNumber("parameters", parameters.Count);
                    w.WriteNumber("parameterNorm", parameters.Norm());
                    WriteMetadata(w, metadata);
                });
                return 0;
            }
            stdout.WriteLine($"Model file:     {path} ({bytes} bytes)");
            stdout.WriteLine($"Name:           {metadata.ModelName ?? "(none)"}");
            stdout.WriteLine($"Version:        {metadata.ModelVersion ?? "(none)"}");
            stdout.WriteLine($"Shape:          {Describe(config)}");
            stdout.WriteLine($"Parameters:     {parameters.Count} (L2 norm {SensorCsv.Format(parameters.Norm())})");
            stdout.WriteLine($"Features:       {(metadata.FeatureNames.Count == 0 ? "(unnamed)" : string.Join(", ", metadata.FeatureNames))}");
            stdout.WriteLine($"Target column:  {metadata.TargetColumn}");
            stdout.WriteLine($"Head:           {(metadata.Residual ? "residual (forecast = current target input + output)" : "level")}");
            stdout.WriteLine($"Calendar:       {(metadata.CalendarFeatures.Count == 0 ? "none" : string.Join(", ", metadata.CalendarFeatures.Select(ModelMetadataCodec.CalendarFeatureName)))}");
            stdout.WriteLine(metadata.Normalization is { } n
                ? $"Normalisation:  standard; mean [{string.Join(", ", n.Mean.Select(SensorCsv.Format))}], std [{string.Join(", ", n.Std.Select(SensorCsv.Format))}]"
                : "Normalisation:  none");
            foreach (var (key, value) in metadata.Extra.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                stdout.WriteLine($"Metadata:       {key} = {value}");
            return 0;
        }));
        return command;
    }

    // ------------------------------------------------------------------ model predict

    private static Command CreatePredict()
    {
        var modelPath = new Option<string>("--model") { Description = "Model file (.safetensors).", Required = true };
        var data = new Option<string>("--data") { Description = "CSV with a header; first column a timestamp, then one column per input feature.", Required = true };
        var output = new Option<string?>("--out") { Description = "CSV to write (timestamp,y1,...,yK); standard output when omitted." };
        var json = new Option<bool>("--json") { Description = "With --out: print what was written (path, rows, horizons) as JSON." };
        var command = new Command("predict", "Run the model over a CSV from zero state, one step per row, and write every row's K predictions.")
        {
            modelPath, data, output, json,
        };
        // Without --out the predictions are the CSV on standard output, and --json was silently ignored: a script
        // asking for JSON got CSV.
        command.Validators.Add(r =>
        {
            if (r.GetValue(json) && r.GetValue(output) is null)
                r.AddError("--json needs --out: without it the predictions are written to standard output as CSV.");
        });
        command.SetAction((parse, ct) => RunAsync(parse, ct, (stdout, cancellationToken) =>
        {
            var (parameters, metadata) = ModelFile.Load(parse.GetValue(modelPath)!, cancellationToken: cancellationToken);
            string dataPath = parse.GetValue(data)!;
            var table = SensorCsv.Read(dataPath, cancellationToken);
            float[] predictions = OfflineModel.Predict(parameters, metadata, table, dataPath, cancellationToken);   // [rows, K]

            string? path = parse.GetValue(output);
            int k = parameters.Config.Horizons;
            if (path is null)
            {
                SensorCsv.WritePredictions(stdout, table.TimestampText, predictions, k, cancellationToken);
                return 0;
            }
            WriteFileAtomically(path, writer => SensorCsv.WritePredictions(writer, table.TimestampText, predictions, k, cancellationToken));
            if (parse.GetValue(json))
                WriteJson(stdout, w =>
                {
                    w.WriteString("path", path);
                    w.WriteNumber("rows", table.RowCount);
                    w.WriteNumber("horizons", k);
                });
            else
                stdout.WriteLine($"Wrote {table.RowCount} rows of {k} predictions to {path}.");
            return 0;
        }));
        return command;
    }

    // ------------------------------------------------------------------ shared

    private static Option<bool> JsonOption() => new("--json") { Description = "Print the result as JSON." };

    /// <summary>
    /// Runs a command body as the asynchronous action of an offline command; expected failures (bad arguments, missing or
    /// malformed files) become one line on standard error and exit code 2 (bad arguments or input file, as for every
    /// command) instead of a stack trace. The body observes <paramref name="cancellationToken"/>, which Ctrl+C and SIGTERM
    /// cancel (<see cref="ClientCommandLine.Invocation"/>): a cancelled body exits <see cref="ClientCommandLine.Cancelled"/>
    /// like the cluster commands, its output files left as they were (they are written through temporary files).
    /// </summary>
    internal static async Task<int> RunAsync(ParseResult parse, CancellationToken cancellationToken, Func<TextWriter, CancellationToken, int> body)
    {
        var stdout = parse.InvocationConfiguration.Output;
        var stderr = parse.InvocationConfiguration.Error;
        try
        {
            // The body is synchronous CPU and file work: on a pool thread, so this action returns its task at once and
            // System.CommandLine's signal handling (set up around that task in some versions, only after it is returned)
            // is in place while the body runs.
            return await Task.Run(() => body(stdout, cancellationToken), cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            stderr.WriteLine("error: Cancelled.");
            return ClientCommandLine.Cancelled;
        }
        catch (Exception e) when (e is CliException or ModelFileException or CsvFormatException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"error: {e.Message}");
            return ClientCommandLine.BadArguments;
        }
    }

    internal static string Describe(LstmConfig config) =>
        $"input size {config.InputSize}, hidden size {config.HiddenSize}, {config.Layers} layer{(config.Layers == 1 ? "" : "s")}, {config.Horizons} horizon{(config.Horizons == 1 ? "" : "s")}";

    internal static void WriteJson(TextWriter writer, Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            body(json);
            json.WriteEndObject();
        }
        writer.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }

    internal static void WriteConfig(Utf8JsonWriter w, LstmConfig config)
    {
        w.WriteNumber("inputSize", config.InputSize);
        w.WriteNumber("hiddenSize", config.HiddenSize);
        w.WriteNumber("layers", config.Layers);
        w.WriteNumber("horizons", config.Horizons);
    }

    private static void WriteMetadata(Utf8JsonWriter w, ModelMetadata metadata)
    {
        if (metadata.ModelName is null) w.WriteNull("name"); else w.WriteString("name", metadata.ModelName);
        if (metadata.ModelVersion is null) w.WriteNull("version"); else w.WriteString("version", metadata.ModelVersion);
        w.WriteNumber("targetColumn", metadata.TargetColumn);
        w.WriteBoolean("residual", metadata.Residual);
        w.WriteStartArray("featureNames");
        foreach (var f in metadata.FeatureNames) w.WriteStringValue(f);
        w.WriteEndArray();
        w.WriteStartArray("calendarFeatures");
        foreach (var f in metadata.CalendarFeatures) w.WriteStringValue(ModelMetadataCodec.CalendarFeatureName(f));
        w.WriteEndArray();
        if (metadata.Normalization is { } n)
        {
            w.WriteStartObject("normalization");
            w.WriteString("kind", ModelMetadataCodec.NormalizationStandard);
            w.WriteStartArray("mean");
            foreach (float v in n.Mean) w.WriteNumberValue(v);
            w.WriteEndArray();
            w.WriteStartArray("std");
            foreach (float v in n.Std) w.WriteNumberValue(v);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("normalization");
        }
        w.WriteStartObject("extra");
        foreach (var (key, value) in metadata.Extra.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(key, value);
        w.WriteEndObject();
    }

    /// <summary>Writes a text file through a temporary file and a rename, so a failure or a cancellation never leaves half a file.</summary>
    internal static void WriteFileAtomically(string path, Action<TextWriter> write)
    {
        string full = Path.GetFullPath(path);
        string temp = full + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            using (var writer = new StreamWriter(temp, append: false, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false)))
                write(writer);
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}

/// <summary>A user error in a command's arguments or inputs; its message is printed as is.</summary>
internal sealed class CliException(string message) : Exception(message);
