using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace LstmOrleans.Lstm.Tests.Serialization;

/// <summary>One tensor for <see cref="SafetensorsWriter"/>: raw little-endian bytes plus what the header says about them.</summary>
internal sealed record RawTensor(string Name, string DType, long[] Shape, byte[] Data)
{
    public static RawTensor F32(string name, long[] shape, float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return new RawTensor(name, "F32", shape, bytes);
    }
}

/// <summary>
/// Builds safetensors files straight from the format description, independently of ModelFile, the way the
/// Rust writer behind safetensors.torch.save_file does: compact JSON with "__metadata__" first, tensors
/// sorted by name (all F32, so the dtype-alignment key ties), data in that order, header padded with
/// spaces to a multiple of 8, u64 little-endian header length in front.
/// </summary>
internal static class SafetensorsWriter
{
    public static byte[] Build(IEnumerable<RawTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        Func<string, string>? editHeader = null, Func<RawTensor, long, long, (long Begin, long End)>? editOffsets = null,
        bool sortByName = true, bool pad = true)
    {
        var list = sortByName ? tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList() : tensors.ToList();
        var json = new StringBuilder("{");
        if (metadata is not null)
        {
            json.Append("\"__metadata__\":{");
            json.Append(string.Join(",", metadata.Select(kv => $"{JsonSerializer.Serialize(kv.Key)}:{JsonSerializer.Serialize(kv.Value)}")));
            json.Append("},");
        }
        long offset = 0;
        var parts = new List<string>();
        foreach (var t in list)
        {
            long begin = offset, end = offset + t.Data.Length;
            offset = end;
            if (editOffsets is not null) (begin, end) = editOffsets(t, begin, end);
            parts.Add($"\"{t.Name}\":{{\"dtype\":\"{t.DType}\",\"shape\":[{string.Join(",", t.Shape)}],\"data_offsets\":[{begin},{end}]}}");
        }
        json.Append(string.Join(",", parts));
        json.Append('}');
        string headerText = json.ToString();
        if (editHeader is not null) headerText = editHeader(headerText);
        byte[] header = Encoding.UTF8.GetBytes(headerText);
        int padding = pad ? (8 - header.Length % 8) % 8 : 0;

        var file = new MemoryStream();
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)(header.Length + padding));
        file.Write(prefix);
        file.Write(header);
        for (int i = 0; i < padding; i++) file.WriteByte((byte)' ');
        foreach (var t in list) file.Write(t.Data);
        return file.ToArray();
    }

    /// <summary>
    /// The tensors of a PyTorch state_dict for nn.LSTM(D, H, L) named "lstm" plus nn.Linear(H, K) named "head";
    /// every value distinct (tensor index * 1000 + element * 0.25) so misplaced data is caught.
    /// </summary>
    public static List<RawTensor> StateDict(int d, int h, int l, int k)
    {
        var tensors = new List<RawTensor>();
        int index = 0;
        RawTensor Make(string name, params long[] shape)
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            int t = index++;
            var values = new float[count];
            for (int i = 0; i < count; i++) values[i] = t * 1000 + i * 0.25f;
            return RawTensor.F32(name, shape, values);
        }
        for (int layer = 0; layer < l; layer++)
        {
            tensors.Add(Make($"lstm.weight_ih_l{layer}", 4 * h, layer == 0 ? d : h));
            tensors.Add(Make($"lstm.weight_hh_l{layer}", 4 * h, h));
            tensors.Add(Make($"lstm.bias_ih_l{layer}", 4 * h));
            tensors.Add(Make($"lstm.bias_hh_l{layer}", 4 * h));
        }
        tensors.Add(Make("head.weight", k, h));
        tensors.Add(Make("head.bias", k));
        return tensors;
    }

    public static float[] Floats(RawTensor tensor)
    {
        var values = new float[tensor.Data.Length / 4];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(tensor.Data.AsSpan(i * 4));
        return values;
    }
}
