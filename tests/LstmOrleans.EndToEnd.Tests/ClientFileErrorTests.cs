namespace LstmOrleans.EndToEnd.Tests;

/// <summary>Bad files and output paths of the real client binary: one line on stderr and exit 2, never a stack trace. No cluster needed.</summary>
public sealed class ClientFileErrorTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private const string Header = "stream,sequence,timestamp,actual,predicted,lower,upper,persistence";
    private readonly string _folder = Binaries.TempFolder("file-errors");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static void AssertOneLineError(ProcessResult result, string fragment)
    {
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.StartsWith("error: ", result.Stderr);
        Assert.Contains(fragment, result.Stderr);
        Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Plot_refuses_bad_inputs_and_outputs_with_one_line()
    {
        var good = Write("good.csv", $"{Header}\ns,2,2024-01-01T00:05:00Z,1,1.5,1,2,1\ns,3,2024-01-01T00:10:00Z,2,1.5,1,2,1\n");

        AssertOneLineError(await Binaries.RunClientAsync(Timeout, _folder, "plot", Write("header.csv", Header + "\n")), "only the header");
        AssertOneLineError(await Binaries.RunClientAsync(Timeout, _folder, "plot", Write("overflow.csv", $"{Header}\ns,99999999999999999999,2024-01-01T00:05:00Z,1,1,1,1,1\n")), "line 2");
        AssertOneLineError(await Binaries.RunClientAsync(Timeout, _folder, "plot", _folder), _folder);                  // a folder, not a CSV
        AssertOneLineError(await Binaries.RunClientAsync(Timeout, _folder, "plot", good, "-o", _folder), _folder);     // a folder, not a PNG

        var plotted = await Binaries.RunClientAsync(Timeout, _folder, "plot", good, "-o", Path.Combine(_folder, "p.png"));
        Assert.True(plotted.ExitCode == 0, plotted.ToString());
    }
}
