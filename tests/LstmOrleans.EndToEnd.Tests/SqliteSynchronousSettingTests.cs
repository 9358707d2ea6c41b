namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// The silo settings Storage:SqliteSynchronous and Storage:SqliteWalCheckpointPages reach the SQLite provider: the
/// provider reads PRAGMA synchronous and PRAGMA wal_autocheckpoint back from the open database and reports them in its
/// start-up log line, which the real silo host prints.
/// </summary>
public sealed class SqliteSynchronousSettingTests
{
    [Fact]
    public async Task Storage_SqliteSynchronous_normal_reaches_the_open_database()
    {
        var silo = new SiloProcess(SiloProcess.ApiKey, ["--Storage:SqliteSynchronous=normal", "--Storage:SqliteWalCheckpointPages=2500"]);
        try
        {
            await silo.InitializeAsync();
            Assert.Contains("synchronous=Normal (PRAGMA synchronous=1)", silo.Log);
            Assert.DoesNotContain("PRAGMA synchronous=2", silo.Log);
            Assert.Contains("checkpoint every 2500 WAL pages (PRAGMA wal_autocheckpoint)", silo.Log);
            Assert.Contains("WAL writes unbuffered", silo.Log);   // NORMAL publishes commits without a sync: no buffer
        }
        finally
        {
            await silo.DisposeAsync();
        }
    }

    [Fact]
    public async Task Storage_SqliteBufferWalWrites_false_turns_the_wal_write_buffer_off()
    {
        var silo = new SiloProcess(SiloProcess.ApiKey, ["--Storage:SqliteBufferWalWrites=false"]);
        try
        {
            await silo.InitializeAsync();
            Assert.Contains("synchronous=Full (PRAGMA synchronous=2)", silo.Log);
            Assert.Contains("WAL writes unbuffered", silo.Log);
        }
        finally
        {
            await silo.DisposeAsync();
        }
    }

    [Fact]
    public async Task Without_the_setting_the_silo_runs_sqlite_fully_synchronous()
    {
        var silo = new SiloProcess(SiloProcess.ApiKey, []);
        try
        {
            await silo.InitializeAsync();
            Assert.Contains("synchronous=Full (PRAGMA synchronous=2)", silo.Log);
            Assert.Contains("checkpoint every 100000 WAL pages (PRAGMA wal_autocheckpoint)", silo.Log);
            Assert.Contains("WAL writes buffered per commit", silo.Log);
        }
        finally
        {
            await silo.DisposeAsync();
        }
    }
}
