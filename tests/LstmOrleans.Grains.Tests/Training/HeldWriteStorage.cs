using System.Collections.Concurrent;
using Orleans.Storage;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// Test-only grain storage decorator: a write of a grain whose writes are held does not reach the inner storage
/// until the test releases it, like a database that stalls on one row. The grain is then inside its (non-reentrant)
/// call for as long as the test wants, which is how a real stream "does not answer" or a real write stays in flight.
/// Reads and clears pass straight through.
/// </summary>
internal sealed class HeldWriteStorage(IGrainStorage inner) : IGrainStorage
{
    private static readonly ConcurrentDictionary<GrainId, TestHold> Holds = new();

    /// <summary>Holds every write of <paramref name="grainId"/> from now until the hold is released or disposed.</summary>
    public static TestHold Hold(GrainId grainId)
    {
        TestHold? hold = null;
        hold = new TestHold(() => Holds.TryRemove(new KeyValuePair<GrainId, TestHold>(grainId, hold!)));
        if (!Holds.TryAdd(grainId, hold)) throw new InvalidOperationException($"Writes of {grainId} are already held.");
        return hold;
    }

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        inner.ReadStateAsync(stateName, grainId, grainState);

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (Holds.TryGetValue(grainId, out var hold)) await hold.EnterAsync();
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
