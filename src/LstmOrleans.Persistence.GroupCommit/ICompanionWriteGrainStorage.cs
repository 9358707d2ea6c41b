using Orleans.Runtime;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>
/// A grain storage that writes a grain's record together with companion records of the same grain as one atomic
/// unit, guarded by the main record's ETag alone: if the main write applies, every companion is written too (created,
/// or replacing whatever is stored, tombstones included) in the same commit; on a conflict nothing is written. A
/// stream grain writes its closed-history chunks this way with its core state: the core's ETag proves the writer is the
/// stream's one activation, so the chunks need no ETag (and no read) of their own, and no crash can leave them ahead
/// of the core. Implemented by the SQLite and PostgreSQL providers and the process-local memory store; other stores
/// (Orleans' Redis provider) take separate, fenced writes.
/// </summary>
public interface ICompanionWriteGrainStorage
{
    /// <summary>
    /// Writes <paramref name="grainState"/> under <paramref name="stateName"/> as <c>IGrainStorage.WriteStateAsync</c> does
    /// (a wrong ETag throws <see cref="Orleans.Storage.InconsistentStateException"/>), and with it, atomically, each
    /// companion (state name, state) of the same grain, unconditionally. Companion state names must differ from
    /// <paramref name="stateName"/> and from each other.
    /// </summary>
    Task WriteStateWithCompanionsAsync<T, TCompanion>(string stateName, GrainId grainId, IGrainState<T> grainState,
        IReadOnlyList<KeyValuePair<string, TCompanion>> companions);
}

/// <summary>What every <see cref="ICompanionWriteGrainStorage"/> implementation checks the same way.</summary>
internal static class CompanionWrites
{
    /// <summary>Throws <see cref="ArgumentException"/> unless the companion names differ from the main one and from each other.</summary>
    public static void EnsureDistinct<TCompanion>(string stateName, GrainId grainId, IReadOnlyList<KeyValuePair<string, TCompanion>> companions)
    {
        // Plain loops: every companion write (each closed history chunk) runs this, and Take(i).Any(lambda) allocated a
        // closure, an iterator and an enumerator per companion.
        for (int i = 0; i < companions.Count; i++)
        {
            string name = companions[i].Key;
            bool repeated = name == stateName;
            for (int j = 0; j < i && !repeated; j++) repeated = companions[j].Key == name;
            if (repeated)
            {
                throw new ArgumentException($"Companion state name '{name}' of {grainId} is not distinct.", nameof(companions));
            }
        }
    }
}
