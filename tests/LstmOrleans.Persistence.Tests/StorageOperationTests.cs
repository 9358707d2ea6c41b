using LstmOrleans.Persistence.GroupCommit;
using Orleans;
using Orleans.Runtime;
using Xunit;

namespace LstmOrleans.Persistence.Tests;

/// <summary>
/// The completion of queued operations, which one work item runs for a whole committed batch: each operation applies
/// its outcome to its grain state before its task completes, and a failure in one never leaves the others pending.
/// </summary>
public sealed class StorageOperationTests
{
    private sealed class ThrowingOperation() : StorageOperation(StorageOperationKind.Write, "s", "g", expectedVersion: null, payload: [1])
    {
        protected override Exception? OnCommitted(CommitOutcome outcome) => throw new InvalidOperationException("bookkeeping failed");
    }

    private static GrainWriteOperation<int> Write(IGrainState<int> state) =>
        new("stream", GrainId.Create("stream", "a"), "stream/a", expectedVersion: null, payload: [1, 2], payloadLength: 2, pooled: false,
            state, storage: null!, callerName: "WriteStateAsync");

    [Fact]
    public async Task A_committed_write_sets_the_grain_etag_before_its_task_completes()
    {
        var state = new GrainState<int>(7);
        var operation = Write(state);
        operation.PendingOutcome = CommitOutcome.Applied(3);
        operation.Publish();
        Assert.True(operation.Completion.IsCompletedSuccessfully);
        Assert.Equal(EtagFormat.Format(3), state.ETag);
        Assert.True(state.RecordExists);
        Assert.Equal(CommitOutcome.Applied(3), await operation.Completion);
    }

    [Fact]
    public async Task A_failing_operation_does_not_stop_the_rest_of_its_batch()
    {
        var state = new GrainState<int>(1);
        StorageOperation[] batch = [new ThrowingOperation(), Write(state)];
        foreach (var operation in batch) operation.PendingOutcome = CommitOutcome.Applied(1);
        foreach (var operation in batch) operation.Publish();   // as GroupCommitQueue completes a batch

        Assert.Equal("bookkeeping failed", (await Assert.ThrowsAsync<InvalidOperationException>(() => batch[0].Completion)).Message);
        Assert.Equal(CommitOutcome.Applied(1), await batch[1].Completion);
        Assert.Equal(EtagFormat.Format(1), state.ETag);
    }
}
