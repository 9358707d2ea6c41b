using LstmOrleans.Abstractions;
using Orleans.Runtime;

namespace LstmOrleans.Grains;

/// <summary>Durable state of the model catalog: every created model's name, kept in ordinal order.</summary>
[GenerateSerializer, Alias("lstm.ModelCatalogState")]
public sealed class ModelCatalogState
{
    [Id(0)] public List<string> Names { get; set; } = [];
}

/// <summary>The list of created models (see <see cref="IModelCatalogGrain"/>).</summary>
public sealed class ModelCatalogGrain(
    [PersistentState("catalog", LstmOrleansNames.StorageName)] IPersistentState<ModelCatalogState> state) : Grain, IModelCatalogGrain
{
    public async Task AddAsync(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var names = state.State.Names;
        int at = names.BinarySearch(name, StringComparer.Ordinal);
        if (at >= 0) return;
        names.Insert(~at, name);
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            names.Remove(name);   // not durable, so not listed; the model grain's next activation adds it again
            throw;
        }
    }

    public Task<ModelPage> ListAsync(string? after, int limit)
    {
        if (limit is < 1 or > ModelCatalog.MaxPageSize)
            throw new ArgumentOutOfRangeException(nameof(limit), limit, $"A page holds 1..{ModelCatalog.MaxPageSize} names.");
        var names = state.State.Names;
        int start = 0;
        if (after is not null)
        {
            int at = names.BinarySearch(after, StringComparer.Ordinal);
            start = at >= 0 ? at + 1 : ~at;
        }
        int count = Math.Min(limit, names.Count - start);
        var page = names.GetRange(start, count).ToArray();
        string? next = start + count < names.Count ? page[^1] : null;
        return Task.FromResult(new ModelPage(page, next));
    }
}
