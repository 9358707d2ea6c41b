using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Silo.Tests;

/// <summary>An entry that reached <see cref="CapturedLog"/>.</summary>
internal sealed record LogEntry(string Category, LogLevel Level, int EventId, string Message, string[] Scopes);

/// <summary>A provider that keeps what reaches it, scopes included (as the console's does, through ISupportExternalScope).</summary>
internal sealed class CapturedLog : ILoggerProvider, ISupportExternalScope
{
    private readonly List<LogEntry> _entries = [];
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    public IReadOnlyList<LogEntry> Entries { get { lock (_entries) return _entries.ToArray(); } }

    /// <summary>
    /// What reaches a provider added after the silo host's log filters (AddLstmOrleansLogFilters: the silo host, the
    /// bench's silo process and the demo's in-process silo use them) when <paramref name="log"/> logs through the factory.
    /// </summary>
    public static IReadOnlyList<LogEntry> ThroughSiloLogFilters(Action<ILoggerFactory> log)
    {
        var captured = new CapturedLog();
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddLstmOrleansLogFilters().AddProvider(captured));
        using (var provider = services.BuildServiceProvider())
            log(provider.GetRequiredService<ILoggerFactory>());
        return captured.Entries;
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    public void Dispose() { }

    private sealed class Logger(CapturedLog owner, string category) : ILogger
    {
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var scopes = new List<string>();
            owner._scopes.ForEachScope((scope, list) => list.Add(scope?.ToString() ?? ""), scopes);
            lock (owner._entries) owner._entries.Add(new LogEntry(category, logLevel, eventId.Id, formatter(state, exception), scopes.ToArray()));
        }

        public bool IsEnabled(LogLevel logLevel) => true;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => owner._scopes.Push(state);
    }
}
