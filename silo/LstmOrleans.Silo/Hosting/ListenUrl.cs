using System.Globalization;
using System.Net;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// One Kestrel listen URL (Http:Urls, Dashboard:Urls), read the way Kestrel's BindingAddress.Parse reads it, not as a
/// <see cref="Uri"/>, which refuses the wildcard hosts <c>*</c> and <c>+</c> that operators use to listen on every
/// interface. What Kestrel would throw on at start, or silently read as something else, is refused here instead.
/// (This file is compiled into the client too, which has no ASP.NET Core to call BindingAddress from.)
/// </summary>
internal sealed record ListenUrl(int Port, bool HasExplicitPort)
{
    /// <summary>Parses <paramref name="url"/>; null with <paramref name="problem"/> saying why when Kestrel could not listen on it.</summary>
    public static ListenUrl? Parse(string url, out string? problem)
    {
        int schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        var rest = schemeEnd < 0 ? "" : url[(schemeEnd + 3)..];
        if (schemeEnd <= 0 || rest.Length == 0)
        {
            problem = "not a URL (scheme://host:port)";
            return null;
        }
        // Kestrel: "Unrecognized scheme in server address".
        var scheme = url[..schemeEnd];
        if (!string.Equals(scheme, "http", StringComparison.OrdinalIgnoreCase) && !string.Equals(scheme, "https", StringComparison.OrdinalIgnoreCase))
        {
            problem = "the scheme must be http or https";
            return null;
        }
        // http://unix:/PATH is a unix socket (what follows a further ':' would be a path base).
        if (rest.StartsWith("unix:/", StringComparison.Ordinal))
        {
            problem = rest.IndexOf(':', 6) >= 0 ? "a listen URL takes no path" : null;
            return problem is null ? new ListenUrl(0, HasExplicitPort: false) : null;
        }
        // Kestrel's named pipe transport exists on Windows only (PlatformNotSupportedException elsewhere).
        if (rest.StartsWith("pipe:/", StringComparison.Ordinal))
        {
            problem = OperatingSystem.IsWindows() ? null : "named pipes (http://pipe:/NAME) need Windows";
            return problem is null ? new ListenUrl(0, HasExplicitPort: false) : null;
        }

        int pathStart = rest.IndexOf('/');
        var authority = pathStart < 0 ? rest : rest[..pathStart];
        // Kestrel: "A path base can only be configured using IApplicationBuilder.UsePathBase()" (a lone '/' is no path).
        if (pathStart >= 0 && pathStart != rest.Length - 1)
        {
            problem = "a listen URL takes no path";
            return null;
        }
        // As Kestrel: the text after the last ':' is the port when it is a number; otherwise the port is the scheme's.
        int colon = authority.LastIndexOf(':');
        int port = 0;
        bool explicitPort = colon >= 0 && int.TryParse(authority.AsSpan(colon + 1), NumberStyles.Integer, CultureInfo.InvariantCulture, out port);
        if (!explicitPort) port = string.Equals(scheme, "https", StringComparison.OrdinalIgnoreCase) ? 443 : 80;
        var host = explicitPort ? authority[..colon] : authority;
        if (host.Length == 0)
        {
            problem = "not a URL (scheme://host:port)";
            return null;
        }
        problem = Check(host, port);
        return problem is null ? new ListenUrl(port, explicitPort) : null;
    }

    private static string? Check(string host, int port)
    {
        // A host Kestrel does not recognise binds every interface: a misspelt port ("*:abc", "*:5080?x") would end up in
        // the host and the silo would listen on port 80 of every interface instead of failing.
        if (host is not ("*" or "+") && !IsIpLiteral(host) && Uri.CheckHostName(host) != UriHostNameType.Dns)
            return "the host must be *, +, localhost, an IP address or a host name (a port is ':' and digits)";
        // Kestrel: ArgumentOutOfRangeException from the endpoint, and "Dynamic port binding is not supported when binding to localhost".
        if (port is < 0 or > 65535) return "the port must be in 0..65535";
        if (port == 0 && string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
            return "port 0 (any free port) needs an IP address, not localhost";
        return null;
    }

    private static bool IsIpLiteral(string host) => host.StartsWith('[') && host.EndsWith(']')
        ? IPAddress.TryParse(host.AsSpan(1, host.Length - 2), out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
        : IPAddress.TryParse(host, out var v4) && v4.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && host.Count(c => c == '.') == 3;

    /// <summary>The ';'-separated entries of a Urls setting.</summary>
    public static string[] Split(string urls) => urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
