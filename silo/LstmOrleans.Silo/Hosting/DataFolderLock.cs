using System.Security.Cryptography;
using System.Text;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// Keeps silos of different clusters off one SQLite data folder. Silos of one cluster may share it (a grain is active
/// on one of them at a time, so its state has one writer), but two clusters on one file each activate the same
/// streams and overwrite each other's state: a second lone silo started in the same folder (another port, same
/// ./data) answered 500s and left the two silos disagreeing on a stream's last sequence. Each silo holds a shared
/// lock on a file named after its cluster (the OS drops it when the process dies, SIGKILL included), and refuses to
/// start while a live silo holds another cluster's file. .NET on Unix locks with flock: FileShare.None takes an
/// exclusive lock, any other share a shared one.
/// </summary>
internal sealed class DataFolderLock : IDisposable
{
    private const string Prefix = ".silo-cluster-";
    private readonly FileStream _held;

    private DataFolderLock(FileStream held) => _held = held;

    /// <summary>
    /// The lock for a SQLite silo, or null without SQLite; <paramref name="conflict"/> is a one-line reason naming
    /// Storage:DataFolder when a silo of another cluster uses the folder (the lock is then not taken).
    /// </summary>
    public static DataFolderLock? Acquire(SiloSettings settings, out string? conflict)
    {
        conflict = null;
        if (!SiloSettings.Is(settings.Storage.Provider, StorageSettings.Sqlite)) return null;
        var folder = Path.GetFullPath(settings.Storage.DataFolder);
        string identity = ClusterIdentity(settings);
        string ownPath = Path.Combine(folder, Prefix + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..16]);
        var own = new FileStream(ownPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
        try
        {
            own.SetLength(0);
            own.Write(Encoding.UTF8.GetBytes(identity));
            own.Flush();
            foreach (var other in Directory.EnumerateFiles(folder, Prefix + "*"))
            {
                if (other == ownPath || !HeldByLiveSilo(other, out var otherIdentity)) continue;
                conflict = $"Storage:DataFolder '{folder}' is in use by a running silo of another cluster ({otherIdentity}); "
                    + $"this one is {identity}. Give each cluster its own data folder.";
                own.Dispose();
                return null;
            }

            return new DataFolderLock(own);
        }
        catch
        {
            own.Dispose();
            throw;
        }
    }

    /// <summary>What makes silos one cluster: where their membership lives and the cluster and service ids.</summary>
    /// <remarks>
    /// Written to a file in the data folder and named in the refusal: the Redis connection string enters as its endpoints
    /// only, since it may carry a password.
    /// </remarks>
    internal static string ClusterIdentity(SiloSettings settings)
    {
        var cluster = settings.Cluster;
        string membership = cluster.IsRedis
            ? $"Redis membership at {ServiceConnectFailure.RedisEndpoints(settings.ConnectionStrings.Redis)}"
            : $"localhost clustering with primary silo port {(cluster.PrimarySiloPort == 0 ? cluster.SiloPort : cluster.PrimarySiloPort)}";
        return $"{membership}, ClusterId '{cluster.ClusterId}', ServiceId '{cluster.ServiceId}'";
    }

    /// <summary>True when a live process holds the file's lock (an exclusive lock cannot be had), with the identity it wrote.</summary>
    private static bool HeldByLiveSilo(string path, out string identity)
    {
        identity = "";
        try
        {
            // Taken and released at once: the file of a silo that has exited is left for the next silo of its cluster.
            using var probe = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None);
            return false;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
        catch (IOException)
        {
            // Held (shared) by its silo: a shared open for reading is granted alongside it.
            try
            {
                using var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                identity = new StreamReader(reader, Encoding.UTF8).ReadToEnd();
            }
            catch (IOException)
            {
                identity = "unknown";
            }

            return true;
        }
    }

    public void Dispose() => _held.Dispose();
}
