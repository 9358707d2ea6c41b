using LstmOrleans.Silo.Hosting;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Silo.Tests;

/// <summary>
/// <see cref="StreamReadCancellationFilter"/> drops the two errors of a stream queue read cancelled by its own pulling
/// agent (what the first silo of a 3-silo start logged as the others joined) and nothing else: the same events with a
/// real failure, a cancellation in other events or categories, and other entries pass. The entries are logged with the
/// categories, event ids, levels and message templates of Orleans 10.4.2, through LoggerMessage as Orleans' generated
/// methods do.
/// </summary>
public sealed class StreamReadCancellationFilterTests
{
    /// <summary>The receiver's category as the 3-silo start logged it (queue sensors-7 of the provider "sensors").</summary>
    private const string Receiver =
        "Orleans.Providers.MemoryAdapterReceiver`1[[Orleans.Providers.DefaultMemoryMessageBodySerializer, Orleans.Streaming, Version=10.0.0.0, Culture=neutral, PublicKeyToken=null]].sensors.sensors-7";
    private const string Agent = "Orleans.Streams.sensors";

    private static readonly Action<ILogger, Exception?> ReceiverReadFailed = LoggerMessage.Define(
        LogLevel.Error, new EventId(200402, "LogErrorGetQueueMessagesAsync"), "Exception thrown in MemoryAdapterFactory.GetQueueMessagesAsync.");

    private static readonly Action<ILogger, int, string, Exception?> AgentRetrying = LoggerMessage.Define<int, string>(
        LogLevel.Error, new EventId(103312, "LogErrorRetrying"), "Exception while retrying the {RetryCounter}th time reading from queue {QueueId}");

    private static readonly Action<ILogger, string, int, Exception?> AgentGivingUp = LoggerMessage.Define<string, int>(
        LogLevel.Error, new EventId(103312, "LogErrorGivingUpReading"), "Giving up reading from queue {QueueId} after retry attempts {ReadLoopRetryMax}");

    private static (StreamReadCancellationFilter Factory, CapturedLog Log) Filtered()
    {
        var log = new CapturedLog();
        return (new StreamReadCancellationFilter(LoggerFactory.Create(b => b.AddProvider(log).SetMinimumLevel(LogLevel.Information))), log);
    }

    /// <summary>What the receiver's read throws when its agent cancels it: the grain call's cancellation.</summary>
    private static OperationCanceledException Cancelled() => new("The operation was canceled.");

    [Fact]
    public void A_read_cancelled_by_its_own_agent_is_not_logged()
    {
        var (factory, log) = Filtered();
        using (factory)
        {
            ReceiverReadFailed(factory.CreateLogger(Receiver), Cancelled());
            AgentRetrying(factory.CreateLogger(Agent), 0, "sensors-7-0xE0000007", Cancelled());
            AgentGivingUp(factory.CreateLogger(Agent), "sensors-7-0xE0000007", 6, new TaskCanceledException());
        }

        Assert.Empty(log.Entries);
    }

    [Fact]
    public void Real_read_failures_in_the_same_events_are_logged()
    {
        var (factory, log) = Filtered();
        using (factory)
        {
            ReceiverReadFailed(factory.CreateLogger(Receiver), new TimeoutException("Response did not arrive on time"));
            AgentRetrying(factory.CreateLogger(Agent), 1, "sensors-7-0xE0000007", new InvalidOperationException("queue grain failed"));
            AgentGivingUp(factory.CreateLogger(Agent), "sensors-7-0xE0000007", 6, new TimeoutException());
        }

        Assert.Collection(log.Entries,
            e => Assert.Equal((Receiver, LogLevel.Error, 200402), (e.Category, e.Level, e.EventId)),
            e => Assert.Equal((Agent, 103312, "Exception while retrying the 1th time reading from queue sensors-7-0xE0000007"), (e.Category, e.EventId, e.Message)),
            e => Assert.Equal((Agent, 103312), (e.Category, e.EventId)));
    }

    [Fact]
    public void Cancellations_in_other_events_and_categories_and_other_entries_pass_through()
    {
        var (factory, log) = Filtered();
        using (factory)
        {
            var agent = factory.CreateLogger(Agent);
            // Another event of the agents' category, the same events under another provider's or another type's category.
            agent.Log(LogLevel.Warning, new EventId(103313), Cancelled(), "another agent event");
            AgentRetrying(factory.CreateLogger("Orleans.Streams.other-provider"), 0, "q", Cancelled());
            ReceiverReadFailed(factory.CreateLogger("Orleans.Providers.SomeOtherReceiver.sensors"), Cancelled());
            // No exception at all, with scopes and levels as without the filter.
            using (agent.BeginScope("scope {Name}", "outer"))
                agent.LogInformation("pulling agent started");
            Assert.False(agent.IsEnabled(LogLevel.Debug));
        }

        Assert.Collection(log.Entries,
            e => Assert.Equal((Agent, 103313), (e.Category, e.EventId)),
            e => Assert.Equal(("Orleans.Streams.other-provider", 103312), (e.Category, e.EventId)),
            e => Assert.Equal(("Orleans.Providers.SomeOtherReceiver.sensors", 200402), (e.Category, e.EventId)),
            e =>
            {
                Assert.Equal((Agent, "pulling agent started"), (e.Category, e.Message));
                Assert.Equal(["scope outer"], e.Scopes);
            });
    }

    [Fact]
    public void The_silo_hosts_log_filters_install_it_with_the_watchdog_filter()
    {
        var entries = CapturedLog.ThroughSiloLogFilters(factory =>
        {
            ReceiverReadFailed(factory.CreateLogger(Receiver), Cancelled());
            ReceiverReadFailed(factory.CreateLogger(Receiver), new TimeoutException("kept"));
        });

        var entry = Assert.Single(entries);
        Assert.Equal((Receiver, 200402), (entry.Category, entry.EventId));
    }
}
