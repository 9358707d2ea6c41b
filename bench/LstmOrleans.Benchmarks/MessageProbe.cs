using LstmOrleans.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace LstmOrleans.Benchmarks;

/// <summary>
/// `messages`: what Orleans' serializer spends on single ingest's two messages (an <see cref="Observation"/> in, a
/// <see cref="StepResult"/> out, with the bench's shapes D = 1 and K = 1), each way, against an empty message: the part
/// of the `-t echo` phase's extra cost over the no-op call that is encoding and decoding rather than transport. Thread
/// CPU time over many iterations, several rounds.
/// </summary>
internal static class MessageProbe
{
    public static void Run()
    {
        var services = new ServiceCollection().AddSerializer(b => b.AddAssembly(typeof(StepResult).Assembly)).BuildServiceProvider();
        var serializer = services.GetRequiredService<Serializer>();
        var observation = new Observation(123_456, new DateTimeOffset(2026, 11, 28, 1, 2, 3, TimeSpan.Zero), [21.5f]);
        var answer = new StepResult("bench/stream-000123", 123_456, observation.Timestamp, [21.7f], [20.1f], [23.3f], [0.8f], [9_000],
            PreviousError: -0.2f, WeightsVersion: 1, Duplicate: false, StepCount: 9_001);
        var empty = new object();
        byte[] observationBytes = serializer.SerializeToArray(observation);
        byte[] answerBytes = serializer.SerializeToArray(answer);
        byte[] emptyBytes = serializer.SerializeToArray(empty);
        Console.WriteLine($"sizes: Observation {observationBytes.Length} B, StepResult {answerBytes.Length} B, empty object {emptyBytes.Length} B");

        const int iterations = 500_000;
        for (int round = 0; round < 3; round++)
        {
            Console.WriteLine($"round {round + 1}");
            StateCodecProbe.Time("empty object serialize      ", iterations, () => serializer.SerializeToArray(empty));
            StateCodecProbe.Time("empty object deserialize    ", iterations, () => serializer.Deserialize<object>(emptyBytes));
            StateCodecProbe.Time("Observation serialize       ", iterations, () => serializer.SerializeToArray(observation));
            StateCodecProbe.Time("Observation deserialize     ", iterations, () => serializer.Deserialize<Observation>(observationBytes));
            StateCodecProbe.Time("StepResult serialize        ", iterations, () => serializer.SerializeToArray(answer));
            StateCodecProbe.Time("StepResult deserialize      ", iterations, () => serializer.Deserialize<StepResult>(answerBytes));
        }
    }
}
