namespace LstmOrleans.Abstractions;

/// <summary>
/// The names of every created model (one grain, key 0): model grains add themselves when created (and again on
/// activation, so models created before the catalog existed are listed too). A deployment has a handful to a few
/// thousand models, never millions, so one grain is not a hotspot; it is read by listings only, never by ingest.
/// </summary>
[Alias("lstm.IModelCatalogGrain")]
public interface IModelCatalogGrain : IGrainWithIntegerKey
{
    /// <summary>Records <paramref name="name"/>; idempotent.</summary>
    [Alias("Add")]
    Task AddAsync(string name);

    /// <summary>
    /// Model names in ordinal order, at most <paramref name="limit"/> (1..<see cref="ModelCatalog.MaxPageSize"/>) after
    /// <paramref name="after"/> (exclusive; null = from the first). Pass <see cref="ModelPage.Next"/> for the next page.
    /// </summary>
    [Alias("List")]
    Task<ModelPage> ListAsync(string? after, int limit);
}

/// <summary>Where the catalog lives and how large its pages may be.</summary>
public static class ModelCatalog
{
    /// <summary>Key of the one catalog grain.</summary>
    public const long Key = 0;

    /// <summary>Largest page a listing returns.</summary>
    public const int MaxPageSize = 1000;
}

/// <summary>One page of model names; <see cref="Next"/> is the cursor of the next page, null on the last.</summary>
[GenerateSerializer, Immutable, Alias("lstm.ModelPage")]
public sealed record ModelPage(
    [property: Id(0)] string[] Names,
    [property: Id(1)] string? Next);
