using System.Diagnostics;
using LstmOrleans.Persistence.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Storage;

namespace LstmOrleans.Benchmarks;

/// <summary>
/// Drives <see cref="SqliteGrainStorage"/> directly, without Orleans: C concurrent writers each rewrite their own
/// rows (1.3 KB, the size of an H=32 stream state) as fast as acknowledgements come back, and the probe reports
/// durable writes/s and process CPU per write. The serializer hands back a ready-made array, so what is measured
/// is the provider: etags, the group-commit queue, the writer thread, Microsoft.Data.Sqlite/SQLite and the fsync.
/// <c>dotnet run -c Release --project bench/LstmOrleans.Benchmarks -- sqlite-probe [concurrency=128] [seconds=6]
/// [full|normal] [rows=1000] [warmup=2]</c>.
/// </summary>
internal static class SqliteStorageProbe
{
    public static async Task RunAsync(string[] args)
    {
        var concurrency = args.Length > 1 ? int.Parse(args[1]) : 128;
        var seconds = args.Length > 2 ? double.Parse(args[2]) : 6;
        var sync = args.Length > 3 ? Enum.Parse<SqliteSynchronousMode>(args[3], ignoreCase: true) : SqliteSynchronousMode.Full;
        var rows = args.Length > 4 ? int.Parse(args[4]) : 1000;
        var warmup = args.Length > 5 ? double.Parse(args[5]) : 2;
        ArgumentOutOfRangeException.ThrowIfGreaterThan(concurrency, rows);
        var directory = Path.Combine(Path.GetTempPath(), $"lstmorleans-probe-{Guid.NewGuid():N}");
        var options = new SqliteGrainStorageOptions
        {
            DataSource = Path.Combine(directory, "probe.db"),
            Synchronous = sync,
            GrainStorageSerializer = new FixedPayloadSerializer(1300),
        };
        var storage = new SqliteGrainStorage("probe", options, Options.Create(new ClusterOptions { ServiceId = "probe-service", ClusterId = "probe" }),
            NullLogger<SqliteGrainStorage>.Instance);
        await storage.InitializeAsync(CancellationToken.None);
        try
        {
            var grains = Enumerable.Range(0, rows).Select(i => GrainId.Create("lstmstream", $"default/sensor-{i}")).ToArray();
            var states = grains.Select(_ => new GrainState<byte[]>(Array.Empty<byte>())).ToArray();
            // Rows exist before the clock starts (the bench binds its streams first too).
            foreach (var chunk in Enumerable.Range(0, rows).Chunk(256))
            {
                await Task.WhenAll(chunk.Select(i => storage.WriteStateAsync("stream", grains[i], states[i])));
            }

            long writes = 0;
            var stop = false;
            // Each writer owns the rows w, w + C, w + 2C, ...: like grains, no row ever has two writes in flight.
            var writers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
            {
                for (var row = w % rows; !Volatile.Read(ref stop); row = row + concurrency < rows ? row + concurrency : w % rows)
                {
                    await storage.WriteStateAsync("stream", grains[row], states[row]).ConfigureAwait(false);
                    Interlocked.Increment(ref writes);
                }
            })).ToArray();

            await Task.Delay(TimeSpan.FromSeconds(warmup));
            var process = Process.GetCurrentProcess();
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            var writes0 = Interlocked.Read(ref writes);
            var batches0 = storage.CommittedBatches;
            var alloc0 = GC.GetTotalAllocatedBytes(precise: false);
            var clock = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(seconds));
            var elapsed = clock.Elapsed.TotalSeconds;
            process.Refresh();
            var cpu = (process.TotalProcessorTime - cpu0).TotalMicroseconds;
            var done = Interlocked.Read(ref writes) - writes0;
            var batches = storage.CommittedBatches - batches0;
            var alloc = GC.GetTotalAllocatedBytes(precise: false) - alloc0;
            Volatile.Write(ref stop, true);
            await Task.WhenAll(writers);
            Console.WriteLine($"sync={sync} C={concurrency} rows={rows}: {done / elapsed:N0} writes/s, CPU {cpu / done:N1} us/write ({cpu / 1e6 / elapsed:N2} cores), " +
                $"{batches / elapsed:N0} txn/s, {(double)done / Math.Max(1, batches):N1} writes/txn, {alloc / (double)done:N0} B alloc/write, largest batch {storage.LargestBatch}");
        }
        finally
        {
            await storage.CloseAsync(CancellationToken.None);
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Returns the same ready-made payload for every state: keeps the serializer out of the measurement.</summary>
    private sealed class FixedPayloadSerializer(int size) : IGrainStorageSerializer
    {
        private readonly byte[] _payload = Enumerable.Range(0, size).Select(i => (byte)(i * 31)).ToArray();

        public BinaryData Serialize<T>(T? input) => new(_payload.AsMemory());

        public T Deserialize<T>(BinaryData input) => (T)(object)input.ToArray();
    }
}
