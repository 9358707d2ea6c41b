using LstmOrleans.Abstractions;

namespace LstmOrleans.Grains;

/// <summary>
/// The no-op benchmark grain. Keyed and non-reentrant like <see cref="StreamGrain"/>, so a call to it pays the same
/// Orleans costs (placement, activation, messaging, one turn) and nothing else.
/// </summary>
public sealed class PingGrain : Grain, IPingGrain
{
    public Task PingAsync() => Task.CompletedTask;

    public Task<StepResult> EchoAsync(Observation observation, int horizons)
    {
        ArgumentNullException.ThrowIfNull(observation);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(horizons);
        // No model has more (LstmConfig); without a bound one call could make the silo allocate gigabytes.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(horizons, Lstm.LstmConfig.MaxDimension);
        // Fresh arrays per call, as a stream grain's answer is a fresh copy per call.
        float value = observation.Values is [var first, ..] ? first : 0f;
        var predictions = new float[horizons];
        var lower = new float[horizons];
        var upper = new float[horizons];
        var rmse = new float[horizons];
        var samples = new long[horizons];
        predictions.AsSpan().Fill(value);
        return Task.FromResult(new StepResult(this.GetPrimaryKeyString(), observation.Sequence, observation.Timestamp,
            predictions, lower, upper, rmse, samples, 0f, 1, false, observation.Sequence));
    }
}
