using LstmOrleans.Abstractions;
using LstmOrleans.Grains;
using LstmOrleans.Grains.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Hosting;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// The settings a training grain uses before it is configured (<see cref="TrainingGrainOptions.DefaultSettings"/>) are
/// held to the check the grain applies to the settings a user gives, at the silo's start.
/// </summary>
public sealed class TrainingDefaultSettingsTests
{
    /// <summary>So that a future edit of the built-in defaults cannot ship settings the grain would refuse from a user.</summary>
    [Fact]
    public void The_built_in_defaults_pass_the_checks_the_grain_applies_to_a_users_settings()
    {
        var defaults = new TrainingGrainOptions().DefaultSettings;
        Assert.Same(TrainingSettings.Default, defaults);
        var orleansMinimum = new ReminderOptions().MinimumReminderPeriod;
        Assert.Equal(TimeSpan.FromMinutes(1), orleansMinimum);
        Assert.Null(TrainingSettingsValidation.Check(defaults, orleansMinimum));
        // The grain's other check: a round's window and held-out part fit in what a stream retains by default.
        Assert.True(TrainingRound.IsUsable(Math.Min(defaults.MaxRowsPerStream, new StreamGrainOptions().HistoryCapacity), defaults));
        var validator = new TrainingGrainOptionsValidator(Options.Create(new ReminderOptions()));
        Assert.True(validator.Validate(null, new TrainingGrainOptions()).Succeeded);
    }

    private static async Task StartAsync(TrainingSettings defaults, TimeSpan? minimumReminderPeriod)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLstmOrleansTraining(o => o.DefaultSettings = defaults);
        if (minimumReminderPeriod is { } minimum) builder.Services.Configure<ReminderOptions>(o => o.MinimumReminderPeriod = minimum);
        using var host = builder.Build();
        await host.StartAsync();
        await host.StopAsync();
    }

    /// <summary>
    /// A default period under the reminder minimum was accepted at start (only user settings were refused), and the
    /// schedule then silently ran its rounds a minute or more apart.
    /// </summary>
    [Fact]
    public async Task A_default_period_below_the_minimum_reminder_period_stops_the_start_naming_the_minimum()
    {
        var tooShort = TrainingSettings.Default with { Period = TimeSpan.FromSeconds(30) };
        var refused = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(tooShort, minimumReminderPeriod: null));
        Assert.Contains("DefaultSettings: Period must be zero (no periodic rounds) or at least 00:01:00", refused.Message);
        Assert.Contains("got 00:00:30", refused.Message);

        // The silo's own minimum is what counts, as for a user's settings; zero (no periodic rounds) is always valid.
        await StartAsync(tooShort, minimumReminderPeriod: TimeSpan.FromSeconds(10));
        await StartAsync(TrainingSettings.Default with { Period = TimeSpan.Zero }, minimumReminderPeriod: null);
    }
}
