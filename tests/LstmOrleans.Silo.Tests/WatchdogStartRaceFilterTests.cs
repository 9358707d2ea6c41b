using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Silo.Tests;

/// <summary>
/// <see cref="WatchdogStartRaceFilter"/> drops Orleans' start-race warning ("Participant check thread has not completed
/// for {machine uptime}") and nothing else: not a real participant stall, not the platform stall that shares its event
/// id, not other events or categories, and scopes and levels behave as without it. The entries are logged with the
/// event id, level and message templates of Orleans 10.4.2's Watchdog, through LoggerMessage as Orleans' generated
/// methods do, so the filter sees the same structured state.
/// </summary>
public sealed class WatchdogStartRaceFilterTests
{
    private const string Watchdog = "Orleans.Runtime.Watchdog";

    private static readonly Action<ILogger, TimeSpan, Exception?> ParticipantStalled = LoggerMessage.Define<TimeSpan>(
        LogLevel.Warning, new EventId(100150, "LogWarningParticipantCheckThreadStalled"),
        "Participant check thread has not completed for {TimeSinceLastTick}, potentially indicating lock contention or deadlock, CPU starvation, or another execution anomaly.");

    private static readonly Action<ILogger, TimeSpan, TimeSpan, long, int, int, int, Exception?> PlatformStalled =
        LoggerMessage.Define<TimeSpan, TimeSpan, long, int, int, int>(
            LogLevel.Warning, new EventId(100150, "LogWarningSiloHeartbeatTimerStalled"),
            ".NET Runtime Platform stalled for {TimeSinceLastTick}. Total GC Pause duration during that period: {PauseDurationSinceLastTick}. We are now using a total of {TotalMemory}MB memory. Collection counts per generation: 0: {GCGen0Count}, 1: {GCGen1Count}, 2: {GCGen2Count}");

    /// <summary>What this machine's race logged: its uptime.</summary>
    private static readonly TimeSpan Uptime = new(0, 10, 47, 28, 470);

    private static readonly TimeSpan LoggingAge = TimeSpan.FromMinutes(5);

    private static (WatchdogStartRaceFilter Factory, CapturedLog Log) Filtered(TimeSpan age)
    {
        var log = new CapturedLog();
        var inner = LoggerFactory.Create(b => b.AddProvider(log).SetMinimumLevel(LogLevel.Information));
        return (new WatchdogStartRaceFilter(inner, () => age), log);
    }

    [Fact]
    public void The_start_race_warning_longer_than_the_logging_has_existed_is_dropped()
    {
        var (factory, log) = Filtered(LoggingAge);
        using (factory)
            ParticipantStalled(factory.CreateLogger(Watchdog), Uptime, null);

        Assert.Empty(log.Entries);
    }

    [Fact]
    public void A_real_participant_stall_shorter_than_the_logging_has_existed_is_kept()
    {
        var (factory, log) = Filtered(LoggingAge);
        var stall = TimeSpan.FromSeconds(40);
        using (factory)
            ParticipantStalled(factory.CreateLogger(Watchdog), stall, null);

        var entry = Assert.Single(log.Entries);
        Assert.Equal((Watchdog, LogLevel.Warning, 100150), (entry.Category, entry.Level, entry.EventId));
        Assert.StartsWith($"Participant check thread has not completed for {stall}", entry.Message);
    }

    [Fact]
    public void The_platform_stall_with_the_same_event_id_is_kept_however_long()
    {
        var (factory, log) = Filtered(LoggingAge);
        using (factory)
            PlatformStalled(factory.CreateLogger(Watchdog), Uptime, TimeSpan.Zero, 100, 1, 0, 0, null);

        var entry = Assert.Single(log.Entries);
        Assert.Equal(100150, entry.EventId);
        Assert.StartsWith($".NET Runtime Platform stalled for {Uptime}", entry.Message);
    }

    [Fact]
    public void Other_events_and_categories_pass_through_with_their_scopes_and_levels()
    {
        var (factory, log) = Filtered(LoggingAge);
        using (factory)
        {
            var watchdog = factory.CreateLogger(Watchdog);
            // The same message under another category, and another event of the watchdog's own.
            ParticipantStalled(factory.CreateLogger("LstmOrleans.Other"), Uptime, null);
            using (watchdog.BeginScope("scope {Name}", "outer"))
                watchdog.Log(LogLevel.Warning, new EventId(100151), "Health check participant {Participant} has thrown", "p");
            Assert.True(watchdog.IsEnabled(LogLevel.Information));
            Assert.False(watchdog.IsEnabled(LogLevel.Debug));
            watchdog.LogDebug("below the minimum level");
        }

        Assert.Collection(log.Entries,
            e => Assert.Equal(("LstmOrleans.Other", 100150), (e.Category, e.EventId)),
            e =>
            {
                Assert.Equal((Watchdog, 100151, "Health check participant p has thrown"), (e.Category, e.EventId, e.Message));
                Assert.Equal(["scope outer"], e.Scopes);
            });
    }

    [Fact]
    public void The_silo_hosts_log_filters_install_it_for_the_real_clock()
    {
        // AddLstmOrleansLogFilters is what the silo host, the bench's silo process and the demo's in-process silo use.
        // Providers added after it are covered too: the silo's configuration can add more.
        var entries = CapturedLog.ThroughSiloLogFilters(factory =>
        {
            // Orleans' Watchdog takes an ILogger<Watchdog>; this category name is the same.
            var watchdog = factory.CreateLogger(Watchdog);
            // The race reports the machine's uptime; this process (and its logging) cannot have run a year.
            ParticipantStalled(watchdog, TimeSpan.FromDays(365), null);
            // A stall that short cannot be told from a real one after a few ms of logging: it is kept.
            ParticipantStalled(watchdog, TimeSpan.Zero, null);
        });

        var entry = Assert.Single(entries);
        Assert.StartsWith($"Participant check thread has not completed for {TimeSpan.Zero}", entry.Message);
    }
}
