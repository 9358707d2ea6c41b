using System.Collections;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Metadata;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// Says what is wrong with a request whose parameters or body did not bind, in the API's terms. ASP.NET Core's own
/// messages name .NET types and say too little: <c>Failed to bind parameter "Nullable&lt;int&gt; max" from "abc"</c>,
/// <c>The JSON value could not be converted to LstmOrleans.Silo.Api.CreateModelRequest</c> (without the accepted
/// values), <c>Implicit body inferred ... Did you mean to use a Service instead?</c> for an empty body. The types come
/// from the endpoint (its handler's parameters, its body type), so every route gets the same wording.
/// </summary>
internal static partial class BindingFailure
{
    public static string Describe(HttpContext context, BadHttpRequestException exception)
    {
        // The exception handler middleware clears the endpoint and route values before handlers run; its feature keeps them.
        var failed = context.Features.Get<IExceptionHandlerFeature>();
        var endpoint = failed?.Endpoint ?? context.GetEndpoint();
        var bodyType = endpoint?.Metadata.GetMetadata<IAcceptsMetadata>()?.RequestType;
        // A body without a Content-Type passes routing's media type check and is refused here ("Expected a supported
        // JSON media type but got """), in other words than the 415 routing answers for a wrong one.
        if (exception.StatusCode == StatusCodes.Status415UnsupportedMediaType) return StatusCodeProblems.UnsupportedBody(context.Request.ContentType);
        if (exception.InnerException is JsonException json) return DescribeJson(json, bodyType);
        if (ParameterBindingFailed().Match(exception.Message) is { Success: true } parameter)
            return DescribeParameter(context, failed?.RouteValues ?? context.Request.RouteValues, endpoint?.Metadata.GetMetadata<MethodInfo>(), parameter.Groups["type"].Value, parameter.Groups["name"].Value, parameter.Groups["value"].Value);
        // No body at all (with or without a Content-Type), or the JSON literal null.
        if (bodyType is not null && (exception.Message.StartsWith("Implicit body inferred", StringComparison.Ordinal) || BodyNotProvided().IsMatch(exception.Message)))
            return $"A JSON body is required: {Shape(bodyType)}.";
        // Any other framework message: the parameter's name without its .NET type.
        return QuotedParameter().Replace(exception.Message, "'${name}'");
    }

    private static string DescribeJson(JsonException json, Type? bodyType)
    {
        var where = json.LineNumber is { } line ? $" (line {line + 1}, byte {json.BytePositionInLine + 1})" : "";
        var path = ParsePath(json.Path);
        if (bodyType is not null && path is not null)
        {
            var (type, unknown, parent) = Resolve(bodyType, path);
            if (unknown is not null && json.Message.StartsWith("The JSON property", StringComparison.Ordinal))
                return $"The request body has an unknown property '{unknown}'{where}; it must be {Shape(parent!)}.";
            if (type is not null && json.Message.StartsWith("The JSON value could not be converted", StringComparison.Ordinal))
                return path.Count == 0
                    ? $"The request body must be {Shape(bodyType)}{where}."
                    : $"In the request body, '{Display(path)}' must be {Expected(type)}{where}.";
        }
        // Malformed JSON: the reader's own sentence says what broke (it names no .NET type); its position is given once.
        var message = json.Message;
        var cut = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (cut < 0) cut = message.IndexOf(" LineNumber: ", StringComparison.Ordinal);
        return $"The request body could not be read as JSON: {(cut < 0 ? message : message[..cut]).TrimEnd('.', ' ')}{where}.";
    }

    private static string DescribeParameter(HttpContext context, RouteValueDictionary routeValues, MethodInfo? handler, string typeText, string name, string value)
    {
        var source = routeValues.ContainsKey(name) ? "path parameter"
            : context.Request.Query.ContainsKey(name) ? "query parameter"
            : "parameter";
        var parameter = handler?.GetParameters().FirstOrDefault(p => p.Name == name);
        var expected = parameter is null
            ? (typeText.Contains("int", StringComparison.OrdinalIgnoreCase) || typeText.Contains("long", StringComparison.OrdinalIgnoreCase) ? "an integer" : "a valid value")
            : Expected(parameter.ParameterType, parameter.GetCustomAttribute<RangeAttribute>());
        return ParameterProblem(source, name, expected, value);
    }

    /// <summary>"The path parameter 'version' must be a positive integer; got '0'.": also for values that bind but are out of range.</summary>
    internal static string ParameterProblem(string source, string name, string expected, string value) =>
        $"The {source} '{name}' must be {expected}; got '{value}'.";

    /// <summary>What a JSON value (or query value) of <paramref name="type"/> must be, in words.</summary>
    private static string Expected(Type type, RangeAttribute? range = null)
    {
        if (Nullable.GetUnderlyingType(type) is { } inner) return Expected(inner, range);
        if (type.IsEnum) return $"one of {string.Join(", ", Enum.GetNames(type))}";
        if (IsInteger(type))
        {
            if (range is null) return "an integer";
            double min = Convert.ToDouble(range.Minimum, CultureInfo.InvariantCulture), max = Convert.ToDouble(range.Maximum, CultureInfo.InvariantCulture);
            // [Range(1, long.MaxValue)] and the like: no upper bound worth printing.
            if (max >= Convert.ToDouble(type.GetField("MaxValue")!.GetValue(null), CultureInfo.InvariantCulture))
                return min switch { 1 => "a positive integer", 0 => "a non-negative integer", _ => $"an integer of at least {min.ToString(CultureInfo.InvariantCulture)}" };
            return $"an integer in {min.ToString(CultureInfo.InvariantCulture)}..{max.ToString(CultureInfo.InvariantCulture)}";
        }
        if (type == typeof(float) || type == typeof(double) || type == typeof(decimal)) return "a number";
        if (type == typeof(bool)) return "true or false";
        if (type == typeof(string)) return "a string";
        if (type == typeof(DateTimeOffset) || type == typeof(DateTime)) return "an ISO 8601 date and time string, e.g. \"2024-01-01T00:00:00Z\"";
        if (type == typeof(TimeSpan)) return "a duration string, e.g. \"00:05:00\" for five minutes";
        if (DictionaryValueType(type) is { } values) return $"an object whose values are each {Expected(values)}";
        if (ElementType(type) is { } element) return $"an array whose elements are each {Expected(element)}";
        return Shape(type);
    }

    private static bool IsInteger(Type type) =>
        type == typeof(int) || type == typeof(long) || type == typeof(short) || type == typeof(byte)
        || type == typeof(uint) || type == typeof(ulong) || type == typeof(ushort) || type == typeof(sbyte);

    /// <summary>"an object with the properties name (required), inputSize, ...": a request type's JSON properties.</summary>
    internal static string Shape(Type type)
    {
        var required = RequiredProperties(type).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var names = Properties(type).Select(p => JsonName(p.Name) + (required.Contains(JsonName(p.Name)) ? " (required)" : ""));
        return $"an object with the properties {string.Join(", ", names)}";
    }

    /// <summary>
    /// The JSON names of a request type's required properties, in declaration order: its constructor's parameters that
    /// have no default value and are not nullable (the ones the OpenAPI document marks required).
    /// </summary>
    internal static IReadOnlyList<string> RequiredProperties(Type type)
    {
        var constructor = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).FirstOrDefault();
        var nullability = new NullabilityInfoContext();
        return constructor?.GetParameters()
            .Where(p => !p.HasDefaultValue && !(Nullable.GetUnderlyingType(p.ParameterType) is not null
                || (!p.ParameterType.IsValueType && nullability.Create(p).WriteState == NullabilityState.Nullable)))
            .Select(p => JsonName(p.Name!)).ToList() ?? [];
    }

    /// <summary>The properties JSON can set (a record's positional ones have init setters; computed ones have none).</summary>
    private static IEnumerable<PropertyInfo> Properties(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod is not null);

    private static string JsonName(string name) => JsonNamingPolicy.CamelCase.ConvertName(name);

    /// <summary>
    /// Follows a JSON path's segments (property names and array indexes) through the body type: the type at its end, or
    /// the first name that is no property of its object (with that object's type).
    /// </summary>
    private static (Type? Type, string? Unknown, Type? Parent) Resolve(Type root, List<string> path)
    {
        var type = root;
        foreach (var segment in path)
        {
            type = Nullable.GetUnderlyingType(type) ?? type;
            if (segment.StartsWith('['))
            {
                if (ElementType(type) is not { } element) return (null, null, null);
                type = element;
            }
            else if (DictionaryValueType(type) is { } values) type = values;
            else if (Properties(type).FirstOrDefault(p => string.Equals(p.Name, segment, StringComparison.OrdinalIgnoreCase)) is { } property)
                type = property.PropertyType;
            else return (null, segment, type);
        }
        return (type, null, null);
    }

    private static Type? ElementType(Type type)
    {
        if (type == typeof(string)) return null;
        if (type.IsArray) return type.GetElementType();
        return typeof(IEnumerable).IsAssignableFrom(type) && type.IsGenericType && DictionaryValueType(type) is null ? type.GetGenericArguments()[0] : null;
    }

    private static Type? DictionaryValueType(Type type) =>
        type.IsGenericType && type.GetInterfaces().Append(type).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>)) is { } dictionary
            ? dictionary.GetGenericArguments()[1]
            : null;

    /// <summary>"$.features[0]" as ["features", "[0]"]; "$['a b']" as ["a b"]; null for a path it does not recognise.</summary>
    private static List<string>? ParsePath(string? path)
    {
        if (path is null || !path.StartsWith('$')) return null;
        var matches = PathSegment().Matches(path[1..]);
        if (matches.Sum(m => m.Length) != path.Length - 1) return null;
        return [.. matches.Select(m => m.Groups["name"].Success ? m.Groups["name"].Value : m.Groups["quoted"].Success ? m.Groups["quoted"].Value : m.Value)];
    }

    private static string Display(List<string> path) =>
        string.Concat(path.Select((s, i) => s.StartsWith('[') ? s : (i == 0 ? s : "." + s)));

    [GeneratedRegex("""^Failed to bind parameter "(?<type>.+) (?<name>[^ "]+)" from "(?<value>.*)"\.$""", RegexOptions.Singleline)]
    private static partial Regex ParameterBindingFailed();

    [GeneratedRegex("""^Required parameter ".+" was not provided from body\.?$""")]
    private static partial Regex BodyNotProvided();

    [GeneratedRegex("\"(?<type>[^\"]+) (?<name>[A-Za-z_][A-Za-z0-9_]*)\"")]
    private static partial Regex QuotedParameter();

    [GeneratedRegex("""\.(?<name>[^.\[]+)|\['(?<quoted>(?:[^']|'')*)'\]|\[\d+\]""")]
    private static partial Regex PathSegment();
}
