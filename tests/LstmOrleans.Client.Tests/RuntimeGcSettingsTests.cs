using System.Text.Json;
using LstmOrleans.Silo.Hosting;
using Xunit;

namespace LstmOrleans.Client.Tests;

public sealed class RuntimeGcSettingsTests
{
    private static Dictionary<string, string> Server(string targetTcp = "1") => new()
    {
        ["ServerGC"] = "True", ["ConcurrentGC"] = "True", ["HeapCount"] = "2", ["GCDynamicAdaptationMode"] = "1",
        ["GCDTargetTCP"] = targetTcp, ["GCHeapHardLimit"] = "0", ["GCConserveMem"] = "0",
    };

    [Fact]
    public void Describes_server_gc_with_its_datas_target()
    {
        Assert.Equal("server GC, up to 2 heaps, concurrent; DATAS target TCP 1 %", RuntimeGcSettings.Describe(Server(), serverGc: true));
        Assert.Equal("server GC, up to 2 heaps, concurrent; DATAS target TCP 2 %", RuntimeGcSettings.Describe(Server("2"), serverGc: true));
        var datasOff = Server();
        datasOff["GCDynamicAdaptationMode"] = "0";
        Assert.Equal("server GC, 2 heaps, concurrent; DATAS off", RuntimeGcSettings.Describe(datasOff, serverGc: true));
    }

    [Fact]
    public void Workstation_gc_has_no_heap_count_or_datas()
    {
        var workstation = Server();
        workstation["ServerGC"] = "False";
        workstation["ConcurrentGC"] = "False";
        Assert.Equal("workstation GC, non-concurrent", RuntimeGcSettings.Describe(workstation, serverGc: false));
        workstation["GCConserveMem"] = "7";   // bench --silo-gc conserve
        Assert.Equal("workstation GC, non-concurrent; conserve memory 7", RuntimeGcSettings.Describe(workstation, serverGc: false));
    }

    [Fact]
    public void Names_a_heap_limit_and_a_gen0_budget_but_not_their_zero_defaults()
    {
        var tuned = Server();
        tuned["GCHeapHardLimit"] = (7L << 30).ToString(System.Globalization.CultureInfo.InvariantCulture);
        tuned["DOTNET_GCgen0size"] = "0x4000000";
        Assert.Equal("server GC, up to 2 heaps, concurrent; DATAS target TCP 1 %, heap limit 7168 MiB, gen0 budget 64 MiB (DOTNET_GCgen0size)",
            RuntimeGcSettings.Describe(tuned, serverGc: true));

        // The bench's silo gets DOTNET_GCgen0size=0 to undo the load generator's own budget: the runtime's default.
        tuned["GCHeapHardLimit"] = "0";
        tuned["DOTNET_GCgen0size"] = "0";
        Assert.Equal("server GC, up to 2 heaps, concurrent; DATAS target TCP 1 %", RuntimeGcSettings.Describe(tuned, serverGc: true));
        tuned["DOTNET_GCgen0size"] = "4000000";   // hexadecimal without the prefix, as the runtime reads it
        Assert.EndsWith("gen0 budget 64 MiB (DOTNET_GCgen0size)", RuntimeGcSettings.Describe(tuned, serverGc: true));
    }

    [Fact]
    public void This_process_reports_what_the_runtime_runs()
    {
        // The test host runs workstation GC; the snapshot is read from the runtime, not assumed.
        var snapshot = RuntimeGcSettings.Snapshot();
        Assert.Equal(System.Runtime.GCSettings.IsServerGC.ToString(), snapshot["ServerGC"]);
        Assert.StartsWith(System.Runtime.GCSettings.IsServerGC ? "server GC" : "workstation GC", RuntimeGcSettings.Describe());
    }

    [Fact]
    public void The_client_executable_ships_the_silo_hosts_datas_target()
    {
        // The bench's silo process is this executable under server GC: its runtimeconfig.json must carry the target the
        // silo host's does (checked for the silo host's own file by the end-to-end tests, which run it).
        var path = Path.Combine(AppContext.BaseDirectory, "lstmorleans.runtimeconfig.json");
        using var config = JsonDocument.Parse(File.ReadAllText(path));
        var target = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties").GetProperty("System.GC.DTargetTCP").GetInt32();
        Assert.Equal(RuntimeGcSettings.SiloDatasTargetTcpPercent, target);
    }
}
