using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>
/// Http:Urls and Dashboard:Urls are read the way Kestrel reads a listen URL: the wildcard forms operators use to listen
/// on every interface load, and what Kestrel would throw on at start (or quietly turn into port 80) is a configuration
/// error naming the URL.
/// </summary>
public sealed class HttpUrlsSettingsTests
{
    private static SiloSettings Load(Dictionary<string, string?> values) =>
        SiloSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    private static SiloConfigurationException LoadFails(Dictionary<string, string?> values) =>
        Assert.Throws<SiloConfigurationException>(() => Load(values));

    [Theory]
    [InlineData("http://*:5080")]
    [InlineData("http://+:5080")]
    [InlineData("http://0.0.0.0:5080")]
    [InlineData("http://[::]:5080")]
    [InlineData("HTTP://*:5080")]
    [InlineData("https://*:5443")]
    [InlineData("http://127.0.0.1:5080/")]
    [InlineData("http://localhost:5080")]
    [InlineData("http://[::1]:5080")]
    [InlineData("http://silo-1.example:5080")]
    [InlineData("http://127.0.0.1:0")]
    [InlineData("http://unix:/run/lstmorleans/api.sock")]
    [InlineData("http://*:5080; http://127.0.0.1:5090")]
    public void A_url_Kestrel_listens_on_loads(string urls) =>
        Assert.Equal(urls, Load(new() { ["Http:Urls"] = urls }).Http.Urls);

    [Theory]
    [InlineData("http://127.0.0.1:5080/api", "a listen URL takes no path")]
    [InlineData("http://*:5080/api", "a listen URL takes no path")]
    [InlineData("ftp://*:5080", "the scheme must be http or https")]
    [InlineData("*:5080", "not a URL")]
    [InlineData("http://:5080", "not a URL")]
    // Kestrel would take these as a host name and listen on port 80 of every interface.
    [InlineData("http://*:abc", "the host must be")]
    [InlineData("http://*:5080?x", "the host must be")]
    [InlineData("http://*:70000", "the port must be in 0..65535")]
    [InlineData("http://*:-1", "the port must be in 0..65535")]
    [InlineData("http://localhost:0", "port 0 (any free port) needs an IP address")]
    [InlineData("http://pipe:/lstmorleans", "named pipes")]
    public void A_url_Kestrel_would_refuse_or_misread_is_a_configuration_error(string url, string problem)
    {
        var failure = LoadFails(new() { ["Http:Urls"] = url });
        var error = Assert.Single(failure.Errors);
        Assert.StartsWith($"Http:Urls must be ';'-separated http(s) URLs without a path; got '{url}': ", error);
        Assert.Contains(problem, error);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ; ")]
    public void No_url_at_all_is_a_configuration_error(string urls) =>
        Assert.Contains(LoadFails(new() { ["Http:Urls"] = urls }).Errors, e => e.StartsWith("Http:Urls must name at least one http(s) URL", StringComparison.Ordinal));

    [Fact]
    public void The_dashboard_listener_may_be_a_wildcard_but_not_on_a_port_the_API_listens_on()
    {
        var settings = Load(new() { ["Dashboard:Enabled"] = "true", ["Http:Urls"] = "http://*:5080", ["Dashboard:Urls"] = "http://*:5081" });
        Assert.Equal("http://*:5081", settings.Dashboard.Urls);

        // The API's wildcard listener owns 5080 on every interface, loopback included.
        var clash = LoadFails(new() { ["Dashboard:Enabled"] = "true", ["Http:Urls"] = "http://*:5080", ["Dashboard:Urls"] = "http://127.0.0.1:5080" });
        Assert.Contains(clash.Errors, e => e.StartsWith("Dashboard:Urls port 5080 is also an Http:Urls port", StringComparison.Ordinal));

        // Its requests are told apart by the port they arrive on, so the port must be spelt out.
        var noPort = LoadFails(new() { ["Dashboard:Enabled"] = "true", ["Dashboard:Urls"] = "http://*" });
        Assert.Contains(noPort.Errors, e => e.StartsWith("Dashboard:Urls must be ';'-separated http(s) URLs with an explicit port", StringComparison.Ordinal));
    }
}
