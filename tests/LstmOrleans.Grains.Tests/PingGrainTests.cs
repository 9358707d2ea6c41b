using LstmOrleans.Abstractions;

namespace LstmOrleans.Grains.Tests;

/// <summary>The benchmark's reference grain: the echo answers in a stream grain's shape without stepping or storing.</summary>
[Collection(ClusterCollection.Name)]
public sealed class PingGrainTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Echo_answers_in_the_shape_of_a_step_result_for_the_observation_it_got()
    {
        var grain = fixture.Client.GetGrain<IPingGrain>("bench/echo/7");
        var at = new DateTimeOffset(2026, 11, 27, 13, 0, 0, TimeSpan.Zero);
        var answer = await grain.EchoAsync(new Observation(42, at, [1.5f]), horizons: 3);

        Assert.Equal("bench/echo/7", answer.StreamId);
        Assert.Equal(42, answer.Sequence);
        Assert.Equal(at, answer.Timestamp);
        Assert.Equal([1.5f, 1.5f, 1.5f], answer.Predictions);
        Assert.All(new[] { answer.Lower, answer.Upper, answer.Rmse }, a => Assert.Equal(3, a.Length));
        Assert.Equal(3, answer.ErrorSamples.Length);
        Assert.False(answer.Duplicate);
    }

    [Fact]
    public async Task Echo_refuses_a_horizon_count_below_one_or_above_any_models()
    {
        var grain = fixture.Client.GetGrain<IPingGrain>("bench/echo/bad");
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            grain.EchoAsync(new Observation(1, DateTimeOffset.UnixEpoch, [0f]), horizons: 0));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            grain.EchoAsync(new Observation(1, DateTimeOffset.UnixEpoch, [0f]), horizons: Lstm.LstmConfig.MaxDimension + 1));
        Assert.Equal(Lstm.LstmConfig.MaxDimension, (await grain.EchoAsync(new Observation(1, DateTimeOffset.UnixEpoch, [0f]), Lstm.LstmConfig.MaxDimension)).Predictions.Length);
    }
}
