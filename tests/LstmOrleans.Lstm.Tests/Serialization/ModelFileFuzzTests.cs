using CsCheck;
using LstmOrleans.Lstm.Serialization;
using Xunit;

namespace LstmOrleans.Lstm.Tests.Serialization;

/// <summary>Hostile files: whatever bytes arrive, loading either succeeds or throws <see cref="ModelFileException"/>.</summary>
public class ModelFileFuzzTests
{
    private static readonly byte[] Valid = Build();

    private static byte[] Build()
    {
        var stream = new MemoryStream();
        var metadata = new ModelMetadata
        {
            FeatureNames = ["a", "b"],
            CalendarFeatures = [CalendarFeature.WeekdayCos],
            Normalization = new FeatureNormalization([0f, 1f, 2f], [1f, 2f, 3f]),
        };
        ModelFile.Save(stream, LstmParameters.InitializeUniform(new LstmConfig(3, 2, 2, 2), seed: 9), metadata);
        return stream.ToArray();
    }

    private static readonly int HeaderEnd = 8 + (int)BitConverter.ToUInt64(Valid, 0);

    /// <summary>Loads <paramref name="bytes"/>; true when it loaded, false when rejected the expected way.</summary>
    private static bool LoadsOrRejects(byte[] bytes)
    {
        try
        {
            var (parameters, metadata) = ModelFile.Load(new MemoryStream(bytes));
            // Whatever loads must be usable: finite and consistent.
            Assert.True(parameters.AllFinite());
            Assert.Null(metadata.Check(parameters.Config));
            return true;
        }
        catch (ModelFileException e)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
            return false;
        }
    }

    [Fact]
    public void ValidFileLoads() => Assert.True(LoadsOrRejects(Valid));

    [Fact]
    public void RandomByteMutationsLoadOrThrowModelFileException()
    {
        // Positions are drawn mostly from the header, where structure lives; a few from the data.
        var position = Gen.Frequency((3, Gen.Int[0, HeaderEnd - 1]), (1, Gen.Int[0, Valid.Length - 1]));
        var edit = Gen.Select(position, Gen.Byte);
        var mutation = Gen.Select(edit.Array[1, 8], Gen.Int[0, 3]);
        mutation.Sample((edits, cut) =>
        {
            var bytes = (byte[])Valid.Clone();
            foreach (var (at, value) in edits) bytes[at] = value;
            if (cut > 0) bytes = bytes[..^cut];
            LoadsOrRejects(bytes);
        }, iter: 3000);
    }

    [Fact]
    public void RandomHeaderTextMutationsLoadOrThrowModelFileException()
    {
        // Mutations that keep the header printable ASCII reach deeper than random bytes: the JSON stays parseable more often.
        string structural = "{}[],:\"0123456789-.eE ";
        var text = Gen.Char[structural];
        var edit = Gen.Select(Gen.Int[8, HeaderEnd - 1], text);
        edit.Array[1, 4].Sample(edits =>
        {
            var bytes = (byte[])Valid.Clone();
            foreach (var (at, value) in edits) bytes[at] = (byte)value;
            LoadsOrRejects(bytes);
        }, iter: 3000);
    }
}
