using LstmOrleans.Abstractions;

namespace LstmOrleans.Grains;

/// <summary>
/// The no-op benchmark grain. Keyed and non-reentrant like <see cref="StreamGrain"/>, so a call to it pays the same
/// Orleans costs (placement, activation, messaging, one turn) and nothing else.
/// </summary>
public sealed class PingGrain : Grain, IPingGrain
{
    public Task PingAsync() => Task.CompletedTask;
}
