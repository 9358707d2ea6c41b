using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// Drops Orleans 10.4's false stall warning at silo start and passes every other log entry through unchanged.
/// <para>
/// <c>Watchdog.Start</c> starts its platform check thread before it sets the timestamp the participant check is measured
/// from. When that thread runs first, it measures from timestamp 0 (the machine's boot) and logs
/// <c>warn: Orleans.Runtime.Watchdog[100150] Participant check thread has not completed for {machine uptime}</c>, at
/// nearly every start. The same category and event id carry the real stall warnings (".NET Runtime Platform stalled",
/// a participant check that really hangs), so no category or level filter can tell them apart; the elapsed time can.
/// </para>
/// <para>
/// A real participant stall is measured from the watchdog's start at the earliest, and the watchdog's logger comes from
/// this factory, so a real stall is always shorter than this factory has existed. An entry that reports more than that
/// is the race and is dropped. Only the one category is wrapped: every other logger is the inner factory's own.
/// </para>
/// </summary>
internal sealed class WatchdogStartRaceFilter : FalseAlarmLogFilter
{
    internal const string WatchdogCategory = "Orleans.Runtime.Watchdog";
    /// <summary>Orleans' <c>ErrorCode.SiloHeartbeatTimerStalled</c>, shared by both of its stall warnings.</summary>
    internal const int StallEventId = 100150;
    private const string ParticipantStallFormat = "Participant check thread has not completed for {TimeSinceLastTick}";
    private const string ElapsedKey = "TimeSinceLastTick";

    private readonly Func<TimeSpan> _age;

    public WatchdogStartRaceFilter(ILoggerFactory inner) : this(inner, StopwatchSince(Stopwatch.GetTimestamp())) { }

    /// <param name="age">How long the logging has existed; tests set it.</param>
    internal WatchdogStartRaceFilter(ILoggerFactory inner, Func<TimeSpan> age) : base(inner) => _age = age;

    // Stopwatch is the clock the watchdog measures with (TimeProvider.System), so both sides count from the same zero.
    private static Func<TimeSpan> StopwatchSince(long start) => () => Stopwatch.GetElapsedTime(start);

    protected override bool Watches(string categoryName) => string.Equals(categoryName, WatchdogCategory, StringComparison.Ordinal);

    protected override bool IsFalseAlarm<TState>(EventId eventId, TState state, Exception? exception) =>
        IsStartRaceFalseAlarm(eventId, state, _age());

    /// <summary>
    /// Whether an entry of the watchdog's logger is the start race's participant stall: event 100150 with the participant
    /// message, reporting longer than <paramref name="loggingAge"/>. Read from the structured state Orleans' generated
    /// logging method passes (the message template and the TimeSpan), not from the formatted text.
    /// </summary>
    internal static bool IsStartRaceFalseAlarm<TState>(EventId eventId, TState state, TimeSpan loggingAge)
    {
        if (eventId.Id != StallEventId || state is not IReadOnlyList<KeyValuePair<string, object?>> values)
            return false;
        bool participantMessage = false;
        TimeSpan? elapsed = null;
        for (int i = 0; i < values.Count; i++)
        {
            var (key, value) = values[i];
            if (key == "{OriginalFormat}" && value is string format)
                participantMessage = format.StartsWith(ParticipantStallFormat, StringComparison.Ordinal);
            else if (key == ElapsedKey && value is TimeSpan t)
                elapsed = t;
        }
        return participantMessage && elapsed > loggingAge;
    }
}
