using LstmOrleans.Abstractions;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// Every element of every batch ingest passes through <see cref="StreamComputation.ValidateBatch"/>: a batch that passes
/// must not allocate there (a rejection's message is built only when one is thrown). An eagerly formatted message per
/// element cost batch ingest a string per value.
/// </summary>
public sealed class BatchValidationAllocationTests
{
    [Theory]
    [InlineData(false)]   // a new stream
    [InlineData(true)]    // a stream that has values: the batch starts with a duplicate prefix
    public void A_valid_batch_is_checked_without_allocating(bool streamHasValues)
    {
        const int count = 64, inputSize = 2;
        var batch = ObservationBatch.From(Enumerable.Range(1, count).Select(i => TestSupport.Obs(i, inputSize)).ToArray(), inputSize);
        var state = streamHasValues
            ? new StreamState { HasSequence = true, LastSequence = 10, LastTimestamp = TestSupport.Obs(10).Timestamp }
            : new StreamState();
        int firstNew = StreamComputation.ValidateBatch(state, batch, inputSize);
        Assert.Equal(streamHasValues ? 10 : 0, firstNew);

        for (int i = 0; i < 10; i++) StreamComputation.ValidateBatch(state, batch, inputSize);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) StreamComputation.ValidateBatch(state, batch, inputSize);
        long perBatch = (GC.GetAllocatedBytesForCurrentThread() - before) / 100;
        Assert.True(perBatch == 0, $"{perBatch} bytes allocated per valid batch of {count}");
    }
}
