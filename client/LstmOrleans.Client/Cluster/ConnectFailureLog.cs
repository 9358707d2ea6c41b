using System.Security.Authentication;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Client.Cluster;

/// <summary>
/// Keeps what Orleans logs about failed connection attempts while the client connects. Orleans retries a gateway
/// that refuses the client until the connect timeout and then reports only the timeout, and the command's quiet
/// logging hides its warnings: a client with a certificate the silo does not trust, without TLS to a TLS silo, or
/// with another cluster id was told that "no gateway answered", as if no silo ran. <see cref="ClusterConnection"/>
/// adds <see cref="Reason"/> to the timeout message.
/// </summary>
internal sealed class ConnectFailureLog : ILoggerProvider
{
    private volatile Exception? _tls;
    private volatile Exception? _closed;
    private volatile Exception? _last;

    /// <summary>
    /// Why the attempts failed, most telling first: the client's TLS handshake failed (its own reason), or a gateway
    /// took the connection and closed it (the silo refused the client: TLS or cluster id; the silo logs which), or the
    /// last failure's innermost message; null when no attempt failed with an exception.
    /// </summary>
    public string? Reason =>
        _tls is { } tls ? $"the TLS handshake with the gateway failed: {tls.Message.TrimEnd('.')} (--tls-trust must name the silos' certificate or their CA)"
        : _closed is not null ? "a gateway accepted the connection and closed it: the silo refused this client. Check --cluster-id and " +
                                "--service-id, and for a silo with TLS --tls, --tls-certificate and --tls-trust (the silo's log says which)"
        : _last is { } last ? Innermost(last).Message
        : null;

    /// <summary>True when some gateway answered at the TCP level, so "start a silo" is not the advice to give.</summary>
    public bool GatewayAnswered => _tls is not null || _closed is not null;

    public ILogger CreateLogger(string categoryName) => new Recorder(this);

    public void Dispose() { }

    private void Record(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is AuthenticationException)
            {
                _tls = e;
                return;
            }
        }
        if (ClosedByGateway(exception)) _closed = exception;
        _last = exception;
    }

    /// <summary>
    /// The gateway took the connection and then closed it. Depending on where the close lands, Orleans reports an
    /// aborted connection, or (when the silo closes during the connection preamble, as a TLS silo does to a client
    /// without TLS) an InvalidOperationException "Connection terminated prematurely" from its preamble read: a type
    /// that says nothing, so its message is what tells it apart.
    /// </summary>
    internal static bool ClosedByGateway(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is ConnectionAbortedException) return true;
            if (e is InvalidOperationException && e.Message.StartsWith("Connection terminated prematurely", StringComparison.Ordinal)) return true;
        }
        return false;
    }

    private static Exception Innermost(Exception exception)
    {
        while (exception.InnerException is not null) exception = exception.InnerException;
        return exception;
    }

    private sealed class Recorder(ConnectFailureLog log) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (exception is not null && logLevel >= LogLevel.Warning) log.Record(exception);
        }
    }
}
