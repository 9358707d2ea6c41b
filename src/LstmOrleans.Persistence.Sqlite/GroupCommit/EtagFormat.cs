using System.Globalization;

namespace LstmOrleans.Persistence.GroupCommit;

/// <summary>ETags are the row's monotonically increasing version, written as an invariant decimal string.</summary>
internal static class EtagFormat
{
    public static string? Format(long? version) => version?.ToString(CultureInfo.InvariantCulture);

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
