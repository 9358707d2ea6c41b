using System.CommandLine;
using LstmOrleans.Abstractions;

namespace LstmOrleans.Client.Commands;

/// <summary>models, create-model, rollback: model administration on the cluster.</summary>
internal static class ModelClusterCommands
{
    public static Command Models()
    {
        var cluster = new ClusterOptions();
        var names = new Argument<string[]>("MODEL") { Description = "Model names (default: the default model).", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("models", "Show models: configuration, active version and retained versions.") { names };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var list = result.GetValue(names) is { Length: > 0 } given ? given : [LstmOrleansNames.DefaultModelName];
            foreach (var name in list)
            {
                var grain = connection.Grains.GetGrain<IModelGrain>(name);
                var info = await grain.GetInfoAsync();
                var c = info.Config;
                Console.WriteLine($"model {info.Name}: D={c.InputSize} H={c.HiddenSize} L={c.Layers} K={c.Horizons} " +
                    $"normalization {c.Normalization}, {info.ParameterCount} parameters, active v{info.ActiveVersion} (latest v{info.LatestVersion})");
                foreach (var v in await grain.ListVersionsAsync())
                    Console.WriteLine($"  {(v.Version == info.ActiveVersion ? "*" : " ")} v{v.Version}  {v.PublishedAt:u}  {v.Description}");
            }
            return 0;
        }));
        return command;
    }

    public static Command CreateModel()
    {
        var cluster = new ClusterOptions();
        var name = new Argument<string>("MODEL") { Description = "Model name.", DefaultValueFactory = _ => LstmOrleansNames.DefaultModelName };
        var inputs = new Option<int>("--inputs") { Description = "Features per observation (D).", DefaultValueFactory = _ => 1 };
        var hidden = new Option<int>("--hidden") { Description = "Hidden size (H).", DefaultValueFactory = _ => 16 };
        var layers = new Option<int>("--layers") { Description = "LSTM layers (L).", DefaultValueFactory = _ => 1 };
        var horizons = new Option<int>("--horizons") { Description = "Forecast horizons (K).", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Seed of the initial weights.", DefaultValueFactory = _ => 0 };
        var command = new Command("create-model", "Create a model on the cluster (idempotent for an equal configuration).") { name, inputs, hidden, layers, horizons, seed };
        cluster.AddTo(command);
        command.SetAction((result, ct) => CommandSupport.WithClusterAsync(cluster, result, ct, async connection =>
        {
            var config = new ModelConfig(result.GetValue(inputs), result.GetValue(hidden), result.GetValue(layers), result.GetValue(horizons), [],
                Seed: result.GetValue(seed));
            var info = await connection.Grains.GetGrain<IModelGrain>(result.GetValue(name)!).CreateAsync(config);
            Console.WriteLine($"model {info.Name}: active v{info.ActiveVersion}, {info.ParameterCount} parameters");
            return 0;
        }));
        return command;
    }

    public static Command Rollback()
    {
        var cluster = new ClusterOptions();
        var name = new Argument<string>("MODEL") { Description = "Model name." };
        var version = new Argument<long>("VERSION") { Description = "Retained version to make active." };
        version.Validators.Add(r => { if (r.GetValueOrDefault<long>() < 1) r.AddError("VERSION must be a positive version number."); });
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
}
