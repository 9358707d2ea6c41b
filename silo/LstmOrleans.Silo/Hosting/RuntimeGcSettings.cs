using System.Globalization;
using System.Runtime;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// The garbage collector settings this process actually runs with, as the runtime reports them
/// (<see cref="GC.GetConfigurationVariables"/>): what the silo logs at start and the bench records beside its figures,
/// so a latency number always says which collector produced it.
/// </summary>
public static class RuntimeGcSettings
{
    /// <summary>
    /// The throughput-cost target, in percent of the time, that the silo host gives server GC's dynamic adaptation
    /// (DATAS), set as <c>System.GC.DTargetTCP</c> in its <c>runtimeconfig.json</c> (LstmOrleans.Silo.csproj; the client's
    /// project sets the same so the bench's silo process runs like the real one). The runtime's default is 2 %; at 1 %
    /// DATAS grows the gen0 budget about twofold and collects about half as often, which lowered the durable single
    /// value's p99 at half load on the 2-core benchmark host in 10 of 11 pairs (BENCHMARKS.md, "Session 14"). <c>DOTNET_GCDTargetTCP</c> in the environment overrides it.
    /// </summary>
    public const int SiloDatasTargetTcpPercent = 1;

    /// <summary>The runtime's own names (GC.GetConfigurationVariables keys) of the settings worth reporting, with their values.</summary>
    public static IReadOnlyDictionary<string, string> Snapshot()
    {
        var variables = GC.GetConfigurationVariables();
        var snapshot = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in ReportedKeys)
        {
            if (variables.TryGetValue(key, out var value)) snapshot[key] = Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
        }

        // GCgen0size has no runtimeconfig name, so the runtime does not list it; the environment is its only source.
        if (Environment.GetEnvironmentVariable(Gen0SizeVariable) is { Length: > 0 } gen0) snapshot[Gen0SizeVariable] = gen0;
        return snapshot;
    }

    /// <summary>One line for the start-up log, e.g. "server GC, up to 2 heaps, concurrent; DATAS target TCP 1 %".</summary>
    public static string Describe() => Describe(Snapshot(), GCSettings.IsServerGC);

    /// <summary>The same line for a given <see cref="Snapshot"/> (testable without restarting the runtime).</summary>
    public static string Describe(IReadOnlyDictionary<string, string> snapshot, bool serverGc)
    {
        var parts = new List<string> { serverGc ? "server GC" : "workstation GC" };
        // Under DATAS the runtime's HeapCount is where the heap count may grow to (it starts at one and adapts).
        bool datasOn = serverGc && snapshot.TryGetValue("GCDynamicAdaptationMode", out var mode) && mode == "1";
        if (serverGc && snapshot.TryGetValue("HeapCount", out var heaps)) parts.Add(datasOn ? $"up to {heaps} heaps" : $"{heaps} heaps");
        if (snapshot.TryGetValue("ConcurrentGC", out var concurrent)) parts.Add(bool.TryParse(concurrent, out var on) && on ? "concurrent" : "non-concurrent");
        var description = string.Join(", ", parts);

        var tuning = new List<string>();
        if (serverGc && snapshot.ContainsKey("GCDynamicAdaptationMode"))
            tuning.Add(datasOn && snapshot.TryGetValue("GCDTargetTCP", out var tcp) ? $"DATAS target TCP {tcp} %" : "DATAS off");
        if (snapshot.TryGetValue("GCHeapHardLimit", out var limit) && long.TryParse(limit, CultureInfo.InvariantCulture, out var bytes) && bytes > 0)
            tuning.Add($"heap limit {bytes / (1024 * 1024)} MiB");
        if (snapshot.TryGetValue("GCConserveMem", out var conserve) && conserve != "0") tuning.Add($"conserve memory {conserve}");
        if (snapshot.TryGetValue(Gen0SizeVariable, out var gen0) && Gen0BudgetBytes(gen0) is { } gen0Bytes)
            tuning.Add($"gen0 budget {gen0Bytes / (1024 * 1024)} MiB ({Gen0SizeVariable})");
        return tuning.Count == 0 ? description : description + "; " + string.Join(", ", tuning);
    }

    /// <summary>The environment variable of the gen0 budget (hexadecimal bytes), the one GC setting with no runtimeconfig name.</summary>
    public const string Gen0SizeVariable = "DOTNET_GCgen0size";

    // The runtime reads DOTNET_GC* numbers as hexadecimal, with or without 0x; 0 (or garbage) leaves its default.
    private static long? Gen0BudgetBytes(string value)
    {
        var digits = value.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? value[2..] : value;
        return long.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var bytes) && bytes > 0 ? bytes : null;
    }

    private static readonly string[] ReportedKeys =
        ["ServerGC", "ConcurrentGC", "HeapCount", "GCDynamicAdaptationMode", "GCDTargetTCP", "GCHeapHardLimit", "GCConserveMem"];
}
