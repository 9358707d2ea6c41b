namespace LstmOrleans.Lstm.Tests;

public class LstmParametersTests
{
    [Fact]
    public void InitializeUniform_IsDeterministicForASeed_AndDiffersAcrossSeeds()
    {
        var config = new LstmConfig(3, 8, 2, 2);
        var a = LstmParameters.InitializeUniform(config, 42);
        var b = LstmParameters.InitializeUniform(config, 42);
        var c = LstmParameters.InitializeUniform(config, 43);
        Assert.Equal(a.Data, b.Data);
        Assert.NotEqual(a.Data, c.Data);
    }

    [Theory]
    [InlineData(1, 1, 1, 1)]
    [InlineData(1, 16, 1, 1)]
    [InlineData(4, 64, 2, 3)]
    public void InitializeUniform_StaysWithinPyTorchBounds_AndFillsTheRange(int d, int hidden, int layers, int horizons)
    {
        var config = new LstmConfig(d, hidden, layers, horizons);
        var p = LstmParameters.InitializeUniform(config, 1);
        double bound = 1.0 / Math.Sqrt(hidden);
        Assert.All(p.Data, v => Assert.InRange(v, -bound, bound));
        if (p.Count >= 100)
        {
            // Drawn across the whole interval, not clustered: the extremes are near the bounds and the mean near 0.
            Assert.True(p.Data.Max() > 0.9 * bound && p.Data.Min() < -0.9 * bound);
            Assert.InRange(p.Data.Average(v => (double)v), -0.1 * bound, 0.1 * bound);
        }
    }

    [Fact]
    public void Layout_MatchesTheDocumentedOrderAndSizes()
    {
        var config = new LstmConfig(3, 5, 2, 4);
        var p = new LstmParameters(config);
        int expected = 20 * 3 + 20 * 5 + 20 + 20 + 20 * 5 + 20 * 5 + 20 + 20 + 4 * 5 + 4;
        Assert.Equal(expected, p.Count);
        Assert.Equal(expected, LstmParameters.CountFor(config));
        // Write each tensor with a distinct value through its accessor and read back the flat order.
        float marker = 1;
        var spans = new List<(int length, float value)>();
        for (int l = 0; l < 2; l++)
        {
            p.WeightIh(l).Fill(marker); spans.Add((p.WeightIh(l).Length, marker++));
            p.WeightHh(l).Fill(marker); spans.Add((p.WeightHh(l).Length, marker++));
            p.BiasIh(l).Fill(marker); spans.Add((p.BiasIh(l).Length, marker++));
            p.BiasHh(l).Fill(marker); spans.Add((p.BiasHh(l).Length, marker++));
        }
        p.HeadWeight.Fill(marker); spans.Add((p.HeadWeight.Length, marker++));
        p.HeadBias.Fill(marker); spans.Add((p.HeadBias.Length, marker));
        int offset = 0;
        foreach (var (length, value) in spans)
        {
            Assert.All(p.Data.Skip(offset).Take(length), v => Assert.Equal(value, v));
            offset += length;
        }
        Assert.Equal(p.Count, offset);
    }

    [Fact]
    public void CloneAndAllFinite_Behave()
    {
        var p = LstmParameters.InitializeUniform(new LstmConfig(1, 4, 1, 1), 3);
        var copy = p.Clone();
        Assert.Equal(p.Data, copy.Data);
        copy.Data[0] = float.NaN;
        Assert.True(p.AllFinite());
        Assert.False(copy.AllFinite());
    }

    [Fact]
    public void Config_RejectsOutOfRangeDimensions()
    {
        Assert.Throws<ArgumentException>(() => new LstmConfig(0, 4, 1, 1).Validate());
        Assert.Throws<ArgumentException>(() => new LstmConfig(1, 0, 1, 1).Validate());
        Assert.Throws<ArgumentException>(() => new LstmConfig(1, 4, 0, 1).Validate());
        Assert.Throws<ArgumentException>(() => new LstmConfig(1, 4, 1, 0).Validate());
        Assert.Throws<ArgumentException>(() => new LstmConfig(1, LstmConfig.MaxDimension + 1, 1, 1).Validate());
    }
}
