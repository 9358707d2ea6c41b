using System.Buffers;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// The serialized states waiting in the group-commit queue, in pooled arrays. A payload lives from the grain's write
/// until its batch has committed (a few ms, longer under load), long enough to be promoted out of gen0 if it were a
/// fresh array, and for a stream core that is a 1-2 KB array on every acknowledged step. The pool is the providers'
/// own (not <see cref="ArrayPool{T}.Shared"/>, whose per-core stacks hold 32 arrays per size, far fewer than the
/// writes in flight under load) and keeps up to <see cref="MaxArraysPerBucket"/> arrays of each power-of-two size.
/// </summary>
internal static class PayloadPool
{
    public const int MaxArrayLength = 1 << 20;
    public const int MaxArraysPerBucket = 1024;

    public static readonly ArrayPool<byte> Pool = ArrayPool<byte>.Create(MaxArrayLength, MaxArraysPerBucket);
}

/// <summary>
/// An <see cref="IBufferWriter{T}"/> over one array rented from <see cref="PayloadPool"/>: grows by renting a larger
/// array and returning the old one. <see cref="Detach"/> hands the array (and its written length) to the caller, who
/// must return it to <see cref="PayloadPool.Pool"/>; <see cref="Dispose"/> returns whatever was not detached.
/// </summary>
internal sealed class PooledPayloadWriter : IBufferWriter<byte>, IDisposable
{
    private byte[] _buffer;
    private int _written;

    public PooledPayloadWriter(int initialCapacity = 2048) => _buffer = PayloadPool.Pool.Rent(initialCapacity);

    public int WrittenCount => _written;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _written);

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (_written + count > _buffer.Length) throw new InvalidOperationException("Advanced past the end of the buffer.");
        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_written);
    }

    private void Ensure(int sizeHint)
    {
        int needed = _written + Math.Max(sizeHint, 1);
        if (needed <= _buffer.Length) return;
        var larger = PayloadPool.Pool.Rent(Math.Max(needed, checked(_buffer.Length * 2)));
        _buffer.AsSpan(0, _written).CopyTo(larger);
        PayloadPool.Pool.Return(_buffer);
        _buffer = larger;
    }

    /// <summary>The rented array holding the payload in [0, length); this writer no longer owns it.</summary>
    public (byte[] Buffer, int Length) Detach()
    {
        var detached = (_buffer, _written);
        _buffer = [];
        _written = 0;
        return detached;
    }

    public void Dispose()
    {
        if (_buffer.Length > 0) PayloadPool.Pool.Return(_buffer);
        _buffer = [];
        _written = 0;
    }
}
