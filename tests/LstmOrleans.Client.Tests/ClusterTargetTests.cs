using System.Net;
using LstmOrleans.Client.Cluster;
using Xunit;

namespace LstmOrleans.Client.Tests;

public class ClusterTargetTests
{
    private static ClusterTarget Parse(string spec) => ClusterTarget.Parse(spec, "c", "s", TimeSpan.FromSeconds(1));

    [Fact]
    public void Gateways_may_be_named_by_host_name()
    {
        // The README's --cluster host:port: a machine's name, as a multi-machine cluster is addressed, not only an IP.
        var host = Dns.GetHostName();
        var gateways = Parse($"{host}:30001,127.0.0.1:30002").Gateways;
        Assert.Equal(2, gateways.Count);
        Assert.Equal(30001, gateways[0].Port);
        Assert.Contains(gateways[0].Address, Dns.GetHostAddresses(host));
    }

    [Fact]
    public void Addresses_and_localhost_still_parse()
    {
        Assert.Equal([IPEndPoint.Parse("127.0.0.1:30000"), IPEndPoint.Parse("10.0.0.2:30001")], Parse("localhost,10.0.0.2:30001").Gateways);
    }

    [Theory]
    [InlineData("nonsense", "not a gateway address")]
    [InlineData("silo1:0", "not a gateway address")]
    [InlineData("silo1:99999", "not a gateway address")]
    [InlineData("no-such-host.invalid:30000", "does not resolve")]
    public void Bad_gateways_are_argument_errors(string spec, string fragment)
    {
        var error = Assert.Throws<ArgumentException>(() => Parse(spec));
        Assert.Contains(fragment, error.Message);
    }
}
