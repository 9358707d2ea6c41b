using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>Keeps the silos' log lines of chosen categories in memory, so a failing test can print them.</summary>
internal sealed class CapturedLog : ILoggerProvider
{
    public static readonly ConcurrentQueue<string> Lines = new();

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName);

    public void Dispose() { }

    private sealed class Logger(string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) =>
            (logLevel >= LogLevel.Information || category.StartsWith("LstmOrleans", StringComparison.Ordinal)) && (category.Contains("Reminder", StringComparison.OrdinalIgnoreCase) || category.Contains("Training", StringComparison.Ordinal));

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            Lines.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel} {category}: {formatter(state, exception)} {exception?.GetType().Name} {exception?.Message}");
        }
    }
}
