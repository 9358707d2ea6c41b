using LstmOrleans.Persistence.GroupCommit;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

/// <summary>A provider instance opened by a test, with the statistics both group-commit providers expose.</summary>
public sealed class ProviderUnderTest(IGrainStorage storage, Func<long> committedOperations, Func<long> failedBatches, Func<ValueTask> close,
    Func<CancellationToken, Task> initialize)
    : IGrainStorage, ICompanionWriteGrainStorage, IAsyncDisposable
{
    /// <summary>Closes the provider as its silo's stop would, then initialises it again as a start would.</summary>
    public async Task CloseAndInitializeAgainAsync()
    {
        await close();
        await initialize(CancellationToken.None);
    }

    public long CommittedOperations => committedOperations();

    public long FailedBatches => failedBatches();

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => storage.ReadStateAsync(stateName, grainId, grainState);

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => storage.WriteStateAsync(stateName, grainId, grainState);

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => storage.ClearStateAsync(stateName, grainId, grainState);

    public Task WriteStateWithCompanionsAsync<T, TCompanion>(string stateName, GrainId grainId, IGrainState<T> grainState,
        IReadOnlyList<KeyValuePair<string, TCompanion>> companions) =>
        ((ICompanionWriteGrainStorage)storage).WriteStateWithCompanionsAsync(stateName, grainId, grainState, companions);

    public ValueTask DisposeAsync() => close();
}

/// <summary>
/// The contract both group-commit providers (SQLite, PostgreSQL) must keep, run against each provider used directly
/// (no cluster): etag concurrency, tombstones, one batch per transaction with a conflict failing alone, and a failed
/// transaction failing every call in it and changing nothing. Each store's subclass exposes these as facts.
/// </summary>
public abstract class GroupCommitProviderTests
{
    protected const string StateName = "sensor";

    /// <summary>A fresh place for rows (a database file, a table) that several provider instances can share.</summary>
    protected abstract string NewLocation();

    /// <summary>Opens and initialises a provider on <paramref name="location"/>.</summary>
    protected abstract Task<ProviderUnderTest> OpenProviderAsync(string location, Func<int, ValueTask>? onBeforeCommit = null, string serviceId = "service-a");

    /// <summary>Replaces the stored payload of one row behind the provider's back (a corrupted or foreign record).</summary>
    protected abstract Task OverwritePayloadAsync(string location, GrainId grainId, byte[] payload);

    protected static GrainId NewGrainId() => GrainId.Create("sensor", Guid.NewGuid().ToString("N"));

    protected static async Task<GrainState<SensorTestState>> ReadAsync(IGrainStorage storage, GrainId grainId)
    {
        var state = new GrainState<SensorTestState>(new SensorTestState());
        await storage.ReadStateAsync(StateName, grainId, state);
        return state;
    }

    protected static SensorTestState Sample(long sequence, string note = "") => GrainStorageDurabilityTests.Sample(sequence, note: note);

    /// <summary>
    /// Every statement the provider runs (create table, insert, guarded update, companion insert and upsert, clear of a
    /// row and of nothing, read) on the table <paramref name="open"/> uses, then a second instance reads what the first
    /// left. For table names that are SQL keywords, which the option check allows and every statement must quote.
    /// </summary>
    protected static async Task EveryStatementWorksOnTheTableCore(Func<Task<ProviderUnderTest>> open)
    {
        var grainId = NewGrainId();
        var clearedId = NewGrainId();
        async Task<GrainState<SensorTestState>> ReadNamedAsync(IGrainStorage from, string name)
        {
            var state = new GrainState<SensorTestState>(new SensorTestState());
            await from.ReadStateAsync(name, grainId, state);
            return state;
        }

        await using (var provider = await open())
        {
            var state = new GrainState<SensorTestState>(Sample(1));
            await provider.WriteStateAsync(StateName, grainId, state);
            state.State = Sample(2);
            await provider.WriteStateAsync(StateName, grainId, state);
            state.State = Sample(3);
            await provider.WriteStateWithCompanionsAsync(StateName, grainId, state, [KeyValuePair.Create("c.0", Sample(30, "c.0"))]);
            state.State = Sample(4);
            await provider.WriteStateWithCompanionsAsync(StateName, grainId, state, [KeyValuePair.Create("c.0", Sample(40, "c.0"))]);
            Assert.Equal("4", state.ETag);

            var doomed = new GrainState<SensorTestState>(Sample(5));
            await provider.WriteStateAsync(StateName, clearedId, doomed);
            await provider.ClearStateAsync(StateName, clearedId, doomed);
            await provider.ClearStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(new SensorTestState()));
        }

        await using var reopened = await open();
        var read = await ReadAsync(reopened, grainId);
        GrainStorageDurabilityTests.AssertSameState(Sample(4), read.State);
        Assert.Equal("4", read.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(40, "c.0"), (await ReadNamedAsync(reopened, "c.0")).State);
        var cleared = await ReadAsync(reopened, clearedId);
        Assert.False(cleared.RecordExists);
        Assert.Equal("2", cleared.ETag);
    }

    /// <summary>
    /// Payloads wait for their commit in pooled arrays that later writes reuse (larger than the payload, holding an
    /// earlier payload's bytes). Writes that shrink and grow one after the other, then many at once, must each store
    /// exactly their own bytes: no row ever shows a tail or a whole payload of another write, before or after reopening.
    /// </summary>
    protected async Task PooledPayloadsNeverLeakBetweenWritesCore()
    {
        var path = NewLocation();
        await using var provider = await OpenProviderAsync(path);
        var target = provider;
        int[] sizes = [600, 3, 300, 0, 1, 1200, 40, 900, 2];
        var expected = new Dictionary<GrainId, SensorTestState>();
        var etags = new Dictionary<GrainId, string?>();
        foreach (var (size, i) in sizes.Select((size, i) => (size, i)))
        {
            var id = NewGrainId();
            var state = new GrainState<SensorTestState>(GrainStorageDurabilityTests.Sample(i + 1, size, new string('n', size % 53)));
            await target.WriteStateAsync(StateName, id, state);
            expected[id] = state.State!;
            etags[id] = state.ETag;
        }

        // All at once: concurrent writes hold distinct arrays while they wait in one batch.
        var ids = expected.Keys.ToArray();
        var rewrites = ids.Select((id, i) => new GrainState<SensorTestState>(GrainStorageDurabilityTests.Sample(100 + i, sizes[(i + 4) % sizes.Length], "again")) { ETag = etags[id] }).ToArray();
        await Task.WhenAll(ids.Select((id, i) => target.WriteStateAsync(StateName, id, rewrites[i])));
        for (var i = 0; i < ids.Length; i++)
        {
            expected[ids[i]] = rewrites[i].State!;
        }

        foreach (var (id, state) in expected)
        {
            GrainStorageDurabilityTests.AssertSameState(state, (await ReadAsync(target, id)).State);
        }

        await using var fresh = await OpenProviderAsync(path);
        foreach (var (id, state) in expected)
        {
            GrainStorageDurabilityTests.AssertSameState(state, (await ReadAsync(fresh, id)).State);
        }
    }

    /// <summary>
    /// <see cref="ICompanionWriteGrainStorage"/>: companions commit with their guarded write or not at all: on success
    /// every one is created or replaced (an existing row and a tombstone alike); on a stale etag, a failed commit or
    /// names that are not distinct nothing is written; and what committed is what a fresh instance reads.
    /// </summary>
    protected async Task CompanionsCommitWithTheirGuardedWriteOrNotAtAllCore()
    {
        var path = NewLocation();
        var grainId = NewGrainId();
        bool failCommit = false;
        await using var storage = await OpenProviderAsync(path, _ => failCommit ? throw new IOException("injected commit failure") : ValueTask.CompletedTask);
        static KeyValuePair<string, SensorTestState>[] Companions(params (string Name, long Sequence)[] items) =>
            items.Select(i => KeyValuePair.Create(i.Name, Sample(i.Sequence, i.Name))).ToArray();
        async Task<GrainState<SensorTestState>> ReadNamedAsync(IGrainStorage from, string name)
        {
            var state = new GrainState<SensorTestState>(new SensorTestState());
            await from.ReadStateAsync(name, grainId, state);
            return state;
        }

        var core = new GrainState<SensorTestState>(Sample(1));
        await storage.WriteStateWithCompanionsAsync(StateName, grainId, core, Companions(("c.0", 10), ("c.1", 11)));
        Assert.Equal("1", core.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(10, "c.0"), (await ReadNamedAsync(storage, "c.0")).State);
        GrainStorageDurabilityTests.AssertSameState(Sample(11, "c.1"), (await ReadNamedAsync(storage, "c.1")).State);

        // Over an existing row and a tombstone: both replaced, whatever their versions.
        await storage.ClearStateAsync("c.1", grainId, await ReadNamedAsync(storage, "c.1"));
        core.State = Sample(2);
        await storage.WriteStateWithCompanionsAsync(StateName, grainId, core, Companions(("c.0", 20), ("c.1", 21)));
        Assert.Equal("2", core.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(20, "c.0"), (await ReadNamedAsync(storage, "c.0")).State);
        var revived = await ReadNamedAsync(storage, "c.1");
        Assert.True(revived.RecordExists);
        GrainStorageDurabilityTests.AssertSameState(Sample(21, "c.1"), revived.State);

        // A stale etag: the write conflicts and no companion is written.
        var stale = new GrainState<SensorTestState>(Sample(3)) { ETag = "1" };
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateWithCompanionsAsync(StateName, grainId, stale, Companions(("c.0", 30), ("c.2", 32))));
        Assert.False((await ReadNamedAsync(storage, "c.2")).RecordExists);
        GrainStorageDurabilityTests.AssertSameState(Sample(20, "c.0"), (await ReadNamedAsync(storage, "c.0")).State);

        // A failed commit: nothing of the unit is visible, the caller's etag is unchanged, and a retry applies it all.
        failCommit = true;
        core.State = Sample(4);
        await Assert.ThrowsAnyAsync<Exception>(() => storage.WriteStateWithCompanionsAsync(StateName, grainId, core, Companions(("c.0", 40), ("c.3", 43))));
        failCommit = false;
        Assert.Equal("2", core.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(2), (await ReadAsync(storage, grainId)).State);
        GrainStorageDurabilityTests.AssertSameState(Sample(20, "c.0"), (await ReadNamedAsync(storage, "c.0")).State);
        Assert.False((await ReadNamedAsync(storage, "c.3")).RecordExists);
        await storage.WriteStateWithCompanionsAsync(StateName, grainId, core, Companions(("c.0", 40), ("c.3", 43)));
        Assert.Equal("3", core.ETag);

        // Names that are not distinct are refused before anything is queued.
        await Assert.ThrowsAsync<ArgumentException>(() => storage.WriteStateWithCompanionsAsync(StateName, grainId, core, Companions(("c.0", 50), ("c.0", 51))));
        await Assert.ThrowsAsync<ArgumentException>(() => storage.WriteStateWithCompanionsAsync(StateName, grainId, core, Companions((StateName, 52))));
        Assert.Equal("3", core.ETag);

        await using var fresh = await OpenProviderAsync(path);
        GrainStorageDurabilityTests.AssertSameState(Sample(4), (await ReadAsync(fresh, grainId)).State);
        Assert.Equal("3", (await ReadAsync(fresh, grainId)).ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(40, "c.0"), (await ReadNamedAsync(fresh, "c.0")).State);
        GrainStorageDurabilityTests.AssertSameState(Sample(21, "c.1"), (await ReadNamedAsync(fresh, "c.1")).State);
        GrainStorageDurabilityTests.AssertSameState(Sample(43, "c.3"), (await ReadNamedAsync(fresh, "c.3")).State);
    }

    protected async Task StaleEtagFromSecondInstanceConflictsAndChangesNothingCore()
    {
        var path = NewLocation();
        var grainId = NewGrainId();
        await using var a = await OpenProviderAsync(path);
        await using var b = await OpenProviderAsync(path);
        await a.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(1)));

        var viaA = await ReadAsync(a, grainId);
        var viaB = await ReadAsync(b, grainId);
        Assert.Equal(viaA.ETag, viaB.ETag);

        viaA.State = Sample(2, "A");
        await a.WriteStateAsync(StateName, grainId, viaA);

        viaB.State = Sample(3, "B");
        var conflict = await Assert.ThrowsAsync<InconsistentStateException>(() => b.WriteStateAsync(StateName, grainId, viaB));
        Assert.Contains("Version conflict", conflict.Message);
        Assert.Equal("1", viaB.ETag);

        var stored = await ReadAsync(b, grainId);
        GrainStorageDurabilityTests.AssertSameState(Sample(2, "A"), stored.State);
        Assert.Equal("2", stored.ETag);

        // A writer that never read (null etag) cannot overwrite an existing row either.
        await Assert.ThrowsAsync<InconsistentStateException>(() => b.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(9))));
        GrainStorageDurabilityTests.AssertSameState(Sample(2, "A"), (await ReadAsync(a, grainId)).State);
    }

    /// <summary>
    /// A stored record the serializer cannot read (cut short, emptied, garbage) fails the read with an error naming the
    /// provider, state and grain, not the serializer's bare complaint; the caller's state gets neither the row's etag
    /// nor "exists", so it cannot go on to overwrite the record unknowingly; the record is left as it is (every later
    /// read fails the same way, never a silent reset to an empty state), and a writer without its etag still conflicts.
    /// </summary>
    protected async Task UnreadableRecordFailsItsReadNamingTheGrainAndIsLeftAsItIsCore()
    {
        var location = NewLocation();
        await using var storage = await OpenProviderAsync(location);
        var grainId = NewGrainId();
        var written = new GrainState<SensorTestState>(Sample(1, "a note long enough to cut"));
        await storage.WriteStateAsync(StateName, grainId, written);
        var intact = await ReadAsync(storage, grainId);
        var payload = TestSerializer.Serializer.SerializeToArray(intact.State);

        foreach (var damaged in new[] { payload[..(payload.Length / 2)], Array.Empty<byte>(), [0xFF, 0x00, 0x13, 0x37] })
        {
            await OverwritePayloadAsync(location, grainId, damaged);
            for (var attempt = 0; attempt < 2; attempt++)
            {
                var state = new GrainState<SensorTestState>(new SensorTestState());
                var error = await Assert.ThrowsAsync<OrleansException>(() => storage.ReadStateAsync(StateName, grainId, state));
                Assert.Contains("Unreadable stored state", error.Message);
                Assert.Contains($"StateName={StateName}", error.Message);
                Assert.Contains(grainId.ToString(), error.Message);
                Assert.Contains("ETag=1", error.Message);
                Assert.NotNull(error.InnerException);
                Assert.Null(state.ETag);
                Assert.False(state.RecordExists);
            }

            await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(9))));
        }

        // Only the damaged row: the one holding the etag it was read with can still replace it.
        await storage.WriteStateAsync(StateName, grainId, written);
        Assert.Equal("2", written.ETag);
        GrainStorageDurabilityTests.AssertSameState(written.State!, (await ReadAsync(storage, grainId)).State);
    }

    /// <summary>
    /// Well-formed etags that do not match: a first write presenting one (no row yet), and a clear or write presenting
    /// an older version than the stored one, all conflict and change nothing; the row's owner carries on.
    /// </summary>
    protected async Task UnmatchedEtagsNeitherCreateNorClearNorOverwriteCore()
    {
        await using var storage = await OpenProviderAsync(NewLocation());
        var grainId = NewGrainId();
        foreach (var invented in new[] { "1", "2", "9223372036854775807" })
        {
            await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(9), invented)));
            await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearStateAsync(StateName, grainId, new GrainState<SensorTestState>(new SensorTestState(), invented)));
            var nothing = await ReadAsync(storage, grainId);
            Assert.False(nothing.RecordExists);
            Assert.Null(nothing.ETag);
        }

        var owner = new GrainState<SensorTestState>(Sample(1));
        await storage.WriteStateAsync(StateName, grainId, owner);
        owner.State = Sample(2);
        await storage.WriteStateAsync(StateName, grainId, owner);
        Assert.Equal("2", owner.ETag);

        var stale = new GrainState<SensorTestState>(Sample(7), "1");
        var conflict = await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearStateAsync(StateName, grainId, stale));
        Assert.Contains("ClearStateAsync", conflict.Message);
        Assert.Equal("1", stale.ETag);
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearStateAsync(StateName, grainId, new GrainState<SensorTestState>(new SensorTestState(), "3")));
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(8), "3")));
        var stored = await ReadAsync(storage, grainId);
        Assert.True(stored.RecordExists);
        Assert.Equal("2", stored.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(2), stored.State);

        await storage.ClearStateAsync(StateName, grainId, owner);
        Assert.Equal("3", owner.ETag);
    }

    /// <summary>
    /// Two services sharing one database (or table) never see or conflict with each other's rows under the same state
    /// name and grain id: each creates its own without an etag, reads only its own, and a clear in one leaves the other's.
    /// </summary>
    protected async Task ServicesSharingALocationNeverSeeEachOthersStateCore()
    {
        var location = NewLocation();
        await using var a = await OpenProviderAsync(location, serviceId: "service-a");
        await using var b = await OpenProviderAsync(location, serviceId: "service-b");
        await using var prefix = await OpenProviderAsync(location, serviceId: "service");
        var grainId = NewGrainId();
        var inA = new GrainState<SensorTestState>(Sample(1, "a"));
        await a.WriteStateAsync(StateName, grainId, inA);
        Assert.False((await ReadAsync(b, grainId)).RecordExists);
        Assert.False((await ReadAsync(prefix, grainId)).RecordExists);

        var inB = new GrainState<SensorTestState>(Sample(2, "b"));
        await b.WriteStateAsync(StateName, grainId, inB);
        Assert.Equal("1", inB.ETag);
        inA.State = Sample(3, "a");
        await a.WriteStateAsync(StateName, grainId, inA);
        Assert.Equal("2", inA.ETag);

        await b.ClearStateAsync(StateName, grainId, inB);
        Assert.False((await ReadAsync(b, grainId)).RecordExists);
        var stillA = await ReadAsync(a, grainId);
        Assert.Equal("2", stillA.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(3, "a"), stillA.State);
    }

    /// <summary>
    /// A provider closed (its silo stopped) and initialised again writes, clears and reads again, etags carrying on:
    /// it said "ready" but refused every write as stopped (SQLite), or failed on its disposed data source (PostgreSQL).
    /// </summary>
    protected async Task AProviderClosedAndInitializedAgainAcceptsWritesAgainCore()
    {
        var location = NewLocation();
        await using var storage = await OpenProviderAsync(location);
        var grainId = NewGrainId();
        var state = new GrainState<SensorTestState>(Sample(1));
        await storage.WriteStateAsync(StateName, grainId, state);
        for (var round = 2; round <= 3; round++)
        {
            await storage.CloseAndInitializeAgainAsync();
            state.State = Sample(round);
            await storage.WriteStateAsync(StateName, grainId, state);
            Assert.Equal(round.ToString(System.Globalization.CultureInfo.InvariantCulture), state.ETag);
            await storage.ClearStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(new SensorTestState()));
            GrainStorageDurabilityTests.AssertSameState(Sample(round), (await ReadAsync(storage, grainId)).State);
        }

        await using var other = await OpenProviderAsync(location);
        GrainStorageDurabilityTests.AssertSameState(Sample(3), (await ReadAsync(other, grainId)).State);
    }

    protected async Task MalformedEtagsAreRejectedAndWriteNothingCore()
    {
        await using var storage = await OpenProviderAsync(NewLocation());
        foreach (var etag in new[] { "abc", "0", "-3", "", "1.5", " 1" })
        {
            var grainId = NewGrainId();
            var exception = await Assert.ThrowsAsync<InconsistentStateException>(() =>
                storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(1), etag)));
            Assert.Contains("Malformed etag", exception.Message);
            Assert.False((await ReadAsync(storage, grainId)).RecordExists);
        }

        Assert.Equal(0, storage.CommittedOperations);
    }

    protected async Task ClearLeavesTombstoneThatStillRejectsWritersFromBeforeTheClearCore()
    {
        await using var storage = await OpenProviderAsync(NewLocation());
        var grainId = NewGrainId();
        var state = new GrainState<SensorTestState>(Sample(1));
        await storage.WriteStateAsync(StateName, grainId, state);
        var etagBeforeClear = state.ETag;

        await storage.ClearStateAsync(StateName, grainId, state);
        Assert.False(state.RecordExists);
        Assert.Equal("2", state.ETag);

        var read = await ReadAsync(storage, grainId);
        Assert.False(read.RecordExists);
        Assert.Equal("2", read.ETag);
        Assert.NotNull(read.State);
        Assert.Equal(0, read.State.Sequence); // a tombstone does not overwrite the default state

        // Without a tombstone a writer holding the pre-clear etag could come back unnoticed (ABA).
        await Assert.ThrowsAsync<InconsistentStateException>(() =>
            storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(7), etagBeforeClear)));

        read.State = Sample(3);
        await storage.WriteStateAsync(StateName, grainId, read);
        Assert.Equal("3", read.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(3), (await ReadAsync(storage, grainId)).State);
    }

    protected async Task ClearOfMissingRecordIsANoOpButClearWithoutEtagOfExistingRecordConflictsCore()
    {
        await using var storage = await OpenProviderAsync(NewLocation());
        var missing = new GrainState<SensorTestState>(new SensorTestState());
        await storage.ClearStateAsync(StateName, NewGrainId(), missing);
        Assert.Null(missing.ETag);
        Assert.False(missing.RecordExists);

        var grainId = NewGrainId();
        await storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(4)));
        await Assert.ThrowsAsync<InconsistentStateException>(() =>
            storage.ClearStateAsync(StateName, grainId, new GrainState<SensorTestState>(new SensorTestState())));
        Assert.True((await ReadAsync(storage, grainId)).RecordExists);
    }

    protected async Task ConflictingWriteInABatchFailsAloneAndTheRestCommitsCore()
    {
        var gate = new CommitGate();
        await using var storage = await OpenProviderAsync(NewLocation(), gate.BeforeCommit);
        var contested = NewGrainId();
        var original = new GrainState<SensorTestState>(Sample(1));
        var firstCommit = storage.WriteStateAsync(StateName, contested, original);
        await gate.Entered;

        // Queued into batch 2: two writers with the same etag for one grain, plus unrelated grains.
        var ids = Enumerable.Range(0, 10).Select(_ => NewGrainId()).ToArray();
        var good = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, new GrainState<SensorTestState>(Sample(10 + i)))).ToList();
        gate.Release();
        await firstCommit;
        Assert.Equal("1", original.ETag);

        var winner = new GrainState<SensorTestState>(Sample(2, "winner"), "1");
        var loser = new GrainState<SensorTestState>(Sample(3, "loser"), "1");
        var winnerWrite = storage.WriteStateAsync(StateName, contested, winner);
        var loserWrite = storage.WriteStateAsync(StateName, contested, loser);

        await Task.WhenAll(good);
        await winnerWrite;
        await Assert.ThrowsAsync<InconsistentStateException>(() => loserWrite);
        Assert.Equal("2", winner.ETag);
        Assert.Equal("1", loser.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(2, "winner"), (await ReadAsync(storage, contested)).State);
        for (var i = 0; i < ids.Length; i++)
        {
            GrainStorageDurabilityTests.AssertSameState(Sample(10 + i), (await ReadAsync(storage, ids[i])).State);
        }

        Assert.Equal(0, storage.FailedBatches);
    }

    protected async Task FailedCommitFailsEveryCallInTheBatchChangesNothingAndRetryConvergesCore()
    {
        var gate = new CommitGate(1, 3);
        gate.FailingCommits.Add(4);
        await using var storage = await OpenProviderAsync(NewLocation(), gate.BeforeCommit);

        // Commit 1 is held open by an unrelated write, so the "old" values of ten grains queue into commit 2 (the
        // writer may pick up a batch as soon as its first write is queued: only a held commit makes a known batch).
        var opener = storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(-1)));
        await gate.Entered;
        var ids = Enumerable.Range(0, 10).Select(_ => NewGrainId()).ToArray();
        var states = ids.Select((_, i) => new GrainState<SensorTestState>(Sample(i))).ToArray();
        var initial = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])).ToArray();
        gate.Release();
        await opener;
        await Task.WhenAll(initial);
        var etags = states.Select(s => s.ETag).ToArray();

        // Commit 3 is held open by another unrelated write, so all ten updates queue into commit 4, which
        // fails inside its transaction.
        var holder = storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(-2)));
        await gate.EnteredCommit(3);
        foreach (var (state, i) in states.Select((s, i) => (s, i)))
        {
            state.State = Sample(100 + i);
        }

        var updates = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])).ToArray();
        gate.ReleaseCommit(3);
        await holder;
        foreach (var update in updates)
        {
            var failure = await Assert.ThrowsAsync<OrleansException>(() => update);
            Assert.IsType<IOException>(failure.InnerException);
            Assert.Contains("none of them was applied", failure.Message);
        }

        Assert.Equal([1, 10, 1, 10], gate.BatchSizes);
        Assert.Equal(1, storage.FailedBatches);
        for (var i = 0; i < ids.Length; i++)
        {
            Assert.Equal(etags[i], states[i].ETag); // the grain's etag did not move
            var stored = await ReadAsync(storage, ids[i]);
            GrainStorageDurabilityTests.AssertSameState(Sample(i), stored.State);
            Assert.Equal(etags[i], stored.ETag);
        }

        // Retrying the same states with the unchanged etags converges.
        await Task.WhenAll(ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])));
        for (var i = 0; i < ids.Length; i++)
        {
            GrainStorageDurabilityTests.AssertSameState(Sample(100 + i), (await ReadAsync(storage, ids[i])).State);
        }
    }
}
