using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using LstmOrleans.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace LstmOrleans.Reliability.Tests;

/// <summary>
/// <c>lstmorleans replay</c> (the real client process) against a real silo process with SQLite storage that is
/// SIGKILLed in the middle of the replay and started again on the same ports. The replay's per-attempt timeout and
/// retries carry it over the outage; because a retried batch is answered as duplicates for what was applied, every
/// observation ends up applied exactly once: each stream's last sequence and step count equal the rows replayed.
/// </summary>
public sealed partial class ReplayRetryTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Rows = 400;
    private const string ClusterId = "replay-retry";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(240);
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"lstmorleans-replay-retry-{Guid.NewGuid():N}");
    private SiloProcess? _silo;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(Path.Combine(_folder, "data"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_silo is not null) await _silo.DisposeAsync();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task A_replay_carries_on_over_a_killed_and_restarted_silo_and_applies_every_observation_once()
    {
        string[] streams = ["sine", "ramp"];
        WriteSeries("sine", t => 10 + 3 * Math.Sin(t / 7.0));
        WriteSeries("ramp", t => 0.01 * t + (t % 5));
        _silo = new SiloProcess("replay-silo",
        [
            "--Storage:Provider=sqlite",
            $"--Storage:DataFolder={Path.Combine(_folder, "silo")}",
            $"--Cluster:ClusterId={ClusterId}",
            $"--Cluster:ServiceId={ClusterId}",
        ]);
        await _silo.StartUntilReadyAsync(StartTimeout);
        string[] connect = ["--cluster", $"127.0.0.1:{_silo.GatewayPort}", "--cluster-id", ClusterId, "--service-id", ClusterId, "--connect-timeout", "90"];
        var noEnvironment = new Dictionary<string, string>();
        var created = await SiloProcess.RunClientAsync(["create-model", "replay-retry", "--hidden", "8", .. connect], noEnvironment, TimeSpan.FromSeconds(180));
        Assert.True(created.ExitCode == 0, created.Output);

        // 2 streams x 400 rows at 80 observations/s (about 10 s), 4 rows per call; an attempt is given up on after 3 s,
        // and retries (at most 1 s apart) last well beyond a silo restart on a loaded machine.
        var clock = Stopwatch.StartNew();
        var replay = SiloProcess.RunClientAsync(
        [
            "replay", Path.Combine(_folder, "data"), "--model", "replay-retry", "--reset", "--batch", "4", "--rate", "80",
            "--attempt-timeout", "3", "--retries", "300", "--retry-delay", "0.1", "--retry-max-delay", "1", "--response-timeout", "5", .. connect,
        ], noEnvironment, TimeSpan.FromSeconds(420));

        // Kill the silo once the replay is well under way (and far from done), then start it again on the same ports.
        long sequenceAtKill;
        using (var client = await SiloProcess.ConnectClientAsync([_silo.Gateway], ClusterId, TimeSpan.FromSeconds(10)))
        {
            var grains = client.Services.GetRequiredService<IGrainFactory>();
            var first = grains.GetGrain<IStreamGrain>("replay/" + streams[0]);
            while (true)
            {
                if (replay.IsCompleted) Assert.Fail($"The replay ended before the silo was killed: {(await replay).Output}");
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(240), "The replay made no progress within 240 s.");
                sequenceAtKill = (await first.GetSummaryAsync()).LastSequence ?? 0;
                if (sequenceAtKill >= 80) break;
                await Task.Delay(50);
            }
            await client.StopAsync();
        }
        _silo.Kill();
        var killedAt = clock.Elapsed;
        await _silo.StartUntilReadyAsync(StartTimeout);
        output.WriteLine($"silo killed at {killedAt.TotalSeconds:F1} s (stream {streams[0]} at sequence {sequenceAtKill}), ready again at {clock.Elapsed.TotalSeconds:F1} s");

        var result = await replay;
        output.WriteLine($"replay ended at {clock.Elapsed.TotalSeconds:F1} s with exit code {result.ExitCode}:\n{result.Output}");
        Assert.True(result.ExitCode == 0, result.Output);
        Assert.True(sequenceAtKill < Rows, "the kill came after the stream had finished");

        // Exactly once: each stream's last sequence is the last row, and it stepped once per row (no row applied twice,
        // none lost with the killed silo: the SQLite state is read back by the new activation).
        using (var client = await SiloProcess.ConnectClientAsync([_silo.Gateway], ClusterId, TimeSpan.FromSeconds(30)))
        {
            var grains = client.Services.GetRequiredService<IGrainFactory>();
            foreach (var stream in streams)
            {
                var summary = await grains.GetGrain<IStreamGrain>("replay/" + stream).GetSummaryAsync();
                Assert.Equal(Rows, summary.LastSequence);
                Assert.Equal(Rows, summary.StepCount);
            }
            await client.StopAsync();
        }

        // The replay's own counts add up and show that the outage was retried over.
        var (applied, duplicates, retried) = Counts(result.Output);
        Assert.Equal(streams.Length * Rows, applied + duplicates);
        Assert.True(retried > 0, "no call was retried, so the kill did not hit the replay");

        // The same replay again without --reset: everything is already applied, so it is all counted as duplicates and
        // nothing steps again.
        var again = await SiloProcess.RunClientAsync(["replay", Path.Combine(_folder, "data"), "--batch", "4", .. connect], noEnvironment, TimeSpan.FromSeconds(180));
        output.WriteLine($"second replay, exit code {again.ExitCode}:\n{again.Output}");
        Assert.True(again.ExitCode == 0, again.Output);
        var (appliedAgain, duplicatesAgain, _) = Counts(again.Output);   // (a call slowed past its attempt timeout may be retried: that is allowed)
        Assert.Equal((0L, streams.Length * (long)Rows), (appliedAgain, duplicatesAgain));
        using (var client = await SiloProcess.ConnectClientAsync([_silo.Gateway], ClusterId, TimeSpan.FromSeconds(30)))
        {
            var grains = client.Services.GetRequiredService<IGrainFactory>();
            foreach (var stream in streams)
                Assert.Equal(Rows, (await grains.GetGrain<IStreamGrain>("replay/" + stream).GetSummaryAsync()).StepCount);
            await client.StopAsync();
        }
    }

    private static (long Applied, long Duplicates, long Retried) Counts(string replayOutput)
    {
        var counts = CountsLine().Match(replayOutput);
        Assert.True(counts.Success, replayOutput);
        long Group(string name) => long.Parse(counts.Groups[name].Value, CultureInfo.InvariantCulture);
        return (Group("applied"), Group("duplicates"), Group("retried"));
    }

    private void WriteSeries(string name, Func<int, double> value)
    {
        var start = new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var lines = Enumerable.Range(0, Rows).Select(t =>
            string.Create(CultureInfo.InvariantCulture, $"{start.AddMinutes(5 * t):yyyy-MM-dd HH:mm:ss},{value(t):G9}"));
        File.WriteAllLines(Path.Combine(_folder, "data", name + ".csv"), ["timestamp,value", .. lines]);
    }

    [GeneratedRegex(@"observations: (?<applied>\d+) applied, (?<duplicates>\d+) duplicates.*?, (?<retried>\d+) calls retried")]
    private static partial Regex CountsLine();
}
