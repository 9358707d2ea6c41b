namespace LstmOrleans.Abstractions;

/// <summary>Names shared by the grains, the silo host and the client.</summary>
public static class LstmOrleansNames
{
    /// <summary>
    /// Grain storage provider name used by every grain's <c>[PersistentState(..., "lstm")]</c>.
    /// The silo maps it to SQLite, Redis, PostgreSQL or memory storage.
    /// </summary>
    public const string StorageName = "lstm";

    /// <summary>Orleans stream provider name the stream grains consume from.</summary>
    public const string StreamProviderName = "sensors";

    /// <summary>
    /// Stream namespace for observations. Publishing an <see cref="Observation"/> on stream
    /// (<see cref="ObservationStreamNamespace"/>, stream key) feeds the <see cref="IStreamGrain"/> with that key.
    /// </summary>
    public const string ObservationStreamNamespace = "sensor-observations";

    /// <summary>Model a stream binds to when it receives data before any explicit bind.</summary>
    public const string DefaultModelName = "default";

    /// <summary>
    /// Why <paramref name="name"/> cannot name a model, or null when it can: 1..128 printable characters without '/',
    /// so that the HTTP API's /models/{name} routes can address every model whoever created it.
    /// </summary>
    public static string? ModelNameProblem(string? name) =>
        string.IsNullOrWhiteSpace(name) || name.Length > 128 || name.Any(c => char.IsControl(c) || c == '/')
            ? "A model name must be 1..128 printable characters without '/'."
            : null;

    /// <summary>
    /// Why <paramref name="streamId"/> cannot name a new stream, or null when it can: 1..256 printable characters, so that
    /// the HTTP API's /streams/{id} routes can address every stream whoever created it, and the registry listing's
    /// <c>after</c> cursor can page past it.
    /// </summary>
    public static string? StreamIdProblem(string? streamId) =>
        string.IsNullOrWhiteSpace(streamId) || streamId.Length > 256 || streamId.Any(char.IsControl)
            ? "A stream id must be 1..256 printable characters."
            : null;
}
