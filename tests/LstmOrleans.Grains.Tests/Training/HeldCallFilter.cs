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

    public async Task Invoke(IOutgoingGrainCallContext context)
    {
        if (Holds.TryGetValue((context.TargetId, context.InterfaceMethod.Name), out var hold)) await hold.EnterAsync();
        await context.Invoke();
        if (ResponseHolds.TryGetValue((context.TargetId, context.InterfaceMethod.Name), out var answer)) await answer.EnterAsync();
    }
}
