using System.Runtime.CompilerServices;

namespace LstmOrleans.Lstm;

/// <summary>
/// One layer's gate weights and summed biases, packed for <see cref="FusedLstmCell"/>. Hidden units are cut into
/// blocks of 16 (one Vector512 of floats); a block's panel holds, for every input p of the concatenation
/// [h_{t-1} (H values), x_t (D values)], the 64 gate columns i, f, g, o of its 16 units side by side, so the
/// kernel reads a panel front to back with aligned 64-float rows and ends with all four gates of 16 units in
/// registers, ready for the cell update. Units past H in the last block have zero weights and bias (ignored).
/// </summary>
internal sealed unsafe class PackedGateWeights
{
    /// <summary>Cache-line size: the packed arrays start on this boundary so no 64-byte vector load straddles two lines.</summary>
    private const int Alignment = 64;

    /// <summary>Hidden units per block: the floats in one Vector512.</summary>
    public const int Lanes = 16;

    /// <summary>Gate columns per block row: i, f, g, o for <see cref="Lanes"/> units.</summary>
    public const int BlockWidth = 4 * Lanes;

    public PackedGateWeights(int hidden, int inputSize)
    {
        Hidden = hidden;
        InputSize = inputSize;
        Blocks = (hidden + Lanes - 1) / Lanes;
        WeightCount = Blocks * Depth * BlockWidth;
        BiasCount = Blocks * BlockWidth;
        // One pinned (never moved, so raw pointers stay valid while this object lives) and zeroed array, used from the
        // first 64-byte boundary: a float[]'s data otherwise starts 16 bytes into a line (measured 48 mod 64 here), and
        // every unaligned 64-byte load then touches two cache lines, which cost the lone-stream step about a fifth.
        _storage = GC.AllocateArray<float>(WeightCount + BiasCount + Alignment / sizeof(float), pinned: true);
        float* start = (float*)Unsafe.AsPointer(ref _storage[0]);
        start += ((Alignment - (nint)start % Alignment) % Alignment) / sizeof(float);
        WeightsPointer = start;
        BiasPointer = start + WeightCount;   // WeightCount is a multiple of 64 floats, so this is aligned too
    }

    private readonly float[] _storage;   // pinned backing store of both arrays below

    public int Hidden { get; }
    public int InputSize { get; }

    /// <summary>Inputs per gate: H recurrent values then D_l layer inputs.</summary>
    public int Depth => Hidden + InputSize;

    /// <summary>Number of 16-unit blocks, ⌈H / 16⌉.</summary>
    public int Blocks { get; }

    /// <summary>
    /// Counts single-stream passes; its parity picks which half of the inputs <see cref="FusedLstmCell"/> reads first.
    /// Only the memory access order depends on it, never a result, so unsynchronised updates from several threads are harmless.
    /// </summary>
    internal int Sweep;

    public int WeightCount { get; }
    public int BiasCount { get; }
    public float* WeightsPointer { get; }   // [Blocks, H + D_l, 64]  rows p = 0..H-1 from weight_hh, then weight_ih; columns gate*16 + lane
    public float* BiasPointer { get; }      // [Blocks, 64]           bias_ih + bias_hh

    public Span<float> Weights => new(WeightsPointer, WeightCount);
    public Span<float> Bias => new(BiasPointer, BiasCount);

    /// <summary>
    /// Packs PyTorch-layout weights: weightIh [4H, D_l], weightHh [4H, H], biasIh and biasHh [4H], gate rows i, f, g, o.
    /// </summary>
    public void Pack(ReadOnlySpan<float> weightIh, ReadOnlySpan<float> weightHh, ReadOnlySpan<float> biasIh, ReadOnlySpan<float> biasHh)
    {
        int h = Hidden, d = InputSize, depth = Depth;
        if (weightIh.Length != 4 * h * d || weightHh.Length != 4 * h * h || biasIh.Length != 4 * h || biasHh.Length != 4 * h)
            throw new ArgumentException("Gate weight shapes do not match the packed layer.");
        Span<float> w = Weights, b = Bias;
        for (int u = 0; u < Blocks; u++)
            for (int gate = 0; gate < 4; gate++)
                for (int lane = 0; lane < Lanes; lane++)
                {
                    int unit = u * Lanes + lane;
                    if (unit >= h) continue;   // padding columns stay zero from the constructor
                    int row = gate * h + unit, col = gate * Lanes + lane;
                    int panel = u * depth * BlockWidth + col;
                    for (int p = 0; p < h; p++) w[panel + p * BlockWidth] = weightHh[row * h + p];
                    for (int p = 0; p < d; p++) w[panel + (h + p) * BlockWidth] = weightIh[row * d + p];
                    b[u * BlockWidth + col] = biasIh[row] + biasHh[row];
                }
    }
}
