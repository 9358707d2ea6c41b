using System.Text.Json.Serialization;

namespace LstmOrleans.Lstm.Serialization;

/// <summary>Source-generated JSON for the list-valued metadata entries (no reflection, trimming-safe).</summary>
[JsonSerializable(typeof(string[]))]
[JsonSerializable(typeof(float[]))]
[JsonSourceGenerationOptions(NumberHandling = JsonNumberHandling.Strict, MaxDepth = 4)]
internal sealed partial class ModelFileJsonContext : JsonSerializerContext;
