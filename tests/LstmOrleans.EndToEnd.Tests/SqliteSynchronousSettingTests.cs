namespace LstmOrleans.EndToEnd.Tests;

/// <summary>
/// The silo setting Storage:SqliteSynchronous reaches the SQLite provider: the provider reads PRAGMA synchronous back
/// from the open database and reports it in its start-up log line, which the real silo host prints.
/// </summary>
public sealed class SqliteSynchronousSettingTests
{
    [Fact]
    public async Task Storage_SqliteSynchronous_normal_reaches_the_open_database()
    {
        var silo = new SiloProcess(SiloProcess.ApiKey, ["--Storage:SqliteSynchronous=normal"]);
        try
        {
            await silo.InitializeAsync();
            Assert.Contains("synchronous=Normal (PRAGMA synchronous=1)", silo.Log);
            Assert.DoesNotContain("PRAGMA synchronous=2", silo.Log);
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
        }
        finally
        {
            await silo.DisposeAsync();
        }
    }
}
