using LstmOrleans.Grains.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Orleans.Hosting;

/// <summary>Registers the training grains' services on a silo.</summary>
public static class TrainingSiloBuilderExtensions
{
    /// <summary>
    /// Turns on training: the training and registry grains' options, and stream-to-registry reporting from every
    /// stream grain of this silo. Call it on every silo, with the same <see cref="TrainingGrainOptions.RegistryShards"/>.
    /// The silo must also provide a reminder service (e.g. <c>UseInMemoryReminderService()</c> for tests, Redis or ADO.NET
    /// reminders in production) so schedules survive restarts, besides what <c>AddLstmOrleans</c> needs.
    /// </summary>
    public static ISiloBuilder AddLstmOrleansTraining(this ISiloBuilder builder, Action<TrainingGrainOptions>? configure = null)
    {
        builder.Services.AddLstmOrleansTraining(configure);
        return builder;
    }

    /// <inheritdoc cref="AddLstmOrleansTraining(ISiloBuilder, Action{TrainingGrainOptions}?)"/>
    public static IServiceCollection AddLstmOrleansTraining(this IServiceCollection services, Action<TrainingGrainOptions>? configure = null)
    {
        var options = services.AddOptions<TrainingGrainOptions>().ValidateOnStart();
        if (configure is not null) options.Configure(configure);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TrainingGrainOptions>, TrainingGrainOptionsValidator>());
        if (services.Any(d => d.ServiceType == typeof(StreamTrainingFeedFactory))) return services;
        services.AddSingleton<StreamTrainingFeedFactory>();
        // It deactivates the silo's streams first when the silo stops (see StreamTrainingFeedFactory).
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<StreamTrainingFeedFactory>());
        return services;
    }
}
