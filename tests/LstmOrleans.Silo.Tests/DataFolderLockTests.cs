using LstmOrleans.Silo.Hosting;
using Xunit;

namespace LstmOrleans.Silo.Tests;

/// <summary>
/// The cluster identity a SQLite silo writes beside its data and names when it refuses another cluster's folder: a
/// Redis connection string enters it as its endpoints only, never with the password it may carry.
/// </summary>
public sealed class DataFolderLockTests
{
    [Fact]
    public void A_Redis_clusters_identity_names_its_endpoints_and_not_its_password()
    {
        var settings = new SiloSettings();
        settings.Cluster.Clustering = "redis";
        settings.ConnectionStrings.Redis = "10.0.0.7:6380,password=s3cret-Pa55,ssl=false";

        string identity = DataFolderLock.ClusterIdentity(settings);

        Assert.Contains("Redis membership at 10.0.0.7:6380", identity);
        Assert.DoesNotContain("s3cret-Pa55", identity);
        Assert.DoesNotContain("password", identity, StringComparison.OrdinalIgnoreCase);
    }
}
