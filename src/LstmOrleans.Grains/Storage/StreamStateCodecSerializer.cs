using System.Buffers;
using LstmOrleans.Persistence.GroupCommit;
using Orleans.Storage;

namespace LstmOrleans.Grains.Storage;

/// <summary>
/// A state serializer decorator: the stream records (<see cref="StreamState"/>, <see cref="StreamHistory"/>,
/// <see cref="ObservationChunk"/>) are written with <see cref="StreamStateCodec"/>, every other type by the inner
/// serializer. Reading goes by the payload's first bytes, not by type, so records written before the codec existed
/// (Orleans' binary format, or whatever the inner serializer wrote) still read through the inner serializer.
/// </summary>
public sealed class StreamStateCodecSerializer : IGrainStorageSerializer, IBufferGrainStorageSerializer
{
    private readonly IGrainStorageSerializer _inner;
    private readonly IBufferGrainStorageSerializer? _innerBuffered;

    public StreamStateCodecSerializer(IGrainStorageSerializer inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        _innerBuffered = inner as IBufferGrainStorageSerializer;
    }

    /// <summary>The serializer used for every type the codec does not handle and for records in its format.</summary>
    public IGrainStorageSerializer Inner => _inner;

    public BinaryData Serialize<T>(T? input) =>
        input is StreamState or StreamHistory or ObservationChunk ? new BinaryData(StreamStateCodec.ToArray(input)) : _inner.Serialize(input);

    public T Deserialize<T>(BinaryData input)
    {
        var memory = input.ToMemory();
        return StreamStateCodec.IsCodecRecord(memory.Span) ? StreamStateCodec.Read<T>(memory.Span) : _inner.Deserialize<T>(input)!;
    }

    /// <summary>Writes straight into <paramref name="output"/> (no intermediate array for the stream records).</summary>
    public void Serialize<T>(T? input, IBufferWriter<byte> output)
    {
        if (input is StreamState or StreamHistory or ObservationChunk)
        {
            int size = StreamStateCodec.GetSize(input);
            StreamStateCodec.Write(input, output.GetSpan(size)[..size]);
            output.Advance(size);
        }
        else if (_innerBuffered is not null) _innerBuffered.Serialize(input, output);
        else output.Write(_inner.Serialize(input).ToMemory().Span);
    }

    public T Deserialize<T>(ReadOnlyMemory<byte> input) =>
        StreamStateCodec.IsCodecRecord(input.Span) ? StreamStateCodec.Read<T>(input.Span)
        : _innerBuffered is not null ? _innerBuffered.Deserialize<T>(input)
        : _inner.Deserialize<T>(new BinaryData(input))!;
}
