using System.Buffers;
using Orleans.Serialization;
using Orleans.Storage;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// Orleans' binary state format, byte for byte what <see cref="OrleansGrainStorageSerializer"/> writes (so rows written
/// by either read with either), but serialized into one exactly-sized array: the stock serializer grows an
/// ArrayBufferWriter from 256 bytes, about three times the state's size in garbage on every write.
/// </summary>
internal sealed class CompactOrleansGrainStorageSerializer(Serializer serializer) : IBufferGrainStorageSerializer
{
    public BinaryData Serialize<T>(T? input) => new(serializer.SerializeToArray(input));

    public T Deserialize<T>(BinaryData input) => serializer.Deserialize<T>(input.ToMemory())!;

    public void Serialize<T>(T? input, IBufferWriter<byte> output) => serializer.Serialize(input, output);

    public T Deserialize<T>(ReadOnlyMemory<byte> input) => serializer.Deserialize<T>(input)!;
}
