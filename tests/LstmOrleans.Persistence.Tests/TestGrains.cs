using Orleans;
using Orleans.Runtime;

namespace LstmOrleans.Persistence.Tests;

/// <summary>State shaped like a sensor grain's: a sequence number and the LSTM (h, c) vectors.</summary>
[GenerateSerializer, Immutable, Alias("LstmOrleans.Persistence.Tests.SensorTestState")]
public sealed record SensorTestState
{
    [Id(0)] public long Sequence { get; init; }

    [Id(1)] public float[] Hidden { get; init; } = [];

    [Id(2)] public string Note { get; init; } = string.Empty;
}

/// <summary>What a test grain reports about its persistent state.</summary>
[GenerateSerializer, Immutable, Alias("LstmOrleans.Persistence.Tests.StateView")]
public sealed record StateView([property: Id(0)] SensorTestState State, [property: Id(1)] string? Etag, [property: Id(2)] bool RecordExists);

[Alias("LstmOrleans.Persistence.Tests.IDurableTestGrain")]
public interface IDurableTestGrain : IGrainWithStringKey
{
    [Alias("Write")]
    Task<StateView> WriteAsync(SensorTestState next);

    [Alias("Read")]
    Task<StateView> ReadAsync();

    [Alias("Clear")]
    Task<StateView> ClearAsync();

    [Alias("Deactivate")]
    Task DeactivateAsync();
}

public sealed class DurableTestGrain : Grain, IDurableTestGrain
{
    /// <summary>Every test cluster registers the store under test with this name.</summary>
    public const string StorageName = "durable";

    private readonly IPersistentState<SensorTestState> _state;

    public DurableTestGrain([PersistentState("sensor", StorageName)] IPersistentState<SensorTestState> state) => _state = state;

    public async Task<StateView> WriteAsync(SensorTestState next)
    {
        var previous = _state.State;
        _state.State = next;
        try
        {
            await _state.WriteStateAsync();
        }
        catch
        {
            // The store did not take the write: keep the in-memory state equal to what is stored, so
            // nothing downstream treats the failed value as written.
            _state.State = previous;
            throw;
        }

        return View();
    }

    public Task<StateView> ReadAsync() => Task.FromResult(View());

    public async Task<StateView> ClearAsync()
    {
        await _state.ClearStateAsync();
        // Not every Orleans version resets the in-memory copy on clear; do it here so the grain
        // carries on from an empty state, as a fresh activation would.
        _state.State = new SensorTestState();
        return View();
    }

    public Task DeactivateAsync()
    {
        DeactivateOnIdle();
        return Task.CompletedTask;
    }

    private StateView View() => new(_state.State, _state.Etag, _state.RecordExists);
}
