namespace LstmOrleans.Abstractions;

/// <summary>
/// A grain whose one method does nothing: the cost of an Orleans call and nothing else. <c>lstmorleans bench</c>
/// measures it as the ceiling that stream-grain ingest is compared against.
/// </summary>
[Alias("lstm.IPingGrain")]
public interface IPingGrain : IGrainWithStringKey
{
    /// <summary>Returns at once; no state, no I/O.</summary>
    [Alias("Ping")]
    Task PingAsync();

    /// <summary>
    /// Returns at once a <see cref="StepResult"/> of the same shape a stream grain answers an observation with
    /// (<paramref name="horizons"/> values per array, this grain's key as the stream id), computing nothing and storing
    /// nothing: the cost of the single-ingest call's messages alone, so a benchmark can tell it apart from the step
    /// and the storage write.
    /// </summary>
    [Alias("Echo")]
    Task<StepResult> EchoAsync(Observation observation, int horizons);
}
