namespace LstmOrleans.Grains.Storage;

/// <summary>
/// Implemented by a grain-state object that a grain passes to every read and write of one record:
/// <see cref="LocalMemoryGrainStorage"/> keeps that key's slot on it, so a steady write skips the store's dictionary
/// lookup. With thousands of streams the lookup's dependent loads (bucket, node, key) miss the CPU caches: a profile of
/// single-observation ingest put about 6 % of the silo's CPU on them. Any other store ignores it.
/// </summary>
public interface ILocalMemorySlotCache
{
    /// <summary>Owned by the store: opaque to everyone else, and checked against the store and key before each use.</summary>
    object? LocalMemorySlot { get; set; }
}
