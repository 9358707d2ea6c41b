using System.Text.Json;
using CsCheck;
using LstmOrleans.Abstractions;
using Orleans.Hosting;
using Orleans.TestingHost;

namespace LstmOrleans.Reliability.Tests;

public sealed class MemoryCluster : IAsyncLifetime
{
    public const string Model = "props";
    public const int MaxBatchSize = 8;
    public const int InputSize = 2;

    public InProcessTestCluster Cluster { get; private set; } = null!;
    public IClusterClient Client => Cluster.Client;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.Options.ServiceId = "reliability-props";
        builder.Options.ClusterId = "reliability-props";
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddMemoryGrainStorage(LstmOrleansNames.StorageName);
            silo.AddLstmOrleans(configureStreams: o => o.MaxBatchSize = MaxBatchSize);
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        await Client.GetGrain<IModelGrain>(Model).CreateAsync(Signals.Config(InputSize));
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}

/// <summary>
/// Random sequences of good and bad calls against real stream grains, each case on a fresh stream, checked against a
/// model of the specification: a rejected call throws <see cref="ObservationRejectedException"/> with the right reason
/// and leaves the whole observable state byte-for-byte unchanged; a stale sequence is a duplicate that changes
/// nothing; an accepted observation steps exactly once, bitwise as the engine-only reference.
/// </summary>
public sealed class BadInputPropertyTests(MemoryCluster fixture) : IClassFixture<MemoryCluster>
{
    public enum Kind { Valid, NaN, PositiveInfinity, NegativeInfinity, WrongLength, NullValues, Stale, Backwards, Oversized, ValidBatch, BatchWithBadElement, BatchOutOfOrder }

    private static int _caseCounter;

    private sealed class Model(ReferenceStream reference)
    {
        public ReferenceStream Reference { get; } = reference;
        public long LastSequence;
        public DateTimeOffset LastTimestamp = Signals.Start;
        public string Snapshot = "";
    }

    [Fact]
    public async Task RandomObservationsAreRejectedWithoutEffectOrAppliedExactlyOnce()
    {
        var weights = await fixture.Client.GetGrain<IModelGrain>(MemoryCluster.Model).GetActiveWeightsAsync();
        var engine = ReferenceStream.ToEngine(weights);
        var operation = Gen.Select(Gen.Int[0, (int)Kind.BatchOutOfOrder].Select(k => (Kind)k), Gen.Int[0, 1000], Gen.Int[0, 1000]);
        long steps = 0, rejections = 0, duplicates = 0;
        // Off the test framework's synchronization context, so blocking on a case cannot starve its continuations.
        await Task.Run(() => operation.Array[1, 8].Sample(ops =>
        {
            var (s, r, d) = RunCaseAsync(ops, new ReferenceStream(weights.Config, engine)).GetAwaiter().GetResult();
            Interlocked.Add(ref steps, s);
            Interlocked.Add(ref rejections, r);
            Interlocked.Add(ref duplicates, d);
        }, iter: 1500));
        // The generator must really exercise both sides.
        Assert.True(steps > 1000 && rejections > 1000 && duplicates > 100, $"steps {steps}, rejections {rejections}, duplicates {duplicates}");
    }

    private async Task<(long Steps, long Rejections, long Duplicates)> RunCaseAsync((Kind Kind, int A, int B)[] ops, ReferenceStream reference)
    {
        int id = Interlocked.Increment(ref _caseCounter);
        var grain = fixture.Client.GetGrain<IStreamGrain>($"prop-{id}");
        await grain.BindAsync(MemoryCluster.Model);
        var model = new Model(reference) { Snapshot = await Snapshot(grain) };
        long steps = 0, rejections = 0, duplicates = 0;
        foreach (var (kind, a, b) in ops)
        {
            var next = model.LastSequence + 1 + a % 3;                                  // gaps are allowed
            var at = model.LastTimestamp.AddSeconds(a % 4);                             // equal timestamps are allowed
            switch (kind)
            {
                case Kind.Valid:
                    steps += await ExpectAccepted(grain, model, [Make(id, next, at)], single: true);
                    break;
                case Kind.NaN or Kind.PositiveInfinity or Kind.NegativeInfinity:
                    var bad = Make(id, next, at);
                    bad.Values[b % MemoryCluster.InputSize] = kind switch { Kind.NaN => float.NaN, Kind.PositiveInfinity => float.PositiveInfinity, _ => float.NegativeInfinity };
                    rejections += await ExpectRejected(grain, model, RejectionReason.NonFiniteValue, () => grain.IngestAsync(bad));
                    break;
                case Kind.WrongLength:
                    int[] wrongLengths = [0, 1, 3, 5];                                  // the model wants 2
                    var wrong = new Observation(next, at, new float[wrongLengths[b % wrongLengths.Length]]);
                    rejections += await ExpectRejected(grain, model, RejectionReason.WrongLength, () => grain.IngestAsync(wrong));
                    break;
                case Kind.NullValues:
                    rejections += await ExpectRejected(grain, model, RejectionReason.MissingValues, () => grain.IngestAsync(new Observation(next, at, null!)));
                    break;
                case Kind.Stale when model.LastSequence > 0:
                    var stale = Make(id, model.LastSequence - a % model.LastSequence, model.LastTimestamp.AddSeconds(b % 5));
                    var dup = await grain.IngestAsync(stale);
                    Assert.True(dup.Duplicate);
                    Assert.Equal(model.Snapshot, await Snapshot(grain));
                    duplicates++;
                    break;
                case Kind.Backwards when model.LastSequence > 0:
                    var backwards = Make(id, next, model.LastTimestamp.AddSeconds(-1 - a % 100));
                    rejections += await ExpectRejected(grain, model, RejectionReason.TimestampBackwards, () => grain.IngestAsync(backwards));
                    break;
                case Kind.Oversized:
                    var huge = Enumerable.Range(0, MemoryCluster.MaxBatchSize + 1 + a % 20).Select(i => Make(id, next + i, at)).ToArray();
                    rejections += await ExpectRejected(grain, model, RejectionReason.BatchTooLarge, () => grain.IngestBatchAsync(huge));
                    break;
                case Kind.ValidBatch:
                    var batch = Enumerable.Range(0, 1 + a % MemoryCluster.MaxBatchSize).Select(i => Make(id, next + i, at.AddSeconds(i))).ToArray();
                    steps += await ExpectAccepted(grain, model, batch, single: false);
                    break;
                case Kind.BatchWithBadElement:
                    var mixed = Enumerable.Range(0, 2 + a % (MemoryCluster.MaxBatchSize - 1)).Select(i => Make(id, next + i, at.AddSeconds(i))).ToArray();
                    mixed[b % mixed.Length].Values[a % MemoryCluster.InputSize] = float.NaN;
                    rejections += await ExpectRejected(grain, model, RejectionReason.NonFiniteValue, () => grain.IngestBatchAsync(mixed));
                    break;
                case Kind.BatchOutOfOrder:
                    var disordered = Enumerable.Range(0, 2 + a % (MemoryCluster.MaxBatchSize - 1)).Select(i => Make(id, next + i, at.AddSeconds(i))).ToArray();
                    int swap = 1 + b % (disordered.Length - 1);
                    disordered[swap] = disordered[swap] with { Sequence = disordered[swap - 1].Sequence - b % 2 };
                    rejections += await ExpectRejected(grain, model, RejectionReason.BatchOutOfOrder, () => grain.IngestBatchAsync(disordered));
                    break;
                default:
                    // Stale / backwards before the first observation: nothing to be stale against; send a valid one.
                    steps += await ExpectAccepted(grain, model, [Make(id, next, at)], single: true);
                    break;
            }
        }
        return (steps, rejections, duplicates);
    }

    private static Observation Make(int stream, long sequence, DateTimeOffset at) =>
        Signals.Obs(stream, sequence, MemoryCluster.InputSize) with { Timestamp = at };

    private static async Task<string> Snapshot(IStreamGrain grain) =>
        JsonSerializer.Serialize(new { state = await grain.GetStateAsync(), history = await grain.GetHistoryAsync(int.MaxValue) });

    private static async Task<long> ExpectRejected(IStreamGrain grain, Model model, RejectionReason reason, Func<Task> call)
    {
        var e = await Assert.ThrowsAsync<ObservationRejectedException>(call);
        Assert.Equal(reason, e.Reason);
        Assert.Equal(model.Snapshot, await Snapshot(grain));
        return 1;
    }

    private static async Task<long> ExpectAccepted(IStreamGrain grain, Model model, Observation[] observations, bool single)
    {
        var results = single ? [await grain.IngestAsync(observations[0])] : await grain.IngestBatchAsync(observations);
        Assert.Equal(observations.Length, results.Length);
        for (int i = 0; i < observations.Length; i++)
        {
            var expected = model.Reference.Step(observations[i].Values);
            Assert.False(results[i].Duplicate);
            Assert.Equal(observations[i].Sequence, results[i].Sequence);
            Assert.Equal(model.Reference.Steps, results[i].StepCount);
            Assert.Equal(Bits.Of(expected), Bits.Of(results[i].Predictions));
        }
        model.LastSequence = observations[^1].Sequence;
        model.LastTimestamp = observations[^1].Timestamp;
        var state = await grain.GetStateAsync();
        Assert.Equal(model.Reference.Steps, state.Summary.StepCount);
        Assert.Equal(Bits.Of(model.Reference.H), Bits.Of(state.Hidden));
        Assert.Equal(Bits.Of(model.Reference.C), Bits.Of(state.Cell));
        model.Snapshot = await Snapshot(grain);
        return observations.Length;
    }
}
