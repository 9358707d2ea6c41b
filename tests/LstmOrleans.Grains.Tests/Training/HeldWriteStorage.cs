using System.Collections.Concurrent;
using Orleans.Storage;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// Test-only grain storage decorator: a write of a grain whose writes are held does not reach the inner storage
/// until the test releases it, like a database that stalls on one row. The grain is then inside its (non-reentrant)
/// call for as long as the test wants, which is how a real stream "does not answer" or a real write stays in flight.
/// A grain's writes can also be made to fail (<see cref="Fail"/>), like a store with a transient error.
/// Reads and clears pass straight through.
/// </summary>
internal sealed class HeldWriteStorage(IGrainStorage inner) : IGrainStorage
{
    private static readonly ConcurrentDictionary<GrainId, TestHold> Holds = new();
    private static readonly ConcurrentDictionary<GrainId, (TestHold Fault, bool StoreFirst, bool Once)> Faults = new();
    private static readonly ConcurrentDictionary<GrainId, int> FailedCounts = new();

    /// <summary>Writes of <paramref name="grainId"/> failed by <see cref="Fail"/> so far (over every fault put on it).</summary>
    public static int FailedWrites(GrainId grainId) => FailedCounts.GetValueOrDefault(grainId);

    /// <summary>Holds every write of <paramref name="grainId"/> from now until the hold is released or disposed.</summary>
    public static TestHold Hold(GrainId grainId)
    {
        TestHold? hold = null;
        hold = new TestHold(() => Holds.TryRemove(new KeyValuePair<GrainId, TestHold>(grainId, hold!)));
        if (!Holds.TryAdd(grainId, hold)) throw new InvalidOperationException($"Writes of {grainId} are already held.");
        return hold;
    }

    /// <summary>
    /// Fails every write of <paramref name="grainId"/> from now until the fault is released (<see cref="TestHold.Release"/>;
    /// <see cref="TestHold.Entered"/> completes at the first failed write). With <paramref name="storeFirst"/> the write
    /// is stored and then reported as failed, as a commit of unknown outcome; with <paramref name="once"/> only the next
    /// write fails.
    /// </summary>
    public static TestHold Fail(GrainId grainId, bool storeFirst = false, bool once = false)
    {
        TestHold? fault = null;
        fault = new TestHold(() => Faults.TryRemove(grainId, out _));
        if (!Faults.TryAdd(grainId, (fault, storeFirst, once))) throw new InvalidOperationException($"Writes of {grainId} already fail.");
        return fault;
    }

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        inner.ReadStateAsync(stateName, grainId, grainState);

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (Holds.TryGetValue(grainId, out var hold)) await hold.EnterAsync();
        if (Faults.TryGetValue(grainId, out var fault))
        {
            if (fault.Once) fault.Fault.Release();
            // Stored through a copy: the caller keeps its old ETag, as a store's caller does when the commit's
            // outcome is reported as unknown, while the stored row has a new one.
            if (fault.StoreFirst)
                await inner.WriteStateAsync(stateName, grainId, new GrainState<T>(grainState.State, grainState.ETag) { RecordExists = grainState.RecordExists });
            FailedCounts.AddOrUpdate(grainId, 1, (_, n) => n + 1);
            _ = fault.Fault.EnterAsync();
            throw fault.StoreFirst ? FaultingGrainStorage.UnknownOutcome(stateName) : new IOException($"injected write failure ({stateName})");
        }
        await inner.WriteStateAsync(stateName, grainId, grainState);
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        inner.ClearStateAsync(stateName, grainId, grainState);
}

/// <summary>Held writes or calls. <see cref="Entered"/> completes when one is waiting on the hold.</summary>
/// <param name="onRelease">Stops the holder from holding anything more (removes the hold from its table).</param>
internal sealed class TestHold(Action onRelease) : IDisposable
{
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Entered => _entered.Task;

    public bool Released => _released.Task.IsCompleted;

    public Task EnterAsync()
    {
        _entered.TrySetResult();
        return _released.Task;
    }

    /// <summary>Lets the waiting write or call (and every later one) through.</summary>
    public void Release()
    {
        onRelease();
        _released.TrySetResult();
    }

    /// <summary>Releases after <paramref name="delay"/> at the latest (a safety net, so a failing test cannot hang forever).</summary>
    public TestHold ReleaseAfter(TimeSpan delay)
    {
        _ = Task.Delay(delay).ContinueWith(_ => Release(), TaskScheduler.Default);
        return this;
    }

    public void Dispose() => Release();
}
