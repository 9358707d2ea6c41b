using LstmOrleans.Grains.Training;
using Microsoft.Extensions.Options;
using Orleans.Configuration;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>The record-write retry backoff is checked at start: a wait a timer cannot take would fail every retry.</summary>
public sealed class TrainingGrainOptionsTests
{
    private static string[] Errors(Action<TrainingGrainOptions> change)
    {
        var options = new TrainingGrainOptions();
        change(options);
        return new TrainingGrainOptionsValidator(Options.Create(new ReminderOptions())).Validate(null, options).Failures?.ToArray() ?? [];
    }

    [Fact]
    public void The_record_retry_backoff_must_be_positive_increasing_and_at_most_a_day()
    {
        Assert.Empty(Errors(_ => { }));
        Assert.Empty(Errors(o => { o.FirstRecordRetryDelay = TimeSpan.FromHours(1); o.MaxRecordRetryDelay = TimeSpan.FromDays(1); }));

        Assert.Contains("FirstRecordRetryDelay must be positive.", Errors(o => o.FirstRecordRetryDelay = TimeSpan.Zero));
        const string max = "MaxRecordRetryDelay must be at least FirstRecordRetryDelay and at most a day.";
        Assert.Contains(max, Errors(o => o.MaxRecordRetryDelay = TimeSpan.FromMilliseconds(500)));
        // Task.Delay refuses waits past ~49.7 days, and each wait doubles up to the maximum.
        Assert.Contains(max, Errors(o => o.MaxRecordRetryDelay = TimeSpan.FromDays(60)));
    }
}
