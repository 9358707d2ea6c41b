using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using LstmOrleans.Abstractions;

namespace LstmOrleans.Grains.Storage;

/// <summary>
/// Hand-written, versioned binary format of the stream records (<see cref="StreamState"/>, <see cref="StreamHistory"/>,
/// <see cref="ObservationChunk"/>), written on every acknowledged step. Orleans' generic format writes a field header
/// per member and encodes arrays element by element; here every member is in a fixed order and arrays are a length
/// plus one bulk little-endian copy, so writing a 1.3 KB core state is a handful of memcpys.
///
/// Layout of a record (all integers little-endian):
/// <code>
/// [0..3)   magic 0xFF 'L' 'S'     (0xFF never starts an Orleans binary payload: wire type Extended with an unused
///                                  extended type, so old records are told apart by their first byte)
/// [3]      kind: 1 StreamState, 2 StreamHistory, 3 ObservationChunk
/// [4..6)   format version (3; versions 1 and 2 are still read: version 1 had no stored pending chunk in a stream
///          state and wrote a chunk's arrays whole, not only the entries in use; version 2 wrote a chunk's sequence
///          numbers and timestamps as plain 8-byte integers)
/// [6..8)   reserved, 0
/// [8..12)  total record length in bytes, header and checksum included
/// [12..n-4) body (below)
/// [n-4..n) CRC-32 of bytes [0..n-4)
/// </code>
/// Body primitives: string = i32 UTF-8 byte count (-1 null) + bytes; array = i32 element count (-1 null) + elements;
/// bool = one byte 0/1; DateTimeOffset = i64 clock ticks + i16 offset minutes; optional object = presence byte + object;
/// chunk array (version 2) = i32 element count of the array (-1 null) + i32 count in use + the elements in use (the rest
/// reads back as zeros: a tail chunk is on average half full, and its unused capacity was a third of a core record).
/// A chunk's sequence numbers and timestamps (version 3) = i32 element count (-1 null) + i32 count in use, then, when
/// any is in use, one encoding byte: 0 = the elements as i64, 1 = the first as i64, then the difference to the next as a
/// zigzag LEB128 varint, then for each later element the change in that difference (sequences that count up by one and
/// readings at a fixed interval cost one byte an entry instead of eight). The writer picks whichever is shorter, so an
/// irregular column is never larger than version 2's plus that byte; the arithmetic wraps, so every long round-trips.
/// A record that is truncated, has a wrong length, a bad checksum, an unknown version or an out-of-range field fails
/// with <see cref="InvalidDataException"/>; it never decodes to a partial or different state.
/// </summary>
public static class StreamStateCodec
{
    public const byte KindStreamState = 1;
    public const byte KindStreamHistory = 2;
    public const byte KindObservationChunk = 3;
    public const ushort CurrentVersion = 3;

    /// <summary>The oldest format version this build reads.</summary>
    public const ushort OldestReadableVersion = 1;

    private const byte Magic0 = 0xFF, Magic1 = (byte)'L', Magic2 = (byte)'S';
    private const int HeaderSize = 12;
    private const int ChecksumSize = 4;

    // Writing replaces an unpaired surrogate with U+FFFD, as Orleans' own string codec does (a write never fails on a
    // name); reading is strict, so bytes that are not UTF-8 are a malformed record, not a silently different string.
    private static readonly UTF8Encoding WriteUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>True when <paramref name="payload"/> starts with this codec's magic (anything else is left to the inner serializer).</summary>
    public static bool IsCodecRecord(ReadOnlySpan<byte> payload) =>
        payload.Length >= 3 && payload[0] == Magic0 && payload[1] == Magic1 && payload[2] == Magic2;

    /// <summary>True for the types this codec writes itself.</summary>
    public static bool Handles(Type type) =>
        type == typeof(StreamState) || type == typeof(StreamHistory) || type == typeof(ObservationChunk);

    // ---- sizes ----

    /// <summary>Exact record size of <paramref name="value"/> (a StreamState, StreamHistory or ObservationChunk).</summary>
    public static int GetSize(object value) => HeaderSize + ChecksumSize + value switch
    {
        StreamState s => BodySize(s),
        StreamHistory h => BodySize(h),
        ObservationChunk c => BodySize(c),
        _ => throw new ArgumentException($"{value.GetType()} is not a stream record type.", nameof(value)),
    };

    private static int BodySize(StreamState s) =>
        StringSize(s.ModelName)
        + 8                                              // WeightsVersion
        + 4 * 4                                          // InputSize, Horizons, ModelInputSize, HistoryCapacity
        + ArraySize(s.Hidden) + ArraySize(s.Cell)
        + 1 + 8 + DateTimeOffsetSize                     // HasSequence, LastSequence, LastTimestamp
        + 8 + 8                                          // StepCount, NormCount
        + ArraySize(s.Mean) + ArraySize(s.M2)
        + ArraySize(s.ErrorMeanSquare) + ArraySize(s.ErrorSamples) + ArraySize(s.Pending)
        + 8 + 8                                          // Generation, ClosedCount
        + 1 + (s.Tail is null ? 0 : BodySize(s.Tail))
        + 1 + (s.LatestAnswer.HasValue ? BodySize(s.LatestAnswer) : 0)
        + 1 + (s.StoredPendingClosed is { } pending ? BodySize(pending) : 0);   // since version 2

    private static int BodySize(StreamHistory h) => 8 + 1 + (h.Closed is null ? 0 : BodySize(h.Closed));

    private static int BodySize(ObservationChunk c) =>
        8 + 4 + LongColumnSize(c.Sequences, c) + LongColumnSize(c.Ticks, c) + ChunkArraySize(c.Values, c) + ChunkArraySize(c.Inputs, c);

    private static int LongColumnSize(long[]? array, ObservationChunk c)
    {
        if (array is null) return 4;
        int used = InUse(array, c);
        return 4 + 4 + (used == 0 ? 0 : 1 + Math.Min(used * 8, DeltaEncodedSize(array.AsSpan(0, used))));
    }

    /// <summary>Bytes of the delta encoding of <paramref name="values"/> (at least one element): the first, then zigzag varints.</summary>
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

    private static long UnZigZag(ulong value) => unchecked((long)(value >> 1) ^ -(long)(value & 1));

    private static int VarintSize(ulong value) => value == 0 ? 1 : (64 - System.Numerics.BitOperations.LeadingZeroCount(value) + 6) / 7;

    private static int ChunkArraySize<T>(T[]? array, ObservationChunk c) where T : unmanaged =>
        4 + (array is null ? 0 : 4 + checked(InUse(array, c) * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()));

    /// <summary>
    /// Elements of a chunk array that hold entries: <see cref="ObservationChunk.Count"/> rows of the array's row width
    /// (its length over the chunk's capacity); all of it when the length is not a whole number of rows.
    /// </summary>
    private static int InUse<T>(T[] array, ObservationChunk c)
    {
        int capacity = c.Sequences?.Length ?? 0;
        if (capacity == 0 || array.Length % capacity != 0) return array.Length;
        return Math.Min(array.Length, Math.Max(0, c.Count) * (array.Length / capacity));
    }

    private static int BodySize(LatestAnswer r) =>
        StringSize(r.StreamId) + 8 + DateTimeOffsetSize
        + ArraySize(r.Predictions) + ArraySize(r.Lower) + ArraySize(r.Upper) + ArraySize(r.Rmse) + ArraySize(r.ErrorSamples)
        + 1 + (r.PreviousError.HasValue ? 4 : 0)
        + 8 + 1 + 8;                                     // WeightsVersion, Duplicate, StepCount

    private const int DateTimeOffsetSize = 8 + 2;

    private static int StringSize(string? value) => 4 + (value is null ? 0 : WriteUtf8.GetByteCount(value));

    private static int ArraySize<T>(T[]? array) where T : unmanaged => 4 + (array is null ? 0 : checked(array.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()));

    // ---- writing ----

    /// <summary>Writes the record of <paramref name="value"/> into <paramref name="destination"/>, which must be exactly <see cref="GetSize"/> bytes.</summary>
    public static void Write(object value, Span<byte> destination)
    {
        var writer = new Writer(destination);
        byte kind = value switch
        {
            StreamState => KindStreamState,
            StreamHistory => KindStreamHistory,
            ObservationChunk => KindObservationChunk,
            _ => throw new ArgumentException($"{value.GetType()} is not a stream record type.", nameof(value)),
        };
        writer.Byte(Magic0); writer.Byte(Magic1); writer.Byte(Magic2); writer.Byte(kind);
        writer.UInt16(CurrentVersion); writer.UInt16(0);
        writer.Int32(destination.Length);
        switch (value)
        {
            case StreamState s: WriteBody(ref writer, s); break;
            case StreamHistory h: WriteBody(ref writer, h); break;
            case ObservationChunk c: WriteBody(ref writer, c); break;
        }
        if (writer.Position != destination.Length - ChecksumSize)
            throw new InvalidOperationException($"Stream record size mismatch: wrote {writer.Position + ChecksumSize} bytes into a {destination.Length}-byte record.");
        BinaryPrimitives.WriteUInt32LittleEndian(destination[^ChecksumSize..], Crc32.HashToUInt32(destination[..^ChecksumSize]));
    }

    /// <summary>The record of <paramref name="value"/> in a new exactly-sized array.</summary>
    public static byte[] ToArray(object value)
    {
        var bytes = new byte[GetSize(value)];
        Write(value, bytes);
        return bytes;
    }

    private static void WriteBody(ref Writer w, StreamState s)
    {
        w.String(s.ModelName);
        w.Int64(s.WeightsVersion);
        w.Int32(s.InputSize);
        w.Int32(s.Horizons);
        w.Int32(s.ModelInputSize);
        w.Int32(s.HistoryCapacity);
        w.Array(s.Hidden);
        w.Array(s.Cell);
        w.Bool(s.HasSequence);
        w.Int64(s.LastSequence);
        w.DateTimeOffset(s.LastTimestamp);
        w.Int64(s.StepCount);
        w.Int64(s.NormCount);
        w.Array(s.Mean);
        w.Array(s.M2);
        w.Array(s.ErrorMeanSquare);
        w.Array(s.ErrorSamples);
        w.Array(s.Pending);
        w.Int64(s.Generation);
        w.Int64(s.ClosedCount);
        w.Bool(s.Tail is not null);
        if (s.Tail is not null) WriteBody(ref w, s.Tail);
        // The last answer, written from the stream's in-place buffers in the layout of a StepResult.
        w.Bool(s.LatestAnswer.HasValue);
        if (s.LatestAnswer.HasValue) WriteBody(ref w, s.LatestAnswer);
        // Version 2: closed observations the core carries until the history records hold them (stores without companion writes).
        var pending = s.StoredPendingClosed;
        w.Bool(pending is not null);
        if (pending is not null) WriteBody(ref w, pending);
    }

    private static void WriteBody(ref Writer w, StreamHistory h)
    {
        w.Int64(h.Generation);
        w.Bool(h.Closed is not null);
        if (h.Closed is not null) WriteBody(ref w, h.Closed);
    }

    private static void WriteBody(ref Writer w, ObservationChunk c)
    {
        w.Int64(c.StartIndex);
        w.Int32(c.Count);
        w.LongColumn(c.Sequences, c);
        w.LongColumn(c.Ticks, c);
        w.ChunkArray(c.Values, c);
        w.ChunkArray(c.Inputs, c);
    }

    private static void WriteBody(ref Writer w, LatestAnswer r)
    {
        w.String(r.StreamId);
        w.Int64(r.Sequence);
        w.DateTimeOffset(r.Timestamp);
        w.Array(r.Predictions);
        w.Array(r.Lower);
        w.Array(r.Upper);
        w.Array(r.Rmse);
        w.Array(r.ErrorSamples);
        w.Bool(r.PreviousError.HasValue);
        if (r.PreviousError is { } previousError) w.Single(previousError);
        w.Int64(r.WeightsVersion);
        w.Bool(r.Duplicate);
        w.Int64(r.StepCount);
    }

    // ---- reading ----

    /// <summary>Decodes a record (any kind); throws <see cref="InvalidDataException"/> when it is malformed.</summary>
    public static object Read(ReadOnlySpan<byte> record)
    {
        if (!IsCodecRecord(record)) throw new InvalidDataException("Not a stream record: the magic prefix is missing.");
        if (record.Length < HeaderSize + ChecksumSize)
            throw new InvalidDataException($"Stream record truncated: {record.Length} bytes is shorter than its header.");
        byte kind = record[3];
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(record[4..]);
        if (version < OldestReadableVersion || version > CurrentVersion)
            throw new InvalidDataException($"Stream record format version {version} is not supported (this build reads versions {OldestReadableVersion} to {CurrentVersion}); it was written by a newer build.");
        int length = BinaryPrimitives.ReadInt32LittleEndian(record[8..]);
        if (length != record.Length)
            throw new InvalidDataException(length > record.Length
                ? $"Stream record truncated: its header says {length} bytes, only {record.Length} are present."
                : $"Stream record malformed: its header says {length} bytes, but {record.Length} are present.");
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(record[^ChecksumSize..]);
        if (Crc32.HashToUInt32(record[..^ChecksumSize]) != stored)
            throw new InvalidDataException("Stream record corrupt: checksum mismatch.");

        var reader = new Reader(record[..^ChecksumSize], HeaderSize);
        object value = kind switch
        {
            KindStreamState => ReadStreamState(ref reader, version),
            KindStreamHistory => ReadStreamHistory(ref reader, version),
            KindObservationChunk => ReadChunk(ref reader, version),
            _ => throw new InvalidDataException($"Stream record malformed: unknown record kind {kind}."),
        };
        if (reader.Remaining != 0)
            throw new InvalidDataException($"Stream record malformed: {reader.Remaining} unread bytes after the body.");
        return value;
    }

    /// <summary>Decodes a record that must hold a <typeparamref name="T"/>.</summary>
    public static T Read<T>(ReadOnlySpan<byte> record)
    {
        object value = Read(record);
        return value is T typed ? typed
            : throw new InvalidDataException($"Stream record holds a {value.GetType().Name}, but a {typeof(T).Name} was asked for.");
    }

    private static StreamState ReadStreamState(ref Reader r, ushort version)
    {
        var s = new StreamState
        {
            ModelName = r.String(),
            WeightsVersion = r.Int64(),
            InputSize = r.Int32(),
            Horizons = r.Int32(),
            ModelInputSize = r.Int32(),
            HistoryCapacity = r.Int32(),
            Hidden = r.Array<float>()!,
            Cell = r.Array<float>()!,
            HasSequence = r.Bool(),
            LastSequence = r.Int64(),
            LastTimestamp = r.DateTimeOffset(),
            StepCount = r.Int64(),
            NormCount = r.Int64(),
            Mean = r.Array<double>()!,
            M2 = r.Array<double>()!,
            ErrorMeanSquare = r.Array<double>()!,
            ErrorSamples = r.Array<long>()!,
            Pending = r.Array<float>()!,
            Generation = r.Int64(),
            ClosedCount = r.Int64(),
        };
        s.Tail = r.Bool() ? ReadChunk(ref r, version) : null!;
        if (r.Bool()) ReadLatestAnswer(ref r, s.LatestAnswer);
        if (version >= 2 && r.Bool()) s.StoredPendingClosed = ReadChunk(ref r, version);
        return s;
    }

    private static StreamHistory ReadStreamHistory(ref Reader r, ushort version)
    {
        var h = new StreamHistory { Generation = r.Int64() };
        h.Closed = r.Bool() ? ReadChunk(ref r, version) : null!;
        return h;
    }

    private static ObservationChunk ReadChunk(ref Reader r, ushort version)
    {
        // Version 1 wrote each array whole; version 2 only the entries in use; version 3 also delta-encodes the two
        // integer columns.
        static T[] Entries<T>(ref Reader r, ushort version) where T : unmanaged => (version >= 2 ? r.ChunkArray<T>() : r.Array<T>())!;
        static long[] Integers(ref Reader r, ushort version) => version >= 3 ? r.LongColumn()! : Entries<long>(ref r, version);
        var c = new ObservationChunk
        {
            StartIndex = r.Int64(),
            Count = r.Int32(),
            Sequences = Integers(ref r, version),
            Ticks = Integers(ref r, version),
            Values = Entries<float>(ref r, version),
            Inputs = Entries<float>(ref r, version),
        };
        if (c.Count < 0 || c.Count > (c.Sequences?.Length ?? 0))
            throw new InvalidDataException($"Stream record malformed: chunk count {c.Count} outside its capacity {c.Sequences?.Length ?? 0}.");
        return c;
    }

    private static void ReadLatestAnswer(ref Reader r, LatestAnswer answer)
    {
        answer.StreamId = r.String()!;
        answer.Sequence = r.Int64();
        answer.Timestamp = r.DateTimeOffset();
        // Fresh arrays from the reader: the answer takes them as its buffers (a null array, which no build writes, reads as empty).
        answer.Adopt(r.Array<float>() ?? [], r.Array<float>() ?? [], r.Array<float>() ?? [], r.Array<float>() ?? [], r.Array<long>() ?? []);
        answer.PreviousError = r.Bool() ? r.Single() : null;
        answer.WeightsVersion = r.Int64();
        answer.Duplicate = r.Bool();
        answer.StepCount = r.Int64();
    }

    // ---- primitives ----

    private ref struct Writer(Span<byte> buffer)
    {
        private readonly Span<byte> _buffer = buffer;
        public int Position;

        public void Byte(byte value) => _buffer[Position++] = value;
        public void Bool(bool value) => _buffer[Position++] = value ? (byte)1 : (byte)0;
        public void UInt16(ushort value) { BinaryPrimitives.WriteUInt16LittleEndian(_buffer[Position..], value); Position += 2; }
        public void Int16(short value) { BinaryPrimitives.WriteInt16LittleEndian(_buffer[Position..], value); Position += 2; }
        public void Int32(int value) { BinaryPrimitives.WriteInt32LittleEndian(_buffer[Position..], value); Position += 4; }
        public void Int64(long value) { BinaryPrimitives.WriteInt64LittleEndian(_buffer[Position..], value); Position += 8; }
        public void Single(float value) { BinaryPrimitives.WriteSingleLittleEndian(_buffer[Position..], value); Position += 4; }

        public void DateTimeOffset(DateTimeOffset value)
        {
            Int64(value.Ticks);                                   // clock time
            Int16(checked((short)value.Offset.TotalMinutes));     // offsets are whole minutes within +-14 h
        }

        public void String(string? value)
        {
            if (value is null) { Int32(-1); return; }
            int count = WriteUtf8.GetBytes(value, _buffer[(Position + 4)..]);
            Int32(count);
            Position += count;
        }

        /// <summary>Length, then the elements as one little-endian block (a plain copy on little-endian hardware).</summary>
        public void Array<T>(T[]? array) where T : unmanaged
        {
            if (array is null) { Int32(-1); return; }
            Int32(array.Length);
            var bytes = MemoryMarshal.AsBytes(array.AsSpan());
            var target = _buffer.Slice(Position, bytes.Length);
            bytes.CopyTo(target);
            if (!BitConverter.IsLittleEndian) ReverseElements<T>(target);
            Position += bytes.Length;
        }

        /// <summary>A chunk's integer column: its length, the count in use, then those elements raw or delta-encoded, whichever is shorter.</summary>
        public void LongColumn(long[]? array, ObservationChunk chunk)
        {
            if (array is null) { Int32(-1); return; }
            int used = InUse(array, chunk);
            Int32(array.Length);
            Int32(used);
            if (used == 0) return;
            var values = array.AsSpan(0, used);
            // The size pass (GetSize) measured the delta encoding already; measuring it again here before writing it was
            // a second walk of both columns of the tail on every core write. Instead the delta encoding is written at
            // once and abandoned for the raw one as soon as it would not be shorter than used * 8 bytes: the same choice
            // as DeltaEncodedSize(values) >= used * 8 (delta only when strictly shorter), so the bytes are the same. The
            // attempt never writes past the raw encoding's end, and the record has that much room here whenever raw was
            // the size pass's choice (when delta was, the attempt is the encoding and ends exactly where it should).
            int start = Position;
            int rawEnd = start + 1 + used * 8;
            Byte(EncodingDelta);
            Int64(values[0]);
            long previousDelta = 0;
            for (int i = 1; i < values.Length; i++)
            {
                long delta = unchecked(values[i] - values[i - 1]);
                ulong change = ZigZag(unchecked(delta - previousDelta));
                if (Position + VarintSize(change) >= rawEnd) { RawColumn(start, values); return; }
                Varint(change);
                previousDelta = delta;
            }
            if (Position >= rawEnd) RawColumn(start, values);   // a single value: 8 bytes either way, raw wins the tie
        }

        /// <summary>Rewinds to <paramref name="start"/> (the encoding byte) and writes the column raw.</summary>
        private void RawColumn(int start, ReadOnlySpan<long> values)
        {
            Position = start;
            Byte(EncodingRaw);
            foreach (long value in values) Int64(value);
        }

        private void Varint(ulong value)
        {
            while (value >= 0x80)
            {
                _buffer[Position++] = (byte)(value | 0x80);
                value >>= 7;
            }
            _buffer[Position++] = (byte)value;
        }

        /// <summary>A chunk array: its length, the count in use, then only those elements.</summary>
        public void ChunkArray<T>(T[]? array, ObservationChunk chunk) where T : unmanaged
        {
            if (array is null) { Int32(-1); return; }
            int used = InUse(array, chunk);
            Int32(array.Length);
            Int32(used);
            var bytes = MemoryMarshal.AsBytes(array.AsSpan(0, used));
            var target = _buffer.Slice(Position, bytes.Length);
            bytes.CopyTo(target);
            if (!BitConverter.IsLittleEndian) ReverseElements<T>(target);
            Position += bytes.Length;
        }
    }

    private ref struct Reader(ReadOnlySpan<byte> buffer, int position)
    {
        private readonly ReadOnlySpan<byte> _buffer = buffer;
        private int _position = position;

        public readonly int Remaining => _buffer.Length - _position;

        private ReadOnlySpan<byte> Take(int count)
        {
            if ((uint)count > (uint)Remaining)
                throw new InvalidDataException($"Stream record malformed: a field needs {count} bytes at offset {_position}, only {Remaining} remain.");
            var slice = _buffer.Slice(_position, count);
            _position += count;
            return slice;
        }

        public bool Bool()
        {
            byte value = Take(1)[0];
            return value switch
            {
                0 => false,
                1 => true,
                _ => throw new InvalidDataException($"Stream record malformed: boolean byte {value} at offset {_position - 1}."),
            };
        }

        public short Int16() => BinaryPrimitives.ReadInt16LittleEndian(Take(2));
        public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        public float Single() => BinaryPrimitives.ReadSingleLittleEndian(Take(4));

        public DateTimeOffset DateTimeOffset()
        {
            long ticks = Int64();
            short offsetMinutes = Int16();
            try { return new DateTimeOffset(ticks, TimeSpan.FromMinutes(offsetMinutes)); }
            catch (ArgumentException e) { throw new InvalidDataException($"Stream record malformed: timestamp ticks {ticks} offset {offsetMinutes} min out of range.", e); }
        }

        public string? String()
        {
            int count = Int32();
            if (count == -1) return null;
            if (count < 0) throw new InvalidDataException($"Stream record malformed: string length {count}.");
            var bytes = Take(count);
            try { return StrictUtf8.GetString(bytes); }
            catch (DecoderFallbackException e) { throw new InvalidDataException("Stream record malformed: invalid UTF-8 in a string.", e); }
        }

        public T[]? Array<T>() where T : unmanaged
        {
            int count = Int32();
            if (count == -1) return null;
            int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
            if (count < 0 || count > Remaining / size)
                throw new InvalidDataException($"Stream record malformed: array length {count} at offset {_position - 4} does not fit the {Remaining} remaining bytes.");
            if (count == 0) return [];
            var array = GC.AllocateUninitializedArray<T>(count);
            var target = MemoryMarshal.AsBytes(array.AsSpan());
            Take(count * size).CopyTo(target);
            if (!BitConverter.IsLittleEndian) ReverseElements<T>(target);
            return array;
        }

        /// <summary>
        /// A chunk's integer column (version 3): the array at its full length, the elements in use decoded from raw i64s
        /// or from the first value and zigzag varints of the change in the step, zeros after. Bounded like
        /// <see cref="ChunkArray{T}"/>.
        /// </summary>
        public long[]? LongColumn()
        {
            int length = Int32();
            if (length == -1) return null;
            int used = Int32();
            if (length < 0 || length > MaxChunkArrayBytes / 8 || used < 0 || used > length || used > Remaining)
                throw new InvalidDataException($"Stream record malformed: integer column of {length} elements with {used} in use at offset {_position - 8} (bound {MaxChunkArrayBytes / 8}, {Remaining} bytes remaining).");
            if (length == 0) return [];
            var array = new long[length];
            if (used == 0) return array;
            byte encoding = Take(1)[0];
            switch (encoding)
            {
                case EncodingRaw:
                    for (int i = 0; i < used; i++) array[i] = Int64();
                    break;
                case EncodingDelta:
                    array[0] = Int64();
                    long delta = 0;
                    for (int i = 1; i < used; i++)
                    {
                        delta = unchecked(delta + UnZigZag(Varint()));
                        array[i] = unchecked(array[i - 1] + delta);
                    }
                    break;
                default:
                    throw new InvalidDataException($"Stream record malformed: integer column encoding {encoding} at offset {_position - 1}.");
            }
            return array;
        }

        /// <summary>A LEB128 varint of at most 10 bytes whose last byte holds no bits beyond the 64th.</summary>
        private ulong Varint()
        {
            ulong value = 0;
            for (int shift = 0; ; shift += 7)
            {
                byte b = Take(1)[0];
                if (shift == 63 && b > 1)
                    throw new InvalidDataException($"Stream record malformed: a varint at offset {_position - 1} overflows 64 bits.");
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return value;
            }
        }

        /// <summary>
        /// A chunk array (version 2): the array at its full length, the elements in use from the record, zeros after.
        /// The length is bounded (a chunk's capacity times its row width is far below it), so a corrupt length cannot
        /// make a reader allocate gigabytes.
        /// </summary>
        public T[]? ChunkArray<T>() where T : unmanaged
        {
            int length = Int32();
            if (length == -1) return null;
            int used = Int32();
            int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
            if (length < 0 || length > MaxChunkArrayBytes / size || used < 0 || used > length || used > Remaining / size)
                throw new InvalidDataException($"Stream record malformed: chunk array of {length} elements with {used} in use at offset {_position - 8} (bound {MaxChunkArrayBytes / size}, {Remaining} bytes remaining).");
            if (length == 0) return [];
            var array = new T[length];
            var target = MemoryMarshal.AsBytes(array.AsSpan(0, used));
            Take(used * size).CopyTo(target);
            if (!BitConverter.IsLittleEndian) ReverseElements<T>(target);
            return array;
        }
    }

    private const byte EncodingRaw = 0, EncodingDelta = 1;

    /// <summary>Largest chunk array a record may declare (256 MiB), whatever of it is in use.</summary>
    private const int MaxChunkArrayBytes = 1 << 28;

    /// <summary>Big-endian hosts only: swaps every element of <paramref name="bytes"/> between host and little-endian order.</summary>
    private static void ReverseElements<T>(Span<byte> bytes) where T : unmanaged
    {
        switch (System.Runtime.CompilerServices.Unsafe.SizeOf<T>())
        {
            case 8: var longs = MemoryMarshal.Cast<byte, long>(bytes); BinaryPrimitives.ReverseEndianness(longs, longs); break;
            case 4: var ints = MemoryMarshal.Cast<byte, int>(bytes); BinaryPrimitives.ReverseEndianness(ints, ints); break;
            case 2: var shorts = MemoryMarshal.Cast<byte, short>(bytes); BinaryPrimitives.ReverseEndianness(shorts, shorts); break;
        }
    }
}
