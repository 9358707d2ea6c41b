using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace LstmOrleans.Lstm.Serialization;

/// <summary>Size limits applied while reading a model file, so a hostile file cannot make the reader allocate without bound.</summary>
public sealed record ModelFileLimits
{
    public static ModelFileLimits Default { get; } = new();

    /// <summary>Largest accepted JSON header, in bytes.</summary>
    public int MaxHeaderBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>Largest accepted tensor data buffer, in bytes (the parameters are allocated only after this check).</summary>
    public long MaxDataBytes { get; init; } = 512L * 1024 * 1024;
}

/// <summary>A loaded model: its parameters (shape in <see cref="LstmParameters.Config"/>) and its metadata.</summary>
public sealed record ModelFileContents(LstmParameters Parameters, ModelMetadata Metadata);

/// <summary>
/// Reads and writes models as safetensors files, the format of PyTorch / Hugging Face
/// (safetensors.torch.save_file / load_file):
///   [8 bytes]  N, little-endian u64
///   [N bytes]  UTF-8 JSON object: tensor name -> {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
///              plus optional "__metadata__": {string: string}; padded with spaces to a multiple of 8 on write
///   [rest]     tensor data, little-endian, offsets relative to the start of this buffer, tiling it exactly
/// Tensor names are those of a PyTorch module with an nn.LSTM called <c>lstm</c> and an nn.Linear called
/// <c>head</c>, so <c>model.load_state_dict(load_file(path))</c> works unchanged.
/// </summary>
public static class ModelFile
{
    public const string MetadataEntry = "__metadata__";
    public const string HeadWeightName = "head.weight";
    public const string HeadBiasName = "head.bias";

    private const string F32 = "F32";
    private const int HeaderAlignment = 8;

    public static string WeightIhName(int layer) => $"lstm.weight_ih_l{layer}";
    public static string WeightHhName(int layer) => $"lstm.weight_hh_l{layer}";
    public static string BiasIhName(int layer) => $"lstm.bias_ih_l{layer}";
    public static string BiasHhName(int layer) => $"lstm.bias_hh_l{layer}";

    // ---------------------------------------------------------------- writing

    /// <summary>
    /// Writes the model to <paramref name="path"/> atomically (temporary file, then rename): a failure or a cancellation
    /// through <paramref name="cancellationToken"/> leaves whatever was at <paramref name="path"/> as it was, and no temporary file.
    /// </summary>
    public static void Save(string path, LstmParameters parameters, ModelMetadata? metadata = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        string temp = full + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                Save(stream, parameters, metadata, cancellationToken);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>
    /// Writes the model to <paramref name="stream"/>. Throws <see cref="ArgumentException"/> for non-finite parameters or metadata
    /// that does not fit, and <see cref="OperationCanceledException"/> (between chunks of the tensor data) when <paramref name="cancellationToken"/> fires.
    /// </summary>
    public static void Save(Stream stream, LstmParameters parameters, ModelMetadata? metadata = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(parameters);
        metadata ??= ModelMetadata.Empty;
        var config = parameters.Config;
        if (!parameters.AllFinite())
            throw new ArgumentException("Refusing to save a model whose parameters contain NaN or infinity.", nameof(parameters));
        if (metadata.Check(config) is { } problem)
            throw new ArgumentException($"Metadata does not fit the model: {problem}", nameof(metadata));

        var tensors = Layout(config);
        byte[] header = BuildHeader(config, metadata, tensors);

        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
        stream.Write(prefix);
        stream.Write(header);
        foreach (var tensor in tensors)
            WriteFloats(stream, tensor.Slice(parameters), cancellationToken);
    }

    /// <summary>
    /// Floats per read or write of tensor data between two looks at the cancellation token: 1 MiB, so a model near the
    /// 512 MiB limit stops within a few milliseconds of a cancellation instead of after its whole data.
    /// </summary>
    private const int ChunkFloats = 1 << 18;

    private static byte[] BuildHeader(LstmConfig config, ModelMetadata metadata, List<TensorSlot> tensors)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteStartObject(MetadataEntry);
            foreach (var (key, value) in ModelMetadataCodec.Encode(config, metadata))
                json.WriteString(key, value);
            json.WriteEndObject();
            long offset = 0;
            foreach (var tensor in tensors)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", F32);
                json.WriteStartArray("shape");
                foreach (int dim in tensor.Shape) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += tensor.ByteLength;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // safetensors.torch pads the header with spaces so the data starts 8-byte aligned.
        int padded = (buffer.WrittenCount + HeaderAlignment - 1) / HeaderAlignment * HeaderAlignment;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void WriteFloats(Stream stream, ReadOnlySpan<float> values, CancellationToken cancellationToken)
    {
        if (BitConverter.IsLittleEndian)
        {
            for (int start = 0; start < values.Length; start += ChunkFloats)
            {
                cancellationToken.ThrowIfCancellationRequested();
                stream.Write(MemoryMarshal.AsBytes(values.Slice(start, Math.Min(ChunkFloats, values.Length - start))));
            }
            return;
        }
        cancellationToken.ThrowIfCancellationRequested();
        Span<byte> four = stackalloc byte[4];
        foreach (float v in values)
        {
            BinaryPrimitives.WriteSingleLittleEndian(four, v);
            stream.Write(four);
        }
    }

    // ---------------------------------------------------------------- reading

    /// <summary>
    /// Reads a model file. Throws <see cref="ModelFileException"/> saying what is wrong when it cannot, and
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires while it reads.
    /// </summary>
    public static ModelFileContents Load(string path, ModelFileLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelFileException($"Model file '{path}' does not exist.", e);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new ModelFileException($"Model file '{path}' cannot be opened: {e.Message}", e);
        }
        using (stream)
        {
            return Load(stream, limits, cancellationToken);
        }
    }

    /// <summary>
    /// Reads a model from <paramref name="stream"/> (seekable or not). Throws <see cref="ModelFileException"/> saying what is
    /// wrong when it cannot, and <see cref="OperationCanceledException"/> (between chunks of the tensor data) when
    /// <paramref name="cancellationToken"/> fires.
    /// </summary>
    public static ModelFileContents Load(Stream stream, ModelFileLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        limits ??= ModelFileLimits.Default;

        // Header length.
        Span<byte> prefix = stackalloc byte[8];
        int got = stream.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false);
        if (got < prefix.Length)
            throw new ModelFileException($"File is truncated: {got} bytes, but a safetensors file starts with an 8-byte header length.");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength < 2)
            throw new ModelFileException($"Header length {headerLength} is too small to hold a JSON object.");
        if (headerLength > (ulong)limits.MaxHeaderBytes)
            throw new ModelFileException($"Header length {headerLength} bytes exceeds the limit of {limits.MaxHeaderBytes} bytes.");
        long? remaining = stream.CanSeek ? stream.Length - stream.Position : null;
        if (remaining < (long)headerLength)
            throw new ModelFileException($"File is truncated: the header length says {headerLength} bytes but only {remaining} bytes follow.");

        // Header JSON.
        var headerBytes = new byte[headerLength];
        got = stream.ReadAtLeast(headerBytes, headerBytes.Length, throwOnEndOfStream: false);
        if (got < headerBytes.Length)
            throw new ModelFileException($"File is truncated: the header length says {headerLength} bytes but only {got} bytes follow.");
        var header = ParseHeader(headerBytes);

        // Shape from the tensors, then metadata checked against it.
        var config = InferConfig(header.Tensors);
        var slots = Layout(config);
        CheckTensors(header.Tensors, slots, config);
        var metadata = ModelMetadataCodec.Decode(header.Metadata, config);

        long dataBytes = slots.Sum(s => s.ByteLength);
        if (dataBytes > limits.MaxDataBytes)
            throw new ModelFileException($"Tensor data is {dataBytes} bytes, over the limit of {limits.MaxDataBytes} bytes.");
        var ordered = CheckOffsets(header.Tensors, dataBytes);
        if (remaining is long r)
        {
            long afterHeader = r - (long)headerLength;
            if (afterHeader < dataBytes)
                throw new ModelFileException($"File is truncated: the header describes {dataBytes} bytes of tensor data but only {afterHeader} bytes follow it.");
            if (afterHeader > dataBytes)
                throw new ModelFileException($"File has {afterHeader - dataBytes} unexpected bytes after the {dataBytes} bytes of tensor data.");
        }

        // Data, read straight into the parameter buffer in file order.
        LstmParameters parameters;
        try
        {
            parameters = new LstmParameters(config);
        }
        catch (ArgumentException e)
        {
            throw new ModelFileException($"Model cannot be loaded: {e.Message}", e);
        }
        var slotByName = slots.ToDictionary(s => s.Name, StringComparer.Ordinal);
        foreach (var entry in ordered)
        {
            var slot = slotByName[entry.Name];
            Span<float> target = slot.Slice(parameters);
            Span<byte> bytes = MemoryMarshal.AsBytes(target);
            long read = 0;
            while (read < bytes.Length)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var chunk = bytes.Slice((int)read, (int)Math.Min((long)ChunkFloats * sizeof(float), bytes.Length - read));
                got = stream.ReadAtLeast(chunk, chunk.Length, throwOnEndOfStream: false);
                read += got;
                if (got < chunk.Length)
                    throw new ModelFileException(
                        $"File is truncated: tensor '{entry.Name}' needs tensor data up to byte {entry.End} but the file ends at byte {entry.Begin + read}.");
            }
            if (!BitConverter.IsLittleEndian)
                for (int i = 0; i < target.Length; i++)
                    target[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i * 4, 4));
        }
        if (remaining is null && stream.ReadByte() >= 0)
            throw new ModelFileException($"File has unexpected bytes after the {dataBytes} bytes of tensor data.");

        foreach (var slot in slots)
        {
            ReadOnlySpan<float> values = slot.Slice(parameters);
            for (int i = 0; i < values.Length; i++)
                if (!float.IsFinite(values[i]))
                    throw new ModelFileException($"Tensor '{slot.Name}' holds a non-finite value ({values[i]}) at flat index {i}.");
        }
        return new ModelFileContents(parameters, metadata);
    }

    private sealed record TensorEntry(string Name, string DType, long[] Shape, long Begin, long End);

    private sealed record Header(Dictionary<string, TensorEntry> Tensors, Dictionary<string, string> Metadata);

    private static Header ParseHeader(byte[] headerBytes)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new ModelFileException($"Header is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            try
            {
                return ReadHeader(document.RootElement);
            }
            catch (InvalidOperationException e)
            {
                // Names and strings are transcoded lazily; invalid UTF-8 inside them surfaces here.
                throw new ModelFileException($"Header is not valid JSON: {e.Message}", e);
            }
        }
    }

    private static Header ReadHeader(JsonElement root)
    {
        {
            if (root.ValueKind != JsonValueKind.Object)
                throw new ModelFileException($"Header must be a JSON object, got {root.ValueKind}.");
            var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            Dictionary<string, string>? metadata = null;
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name == MetadataEntry)
                {
                    if (metadata is not null)
                        throw new ModelFileException($"Header has '{MetadataEntry}' twice.");
                    metadata = ParseMetadata(property.Value);
                    continue;
                }
                CheckTensorName(property.Name);
                if (tensors.ContainsKey(property.Name))
                    throw new ModelFileException($"Header lists tensor '{property.Name}' twice.");
                tensors.Add(property.Name, ParseTensorEntry(property.Name, property.Value));
            }
            return new Header(tensors, metadata ?? new Dictionary<string, string>(StringComparer.Ordinal));
        }
    }

    private static Dictionary<string, string> ParseMetadata(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new ModelFileException($"'{MetadataEntry}' must be a JSON object of strings, got {element.ValueKind}.");
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new ModelFileException($"'{MetadataEntry}' value '{entry.Name}' must be a string, got {entry.Value.ValueKind}.");
            if (!map.TryAdd(entry.Name, entry.Value.GetString()!))
                throw new ModelFileException($"'{MetadataEntry}' has key '{entry.Name}' twice.");
        }
        return map;
    }

    private static TensorEntry ParseTensorEntry(string name, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new ModelFileException($"Tensor '{name}' must be described by a JSON object, got {element.ValueKind}.");
        string? dtype = null;
        long[]? shape = null;
        long[]? offsets = null;
        foreach (var field in element.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype" when dtype is null:
                    if (field.Value.ValueKind != JsonValueKind.String)
                        throw new ModelFileException($"Tensor '{name}': dtype must be a string.");
                    dtype = field.Value.GetString()!;
                    break;
                case "shape" when shape is null:
                    shape = ParseNonNegativeArray(name, "shape", field.Value);
                    break;
                case "data_offsets" when offsets is null:
                    offsets = ParseNonNegativeArray(name, "data_offsets", field.Value);
                    break;
                default:
                    throw new ModelFileException($"Tensor '{name}' has an unexpected or repeated field '{field.Name}'.");
            }
        }
        if (dtype is null || shape is null || offsets is null)
            throw new ModelFileException($"Tensor '{name}' needs 'dtype', 'shape' and 'data_offsets'.");
        if (dtype != F32)
            throw new ModelFileException(
                $"Tensor '{name}' has dtype {ModelMetadataCodec.Shorten(dtype)}; only F32 is supported (in PyTorch, convert with model.float() before saving).");
        if (offsets.Length != 2)
            throw new ModelFileException($"Tensor '{name}': data_offsets must be [begin, end], got {offsets.Length} numbers.");
        if (offsets[1] < offsets[0])
            throw new ModelFileException($"Tensor '{name}': data_offsets end {offsets[1]} is before begin {offsets[0]}.");
        return new TensorEntry(name, dtype, shape, offsets[0], offsets[1]);
    }

    private static long[] ParseNonNegativeArray(string name, string field, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array)
            throw new ModelFileException($"Tensor '{name}': {field} must be an array of non-negative integers.");
        int length = element.GetArrayLength();
        if (length > 8)
            throw new ModelFileException($"Tensor '{name}': {field} has {length} entries; too many.");
        var values = new long[length];
        int i = 0;
        foreach (var item in element.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long value) || value < 0)
                throw new ModelFileException($"Tensor '{name}': {field} must be an array of non-negative integers, got {item.GetRawText()}.");
            values[i++] = value;
        }
        return values;
    }

    /// <summary>Rejects names that are not lstm.{weight,bias}_{ih,hh}_l{k} or head.{weight,bias}, with a hint for common PyTorch variants.</summary>
    private static void CheckTensorName(string name)
    {
        if (name is HeadWeightName or HeadBiasName) return;
        if (TryParseLayerTensor(name, out _, out _)) return;
        string hint =
            name.EndsWith("_reverse", StringComparison.Ordinal) ? " Bidirectional LSTMs are not supported." :
            name.StartsWith("lstm.weight_hr_", StringComparison.Ordinal) ? " LSTMs with proj_size are not supported." :
            "";
        throw new ModelFileException(
            $"Unknown tensor '{ModelMetadataCodec.Shorten(name)}'. A model file holds only lstm.weight_ih_l{{k}}, lstm.weight_hh_l{{k}}, " +
            $"lstm.bias_ih_l{{k}}, lstm.bias_hh_l{{k}}, {HeadWeightName} and {HeadBiasName}.{hint}");
    }

    private static readonly string[] LayerKinds = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"];

    private static bool TryParseLayerTensor(string name, out int kind, out int layer)
    {
        kind = -1;
        layer = -1;
        const string prefix = "lstm.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return false;
        for (int k = 0; k < LayerKinds.Length; k++)
        {
            string head = prefix + LayerKinds[k] + "_l";
            if (!name.StartsWith(head, StringComparison.Ordinal)) continue;
            string digits = name[head.Length..];
            // Canonical decimal only (no sign, no leading zeros), as PyTorch writes it.
            if (digits.Length is < 1 or > 2 || !digits.All(char.IsAsciiDigit) || (digits.Length > 1 && digits[0] == '0')) return false;
            layer = int.Parse(digits, System.Globalization.CultureInfo.InvariantCulture);
            if (layer >= LstmConfig.MaxLayers) return false;
            kind = k;
            return true;
        }
        return false;
    }

    private static LstmConfig InferConfig(Dictionary<string, TensorEntry> tensors)
    {
        int layers = 0;
        foreach (var name in tensors.Keys)
            if (TryParseLayerTensor(name, out _, out int layer))
                layers = Math.Max(layers, layer + 1);
        var missing = new List<string>();
        if (layers == 0) missing.Add(WeightIhName(0));
        for (int l = 0; l < Math.Max(layers, 1); l++)
            foreach (var n in new[] { WeightIhName(l), WeightHhName(l), BiasIhName(l), BiasHhName(l) })
                if (!tensors.ContainsKey(n) && !missing.Contains(n)) missing.Add(n);
        foreach (var n in new[] { HeadWeightName, HeadBiasName })
            if (!tensors.ContainsKey(n)) missing.Add(n);
        if (missing.Count > 0)
            throw new ModelFileException($"Missing tensor{(missing.Count > 1 ? "s" : "")}: {string.Join(", ", missing)}.");

        var weightIh0 = tensors[WeightIhName(0)].Shape;
        var headWeight = tensors[HeadWeightName].Shape;
        if (weightIh0.Length != 2)
            throw new ModelFileException($"Tensor '{WeightIhName(0)}' must have 2 dimensions [4H, D], got {FormatShape(weightIh0)}.");
        if (headWeight.Length != 2)
            throw new ModelFileException($"Tensor '{HeadWeightName}' must have 2 dimensions [K, H], got {FormatShape(headWeight)}.");
        if (weightIh0[0] % 4 != 0)
            throw new ModelFileException($"Tensor '{WeightIhName(0)}' has {weightIh0[0]} rows; an LSTM has 4 x hidden size gate rows.");
        long hidden = weightIh0[0] / 4, input = weightIh0[1], horizons = headWeight[0];
        if (hidden is < 1 or > LstmConfig.MaxDimension || input is < 1 or > LstmConfig.MaxDimension || horizons is < 1 or > LstmConfig.MaxDimension)
            throw new ModelFileException(
                $"Model shape out of range: input size {input}, hidden size {hidden}, horizons {horizons} (each must be 1..{LstmConfig.MaxDimension}).");
        return new LstmConfig((int)input, (int)hidden, layers, (int)horizons);
    }

    private static void CheckTensors(Dictionary<string, TensorEntry> tensors, List<TensorSlot> slots, LstmConfig config)
    {
        // The names were checked one by one; with every needed one present, equal counts mean no extras.
        if (tensors.Count != slots.Count)
        {
            var extra = tensors.Keys.Except(slots.Select(s => s.Name)).ToList();
            throw new ModelFileException(
                $"Unexpected tensor{(extra.Count > 1 ? "s" : "")} for a {config.Layers}-layer model: {string.Join(", ", extra)}.");
        }
        foreach (var slot in slots)
        {
            var entry = tensors[slot.Name];
            if (!entry.Shape.SequenceEqual(slot.Shape.Select(d => (long)d)))
                throw new ModelFileException(
                    $"Tensor '{slot.Name}' has shape {FormatShape(entry.Shape)}, expected {FormatShape(slot.Shape)} " +
                    $"(input size {config.InputSize}, hidden size {config.HiddenSize}, {config.Layers} layers, {config.Horizons} horizons).");
            if (entry.End - entry.Begin != slot.ByteLength)
                throw new ModelFileException(
                    $"Tensor '{slot.Name}' has data_offsets [{entry.Begin}, {entry.End}] spanning {entry.End - entry.Begin} bytes; shape {FormatShape(entry.Shape)} of F32 needs {slot.ByteLength}.");
        }
    }

    /// <summary>Tensors in file order; throws unless they tile [0, dataBytes) with no gap and no overlap.</summary>
    private static List<TensorEntry> CheckOffsets(Dictionary<string, TensorEntry> tensors, long dataBytes)
    {
        var ordered = tensors.Values.OrderBy(t => t.Begin).ThenBy(t => t.End).ToList();
        long expected = 0;
        foreach (var t in ordered)
        {
            if (t.Begin < expected)
                throw new ModelFileException($"Tensor '{t.Name}' data_offsets [{t.Begin}, {t.End}] overlap the previous tensor, which ends at {expected}.");
            if (t.Begin > expected)
                throw new ModelFileException($"Tensor data has a gap: bytes {expected} to {t.Begin} belong to no tensor (before '{t.Name}').");
            expected = t.End;
        }
        if (expected != dataBytes)
            throw new ModelFileException($"Tensor data_offsets end at {expected}, expected {dataBytes}.");
        return ordered;
    }

    private static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    private static string FormatShape(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>One named tensor of <see cref="LstmParameters"/>: its PyTorch name and shape, and how to find its span.</summary>
    private sealed record TensorSlot(string Name, int[] Shape, Func<LstmParameters, int, Span<float>> Accessor, int Layer)
    {
        public long ByteLength => 4L * Shape.Aggregate(1L, (a, b) => a * b);

        public Span<float> Slice(LstmParameters parameters) => Accessor(parameters, Layer);
    }

    /// <summary>Every tensor of a model of shape <paramref name="config"/>, in <see cref="LstmParameters"/> order.</summary>
    private static List<TensorSlot> Layout(LstmConfig config)
    {
        int gates = config.GateRows, hidden = config.HiddenSize;
        var slots = new List<TensorSlot>(4 * config.Layers + 2);
        for (int l = 0; l < config.Layers; l++)
        {
            slots.Add(new TensorSlot(WeightIhName(l), [gates, config.LayerInputSize(l)], static (p, layer) => p.WeightIh(layer), l));
            slots.Add(new TensorSlot(WeightHhName(l), [gates, hidden], static (p, layer) => p.WeightHh(layer), l));
            slots.Add(new TensorSlot(BiasIhName(l), [gates], static (p, layer) => p.BiasIh(layer), l));
            slots.Add(new TensorSlot(BiasHhName(l), [gates], static (p, layer) => p.BiasHh(layer), l));
        }
        slots.Add(new TensorSlot(HeadWeightName, [config.Horizons, hidden], static (p, _) => p.HeadWeight, 0));
        slots.Add(new TensorSlot(HeadBiasName, [config.Horizons], static (p, _) => p.HeadBias, 0));
        return slots;
    }
}
