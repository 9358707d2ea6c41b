using System.Buffers;
using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Storage;
using LstmOrleans.Lstm;
using LstmOrleans.Persistence.GroupCommit;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Storage;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// Bytes allocated on the calling thread by each pure step of single and batch ingest on the valid path, outside
/// Orleans (as <see cref="BatchValidationAllocationTests"/> does for batch validation): every ingest runs these, so an
/// allocation added to any of them is paid on every call. Steps that need allocate nothing are held at zero; where an
/// allocation is the answer itself (a <see cref="StepResult"/> and its arrays, a <see cref="BatchForecast"/>'s columns)
/// the test asserts exactly those objects, sized by allocating them here, so one more object shows.
/// Each test warms up first (the LSTM's per-thread scratch, the pools' thread caches, the ETag strings), then measures
/// many calls on this thread only (nothing in the measured region goes to the thread pool).
/// </summary>
public sealed class IngestAllocationTests
{
    private const int Calls = 50;

    /// <summary>Bytes <paramref name="call"/> allocates on this thread, in total over <paramref name="calls"/> calls after a warm-up of 3.</summary>
    private static long Allocated(int calls, Action call)
    {
        for (int i = 0; i < 3; i++) call();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < calls; i++) call();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    /// <summary>The size of the object <paramref name="make"/> allocates (measured, so it holds on any runtime's layout).</summary>
    private static long SizeOf(Func<object> make)
    {
        make();
        long before = GC.GetAllocatedBytesForCurrentThread();
        GC.KeepAlive(make());
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    private static long ArraySize<T>(int length) => length == 0 ? 0 : SizeOf(() => new T[length]);

    /// <summary>A StepResult with K-long arrays: the record and its five arrays, each new per answer.</summary>
    private static long StepResultSize(int k) =>
        SizeOf(() => new StepResult("s", 1, default, [], [], [], [], [], null, 1, false, 1)) + 4 * ArraySize<float>(k) + ArraySize<long>(k);

    private static void AssertAllocated(long expectedPerCall, long total, int calls, string what) =>
        Assert.True(total == expectedPerCall * calls,
            $"{what}: {total / (double)calls:0.##} bytes allocated per call, expected exactly {expectedPerCall}");

    /// <summary>A bound stream (history N, chunk C) of <paramref name="config"/>'s model, and that model.</summary>
    private static (StreamState State, CachedModel Model) NewStream(ModelConfig config, int historyCapacity = 512, int chunkSize = 64)
    {
        var parameters = LstmParameters.InitializeUniform(new LstmConfig(config.ModelInputSize, config.HiddenSize, config.Layers, config.Horizons), seed: 5);
        var model = new CachedModel("alloc", Version: 1, Epoch: 1, config, LstmWeights.From(parameters));
        var state = new StreamState();
        StreamComputation.Bind(state, model, historyCapacity, chunkSize);
        return (state, model);
    }

    public static TheoryData<string> Models => ["small", "calendar", "large"];

    /// <summary>
    /// small: D = 2, K = 3, L = 2, H = 8 (the scratch of a step on the stack); calendar: the same with two calendar
    /// features (D_in = 4); large: H = 128, so the previous h and c (2 L H = 512 floats) no longer fit the stack and are rented.
    /// </summary>
    private static ModelConfig Config(string name) => name switch
    {
        "small" => TestSupport.SmallConfig(seed: 5),
        "calendar" => TestSupport.SmallConfig(seed: 5) with { CalendarFeatures = ["hour_sin", "weekday_cos"] },
        "large" => TestSupport.SmallConfig(seed: 5) with { HiddenSize = 128 },
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    private static readonly StreamGrainOptions Options = new();

    [Fact]
    public void Checking_a_single_value_allocates_nothing()
    {
        var observation = TestSupport.Obs(7);
        long total = Allocated(Calls, () =>
        {
            StreamComputation.ValidateValues(observation, 2);
            StreamComputation.ValidateSequence(observation.Sequence);
            StreamComputation.ValidateSequence(observation.Sequence, batchIndex: 3);
        });
        AssertAllocated(0, total, Calls, "ValidateValues + ValidateSequence");
    }

    /// <summary>
    /// The arithmetic of a step (statistics and normalisation, calendar inputs, the LSTM step, the finiteness check,
    /// the tail append, scoring): all in scratch, nothing allocated, until a full tail closes.
    /// </summary>
    [Theory]
    [MemberData(nameof(Models))]
    public void A_step_into_scratch_allocates_nothing(string modelName)
    {
        var (s, model) = NewStream(Config(modelName));
        int k = s.Horizons;
        var predictions = new float[k];
        var rmse = new double[k];
        // Within the first tail chunk (C = 64): no chunk closes.
        var observations = Enumerable.Range(1, Calls + 3).Select(i => TestSupport.Obs(i)).ToArray();
        int next = 0;
        long total = Allocated(Calls, () =>
        {
            var o = observations[next++];
            StreamComputation.StepInto(s, o.Sequence, o.Timestamp, o.Values, model, Options.ErrorSmoothing, predictions, rmse);
        });
        Assert.Equal(Calls + 3, s.StepCount);
        Assert.Null(s.PendingClosed);
        AssertAllocated(0, total, Calls, "StepInto");
    }

    /// <summary>A single value's step allocates its answer (a StepResult and its five K-long arrays) and nothing else.</summary>
    [Theory]
    [MemberData(nameof(Models))]
    public void A_single_step_allocates_only_its_answer(string modelName)
    {
        var (s, model) = NewStream(Config(modelName));
        var observations = Enumerable.Range(1, Calls + 3).Select(i => TestSupport.Obs(i)).ToArray();
        int next = 0;
        long total = Allocated(Calls, () => StreamComputation.Step(s, "s/1", observations[next++], model, Options));
        Assert.Null(s.PendingClosed);
        AssertAllocated(StepResultSize(s.Horizons), total, Calls, "Step (no chunk closing)");
    }

    /// <summary>
    /// The step that closes a full tail also allocates the pending closed chunk (its object and four arrays of C rows),
    /// and the write that follows takes that chunk as its record: <see cref="StreamComputation.ClosedChunksToWrite"/>
    /// returns it, not a copy, in a one-element list.
    /// </summary>
    [Fact]
    public void Closing_a_chunk_allocates_the_pending_chunk_and_writes_it_without_a_copy()
    {
        const int chunkSize = 64;
        var (s, model) = NewStream(Config("calendar"), chunkSize: chunkSize);
        int d = s.InputSize, w = s.InputWidth;
        long sequence = 0;
        for (int i = 0; i < 3 * chunkSize; i++) StreamComputation.Step(s, "s/1", TestSupport.Obs(++sequence), model, Options);
        StreamComputation.ClosedChunksToWrite(s);
        s.PendingClosed = null;   // as the write does

        long stepBytes = 0, chunkListBytes = 0;
        const int closes = 10;
        for (int close = 0; close < closes; close++)
        {
            // Steps up to a full tail (measured in the single-step test), then the step that closes it and the write's list.
            while (s.Tail.Count < s.Tail.Capacity) StreamComputation.Step(s, "s/1", TestSupport.Obs(++sequence), model, Options);
            var observation = TestSupport.Obs(++sequence);
            long before = GC.GetAllocatedBytesForCurrentThread();
            StreamComputation.Step(s, "s/1", observation, model, Options);
            long afterStep = GC.GetAllocatedBytesForCurrentThread();
            var chunks = StreamComputation.ClosedChunksToWrite(s);
            chunkListBytes += GC.GetAllocatedBytesForCurrentThread() - afterStep;
            stepBytes += afterStep - before;

            var pending = s.PendingClosed!;
            Assert.Equal(chunkSize, pending.Count);
            Assert.Same(pending, Assert.Single(chunks));
            // The record is the one a copy cut at the chunk's boundaries would be, byte for byte.
            var copy = ObservationChunk.Create(pending.StartIndex, chunkSize, d, w);
            for (int i = 0; i < chunkSize; i++) copy.AppendFrom(pending, i, d, w);
            Assert.Equal(StreamStateCodec.ToArray(new StreamHistory { Generation = s.Generation, Closed = copy }),
                StreamStateCodec.ToArray(new StreamHistory { Generation = s.Generation, Closed = chunks[0] }));
            s.PendingClosed = null;
        }

        long chunk = SizeOf(() => new ObservationChunk()) + 2 * ArraySize<long>(chunkSize) + ArraySize<float>(chunkSize * d) + ArraySize<float>(chunkSize * w);
        var one = new ObservationChunk();
        AssertAllocated(StepResultSize(s.Horizons) + chunk, stepBytes, closes, "the step that closes a chunk");
        AssertAllocated(SizeOf(() => (List<ObservationChunk>)[one]), chunkListBytes, closes, "ClosedChunksToWrite of one closed chunk");
    }

    /// <summary>A stream state with a full tail, a last answer and (for the history record) a closed chunk, as written by a step.</summary>
    private static (StreamState Core, StreamHistory History) SteppedRecords()
    {
        var (s, model) = NewStream(Config("calendar"));
        for (long sequence = 1; sequence <= 100; sequence++) StreamComputation.Step(s, "s/1", TestSupport.Obs(sequence), model, Options);
        var closed = Assert.Single(StreamComputation.ClosedChunksToWrite(s));
        s.PendingClosed = null;
        return (s, new StreamHistory { Generation = s.Generation, Closed = closed });
    }

    /// <summary>The codec writes a core record and a closed-history record into a reused buffer without allocating.</summary>
    [Fact]
    public void The_codec_writes_the_core_and_a_history_record_without_allocating()
    {
        var (core, history) = SteppedRecords();
        var serializer = new StreamStateCodecSerializer(new ThrowingSerializer());
        var buffer = new ArrayBufferWriter<byte>(8192);
        var span = new byte[8192];

        long coreBytes = Allocated(Calls, () => { buffer.ResetWrittenCount(); serializer.Serialize(core, buffer); });
        Assert.Equal(StreamStateCodec.ToArray(core), buffer.WrittenSpan.ToArray());
        long historyBytes = Allocated(Calls, () => { buffer.ResetWrittenCount(); serializer.Serialize(history, buffer); });
        Assert.Equal(StreamStateCodec.ToArray(history), buffer.WrittenSpan.ToArray());
        long direct = Allocated(Calls, () =>
        {
            StreamStateCodec.Write(core, span.AsSpan(0, StreamStateCodec.GetSize(core)));
            StreamStateCodec.Write(history, span.AsSpan(0, StreamStateCodec.GetSize(history)));
        });

        AssertAllocated(0, coreBytes, Calls, "codec write of the core record");
        AssertAllocated(0, historyBytes, Calls, "codec write of a history record");
        AssertAllocated(0, direct, Calls, "StreamStateCodec.GetSize + Write");
    }

    /// <summary>
    /// The memory store writes a core, and a core with its closed chunk (a chunk close), into its buffers without
    /// allocating: the ETag strings of versions below 65,536 are made once (warmed here), everything else is reused.
    /// </summary>
    [Fact]
    public async Task The_memory_store_writes_a_core_and_a_core_with_its_chunk_without_allocating()
    {
        var (core, history) = SteppedRecords();
        for (long version = 1; version <= 4 * Calls + 10; version++) EtagFormat.Format(version);
        var storage = new LocalMemoryGrainStorage("alloc", new LocalMemoryGrainStorageOptions { GrainStorageSerializer = new StreamStateCodecSerializer(new ThrowingSerializer()) },
            NullLogger<LocalMemoryGrainStorage>.Instance);
        var grain = GrainId.Create("stream", "alloc");
        var state = new GrainState<StreamState>(core);
        var companions = new KeyValuePair<string, StreamHistory>[] { new("history.1", history) };

        long coreBytes = Allocated(Calls, () => storage.WriteStateAsync("stream", grain, state));
        long withChunkBytes = Allocated(Calls, () => storage.WriteStateWithCompanionsAsync("stream", grain, state, companions));

        var read = new GrainState<StreamHistory>();
        await storage.ReadStateAsync("history.1", grain, read);
        Assert.Equal(StreamStateCodec.ToArray(history), StreamStateCodec.ToArray(read.State!));
        AssertAllocated(0, coreBytes, Calls, "memory store WriteStateAsync of the core");
        AssertAllocated(0, withChunkBytes, Calls, "memory store WriteStateWithCompanionsAsync of the core and one chunk");
    }

    /// <summary>
    /// A batch's steps allocate its answer (the <see cref="BatchForecast"/>, its three byte columns and the last error
    /// sample counts) and nothing else: the forecasts are computed in pooled arrays, and the last element's answer goes
    /// straight into the stream's answer buffers.
    /// </summary>
    [Theory]
    [InlineData(0)]   // all new
    [InlineData(4)]   // a duplicate prefix of 4
    public void A_batch_step_allocates_only_its_answer(int duplicates)
    {
        const int count = 16;
        var (s, model) = NewStream(Config("small"));
        for (long sequence = 1; sequence <= 10; sequence++) StreamComputation.Step(s, "s/1", TestSupport.Obs(sequence), model, Options);
        var batch = ObservationBatch.From(Enumerable.Range(11 - duplicates, count).Select(i => TestSupport.Obs(i)).ToArray(), 2);
        Assert.Equal(duplicates, StreamComputation.ValidateBatch(s, batch, 2));
        var duplicateAnswer = duplicates > 0 ? StreamComputation.Duplicate(s, "s/1") : null;
        // Each call steps its own copy of the same stream (copies made before the measurement; the tail of 10 + 16 does not close).
        var copies = Enumerable.Range(0, Calls + 3).Select(_ => s.Clone()).ToArray();
        int next = 0;
        BatchForecast? forecast = null;
        long total = Allocated(Calls, () => forecast = StreamComputation.StepBatch(copies[next++], "s/1", batch, duplicates, duplicateAnswer, model, Options));

        int m = count - duplicates, k = s.Horizons;
        Assert.Null(copies[^1].PendingClosed);
        // The answer still matches its row form, which is what the stream keeps as its last answer.
        Assert.Equal(forecast!.StepResultAt(m - 1, batch.Sequences[count - 1], batch.Timestamp(count - 1)) with { Predictions = [], Lower = [], Upper = [], Rmse = [], ErrorSamples = [] },
            copies[^1].Latest! with { Predictions = [], Lower = [], Upper = [], Rmse = [], ErrorSamples = [] });
        AssertAllocated(BatchAnswerSize(count, duplicates, k), total, Calls, $"StepBatch of {m} new values");
    }

    /// <summary>A batch's answer in columns: the <see cref="BatchForecast"/>, its three byte columns and the last error sample counts.</summary>
    private static long BatchAnswerSize(int count, int duplicates, int k)
    {
        int m = count - duplicates;
        return SizeOf(() => new BatchForecast("s", count, k, duplicates, null, 1, 1, 1, [], default, default, default))
            + ArraySize<byte>(m * k * sizeof(float)) + ArraySize<byte>(m * k * sizeof(double)) + ArraySize<byte>(m * sizeof(float)) + ArraySize<long>(k);
    }

    /// <summary>
    /// A batch small enough for the grain's turn goes through the offloading step (the grain's only way to step a batch)
    /// allocating only its answer: no closure, task or delegate for the thread pool it does not use.
    /// </summary>
    [Fact]
    public async Task A_batch_stepped_in_the_callers_turn_allocates_only_its_answer()
    {
        const int count = 16;
        var (s, model) = NewStream(Config("small"));
        for (long sequence = 1; sequence <= 10; sequence++) StreamComputation.Step(s, "s/1", TestSupport.Obs(sequence), model, Options);
        var batch = ObservationBatch.From(Enumerable.Range(11, count).Select(i => TestSupport.Obs(i)).ToArray(), 2);
        Assert.False(StreamComputation.ShouldOffload(model, count, Options));
        var copies = Enumerable.Range(0, Calls + 3).Select(_ => s.Clone()).ToArray();
        int next = 0;
        ValueTask<BatchForecast> stepped = default;
        long total = Allocated(Calls, () => stepped = StreamComputation.StepBatchOffloadingAsync(copies[next++], "s/1", batch, 0, null, model, null, Options));

        Assert.True(stepped.IsCompletedSuccessfully);   // in the caller's turn: complete when returned
        Assert.Equal(count, (await stepped).NewCount);
        Assert.Equal(10 + count, copies[^1].StepCount);
        AssertAllocated(BatchAnswerSize(count, 0, s.Horizons), total, Calls, $"StepBatchOffloadingAsync of {count} values in the caller's turn");
    }

    /// <summary>The last answer a batch leaves is exactly the row answer of its last element (what the stream returns to a retry).</summary>
    [Fact]
    public void A_batch_leaves_the_row_answer_of_its_last_element_as_the_last_answer()
    {
        var (s, model) = NewStream(Config("calendar"));
        for (long sequence = 1; sequence <= 5; sequence++) StreamComputation.Step(s, "s/1", TestSupport.Obs(sequence), model, Options);
        var batch = ObservationBatch.From(Enumerable.Range(6, 9).Select(i => TestSupport.Obs(i)).ToArray(), 2);
        var forecast = StreamComputation.StepBatch(s, "s/1", batch, 0, null, model, Options);
        var expected = forecast.ToStepResults(batch)[^1];
        var latest = s.Latest!;
        Assert.Equal(expected with { Predictions = [], Lower = [], Upper = [], Rmse = [], ErrorSamples = [] },
            latest with { Predictions = [], Lower = [], Upper = [], Rmse = [], ErrorSamples = [] });
        Assert.Equal(expected.Predictions, latest.Predictions);
        Assert.Equal(expected.Lower, latest.Lower);
        Assert.Equal(expected.Upper, latest.Upper);
        Assert.Equal(expected.Rmse, latest.Rmse);
        Assert.Equal(expected.ErrorSamples, latest.ErrorSamples);
    }

    /// <summary>Rows put in columns (IngestBatchAsync, IngestAfterLastAsync): the batch and its columns, each allocated once.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]    // readings with a clock offset: the offsets column too
    public void Rows_are_put_in_columns_allocating_only_the_columns(bool withOffsets)
    {
        const int count = 64, d = 2;
        var rows = Enumerable.Range(1, count).Select(i => TestSupport.Obs(i))
            .Select(o => withOffsets ? o with { Timestamp = o.Timestamp.ToOffset(TimeSpan.FromHours(2)) } : o).ToArray();
        ObservationBatch? batch = null;
        long total = Allocated(Calls, () => batch = ObservationBatch.From(rows, d));

        Assert.Equal(rows, batch!.ToObservations(), new ObservationComparer());
        AssertAllocated(ColumnsSize(count, d, withOffsets), total, Calls, $"ObservationBatch.From of {count} rows");
    }

    /// <summary>An <see cref="ObservationBatch"/> of <paramref name="count"/> rows of <paramref name="d"/> values: the object and its columns.</summary>
    private static long ColumnsSize(int count, int d, bool withOffsets) =>
        SizeOf(() => new ObservationBatch([], [], []))
        + 2 * ArraySize<byte>(count * sizeof(long)) + ArraySize<byte>(count * d * sizeof(float)) + (withOffsets ? ArraySize<byte>(count * sizeof(short)) : 0);

    /// <summary>
    /// Readings sent without sequence numbers (IngestAfterLastAsync) are checked, numbered after the stream's last
    /// sequence, stamped where they have no timestamp and put in columns allocating only the columns: no
    /// <see cref="Observation"/> per reading on the way. The batch is the one the numbered observations make.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]    // readings with a clock offset: the offsets column too
    public void Readings_without_sequence_numbers_are_numbered_into_columns_allocating_only_the_columns(bool withOffsets)
    {
        const int count = 64, d = 2;
        const long first = 1_001;
        var now = new DateTimeOffset(2026, 11, 28, 12, 0, 0, TimeSpan.Zero);
        // Every third reading without a timestamp: stamped with the grain's clock.
        var readings = Enumerable.Range(1, count).Select(i => TestSupport.Obs(i))
            .Select(o => new UnnumberedObservation(o.Sequence % 3 == 0 ? null : withOffsets ? o.Timestamp.ToOffset(TimeSpan.FromHours(2)) : o.Timestamp, o.Values))
            .ToArray();
        ObservationBatch? batch = null;
        long total = Allocated(Calls, () => batch = StreamComputation.NumberAfterLast(readings, first, now, d));

        var numbered = readings.Select((r, j) => new Observation(first + j, r.Timestamp ?? now, r.Values)).ToArray();
        Assert.Equal(numbered, batch!.ToObservations(), new ObservationComparer());
        AssertAllocated(ColumnsSize(count, d, withOffsets), total, Calls, $"NumberAfterLast of {count} readings");
    }

    /// <summary>A batch's row answers: a StepResult and its arrays per element, and the array of them.</summary>
    [Fact]
    public void Row_answers_of_a_batch_allocate_a_step_result_per_element()
    {
        const int count = 16;
        var (s, model) = NewStream(Config("small"));
        var batch = ObservationBatch.From(Enumerable.Range(1, count).Select(i => TestSupport.Obs(i)).ToArray(), 2);
        var forecast = StreamComputation.StepBatch(s, "s/1", batch, 0, null, model, Options);
        long total = Allocated(Calls, () => forecast.ToStepResults(batch));
        AssertAllocated(count * StepResultSize(s.Horizons) + SizeOf(() => new StepResult[count]), total, Calls, "ToStepResults");
    }

    /// <summary>The copy a batch computes on (so a failed write leaves the stream as it was): the state's own objects and arrays, once each.</summary>
    [Fact]
    public void The_copy_a_batch_computes_on_allocates_each_state_array_once()
    {
        var (s, model) = NewStream(Config("calendar"));
        for (long sequence = 1; sequence <= 10; sequence++) StreamComputation.Step(s, "s/1", TestSupport.Obs(sequence), model, Options);
        long total = Allocated(Calls, () => s.Clone());

        var a = s.LatestAnswer;
        var t = s.Tail;
        long arrays = ArraySize<float>(s.Hidden.Length) + ArraySize<float>(s.Cell.Length) + ArraySize<double>(s.Mean.Length) + ArraySize<double>(s.M2.Length)
            + ArraySize<double>(s.ErrorMeanSquare.Length) + ArraySize<long>(s.ErrorSamples.Length) + ArraySize<float>(s.Pending.Length)
            + ArraySize<long>(t.Sequences.Length) + ArraySize<long>(t.Ticks.Length) + ArraySize<float>(t.Values.Length) + ArraySize<float>(t.Inputs.Length)
            + 4 * ArraySize<float>(a.Predictions.Length) + ArraySize<long>(a.ErrorSamples.Length);
        // new StreamState() is the state, its answer buffers' object and the default empty tail (which the copy's initializer replaces).
        long expected = SizeOf(() => new StreamState()) + SizeOf(() => new ObservationChunk()) + arrays;
        AssertAllocated(expected, total, Calls, "StreamState.Clone");
    }

    private sealed class ObservationComparer : IEqualityComparer<Observation>
    {
        public bool Equals(Observation? x, Observation? y) =>
            x!.Sequence == y!.Sequence && x.Timestamp.EqualsExact(y.Timestamp) && x.Values.AsSpan().SequenceEqual(y.Values);

        public int GetHashCode(Observation obj) => obj.Sequence.GetHashCode();
    }

    /// <summary>The inner serializer of the codec decorator, never reached for the stream records.</summary>
    private sealed class ThrowingSerializer : IGrainStorageSerializer
    {
        public BinaryData Serialize<T>(T? input) => throw new InvalidOperationException("not a stream record");
        public T Deserialize<T>(BinaryData input) => throw new InvalidOperationException("not a stream record");
    }
}
