using System.Buffers;
using Orleans.Storage;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// A state serializer that can also write into a caller's buffer and read from a span of memory, so a store that keeps
/// its own reusable buffers (the process-local memory store) serializes without a per-write array.
/// Both paths write and read exactly the bytes of <see cref="IGrainStorageSerializer.Serialize{T}"/>.
/// </summary>
internal interface IBufferGrainStorageSerializer : IGrainStorageSerializer
{
    /// <summary>Appends the serialized <paramref name="input"/> to <paramref name="output"/>.</summary>
    void Serialize<T>(T? input, IBufferWriter<byte> output);

    /// <summary>Reads a value written by either Serialize method.</summary>
    T Deserialize<T>(ReadOnlyMemory<byte> input);
}
