using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using LstmOrleans.Lstm.Serialization;
using Xunit;

namespace LstmOrleans.Lstm.Tests.Serialization;

public class ModelFileTests
{
    private static readonly LstmConfig SmallConfig = new(3, 4, 2, 3);

    private static ModelMetadata FullMetadata() => new()
    {
        ModelName = "nyc-taxi",
        ModelVersion = "7",
        TargetColumn = 1,
        FeatureNames = ["temperature", "value"],
        CalendarFeatures = [CalendarFeature.HourSin],
        Normalization = new FeatureNormalization([1.5f, -2.25f, 0f], [0.1f, 3f, 1f]),
        Extra = new Dictionary<string, string> { ["author"] = "tests", ["note"] = "quotes \" and ünïcode" },
    };

    private static byte[] Save(LstmParameters parameters, ModelMetadata? metadata = null)
    {
        var stream = new MemoryStream();
        ModelFile.Save(stream, parameters, metadata);
        return stream.ToArray();
    }

    private static ModelFileContents Load(byte[] bytes, ModelFileLimits? limits = null) => ModelFile.Load(new MemoryStream(bytes), limits);

    private static ModelFileException Rejects(byte[] bytes, string expectedFragment, ModelFileLimits? limits = null)
    {
        var error = Assert.Throws<ModelFileException>(() => Load(bytes, limits));
        Assert.Contains(expectedFragment, error.Message, StringComparison.Ordinal);
        // The same verdict when the stream cannot seek (a pipe or network stream), where only reading tells.
        var unseekable = Assert.Throws<ModelFileException>(() => ModelFile.Load(new UnseekableStream(bytes), limits));
        Assert.Contains(expectedFragment, unseekable.Message, StringComparison.Ordinal);
        return error;
    }

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    [Fact]
    public void RoundTripIsBitExactAndKeepsMetadata()
    {
        var parameters = LstmParameters.InitializeUniform(SmallConfig, seed: 42);
        parameters.Data[5] = -0f;
        parameters.Data[6] = float.Epsilon;
        parameters.Data[7] = float.MaxValue;
        var metadata = FullMetadata();

        var (loaded, loadedMetadata) = Load(Save(parameters, metadata));

        Assert.Equal(SmallConfig, loaded.Config);
        Assert.Equal(Bits(parameters.Data), Bits(loaded.Data));
        Assert.Equal(metadata.ModelName, loadedMetadata.ModelName);
        Assert.Equal(metadata.ModelVersion, loadedMetadata.ModelVersion);
        Assert.Equal(metadata.TargetColumn, loadedMetadata.TargetColumn);
        Assert.Equal(metadata.FeatureNames, loadedMetadata.FeatureNames);
        Assert.Equal(metadata.CalendarFeatures, loadedMetadata.CalendarFeatures);
        Assert.Equal(metadata.Normalization!.Mean, loadedMetadata.Normalization!.Mean);
        Assert.Equal(metadata.Normalization.Std, loadedMetadata.Normalization.Std);
        Assert.Equal(metadata.Extra.OrderBy(kv => kv.Key), loadedMetadata.Extra.OrderBy(kv => kv.Key));
    }

    [Fact]
    public void RoundTripThroughAPathReplacesTheFileAtomically()
    {
        string dir = Directory.CreateTempSubdirectory("modelfile").FullName;
        try
        {
            string path = Path.Combine(dir, "m.safetensors");
            var first = LstmParameters.InitializeUniform(SmallConfig, seed: 1);
            var second = LstmParameters.InitializeUniform(SmallConfig, seed: 2);
            ModelFile.Save(path, first);
            ModelFile.Save(path, second);
            var (loaded, metadata) = ModelFile.Load(path);
            Assert.Equal(Bits(second.Data), Bits(loaded.Data));
            Assert.Null(metadata.Normalization);
            Assert.Equal(new[] { "m.safetensors" }, Directory.GetFiles(dir).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(false, "1")]
    [InlineData(true, "2")]
    public void ResidualHeadRoundTripsAndOnlyResidualFilesNeedFormatVersion2(bool residual, string expectedVersion)
    {
        var parameters = LstmParameters.InitializeUniform(SmallConfig, seed: 5);
        byte[] bytes = Save(parameters, FullMetadata() with { Residual = residual });

        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using var json = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)n));
        var stored = json.RootElement.GetProperty("__metadata__");
        // A reader that does not know the residual key refuses version 2 instead of predicting changes as levels.
        Assert.Equal(expectedVersion, stored.GetProperty("format_version").GetString());
        Assert.Equal(residual, stored.TryGetProperty("residual", out var flag) && flag.GetString() == "true");
        var (_, loaded) = Load(bytes);
        Assert.Equal(residual, loaded.Residual);
        Assert.DoesNotContain("residual", loaded.Extra.Keys);
    }

    [Fact]
    public void WrittenFileFollowsTheSafetensorsLayout()
    {
        var parameters = LstmParameters.InitializeUniform(SmallConfig, seed: 3);
        byte[] bytes = Save(parameters, FullMetadata());

        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8);                                       // padded like safetensors.torch
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.All(header[(header.LastIndexOf('}') + 1)..], c => Assert.Equal(' ', c));
        using var json = JsonDocument.Parse(header);
        var root = json.RootElement;
        Assert.Equal("4", root.GetProperty("__metadata__").GetProperty("hidden_size").GetString());
        Assert.Equal("[\"temperature\",\"value\"]", root.GetProperty("__metadata__").GetProperty("feature_names").GetString());

        // Every tensor's bytes, located only through the header, hold the parameters the accessors expose.
        long dataStart = 8 + (long)n;
        long total = 0;
        void Check(string name, ReadOnlySpan<float> expected, params int[] shape)
        {
            var entry = root.GetProperty(name);
            Assert.Equal("F32", entry.GetProperty("dtype").GetString());
            Assert.Equal(shape, entry.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
            long begin = entry.GetProperty("data_offsets")[0].GetInt64(), end = entry.GetProperty("data_offsets")[1].GetInt64();
            Assert.Equal(expected.Length * 4L, end - begin);
            for (int i = 0; i < expected.Length; i++)
                Assert.Equal(expected[i], BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan((int)(dataStart + begin + 4 * i))));
            total += end - begin;
        }
        for (int l = 0; l < 2; l++)
        {
            Check($"lstm.weight_ih_l{l}", parameters.WeightIh(l), 16, l == 0 ? 3 : 4);
            Check($"lstm.weight_hh_l{l}", parameters.WeightHh(l), 16, 4);
            Check($"lstm.bias_ih_l{l}", parameters.BiasIh(l), 16);
            Check($"lstm.bias_hh_l{l}", parameters.BiasHh(l), 16);
        }
        Check("head.weight", parameters.HeadWeight, 3, 4);
        Check("head.bias", parameters.HeadBias, 3);
        Assert.Equal(bytes.Length - dataStart, total);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LoadsAFileWrittenLikeSafetensorsTorchWithoutOurMetadata(bool withTorchMetadata)
    {
        var tensors = SafetensorsWriter.StateDict(d: 3, h: 4, l: 2, k: 3);
        byte[] bytes = SafetensorsWriter.Build(tensors, withTorchMetadata ? new Dictionary<string, string> { ["format"] = "pt", ["epoch"] = "3" } : null);

        var (parameters, metadata) = Load(bytes);

        Assert.Equal(new LstmConfig(3, 4, 2, 3), parameters.Config);
        float[] Expected(string name) => SafetensorsWriter.Floats(tensors.Single(t => t.Name == name));
        for (int l = 0; l < 2; l++)
        {
            Assert.Equal(Expected($"lstm.weight_ih_l{l}"), parameters.WeightIh(l).ToArray());
            Assert.Equal(Expected($"lstm.weight_hh_l{l}"), parameters.WeightHh(l).ToArray());
            Assert.Equal(Expected($"lstm.bias_ih_l{l}"), parameters.BiasIh(l).ToArray());
            Assert.Equal(Expected($"lstm.bias_hh_l{l}"), parameters.BiasHh(l).ToArray());
        }
        Assert.Equal(Expected("head.weight"), parameters.HeadWeight.ToArray());
        Assert.Equal(Expected("head.bias"), parameters.HeadBias.ToArray());
        Assert.Equal(0, metadata.TargetColumn);
        Assert.Empty(metadata.FeatureNames);
        Assert.Null(metadata.Normalization);
        Assert.Equal(withTorchMetadata ? ["epoch"] : Array.Empty<string>(), metadata.Extra.Keys);
    }

    [Fact]
    public void LoadsAnUnpaddedHeaderAndTensorsInAnyOrder()
    {
        var tensors = SafetensorsWriter.StateDict(d: 2, h: 1, l: 1, k: 2);
        tensors.Reverse();
        // No padding: a header of odd length (a writer other than safetensors.torch) is still valid.
        byte[] bytes = SafetensorsWriter.Build(tensors, sortByName: false, pad: false, editHeader: h => h + (h.Length % 2 == 0 ? " " : ""));
        Assert.NotEqual(0UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes) % 2);
        var (parameters, _) = Load(bytes);
        Assert.Equal(SafetensorsWriter.Floats(tensors.Single(t => t.Name == "head.bias")), parameters.HeadBias.ToArray());
    }

    [Fact]
    public void EveryTruncationIsRejectedAsTruncated()
    {
        byte[] bytes = Save(LstmParameters.InitializeUniform(new LstmConfig(1, 1, 1, 1), seed: 5), FullMetadataFor1());
        for (int length = 0; length < bytes.Length; length++)
            Rejects(bytes[..length], "truncated");
        Assert.NotNull(Load(bytes));
    }

    private static ModelMetadata FullMetadataFor1() => new() { ModelName = "tiny", FeatureNames = ["value"] };

    [Fact]
    public void TrailingBytesAreRejected()
    {
        byte[] bytes = Save(LstmParameters.InitializeUniform(new LstmConfig(1, 1, 1, 1), seed: 5));
        Rejects([.. bytes, 0], "unexpected bytes after");
    }

    [Theory]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 40)]
    [InlineData(16UL * 1024 * 1024 + 1)]
    public void HugeHeaderLengthIsRejectedBeforeAllocating(ulong length)
    {
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, length);
        Rejects(bytes, "exceeds the limit");
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(1UL)]
    public void TinyHeaderLengthIsRejected(ulong length)
    {
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, length);
        Rejects(bytes, "too small");
    }

    private static byte[] Edited(Func<string, string> editHeader) =>
        SafetensorsWriter.Build(SafetensorsWriter.StateDict(2, 2, 1, 1), editHeader: editHeader);

    [Fact]
    public void BadJsonIsRejected()
    {
        Rejects(Edited(h => h[..^1]), "not valid JSON");
        Rejects(Edited(h => h.Replace("\"dtype\"", "dtype")), "not valid JSON");
        Rejects(Edited(_ => "[1,2,3]"), "must be a JSON object");
    }

    [Fact]
    public void InvalidUtf8IsRejected()
    {
        byte[] bytes = Edited(h => h.Replace("head.bias", "head.bia#"));
        int at = Array.IndexOf(bytes, (byte)'#');
        bytes[at] = 0xC3;   // a lead byte with no continuation
        Rejects(bytes, "not valid JSON");
    }

    [Theory]
    [InlineData("F16")]
    [InlineData("BF16")]
    [InlineData("F64")]
    [InlineData("I64")]
    public void OtherDtypesAreRejected(string dtype)
    {
        var tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        tensors[1] = tensors[1] with { DType = dtype };
        Rejects(SafetensorsWriter.Build(tensors), $"has dtype {dtype}; only F32 is supported");
    }

    [Fact]
    public void WrongShapeIsRejected()
    {
        var tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        // weight_hh_l0 should be [8, 2]; same byte count as [4, 4], so only the shape check can see it.
        int i = tensors.FindIndex(t => t.Name == "lstm.weight_hh_l0");
        tensors[i] = tensors[i] with { Shape = [4, 4] };
        Rejects(SafetensorsWriter.Build(tensors), "Tensor 'lstm.weight_hh_l0' has shape [4, 4], expected [8, 2]");

        tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        i = tensors.FindIndex(t => t.Name == "head.weight");
        tensors[i] = tensors[i] with { Shape = [1, 3], Data = new byte[12] };
        Rejects(SafetensorsWriter.Build(tensors), "Tensor 'head.weight' has shape [1, 3], expected [1, 2]");
    }

    [Fact]
    public void GateRowsNotDivisibleByFourAreRejected()
    {
        var tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        int i = tensors.FindIndex(t => t.Name == "lstm.weight_ih_l0");
        tensors[i] = tensors[i] with { Shape = [7, 2], Data = new byte[56] };
        Rejects(SafetensorsWriter.Build(tensors), "4 x hidden size");
    }

    [Fact]
    public void ShapeSizeMismatchWithOffsetsIsRejected()
    {
        var tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        int i = tensors.FindIndex(t => t.Name == "head.bias");
        tensors[i] = tensors[i] with { Data = new byte[8] };
        Rejects(SafetensorsWriter.Build(tensors), "needs 4");
    }

    [Fact]
    public void OverlappingOffsetsAreRejected()
    {
        // head.bias (first by name, 4 bytes) claims [0, 4) and head.weight also starts at 0.
        byte[] bytes = SafetensorsWriter.Build(SafetensorsWriter.StateDict(2, 2, 1, 1),
            editOffsets: (t, b, e) => t.Name == "head.weight" ? (b - 4, e - 4) : (b, e));
        Rejects(bytes, "overlap");
    }

    [Fact]
    public void OffsetsPastTheEndAreRejected()
    {
        // The last tensor (by name) is moved 4 bytes further: a gap, and an end past the buffer.
        var tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        string last = tensors.Select(t => t.Name).Order(StringComparer.Ordinal).Last();
        byte[] bytes = SafetensorsWriter.Build(tensors, editOffsets: (t, b, e) => t.Name == last ? (b + 4, e + 4) : (b, e));
        Rejects(bytes, "gap");
        // A huge end is caught as a size mismatch without reading anything.
        bytes = SafetensorsWriter.Build(tensors, editOffsets: (t, b, e) => t.Name == last ? (b, long.MaxValue) : (b, e));
        Rejects(bytes, "data_offsets");
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void NonFiniteWeightIsRejected(float bad)
    {
        var tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        int i = tensors.FindIndex(t => t.Name == "lstm.weight_hh_l0");
        var values = SafetensorsWriter.Floats(tensors[i]);
        values[5] = bad;
        tensors[i] = RawTensor.F32(tensors[i].Name, tensors[i].Shape, values);
        Rejects(SafetensorsWriter.Build(tensors), "Tensor 'lstm.weight_hh_l0' holds a non-finite value");
    }

    [Theory]
    [InlineData("head.bias", "Missing tensor: head.bias.")]
    [InlineData("lstm.bias_hh_l1", "Missing tensor: lstm.bias_hh_l1.")]
    [InlineData("lstm.weight_ih_l0", "Missing tensor: lstm.weight_ih_l0.")]
    public void MissingTensorIsRejected(string missing, string message)
    {
        var tensors = SafetensorsWriter.StateDict(2, 2, 2, 1).Where(t => t.Name != missing);
        Rejects(SafetensorsWriter.Build(tensors), message);
    }

    [Theory]
    [InlineData("lstm.weight_ih_l0_reverse", "Bidirectional")]
    [InlineData("lstm.weight_hr_l0", "proj_size")]
    [InlineData("encoder.weight", "Unknown tensor 'encoder.weight'")]
    [InlineData("lstm.weight_ih_l01", "Unknown tensor")]
    [InlineData("lstm.weight_ih_l16", "Unknown tensor")]
    public void UnknownTensorIsRejected(string name, string message)
    {
        var tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        tensors.Add(RawTensor.F32(name, [1], [1f]));
        Rejects(SafetensorsWriter.Build(tensors), message);
    }

    [Fact]
    public void TensorOfALayerBeyondTheOthersIsReportedAsMissingLayers()
    {
        var tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        tensors.Add(RawTensor.F32("lstm.bias_ih_l2", [8], new float[8]));
        Rejects(SafetensorsWriter.Build(tensors), "Missing tensors: lstm.weight_ih_l1");
    }

    [Fact]
    public void DuplicateTensorIsRejected()
    {
        Rejects(Edited(h => h.Replace("{\"head.bias\":", "{\"head.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"head.bias\":")), "twice");
    }

    [Fact]
    public void MetadataThatContradictsTheTensorsIsRejected()
    {
        var tensors = SafetensorsWriter.StateDict(2, 2, 1, 1);
        var metadata = new Dictionary<string, string> { ["input_size"] = "2", ["hidden_size"] = "5", ["num_layers"] = "1", ["horizons"] = "1" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "Metadata says hidden_size = 5 but the tensors say 2");

        metadata = new Dictionary<string, string> { ["input_size"] = "2" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "missing hidden_size, num_layers, horizons");

        metadata = new Dictionary<string, string> { ["target_column"] = "2" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "Target column 2 is out of range");

        metadata = new Dictionary<string, string> { ["target_column"] = "-1" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "must be a non-negative integer");

        metadata = new Dictionary<string, string> { ["feature_names"] = "[\"a\",\"b\",\"c\"]" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "2 raw feature inputs");

        metadata = new Dictionary<string, string> { ["feature_names"] = "a,b" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "must be a JSON array of strings");

        metadata = new Dictionary<string, string> { ["calendar_features"] = "[\"moon_phase\"]" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "Unknown calendar feature 'moon_phase'");

        metadata = new Dictionary<string, string> { ["normalization"] = "standard", ["normalization_mean"] = "[0,0]", ["normalization_std"] = "[1,0]" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "must be finite and positive");

        metadata = new Dictionary<string, string> { ["normalization"] = "minmax" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "Unknown normalisation 'minmax'");

        metadata = new Dictionary<string, string> { ["format_version"] = "3" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "format version 3 is not supported");

        metadata = new Dictionary<string, string> { ["residual"] = "yes" };
        Rejects(SafetensorsWriter.Build(tensors, metadata), "Metadata 'residual' must be \"true\" or \"false\", got 'yes'");

        Rejects(Edited(h => h.Replace("{\"head.bias\"", "{\"__metadata__\":{\"n\":3},\"head.bias\"")), "must be a string");
    }

    [Fact]
    public void OversizedModelIsRejectedBeforeAllocating()
    {
        Rejects(Save(LstmParameters.InitializeUniform(SmallConfig, 1)), "over the limit", new ModelFileLimits { MaxDataBytes = 100 });
        // A header claiming a 4096 x 4096 x 16-layer model in a tiny file never allocates the parameters.
        var claims = new List<RawTensor>();
        for (int l = 0; l < 16; l++)
        {
            claims.Add(new RawTensor($"lstm.weight_ih_l{l}", "F32", [16384, 4096], []));
            claims.Add(new RawTensor($"lstm.weight_hh_l{l}", "F32", [16384, 4096], []));
            claims.Add(new RawTensor($"lstm.bias_ih_l{l}", "F32", [16384], []));
            claims.Add(new RawTensor($"lstm.bias_hh_l{l}", "F32", [16384], []));
        }
        claims.Add(new RawTensor("head.weight", "F32", [1, 4096], []));
        claims.Add(new RawTensor("head.bias", "F32", [1], []));
        Rejects(SafetensorsWriter.Build(claims), "needs");
        // The same claim with self-consistent offsets hits the data size limit instead.
        long next = 0;
        byte[] consistent = SafetensorsWriter.Build(claims, editOffsets: (t, _, _) =>
        {
            long begin = next;
            next += 4 * t.Shape.Aggregate(1L, (a, b) => a * b);
            return (begin, next);
        });
        Rejects(consistent, "over the limit of 536870912 bytes");
    }

    [Fact]
    public void DimensionsBeyondTheEngineLimitAreRejected()
    {
        var tensors = new List<RawTensor>
        {
            new("lstm.weight_ih_l0", "F32", [4, 5000], []),
            new("lstm.weight_hh_l0", "F32", [4, 1], []),
            new("lstm.bias_ih_l0", "F32", [4], []),
            new("lstm.bias_hh_l0", "F32", [4], []),
            new("head.weight", "F32", [1, 1], []),
            new("head.bias", "F32", [1], []),
        };
        Rejects(SafetensorsWriter.Build(tensors), "input size 5000");
    }

    [Fact]
    public void SaveRefusesNonFiniteParametersAndMismatchedMetadata()
    {
        var parameters = LstmParameters.InitializeUniform(SmallConfig, 1);
        Assert.Throws<ArgumentException>(() => Save(parameters, new ModelMetadata { FeatureNames = ["only-one"] }));
        Assert.Throws<ArgumentException>(() => Save(parameters, new ModelMetadata { Extra = new Dictionary<string, string> { ["hidden_size"] = "9" } }));
        parameters.Data[0] = float.NaN;
        Assert.Throws<ArgumentException>(() => Save(parameters));
    }

    [Fact]
    public void MissingFileIsAModelFileException()
    {
        var error = Assert.Throws<ModelFileException>(() => ModelFile.Load(Path.Combine(Path.GetTempPath(), Guid.NewGuid() + ".safetensors")));
        Assert.Contains("does not exist", error.Message);
    }

    /// <summary>A read-only stream that cannot seek, like a pipe.</summary>
    internal sealed class UnseekableStream(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        // Hand out at most 7 bytes per call so every short-read path is exercised.
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 7));
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
