using LstmOrleans.Abstractions;
using LstmOrleans.Grains.Training;
using Xunit.Abstractions;

namespace LstmOrleans.Grains.Tests.Training;

/// <summary>
/// A <see cref="HeldWritesFixture"/> cluster whose training grains retry a failed record write only an hour later: in a
/// test, the only write after the first failed one is the last try an ending activation makes.
/// </summary>
public sealed class LateRecordRetryFixture() : HeldWritesFixture(o =>
{
    o.FirstRecordRetryDelay = TimeSpan.FromHours(1);
    o.MaxRecordRetryDelay = TimeSpan.FromHours(1);
});

/// <summary>What an activation that ends with its round's record unstored does: one last try of the write.</summary>
[Collection(TrainingCollection.Name)]
public sealed class TrainingRecordLastTryTests(LateRecordRetryFixture fixture, ITestOutputHelper output)
    : HeldWritesTests(fixture), IClassFixture<LateRecordRetryFixture>
{
    [Fact]
    public async Task A_record_whose_write_is_being_retried_gets_a_last_try_when_the_activation_ends_and_is_stored_by_it()
    {
        // The round ends (Skipped) with every write of the training grain failing; after its first failed attempt the next
        // regular retry is an hour away (the fixture's backoff), then the store comes back and the activation is ended.
        // Only the deactivation's last try can store the record; without it the next activation finds the round
        // unrecorded and records it as interrupted. (With the default 1 s backoff a slow deactivation let a regular
        // retry store it, and this passed without any last try.)
        var (training, first, step) = await RoundHeldAtFirstStepAsync("last-try-");
        using var _ = step;
        var id = training.GetGrainId();
        int failedBefore = HeldWriteStorage.FailedWrites(id);
        using var fault = HeldWriteStorage.Fail(id).ReleaseAfter(TimeSpan.FromSeconds(90));
        step.Release();
        await TestSupport.Eventually(() => Task.FromResult(HeldWriteStorage.FailedWrites(id) - failedBefore), n => n >= 1, TimeSpan.FromSeconds(60));
        Assert.True((await training.GetStatusAsync()).Running);

        fault.Release();
        await Fixture.Cluster.DeactivateAsync(training);

        // A new activation reads what the last try stored: the round as it ended, not an interrupted one.
        var record = await training.GetRoundAsync(first);
        Assert.NotNull(record);
        output.WriteLine($"round {record.RoundId}: {record.Decision}; {record.Reason}");
        Assert.Equal(TrainingDecision.Skipped, record.Decision);
        Assert.DoesNotContain("Interrupted", record.Reason);
        var status = await training.GetStatusAsync();
        Assert.False(status.Running);
        Assert.Equal(new[] { first }, status.RecentRounds.Select(r => r.RoundId));
    }


    /// <summary>
    /// A round (of a new model without streams) that ended with its record unwritable, whose activation then ended while
    /// the store was still down: its last try failed too, so the round is left started and unrecorded, as by a crash
    /// between the round's end and its record. (No regular retry comes between the first failed write and the
    /// deactivation, so the failed write counted after it is the last try's.) The training grain is not active.
    /// </summary>
    private async Task<(ITrainingGrain Training, long Round, IModelGrain Model)> RoundLeftUnrecordedAsync(string prefix)
    {
        var (training, first, step) = await RoundHeldAtFirstStepAsync(prefix);
        using var _ = step;
        var id = training.GetGrainId();
        using (var fault = HeldWriteStorage.Fail(id).ReleaseAfter(TimeSpan.FromSeconds(90)))
        {
            step.Release();
            await fault.Entered.WaitAsync(TimeSpan.FromSeconds(30));
            int failedBefore = HeldWriteStorage.FailedWrites(id);
            await Fixture.Cluster.DeactivateAsync(training);
            Assert.True(HeldWriteStorage.FailedWrites(id) > failedBefore, "the deactivation made no last try");
        }
        return (training, first, Client.GetGrain<IModelGrain>(training.GetPrimaryKeyString()));
    }

    [Fact]
    public async Task A_publish_of_a_round_recorded_as_interrupted_that_arrives_afterwards_is_refused()
    {
        // The round's publish was sent before its activation died and reaches the model only after the next activation
        // recorded the round: as a round that published nothing. Applied then, it would publish a version the record
        // denies; the next activation closes the round at the model, so it is refused.
        var (training, first, model) = await RoundLeftUnrecordedAsync("late-publish-");
        var record = await training.GetRoundAsync(first);
        Assert.NotNull(record);
        output.WriteLine($"round {record.RoundId}: {record.Decision}; {record.Reason}");
        Assert.Equal(TrainingDecision.Failed, record.Decision);
        Assert.StartsWith("Interrupted", record.Reason);
        Assert.Contains("has no publish by this round on record", record.Reason);

        var before = await model.GetInfoAsync();
        var champion = await model.GetActiveWeightsAsync();
        var late = new PublishRequest(champion.Parameters, $"training round {first}",
            new Dictionary<string, string> { [TrainingGrain.RoundMetadata] = first.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            ExpectedActiveVersion: before.ActiveVersion, TrainingRound: first);
        var refused = await Assert.ThrowsAsync<ModelOperationException>(() => model.PublishAsync(late));
        Assert.Contains("was closed", refused.Message);

        // Nothing changed: the record and the model agree that the round published nothing.
        var after = await model.GetInfoAsync();
        Assert.Equal((before.ActiveVersion, before.LatestVersion), (after.ActiveVersion, after.LatestVersion));
        Assert.Null(await model.GetRoundPublicationAsync(first));
        Assert.Equal(record, await training.GetRoundAsync(first));
    }

    [Fact]
    public async Task A_round_left_unrecorded_whose_model_cannot_be_asked_is_recorded_as_failed_naming_why()
    {
        // The next activation must record the round left unrecorded, and cannot look for its publication: the model's
        // CloseRound fails for the training grain.
        var (training, first, model) = await RoundLeftUnrecordedAsync("no-versions-");
        const string injected = "injected: the model grain is unreachable";
        using var lookup = HeldCallFilter.Fail(model.GetGrainId(), nameof(IModelGrain.CloseRoundAsync), injected).ReleaseAfter(TimeSpan.FromSeconds(90));
        var record = await training.GetRoundAsync(first);
        Assert.True(lookup.Entered.IsCompleted, "the new activation did not look for the round's version");
        Assert.NotNull(record);
        output.WriteLine($"round {record.RoundId}: {record.Decision}; {record.Reason}");
        Assert.Equal(TrainingDecision.Failed, record.Decision);
        Assert.Equal(TrainingTrigger.Manual, record.Trigger);
        Assert.Null(record.PublishedVersion);
        Assert.StartsWith("Interrupted", record.Reason);
        Assert.Contains("could not be asked whether the round published", record.Reason);
        Assert.Contains($"{nameof(InvalidOperationException)}: {injected}", record.Reason);
        Assert.Contains($"training.round = {first}", record.Reason);

        // Recorded once; the rounds after it are numbered on and recorded normally.
        lookup.Release();
        var next = await training.TrainNowAsync();
        Assert.Equal(first + 1, next.RoundId);
        Assert.Equal(new[] { first, first + 1 }, (await training.GetStatusAsync()).RecentRounds.Select(r => r.RoundId));
    }

}
