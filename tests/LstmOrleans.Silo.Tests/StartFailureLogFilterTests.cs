using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Silo.Tests;

/// <summary>
/// <see cref="SiloHostingExtensions.AddSiloStartFailureLogFilters"/> keeps the teardown of a start that failed to one
/// line: Orleans' in-memory reminder table retries its grain through a Polly pipeline (category "Polly") while the
/// stopping silo has no active node for it, and its warnings and error carried stack traces into the output of a silo
/// whose HTTP port was taken (a CI run of SiloStartupFailureTests). While the silo runs, the same entries are kept.
/// </summary>
public sealed class StartFailureLogFilterTests
{
    [Theory]
    [InlineData("Polly")]
    [InlineData("Orleans.Runtime.ReminderService.LocalReminderService")]
    public void Teardown_entries_of_an_abandoned_start_are_dropped_and_kept_otherwise(string category)
    {
        foreach (bool abandoned in new[] { true, false })
        {
            var captured = new List<string>();
            using (var factory = LoggerFactory.Create(b =>
            {
                b.SetMinimumLevel(LogLevel.Information);
                b.AddProvider(new Capture(captured));
                b.AddSiloStartFailureLogFilters(starting: () => false, abandoned: () => abandoned);
            }))
            {
                var logger = factory.CreateLogger(category);
                logger.LogWarning(new InvalidOperationException("no active nodes"), "Execution attempt failed");
                logger.LogError(new InvalidOperationException("no active nodes"), "Execution attempt failed");
                logger.LogCritical("still shown");
            }
            Assert.Equal(abandoned ? ["still shown"] : ["Execution attempt failed", "Execution attempt failed", "still shown"], captured);
        }
    }

    private sealed class Capture(List<string> entries) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(entries);

        public void Dispose() { }

        private sealed class Logger(List<string> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                entries.Add(formatter(state, exception));
        }
    }
}
