using System.Buffers;
using System.Reflection;
using System.Runtime.InteropServices;
using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Storage;
using LstmOrleans.Persistence.GroupCommit;
using LstmOrleans.Persistence.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Hosting;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.TestingHost;

namespace LstmOrleans.Grains.Tests;

/// <summary>Round trips, old-format reads and malformed records of <see cref="StreamStateCodec"/> and its serializer decorator.</summary>
public sealed class StreamStateCodecTests
{
    private static readonly Serializer OrleansSerializer = new ServiceCollection()
        .AddSerializer(b => b.AddAssembly(typeof(StreamState).Assembly).AddAssembly(typeof(StepResult).Assembly))
        .BuildServiceProvider().GetRequiredService<Serializer>();

    /// <summary>
    /// A stream core state with every member set to a distinct non-default value. Shapes: D values per observation,
    /// D_in model inputs, K horizons, L*H state, tail capacity C holding <paramref name="tailCount"/> observations.
    /// </summary>
    internal static StreamState Sample(int d = 1, int dIn = 1, int k = 1, int stateSize = 32, int capacity = 32, int tailCount = 32,
        bool latest = true, bool previousError = true, string modelName = "default", string streamId = "sensor-000042", int seed = 7)
    {
        var random = new Random(seed);
        float F() => (float)(random.NextDouble() * 200 - 100);
        float[] Fs(int n) => Enumerable.Range(0, n).Select(_ => F()).ToArray();
        double[] Ds(int n) => Enumerable.Range(0, n).Select(_ => random.NextDouble() * 1e6 - 5e5).ToArray();
        long[] Ls(int n) => Enumerable.Range(0, n).Select(_ => random.NextInt64(long.MinValue, long.MaxValue)).ToArray();

        var tail = ObservationChunk.Create(startIndex: 4096 + seed, capacity, d, dIn);
        Ls(capacity).CopyTo(tail.Sequences, 0);
        Ls(capacity).Select(t => t & 0x0FFF_FFFF_FFFF_FFFF).ToArray().CopyTo(tail.Ticks, 0);
        Fs(capacity * d).CopyTo(tail.Values, 0);
        Fs(capacity * dIn).CopyTo(tail.Inputs, 0);
        tail.Count = tailCount;
        var timestamp = new DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.FromMinutes(330)).AddTicks(1234567);
        return new StreamState
        {
            ModelName = modelName,
            WeightsVersion = 3 + seed,
            InputSize = d,
            Horizons = k,
            ModelInputSize = dIn,
            HistoryCapacity = 256,
            Hidden = Fs(stateSize),
            Cell = Fs(stateSize),
            HasSequence = true,
            LastSequence = 10_031,
            LastTimestamp = timestamp,
            StepCount = 4128,
            NormCount = 4127,
            Mean = Ds(d),
            M2 = Ds(d),
            ErrorMeanSquare = Ds(k),
            ErrorSamples = Ls(k),
            Pending = Fs(k * k),
            Generation = 5,
            ClosedCount = 4096 + seed,
            Tail = tail,
            Latest = latest
                ? new StepResult(streamId, 10_031, timestamp.AddMinutes(-90).ToOffset(TimeSpan.FromHours(-8)), Fs(k), Fs(k), Fs(k), Fs(k), Ls(k),
                    previousError ? F() : null, 3 + seed, Duplicate: true, 4128)
                : null,
        };
    }

    // ---- field-by-field comparison (bit-exact floats, offsets and clock ticks of timestamps) ----

    private static void AssertBits<T>(T[]? expected, T[]? actual, string name) where T : unmanaged
    {
        Assert.True(expected is null == actual is null, $"{name}: null mismatch");
        if (expected is null) return;
        Assert.True(MemoryMarshal.AsBytes(expected.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(actual.AsSpan())), $"{name}: contents differ");
    }

    private static void AssertSame(DateTimeOffset expected, DateTimeOffset actual, string name)
    {
        Assert.True(expected.Ticks == actual.Ticks && expected.Offset == actual.Offset, $"{name}: {expected:O} != {actual:O}");
    }

    internal static void AssertSame(ObservationChunk? expected, ObservationChunk? actual)
    {
        Assert.True(expected is null == actual is null, "chunk null mismatch");
        if (expected is null) return;
        Assert.Equal(expected.StartIndex, actual!.StartIndex);
        Assert.Equal(expected.Count, actual.Count);
        int capacity = expected.Sequences?.Length ?? 0;
        AssertEntries(expected.Sequences, actual.Sequences, expected.Count, capacity, "Sequences");
        AssertEntries(expected.Ticks, actual.Ticks, expected.Count, capacity, "Ticks");
        AssertEntries(expected.Values, actual.Values, expected.Count, capacity, "Values");
        AssertEntries(expected.Inputs, actual.Inputs, expected.Count, capacity, "Inputs");
    }

    /// <summary>
    /// A chunk array keeps its length and, bit for bit, its first <paramref name="count"/> rows (the entries in use);
    /// what lies beyond them is not part of the chunk (a record stores only the rows in use).
    /// </summary>
    private static void AssertEntries<T>(T[]? expected, T[]? actual, int count, int capacity, string name) where T : unmanaged
    {
        Assert.True(expected is null == actual is null, $"{name}: null mismatch");
        if (expected is null) return;
        Assert.Equal(expected.Length, actual!.Length);
        int used = capacity == 0 || expected.Length % capacity != 0 ? expected.Length : Math.Min(expected.Length, count * (expected.Length / capacity));
        AssertBits(expected[..used], actual[..used], name);
    }

    internal static void AssertSame(StepResult? expected, StepResult? actual)
    {
        Assert.True(expected is null == actual is null, "Latest null mismatch");
        if (expected is null) return;
        Assert.Equal(expected.StreamId, actual!.StreamId);
        Assert.Equal(expected.Sequence, actual.Sequence);
        AssertSame(expected.Timestamp, actual.Timestamp, "Latest.Timestamp");
        AssertBits(expected.Predictions, actual.Predictions, "Predictions");
        AssertBits(expected.Lower, actual.Lower, "Lower");
        AssertBits(expected.Upper, actual.Upper, "Upper");
        AssertBits(expected.Rmse, actual.Rmse, "Rmse");
        AssertBits(expected.ErrorSamples, actual.ErrorSamples, "Latest.ErrorSamples");
        Assert.Equal(expected.PreviousError.HasValue, actual.PreviousError.HasValue);
        if (expected.PreviousError is { } e) Assert.Equal(BitConverter.SingleToInt32Bits(e), BitConverter.SingleToInt32Bits(actual.PreviousError!.Value));
        Assert.Equal(expected.WeightsVersion, actual.WeightsVersion);
        Assert.Equal(expected.Duplicate, actual.Duplicate);
        Assert.Equal(expected.StepCount, actual.StepCount);
    }

    internal static void AssertSame(StreamState expected, StreamState actual)
    {
        Assert.Equal(expected.ModelName, actual.ModelName);
        Assert.Equal(expected.WeightsVersion, actual.WeightsVersion);
        Assert.Equal(expected.InputSize, actual.InputSize);
        Assert.Equal(expected.Horizons, actual.Horizons);
        Assert.Equal(expected.ModelInputSize, actual.ModelInputSize);
        Assert.Equal(expected.HistoryCapacity, actual.HistoryCapacity);
        AssertBits(expected.Hidden, actual.Hidden, "Hidden");
        AssertBits(expected.Cell, actual.Cell, "Cell");
        Assert.Equal(expected.HasSequence, actual.HasSequence);
        Assert.Equal(expected.LastSequence, actual.LastSequence);
        AssertSame(expected.LastTimestamp, actual.LastTimestamp, "LastTimestamp");
        Assert.Equal(expected.StepCount, actual.StepCount);
        Assert.Equal(expected.NormCount, actual.NormCount);
        AssertBits(expected.Mean, actual.Mean, "Mean");
        AssertBits(expected.M2, actual.M2, "M2");
        AssertBits(expected.ErrorMeanSquare, actual.ErrorMeanSquare, "ErrorMeanSquare");
        AssertBits(expected.ErrorSamples, actual.ErrorSamples, "ErrorSamples");
        AssertBits(expected.Pending, actual.Pending, "Pending");
        Assert.Equal(expected.Generation, actual.Generation);
        Assert.Equal(expected.ClosedCount, actual.ClosedCount);
        AssertSame(expected.Tail, actual.Tail);
        AssertSame(expected.Latest, actual.Latest);
        // Serialized only while it is to be persisted (the core write before the history records on Redis).
        Assert.Equal(expected.PersistPendingClosed, actual.PersistPendingClosed);
        AssertSame(expected.PersistPendingClosed ? expected.PendingClosed : null, actual.PendingClosed);
    }

    /// <summary>
    /// The serialized members of the record types, as Orleans sees them ([Id] attributes). A new member makes this
    /// fail: add it to <see cref="StreamStateCodec"/> (with a new format version), to <see cref="AssertSame(StreamState, StreamState)"/> and here.
    /// </summary>
    [Theory]
    [InlineData(typeof(StreamState), 23)]
    [InlineData(typeof(ObservationChunk), 6)]
    [InlineData(typeof(StreamHistory), 2)]
    [InlineData(typeof(StepResult), 12)]
    public void Every_serialized_member_is_known_to_the_codec(Type type, int members)
    {
        int count = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Count(p => p.GetCustomAttribute<IdAttribute>() is not null);
        Assert.Equal(members, count);
    }

    public static TheoryData<string> Shapes => ["realistic", "no-latest", "no-previous-error", "empty", "wide", "partial-tail", "unicode", "stored-pending", "unstored-pending"];

    /// <summary>A sample whose closed chunk is still pending (the tail's predecessor), stored in the core or not.</summary>
    private static StreamState WithPending(bool stored)
    {
        var s = Sample(capacity: 8, tailCount: 3);
        var pending = Sample(capacity: 8, tailCount: 8, seed: 11).Tail;
        pending.StartIndex = s.ClosedCount - 8;
        s.PendingClosed = pending;
        s.PersistPendingClosed = stored;
        return s;
    }

    private static StreamState Shape(string name) => name switch
    {
        "realistic" => Sample(),
        "no-latest" => Sample(latest: false),
        "no-previous-error" => Sample(previousError: false),
        "empty" => new StreamState(),
        "wide" => Sample(d: 3, dIn: 7, k: 4, stateSize: 2 * 16, capacity: 8, tailCount: 8),   // D>1, D_in>D, K>1, L*H = 2 layers of 16
        "partial-tail" => Sample(d: 2, dIn: 2, k: 3, capacity: 32, tailCount: 5),
        "unicode" => Sample(modelName: "modèle-ü-测试", streamId: "站点/温度-🌡"),
        "stored-pending" => WithPending(stored: true),
        "unstored-pending" => WithPending(stored: false),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Round_trip_keeps_every_field_bit_exact(string shape)
    {
        var state = Shape(shape);
        var bytes = StreamStateCodec.ToArray(state);
        Assert.Equal(StreamStateCodec.GetSize(state), bytes.Length);
        Assert.True(StreamStateCodec.IsCodecRecord(bytes));
        AssertSame(state, StreamStateCodec.Read<StreamState>(bytes));
    }

    [Fact]
    public void Empty_and_null_members_round_trip()
    {
        var state = new StreamState { Hidden = [], Mean = null!, Tail = null!, Latest = null, ModelName = null };
        var back = StreamStateCodec.Read<StreamState>(StreamStateCodec.ToArray(state));
        Assert.Empty(back.Hidden);
        Assert.Null(back.Mean);
        Assert.Null(back.Tail);
        Assert.Null(back.ModelName);
        AssertSame(state, back);
    }

    [Fact]
    public void A_chunk_record_holds_only_the_entries_in_use_and_reads_back_at_full_capacity()
    {
        // D = 2, D_in = 3: a row is 8 (sequence) + 8 (ticks) + 2 * 4 (values) + 3 * 4 (inputs) = 36 bytes.
        var full = Sample(d: 2, dIn: 3, capacity: 32, tailCount: 32);
        var partial = Sample(d: 2, dIn: 3, capacity: 32, tailCount: 5);
        Assert.Equal((32 - 5) * 36, StreamStateCodec.GetSize(full) - StreamStateCodec.GetSize(partial));

        var back = StreamStateCodec.Read<StreamState>(StreamStateCodec.ToArray(partial));
        Assert.Equal(32, back.Tail.Sequences.Length);
        Assert.Equal(32 * 3, back.Tail.Inputs.Length);
        Assert.Equal(partial.Tail.Sequences[..5], back.Tail.Sequences[..5]);
        Assert.All(back.Tail.Sequences[5..], v => Assert.Equal(0, v));
        Assert.All(back.Tail.Values[(5 * 2)..], v => Assert.Equal(0f, v));

        // Appending to the read-back tail fills the next row, as on the original.
        partial.Tail.AppendFrom(full.Tail, 7, 2, 3);
        back.Tail.AppendFrom(full.Tail, 7, 2, 3);
        AssertSame(partial.Tail, back.Tail);
    }

    [Fact]
    public void A_chunk_array_claiming_more_entries_than_it_has_is_refused()
    {
        var chunk = Sample(capacity: 4, tailCount: 2).Tail;
        var bytes = StreamStateCodec.ToArray(chunk);
        // Layout: header (12), StartIndex (8), Count (4), then Sequences: length (4) at 24, in use (4) at 28, the
        // encoding byte at 32 (random sequence numbers: raw), two i64; Ticks the same from 49; Values: length at 74.
        Assert.Equal(4, System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(24)));
        Assert.Equal(2, System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(28)));
        Assert.Equal(0, bytes[32]);
        Assert.Equal(4, System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(74)));
        Assert.Equal(2, System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(78)));
        foreach (var (offset, value, message) in new[]
        {
            (28, 5, "integer column"), (24, int.MaxValue / 2, "integer column"), (28, -1, "integer column"),
            (78, 5, "chunk array"), (74, int.MaxValue / 2, "chunk array"), (78, -1, "chunk array"),
        })
        {
            var bad = (byte[])bytes.Clone();
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bad.AsSpan(offset), value);
            Assert.Contains(message, Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(Reseal(bad))).Message);
        }
    }

    /// <summary>Re-seals a record after changing it, as a buggy or newer writer might produce it: only structure can refuse it.</summary>
    private static byte[] Reseal(byte[] bytes)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4),
            System.IO.Hashing.Crc32.HashToUInt32(bytes.AsSpan(0, bytes.Length - 4)));
        return bytes;
    }

    /// <summary>A chunk of <paramref name="count"/> entries (capacity 64, D = D_in = 1) with the given sequence numbers and ticks.</summary>
    private static ObservationChunk Chunk(long[] sequences, long[] ticks, int count)
    {
        var chunk = ObservationChunk.Create(startIndex: 640, capacity: 64, inputSize: 1, inputWidth: 1);
        sequences.AsSpan(0, count).CopyTo(chunk.Sequences);
        ticks.AsSpan(0, count).CopyTo(chunk.Ticks);
        for (int i = 0; i < count; i++) { chunk.Values[i] = i * 0.5f - 3; chunk.Inputs[i] = -i * 0.25f; }
        chunk.Count = count;
        return chunk;
    }

    [Fact]
    public void Regular_sequence_numbers_and_timestamps_take_a_byte_an_entry_and_irregular_ones_stay_raw()
    {
        var start = new DateTimeOffset(2026, 11, 28, 0, 0, 0, TimeSpan.Zero).UtcTicks;
        long[] regularSequences = [.. Enumerable.Range(0, 64).Select(i => 1_000_001L + i)];
        long[] regularTicks = [.. Enumerable.Range(0, 64).Select(i => start + i * TimeSpan.TicksPerMinute * 5)];
        var random = new Random(5);
        long[] randomSequences = [.. Enumerable.Range(0, 64).Select(_ => random.NextInt64(long.MinValue, long.MaxValue))];
        long[] randomTicks = [.. Enumerable.Range(0, 64).Select(_ => random.NextInt64(long.MinValue, long.MaxValue))];

        var regular = Chunk(regularSequences, regularTicks, 64);
        var irregular = Chunk(randomSequences, randomTicks, 64);
        // Each integer column: length, count in use, encoding byte, then 64 x 8 bytes raw, or the first value (8) and 63
        // varints: the first difference (1, and 3e9 ticks) in 1 and 5 bytes, every later change (0) in one.
        Assert.Equal(2 * 512 - (8 + 1 + 62) - (8 + 5 + 62), StreamStateCodec.GetSize(irregular) - StreamStateCodec.GetSize(regular));
        AssertSame(regular, StreamStateCodec.Read<ObservationChunk>(StreamStateCodec.ToArray(regular)));
        AssertSame(irregular, StreamStateCodec.Read<ObservationChunk>(StreamStateCodec.ToArray(irregular)));

        // The default core record of a stream with regular readings and a half-full tail of 64 entries: 16 bytes an entry
        // fewer than with raw columns, which is what version 2 wrote.
        var core = Sample(capacity: 64, tailCount: 32);
        var rawCore = Sample(capacity: 64, tailCount: 32);
        regularSequences.CopyTo(core.Tail.Sequences, 0);
        regularTicks.CopyTo(core.Tail.Ticks, 0);
        randomSequences.CopyTo(rawCore.Tail.Sequences, 0);
        randomTicks.CopyTo(rawCore.Tail.Ticks, 0);
        int rawColumns = 2 * (1 + 32 * 8), deltaColumns = (1 + 8 + 31) + (1 + 8 + 5 + 30);
        Assert.Equal(rawColumns - deltaColumns, StreamStateCodec.GetSize(rawCore) - StreamStateCodec.GetSize(core));
        var back = StreamStateCodec.Read<StreamState>(StreamStateCodec.ToArray(core));
        AssertSame(core, back);
    }

    [Fact]
    public void Integer_columns_round_trip_every_value_and_count()
    {
        var random = new Random(11);
        long[] edges = [long.MinValue, long.MaxValue, 0, -1, 1, long.MinValue + 1, long.MaxValue - 1, 1L << 62, -(1L << 62)];
        for (int trial = 0; trial < 400; trial++)
        {
            int count = trial < 65 ? trial : random.Next(0, 65);
            long[] Column()
            {
                var values = new long[64];
                long value = random.Next(3) == 0 ? edges[random.Next(edges.Length)] : random.NextInt64(-1000, 1000);
                long step = random.Next(4) switch { 0 => 1, 1 => TimeSpan.TicksPerSecond, 2 => edges[random.Next(edges.Length)], _ => random.NextInt64() };
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = value;
                    int kind = random.Next(10);   // mostly steady, sometimes a jump or a new step: both encodings get chosen
                    if (kind == 0) step = random.NextInt64(long.MinValue, long.MaxValue);
                    else if (kind == 1) value = edges[random.Next(edges.Length)];
                    value = unchecked(value + step);
                }
                return values;
            }
            var chunk = Chunk(Column(), Column(), count);
            var bytes = StreamStateCodec.ToArray(chunk);
            Assert.Equal(StreamStateCodec.GetSize(chunk), bytes.Length);
            // Never more than version 2's raw columns plus one encoding byte each.
            Assert.True(bytes.Length <= 12 + 4 + 8 + 4 + 2 * (8 + count * 8 + (count > 0 ? 1 : 0)) + 2 * (8 + count * 4), $"trial {trial}: {bytes.Length} bytes");
            AssertSame(chunk, StreamStateCodec.Read<ObservationChunk>(bytes));
        }
    }

    [Fact]
    public void Malformed_delta_columns_are_refused()
    {
        long[] sequences = [.. Enumerable.Range(0, 64).Select(i => 100L + i)];
        var bytes = StreamStateCodec.ToArray(Chunk(sequences, sequences, 3));
        // Sequences: length at 24, in use (3) at 28, encoding (1: delta) at 32, first at 33, varints at 41 (1) and 42 (0).
        Assert.Equal(1, bytes[32]);
        Assert.Equal(100, System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(33)));
        Assert.Equal(2, bytes[41]);   // zigzag(1)
        Assert.Equal(0, bytes[42]);

        var unknownEncoding = (byte[])bytes.Clone();
        unknownEncoding[32] = 2;
        Assert.Contains("encoding 2", Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(Reseal(unknownEncoding))).Message);

        // One varint of ten bytes whose last byte carries bits past the 64th (the record's length field updated to match).
        byte[] overlong = [.. bytes[..41], .. Enumerable.Repeat((byte)0xFF, 9), 0x7F, .. bytes[43..]];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(overlong.AsSpan(8), overlong.Length);
        Assert.Contains("overflows", Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(Reseal(overlong))).Message);

        // A continuation bit on the column's last varint: it swallows the next field's bytes, and the record no longer parses.
        var claimsMore = (byte[])bytes.Clone();
        claimsMore[42] = 0x80;
        Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(Reseal(claimsMore)));
    }

    [Fact]
    public void An_unpaired_surrogate_is_written_as_Orleans_writes_it()
    {
        var state = Sample(modelName: "a\uD800b", streamId: "s\uDC00");
        var codec = StreamStateCodec.Read<StreamState>(StreamStateCodec.ToArray(state));
        var orleans = OrleansSerializer.Deserialize<StreamState>(OrleansSerializer.SerializeToArray(state))!;
        Assert.Equal("a\uFFFDb", codec.ModelName);
        Assert.Equal(orleans.ModelName, codec.ModelName);
        Assert.Equal(orleans.Latest!.StreamId, codec.Latest!.StreamId);
    }

    [Fact]
    public void Bytes_that_are_not_UTF8_in_a_string_are_refused()
    {
        var bytes = StreamStateCodec.ToArray(new StreamState { ModelName = "ab", Tail = null!, Latest = null });
        bytes[12 + 4] = 0xC3;   // a lead byte followed by 'b': invalid UTF-8
        Assert.Contains("UTF-8", Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(Reseal(bytes))).Message);
    }

    [Fact]
    public void History_and_chunk_records_round_trip()
    {
        var chunk = Sample(d: 2, dIn: 4, capacity: 64, tailCount: 50).Tail;
        var history = new StreamHistory { Generation = 9, Closed = chunk };
        var back = StreamStateCodec.Read<StreamHistory>(StreamStateCodec.ToArray(history));
        Assert.Equal(9, back.Generation);
        AssertSame(chunk, back.Closed);
        AssertSame(chunk, StreamStateCodec.Read<ObservationChunk>(StreamStateCodec.ToArray(chunk)));
        Assert.Null(StreamStateCodec.Read<StreamHistory>(StreamStateCodec.ToArray(new StreamHistory { Closed = null! })).Closed);
    }

    [Fact]
    public void Decorator_writes_the_codec_for_stream_records_and_the_same_bytes_through_a_buffer()
    {
        var serializer = new StreamStateCodecSerializer(new CompactOrleansGrainStorageSerializer(OrleansSerializer));
        var state = Sample(d: 2, dIn: 3, k: 2);
        var array = serializer.Serialize(state).ToArray();
        Assert.Equal(StreamStateCodec.ToArray(state), array);

        var buffer = new ArrayBufferWriter<byte>(16);   // smaller than the record: GetSpan must grow it
        buffer.Write(new byte[] { 1, 2, 3 });           // appends after what is there
        serializer.Serialize(state, buffer);
        Assert.Equal(array, buffer.WrittenSpan[3..].ToArray());

        AssertSame(state, serializer.Deserialize<StreamState>(new BinaryData(array)));
        AssertSame(state, serializer.Deserialize<StreamState>(new ReadOnlyMemory<byte>(array)));
    }

    [Fact]
    public void Decorator_leaves_other_types_to_the_inner_serializer()
    {
        var inner = new OrleansGrainStorageSerializer(OrleansSerializer);
        var serializer = new StreamStateCodecSerializer(inner);
        var result = Sample().Latest!;
        var bytes = serializer.Serialize(result).ToArray();
        Assert.Equal(inner.Serialize(result).ToArray(), bytes);
        AssertSame(result, serializer.Deserialize<StepResult>(new BinaryData(bytes)));

        var buffer = new ArrayBufferWriter<byte>();
        serializer.Serialize(result, buffer);           // an inner serializer without a buffer path: copied
        Assert.Equal(bytes, buffer.WrittenSpan.ToArray());
        AssertSame(result, serializer.Deserialize<StepResult>(new ReadOnlyMemory<byte>(bytes)));
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Records_in_the_old_Orleans_format_still_read(string shape)
    {
        var state = Shape(shape);
        var old = OrleansSerializer.SerializeToArray(state);
        Assert.False(StreamStateCodec.IsCodecRecord(old));   // Orleans payloads never start with the magic's 0xFF
        foreach (var serializer in new[]
                 {
                     new StreamStateCodecSerializer(new CompactOrleansGrainStorageSerializer(OrleansSerializer)),
                     new StreamStateCodecSerializer(new OrleansGrainStorageSerializer(OrleansSerializer)),
                 })
        {
            AssertSame(state, serializer.Deserialize<StreamState>(new BinaryData(old)));
            AssertSame(state, serializer.Deserialize<StreamState>(new ReadOnlyMemory<byte>(old)));
        }
        var history = new StreamHistory { Generation = 3, Closed = Sample(capacity: 40, tailCount: 33).Tail };
        var oldHistory = new StreamStateCodecSerializer(new CompactOrleansGrainStorageSerializer(OrleansSerializer))
            .Deserialize<StreamHistory>(new BinaryData(OrleansSerializer.SerializeToArray(history)));
        AssertSame(history.Closed, oldHistory.Closed);
    }

    [Fact]
    public void Every_truncation_of_a_record_throws()
    {
        var bytes = StreamStateCodec.ToArray(Sample(d: 2, dIn: 3, k: 2, stateSize: 16, capacity: 8, tailCount: 6));
        var serializer = new StreamStateCodecSerializer(new CompactOrleansGrainStorageSerializer(OrleansSerializer));
        for (int length = 3; length < bytes.Length; length++)
        {
            var truncated = bytes.AsMemory(0, length);
            var e = Assert.Throws<InvalidDataException>(() => serializer.Deserialize<StreamState>(truncated));
            Assert.Contains("Stream record", e.Message);
        }
        Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(bytes.AsSpan(0, 2)));
    }

    [Fact]
    public void Any_changed_byte_or_trailing_bytes_throw()
    {
        var bytes = StreamStateCodec.ToArray(Sample(d: 2, dIn: 3, k: 2, stateSize: 16, capacity: 8, tailCount: 6));
        for (int i = 0; i < bytes.Length; i++)
        {
            foreach (byte flip in new byte[] { 0x01, 0x80, 0xFF })
            {
                var corrupt = (byte[])bytes.Clone();
                corrupt[i] ^= flip;
                Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(corrupt));
            }
        }
        Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read([.. bytes, 0]));
    }

    [Fact]
    public void Garbage_after_the_magic_throws_a_clear_error()
    {
        var random = new Random(3);
        for (int trial = 0; trial < 200; trial++)
        {
            var garbage = new byte[random.Next(3, 2000)];
            random.NextBytes(garbage);
            garbage[0] = 0xFF; garbage[1] = (byte)'L'; garbage[2] = (byte)'S';
            var e = Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(garbage));
            Assert.StartsWith("Stream record", e.Message);
        }
    }

    [Fact]
    public void Structurally_bad_records_with_a_valid_checksum_are_refused()
    {
        var state = new StreamState { ModelName = "m", Tail = null!, Latest = null };
        var good = StreamStateCodec.ToArray(state);

        var newer = (byte[])good.Clone();
        newer[4] = 4;
        Assert.Contains("version 4", Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(Reseal(newer))).Message);

        var unknownKind = (byte[])good.Clone();
        unknownKind[3] = 9;
        Assert.Contains("kind", Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(Reseal(unknownKind))).Message);

        var badBool = (byte[])good.Clone();
        int hasSequenceOffset = 12 + (4 + 1) + 8 + 16 + 4 + 4;  // header, "m", WeightsVersion, 4 ints, empty Hidden, empty Cell
        Assert.Equal(0, badBool[hasSequenceOffset]);
        badBool[hasSequenceOffset] = 2;
        Assert.Contains("boolean", Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(Reseal(badBool))).Message);

        var hugeArray = (byte[])good.Clone();
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(hugeArray.AsSpan(12 + 5 + 8 + 16), int.MaxValue);   // Hidden length
        Assert.Contains("array length", Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(Reseal(hugeArray))).Message);

        var chunk = new ObservationChunk { Count = 1 };   // count beyond its (empty) arrays
        Assert.Contains("chunk count", Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read(StreamStateCodec.ToArray(chunk))).Message);

        var history = StreamStateCodec.ToArray(new StreamHistory());
        Assert.Contains("StreamHistory", Assert.Throws<InvalidDataException>(() => StreamStateCodec.Read<StreamState>(history)).Message);
    }

    /// <summary>Counts which of its two serialize paths a provider used.</summary>
    private sealed class CountingSerializer(StreamStateCodecSerializer inner) : IGrainStorageSerializer, IBufferGrainStorageSerializer
    {
        public int ArrayWrites, BufferWrites;
        public BinaryData Serialize<T>(T? input) { ArrayWrites++; return inner.Serialize(input); }
        public T Deserialize<T>(BinaryData input) => inner.Deserialize<T>(input);
        public void Serialize<T>(T? input, IBufferWriter<byte> output) { BufferWrites++; inner.Serialize(input, output); }
        public T Deserialize<T>(ReadOnlyMemory<byte> input) => inner.Deserialize<T>(input);
    }

    /// <summary>
    /// The SQLite provider serializes the stream records straight into its pooled payload array through the shared
    /// buffer-serializer interface (implemented here in another assembly than the provider's), and the record reads
    /// back exactly.
    /// </summary>
    [Fact]
    public async Task The_sqlite_store_writes_codec_records_through_the_buffer_path()
    {
        var serializer = new CountingSerializer(new StreamStateCodecSerializer(new CompactOrleansGrainStorageSerializer(OrleansSerializer)));
        await WithSqliteStoreAsync("codec-buffer", serializer, async (storage, _) =>
        {
            var grain = GrainId.Create("stream", "codec-sqlite-buffer");
            var state = Sample(d: 2, dIn: 3, k: 3, capacity: 40, tailCount: 40);   // > 2 KiB: the pooled writer grows
            var written = new GrainState<StreamState>(state);
            await storage.WriteStateAsync("stream", grain, written);
            Assert.Equal((0, 1), (serializer.ArrayWrites, serializer.BufferWrites));
            var read = new GrainState<StreamState>();
            await storage.ReadStateAsync("stream", grain, read);
            AssertSame(state, read.State!);
            Assert.Equal(StreamStateCodec.ToArray(state), StreamStateCodec.ToArray(read.State!));
        });
    }

    /// <summary>Runs <paramref name="body"/> with an open SQLite store (and its database path) in a fresh folder, removed afterwards.</summary>
    private static async Task WithSqliteStoreAsync(string name, IGrainStorageSerializer serializer, Func<SqliteGrainStorage, string, Task> body)
    {
        string directory = Path.Combine(Path.GetTempPath(), $"lstm-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, "g.db");
        try
        {
            var storage = new SqliteGrainStorage(name, new SqliteGrainStorageOptions { DataSource = path, GrainStorageSerializer = serializer },
                Options.Create(new Orleans.Configuration.ClusterOptions { ServiceId = name, ClusterId = "test" }), NullLogger<SqliteGrainStorage>.Instance);
            await storage.InitializeAsync(CancellationToken.None);
            try
            {
                await body(storage, path);
            }
            finally
            {
                await storage.DisposeAsync();
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// A stored stream core that was damaged (a byte flipped, cut short, a newer format version) or holds another
    /// record kind fails its read through the SQLite store with an error naming the grain and the state and carrying
    /// the codec's reason; nothing of the row reaches the caller (no ETag, not "exists"), and the row is left as it is.
    /// </summary>
    [Fact]
    public async Task A_damaged_or_foreign_record_in_the_sqlite_store_fails_its_read_naming_the_grain()
    {
        var serializer = new StreamStateCodecSerializer(new CompactOrleansGrainStorageSerializer(OrleansSerializer));
        await WithSqliteStoreAsync("codec-corrupt", serializer, async (storage, path) =>
        {
            var grain = GrainId.Create("stream", "plant-7/boiler \"north\"");
            await storage.WriteStateAsync("stream", grain, new GrainState<StreamState>(Sample(d: 2, dIn: 3, k: 2, capacity: 8, tailCount: 6)));
            var good = StreamStateCodec.ToArray(Sample(d: 2, dIn: 3, k: 2, capacity: 8, tailCount: 6));
            var flipped = (byte[])good.Clone();
            flipped[good.Length / 2] ^= 0x10;
            var newer = (byte[])good.Clone();
            newer[4] = (byte)(StreamStateCodec.CurrentVersion + 1);
            var cases = new (byte[] Payload, string Reason)[]
            {
                (flipped, "checksum mismatch"),
                (good[..(good.Length - 9)], "truncated"),
                (newer, "not supported"),
                (StreamStateCodec.ToArray(new StreamHistory { Generation = 2 }), "holds a StreamHistory"),
            };
            foreach (var (payload, reason) in cases)
            {
                await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=false"))
                {
                    connection.Open();
                    await using var command = connection.CreateCommand();
                    command.CommandText = "UPDATE lstm_grain_state SET payload = $payload";
                    command.Parameters.AddWithValue("$payload", payload);
                    Assert.Equal(1, await command.ExecuteNonQueryAsync());
                }

                var read = new GrainState<StreamState>();
                var error = await Assert.ThrowsAsync<OrleansException>(() => storage.ReadStateAsync("stream", grain, read));
                Assert.Contains(grain.ToString(), error.Message);
                Assert.Contains("StateName=stream", error.Message);
                Assert.Contains(reason, error.Message);
                Assert.IsType<InvalidDataException>(error.InnerException);
                Assert.Null(read.ETag);
                Assert.False(read.RecordExists);
            }
        });
    }

    /// <summary>The memory store likewise: a record of another kind under a key fails its read naming the grain, and changes nothing.</summary>
    [Fact]
    public async Task A_foreign_record_in_the_memory_store_fails_its_read_naming_the_grain()
    {
        var serializer = new StreamStateCodecSerializer(new CompactOrleansGrainStorageSerializer(OrleansSerializer));
        var storage = new LocalMemoryGrainStorage("codec", new LocalMemoryGrainStorageOptions { GrainStorageSerializer = serializer }, NullLogger<LocalMemoryGrainStorage>.Instance);
        var grain = GrainId.Create("stream", "codec-memory-foreign");
        var history = new GrainState<StreamHistory>(new StreamHistory { Generation = 4 });
        await storage.WriteStateAsync("stream", grain, history);

        var read = new GrainState<StreamState>();
        var error = await Assert.ThrowsAsync<OrleansException>(() => storage.ReadStateAsync("stream", grain, read));
        Assert.Contains(grain.ToString(), error.Message);
        Assert.Contains("'stream'", error.Message);
        Assert.Contains("holds a StreamHistory", error.Message);
        Assert.Null(read.ETag);
        Assert.False(read.RecordExists);

        var again = new GrainState<StreamHistory>();
        await storage.ReadStateAsync("stream", grain, again);
        Assert.Equal((history.ETag, 4L), (again.ETag, again.State!.Generation));
    }

    [Fact]
    public async Task The_memory_store_keeps_codec_records_and_reads_old_ones()
    {
        var serializer = new StreamStateCodecSerializer(new CompactOrleansGrainStorageSerializer(OrleansSerializer));
        var storage = new LocalMemoryGrainStorage("codec", new LocalMemoryGrainStorageOptions { GrainStorageSerializer = serializer }, NullLogger<LocalMemoryGrainStorage>.Instance);
        var grain = GrainId.Create("stream", "codec-memory");
        var state = Sample(d: 2, dIn: 2, k: 3);
        var written = new GrainState<StreamState>(state);
        await storage.WriteStateAsync("stream", grain, written);
        state.Hidden[0] += 1;   // a grain mutating its state after the write does not change what is stored
        var read = new GrainState<StreamState>();
        await storage.ReadStateAsync("stream", grain, read);
        state.Hidden[0] -= 1;
        AssertSame(state, read.State!);
        Assert.Equal(written.ETag, read.ETag);

        // A second write reuses the key's buffer; a record of a different size is still read exactly.
        var smaller = Sample(latest: false, capacity: 4, tailCount: 4, seed: 11);
        await storage.WriteStateAsync("stream", grain, new GrainState<StreamState>(smaller) { ETag = read.ETag });
        await storage.ReadStateAsync("stream", grain, read);
        AssertSame(smaller, read.State!);
    }
}

/// <summary>
/// End to end through grains: a stream written by a silo without the codec (Orleans' format, as existing databases
/// hold) is read by a silo with it, continues exactly, and after its records are rewritten in the codec's format
/// reactivates with the same observable state. SQLite (durable across silos) and the process-local memory store.
/// </summary>
public sealed class StreamStateCodecClusterTests
{
    private static Task<InProcessTestCluster> StartAsync(string serviceId, Action<ISiloBuilder> storage) =>
        TestSupport.StartSingleSiloAsync(serviceId, serviceId + "-cluster", silo =>
        {
            storage(silo);
            silo.AddLstmOrleans(configureStreams: o => { o.HistoryCapacity = 20; o.HistoryChunkSize = 8; });
        });

    private static Task StopAsync(InProcessTestCluster cluster) => TestSupport.StopAsync(cluster);

    /// <summary>The stored core record, read through the silo's own "lstm" storage.</summary>
    private static async Task<StreamState> StoredCoreAsync(InProcessTestCluster cluster, IStreamGrain stream)
    {
        var storage = cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(LstmOrleansNames.StorageName);
        var state = new GrainState<StreamState>();
        await storage.ReadStateAsync("stream", stream.GetGrainId(), state);
        Assert.True(state.RecordExists);
        return state.State!;
    }

    [Fact]
    public async Task Sqlite_streams_written_before_the_codec_read_continue_and_reactivate_identically()
    {
        string directory = Path.Combine(Path.GetTempPath(), "lstm-codec-tests-" + Guid.NewGuid().ToString("N"));
        string database = Path.Combine(directory, "grains.db");
        const string serviceId = "lstm-codec-sqlite";
        try
        {
            var config = TestSupport.SmallConfig(seed: 13);   // D=2, K=3, L=2, H=8
            ReferenceStream reference;

            // 1. A silo without the codec writes model and stream in Orleans' format.
            var old = await StartAsync(serviceId, silo => silo.AddSqliteGrainStorage(LstmOrleansNames.StorageName, (SqliteGrainStorageOptions o) => o.DataSource = database));
            string before;
            try
            {
                Assert.IsNotType<StreamStateCodecSerializer>(old.Silos[0].ServiceProvider
                    .GetRequiredService<IOptionsMonitor<SqliteGrainStorageOptions>>().Get(LstmOrleansNames.StorageName).GrainStorageSerializer);
                var model = old.Client.GetGrain<IModelGrain>(LstmOrleansNames.DefaultModelName);
                await model.CreateAsync(config);
                reference = new ReferenceStream(config, TestSupport.ToEngine(await model.GetActiveWeightsAsync()));
                var stream = old.Client.GetGrain<IStreamGrain>("codec/sqlite");
                for (long seq = 1; seq <= 29; seq++)   // three closed chunks of 8 (history record) and 5 in the tail
                    Assert.Equal(reference.Step(TestSupport.Obs(seq).Values), (await stream.IngestAsync(TestSupport.Obs(seq))).Predictions);
                before = await TestSupport.FullState(stream);
            }
            finally { await StopAsync(old); }

            // 2. A silo with the codec reads the old records, then rewrites them in the codec's format.
            var cluster = await StartAsync(serviceId, silo => silo
                .AddSqliteGrainStorage(LstmOrleansNames.StorageName, (SqliteGrainStorageOptions o) => o.DataSource = database)
                .AddStreamStateCodec<SqliteGrainStorageOptions>(LstmOrleansNames.StorageName));
            try
            {
                Assert.IsType<StreamStateCodecSerializer>(cluster.Silos[0].ServiceProvider
                    .GetRequiredService<IOptionsMonitor<SqliteGrainStorageOptions>>().Get(LstmOrleansNames.StorageName).GrainStorageSerializer);
                var stream = cluster.Client.GetGrain<IStreamGrain>("codec/sqlite");
                Assert.Equal(before, await TestSupport.FullState(stream));
                Assert.True((await stream.IngestAsync(TestSupport.Obs(29))).Duplicate);
                for (long seq = 30; seq <= 45; seq++)   // closes two more chunks: both records rewritten by the codec
                    Assert.Equal(reference.Step(TestSupport.Obs(seq).Values), (await stream.IngestAsync(TestSupport.Obs(seq))).Predictions);
                var written = await TestSupport.FullState(stream);
                var stored = await StoredCoreAsync(cluster, stream);
                Assert.Equal(reference.H, stored.Hidden);

                await cluster.DeactivateAsync(stream);
                Assert.Equal(written, await TestSupport.FullState(stream));
                Assert.Equal(reference.Step(TestSupport.Obs(46).Values), (await stream.IngestAsync(TestSupport.Obs(46))).Predictions);
            }
            finally { await StopAsync(cluster); }
        }
        finally
        {
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task Memory_store_streams_reactivate_identically_with_the_codec()
    {
        var cluster = await StartAsync("lstm-codec-memory", silo => silo
            .AddLocalMemoryGrainStorage(LstmOrleansNames.StorageName)
            .AddStreamStateCodec<LocalMemoryGrainStorageOptions>(LstmOrleansNames.StorageName));
        try
        {
            Assert.IsType<StreamStateCodecSerializer>(cluster.Silos[0].ServiceProvider
                .GetRequiredService<IOptionsMonitor<LocalMemoryGrainStorageOptions>>().Get(LstmOrleansNames.StorageName).GrainStorageSerializer);
            var config = TestSupport.SmallConfig(seed: 17);
            var model = cluster.Client.GetGrain<IModelGrain>(LstmOrleansNames.DefaultModelName);
            await model.CreateAsync(config);
            var reference = new ReferenceStream(config, TestSupport.ToEngine(await model.GetActiveWeightsAsync()));
            var stream = cluster.Client.GetGrain<IStreamGrain>("codec/memory");
            for (long seq = 1; seq <= 27; seq++)
                Assert.Equal(reference.Step(TestSupport.Obs(seq).Values), (await stream.IngestAsync(TestSupport.Obs(seq))).Predictions);
            var before = await TestSupport.FullState(stream);
            var stored = await StoredCoreAsync(cluster, stream);
            Assert.Equal(reference.H, stored.Hidden);
            Assert.Equal(reference.C, stored.Cell);

            await cluster.DeactivateAsync(stream);
            Assert.Equal(before, await TestSupport.FullState(stream));
            Assert.True((await stream.IngestAsync(TestSupport.Obs(27))).Duplicate);
            Assert.Equal(reference.Step(TestSupport.Obs(28).Values), (await stream.IngestAsync(TestSupport.Obs(28))).Predictions);
        }
        finally { await StopAsync(cluster); }
    }
}
