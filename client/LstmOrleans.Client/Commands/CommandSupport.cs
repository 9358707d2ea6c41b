using System.CommandLine;
using LstmOrleans.Abstractions;
using LstmOrleans.Client.Cluster;
using LstmOrleans.Silo.Hosting;

namespace LstmOrleans.Client.Commands;

/// <summary>The values that range validators check.</summary>
internal static class ValidatedValue
{
    /// <summary>
    /// The option's value, or null when its text does not parse as a <typeparamref name="T"/> (<c>--limit abc</c>).
    /// System.CommandLine 2.0 runs an option's validators on such a value too, and GetValueOrDefault then throws: the
    /// command died with an unhandled exception, a stack trace and exit code 134 instead of the parser's own "Cannot
    /// parse argument 'abc' for option '--limit'" and exit code 2. A validator leaves that case to the parser's error.
    /// </summary>
    public static T? ParsedOrNull<T>(this System.CommandLine.Parsing.OptionResult result) where T : struct
    {
        try { return result.GetValueOrDefault<T>(); }
        catch (InvalidOperationException) { return null; }
    }

    /// <inheritdoc cref="ParsedOrNull{T}(System.CommandLine.Parsing.OptionResult)"/>
    public static T? ParsedOrNull<T>(this System.CommandLine.Parsing.ArgumentResult result) where T : struct
    {
        try { return result.GetValueOrDefault<T>(); }
        catch (InvalidOperationException) { return null; }
    }

    /// <summary>
    /// Refuses a model name no model can have (<see cref="LstmOrleansNames.ModelNameProblem"/>) as a usage error, exit 2:
    /// an empty or blank one reached Orleans, whose refusal named its own 'primaryKey' parameter.
    /// </summary>
    public static void AddModelNameCheck(this System.CommandLine.Argument argument) =>
        argument.Validators.Add(r => { if (ModelNameError(argument.Name, r.Tokens) is { } error) r.AddError(error); });

    /// <inheritdoc cref="AddModelNameCheck(System.CommandLine.Argument)"/>
    public static void AddModelNameCheck(this System.CommandLine.Option option) =>
        option.Validators.Add(r => { if (ModelNameError(option.Name, r.Tokens) is { } error) r.AddError(error); });

    private static string? ModelNameError(string what, IReadOnlyList<System.CommandLine.Parsing.Token> tokens) =>
        tokens.Select(t => LstmOrleansNames.ModelNameProblem(t.Value) is { } problem ? $"{what} '{t.Value}': {problem}" : null)
            .FirstOrDefault(e => e is not null);
}

/// <summary>Options every cluster command shares, and the error handling that turns failures into exit codes.</summary>
internal sealed class ClusterOptions
{
    public Option<string?> Cluster { get; } = new("--cluster", "-c")
    {
        Description = "Gateways host:port[,host:port...] (default 127.0.0.1:30000) or redis://host:port for Redis membership.",
    };

    public Option<string> ClusterId { get; } = new("--cluster-id")
    {
        Description = "Orleans ClusterId of the silos.",
        DefaultValueFactory = _ => "lstmorleans",
    };

    public Option<string> ServiceId { get; } = new("--service-id")
    {
        Description = "Orleans ServiceId of the silos.",
        DefaultValueFactory = _ => "lstmorleans",
    };

    public Option<double> ConnectTimeout { get; } = new("--connect-timeout")
    {
        Description = "Seconds to wait for the cluster (1..600).",
        DefaultValueFactory = _ => 15,
    };

    public Option<double?> ResponseTimeout { get; } = new("--response-timeout")
    {
        Description = "Seconds a grain call waits for its answer before failing (default: Orleans' 30 s). Shorter fails calls to a crashed silo sooner.",
    };

    public Option<bool> Tls { get; } = new("--tls") { Description = "Connect to the gateways over TLS (implied by the other --tls-* options)." };

    public Option<string?> TlsCertificate { get; } = new("--tls-certificate")
    {
        Description = "Client certificate (.pfx) for silos that require one; its password from the environment variable " + TlsPasswordVariable + ".",
    };

    public Option<string?> TlsTrust { get; } = new("--tls-trust")
    {
        Description = "PEM/DER file of the certificate(s) to trust for the silos (a private CA or the self-signed silo certificate) instead of the system roots.",
    };

    public Option<string?> TlsTargetHost { get; } = new("--tls-target-host")
    {
        Description = "Name the silos' certificate must carry (required without --tls-trust).",
    };

    /// <summary>The client certificate's password is read from here only, never from the command line (visible in ps).</summary>
    public const string TlsPasswordVariable = "LSTMORLEANS_TLS_CERTIFICATE_PASSWORD";

    /// <summary>
    /// <paramref name="clusterDescription"/> replaces the --cluster help of a command whose default is no cluster to
    /// connect to (demo starts a silo in its own process): "default 127.0.0.1:30000" was untrue there.
    /// </summary>
    public ClusterOptions(string? clusterDescription = null)
    {
        if (clusterDescription is not null) Cluster.Description = clusterDescription;
        // Out of range was clamped silently, and NaN failed with .NET's TimeSpan message.
        ConnectTimeout.Validators.Add(r => { if (r.ParsedOrNull<double>() is < 1 or > 600 or double.NaN) r.AddError("--connect-timeout must be in 1..600 seconds."); });
    }

    public void AddTo(Command command)
    {
        command.Options.Add(Cluster);
        command.Options.Add(ClusterId);
        command.Options.Add(ServiceId);
        command.Options.Add(ConnectTimeout);
        command.Options.Add(ResponseTimeout);
        command.Options.Add(Tls);
        command.Options.Add(TlsCertificate);
        command.Options.Add(TlsTrust);
        command.Options.Add(TlsTargetHost);
    }

    public ClusterTarget Target(ParseResult result)
    {
        var target = ClusterTarget.Parse(
            result.GetValue(Cluster), result.GetValue(ClusterId)!, result.GetValue(ServiceId)!,
            TimeSpan.FromSeconds(result.GetValue(ConnectTimeout)));
        TimeSpan? responseTimeout = result.GetValue(ResponseTimeout) is { } seconds
            ? (seconds is >= 0.1 and <= 3600 ? TimeSpan.FromSeconds(seconds) : throw new ArgumentException($"--response-timeout must be in 0.1..3600 seconds; got {seconds}."))
            : null;
        TlsSettings? tls = null;
        if (result.GetValue(Tls) || result.GetValue(TlsCertificate) is not null || result.GetValue(TlsTrust) is not null || result.GetValue(TlsTargetHost) is not null)
        {
            tls = new TlsSettings
            {
                Enabled = true,
                CertificatePath = result.GetValue(TlsCertificate),
                CertificatePassword = Environment.GetEnvironmentVariable(TlsPasswordVariable),
                TrustedCertificatePath = result.GetValue(TlsTrust),
                TargetHost = result.GetValue(TlsTargetHost),
            };
            var errors = new List<string>();
            tls.Validate(errors, ClusterTarget.TlsPrefix, certificateRequired: false);
            if (errors.Count > 0) throw new SiloConfigurationException(errors);
        }
        return target with { Tls = tls, ResponseTimeout = responseTimeout };
    }
}

internal static class CommandSupport
{
    /// <summary>Exit codes: 0 ok, 1 the cluster refused or failed, 2 bad arguments or input files, 3 cluster unreachable.</summary>
    public static async Task<int> RunAsync(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (ClusterUnavailableException ex)
        {
            return Fail(3, ex.Message);
        }
        // IOException covers more than a missing file: an --out that is a folder, a full disk, a PREDICTIONS argument that is a folder.
        catch (Exception ex) when (ex is ArgumentException and not ObservationRejectedException || ex is FormatException or IOException or UnauthorizedAccessException or SiloConfigurationException)
        {
            return Fail(2, ex.Message);
        }
        catch (Exception ex) when (ex is ObservationRejectedException or ModelNotFoundException or ModelOperationException)
        {
            return Fail(1, ex.Message);
        }
        catch (OperationCanceledException)
        {
            return Fail(ClientCommandLine.Cancelled, "Cancelled.");
        }
        catch (Exception ex) when (ex is TimeoutException or Orleans.Runtime.OrleansException or Orleans.Runtime.SiloUnavailableException)
        {
            return Fail(1, $"Cluster call failed: {ex.Message}");
        }
    }

    public static int Fail(int code, string message)
    {
        Console.Error.WriteLine($"error: {message}");
        return code;
    }

    public static async Task<int> WithClusterAsync(ClusterOptions options, ParseResult result, CancellationToken cancellationToken,
        Func<ClusterConnection, Task<int>> action) => await RunAsync(async () =>
    {
        var target = options.Target(result);
        await using var connection = await ClusterConnection.ConnectAsync(target, cancellationToken);
        return await action(connection);
    });

    private static readonly System.Text.Json.JsonSerializerOptions JsonOptions = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        // Losses of a round that could not score are NaN; print them rather than fail.
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    /// <summary>Writes <paramref name="value"/> as indented camelCase JSON on stdout (enums as names).</summary>
    public static void WriteJson<T>(T value) => Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(value, JsonOptions));

    public static string Format(float value) => value.ToString("G6", System.Globalization.CultureInfo.InvariantCulture);

    public static string Describe(StepResult r)
    {
        var parts = new List<string>();
        for (var k = 0; k < r.Predictions.Length; k++)
            parts.Add($"t+{k + 1}: {Format(r.Predictions[k])} [{Format(r.Lower[k])}, {Format(r.Upper[k])}]");
        return $"{r.StreamId} seq {r.Sequence} ({r.Timestamp:u}, weights v{r.WeightsVersion}{(r.Duplicate ? ", duplicate: nothing applied" : "")}): " + string.Join("  ", parts);
    }
}
