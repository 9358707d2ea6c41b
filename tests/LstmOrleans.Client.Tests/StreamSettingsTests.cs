using LstmOrleans.Grains;
using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Xunit;

namespace LstmOrleans.Client.Tests;

/// <summary>
/// The silo host's <c>Streams</c> section reaches every stream grain's <see cref="StreamGrainOptions"/>, and bad values
/// stop the silo with the same list of errors as every other setting. Builds the host without starting it.
/// </summary>
public sealed class StreamSettingsTests
{
    private static SiloSettings Load(Dictionary<string, string?> values) =>
        SiloSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    private static StreamGrainOptions OptionsOfHostBuiltWith(SiloSettings settings)
    {
        settings.Storage.Provider = StorageSettings.Memory;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleans(silo => silo.UseLstmOrleansSilo(settings));
        using var host = builder.Build();
        return host.Services.GetRequiredService<IOptions<StreamGrainOptions>>().Value;
    }

    // Every Streams setting, each different from its default.
    private static Dictionary<string, string?> EveryStreamSetting() => new()
    {
        ["Streams:PersistEverySteps"] = "5",
        ["Streams:PersistInterval"] = "00:00:02",
        ["Streams:HistoryCapacity"] = "100",
        ["Streams:HistoryChunkSize"] = "10",
        ["Streams:MaxBatchSize"] = "77",
        ["Streams:IntervalZ"] = "2.5",
        ["Streams:ErrorSmoothing"] = "0.2",
        ["Streams:OffloadMultiplyAdds"] = "12345",
        ["Streams:MaxTimestampAhead"] = "02:00:00",
    };

    [Fact]
    public void Every_stream_setting_reaches_the_grains_options()
    {
        // Each value differs from its default, so a setting that is not passed on fails its assertion.
        var settings = Load(EveryStreamSetting());
        var options = OptionsOfHostBuiltWith(settings);
        var defaults = new StreamGrainOptions();
        Assert.Equal((5, TimeSpan.FromSeconds(2), 100, 10, 77), (options.PersistEverySteps, options.PersistInterval, options.HistoryCapacity, options.HistoryChunkSize, options.MaxBatchSize));
        Assert.Equal((2.5, 0.2, 12345L), (options.IntervalZ, options.ErrorSmoothing, options.OffloadMultiplyAdds));
        Assert.Equal(TimeSpan.FromHours(2), options.MaxTimestampAhead);
        Assert.NotEqual((defaults.PersistEverySteps, defaults.PersistInterval, defaults.HistoryCapacity, defaults.HistoryChunkSize, defaults.MaxBatchSize),
            (options.PersistEverySteps, options.PersistInterval, options.HistoryCapacity, options.HistoryChunkSize, options.MaxBatchSize));
    }

    [Fact]
    public void A_stream_option_added_later_cannot_be_forgotten_by_the_host()
    {
        // The host copies StreamGrainOptions property by property: every settable property, now or added later, must be
        // set by EveryStreamSetting (differ from its default) and arrive unchanged in the grains' options.
        var settings = Load(EveryStreamSetting());
        var options = OptionsOfHostBuiltWith(settings);
        var defaults = new StreamGrainOptions();
        var properties = typeof(StreamGrainOptions).GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
            .Where(p => p.CanWrite).ToList();
        Assert.True(properties.Count >= 9, "the reflection found fewer options than the nine of this writing");
        foreach (var property in properties)
        {
            Assert.True(!Equals(property.GetValue(defaults), property.GetValue(settings.Streams)), $"Streams:{property.Name} is not set by this test");
            Assert.True(Equals(property.GetValue(settings.Streams), property.GetValue(options)), $"Streams:{property.Name} does not reach the grains");
        }
    }

    [Fact]
    public void Without_a_streams_section_the_grains_get_the_defaults()
    {
        var options = OptionsOfHostBuiltWith(Load([]));
        var defaults = new StreamGrainOptions();
        Assert.Equal(1, options.PersistEverySteps); // acknowledged means durable unless configured otherwise
        Assert.Equal((defaults.PersistInterval, defaults.HistoryCapacity, defaults.HistoryChunkSize, defaults.MaxBatchSize, defaults.IntervalZ, defaults.ErrorSmoothing, defaults.OffloadMultiplyAdds),
            (options.PersistInterval, options.HistoryCapacity, options.HistoryChunkSize, options.MaxBatchSize, options.IntervalZ, options.ErrorSmoothing, options.OffloadMultiplyAdds));
        Assert.Equal(TimeSpan.FromDays(1), options.MaxTimestampAhead);   // on by default: one clock glitch must not poison a stream
    }

    [Fact]
    public void Bad_stream_settings_are_listed_with_their_keys()
    {
        var failure = Assert.Throws<SiloConfigurationException>(() => Load(new()
        {
            ["Streams:PersistEverySteps"] = "0",
            ["Streams:HistoryChunkSize"] = "5000",
            ["Streams:ErrorSmoothing"] = "1.5",
            ["Streams:MaxTimestampAhead"] = "-01:00:00",
            ["Cluster:SiloPort"] = "70000",
        }));
        Assert.Contains("Streams:PersistEverySteps must be at least 1.", failure.Errors);
        Assert.Contains("Streams:HistoryChunkSize must be between 1 and 4096.", failure.Errors);
        Assert.Contains("Streams:ErrorSmoothing must be in (0, 1].", failure.Errors);
        Assert.Contains("Streams:MaxTimestampAhead must be positive, or 00:00:00 for no limit; got -01:00:00.", failure.Errors);
        Assert.Contains(failure.Errors, e => e.StartsWith("Cluster:SiloPort", StringComparison.Ordinal));
    }
}
