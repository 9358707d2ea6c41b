using LstmOrleans.Client.Cluster;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>
/// Which failed connection attempts mean "a gateway took the connection and closed it" (the silo refused the client),
/// so the client does not advise starting a silo. A client without TLS talking to a TLS silo sees either, depending on
/// where the silo's close lands: CI saw the preamble's "Connection terminated prematurely" and got the wrong advice.
/// </summary>
public sealed class ConnectFailureLogTests
{
    [Fact]
    public void A_gateway_that_closes_during_the_preamble_or_aborts_counts_as_answered()
    {
        Assert.True(ConnectFailureLog.ClosedByGateway(new ConnectionAbortedException()));
        Assert.True(ConnectFailureLog.ClosedByGateway(new InvalidOperationException("Connection terminated prematurely")));
        Assert.True(ConnectFailureLog.ClosedByGateway(new Exception("wrapped", new InvalidOperationException("Connection terminated prematurely"))));

        Assert.False(ConnectFailureLog.ClosedByGateway(new InvalidOperationException("something else")));
        Assert.False(ConnectFailureLog.ClosedByGateway(new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionRefused)));
    }

    [Fact]
    public void A_preamble_cut_short_gives_the_refused_advice_not_start_a_silo()
    {
        var log = new ConnectFailureLog();
        log.CreateLogger("Orleans.Messaging.GatewayManager").LogWarning(new InvalidOperationException("Connection terminated prematurely"), "connection failed");
        Assert.True(log.GatewayAnswered);
        Assert.Contains("the silo refused this client", log.Reason);

        var nobody = new ConnectFailureLog();
        nobody.CreateLogger("Orleans.Messaging.GatewayManager").LogWarning(new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionRefused), "connection failed");
        Assert.False(nobody.GatewayAnswered);
    }
}
