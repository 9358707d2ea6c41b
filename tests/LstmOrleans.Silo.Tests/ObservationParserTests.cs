using System.Text;
using LstmOrleans.Silo.Api;

namespace LstmOrleans.Silo.Tests;

/// <summary>What <see cref="ObservationParser"/> makes of JSON and NDJSON ingest bodies whose properties are ambiguous.</summary>
public sealed class ObservationParserTests
{
    private static List<ObservationInput> Parse(string body, string contentType = "application/json") =>
        ObservationParser.Parse(Encoding.UTF8.GetBytes(body), contentType, maxCount: 100);

    [Theory]
    [InlineData("""{"value":1,"values":[2]}""", "'values'")]
    [InlineData("""{"values":[2],"value":1}""", "'value'")]
    [InlineData("""{"value":1,"value":2}""", "'value'")]
    [InlineData("""{"sequence":5,"seq":3,"value":1}""", "'seq'")]
    [InlineData("""{"Sequence":5,"sequence":3,"value":1}""", "'sequence'")]
    [InlineData("""{"timestamp":"2024-01-01T00:00:00Z","time":"2025-01-01T00:00:00Z","value":1}""", "'time'")]
    public void A_property_given_twice_or_with_its_alias_is_a_400_not_its_last_occurrence(string body, string named)
    {
        // Each was taken from its last occurrence: {"sequence":5,"seq":3} was ingested as sequence 3, the idempotency
        // key the sender may not have meant, and {"value":1,"values":[2]} as 2.
        foreach (var (text, type) in new[] { (body, "application/json"), ($"[{body}]", "application/json"), (body, "application/x-ndjson") })
        {
            var e = Assert.Throws<RequestValidationException>(() => Parse(text, type));
            Assert.Equal(400, e.StatusCode);
            Assert.Contains(named + " repeats a property already given", e.Message);
        }
    }

    [Fact]
    public void Each_property_once_under_either_name_still_parses()
    {
        var one = Assert.Single(Parse("""{"seq":5,"time":"2024-01-01T00:00:00Z","value":1.5}"""));
        Assert.Equal(5, one.Sequence);
        Assert.Equal(new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero), one.Timestamp);
        Assert.Equal([1.5f], one.Values);
        var rows = Parse("{\"sequence\":1,\"values\":[1,2]}\n{\"sequence\":2,\"values\":[3,4]}", "application/x-ndjson");
        Assert.Equal([1L, 2L], rows.Select(r => r.Sequence!.Value));
    }
}
