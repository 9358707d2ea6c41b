using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>
/// The storage choices and their connection strings are checked when the silo's settings load, so a missing or
/// malformed connection string is listed with its key instead of failing the silo later inside a client library;
/// so is an API key no request could carry.
/// </summary>
public sealed class StorageSettingsTests
{
    private static SiloConfigurationException LoadFails(Dictionary<string, string?> values) =>
        Assert.Throws<SiloConfigurationException>(() => SiloSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build()));

    [Theory]
    [InlineData("Storage:Provider", "Redis", "ConnectionStrings:Redis is required")]
    [InlineData("Storage:Provider", "REDIS", "ConnectionStrings:Redis is required")]
    [InlineData("Reminders:Provider", "Redis", "ConnectionStrings:Redis is required")]
    [InlineData("Cluster:Clustering", "Redis", "ConnectionStrings:Redis is required")]
    [InlineData("Storage:Provider", "Postgres", "ConnectionStrings:Postgres is required")]
    public void A_provider_spelled_in_another_case_still_needs_its_connection_string(string key, string value, string error)
    {
        // Accepted as a choice in any case (and used so by the host), so it must be checked as one.
        var failure = LoadFails(new() { [key] = value });
        Assert.Contains(failure.Errors, e => e.StartsWith(error, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Storage:Provider", "redis", "ConnectionStrings:Redis", "127.0.0.1:6379,noSuchOption=1")]
    [InlineData("Cluster:Clustering", "redis", "ConnectionStrings:Redis", "127.0.0.1:6379,connectTimeout=soon")]
    [InlineData("Storage:Provider", "postgres", "ConnectionStrings:Postgres", "Host=127.0.0.1;NoSuchKeyword=1")]
    // An endpoint Parse cannot read is skipped, leaving none: the start failed with "No endpoints specified".
    [InlineData("Cluster:Clustering", "redis", "ConnectionStrings:Redis", "127.0.0.1:637x")]
    [InlineData("Reminders:Provider", "redis", "ConnectionStrings:Redis", "abortConnect=false")]
    public void A_malformed_connection_string_is_listed_with_its_key(string key, string value, string connectionKey, string connectionString)
    {
        var failure = LoadFails(new() { [key] = value, [connectionKey] = connectionString });
        Assert.Contains(failure.Errors, e => e.StartsWith($"{connectionKey} is malformed: ", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("   ")]
    [InlineData(" s3cret")]
    [InlineData("s3cret\t")]
    [InlineData("s3\u0001cret")]
    public void An_api_key_no_request_could_carry_is_refused(string key)
    {
        // Header values arrive trimmed and without control characters: with this key every call would be a 401.
        var failure = LoadFails(new() { ["Http:ApiKey"] = key });
        Assert.Contains(failure.Errors, e => e.StartsWith("Http:ApiKey must not be blank", StringComparison.Ordinal));
        Assert.Equal("s3cret", SiloSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Http:ApiKey"] = "s3cret" }).Build()).Http.ApiKey);
    }

    [Fact]
    public void Well_formed_connection_strings_load()
    {
        var settings = SiloSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "Postgres",
            ["Reminders:Provider"] = "redis",
            ["ConnectionStrings:Redis"] = "127.0.0.1:6379,abortConnect=false",
            ["ConnectionStrings:Postgres"] = "Host=127.0.0.1;Port=5432;Username=postgres",
        }).Build());
        Assert.Equal("Postgres", settings.Storage.Provider);
    }
}
