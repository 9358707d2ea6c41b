using System.Buffers.Binary;
using System.IO.Hashing;
using System.Security.Cryptography;
using LstmOrleans.Grains.Storage;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// The codec's integer columns are written in one pass (the delta encoding is attempted and given up for raw at the
/// size where raw wins) instead of measuring the delta encoding again before writing it. The records must stay byte
/// for byte what the two-pass writer produced: format 3 is on disk, and a record that changed would also change its
/// checksum. Checked against a copy of the two-pass writer (<see cref="TwoPassChunkRecord"/>) on many random columns,
/// most of them sized to land on or next to the raw/delta tie, and against a digest of core records written by the
/// two-pass build.
/// </summary>
public sealed class StreamStateCodecGoldenTests
{
    [Fact]
    public void Chunk_records_are_byte_identical_to_the_two_pass_writer_and_round_trip()
    {
        var random = new Random(20261128);
        int raw = 0, delta = 0, ties = 0;
        for (int trial = 0; trial < 20_000; trial++)
        {
            int capacity = random.Next(1, 80);
            int count = trial < 200 ? trial % (capacity + 1) : random.Next(0, capacity + 1);
            var chunk = ObservationChunk.Create(startIndex: random.NextInt64(0, 1L << 40), capacity, inputSize: 2, inputWidth: 3);
            FillColumn(random, chunk.Sequences, count, ref ties);
            FillColumn(random, chunk.Ticks, count, ref ties);
            for (int i = 0; i < count * 2; i++) chunk.Values[i] = (float)random.NextDouble();
            for (int i = 0; i < count * 3; i++) chunk.Inputs[i] = (float)random.NextDouble();
            chunk.Count = count;

            var expected = TwoPassChunkRecord(chunk);
            var actual = StreamStateCodec.ToArray(chunk);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"trial {trial}: capacity {capacity}, count {count}: the record differs from the two-pass writer's");
            Assert.Equal(StreamStateCodec.GetSize(chunk), actual.Length);
            StreamStateCodecTests.AssertSame(chunk, StreamStateCodec.Read<ObservationChunk>(actual));
            if (count > 0)
            {
                // Offset of the sequences column's encoding byte: header 12, start index 8, count 4, length 4, in use 4.
                if (actual[32] == 0) raw++; else delta++;
            }
        }

        // The inputs reached both encodings and the tie many times (a column whose delta encoding is exactly raw's size).
        Assert.True(raw > 1000 && delta > 1000 && ties > 1000, $"raw {raw}, delta {delta}, ties {ties}");
    }

    [Fact]
    public void Core_records_are_byte_identical_to_the_two_pass_build()
    {
        // SHA-256 of these records as the two-pass writer wrote them (commit 3ee73b9), each record's length first.
        const string Expected = "65CBC0C87AD29FF6DBE621B2F6D71AB77F0DF800DA1A05916316949A05610202";
        using var digest = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var random = new Random(77);
        int ties = 0;
        var length = new byte[4];
        for (int seed = 0; seed < 300; seed++)
        {
            int capacity = 1 + seed % 64;
            var state = StreamStateCodecTests.Sample(d: 1 + seed % 3, dIn: 2 + seed % 3, k: 1 + seed % 4, stateSize: 8 + seed % 24,
                capacity: capacity, tailCount: seed % (capacity + 1), latest: seed % 5 != 0, previousError: seed % 3 != 0, seed: seed);
            FillColumn(random, state.Tail.Sequences, state.Tail.Count, ref ties);
            if (seed % 2 == 0) FillColumn(random, state.Tail.Ticks, state.Tail.Count, ref ties);
            if (seed % 4 == 1)
            {
                // A core that carries closed observations (stores without companion writes): a second chunk with columns.
                var pending = ObservationChunk.Create(state.ClosedCount - capacity, capacity, state.InputSize, state.InputWidth);
                FillColumn(random, pending.Sequences, capacity, ref ties);
                FillColumn(random, pending.Ticks, capacity, ref ties);
                pending.Count = capacity;
                state.PendingClosed = pending;
                state.PersistPendingClosed = true;
            }

            var bytes = StreamStateCodec.ToArray(state);
            BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
            digest.AppendData(length);
            digest.AppendData(bytes);
            StreamStateCodecTests.AssertSame(state, StreamStateCodec.Read<StreamState>(bytes));
        }

        Assert.Equal(Expected, Convert.ToHexString(digest.GetHashAndReset()));
    }

    /// <summary>
    /// The first <paramref name="count"/> entries of <paramref name="column"/>: a random start, then changes of the
    /// step whose zigzag varints have chosen sizes. Mostly sizes around 8 bytes, so the delta encoding (8 + the
    /// varints) lands on, just under or just over the raw encoding's 8 bytes an entry; sometimes regular or random.
    /// </summary>
    private static void FillColumn(Random random, long[] column, int count, ref int ties)
    {
        if (count == 0) return;
        int mode = random.Next(4);
        column[0] = random.Next(3) == 0 ? random.NextInt64(long.MinValue, long.MaxValue) : random.NextInt64(-1000, 1_000_000);
        long step = 0;
        int varintBytes = 0;
        for (int i = 1; i < count; i++)
        {
            int size = mode switch
            {
                0 => 8,                                // every change in 8 bytes: exactly raw's size
                1 => random.Next(7, 10),               // around the tie
                2 => random.Next(10) == 0 ? random.Next(2, 11) : 1,   // mostly regular
                _ => random.Next(1, 11),
            };
            if (mode == 1 && i == count - 1)
            {
                // Steer the last change so the column ends exactly on the tie when it can.
                int wanted = 8 * (count - 1) - varintBytes;
                if (wanted is >= 1 and <= 10) size = wanted;
            }
            varintBytes += size;
            ulong zigzag = size == 1 ? (ulong)random.Next(0, 128)
                : size == 10 ? (1UL << 63) | (ulong)random.NextInt64()
                : (1UL << (7 * (size - 1))) | ((ulong)random.NextInt64() & ((1UL << (7 * (size - 1))) - 1));
            long change = unchecked((long)(zigzag >> 1) ^ -(long)(zigzag & 1));
            step = unchecked(step + change);
            column[i] = unchecked(column[i - 1] + step);
        }
        if (varintBytes == 8 * (count - 1)) ties++;
    }

    // ---- the two-pass writer of an ObservationChunk record, format 3, as the codec had it before (commit 3ee73b9) ----

    private static byte[] TwoPassChunkRecord(ObservationChunk c)
    {
        int size = 12 + 8 + 4 + LongColumnSize(c.Sequences, c) + LongColumnSize(c.Ticks, c) + ChunkArraySize(c.Values, c) + ChunkArraySize(c.Inputs, c) + 4;
        var bytes = new byte[size];
        int p = 0;
        bytes[p++] = 0xFF; bytes[p++] = (byte)'L'; bytes[p++] = (byte)'S'; bytes[p++] = StreamStateCodec.KindObservationChunk;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(p), 3); p += 2;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(p), 0); p += 2;
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(p), size); p += 4;
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(p), c.StartIndex); p += 8;
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(p), c.Count); p += 4;
        WriteLongColumn(bytes, ref p, c.Sequences, c);
        WriteLongColumn(bytes, ref p, c.Ticks, c);
        WriteChunkArray(bytes, ref p, c.Values, c);
        WriteChunkArray(bytes, ref p, c.Inputs, c);
        Assert.Equal(size - 4, p);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(p), Crc32.HashToUInt32(bytes.AsSpan(0, p)));
        return bytes;
    }

    private static int InUse<T>(T[] array, ObservationChunk c)
    {
        int capacity = c.Sequences?.Length ?? 0;
        if (capacity == 0 || array.Length % capacity != 0) return array.Length;
        return Math.Min(array.Length, Math.Max(0, c.Count) * (array.Length / capacity));
    }

    private static int LongColumnSize(long[]? array, ObservationChunk c)
    {
        if (array is null) return 4;
        int used = InUse(array, c);
        return 4 + 4 + (used == 0 ? 0 : 1 + Math.Min(used * 8, DeltaEncodedSize(array.AsSpan(0, used))));
    }

    private static int DeltaEncodedSize(ReadOnlySpan<long> values)
    {
        int size = 8;
        long previousDelta = 0;
        for (int i = 1; i < values.Length; i++)
        {
            long delta = unchecked(values[i] - values[i - 1]);
            size += VarintSize(ZigZag(unchecked(delta - previousDelta)));
            previousDelta = delta;
        }
        return size;
    }

    private static ulong ZigZag(long value) => unchecked((ulong)((value << 1) ^ (value >> 63)));

    private static int VarintSize(ulong value) => value == 0 ? 1 : (64 - System.Numerics.BitOperations.LeadingZeroCount(value) + 6) / 7;

    private static int ChunkArraySize(float[]? array, ObservationChunk c) => 4 + (array is null ? 0 : 4 + InUse(array, c) * 4);

    private static void WriteLongColumn(byte[] bytes, ref int p, long[]? array, ObservationChunk c)
    {
        if (array is null) { BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(p), -1); p += 4; return; }
        int used = InUse(array, c);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(p), array.Length); p += 4;
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(p), used); p += 4;
        if (used == 0) return;
        var values = array.AsSpan(0, used);
        if (DeltaEncodedSize(values) >= used * 8)
        {
            bytes[p++] = 0;
            foreach (long value in values) { BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(p), value); p += 8; }
            return;
        }
        bytes[p++] = 1;
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(p), values[0]); p += 8;
        long previousDelta = 0;
        for (int i = 1; i < values.Length; i++)
        {
            long delta = unchecked(values[i] - values[i - 1]);
            ulong value = ZigZag(unchecked(delta - previousDelta));
            while (value >= 0x80) { bytes[p++] = (byte)(value | 0x80); value >>= 7; }
            bytes[p++] = (byte)value;
            previousDelta = delta;
        }
    }

    private static void WriteChunkArray(byte[] bytes, ref int p, float[]? array, ObservationChunk c)
    {
        if (array is null) { BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(p), -1); p += 4; return; }
        int used = InUse(array, c);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(p), array.Length); p += 4;
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(p), used); p += 4;
        foreach (float value in array.AsSpan(0, used)) { BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(p), value); p += 4; }
    }
}
