using Microsoft.Extensions.Logging;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// Wraps the silo's logger factory and drops the log entries of Orleans that a subclass recognises as false alarms, in
/// the categories it watches; every other entry, and every other category's logger, is the inner factory's own. The
/// factory is wrapped rather than each provider, so providers added later are covered too. The filters chain: each
/// wraps the next.
/// </summary>
internal abstract class FalseAlarmLogFilter(ILoggerFactory inner) : ILoggerFactory
{
    /// <summary>Whether entries of <paramref name="categoryName"/> may be false alarms (asked once per logger).</summary>
    protected abstract bool Watches(string categoryName);

    /// <summary>Whether an entry of a watched category is a false alarm to drop.</summary>
    protected abstract bool IsFalseAlarm<TState>(EventId eventId, TState state, Exception? exception);

    public ILogger CreateLogger(string categoryName)
    {
        var logger = inner.CreateLogger(categoryName);
        return Watches(categoryName) ? new FilteredLogger(logger, this) : logger;
    }

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    public void Dispose() => inner.Dispose();

    private sealed class FilteredLogger(ILogger inner, FalseAlarmLogFilter filter) : ILogger
    {
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!filter.IsFalseAlarm(eventId, state, exception))
                inner.Log(logLevel, eventId, state, exception, formatter);
        }

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);
    }
}
