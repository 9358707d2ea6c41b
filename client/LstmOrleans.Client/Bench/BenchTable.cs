using Spectre.Console;

namespace LstmOrleans.Client.Bench;

/// <summary>The human-readable form of a <see cref="BenchReport"/>.</summary>
internal static class BenchTable
{
    public static void Write(BenchReport report)
    {
        var s = report.Settings;
        AnsiConsole.MarkupLine($"[bold]lstmorleans bench[/] {report.Date:u}  {Markup.Escape(report.Machine.Cpu)}, {report.Machine.LogicalCores} cores, {report.Machine.TotalMemoryBytes / (1 << 30)} GiB, {Markup.Escape(report.Machine.Runtime)}");
        AnsiConsole.MarkupLine($"silo: {Markup.Escape(report.SiloMode)}; model H={s.Hidden} L={s.Layers}; concurrency {s.Concurrency}; batch {s.BatchSize}; {s.DurationSeconds:0.#} s measured after {s.WarmupSeconds:0.#} s warm-up" +
            (s.Rate is { } r ? $"; fixed rate {r:N0} obs/s" : "; max rate"));

        var table = new Table().Border(TableBorder.Rounded);
        foreach (var column in new[] { "store", "streams", "test", "values/s", "calls/s", "x ping", "p50 us", "p99 us", "p99.9 us", "max us", "errors", "silo CPU us/value", "silo alloc B/value" })
            table.AddColumn(new TableColumn(column).RightAligned());
        foreach (var store in report.Results)
        {
            if (store.Skipped is not null)
            {
                table.AddRow(Markup.Escape(store.Store), store.Streams.ToString("N0"), "[yellow]skipped[/]", "", "", "", "", "", "", "", "", "", "");
                continue;
            }
            foreach (var p in store.Phases)
                table.AddRow(
                    Markup.Escape(p.Store), p.Streams.ToString("N0"), p.BatchSize == 1 ? p.Test : $"{p.Test} x{p.BatchSize}",
                    p.ValuesPerSecond.ToString("N0"), p.CallsPerSecond.ToString("N0"),
                    p.RatioToBaseline is { } ratio ? ratio.ToString("0.00") : "-",
                    p.Latency.P50Us.ToString("N0"), p.Latency.P99Us.ToString("N0"), p.Latency.P999Us.ToString("N0"), p.Latency.MaxUs.ToString("N0"),
                    p.Errors == 0 ? "0" : $"[red]{p.Errors}[/]",
                    p.SiloCpuUsPerValue is { } cpu ? cpu.ToString("0.0") : "-",
                    p.SiloAllocatedBytesPerValue is { } alloc ? alloc.ToString("N0") : "-");
        }
        AnsiConsole.Write(table);

        var memory = new Table().Border(TableBorder.Rounded).Title("silo process memory (after a full GC)");
        foreach (var column in new[] { "store", "streams", "activation/s", "RSS idle MiB", "RSS active MiB", "RSS end MiB", "RSS collected MiB", "peak RSS MiB", "RSS B/stream", "managed B/stream" })
            memory.AddColumn(new TableColumn(column).RightAligned());
        foreach (var store in report.Results.Where(r => r.Skipped is null))
            memory.AddRow(Markup.Escape(store.Store), store.Streams.ToString("N0"),
                store.ActivationsPerSecond?.ToString("N0") ?? "-",
                Mib(store.SiloIdle?.RssBytes), Mib(store.SiloActive?.RssBytes), Mib(store.SiloEnd?.RssBytes), Mib(store.SiloAfterCollection?.RssBytes), Mib(store.SiloEnd?.PeakRssBytes),
                store.RssBytesPerStream?.ToString("N0") ?? "-", store.ManagedBytesPerStream?.ToString("N0") ?? "-");
        AnsiConsole.Write(memory);
        foreach (var store in report.Results.Where(r => r.Scale is not null))
            AnsiConsole.MarkupLine($"[bold]scale[/] {Markup.Escape(store.Store)}: {Markup.Escape(store.Scale!.Verdict)}" +
                (store.Scale.Reactivation.FirstMismatch is { } mismatch ? $"\n[red]first mismatch: {Markup.Escape(mismatch)}[/]" : ""));
        foreach (var store in report.Results.Where(r => r.Skipped is not null))
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(store.Store)} skipped:[/] {Markup.Escape(store.Skipped!)}");
        foreach (var p in report.Results.SelectMany(r => r.Phases).Where(p => p.FirstError is not null))
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(p.Store)} {p.Test}: {p.Errors} errors, first: {Markup.Escape(p.FirstError!)}[/]");
    }

    private static string Mib(long? bytes) => bytes is { } b ? (b / 1048576.0).ToString("N0") : "-";
}
