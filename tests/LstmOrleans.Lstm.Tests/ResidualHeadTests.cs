namespace LstmOrleans.Lstm.Tests;

/// <summary>The one residual rule (<see cref="ResidualHead"/>) against values worked out by hand.</summary>
public sealed class ResidualHeadTests
{
    [Fact]
    public void Outputs_become_levels_by_adding_the_target_input_of_the_step()
    {
        float[] x = [0.5f, -1.25f, 2f];          // [D]; the target is column 1
        float[] y = [0.25f, -0.5f, 1f];          // [K] changes
        ResidualHead.ToLevels(x, targetIndex: 1, y);
        // -1.25 + 0.25 = -1.0, -1.25 - 0.5 = -1.75, -1.25 + 1 = -0.25
        Assert.Equal([-1.0f, -1.75f, -0.25f], y);
        Assert.Equal([0.5f, -1.25f, 2f], x);     // the input is left alone
    }

    [Fact]
    public void The_training_target_is_the_change_and_maps_back_to_the_observation()
    {
        // Current target input 1.5, value to forecast 4.25: the head must output 2.75.
        Assert.Equal(2.75f, ResidualHead.Change(4.25f, 1.5f));
        Assert.Equal(-3f, ResidualHead.Change(-1f, 2f));
        float[] y = [ResidualHead.Change(4.25f, 1.5f), ResidualHead.Change(-1f, 1.5f)];
        ResidualHead.ToLevels([1.5f], 0, y);
        Assert.Equal([4.25f, -1f], y);
    }
}
