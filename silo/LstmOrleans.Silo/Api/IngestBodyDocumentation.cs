using System.Text.Json.Nodes;
using Microsoft.OpenApi;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// The OpenAPI description of the ingest body, written by hand after <see cref="ObservationParser"/>: the schema
/// generated from <see cref="ObservationInput"/> and shared by all three media types marked sequence and timestamp
/// required (both may be omitted), had no "value" shorthand, did not say a JSON body may be an array, and described
/// CSV and NDJSON, which are text, as a JSON object.
/// </summary>
internal static class IngestBodyDocumentation
{
    public static OpenApiRequestBody RequestBody()
    {
        var observation = Observation();
        return new OpenApiRequestBody
        {
            Required = true,
            Description = "One observation or a batch, applied all or nothing; non-finite values and values beyond " +
                $"{LstmOrleans.Abstractions.Observation.MaxMagnitude:G} in magnitude are refused. Either every observation carries a " +
                "sequence number or none does. Also accepted as text/json, application/ndjson, application/jsonl and application/csv.",
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/json"] = new()
                {
                    Schema = new OpenApiSchema
                    {
                        Description = "One observation object, or a non-empty array of them (in order).",
                        OneOf = [observation, new OpenApiSchema { Type = JsonSchemaType.Array, Items = observation, MinItems = 1 }],
                    },
                    Example = JsonNode.Parse("""[{"sequence":1,"timestamp":"2024-01-01T00:00:00Z","values":[71.5]},{"sequence":2,"timestamp":"2024-01-01T00:05:00Z","value":71.9}]"""),
                },
                ["application/x-ndjson"] = new()
                {
                    Schema = new OpenApiSchema
                    {
                        Type = JsonSchemaType.String,
                        Description = "Text: one observation object (as in application/json) a line, in order; blank lines are skipped.",
                    },
                    Example = JsonValue.Create("{\"sequence\":1,\"values\":[71.5]}\n{\"sequence\":2,\"value\":71.9}\n"),
                },
                ["text/csv"] = new()
                {
                    Schema = new OpenApiSchema
                    {
                        Type = JsonSchemaType.String,
                        Description = "Text: a header line naming the columns, then one observation a line. The columns 'sequence' " +
                            "(a non-negative integer) and 'timestamp' (ISO 8601 or 'yyyy-MM-dd HH:mm:ss'; UTC without an offset) are " +
                            "optional; every other column is a value, in order (NAB's 'timestamp,value' files work as they are).",
                    },
                    Example = JsonValue.Create("timestamp,value\n2024-01-01 00:00:00,71.5\n2024-01-01 00:05:00,71.9\n"),
                },
            },
        };
    }

    /// <summary>One JSON observation, as <c>ObservationParser.ReadObservation</c> reads it (names case-insensitively).</summary>
    private static OpenApiSchema Observation() => new()
    {
        Type = JsonSchemaType.Object,
        Description = "One observation: 'values', or 'value' for a single number, is required; 'sequence' and 'timestamp' may be omitted.",
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["sequence"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Integer, Format = "int64", Minimum = "0",
                Description = "Idempotency key, 0 or greater (a repeated one is skipped as a duplicate). Omitted in every observation: " +
                    "the server numbers them after the stream's last one.",
            },
            ["timestamp"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String, Format = "date-time",
                Description = "ISO 8601 (UTC without an offset); must not go back in time. Omitted: the server's time.",
            },
            ["values"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Array, MinItems = 1,
                Items = new OpenApiSchema { Type = JsonSchemaType.Number, Format = "float" },
                Description = "The observation's values (the model's raw input features), in order.",
            },
            ["value"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Number, Format = "float",
                Description = "Shorthand for 'values' with one element.",
            },
            // The parser's aliases: listed, since any other name is refused.
            ["seq"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Minimum = "0", Description = "Same as 'sequence'." },
            ["time"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time", Description = "Same as 'timestamp'." },
        },
        // Any other property is refused (400 naming it).
        AdditionalPropertiesAllowed = false,
        AnyOf = [new OpenApiSchema { Required = new HashSet<string> { "values" } }, new OpenApiSchema { Required = new HashSet<string> { "value" } }],
    };
}
