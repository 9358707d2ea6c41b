using LstmOrleans.Abstractions;
using Microsoft.Extensions.Logging;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// Drops the two errors Orleans 10.4's memory streams log when a pulling agent cancels its own queue read, and passes
/// every other log entry through unchanged.
/// <para>
/// When a silo joins, the queue balancer hands some of the running silos' stream queues to it, and each of those silos
/// shuts down the pulling agents of the queues it gave up. An agent's shutdown cancels the read it has in flight (the
/// memory queue grain's <c>Dequeue</c> call), and that cancellation is logged as two failures:
/// <c>fail: Orleans.Providers.MemoryAdapterReceiver`1[...].sensors.sensors-N[200402] Exception thrown in
/// MemoryAdapterFactory.GetQueueMessagesAsync.</c> and <c>fail: Orleans.Streams.sensors[103312] Exception while retrying
/// the 0th time reading from queue sensors-N-...</c>, both with an <see cref="OperationCanceledException"/>. The agent
/// stops there and the queue's new owner reads it: nothing failed. A 3-silo start logged them on the first silo.
/// </para>
/// <para>
/// Only those two events, in those categories, with a cancellation: the same events with any other exception (a
/// timeout, an unreachable queue grain) are real read failures and are logged.
/// </para>
/// </summary>
internal sealed class StreamReadCancellationFilter(ILoggerFactory inner) : FalseAlarmLogFilter(inner)
{
    /// <summary>The memory receiver's category: its generic type's name, then the provider and the queue.</summary>
    internal const string ReceiverCategoryPrefix = "Orleans.Providers.MemoryAdapterReceiver`1";
    /// <summary>The pulling agents' category: <c>Orleans.Streams.</c> and the provider's name.</summary>
    internal const string AgentCategory = "Orleans.Streams." + LstmOrleansNames.StreamProviderName;
    /// <summary>Orleans' <c>ProviderErrorCode.MemoryStreamProviderBase_GetQueueMessagesAsync</c>.</summary>
    internal const int ReceiverReadFailedEventId = 200402;
    /// <summary>Orleans' <c>ErrorCode.PersistentStreamPullingAgent_12</c>: a failed read, retried or given up.</summary>
    internal const int AgentReadFailedEventId = 103312;

    protected override bool Watches(string categoryName) =>
        categoryName.StartsWith(ReceiverCategoryPrefix, StringComparison.Ordinal) || string.Equals(categoryName, AgentCategory, StringComparison.Ordinal);

    protected override bool IsFalseAlarm<TState>(EventId eventId, TState state, Exception? exception) =>
        exception is OperationCanceledException && eventId.Id is ReceiverReadFailedEventId or AgentReadFailedEventId;
}
