using Microsoft.Extensions.Logging;

namespace LstmOrleans.Silo.Hosting;

/// <summary>The silo host's own log lines.</summary>
internal static partial class SiloLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Runtime: .NET {RuntimeVersion} on {ProcessorCount} processors, {GarbageCollector}")]
    public static partial void RuntimeStarted(ILogger logger, string runtimeVersion, int processorCount, string garbageCollector);
}
