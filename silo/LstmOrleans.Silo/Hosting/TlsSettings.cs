using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Orleans.Connections.Security;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// TLS on the Orleans connections (client to gateway and silo to silo), Microsoft.Orleans.Connections.Security.
/// Used by the silo (section <c>Tls</c>) and by the command-line client (<c>--tls-*</c> options), so both sides load
/// certificates and validate their peer the same way.
/// <para>
/// The local certificate comes from a PKCS#12 (.pfx) file (<see cref="CertificatePath"/>, password in
/// <see cref="CertificatePassword"/>, best given as the environment variable <c>LSTMORLEANS_Tls__CertificatePassword</c>)
/// or from a certificate store by subject name. The peer's certificate is accepted when it chains to one of the
/// certificates in <see cref="TrustedCertificatePath"/> (a private CA, or the self-signed certificate itself), or, when
/// that is not set, to the system's trusted roots with the name <see cref="TargetHost"/>. The password is never written
/// to a log or an error message.
/// </para>
/// </summary>
public sealed class TlsSettings
{
    /// <summary>Off by default: Orleans connections are plain TCP (fine on loopback or a private network).</summary>
    public bool Enabled { get; set; }
    /// <summary>PKCS#12 (.pfx) file with the certificate and its private key.</summary>
    public string? CertificatePath { get; set; }
    /// <summary>Password of <see cref="CertificatePath"/>. Secret: pass it by environment variable, not on a command line.</summary>
    public string? CertificatePassword { get; set; }
    /// <summary>Instead of a file: the subject name of a certificate (with private key) in a certificate store.</summary>
    public string? CertificateSubject { get; set; }
    /// <summary>Store of <see cref="CertificateSubject"/>: a <see cref="StoreName"/> (My, Root, ...).</summary>
    public string CertificateStoreName { get; set; } = nameof(StoreName.My);
    /// <summary>CurrentUser or LocalMachine.</summary>
    public string CertificateStoreLocation { get; set; } = nameof(StoreLocation.CurrentUser);
    /// <summary>
    /// PEM or DER file with the certificate(s) to trust for peers (a private CA or a self-signed certificate); the
    /// system's roots are then not used. Empty = system trust, which needs <see cref="TargetHost"/>.
    /// </summary>
    public string? TrustedCertificatePath { get; set; }
    /// <summary>Name the remote silo's certificate must carry (SNI and name check). Required with system trust.</summary>
    public string? TargetHost { get; set; }
    /// <summary>Silo: refuse clients (and silos) that present no certificate the trust rules accept (mutual TLS).</summary>
    public bool RequireClientCertificate { get; set; } = true;
    /// <summary>Longest TLS handshake before the connection is dropped.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    private bool HasCertificate => !string.IsNullOrWhiteSpace(CertificatePath) || !string.IsNullOrWhiteSpace(CertificateSubject);

    /// <summary>Checks the values and loads the certificates once; <paramref name="certificateRequired"/> is false for a client without a certificate of its own.</summary>
    public void Validate(List<string> errors, string prefix = "Tls:", bool certificateRequired = true)
    {
        if (!Enabled) return;
        bool hasFile = !string.IsNullOrWhiteSpace(CertificatePath), hasSubject = !string.IsNullOrWhiteSpace(CertificateSubject);
        if (hasFile && hasSubject || (certificateRequired && !hasFile && !hasSubject))
            errors.Add($"{prefix}CertificatePath (a .pfx file) or {prefix}CertificateSubject (a certificate store entry) is required when TLS is enabled, not both.");
        if (hasFile && !File.Exists(CertificatePath))
            errors.Add($"{prefix}CertificatePath: file '{CertificatePath}' does not exist.");
        if (hasSubject)
        {
            if (!Enum.TryParse<StoreName>(CertificateStoreName, ignoreCase: true, out _))
                errors.Add($"{prefix}CertificateStoreName must be one of {string.Join(", ", Enum.GetNames<StoreName>())}; got '{CertificateStoreName}'.");
            if (!Enum.TryParse<StoreLocation>(CertificateStoreLocation, ignoreCase: true, out _))
                errors.Add($"{prefix}CertificateStoreLocation must be CurrentUser or LocalMachine; got '{CertificateStoreLocation}'.");
        }
        if (!string.IsNullOrWhiteSpace(TrustedCertificatePath) && !File.Exists(TrustedCertificatePath))
            errors.Add($"{prefix}TrustedCertificatePath: file '{TrustedCertificatePath}' does not exist.");
        if (string.IsNullOrWhiteSpace(TrustedCertificatePath) && string.IsNullOrWhiteSpace(TargetHost))
            errors.Add($"{prefix}TargetHost (the name in the silos' certificates) is required when {prefix}TrustedCertificatePath is not set (system trust).");
        if (HandshakeTimeout <= TimeSpan.Zero || HandshakeTimeout > TimeSpan.FromMinutes(10))
            errors.Add($"{prefix}HandshakeTimeout must be between 0 and 00:10:00; got {HandshakeTimeout}.");
        if (errors.Count > 0) return;
        // Load once now so a wrong password or a broken file stops startup with the other configuration errors.
        try
        {
            if (HasCertificate) LoadCertificate(prefix).Dispose();
            LoadTrustedCertificates(prefix);
        }
        catch (SiloConfigurationException ex)
        {
            errors.AddRange(ex.Errors);
        }
    }

    /// <summary>Loads the local certificate; a bad file or password is a <see cref="SiloConfigurationException"/> naming the file only.</summary>
    public X509Certificate2 LoadCertificate(string prefix = "Tls:")
    {
        X509Certificate2 certificate;
        if (!string.IsNullOrWhiteSpace(CertificatePath))
        {
            try
            {
                certificate = X509CertificateLoader.LoadPkcs12FromFile(CertificatePath, CertificatePassword,
                    X509KeyStorageFlags.EphemeralKeySet);
            }
            catch (CryptographicException)
            {
                // Deliberately not the exception's text: nothing about the password goes into a message.
                throw new SiloConfigurationException([$"{prefix}CertificatePath: cannot read '{CertificatePath}' as a PKCS#12 (.pfx) file: wrong {prefix}CertificatePassword or not a .pfx file."]);
            }
        }
        else
        {
            using var store = new X509Store(Enum.Parse<StoreName>(CertificateStoreName, true), Enum.Parse<StoreLocation>(CertificateStoreLocation, true));
            try
            {
                store.Open(OpenFlags.ReadOnly | OpenFlags.OpenExistingOnly);
            }
            catch (CryptographicException ex)
            {
                // A store that does not exist (no certificate was ever added for this user) or that the platform lacks
                // (Linux has LocalMachine/Root and CertificateAuthority only): a configuration error, not a crash.
                throw new SiloConfigurationException([$"{prefix}CertificateStoreName / {prefix}CertificateStoreLocation: cannot open the certificate store {CertificateStoreLocation}/{CertificateStoreName}: {ex.Message}"]);
            }
            var now = DateTime.Now;
            certificate = store.Certificates.Find(X509FindType.FindBySubjectName, CertificateSubject!, validOnly: false)
                .Where(c => c.HasPrivateKey && c.NotBefore <= now && now <= c.NotAfter)
                .OrderByDescending(c => c.NotAfter)
                .FirstOrDefault()
                ?? throw new SiloConfigurationException([$"{prefix}CertificateSubject: no currently valid certificate with a private key for '{CertificateSubject}' in {CertificateStoreLocation}/{CertificateStoreName}."]);
        }
        if (!certificate.HasPrivateKey)
            throw new SiloConfigurationException([$"{prefix}CertificatePath: '{CertificatePath}' holds no private key."]);
        return certificate;
    }

    /// <summary>Loads the certificates in <see cref="TrustedCertificatePath"/> (PEM bundle or one DER file); null when not set.</summary>
    public X509Certificate2Collection? LoadTrustedCertificates(string prefix = "Tls:")
    {
        if (string.IsNullOrWhiteSpace(TrustedCertificatePath)) return null;
        var trusted = new X509Certificate2Collection();
        try
        {
            var text = File.ReadAllText(TrustedCertificatePath);
            if (text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal)) trusted.ImportFromPem(text);
            else trusted.Add(X509CertificateLoader.LoadCertificateFromFile(TrustedCertificatePath));
        }
        catch (CryptographicException ex)
        {
            throw new SiloConfigurationException([$"{prefix}TrustedCertificatePath: cannot read '{TrustedCertificatePath}' as PEM or DER certificates: {ex.Message}"]);
        }
        if (trusted.Count == 0)
            throw new SiloConfigurationException([$"{prefix}TrustedCertificatePath: '{TrustedCertificatePath}' holds no certificate."]);
        return trusted;
    }

    /// <summary>Fills Orleans' <see cref="TlsOptions"/>: local certificate, peer validation, client-certificate rule.</summary>
    public void Configure(TlsOptions options, bool isSilo, string prefix = "Tls:")
    {
        options.LocalCertificate = isSilo || HasCertificate ? LoadCertificate(prefix) : null;
        options.HandshakeTimeout = HandshakeTimeout;
        // On a silo RemoteCertificateMode governs the clients/silos connecting to it; on a client it governs the silo.
        options.RemoteCertificateMode = !isSilo || RequireClientCertificate ? RemoteCertificateMode.RequireCertificate : RemoteCertificateMode.AllowCertificate;
        // Present our certificate when connecting out (client to gateway, silo to silo) if it allows client authentication.
        options.ClientCertificateMode = RemoteCertificateMode.AllowCertificate;
        var validator = new PeerCertificateValidator(LoadTrustedCertificates(prefix), TargetHost);
        options.RemoteCertificateValidation = validator.IsValid;
        if (!string.IsNullOrWhiteSpace(TargetHost))
            options.OnAuthenticateAsClient = (_, ssl) => ssl.TargetHost = TargetHost;
    }
}

/// <summary>
/// Accepts a peer certificate that chains to one of <c>trusted</c> (custom root trust, no system roots), or with no
/// trusted list, one the platform accepted outright (system roots and the <c>targetHost</c> name).
/// </summary>
public sealed class PeerCertificateValidator(X509Certificate2Collection? trusted, string? targetHost)
{
    public bool IsValid(X509Certificate2 certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (trusted is null) return errors == SslPolicyErrors.None;
        // With a pinned trust list the platform's chain errors (unknown root) are expected and re-checked below; a name
        // mismatch only counts when a name was asked for (the server side never reports one).
        if (!string.IsNullOrWhiteSpace(targetHost) && errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch)) return false;
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable)) return false;
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(trusted);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
            foreach (var element in chain.ChainElements.Skip(1)) custom.ChainPolicy.ExtraStore.Add(element.Certificate);
        return custom.Build(certificate);
    }
}
