using System.Buffers;
using System.Diagnostics;
using LstmOrleans.Abstractions;
using LstmOrleans.Grains;
using LstmOrleans.Grains.Storage;
using LstmOrleans.Lstm;
using LstmOrleans.Persistence.GroupCommit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;
using Orleans.Serialization;

namespace LstmOrleans.Benchmarks;

/// <summary>
/// `codec`: serialize + deserialize time, allocation and size of one realistic stream core state (H=32, L=1, D=1, K=1,
/// a full 32-entry tail, Latest set: what the bench's single ingest writes on every step) with Orleans' binary
/// serializer (today's format) and with <see cref="StreamStateCodec"/>. Thread CPU time over many iterations, several rounds.
/// </summary>
internal static class StateCodecProbe
{
    public static void Run()
    {
        var services = new ServiceCollection()
            .AddSerializer(b => b.AddAssembly(typeof(StreamState).Assembly).AddAssembly(typeof(StepResult).Assembly))
            .BuildServiceProvider();
        var orleans = services.GetRequiredService<Serializer>();
        var state = Realistic(hidden: 32, chunk: 32);

        byte[] orleansBytes = orleans.SerializeToArray(state);
        byte[] codecBytes = StreamStateCodec.ToArray(state);
        Console.WriteLine($"StreamState H=32 tail 32: Orleans binary {orleansBytes.Length} B, codec {codecBytes.Length} B");

        var scratch = new ArrayBufferWriter<byte>(4096);
        const int iterations = 200_000;
        for (int round = 0; round < 3; round++)
        {
            Console.WriteLine($"round {round + 1}");
            Time("Orleans SerializeToArray     ", iterations, () => orleans.SerializeToArray(state));
            Time("Orleans Serialize(buffer)    ", iterations, () => { scratch.ResetWrittenCount(); orleans.Serialize(state, scratch); });
            Time("Orleans Deserialize          ", iterations, () => orleans.Deserialize<StreamState>(orleansBytes));
            Time("codec ToArray                ", iterations, () => StreamStateCodec.ToArray(state));
            Time("codec Write(buffer)          ", iterations, () =>
            {
                scratch.ResetWrittenCount();
                int size = StreamStateCodec.GetSize(state);
                StreamStateCodec.Write(state, scratch.GetSpan(size)[..size]);
                scratch.Advance(size);
            });
            Time("codec Read                   ", iterations, () => StreamStateCodec.Read<StreamState>(codecBytes));
        }

        // The whole memory-store write of the core state (serialize into the scratch buffer, copy into the key's buffer,
        // ETag) as a stream grain does it on every acknowledged step, with each serializer.
        var grain = GrainId.Create("stream", "probe");
        foreach (var (name, serializer) in new (string, IGrainStorageSerializer)[]
                 {
                     ("Orleans binary", new CompactOrleansGrainStorageSerializer(orleans)),
                     ("codec         ", new StreamStateCodecSerializer(new CompactOrleansGrainStorageSerializer(orleans))),
                 })
        {
            var storage = new LocalMemoryGrainStorage("probe", new LocalMemoryGrainStorageOptions { GrainStorageSerializer = serializer },
                NullLogger<LocalMemoryGrainStorage>.Instance);
            var grainState = new GrainState<StreamState>(state);
            for (int round = 0; round < 2; round++)
                Time($"memory store write, {name}", iterations, () => storage.WriteStateAsync("stream", grain, grainState).GetAwaiter().GetResult());
        }

        // The stream grain's step on its own, without Orleans: what single ingest computes per value (the bench's model:
        // D=1, H=32, L=1, K=1; history 512 in chunks of 32, the defaults), answer copy included.
        var stepConfig = new ModelConfig(1, 32, 1, 1, ["value"], Seed: 1);
        var stepModel = new CachedModel("probe", 1, 1, stepConfig,
            LstmWeights.From(LstmParameters.InitializeUniform(new LstmConfig(1, 32, 1, 1), seed: 1)));
        var stepOptions = new StreamGrainOptions();
        var stepState = new StreamState();
        StreamComputation.Bind(stepState, stepModel, stepOptions.HistoryCapacity, stepOptions.HistoryChunkSize);
        long sequence = 0;
        var start = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var values = new float[1];
        for (int round = 0; round < 2; round++)
            Time("stream step (StreamComputation.Step)", iterations, () =>
            {
                sequence++;
                values[0] = MathF.Sin(sequence * 0.01f);
                StreamComputation.Step(stepState, "bench/probe/0", new Observation(sequence, start.AddSeconds(sequence), values), stepModel, stepOptions);
                stepState.PendingClosed = null;   // what the grain's write does once the closed chunk is stored
            });

        // A closed-history record of the layout before session 7 (all N = 512 retained observations in one record, read,
        // merged and rewritten once per closed chunk); such records are still read, and moved into chunk records.
        var history = new StreamHistory { Generation = 1, Closed = Realistic(hidden: 32, chunk: 512).Tail };
        byte[] orleansHistory = orleans.SerializeToArray(history);
        byte[] codecHistory = StreamStateCodec.ToArray(history);
        Console.WriteLine($"StreamHistory N=512: Orleans binary {orleansHistory.Length} B, codec {codecHistory.Length} B");
        for (int round = 0; round < 2; round++)
        {
            Time("history Orleans serialize+deserialize", iterations / 20, () => orleans.Deserialize<StreamHistory>(orleans.SerializeToArray(history)));
            Time("history codec serialize+deserialize  ", iterations / 20, () => StreamStateCodec.Read<StreamHistory>(StreamStateCodec.ToArray(history)));
        }

        BatchMessages(orleans, iterations / 20);
    }

    /// <summary>
    /// The wire cost of a 64-value batch (K = 3, one feature) with Orleans' serializer: the row request/answer
    /// (<see cref="Observation"/>[] / <see cref="StepResult"/>[]) against the column messages (<see cref="ObservationBatch"/> /
    /// <see cref="BatchForecast"/>), write + read per call; divide by 64 for the cost per value.
    /// </summary>
    private static void BatchMessages(Serializer orleans, int iterations)
    {
        const int n = 64, k = 3;
        var random = new Random(11);
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var rows = new Observation[n];
        for (int i = 0; i < n; i++) rows[i] = new Observation(1000 + i, start.AddSeconds(i), [(float)random.NextDouble()]);
        var columns = ObservationBatch.From(rows, inputSize: 1);
        var predictions = new float[n * k];
        var rmse = new double[n * k];
        var previousError = new float[n];
        for (int i = 0; i < n * k; i++) { predictions[i] = (float)random.NextDouble(); rmse[i] = random.NextDouble(); }
        for (int i = 0; i < n; i++) previousError[i] = (float)random.NextDouble();
        var forecast = new BatchForecast("probe/stream", n, k, duplicateCount: 0, duplicateAnswer: null, weightsVersion: 3,
            firstStepCount: 500, intervalZ: 1.96, lastErrorSamples: [563, 562, 561], predictions, rmse, previousError);
        var answers = forecast.ToStepResults(columns);
        Console.WriteLine($"64-value batch: request rows {orleans.SerializeToArray(rows).Length} B, columns {orleans.SerializeToArray(columns).Length} B; " +
            $"answer rows {orleans.SerializeToArray(answers).Length} B, columns {orleans.SerializeToArray(forecast).Length} B");
        for (int round = 0; round < 2; round++)
        {
            Time("request Observation[64] write+read ", iterations, () => orleans.Deserialize<Observation[]>(orleans.SerializeToArray(rows)));
            Time("request ObservationBatch write+read", iterations, () => orleans.Deserialize<ObservationBatch>(orleans.SerializeToArray(columns)));
            Time("answer StepResult[64] write+read   ", iterations, () => orleans.Deserialize<StepResult[]>(orleans.SerializeToArray(answers)));
            Time("answer BatchForecast write+read    ", iterations, () => orleans.Deserialize<BatchForecast>(orleans.SerializeToArray(forecast)));
        }
    }

    /// <summary>Thread CPU time per call (excludes time descheduled on a shared machine), wall time beside it.</summary>
    internal static void Time(string label, int iterations, Action action)
    {
        for (int i = 0; i < 1000; i++) action();
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        double cpu = ThreadCpuClock.NowNanoseconds();
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) action();
        watch.Stop();
        cpu = ThreadCpuClock.NowNanoseconds() - cpu;
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Console.WriteLine($"  {label} {cpu / iterations,8:F0} ns/op CPU ({watch.Elapsed.TotalNanoseconds / iterations,6:F0} wall)  {allocated / iterations,6} B alloc/op");
    }

    /// <summary>A bound stream after many steps: every array filled with non-trivial values.</summary>
    internal static StreamState Realistic(int hidden, int chunk)
    {
        var random = new Random(7);
        float F() => (float)(random.NextDouble() * 2 - 1);
        var tail = ObservationChunk.Create(startIndex: 4096, capacity: chunk, inputSize: 1, inputWidth: 1);
        for (int i = 0; i < chunk; i++)
        {
            tail.Sequences[i] = 10_000 + i;
            tail.Ticks[i] = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddMinutes(i).Ticks;
            tail.Values[i] = F() * 50;
            tail.Inputs[i] = F();
        }
        tail.Count = chunk;
        var timestamp = new DateTimeOffset(2026, 1, 1, 0, 31, 0, TimeSpan.Zero);
        return new StreamState
        {
            ModelName = "default",
            WeightsVersion = 3,
            InputSize = 1,
            Horizons = 1,
            ModelInputSize = 1,
            Hidden = Enumerable.Range(0, hidden).Select(_ => F()).ToArray(),
            Cell = Enumerable.Range(0, hidden).Select(_ => F()).ToArray(),
            HasSequence = true,
            LastSequence = 10_031,
            LastTimestamp = timestamp,
            StepCount = 4128,
            NormCount = 4128,
            Mean = [12.5],
            M2 = [9876.25],
            HistoryCapacity = 256,
            ErrorMeanSquare = [0.75],
            ErrorSamples = [4127],
            Pending = [F()],
            Generation = 1,
            ClosedCount = 4096,
            Tail = tail,
            Latest = new StepResult("sensor-000042", 10_031, timestamp, [1.5f], [0.5f], [2.5f], [0.5f], [4127], 0.25f, 3, false, 4128),
        };
    }
}
