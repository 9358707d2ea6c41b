using LstmOrleans.Lstm.Serialization;
using Xunit;

namespace LstmOrleans.Lstm.Tests.Serialization;

public class ModelInputEncoderTests
{
    [Fact]
    public void RawValuesPassThroughWithoutNormalisation()
    {
        var encoder = new ModelInputEncoder(new LstmConfig(2, 3, 1, 2), ModelMetadata.Empty);
        var x = new float[2];
        encoder.Encode(default, [1.5f, -7f], x);
        Assert.Equal([1.5f, -7f], x);
        var y = new float[] { 0.25f, 4f };
        encoder.DecodeOutputs(y);
        Assert.Equal([0.25f, 4f], y);
    }

    [Fact]
    public void CalendarFeaturesAndNormalisationMatchHandComputedValues()
    {
        var metadata = new ModelMetadata
        {
            TargetColumn = 1,
            CalendarFeatures = [CalendarFeature.HourSin, CalendarFeature.HourCos, CalendarFeature.WeekdaySin, CalendarFeature.WeekdayCos],
            Normalization = new FeatureNormalization([10f, 100f, 0f, 0f, 0f, 0f], [2f, 50f, 1f, 1f, 1f, 0.5f]),
        };
        var encoder = new ModelInputEncoder(new LstmConfig(6, 3, 1, 2), metadata);
        Assert.Equal(2, encoder.RawFeatureCount);
        Assert.True(encoder.UsesTimestamp);

        // 2013-12-02 was a Monday; 06:00 is a quarter of the day, so the week fraction is 0.25 / 7.
        var x = new float[6];
        encoder.Encode(new DateTime(2013, 12, 2, 6, 0, 0), [12f, 0f], x);
        double week = 2 * Math.PI * 0.25 / 7;
        Assert.Equal(1f, x[0]);                             // (12 - 10) / 2
        Assert.Equal(-2f, x[1]);                            // (0 - 100) / 50
        Assert.Equal(1f, x[2], 6);                          // sin(π/2)
        Assert.Equal(0f, x[3], 6);                          // cos(π/2)
        Assert.Equal((float)Math.Sin(week), x[4], 6);
        Assert.Equal((float)(Math.Cos(week) / 0.5), x[5], 6);

        // Sunday 18:00: day index 6, fraction 0.75.
        encoder.Encode(new DateTime(2013, 12, 8, 18, 0, 0), [10f, 100f], x);
        Assert.Equal((float)Math.Sin(2 * Math.PI * 6.75 / 7), x[4], 6);

        var y = new float[] { 1f, -0.5f };
        encoder.DecodeOutputs(y);
        Assert.Equal([150f, 75f], y);                       // y * 50 + 100, the target column's statistics
    }

    [Fact]
    public void ResidualForecastsAddTheCurrentTargetInputBeforeDecoding()
    {
        // Target column 1, mean 100, std 50: the row's target 150 encodes to 1.0.
        var metadata = new ModelMetadata
        {
            TargetColumn = 1,
            Residual = true,
            Normalization = new FeatureNormalization([10f, 100f], [2f, 50f]),
        };
        var encoder = new ModelInputEncoder(new LstmConfig(2, 3, 1, 2), metadata);
        var x = new float[2];
        encoder.Encode(default, [12f, 150f], x);
        Assert.Equal([1f, 1f], x);
        var y = new float[] { 0.5f, -0.25f };              // changes, in normalised units
        encoder.DecodeForecasts(x, y);
        Assert.Equal([(1f + 0.5f) * 50f + 100f, (1f - 0.25f) * 50f + 100f], y);   // 175, 137.5

        // A level head decodes the outputs as they are.
        var level = new ModelInputEncoder(new LstmConfig(2, 3, 1, 2), metadata with { Residual = false });
        var z = new float[] { 0.5f, -0.25f };
        level.DecodeForecasts(x, z);
        Assert.Equal([0.5f * 50f + 100f, -0.25f * 50f + 100f], z);
    }

    [Fact]
    public void WrongRowWidthIsRejected()
    {
        var encoder = new ModelInputEncoder(new LstmConfig(2, 3, 1, 2), ModelMetadata.Empty);
        Assert.Throws<ArgumentException>(() => encoder.Encode(default, [1f], new float[2]));
    }
}
