using System.Diagnostics.Metrics;
using System.Text;
using LstmOrleans.Persistence.GroupCommit;
using LstmOrleans.Persistence.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Storage;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

/// <summary>The Orleans binary grain-state serializer, built without a silo for direct provider tests.</summary>
internal static class TestSerializer
{
    public static readonly Serializer Serializer = new ServiceCollection()
        .AddSerializer(builder => builder.AddAssembly(typeof(SensorTestState).Assembly))
        .BuildServiceProvider()
        .GetRequiredService<Serializer>();

    public static readonly IGrainStorageSerializer Instance = new OrleansGrainStorageSerializer(Serializer);
}

/// <summary>
/// Holds chosen commits (by default the first) inside their transaction until released, so the
/// operations queued meanwhile form one known batch; can fail chosen commits.
/// </summary>
internal sealed class CommitGate
{
    private readonly Dictionary<int, (TaskCompletionSource Entered, TaskCompletionSource Release)> _holds = [];
    private int _commits;

    public CommitGate(params int[] heldCommits)
    {
        foreach (var commit in heldCommits.Length == 0 ? [1] : heldCommits)
        {
            _holds[commit] = (new(TaskCreationOptions.RunContinuationsAsynchronously), new(TaskCreationOptions.RunContinuationsAsynchronously));
        }
    }

    /// <summary>1-based commit numbers that throw.</summary>
    public HashSet<int> FailingCommits { get; } = [];

    public List<int> BatchSizes { get; } = [];

    /// <summary>Completes when the first held commit is waiting inside its transaction.</summary>
    public Task Entered => EnteredCommit(_holds.Keys.Min());

    public Task EnteredCommit(int commit) => _holds[commit].Entered.Task;

    public void Release() => ReleaseCommit(_holds.Keys.Min());

    public void ReleaseCommit(int commit) => _holds[commit].Release.TrySetResult();

    public async ValueTask BeforeCommit(int batchSize)
    {
        var commit = Interlocked.Increment(ref _commits);
        lock (BatchSizes)
        {
            BatchSizes.Add(batchSize);
        }

        if (_holds.TryGetValue(commit, out var hold))
        {
            hold.Entered.TrySetResult();
            await hold.Release.Task;
        }

        if (FailingCommits.Contains(commit))
        {
            throw new IOException($"Injected failure of commit {commit}.");
        }
    }
}

public sealed class SqliteGrainStorageTests(SqliteFolderFixture folder) : GroupCommitProviderTests, IClassFixture<SqliteFolderFixture>
{
    protected override string NewLocation() => folder.NewDatabasePath();

    protected override async Task<ProviderUnderTest> OpenProviderAsync(string location, Func<int, ValueTask>? onBeforeCommit = null, string serviceId = "service-a")
    {
        var storage = await OpenAsync(location, o => o.OnBeforeCommit = onBeforeCommit, serviceId);
        return new ProviderUnderTest(storage, () => storage.CommittedOperations, () => storage.FailedBatches, storage.DisposeAsync, storage.InitializeAsync);
    }

    private async Task<SqliteGrainStorage> OpenAsync(string path, Action<SqliteGrainStorageOptions>? configure = null, string serviceId = "service-a", string? name = null)
    {
        var options = new SqliteGrainStorageOptions { DataSource = path, GrainStorageSerializer = _serializer };
        configure?.Invoke(options);
        var storage = new SqliteGrainStorage(
            name ?? $"sqlite-{Guid.NewGuid():N}",
            options,
            Options.Create(new ClusterOptions { ServiceId = serviceId, ClusterId = "test" }),
            NullLogger<SqliteGrainStorage>.Instance);
        await storage.InitializeAsync(CancellationToken.None);
        return storage;
    }

    private IGrainStorageSerializer _serializer = TestSerializer.Instance;

    protected override async Task OverwritePayloadAsync(string location, GrainId grainId, byte[] payload)
    {
        await using var connection = new SqliteConnection($"Data Source={location};Pooling=false");
        connection.Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE lstm_grain_state SET payload = $payload WHERE grain_id = $grain";
        command.Parameters.AddWithValue("$payload", payload);
        command.Parameters.AddWithValue("$grain", grainId.ToString());
        Assert.Equal(1, await command.ExecuteNonQueryAsync());
    }

    /// <summary>
    /// A COMMIT whose WAL fsync fails (injected in the WAL buffer VFS: the frames are written, the fsync refuses). The
    /// batch may or may not be stored (the frames are in the file, and the next open's recovery may replay them), so
    /// every caller gets an error that says the outcome is unknown, never an ack and never "none was applied"; the
    /// caller's etag stays at the last version known to be stored; and what a later read or write sees is decided by
    /// the store: a write with the old etag applies only where the failed one is not stored, else it conflicts.
    /// </summary>
    [Fact]
    public async Task AFailedFsyncAtCommitFailsEveryCallerWithAnUnknownOutcomeAndTheStoreDecidesWhatFollows()
    {
        var path = folder.NewDatabasePath();
        using var fault = WalWriteBufferVfs.FailSyncs(Path.GetFileName(path));
        var ids = Enumerable.Range(0, 10).Select(_ => NewGrainId()).ToArray();
        await using (var storage = await OpenAsync(path))
        {
            Assert.True(storage.WalWritesBuffered);
            var states = ids.Select((_, i) => new GrainState<SensorTestState>(Sample(i))).ToArray();
            await Task.WhenAll(ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])));
            Assert.All(states, s => Assert.Equal("1", s.ETag));

            fault.Armed = true;
            foreach (var (state, i) in states.Select((s, i) => (s, i))) state.State = Sample(100 + i);
            var updates = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])).ToArray();
            foreach (var update in updates)
            {
                var failure = await Assert.ThrowsAsync<OrleansException>(() => update);
                Assert.Contains("the outcome is unknown", failure.Message);
                Assert.DoesNotContain("none of them was applied", failure.Message);
                Assert.True(CommitOutcomeUnknownException.IsIn(failure));
            }

            Assert.True(fault.FailedSyncs > 0);
            Assert.True(storage.FailedBatches > 0);
            Assert.All(states, s => Assert.Equal("1", s.ETag));
            fault.Armed = false;

            for (var i = 0; i < ids.Length; i++)
            {
                var stored = await ReadAsync(storage, ids[i]);
                var expected = stored.ETag switch
                {
                    "1" => Sample(i),
                    "2" => Sample(100 + i),
                    _ => throw new Xunit.Sdk.XunitException($"grain {i}: unexpected stored version {stored.ETag}"),
                };
                GrainStorageDurabilityTests.AssertSameState(expected, stored.State);

                var retry = new GrainState<SensorTestState>(Sample(200 + i)) { ETag = "1", RecordExists = true };
                if (stored.ETag == "1")
                {
                    await storage.WriteStateAsync(StateName, ids[i], retry);
                    Assert.Equal("2", retry.ETag);
                }
                else
                {
                    await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync(StateName, ids[i], retry));
                }
            }
        }

        SqliteConnection.ClearAllPools();
    }

    /// <summary>
    /// Table names that are SQL keywords pass the option check (they are plain identifiers), so every statement must
    /// quote the name: unquoted, the first of them (CREATE TABLE) was a syntax error at silo start.
    /// </summary>
    [Theory]
    [InlineData("select")]
    [InlineData("order")]
    [InlineData("table")]
    [InlineData("group")]
    [InlineData("Where")]
    public async Task KeywordTableNamesWorkInEveryStatement(string table)
    {
        var path = folder.NewDatabasePath();
        new SqliteGrainStorageOptionsValidator(new SqliteGrainStorageOptions { DataSource = path, TableName = table, GrainStorageSerializer = _serializer }, "kw").ValidateConfiguration();
        await EveryStatementWorksOnTheTableCore(async () =>
        {
            var storage = await OpenAsync(path, o => o.TableName = table);
            return new ProviderUnderTest(storage, () => storage.CommittedOperations, () => storage.FailedBatches, storage.DisposeAsync, storage.InitializeAsync);
        });
        SqliteConnection.ClearAllPools();
    }

    /// <summary>
    /// Earlier versions wrote the table name unquoted. Quoting it must find the same table whatever the case of the name
    /// (SQLite matches table names case-insensitively, quoted or not): a database created that way keeps its rows and
    /// gets no second table.
    /// </summary>
    [Fact]
    public async Task ATableCreatedUnquotedByAnEarlierVersionIsStillFoundWhateverTheCaseOfTheName()
    {
        var path = folder.NewDatabasePath();
        var grainId = NewGrainId();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await using (var connection = new SqliteConnection($"Data Source={path};Pooling=false"))
        {
            connection.Open();
            await using var command = connection.CreateCommand();
            // The DDL and insert of the earlier versions, with the name unquoted.
            command.CommandText =
                """
                CREATE TABLE IF NOT EXISTS Old_Grain_State (
                    service_id TEXT NOT NULL, state_name TEXT NOT NULL, grain_id TEXT NOT NULL,
                    version INTEGER NOT NULL, payload BLOB NULL, PRIMARY KEY (service_id, state_name, grain_id));
                INSERT INTO Old_Grain_State (service_id, state_name, grain_id, version, payload) VALUES ('service-a', $state, $grain, 7, $payload);
                """;
            command.Parameters.AddWithValue("$state", StateName);
            command.Parameters.AddWithValue("$grain", grainId.ToString());
            command.Parameters.AddWithValue("$payload", _serializer.Serialize(Sample(70)).ToArray());
            await command.ExecuteNonQueryAsync();
        }

        await using (var storage = await OpenAsync(path, o => o.TableName = "OLD_grain_STATE"))
        {
            var state = await ReadAsync(storage, grainId);
            GrainStorageDurabilityTests.AssertSameState(Sample(70), state.State);
            Assert.Equal("7", state.ETag);
            state.State = Sample(71);
            await storage.WriteStateAsync(StateName, grainId, state);
            Assert.Equal("8", state.ETag);
        }

        await using (var connection = new SqliteConnection($"Data Source={path};Pooling=false"))
        {
            connection.Open();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT group_concat(name) FROM sqlite_master WHERE type = 'table'";
            Assert.Equal("Old_Grain_State", await command.ExecuteScalarAsync());
            command.CommandText = "SELECT version FROM Old_Grain_State";
            Assert.Equal(8L, await command.ExecuteScalarAsync());
        }

        SqliteConnection.ClearAllPools();
    }

    /// <summary>Through a serializer that refuses a payload of any other length than it wrote (a stored pooled array's slack would show).</summary>
    [Fact]
    public Task PooledPayloadsNeverLeakBetweenWrites()
    {
        _serializer = new ExactLengthSerializer(TestSerializer.Instance);
        return PooledPayloadsNeverLeakBetweenWritesCore();
    }

    /// <summary>Prefixes the inner payload with its length and refuses to read back anything longer or shorter.</summary>
    private sealed class ExactLengthSerializer(IGrainStorageSerializer inner) : IGrainStorageSerializer
    {
        public BinaryData Serialize<T>(T? input)
        {
            var payload = inner.Serialize(input).ToArray();
            var framed = new byte[4 + payload.Length];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(framed, payload.Length);
            payload.CopyTo(framed, 4);
            return new BinaryData(framed);
        }

        public T Deserialize<T>(BinaryData input)
        {
            var bytes = input.ToArray();
            var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(bytes);
            Assert.Equal(4 + length, bytes.Length);
            return inner.Deserialize<T>(new BinaryData(bytes.AsMemory(4)))!;
        }
    }

    /// <summary>The same through the providers' default serializer, which writes straight into a pooled array (growing it past its first 2 KiB).</summary>
    [Fact]
    public Task PooledPayloadsNeverLeakBetweenWritesWithTheBufferSerializer()
    {
        _serializer = new LstmOrleans.Persistence.GroupCommit.CompactOrleansGrainStorageSerializer(TestSerializer.Serializer);
        return PooledPayloadsNeverLeakBetweenWritesCore();
    }

    [Fact] public Task StaleEtagFromSecondInstanceConflictsAndChangesNothing() => StaleEtagFromSecondInstanceConflictsAndChangesNothingCore();

    [Fact] public Task UnreadableRecordFailsItsReadNamingTheGrainAndIsLeftAsItIs() => UnreadableRecordFailsItsReadNamingTheGrainAndIsLeftAsItIsCore();

    [Fact] public Task UnmatchedEtagsNeitherCreateNorClearNorOverwrite() => UnmatchedEtagsNeitherCreateNorClearNorOverwriteCore();

    [Fact] public Task ServicesSharingALocationNeverSeeEachOthersState() => ServicesSharingALocationNeverSeeEachOthersStateCore();

    [Fact] public Task AProviderClosedAndInitializedAgainAcceptsWritesAgain() => AProviderClosedAndInitializedAgainAcceptsWritesAgainCore();

    [Fact] public Task MalformedEtagsAreRejectedAndWriteNothing() => MalformedEtagsAreRejectedAndWriteNothingCore();

    [Fact] public Task ClearLeavesTombstoneThatStillRejectsWritersFromBeforeTheClear() => ClearLeavesTombstoneThatStillRejectsWritersFromBeforeTheClearCore();

    [Fact] public Task ClearOfMissingRecordIsANoOpButClearWithoutEtagOfExistingRecordConflicts() => ClearOfMissingRecordIsANoOpButClearWithoutEtagOfExistingRecordConflictsCore();

    [Fact] public Task ConflictingWriteInABatchFailsAloneAndTheRestCommits() => ConflictingWriteInABatchFailsAloneAndTheRestCommitsCore();

    [Fact] public Task FailedCommitFailsEveryCallInTheBatchChangesNothingAndRetryConverges() => FailedCommitFailsEveryCallInTheBatchChangesNothingAndRetryConvergesCore();

    [Fact] public Task CompanionsCommitWithTheirGuardedWriteOrNotAtAll() => CompanionsCommitWithTheirGuardedWriteOrNotAtAllCore();

    [Fact]
    public async Task WriteIsReadBackByAnotherInstanceWithIncreasingEtags()
    {
        var path = folder.NewDatabasePath();
        var grainId = NewGrainId();
        await using (var writer = await OpenAsync(path))
        {
            var state = new GrainState<SensorTestState>(Sample(1));
            await writer.WriteStateAsync(StateName, grainId, state);
            Assert.Equal("1", state.ETag);
            Assert.True(state.RecordExists);

            state.State = Sample(2, "second");
            await writer.WriteStateAsync(StateName, grainId, state);
            Assert.Equal("2", state.ETag);
        }

        await using var reader = await OpenAsync(path);
        var read = await ReadAsync(reader, grainId);
        Assert.True(read.RecordExists);
        Assert.Equal("2", read.ETag);
        GrainStorageDurabilityTests.AssertSameState(Sample(2, "second"), read.State);

        // Same grain id under another ServiceId or state name is a different row.
        await using var otherService = await OpenAsync(path, serviceId: "service-b");
        Assert.False((await ReadAsync(otherService, grainId)).RecordExists);
        var otherName = new GrainState<SensorTestState>(new SensorTestState());
        await reader.ReadStateAsync("other-state", grainId, otherName);
        Assert.False(otherName.RecordExists);
        Assert.Null(otherName.ETag);
    }

    [Fact]
    public async Task ConcurrentWritesShareOneTransactionAndAreMeasured()
    {
        var name = $"gc-{Guid.NewGuid():N}";
        var measured = new Dictionary<string, List<double>>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "LstmOrleans.Storage")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "lstmorleans.storage.provider" && Equals(tag.Value, name))
                {
                    lock (measured)
                    {
                        (measured.TryGetValue(instrument.Name, out var values) ? values : measured[instrument.Name] = []).Add(value);
                    }
                }
            }
        }

        listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Record(instrument, value, tags));
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        listener.Start();

        var gate = new CommitGate();
        await using var storage = await OpenAsync(folder.NewDatabasePath(), o => o.OnBeforeCommit = gate.BeforeCommit, name: name);
        var first = storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(0)));
        await gate.Entered; // the writer holds batch 1 open; everything below queues behind it

        var ids = Enumerable.Range(0, 99).Select(_ => NewGrainId()).ToArray();
        var states = ids.Select((_, i) => new GrainState<SensorTestState>(Sample(i + 1))).ToArray();
        var writes = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, states[i])).ToArray();
        Assert.All(writes, write => Assert.False(write.IsCompleted)); // nothing is acknowledged before its commit

        var allQueuedAt = System.Diagnostics.Stopwatch.GetTimestamp(); // every write of batch 2 is queued by now
        await Task.Delay(50);
        var heldFor = System.Diagnostics.Stopwatch.GetElapsedTime(allQueuedAt);
        gate.Release();
        await first;
        await Task.WhenAll(writes);

        Assert.Equal([1, 99], gate.BatchSizes);
        Assert.Equal(2, storage.CommittedBatches);
        Assert.Equal(100, storage.CommittedOperations);
        Assert.Equal(99, storage.LargestBatch);
        lock (measured)
        {
            Assert.Equal([1, 99], measured["lstmorleans.storage.batch_size"]);
            Assert.Equal([1, 1], measured["lstmorleans.storage.transactions"]);
            Assert.Equal([1, 99], measured["lstmorleans.storage.operations"]);
            // The second batch's oldest write queued while the first transaction was held open.
            var queueWait = measured["lstmorleans.storage.queue_wait"];
            Assert.Equal(2, queueWait.Count);
            Assert.True(queueWait[1] >= heldFor.TotalSeconds, $"queue wait {queueWait[1]} s < held {heldFor.TotalSeconds} s");
            var flush = measured["lstmorleans.storage.flush_duration"];
            var commit = measured["lstmorleans.storage.commit_duration"];
            Assert.Equal(2, flush.Count);
            Assert.All(flush, f => Assert.True(f > 0));
            Assert.True(commit[0] >= flush[0] && commit[1] >= flush[1], "a batch's commit time includes its flush");
            Assert.True(commit[0] >= 0.05, "the first transaction was held open inside the commit for at least 50 ms");
        }

        for (var i = 0; i < ids.Length; i++)
        {
            GrainStorageDurabilityTests.AssertSameState(Sample(i + 1), (await ReadAsync(storage, ids[i])).State);
        }
    }

    [Fact]
    public async Task MaxBatchDelayLingersForMoreWritesUntilTheBatchIsFull()
    {
        await using var storage = await OpenAsync(folder.NewDatabasePath(), o =>
        {
            o.MaxBatchSize = 2;
            o.MaxBatchDelay = TimeSpan.FromSeconds(1);
        });
        var first = storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(1)));
        await Task.Delay(50);
        Assert.False(first.IsCompleted); // the writer is waiting for a second write
        var second = storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(2)));
        await Task.WhenAll(first, second);
        Assert.Equal(1, storage.CommittedBatches);
        Assert.Equal(2, storage.LargestBatch);
    }

    [Fact]
    public async Task CommitTimingOutFailsTheBatch()
    {
        await using var storage = await OpenAsync(folder.NewDatabasePath(), o => o.OnBeforeCommit = async _ =>
        {
            await Task.Delay(50);
            throw new TimeoutException("Injected commit timeout.");
        });
        var grainId = NewGrainId();
        var state = new GrainState<SensorTestState>(Sample(1));
        var failure = await Assert.ThrowsAsync<OrleansException>(() => storage.WriteStateAsync(StateName, grainId, state));
        Assert.IsType<TimeoutException>(failure.InnerException);
        Assert.Null(state.ETag);
        Assert.False(state.RecordExists);
        Assert.False((await ReadAsync(storage, grainId)).RecordExists);
    }

    [Fact]
    public async Task CloseCommitsQueuedWritesAndThenRefusesNewOnes()
    {
        var path = folder.NewDatabasePath();
        var storage = await OpenAsync(path);
        var ids = Enumerable.Range(0, 50).Select(_ => NewGrainId()).ToArray();
        var writes = ids.Select((id, i) => storage.WriteStateAsync(StateName, id, new GrainState<SensorTestState>(Sample(i)))).ToArray();
        await storage.CloseAsync(CancellationToken.None);
        await Task.WhenAll(writes);
        await Assert.ThrowsAsync<InvalidOperationException>(() => storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(1))));

        await using var reopened = await OpenAsync(path);
        for (var i = 0; i < ids.Length; i++)
        {
            GrainStorageDurabilityTests.AssertSameState(Sample(i), (await ReadAsync(reopened, ids[i])).State);
        }
    }

    [Fact]
    public async Task StateIsStoredAsCompactBinaryWithoutTypeNames()
    {
        var path = folder.NewDatabasePath();
        await using (var storage = await OpenAsync(path))
        {
            await storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(5)));
        }

        await using var connection = new SqliteConnection($"Data Source={path}");
        connection.Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT payload FROM lstm_grain_state";
        var payload = (byte[])command.ExecuteScalar()!;
        // 8 floats are 32 bytes; a JSON rendering with type names would be several times that.
        Assert.InRange(payload.Length, 32, 80);
        Assert.DoesNotContain("SensorTestState", Encoding.UTF8.GetString(payload));
        Assert.NotEqual((byte)'{', payload[0]); // not JSON
    }

    [Fact]
    public async Task KeysWithNonAsciiAndLongGrainIdsAndAlternatingStateNamesStayApart()
    {
        // The writer binds keys itself (UTF-8 into a reused buffer, state name only when it changes): check that
        // every (state, grain) pair is its own row, including ids longer than the initial buffer and non-ASCII ids.
        var path = folder.NewDatabasePath();
        var ids = new[]
        {
            GrainId.Create("sensor", "zürich/straße-β-📈"),
            GrainId.Create("sensor", "zürich/straße-β-📈2"),
            GrainId.Create("sensor", new string('ä', 300)),
            GrainId.Create("sensor", "plain"),
            GrainId.Create("sensor", "quote's \"and\" ; DROP TABLE x; --"),
            // SQLite keeps a NUL inside a bound text (PostgreSQL refuses it): never cut short to the id before it.
            GrainId.Create("sensor", "nul\0inside"),
            GrainId.Create("sensor", "nul"),
        };
        string[] stateNames = ["alpha", "beta"];
        await using (var storage = await OpenAsync(path))
        {
            for (var round = 1; round <= 2; round++)
            {
                var states = new Dictionary<(string, GrainId), GrainState<SensorTestState>>();
                foreach (var id in ids)
                {
                    foreach (var stateName in stateNames)
                    {
                        // new string(...) per call: a state name that is equal but not the same instance must bind the same.
                        var name = new string(stateName.AsSpan());
                        var grain = new GrainState<SensorTestState>(Sample(Index(id, stateName) + 100 * round)) { ETag = round == 1 ? null : (await ReadRawAsync(storage, name, id)).ETag };
                        await storage.WriteStateAsync(name, id, grain);
                        Assert.Equal(round.ToString(System.Globalization.CultureInfo.InvariantCulture), grain.ETag);
                    }
                }
            }
        }

        await using var reopened = await OpenAsync(path);
        await using var otherService = await OpenAsync(path, serviceId: "service-b");
        foreach (var id in ids)
        {
            foreach (var stateName in stateNames)
            {
                var read = await ReadRawAsync(reopened, stateName, id);
                Assert.Equal("2", read.ETag);
                GrainStorageDurabilityTests.AssertSameState(Sample(Index(id, stateName) + 200), read.State);
                Assert.False((await ReadRawAsync(otherService, stateName, id)).RecordExists);
            }
        }

        long Index(GrainId id, string stateName) => Array.IndexOf(ids, id) * 2 + Array.IndexOf(stateNames, stateName);
    }

    /// <summary>
    /// A DataSource the silo cannot use fails the start with an error naming the provider, the setting and the path, not
    /// SQLite's bare "unable to open database file". (Permissions cannot be taken away from root, which the tests may run
    /// as; a regular file where the folder should be, a folder where the file should be and a file that is not a database
    /// fail the same way.)
    /// </summary>
    [Fact]
    public async Task AnUnusableDataSourceFailsTheStartNamingTheProviderAndSetting()
    {
        var blocker = folder.NewDatabasePath();
        var directory = Directory.CreateDirectory(Path.GetDirectoryName(blocker)!).FullName;
        await File.WriteAllTextAsync(blocker, "not a folder, and not a database either: " + new string('x', 200));
        foreach (var path in new[] { Path.Combine(blocker, "under-a-file.db"), directory, blocker })
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => OpenAsync(path, name: "unusable"));
            Assert.Contains("SQLite grain storage 'unusable' could not open its database", error.Message);
            Assert.Contains(path, error.Message);
            Assert.Contains("SqliteGrainStorageOptions.DataSource", error.Message);
            Assert.NotNull(error.InnerException);
        }
    }

    [Theory]
    [InlineData(SqliteSynchronousMode.Full, 2)]
    [InlineData(SqliteSynchronousMode.Normal, 1)]
    public async Task TheSynchronousLevelIsAppliedToTheDatabaseAndReadBack(SqliteSynchronousMode mode, int pragma)
    {
        var path = folder.NewDatabasePath();
        var storage = new SqliteGrainStorage($"sqlite-{Guid.NewGuid():N}", new SqliteGrainStorageOptions { DataSource = path, Synchronous = mode, GrainStorageSerializer = TestSerializer.Instance },
            Options.Create(new ClusterOptions { ServiceId = "service-a", ClusterId = "test" }), NullLogger<SqliteGrainStorage>.Instance);
        Assert.Null(storage.EffectiveSynchronous);
        await using (storage)
        {
            await storage.InitializeAsync(CancellationToken.None);
            Assert.Equal(mode, storage.EffectiveSynchronous);
            Assert.Equal(pragma, (int)storage.EffectiveSynchronous!.Value);
            await storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(1)));
        }
    }

    [Fact]
    public async Task AnEmptyPayloadIsStoredAsAnEmptyBlobNotATombstone()
    {
        var path = folder.NewDatabasePath();
        var grainId = NewGrainId();
        await using (var storage = await OpenAsync(path, o => o.GrainStorageSerializer = new EmptyPayloadSerializer()))
        {
            var state = new GrainState<SensorTestState>(Sample(1));
            await storage.WriteStateAsync(StateName, grainId, state);
            var read = new GrainState<SensorTestState>();
            await storage.ReadStateAsync(StateName, grainId, read);
            Assert.True(read.RecordExists);
            Assert.Equal(state.ETag, read.ETag);
        }

        await using var connection = new SqliteConnection($"Data Source={path}");
        connection.Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT typeof(payload), length(payload) FROM lstm_grain_state";
        await using var reader = command.ExecuteReader();
        Assert.True(reader.Read());
        Assert.Equal("blob", reader.GetString(0));
        Assert.Equal(0, reader.GetInt64(1));
    }

    private sealed class EmptyPayloadSerializer : IGrainStorageSerializer
    {
        public BinaryData Serialize<T>(T? input) => new(Array.Empty<byte>());

        public T Deserialize<T>(BinaryData input) => default!;
    }

    private static async Task<GrainState<SensorTestState>> ReadRawAsync(IGrainStorage storage, string stateName, GrainId grainId)
    {
        var state = new GrainState<SensorTestState>();
        await storage.ReadStateAsync(stateName, grainId, state);
        return state;
    }

    /// <summary>
    /// Readers are kept open and reused (one prepared SELECT each): concurrent reads open several, and every one of
    /// them, reused round after round, must return the newest committed version, never a snapshot from its last use.
    /// </summary>
    [Fact]
    public async Task ReusedReadersSeeEveryLaterCommitUnderConcurrentReads()
    {
        await using var storage = await OpenAsync(folder.NewDatabasePath());
        var grains = Enumerable.Range(0, 24).Select(_ => NewGrainId()).ToArray();
        var states = grains.Select(_ => new GrainState<SensorTestState>(new SensorTestState())).ToArray();
        for (int round = 1; round <= 5; round++)
        {
            await Task.WhenAll(grains.Select((id, i) =>
            {
                states[i].State = Sample(round, $"round {round}");
                return storage.WriteStateAsync(StateName, id, states[i]);
            }));
            var reads = await Task.WhenAll(grains.Select(id => ReadAsync(storage, id)));
            Assert.All(reads, read =>
            {
                Assert.Equal(round.ToString(System.Globalization.CultureInfo.InvariantCulture), read.ETag);
                GrainStorageDurabilityTests.AssertSameState(Sample(round, $"round {round}"), read.State);
            });
        }
    }

    [Fact]
    public async Task ReadsSeeOnlyCommittedData()
    {
        var gate = new CommitGate();
        await using var storage = await OpenAsync(folder.NewDatabasePath(), o => o.OnBeforeCommit = gate.BeforeCommit);
        var grainId = NewGrainId();
        var write = storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(1)));
        await gate.Entered; // the row is written inside the open transaction
        Assert.False((await ReadAsync(storage, grainId)).RecordExists);
        gate.Release();
        await write;
        Assert.True((await ReadAsync(storage, grainId)).RecordExists);
    }

    [Fact]
    public async Task NewFilesUseARowidTableAndFilesWithTheOlderWithoutRowidTableKeepWorking()
    {
        // New files: a rowid table, so a ~1.3 KB state fits its page instead of spilling to an overflow page.
        var path = folder.NewDatabasePath();
        await using (var storage = await OpenAsync(path))
        {
            await storage.WriteStateAsync(StateName, NewGrainId(), new GrainState<SensorTestState>(Sample(1)));
        }

        Assert.DoesNotContain("WITHOUT ROWID", TableSql(path), StringComparison.OrdinalIgnoreCase);

        // A file created by the earlier schema is used as it is: reads, writes and etag conflicts behave the same.
        var legacy = folder.NewDatabasePath();
        using (var connection = new SqliteConnection($"Data Source={legacy}"))
        {
            connection.Open();
            using var create = connection.CreateCommand();
            create.CommandText = "CREATE TABLE lstm_grain_state (service_id TEXT NOT NULL, state_name TEXT NOT NULL, grain_id TEXT NOT NULL, version INTEGER NOT NULL, payload BLOB NULL, PRIMARY KEY (service_id, state_name, grain_id)) WITHOUT ROWID;";
            create.ExecuteNonQuery();
        }

        var grainId = NewGrainId();
        await using (var storage = await OpenAsync(legacy))
        {
            var state = new GrainState<SensorTestState>(Sample(1, new string('x', 2000))); // larger than a page's local payload
            await storage.WriteStateAsync(StateName, grainId, state);
            state.State = Sample(2);
            await storage.WriteStateAsync(StateName, grainId, state);
            Assert.Equal("2", state.ETag);
            await Assert.ThrowsAsync<InconsistentStateException>(() =>
                storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(3), "1")));
            GrainStorageDurabilityTests.AssertSameState(Sample(2), (await ReadAsync(storage, grainId)).State);
        }

        Assert.Contains("WITHOUT ROWID", TableSql(legacy), StringComparison.OrdinalIgnoreCase);
        SqliteConnection.ClearAllPools();

        static string TableSql(string file)
        {
            using var connection = new SqliteConnection($"Data Source={file};Mode=ReadOnly");
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'lstm_grain_state'";
            return (string)command.ExecuteScalar()!;
        }
    }

    [Theory]
    [InlineData(100, false)]
    [InlineData(10_000, true)]
    public async Task WalIsCheckpointedAfterTheConfiguredNumberOfPages(int checkpointPages, bool walKeepsEveryCommit)
    {
        var path = folder.NewDatabasePath();
        await using (var storage = await OpenAsync(path, o => o.WalAutoCheckpointPages = checkpointPages))
        {
            var state = new GrainState<SensorTestState>(Sample(0));
            for (var i = 1; i <= 300; i++) // 300 one-write transactions, at least one WAL page each
            {
                state.State = Sample(i);
                await storage.WriteStateAsync(StateName, NewGrainId(), state);
                state.ETag = null;
            }

            // wal_checkpoint reports how many frames the WAL held before it ran: with a 100-page threshold the writer
            // has been restarting the WAL all along; with 10,000 every commit is still in it.
            using var connection = new SqliteConnection($"Data Source={path}");
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
            using var result = command.ExecuteReader();
            Assert.True(result.Read());
            var walFrames = result.GetInt64(1);
            if (walKeepsEveryCommit)
            {
                Assert.True(walFrames >= 300, $"WAL holds {walFrames} frames");
            }
            else
            {
                Assert.True(walFrames < 200, $"WAL holds {walFrames} frames");
            }
        }

        SqliteConnection.ClearAllPools();
    }

    /// <summary>
    /// The writer's WAL writes go through <see cref="WalWriteBufferVfs"/> by default (synchronous=FULL): rounds of
    /// concurrent writes of mixed sizes (some rows larger than a page, some commits larger than the 1 MiB buffer), the
    /// WAL checkpointed and restarted every 100 pages, and after every round each row read back through the readers
    /// (the default VFS) is the last one acknowledged. The buffer gathers: fewer than half as many writes reach the
    /// WAL file as SQLite made (each frame is a header write and a page write). Closed, the file passes SQLite's
    /// integrity check and reads back the same through a provider without the buffer.
    /// </summary>
    [Fact]
    public async Task BufferedWalWritesAreGatheredAndEveryAcknowledgedWriteIsReadBack()
    {
        var path = folder.NewDatabasePath();
        var grains = Enumerable.Range(0, 300).Select(_ => NewGrainId()).ToArray();
        var states = grains.Select(_ => new GrainState<SensorTestState>(new SensorTestState())).ToArray();
        var expected = new SensorTestState[grains.Length];
        var (receivedBefore, issuedBefore) = WalWriteBufferVfs.WriteCounts;
        await using (var storage = await OpenAsync(path, o => o.WalAutoCheckpointPages = 100))
        {
            Assert.True(storage.WalWritesBuffered);
            for (int round = 1; round <= 6; round++)
            {
                await Task.WhenAll(grains.Select((id, i) =>
                {
                    // 8 floats to 3,000 (12 KB: several overflow pages); 300 such rows make commits of several MB.
                    int size = (i * 37 + round * 101) % 7 == 0 ? 3000 : 8 + (i * 13 + round) % 600;
                    expected[i] = GrainStorageDurabilityTests.Sample(round * 1000 + i, size, $"round {round} grain {i}");
                    states[i].State = expected[i];
                    return storage.WriteStateAsync(StateName, id, states[i]);
                }));
                var reads = await Task.WhenAll(grains.Select(id => ReadAsync(storage, id)));
                for (int i = 0; i < grains.Length; i++)
                {
                    Assert.Equal(round.ToString(System.Globalization.CultureInfo.InvariantCulture), reads[i].ETag);
                    GrainStorageDurabilityTests.AssertSameState(expected[i], reads[i].State);
                }
            }
        }

        var (receivedAfter, issuedAfter) = WalWriteBufferVfs.WriteCounts;
        long received = receivedAfter - receivedBefore, issued = issuedAfter - issuedBefore;
        Assert.True(received > 1000, $"{received} WAL writes went through the buffer");
        Assert.True(issued * 2 < received, $"{issued} writes reached the file for {received} SQLite made");

        SqliteConnection.ClearAllPools();
        using (var check = new SqliteConnection($"Data Source={path}"))
        {
            check.Open();
            using var command = check.CreateCommand();
            command.CommandText = "PRAGMA integrity_check";
            Assert.Equal("ok", command.ExecuteScalar());
        }

        await using (var plain = await OpenAsync(path, o => o.BufferWalWrites = false))
        {
            Assert.False(plain.WalWritesBuffered);
            var reads = await Task.WhenAll(grains.Select(id => ReadAsync(plain, id)));
            for (int i = 0; i < grains.Length; i++)
            {
                GrainStorageDurabilityTests.AssertSameState(expected[i], reads[i].State);
            }
        }

        SqliteConnection.ClearAllPools();
    }

    /// <summary>
    /// Readers run beside the buffered writer the whole time: 40 grains rewritten round after round (rows of mixed sizes,
    /// the WAL checkpointed and restarted every 100 pages) while four readers read them in a loop. Every read is a
    /// whole state some write acknowledged or is about to (its sequence matches its content and its etag), and no
    /// reader ever sees a grain's etag go backwards: readers never see a frame that is still in the buffer.
    /// </summary>
    [Fact]
    public async Task ReadersBesideTheBufferedWriterSeeOnlyWholeStatesInOrder()
    {
        await using var storage = await OpenAsync(folder.NewDatabasePath(), o => o.WalAutoCheckpointPages = 100);
        Assert.True(storage.WalWritesBuffered);
        var grains = Enumerable.Range(0, 40).Select(_ => NewGrainId()).ToArray();
        var states = grains.Select(_ => new GrainState<SensorTestState>(new SensorTestState())).ToArray();
        static int SizeOf(long sequence) => sequence % 5 == 0 ? 1500 : 8 + (int)(sequence % 300);
        using var stop = new CancellationTokenSource();
        long reads = 0;
        var readers = Enumerable.Range(0, 4).Select(r => Task.Run(async () =>
        {
            var lastSeen = new long[grains.Length];
            var random = new Random(r);
            while (!stop.IsCancellationRequested)
            {
                int i = random.Next(grains.Length);
                var read = await ReadAsync(storage, grains[i]);
                Interlocked.Increment(ref reads);
                if (!read.RecordExists) continue;
                long version = long.Parse(read.ETag!, System.Globalization.CultureInfo.InvariantCulture);
                Assert.True(version >= lastSeen[i], $"grain {i}: etag {version} after {lastSeen[i]}");
                lastSeen[i] = version;
                long sequence = read.State!.Sequence;
                Assert.Equal(version * 1000 + i, sequence);
                GrainStorageDurabilityTests.AssertSameState(GrainStorageDurabilityTests.Sample(sequence, SizeOf(sequence), $"v{version}"), read.State);
            }
        })).ToArray();

        for (long round = 1; round <= 40; round++)
        {
            await Task.WhenAll(grains.Select((id, i) =>
            {
                long sequence = round * 1000 + i;
                states[i].State = GrainStorageDurabilityTests.Sample(sequence, SizeOf(sequence), $"v{round}");
                return storage.WriteStateAsync(StateName, id, states[i]);
            }));
        }

        await stop.CancelAsync();
        await Task.WhenAll(readers);
        Assert.True(Interlocked.Read(ref reads) > 100, $"{reads} reads");
    }

    /// <summary>
    /// The buffered writer opens its file through a URI: a path with a space, '#', '%' and '?' in it still names that
    /// very file (percent-escaped), which the plain readers open by its path and read back.
    /// </summary>
    [Fact]
    public async Task BufferedWriterOpensAPathWithUriSpecialCharactersAsThatFile()
    {
        var directory = Path.Combine(folder.Directory, "a dir #1 50% ?x");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "state #2.db");
        var grainId = NewGrainId();
        await using (var storage = await OpenAsync(path))
        {
            Assert.True(storage.WalWritesBuffered);
            await storage.WriteStateAsync(StateName, grainId, new GrainState<SensorTestState>(Sample(5, "odd path")));
            GrainStorageDurabilityTests.AssertSameState(Sample(5, "odd path"), (await ReadAsync(storage, grainId)).State);
        }

        Assert.True(File.Exists(path));
        Assert.Equal([Path.GetFileName(path)], Directory.GetFiles(directory, "*.db").Select(Path.GetFileName));
        SqliteConnection.ClearAllPools();
    }

    /// <summary>
    /// Where SQLite does not sync the WAL at every commit (NORMAL, OFF), a commit is visible before any sync, so the
    /// buffer is not used even when asked for; at FULL and EXTRA it is, unless turned off.
    /// </summary>
    [Theory]
    [InlineData(SqliteSynchronousMode.Off, true, false)]
    [InlineData(SqliteSynchronousMode.Normal, true, false)]
    [InlineData(SqliteSynchronousMode.Full, true, true)]
    [InlineData(SqliteSynchronousMode.Extra, true, true)]
    [InlineData(SqliteSynchronousMode.Full, false, false)]
    public async Task WalWritesAreBufferedOnlyWhereEveryCommitSyncs(SqliteSynchronousMode mode, bool asked, bool buffered)
    {
        var path = folder.NewDatabasePath();
        var grainId = NewGrainId();
        await using (var storage = await OpenAsync(path, o => { o.Synchronous = mode; o.BufferWalWrites = asked; }))
        {
            Assert.Equal(buffered, storage.WalWritesBuffered);
            var state = new GrainState<SensorTestState>(Sample(1));
            await storage.WriteStateAsync(StateName, grainId, state);
            state.State = Sample(2);
            await storage.WriteStateAsync(StateName, grainId, state);
            GrainStorageDurabilityTests.AssertSameState(Sample(2), (await ReadAsync(storage, grainId)).State);
        }

        SqliteConnection.ClearAllPools();
    }

    public static TheoryData<string, Action<SqliteGrainStorageOptions>> InvalidOptions => new()
    {
        { "DataSource is required", o => o.DataSource = " " },
        { "in-memory database is not durable", o => o.DataSource = ":memory:" },
        { "TableName 'grain; DROP TABLE x' must be a plain identifier", o => o.TableName = "grain; DROP TABLE x" },
        { "TableName 'order\"' must be a plain identifier", o => o.TableName = "order\"" },
        { "TableName 'Sqlite_state' starts with 'sqlite_', which SQLite reserves", o => o.TableName = "Sqlite_state" },
        { "MaxBatchSize must be between 1 and 100000, was 0", o => o.MaxBatchSize = 0 },
        { "MaxBatchDelay must be between 0 and 1 s", o => o.MaxBatchDelay = TimeSpan.FromSeconds(-1) },
        { "Synchronous has the undefined value 7", o => o.Synchronous = (SqliteSynchronousMode)7 },
        { "BusyTimeout must be positive", o => o.BusyTimeout = TimeSpan.Zero },
        { "WalAutoCheckpointPages must be between 100 and 1000000 pages, was 10", o => o.WalAutoCheckpointPages = 10 },
        { "WriterCacheSizeKiB must be between 256 KiB and 16 GiB, was 100 KiB", o => o.WriterCacheSizeKiB = 100 },
        { "GrainStorageSerializer is null", o => o.GrainStorageSerializer = null! },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void InvalidOptionsAreRejectedWithClearErrors(string expectedMessage, Action<SqliteGrainStorageOptions> breakIt)
    {
        var options = new SqliteGrainStorageOptions { DataSource = "x.db", GrainStorageSerializer = TestSerializer.Instance };
        new SqliteGrainStorageOptionsValidator(options, "ok").ValidateConfiguration();
        breakIt(options);
        var error = Assert.Throws<OrleansConfigurationException>(() => new SqliteGrainStorageOptionsValidator(options, "broken").ValidateConfiguration());
        Assert.Contains("SQLite grain storage 'broken'", error.Message);
        Assert.Contains(expectedMessage, error.Message);
    }
}
