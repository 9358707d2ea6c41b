using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Storage;
using LstmOrleans.Lstm;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// The last answer of a stream lives in per-stream buffers that every step overwrites in place (so stepping keeps no
/// per-step object alive). These tests pin what that must never change: an answer handed out is never one of the
/// buffers (a later step cannot alter it), a retry still gets the identical answer, and the stored record's bytes
/// are exactly those the previous build wrote.
/// </summary>
public sealed class LatestAnswerTests
{
    private static readonly StreamGrainOptions Options = new();

    private static (StreamState State, CachedModel Model) BoundStream()
    {
        var config = TestSupport.SmallConfig(seed: 5);   // D = 2, K = 3, L = 2, H = 8
        var parameters = LstmParameters.InitializeUniform(new LstmConfig(config.ModelInputSize, config.HiddenSize, config.Layers, config.Horizons), seed: 5);
        var model = new CachedModel("latest", Version: 1, Epoch: 1, config, LstmWeights.From(parameters));
        var state = new StreamState();
        StreamComputation.Bind(state, model, historyCapacity: 16, chunkSize: 4);
        return (state, model);
    }

    private static (float[] P, float[] L, float[] U, float[] R, long[] E) Copy(StepResult r) =>
        ((float[])r.Predictions.Clone(), (float[])r.Lower.Clone(), (float[])r.Upper.Clone(), (float[])r.Rmse.Clone(), (long[])r.ErrorSamples.Clone());

    private static void AssertSameAnswer(StepResult expected, StepResult actual, bool duplicate)
    {
        Assert.Equal(expected with { Duplicate = duplicate }, actual with
        {
            Predictions = expected.Predictions, Lower = expected.Lower, Upper = expected.Upper, Rmse = expected.Rmse, ErrorSamples = expected.ErrorSamples,
        });
        Assert.Equal(expected.Predictions, actual.Predictions);
        Assert.Equal(expected.Lower, actual.Lower);
        Assert.Equal(expected.Upper, actual.Upper);
        Assert.Equal(expected.Rmse, actual.Rmse);
        Assert.Equal(expected.ErrorSamples, actual.ErrorSamples);
    }

    private static void AssertNotABuffer(StreamState s, StepResult r)
    {
        var a = s.LatestAnswer;
        foreach (var array in new object[] { r.Predictions, r.Lower, r.Upper, r.Rmse, r.ErrorSamples })
            foreach (var buffer in new object[] { a.Predictions, a.Lower, a.Upper, a.Rmse, a.ErrorSamples, s.ErrorSamples, s.Pending })
                Assert.False(ReferenceEquals(array, buffer), "an answer handed out shares an array with the stream's state");
    }

    [Fact]
    public void Answers_handed_out_never_change_when_later_steps_overwrite_the_buffers()
    {
        var (s, model) = BoundStream();
        var answers = new List<(StepResult Result, (float[] P, float[] L, float[] U, float[] R, long[] E) Values)>();
        float[]? buffer = null;
        for (long seq = 1; seq <= 12; seq++)
        {
            var result = StreamComputation.Step(s, "s/1", TestSupport.Obs(seq), model, Options);
            AssertNotABuffer(s, result);
            answers.Add((result, Copy(result)));
            // Steady stepping reuses the same buffers (no new array per step once K is known).
            if (buffer is not null) Assert.Same(buffer, s.LatestAnswer.Predictions);
            buffer = s.LatestAnswer.Predictions;
        }
        foreach (var (result, values) in answers)
        {
            Assert.Equal(values.P, result.Predictions);
            Assert.Equal(values.L, result.Lower);
            Assert.Equal(values.U, result.Upper);
            Assert.Equal(values.R, result.Rmse);
            Assert.Equal(values.E, result.ErrorSamples);
        }
        // The answers were different from step to step, so an answer that followed the buffers would have shown it.
        Assert.NotEqual(answers[0].Values.P, answers[^1].Values.P);
    }

    [Fact]
    public void A_retry_gets_the_identical_answer_and_changing_it_changes_nothing()
    {
        var (s, model) = BoundStream();
        StepResult last = null!;
        for (long seq = 1; seq <= 6; seq++) last = StreamComputation.Step(s, "s/1", TestSupport.Obs(seq), model, Options);

        var retry = StreamComputation.Duplicate(s, "s/1");
        Assert.True(retry.Duplicate);
        AssertSameAnswer(last, retry, duplicate: true);
        AssertNotABuffer(s, retry);

        // A caller scribbling on its copy (in-silo callers get the object itself) cannot reach the stream.
        retry.Predictions[0] = float.NaN;
        last.Lower[1] = float.NaN;
        AssertSameAnswer(StreamComputation.Duplicate(s, "s/1"), s.Latest!, duplicate: false);
        Assert.False(float.IsNaN(s.Latest!.Predictions[0]));
        Assert.False(float.IsNaN(s.Latest!.Lower[1]));
        Assert.False(s.Latest!.Duplicate);
    }

    [Fact]
    public void A_clone_owns_its_answer_and_a_rebind_forgets_it()
    {
        var (s, model) = BoundStream();
        var first = StreamComputation.Step(s, "s/1", TestSupport.Obs(1), model, Options);
        var clone = s.Clone();
        StreamComputation.Step(clone, "s/1", TestSupport.Obs(2), model, Options);
        AssertSameAnswer(first, s.Latest!, duplicate: false);   // the original (the state a failed batch falls back to) is untouched
        Assert.Equal(2, clone.Latest!.Sequence);

        StreamComputation.Bind(clone, model, historyCapacity: 16, chunkSize: 4);
        Assert.Null(clone.Latest);
        Assert.Empty(StreamComputation.Duplicate(clone, "s/1").Predictions);   // the bare marker, as before any answer
    }

    [Fact]
    public void Setting_latest_copies_and_reading_it_back_round_trips_through_the_codec()
    {
        var (s, model) = BoundStream();
        for (long seq = 1; seq <= 3; seq++) StreamComputation.Step(s, "s/1", TestSupport.Obs(seq), model, Options);
        var given = new StepResult("s/1", 99, TestSupport.Start, [1f, 2f], [0f, 1f], [2f, 3f], [0.5f, 0.5f], [7, 6], null, 4, false, 42);
        s.Latest = given;
        given.Predictions[0] = -1f;   // the state copied the values in
        Assert.Equal([1f, 2f], s.Latest!.Predictions);

        var back = StreamStateCodec.Read<StreamState>(StreamStateCodec.ToArray(s));
        AssertSameAnswer(s.Latest!, back.Latest!, duplicate: false);
        Assert.Null(back.Latest!.PreviousError);
    }

    /// <summary>
    /// The record of a fixed state, as the build before the in-place answer buffers wrote it (hex captured from that
    /// build's <see cref="StreamStateCodec.ToArray"/>, format version 1), and as the next one wrote it (version 2). Both
    /// still read to the same state, which this build writes as version 3.
    /// </summary>
    [Fact]
    public void The_record_bytes_are_those_of_the_previous_build()
    {
        var t = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.FromHours(1));
        var s = new StreamState
        {
            ModelName = "m", WeightsVersion = 3, InputSize = 1, Horizons = 2, ModelInputSize = 1, HistoryCapacity = 4,
            Hidden = [0.5f, -1.25f], Cell = [2f, 0.125f], HasSequence = true, LastSequence = 7, LastTimestamp = t, StepCount = 5, NormCount = 5,
            Mean = [1.5], M2 = [0.75], ErrorMeanSquare = [0.25, 0.5], ErrorSamples = [4, 3], Pending = [1f, 2f, 3f, 4f], Generation = 1, ClosedCount = 2,
            Tail = new ObservationChunk { StartIndex = 2, Count = 1, Sequences = [7, 0], Ticks = [t.UtcTicks, 0], Values = [9f, 0f], Inputs = [0.3f, 0f] },
            Latest = new StepResult("s/1", 7, t, [1.5f, 2.5f], [1f, 2f], [2f, 3f], [0.25f, 0.5f], [4, 3], -0.5f, 3, false, 5),
        };
        const string Expected =
            "FF4C5301010000008D010000010000006D030000000000000001000000020000000100000004000000020000000000003F0000A0BF02000000000000400000003E" +
            "0107000000000000008000B796AB49DE083C000500000000000000050000000000000001000000000000000000F83F01000000000000000000E83F02000000000000" +
            "000000D03F000000000000E03F0200000004000000000000000300000000000000040000000000803F00000040000040400000804001000000000000000200000000" +
            "000000010200000000000000010000000200000007000000000000000000000000000000020000008098F234A349DE080000000000000000020000000000104100000000" +
            "020000009A99993E000000000103000000732F3107000000000000008000B796AB49DE083C00020000000000C03F00002040020000000000803F0000004002000000" +
            "0000004000004040020000000000803E0000003F020000000400000000000000030000000000000001000000BF030000000000000000050000000000000048847723";
        // Version 2 of the same state, captured from the build that wrote it: the tail's arrays (length 2, one entry in use) hold
        // only that entry, and the state ends with the "no pending chunk carried" byte.
        const string ExpectedV2 =
            "FF4C53010200000086010000010000006D030000000000000001000000020000000100000004000000020000000000003F0000A0BF02000000000000400000003E" +
            "0107000000000000008000B796AB49DE083C000500000000000000050000000000000001000000000000000000F83F01000000000000000000E83F020000000000" +
            "00000000D03F000000000000E03F0200000004000000000000000300000000000000040000000000803F0000004000004040000080400100000000000000020000" +
            "0000000000010200000000000000010000000200000001000000070000000000000002000000010000008098F234A349DE08020000000100000000001041020000" +
            "00010000009A99993E0103000000732F3107000000000000008000B796AB49DE083C00020000000000C03F00002040020000000000803F00000040020000000000" +
            "004000004040020000000000803E0000003F020000000400000000000000030000000000000001000000BF0300000000000000000500000000000000008182D4BB";
        // Version 3, captured from this build: the tail's sequence numbers and timestamps are integer columns with an
        // encoding byte (one entry: raw).
        const string ExpectedV3 =
            "FF4C53010300000088010000010000006D030000000000000001000000020000000100000004000000020000000000003F0000A0BF0200000000000040000000" +
            "3E0107000000000000008000B796AB49DE083C000500000000000000050000000000000001000000000000000000F83F01000000000000000000E83F02000000" +
            "000000000000D03F000000000000E03F0200000004000000000000000300000000000000040000000000803F0000004000004040000080400100000000000000" +
            "02000000000000000102000000000000000100000002000000010000000007000000000000000200000001000000008098F234A349DE08020000000100000000" +
            "00104102000000010000009A99993E0103000000732F3107000000000000008000B796AB49DE083C00020000000000C03F00002040020000000000803F000000" +
            "40020000000000004000004040020000000000803E0000003F020000000400000000000000030000000000000001000000BF0300000000000000000500000000" +
            "000000008A6F50B0";
        Assert.Equal(ExpectedV3, Convert.ToHexString(StreamStateCodec.ToArray(s)));

        // The version-1 and version-2 records read to the same state: written again, each is the version-3 record of s.
        foreach (var old in new[] { Expected, ExpectedV2, ExpectedV3 })
            Assert.Equal(ExpectedV3, Convert.ToHexString(StreamStateCodec.ToArray(StreamStateCodec.Read<StreamState>(Convert.FromHexString(old)))));
    }
}
