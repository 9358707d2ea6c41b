using System.Collections.Concurrent;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// Test-only outgoing call filter: a grain's call of a chosen method on a chosen grain is not sent until the test
/// releases it, so the test can act at the exact moment between a caller's decision and the call that carries it out.
/// The caller's turn is not blocked (the filter awaits), calls from clients are not filtered.
/// </summary>
internal sealed class HeldCallFilter : IOutgoingGrainCallFilter
{
    private static readonly ConcurrentDictionary<(GrainId Target, string Method), TestHold> Holds = new();
    private static readonly ConcurrentDictionary<(GrainId Target, string Method), TestHold> ResponseHolds = new();
    private static readonly ConcurrentDictionary<(GrainId Target, string Method), (TestHold Fault, string Message)> Faults = new();

    /// <summary>Holds every call of <paramref name="method"/> on <paramref name="target"/> until released or disposed.</summary>
    public static TestHold Hold(GrainId target, string method)
    {
        TestHold? hold = null;
        hold = new TestHold(() => Holds.TryRemove(new KeyValuePair<(GrainId, string), TestHold>((target, method), hold!)));
        if (!Holds.TryAdd((target, method), hold)) throw new InvalidOperationException($"Calls of {method} on {target} are already held.");
        return hold;
    }

    /// <summary>
    /// Holds the answer of every call of <paramref name="method"/> on <paramref name="target"/>: the call is made (and
    /// its effect stored) but the caller does not see it return until released or disposed.
    /// </summary>
    public static TestHold HoldResponse(GrainId target, string method)
    {
        TestHold? hold = null;
        hold = new TestHold(() => ResponseHolds.TryRemove(new KeyValuePair<(GrainId, string), TestHold>((target, method), hold!)));
        if (!ResponseHolds.TryAdd((target, method), hold)) throw new InvalidOperationException($"Answers of {method} on {target} are already held.");
        return hold;
    }

    /// <summary>
    /// Fails every call of <paramref name="method"/> on <paramref name="target"/> with an <see cref="InvalidOperationException"/>
    /// saying <paramref name="message"/>, without sending it, until released or disposed (<see cref="TestHold.Entered"/>
    /// completes at the first failed call): a callee that cannot be reached or throws.
    /// </summary>
    public static TestHold Fail(GrainId target, string method, string message)
    {
        TestHold? fault = null;
        fault = new TestHold(() => Faults.TryRemove((target, method), out _));
        if (!Faults.TryAdd((target, method), (fault, message))) throw new InvalidOperationException($"Calls of {method} on {target} already fail.");
        return fault;
    }

    public async Task Invoke(IOutgoingGrainCallContext context)
    {
        if (Faults.TryGetValue((context.TargetId, context.InterfaceMethod.Name), out var fault))
        {
            _ = fault.Fault.EnterAsync();
            throw new InvalidOperationException(fault.Message);
        }
        if (Holds.TryGetValue((context.TargetId, context.InterfaceMethod.Name), out var hold)) await hold.EnterAsync();
        await context.Invoke();
        if (ResponseHolds.TryGetValue((context.TargetId, context.InterfaceMethod.Name), out var answer)) await answer.EnterAsync();
    }
}
