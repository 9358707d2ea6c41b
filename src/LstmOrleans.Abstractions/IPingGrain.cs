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
}
