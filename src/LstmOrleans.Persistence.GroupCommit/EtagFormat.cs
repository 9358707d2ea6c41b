using System.Globalization;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>ETags are the row's monotonically increasing version, written as an invariant decimal string.</summary>
internal static class EtagFormat
{
    // A grain keeps the ETag of its last write until the next one: a fresh string per write would live just long
    // enough to leave gen0. Versions below 65,536 share one string per number (made once, at most ~2.5 MB); a race
    // makes a harmless duplicate.
    private static readonly string?[] Cache = new string?[1 << 16];

    public static string Format(long version) =>
        (ulong)version < (ulong)Cache.Length ? Cache[version] ??= version.ToString(CultureInfo.InvariantCulture)
        : version.ToString(CultureInfo.InvariantCulture);

    /// <summary>Null (no etag: nothing stored) for a null version.</summary>
    public static string? Format(long? version) => version is { } v ? Format(v) : null;

    /// <summary>Parses an etag; false for text this provider never produced (treated as a conflict by callers).</summary>
    public static bool TryParse(string? etag, out long? version)
    {
        if (etag is null)
        {
            version = null;
            return true;
        }

        if (long.TryParse(etag, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) && parsed > 0)
        {
            version = parsed;
            return true;
        }

        version = null;
        return false;
    }
}
