using System.Diagnostics.Metrics;
using LstmOrleans.Persistence.GroupCommit;
using LstmOrleans.Persistence.Postgres;
using LstmOrleans.Tests.Shared;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Orleans;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Storage;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

[Collection(ClusterCollection.Name)]
public sealed class PostgresDurabilityTests(PostgresServerFixture postgres) : GrainStorageDurabilityTests
{
    protected override string Prefix => "postgres";

    protected override Dictionary<string, string?> Settings() => new()
    {
        [StorageSettings.Kind] = "postgres",
        [StorageSettings.PostgresConnectionString] = postgres.ConnectionString,
    };

    [PostgresFact] public Task WriteDeactivateAndReadBack() => WriteDeactivateAndReadBackCore();

    [PostgresFact] public Task WholeClusterRestartKeepsState() => WholeClusterRestartKeepsStateCore();

    [PostgresFact] public Task StaleEtagLosesAcrossTwoSilos() => StaleEtagLosesAcrossTwoSilosCore();

    [PostgresFact] public Task ClearRemovesState() => ClearRemovesStateCore();

    [PostgresFact] public Task ManyGrainsWritingConcurrentlyAllPersist() => ManyGrainsWritingConcurrentlyAllPersistCore();
}

[Collection(ClusterCollection.Name)]
public sealed class PostgresGroupCommitClusterTests(PostgresServerFixture postgres) : GroupCommitClusterTests
{
    protected override string Prefix => "postgres";

    protected override Dictionary<string, string?> Settings(string faultKey) => new()
    {
        [StorageSettings.Kind] = "postgres",
        [StorageSettings.PostgresConnectionString] = postgres.ConnectionString,
        [StorageSettings.FaultKey] = faultKey,
    };

    protected override (long Batches, long Operations, int Largest, long Failed) Statistics(IGrainStorage storage)
    {
        var pg = Assert.IsType<PostgresGrainStorage>(storage);
        return (pg.CommittedBatches, pg.CommittedOperations, pg.LargestBatch, pg.FailedBatches);
    }

    [PostgresFact] public Task ConcurrentWritesAreGroupCommitted() => ConcurrentWritesAreGroupCommittedCore();

    [PostgresFact] public Task InjectedCommitFailureLeavesStateAndRetryConverges() => InjectedCommitFailureLeavesStateAndRetryConvergesCore();

    [PostgresFact] public Task FailedBatchUnderLoadLeavesOnlyOldOrNewValues() => FailedBatchUnderLoadLeavesOnlyOldOrNewValuesCore();
}

/// <summary>The PostgreSQL provider used directly, without a cluster.</summary>
[Collection(ClusterCollection.Name)]
public sealed class PostgresGrainStorageTests(PostgresServerFixture postgres) : GroupCommitProviderTests
{
    // A fresh table per test: instances opened on it share it, as silos of one service would.
    protected override string NewLocation() => $"t_{Guid.NewGuid():N}";

    protected override async Task<ProviderUnderTest> OpenProviderAsync(string location, Func<int, ValueTask>? onBeforeCommit = null, string serviceId = "service-a")
    {
        var storage = await OpenAsync(o => o.OnBeforeCommit = onBeforeCommit, serviceId, table: location);
        return new ProviderUnderTest(storage, () => storage.CommittedOperations, () => storage.FailedBatches, storage.DisposeAsync, storage.InitializeAsync);
    }

    private async Task<PostgresGrainStorage> OpenAsync(Action<PostgresGrainStorageOptions>? configure = null, string serviceId = "service-a", string table = "lstm_grain_state")
    {
        var options = new PostgresGrainStorageOptions { ConnectionString = postgres.ConnectionString, TableName = table, GrainStorageSerializer = TestSerializer.Instance };
        configure?.Invoke(options);
        var storage = new PostgresGrainStorage(
            $"pg-{Guid.NewGuid():N}",
            options,
            Options.Create(new ClusterOptions { ServiceId = serviceId, ClusterId = "test" }),
            NullLogger<PostgresGrainStorage>.Instance);
        await storage.InitializeAsync(CancellationToken.None);
        return storage;
    }

    protected override async Task OverwritePayloadAsync(string location, GrainId grainId, byte[] payload)
    {
        await using var connection = new NpgsqlConnection(postgres.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"UPDATE {location} SET payload = $1 WHERE grain_id = $2", connection);
        command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = payload });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = grainId.ToString() });
        Assert.Equal(1, await command.ExecuteNonQueryAsync());
    }

    [PostgresFact] public Task UnreadableRecordFailsItsReadNamingTheGrainAndIsLeftAsItIs() => UnreadableRecordFailsItsReadNamingTheGrainAndIsLeftAsItIsCore();

    [PostgresFact] public Task PooledPayloadsNeverLeakBetweenWrites() => PooledPayloadsNeverLeakBetweenWritesCore();

    [PostgresFact] public Task CompanionsCommitWithTheirGuardedWriteOrNotAtAll() => CompanionsCommitWithTheirGuardedWriteOrNotAtAllCore();

    [PostgresFact] public Task StaleEtagFromSecondInstanceConflictsAndChangesNothing() => StaleEtagFromSecondInstanceConflictsAndChangesNothingCore();

    [PostgresFact] public Task UnmatchedEtagsNeitherCreateNorClearNorOverwrite() => UnmatchedEtagsNeitherCreateNorClearNorOverwriteCore();

    [PostgresFact] public Task ServicesSharingALocationNeverSeeEachOthersState() => ServicesSharingALocationNeverSeeEachOthersStateCore();

    [PostgresFact] public Task AProviderClosedAndInitializedAgainAcceptsWritesAgain() => AProviderClosedAndInitializedAgainAcceptsWritesAgainCore();

    [PostgresFact] public Task MalformedEtagsAreRejectedAndWriteNothing() => MalformedEtagsAreRejectedAndWriteNothingCore();

    [PostgresFact] public Task ClearLeavesTombstoneThatStillRejectsWritersFromBeforeTheClear() => ClearLeavesTombstoneThatStillRejectsWritersFromBeforeTheClearCore();

    [PostgresFact] public Task ClearOfMissingRecordIsANoOpButClearWithoutEtagOfExistingRecordConflicts() => ClearOfMissingRecordIsANoOpButClearWithoutEtagOfExistingRecordConflictsCore();

    [PostgresFact] public Task ConflictingWriteInABatchFailsAloneAndTheRestCommits() => ConflictingWriteInABatchFailsAloneAndTheRestCommitsCore();

    [PostgresFact] public Task FailedCommitFailsEveryCallInTheBatchChangesNothingAndRetryConverges() => FailedCommitFailsEveryCallInTheBatchChangesNothingAndRetryConvergesCore();

    /// <summary>
    /// PostgreSQL text cannot hold U+0000. A grain id holding one is refused on its own, before it is queued, with an
    /// error naming the grain: inside a batch it failed the transaction, so every other grain's write of that batch failed.
    /// </summary>
    [PostgresFact]
    public async Task AGrainIdWithANulCharacterIsRefusedAloneAndTheRestOfItsBatchCommits()
    {
        var gate = new CommitGate();
        await using var storage = await OpenProviderAsync(NewLocation(), gate.BeforeCommit);
        var opener = storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(-1)));
        await gate.Entered;

        var ids = Enumerable.Range(0, 5).Select(_ => NewGrainId()).ToArray();
        var good = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, new GrainState<SensorTestState>(Sample(i)))).ToArray();
        var nul = GrainId.Create("sensor", "bad\0id");
        var refused = storage.WriteStateAsync(StateName, nul, new GrainState<SensorTestState>(Sample(9)));
        gate.Release();
        await opener;
        await Task.WhenAll(good);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => refused);
        Assert.Contains("NUL", error.Message);
        Assert.Contains(nul.ToString(), error.Message);
        Assert.Equal([1, 5], gate.BatchSizes);
        Assert.Equal(0, storage.FailedBatches);
        for (var i = 0; i < ids.Length; i++)
        {
            GrainStorageDurabilityTests.AssertSameState(Sample(i), (await ReadAsync(storage, ids[i])).State);
        }

        await Assert.ThrowsAsync<ArgumentException>(() => ReadAsync(storage, nul));
        await Assert.ThrowsAsync<ArgumentException>(() => storage.ClearStateAsync(StateName, nul, new GrainState<SensorTestState>(new SensorTestState())));
        await Assert.ThrowsAsync<ArgumentException>(() => storage.WriteStateWithCompanionsAsync(StateName, ids[0], new GrainState<SensorTestState>(Sample(1)) { ETag = "1" },
            [KeyValuePair.Create("c\0", Sample(2))]));
        Assert.Equal(0, storage.FailedBatches);
    }

    /// <summary>
    /// The counterpart of the SQLite provider's failed fsync at COMMIT: the connection is cut during the COMMIT (by a relay
    /// between Npgsql and the server), so Npgsql sees the connection end, not an answer. Every caller of the batch gets an
    /// error saying the outcome is unknown, never an ack and never "none of them was applied"; its etag stays at the last
    /// version known to be stored; and the store decides what follows. Both outcomes are staged, so both are checked: the
    /// COMMIT passed on before the cut is committed (a write with the old etag then conflicts), the COMMIT cut before it
    /// reached the server is rolled back (a write with the old etag then applies).
    /// </summary>
    [PostgresFact]
    public Task ACommitCutOffAfterTheServerGotItFailsEveryCallerWithAnUnknownOutcomeAndStaysCommitted() => ACutCommitCore(commitReachesServer: true);

    /// <inheritdoc cref="ACommitCutOffAfterTheServerGotItFailsEveryCallerWithAnUnknownOutcomeAndStaysCommitted"/>
    [PostgresFact]
    public Task ACommitCutOffBeforeTheServerGotItFailsEveryCallerWithAnUnknownOutcomeAndIsRolledBack() => ACutCommitCore(commitReachesServer: false);

    /// <summary>
    /// A COMMIT the server ran, answered with a FATAL error (a backend terminated while it waited for synchronous
    /// replication says so after committing locally): a server-answered error, yet of unknown outcome, not "rolled back".
    /// </summary>
    [PostgresFact]
    public Task ACommitAnsweredWithAFatalErrorAfterTheServerRanItFailsEveryCallerWithAnUnknownOutcome() => ACutCommitCore(commitReachesServer: true, fatalAnswer: true);

    private async Task ACutCommitCore(bool commitReachesServer, bool fatalAnswer = false)
    {
        await using var proxy = new ConnectionCuttingProxy(postgres.Port);
        var throughProxy = new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Port = proxy.Port }.ConnectionString;
        // The next commit is held (so that the writes queued meanwhile make up the batch after it), and the one after it
        // is cut: armed inside its transaction, right before its COMMIT is sent, which is then the next thing sent.
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int holdNext = 0, cutNext = 0, cutBatch = 0;
        async ValueTask BeforeCommit(int batchSize)
        {
            if (Interlocked.Exchange(ref cutNext, 0) == 1)
            {
                cutBatch = batchSize;
                if (fatalAnswer) proxy.AnswerNextClientMessageWithFatal();
                else proxy.CutAtNextClientMessage(passOn: commitReachesServer);
                return;
            }

            if (Interlocked.Exchange(ref holdNext, 0) == 1)
            {
                entered.TrySetResult();
                await release.Task;
            }
        }

        var table = NewLocation();
        await using var storage = await OpenAsync(o => { o.ConnectionString = throughProxy; o.OnBeforeCommit = BeforeCommit; }, table: table);
        var ids = Enumerable.Range(0, 10).Select(_ => NewGrainId()).ToArray();
        var states = ids.Select((_, i) => new GrainState<SensorTestState>(Sample(i))).ToArray();
        await Task.WhenAll(ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])));
        Assert.All(states, s => Assert.Equal("1", s.ETag));

        Volatile.Write(ref holdNext, 1);
        var opener = storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(-1)));
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(60));
        foreach (var (state, i) in states.Select((s, i) => (s, i))) state.State = Sample(100 + i);
        var updates = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])).ToArray();
        Volatile.Write(ref cutNext, 1);
        release.TrySetResult();
        await opener;

        foreach (var update in updates)
        {
            var failure = await Assert.ThrowsAsync<OrleansException>(() => update);
            Assert.Contains("the outcome is unknown", failure.Message);
            Assert.DoesNotContain("none of them was applied", failure.Message);
            Assert.True(CommitOutcomeUnknownException.IsIn(failure), failure.ToString());
        }

        Assert.Equal(ids.Length, cutBatch);
        Assert.Equal(1, proxy.Cuts);
        Assert.True(storage.FailedBatches > 0);
        Assert.All(states, s => Assert.Equal("1", s.ETag));

        // What the store holds, read past the relay. A COMMIT passed on is run by the server after the cut, so it is
        // waited for; one that never arrived leaves version 1 for good (its transaction is rolled back).
        await using var direct = await OpenAsync(table: table);
        for (var i = 0; i < ids.Length; i++)
        {
            var id = ids[i];
            var stored = commitReachesServer
                ? await Eventually(() => ReadAsync(direct, id), s => s.ETag == "2")
                : await ReadAsync(direct, id);
            Assert.Equal(commitReachesServer ? "2" : "1", stored.ETag);
            GrainStorageDurabilityTests.AssertSameState(commitReachesServer ? Sample(100 + i) : Sample(i), stored.State);

            // The caller's retry with the etag it kept goes through the same provider (on a new connection), and is
            // checked against what is stored: it applies only where the cut COMMIT did not.
            var retry = new GrainState<SensorTestState>(Sample(200 + i)) { ETag = states[i].ETag, RecordExists = true };
            if (commitReachesServer)
            {
                await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync(StateName, id, retry));
                Assert.Equal("1", retry.ETag);
            }
            else
            {
                await storage.WriteStateAsync(StateName, id, retry);
                Assert.Equal("2", retry.ETag);
                GrainStorageDurabilityTests.AssertSameState(Sample(200 + i), (await ReadAsync(direct, id)).State);
            }
        }

        Assert.Equal(1, proxy.Cuts);
    }

    private static async Task<T> Eventually<T>(Func<Task<T>> read, Func<T, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var value = await read();
            if (done(value) || DateTime.UtcNow > deadline) return value;
            await Task.Delay(100);
        }
    }

    [PostgresFact]
    public async Task CreatesItsTableAndRoundTripsAcrossInstances()
    {
        var table = $"t_{Guid.NewGuid():N}";
        var grainId = NewGrainId();
        await using (var writer = await OpenAsync(table: table))
        {
            var state = new GrainState<SensorTestState>(Sample(1));
            await writer.WriteStateAsync(StateName, grainId, state);
            Assert.Equal("1", state.ETag);
        }

        await using var reader = await OpenAsync(table: table);
        var read = await ReadAsync(reader, grainId);
        Assert.True(read.RecordExists);
        Assert.Equal("1", read.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(1), read.State);

        await using var connection = new NpgsqlConnection(postgres.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT service_id, state_name, grain_id, octet_length(payload) FROM {table}", connection);
        await using var row = await command.ExecuteReaderAsync();
        Assert.True(await row.ReadAsync());
        Assert.Equal("service-a", row.GetString(0));
        Assert.Equal(StateName, row.GetString(1));
        Assert.Equal(grainId.ToString(), row.GetString(2));
        Assert.InRange(row.GetInt32(3), 32, 80); // Orleans binary, not JSON
    }

    /// <summary>
    /// Table names that are SQL keywords pass the option check (they are plain identifiers), so every statement must
    /// quote the name: unquoted, CREATE TABLE on "select" or "order" was a syntax error at silo start, and "user" is
    /// worse (a function call in an expression). Mixed case is folded as PostgreSQL folds an unquoted name.
    /// </summary>
    [PostgresFact]
    public async Task KeywordTableNamesWorkInEveryStatement()
    {
        foreach (var table in new[] { "select", "order", "table", "group", "user", "Where" })
        {
            new PostgresGrainStorageOptionsValidator(new PostgresGrainStorageOptions { ConnectionString = postgres.ConnectionString, TableName = table, GrainStorageSerializer = TestSerializer.Instance }, "kw").ValidateConfiguration();
            await EveryStatementWorksOnTheTableCore(async () =>
            {
                var storage = await OpenAsync(table: table);
                return new ProviderUnderTest(storage, () => storage.CommittedOperations, () => storage.FailedBatches, storage.DisposeAsync, storage.InitializeAsync);
            });
            Assert.Equal(1L, await ScalarAsync<long>("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = $1", table.ToLowerInvariant()));
        }
    }

    /// <summary>
    /// Earlier versions wrote the table name unquoted, so PostgreSQL folded it to lower case. Quoting must keep finding
    /// that table for a TableName in any case: the rows stay readable and writable, and no second (mixed-case) table
    /// appears.
    /// </summary>
    [PostgresFact]
    public async Task ATableCreatedUnquotedByAnEarlierVersionIsStillFoundWhateverTheCaseOfTheName()
    {
        var table = $"Old_State_{Guid.NewGuid():N}";
        var grainId = NewGrainId();
        await using (var connection = new NpgsqlConnection(postgres.ConnectionString))
        {
            await connection.OpenAsync();
            // The DDL and insert of the earlier versions, with the name unquoted.
            await using var create = new NpgsqlCommand(
                $"""
                CREATE TABLE IF NOT EXISTS {table} (
                    service_id text NOT NULL, state_name text NOT NULL, grain_id text NOT NULL,
                    version bigint NOT NULL, payload bytea NULL, PRIMARY KEY (service_id, state_name, grain_id));
                """, connection);
            await create.ExecuteNonQueryAsync();
            await using var insert = new NpgsqlCommand($"INSERT INTO {table} (service_id, state_name, grain_id, version, payload) VALUES ('service-a', $1, $2, 7, $3)", connection);
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = StateName });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = grainId.ToString() });
            insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = TestSerializer.Instance.Serialize(Sample(70)).ToArray() });
            await insert.ExecuteNonQueryAsync();
        }

        await using (var storage = await OpenAsync(table: table))
        {
            var state = await ReadAsync(storage, grainId);
            GrainStorageDurabilityTests.AssertSameState(Sample(70), state.State);
            Assert.Equal("7", state.ETag);
            state.State = Sample(71);
            await storage.WriteStateAsync(StateName, grainId, state);
            Assert.Equal("8", state.ETag);
        }

        Assert.Equal(1L, await ScalarAsync<long>("SELECT count(*) FROM pg_tables WHERE lower(tablename) = $1", table.ToLowerInvariant()));
        Assert.Equal(8L, await ScalarAsync<long>($"SELECT version FROM {table}"));
    }

    private async Task<T> ScalarAsync<T>(string sql, params string[] parameters)
    {
        await using var connection = new NpgsqlConnection(postgres.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters) command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = parameter });
        return (T)(await command.ExecuteScalarAsync())!;
    }

    [Fact]
    public void InvalidOptionsAreRejectedWithClearErrors()
    {
        var options = new PostgresGrainStorageOptions { ConnectionString = "Host=127.0.0.1", GrainStorageSerializer = TestSerializer.Instance };
        new PostgresGrainStorageOptionsValidator(options, "ok").ValidateConfiguration();

        options.ConnectionString = "";
        Assert.Contains("ConnectionString is required", Assert.Throws<OrleansConfigurationException>(() => new PostgresGrainStorageOptionsValidator(options, "p").ValidateConfiguration()).Message);
        options.ConnectionString = "Host=127.0.0.1;NoSuchKeyword=1";
        Assert.Contains("ConnectionString is malformed", Assert.Throws<OrleansConfigurationException>(() => new PostgresGrainStorageOptionsValidator(options, "p").ValidateConfiguration()).Message);
        options.ConnectionString = "Host=127.0.0.1";
        options.TableName = "x y";
        Assert.Contains("must be a plain identifier", Assert.Throws<OrleansConfigurationException>(() => new PostgresGrainStorageOptionsValidator(options, "p").ValidateConfiguration()).Message);
        options.TableName = "ok";
        options.MaxBatchSize = 0;
        Assert.Contains("MaxBatchSize must be between 1 and 100000", Assert.Throws<OrleansConfigurationException>(() => new PostgresGrainStorageOptionsValidator(options, "p").ValidateConfiguration()).Message);
        options.MaxBatchSize = 10;
        options.MaxDeadlockRetries = -1;
        Assert.Contains("MaxDeadlockRetries must be between 0 and 100, was -1", Assert.Throws<OrleansConfigurationException>(() => new PostgresGrainStorageOptionsValidator(options, "p").ValidateConfiguration()).Message);
    }

    private static PostgresException Deadlock() =>
        new("deadlock detected", "ERROR", "ERROR", PostgresErrorCodes.DeadlockDetected);

    /// <summary>Throws <paramref name="failure"/> from the commits whose 1-based numbers <paramref name="failing"/> accepts.</summary>
    private sealed class FailingCommits(Func<int, bool> failing, Func<Exception> failure)
    {
        private int _commits;

        public int Commits => Volatile.Read(ref _commits);

        public ValueTask BeforeCommit(int batchSize) =>
            failing(Interlocked.Increment(ref _commits)) ? throw failure() : ValueTask.CompletedTask;
    }

    [PostgresFact]
    public async Task BatchRolledBackByADeadlockIsRunAgainAndAppliesOnce()
    {
        var faults = new FailingCommits(n => n == 2, Deadlock);
        var table = NewLocation();
        var retriesMeasured = 0L;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument is { Meter.Name: "LstmOrleans.Storage", Name: "lstmorleans.storage.commit_retries" }) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag is { Key: "lstmorleans.storage.store", Value: "postgres" }) Interlocked.Add(ref retriesMeasured, value);
            }
        });
        listener.Start();
        await using var storage = await OpenAsync(o => o.OnBeforeCommit = faults.BeforeCommit, table: table);
        var grainId = NewGrainId();
        var state = new GrainState<SensorTestState>(Sample(1));
        await storage.WriteStateAsync(StateName, grainId, state);
        Assert.Equal("1", state.ETag);

        // Commit 2 is rolled back as a deadlock; commit 3 is the same batch again. The guarded update applies once:
        // version 2, not a conflict (the first attempt changed nothing) and not 3.
        state.State = Sample(2);
        await storage.WriteStateAsync(StateName, grainId, state);
        Assert.Equal("2", state.ETag);
        Assert.Equal(3, faults.Commits);
        Assert.Equal(1, storage.RetriedBatches);
        Assert.Equal(1, Interlocked.Read(ref retriesMeasured));
        Assert.Equal(0, storage.FailedBatches);
        var stored = await ReadAsync(storage, grainId);
        Assert.Equal("2", stored.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(2), stored.State);
    }

    [PostgresFact]
    public async Task DeadlockRetriesAreBoundedThenEveryCallerGetsTheErrorAndNothingChanges()
    {
        var faults = new FailingCommits(n => n >= 2, Deadlock);
        await using var storage = await OpenAsync(o => { o.OnBeforeCommit = faults.BeforeCommit; o.MaxDeadlockRetries = 2; }, table: NewLocation());
        var grainId = NewGrainId();
        var state = new GrainState<SensorTestState>(Sample(1));
        await storage.WriteStateAsync(StateName, grainId, state);

        state.State = Sample(2);
        var failure = await Assert.ThrowsAsync<OrleansException>(() => storage.WriteStateAsync(StateName, grainId, state));
        Assert.Equal(PostgresErrorCodes.DeadlockDetected, Assert.IsType<PostgresException>(failure.InnerException).SqlState);
        Assert.Contains("none of them was applied", failure.Message);
        Assert.Equal(1 + 3, faults.Commits); // the first write, then one attempt and two retries
        Assert.Equal(2, storage.RetriedBatches);
        Assert.Equal(1, storage.FailedBatches);
        Assert.Equal("1", state.ETag);
        var stored = await ReadAsync(storage, grainId);
        Assert.Equal("1", stored.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(1), stored.State);
    }

    [PostgresFact]
    public async Task OtherFailuresAreNotRetried()
    {
        var faults = new FailingCommits(n => n == 1, () => new PostgresException("duplicate key", "ERROR", "ERROR", PostgresErrorCodes.UniqueViolation));
        await using var storage = await OpenAsync(o => o.OnBeforeCommit = faults.BeforeCommit, table: NewLocation());
        var state = new GrainState<SensorTestState>(Sample(1));
        var failure = await Assert.ThrowsAsync<OrleansException>(() => storage.WriteStateAsync(StateName, NewGrainId(), state));
        Assert.Equal(PostgresErrorCodes.UniqueViolation, Assert.IsType<PostgresException>(failure.InnerException).SqlState);
        Assert.Equal(1, faults.Commits);
        Assert.Equal(0, storage.RetriedBatches);
        Assert.Equal(1, storage.FailedBatches);
    }

    /// <summary>
    /// The one deadlock the key-ordered batches allow, made on purpose: silo A writes a stream's core row with a
    /// companion row, silo B (a duplicate activation of the same stream) writes the companion row and then the core row
    /// in one batch. A third session holds the core row so both queue on it, A first; when it lets go, A holds the core
    /// row and waits for the companion row, B holds the companion row and waits for the core row, and PostgreSQL aborts
    /// one of them. The aborted batch runs again and meets the winner's new versions: its callers get the ordinary
    /// etag conflict, nobody gets the deadlock, and the rows hold exactly the winner's writes.
    /// </summary>
    [PostgresFact]
    public async Task RealDeadlockBetweenTwoSilosEndsInOneWinnerAndEtagConflictsNotErrors()
    {
        const string Core = "b-core", Companion = "a-companion"; // B's batch is sorted by state name: companion first
        var table = NewLocation();
        var grainId = NewGrainId();
        var bFirstCommit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var bHeld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var bCommits = 0;
        await using var a = await OpenAsync(table: table);
        await using var b = await OpenAsync(o => o.OnBeforeCommit = async _ =>
        {
            if (Interlocked.Increment(ref bCommits) == 1)
            {
                bFirstCommit.TrySetResult();
                await bHeld.Task;
            }
        }, table: table);

        // Both rows at version 1, written by A; B reads them as a second activation would.
        var aCore = new GrainState<SensorTestState>(Sample(1));
        await a.WriteStateWithCompanionsAsync(Core, grainId, aCore, [KeyValuePair.Create(Companion, Sample(10, "a"))]);
        var bCore = new GrainState<SensorTestState>(new SensorTestState());
        var bCompanion = new GrainState<SensorTestState>(new SensorTestState());
        await b.ReadStateAsync(Core, grainId, bCore);
        await b.ReadStateAsync(Companion, grainId, bCompanion);
        Assert.Equal(("1", "1"), (bCore.ETag, bCompanion.ETag));

        await using var holder = new NpgsqlConnection(postgres.ConnectionString);
        await holder.OpenAsync();
        await using var hold = await holder.BeginTransactionAsync();
        await using (var lockCore = new NpgsqlCommand($"SELECT 1 FROM {table} WHERE state_name = '{Core}' FOR UPDATE", holder, hold))
        {
            Assert.Equal(1, await lockCore.ExecuteScalarAsync());
        }

        // A queues on the core row.
        aCore.State = Sample(2);
        var aWrite = a.WriteStateWithCompanionsAsync(Core, grainId, aCore, [KeyValuePair.Create(Companion, Sample(20, "a"))]);
        await WaitForLockWaitersAsync(1);

        // B's two writes go into one batch behind a held unrelated commit, then lock the companion row and queue on
        // the core row behind A.
        var opener = b.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(-1)));
        await bFirstCommit.Task;
        bCompanion.State = Sample(30, "b");
        bCore.State = Sample(3, "b");
        var bCompanionWrite = b.WriteStateAsync(Companion, grainId, bCompanion);
        var bCoreWrite = b.WriteStateAsync(Core, grainId, bCore);
        bHeld.SetResult();
        await opener;
        await WaitForLockWaitersAsync(2);

        await hold.CommitAsync();
        var outcomes = await Task.WhenAll(Outcome(aWrite), Outcome(bCompanionWrite), Outcome(bCoreWrite));

        Assert.Equal(1, a.RetriedBatches + b.RetriedBatches); // exactly one side was chosen as the deadlock victim
        Assert.Equal(0, a.FailedBatches + b.FailedBatches);
        var storedCore = await ReadAsync(a, Core, grainId);
        var storedCompanion = await ReadAsync(a, Companion, grainId);
        Assert.Equal(("2", "2"), (storedCore.ETag, storedCompanion.ETag));
        if (outcomes[0] is null)
        {
            // A won: its core and companion; both of B's writes met A's versions.
            Assert.IsType<InconsistentStateException>(outcomes[1]);
            Assert.IsType<InconsistentStateException>(outcomes[2]);
            GrainStorageDurabilityTests.AssertSameState(Sample(2), storedCore.State);
            GrainStorageDurabilityTests.AssertSameState(Sample(20, "a"), storedCompanion.State);
        }
        else
        {
            // B won: both its rows; A's guarded write met B's core version, so its companion was not written either.
            Assert.IsType<InconsistentStateException>(outcomes[0]);
            Assert.Null(outcomes[1]);
            Assert.Null(outcomes[2]);
            GrainStorageDurabilityTests.AssertSameState(Sample(3, "b"), storedCore.State);
            GrainStorageDurabilityTests.AssertSameState(Sample(30, "b"), storedCompanion.State);
        }

        static async Task<Exception?> Outcome(Task write)
        {
            try
            {
                await write;
                return null;
            }
            catch (Exception e)
            {
                return e;
            }
        }

        async Task WaitForLockWaitersAsync(int count)
        {
            await using var probe = new NpgsqlConnection(postgres.ConnectionString);
            await probe.OpenAsync();
            await using var query = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'", probe);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while ((long)(await query.ExecuteScalarAsync())! < count)
            {
                Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {count} session(s) to wait on a row lock");
                await Task.Delay(20);
            }
        }
    }

    private static async Task<GrainState<SensorTestState>> ReadAsync(IGrainStorage storage, string stateName, GrainId grainId)
    {
        var state = new GrainState<SensorTestState>(new SensorTestState());
        await storage.ReadStateAsync(stateName, grainId, state);
        return state;
    }
}
