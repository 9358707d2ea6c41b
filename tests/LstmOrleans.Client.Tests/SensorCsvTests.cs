using LstmOrleans.Client.Offline;
using Xunit;

namespace LstmOrleans.Client.Tests;

public class SensorCsvTests
{
    private static SensorTable Read(string text) => SensorCsv.Read(new StringReader(text), "test.csv");

    [Fact]
    public void ReadsNabStyleRowsQuotedFieldsAndBlankLines()
    {
        var table = Read("\ntimestamp,value,\"load, kW\"\r\n2013-12-02 21:15:00,1.5,\"2\"\r\n\r\n2013-12-02T21:20:00Z, -3e2 ,4\n");
        Assert.Equal("timestamp", table.TimestampColumn);
        Assert.Equal(new[] { "value", "load, kW" }, table.FeatureNames);
        Assert.Equal(2, table.RowCount);
        Assert.Equal(new[] { 1.5f, 2f, -300f, 4f }, table.Values);
        Assert.Equal(new DateTime(2013, 12, 2, 21, 20, 0, DateTimeKind.Utc), table.Timestamps[1]);
        Assert.Equal(DateTimeKind.Utc, table.Timestamps[0].Kind);
        Assert.Equal(new[] { "2013-12-02 21:15:00", "2013-12-02T21:20:00Z" }, table.TimestampText);
    }

    [Fact]
    public void OffsetTimestampsAreConvertedToUtc()
    {
        var table = Read("timestamp,value\n2013-12-02T21:15:00+01:00,1\n");
        Assert.Equal(new DateTime(2013, 12, 2, 20, 15, 0, DateTimeKind.Utc), table.Timestamps[0]);
    }

    [Fact]
    public void WrittenPredictionsReadBackExactly()
    {
        float[] values = [0.1f, -1f / 3f, float.Epsilon, 1e30f, -0f, 123456.79f];
        var writer = new StringWriter();
        SensorCsv.WritePredictions(writer, ["2013-12-02 21:15:00", "odd,stamp"], values, 3);
        var lines = writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("timestamp,y1,y2,y3", lines[0]);
        Assert.StartsWith("\"odd,stamp\",", lines[2]);
        var read = Read(writer.ToString().Replace("\"odd,stamp\"", "2013-12-02 21:20:00"));
        Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), read.Values.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void DecimalCommaIsNotANumber()
    {
        Assert.Equal("0.5", SensorCsv.Format(0.5f));
        Assert.Equal(0.5f, Read("timestamp,v\n2013-12-02 21:15:00,0.5\n").Values[0]);
        var error = Assert.Throws<CsvFormatException>(() => Read("timestamp,v\n2013-12-02 21:15:00,\"0,5\"\n"));
        Assert.Contains("line 2, column 'v': '0,5' is not a number", error.Message);
    }
}
