using LstmOrleans.Lstm.Training;

namespace LstmOrleans.Lstm.Tests;

/// <summary>The residual head option of the trainer: outputs are changes from the current target value.</summary>
public sealed class ResidualTrainingTests
{
    /// <summary>Two series of [N, 2] rows: a random walk around 50 (the target) and noise.</summary>
    private static float[][] Series()
    {
        var random = new Random(3);
        return Enumerable.Range(0, 2).Select(_ =>
        {
            var rows = new float[120 * 2];
            double level = 50;
            for (int t = 0; t < 120; t++)
            {
                level += random.NextDouble() - 0.5;
                rows[t * 2] = (float)level;
                rows[t * 2 + 1] = (float)(random.NextDouble() * 2 - 1);
            }
            return rows;
        }).ToArray();
    }

    [Fact]
    public void With_a_zero_head_the_residual_model_is_persistence_and_the_level_model_predicts_zero()
    {
        var parameters = LstmParameters.InitializeUniform(new LstmConfig(2, 4, 1, 2), seed: 5);
        parameters.HeadWeight.Clear();
        parameters.HeadBias.Clear();
        var series = Series();
        var options = new TrainerOptions { WindowLength = 16, Stride = 4, ValidationFraction = 0.25, TargetColumn = 0, Residual = true };

        var residual = LstmTrainer.Evaluate(parameters, series, options);
        Assert.True(residual.Count > 0);
        Assert.Equal(residual.PersistenceMse, residual.Mse, residual.PersistenceMse * 1e-5);

        // The level head forecasts 0 for a series near 50: its error is the level itself, persistence is unchanged.
        var level = LstmTrainer.Evaluate(parameters, series, options with { Residual = false });
        Assert.Equal(residual.Count, level.Count);
        Assert.Equal(residual.PersistenceMse, level.PersistenceMse);
        Assert.InRange(level.Mse, 40.0 * 40.0, 60.0 * 60.0);
    }

    [Fact]
    public void Residual_training_starting_from_persistence_does_not_do_worse_than_persistence_on_a_random_walk()
    {
        var parameters = LstmParameters.InitializeUniform(new LstmConfig(2, 4, 1, 2), seed: 5);
        parameters.HeadWeight.Clear();
        parameters.HeadBias.Clear();
        var options = new TrainerOptions
        {
            WindowLength = 16, Stride = 4, ValidationFraction = 0.25, TargetColumn = 0, Residual = true, MaxEpochs = 5,
            LearningRate = 1e-3f, Patience = 0, Seed = 1,
        };
        var fit = LstmTrainer.Fit(parameters, Series(), options, onEpoch: null, CancellationToken.None);
        var best = LstmTrainer.Evaluate(fit.BestParameters, Series(), options);
        // Fit keeps the best epoch by validation loss; every epoch starts from (near) persistence, so the best is
        // within a few percent of it, while a level head would be three orders of magnitude worse (test above).
        Assert.True(best.Mse < best.PersistenceMse * 1.1, $"residual model {best.Mse} vs persistence {best.PersistenceMse}");
    }
}
