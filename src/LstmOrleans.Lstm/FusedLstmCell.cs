using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LstmOrleans.Lstm;

/// <summary>
/// Where one fused LSTM step reads and writes, for n streams (rows). Pointers because the kernel is a
/// register-blocked loop over several rows at once; callers validate every shape and pin the buffers.
/// </summary>
internal unsafe struct CellIo
{
    public float* HPrev;      // [n, H] rows HPrevStride apart: h_{t-1}; must not overlap HNext
    public int HPrevStride;
    public float* Input;      // [n, D_l] rows InputStride apart: x_t, or h_t of the layer below
    public int InputStride;
    public float* CPrev;      // [n, H] rows StateStride apart: c_{t-1}
    public float* CNext;      // [n, H] rows StateStride apart: c_t (may be CPrev: updated in place)
    public float* HNext;      // [n, H] rows StateStride apart: h_t
    public int StateStride;
    public float* Gates;      // optional [n, 4H]: activated gates i, f, g, o per row (the training cache); null = skip
    public float* TanhC;      // optional [n, H]: tanh(c_t); null = skip
}

/// <summary>
/// The LSTM forward step as one pass: gate pre-activations bias + W·[h_{t-1}, x_t] accumulated in registers, the
/// finished tile (at most 6 x 64 floats) handed through an L1 buffer to the gate nonlinearities and the cell update
/// straight away, c_t and h_t stored; no [B, 4H] pre-activation matrix is written out and read back.
/// Used by the single-stream step, the many-stream step and the training forward, so all three agree bit for bit:
/// every gate value is computed in one canonical order whichever tile computed it, and the same activation
/// functions follow. Canonical order over the inputs p of [h_{t-1}, x_t] (P = H + D, half = P / 2):
/// (bias + Σ_{p &lt; half} FMA chain) + (Σ_{p ≥ half} FMA chain from zero). Float addition is commutative, so the
/// halves may be computed in either order with the same bits. A lone stream uses that: it alternates which half
/// it reads first, so the half it read last is still in L1 when the next step starts. At H = 64 the weights are
/// 66.5 KB against a 48 KB L1D; reading front to back every time would stream all of them from L2 every step.
/// Tiles (hand-written Vector512 because TensorPrimitives has no fused matrix-times-activation and a separate
/// GEMM pass plus separate activation passes cost more than twice the arithmetic, measured in Probe):
///   6 streams x 1 unit block (24 accumulators) while at least 6 streams remain: the block's weight panel stays in L1
///   while all streams of the call stream past it, and each weight load feeds 6 FMAs;
///   1 stream x 4, 2 or 1 unit blocks for the rest (16 accumulators hide FMA latency for a lone stream).
/// <see cref="ForwardOne"/> is the single-stream step (LstmWeights.Step): the same 1-stream tiles, all gate sums of the
/// layer finished before any unit is updated, so h is updated in place. Weights, bias and tile buffers start on
/// 64-byte boundaries: with the weights 16 bytes off a line (where a float[] put them) every 64-byte load touched two
/// lines, and the lone step took 1.3x as long (in-process A/B, `PROBE_STEP=1 PROBE_AB=1 ... probe`).
/// </summary>
[SkipLocalsInit]   // the tile buffer is always written before it is read; zeroing it cost part of a lone step
internal static unsafe class FusedLstmCell
{
    private const int W = PackedGateWeights.BlockWidth;
    private const int TileRows = 6;

    public static void Forward(PackedGateWeights weights, int n, in CellIo io)
    {
        if (n <= 0) return;
        if (!Vector512.IsHardwareAccelerated)
        {
            ForwardScalar(weights, n, io);
            return;
        }
        int blocks = weights.Blocks, depth = weights.Depth, hidden = weights.Hidden;
        int tiled = n / TileRows * TileRows;
        int half = depth / 2;
        // A lone stream alternates which half of the inputs it reads first (see the class comment); the value is the
        // same either way, so a racy toggle shared by threads is harmless.
        bool reverse = n == 1 && (weights.Sweep++ & 1) != 0;
        // Finished pre-activation tiles go through this L1 buffer to the cell update: keeping the cell update in the
        // same method as the accumulator loop made the JIT spill every accumulator on every iteration.
        float* rawTile = stackalloc float[TileRows * W + 16];
        float* tile = (float*)(((nint)rawTile + 63) & ~(nint)63);    // [6, 64] or [4 blocks, 64], 64-byte aligned
        float* wAll = weights.WeightsPointer, bAll = weights.BiasPointer;   // pinned, 64-byte aligned
        {
            for (int u = 0; u < blocks; u++)
            {
                float* wu = wAll + (long)u * depth * W, bu = bAll + u * W;
                int j0 = u * PackedGateWeights.Lanes;
                for (int s = 0; s < tiled; s += TileRows)
                {
                    Tile6(weights, wu, bu, s, io, tile, 0, half, withBias: true, addToTile: false);
                    Tile6(weights, wu, bu, s, io, tile, half, depth, withBias: false, addToTile: true);
                    for (int r = 0; r < TileRows; r++) Apply(tile + r * W, io, s + r, j0, hidden);
                }
            }
            for (int s = tiled; s < n; s++)
            {
                int u = 0;
                for (; u + 4 <= blocks; u += 4)
                {
                    if (reverse)
                    {
                        Tile1x4(weights, wAll, bAll, u, s, io, tile, half, depth, withBias: false, addToTile: false);
                        Tile1x4(weights, wAll, bAll, u, s, io, tile, 0, half, withBias: true, addToTile: true);
                    }
                    else
                    {
                        Tile1x4(weights, wAll, bAll, u, s, io, tile, 0, half, withBias: true, addToTile: false);
                        Tile1x4(weights, wAll, bAll, u, s, io, tile, half, depth, withBias: false, addToTile: true);
                    }
                    for (int q = 0; q < 4; q++) Apply(tile + q * W, io, s, (u + q) * PackedGateWeights.Lanes, hidden);
                }
                for (; u + 2 <= blocks; u += 2)
                {
                    Tile1x2(weights, wAll, bAll, u, s, io, tile, 0, half, withBias: true, addToTile: false);
                    Tile1x2(weights, wAll, bAll, u, s, io, tile, half, depth, withBias: false, addToTile: true);
                    for (int q = 0; q < 2; q++) Apply(tile + q * W, io, s, (u + q) * PackedGateWeights.Lanes, hidden);
                }
                for (; u < blocks; u++)
                {
                    Tile1x1(weights, wAll, bAll, u, s, io, tile, 0, half, withBias: true, addToTile: false);
                    Tile1x1(weights, wAll, bAll, u, s, io, tile, half, depth, withBias: false, addToTile: true);
                    Apply(tile, io, s, u * PackedGateWeights.Lanes, hidden);
                }
            }
        }
        GC.KeepAlive(weights);   // owns the pinned array wAll and bAll point into
    }

    /// <summary>Largest H for <see cref="ForwardOne"/>: its [4H] pre-activation tile lives on the stack (16 KB here).</summary>
    public const int OneStreamMaxHidden = 1024;

    /// <summary>
    /// One stream, with h_{t-1} allowed to be the same memory as h_t (io.HPrev == io.HNext: updated in place, no copy).
    /// Every gate pre-activation of the layer is accumulated (same tiles, same canonical order as <see cref="Forward"/>,
    /// so the bits are identical) into a 64-byte aligned [4H] tile before the first unit is updated, so h_{t-1} is
    /// read completely before it is overwritten. Alternates the half read first, like Forward's lone stream, for L1 reuse.
    /// </summary>
    public static void ForwardOne(PackedGateWeights weights, in CellIo io)
    {
        int blocks = weights.Blocks, depth = weights.Depth, hidden = weights.Hidden, half = depth / 2;
        if (hidden > OneStreamMaxHidden) throw new ArgumentOutOfRangeException(nameof(weights), "Hidden size too large for the one-stream kernel.");
        if (!Vector512.IsHardwareAccelerated)
        {
            // The scalar path writes unit j before it reads h_{t-1} for unit j + 1: give it a copy.
            float* copy = stackalloc float[hidden];
            new ReadOnlySpan<float>(io.HPrev, hidden).CopyTo(new Span<float>(copy, hidden));
            var scalarIo = io;
            scalarIo.HPrev = copy;
            ForwardScalar(weights, 1, scalarIo);
            return;
        }
        bool reverse = (weights.Sweep++ & 1) != 0;   // racy toggle across threads is harmless: only the read order changes
        float* raw = stackalloc float[blocks * W + 16];                            // [blocks, 64] gate pre-activations
        float* tile = (float*)(((nint)raw + 63) & ~(nint)63);                   // aligned: 64-byte stores and loads stay in one line
        float* wAll = weights.WeightsPointer, bAll = weights.BiasPointer;
        // The half not read first is read last, and so is still in L1 when the next step starts with it.
        int firstBegin = reverse ? half : 0, firstEnd = reverse ? depth : half, secondBegin = reverse ? 0 : half, secondEnd = reverse ? half : depth;
        int u = 0;
        for (; u + 4 <= blocks; u += 4)
        {
            Tile1x4(weights, wAll, bAll, u, 0, io, tile + u * W, firstBegin, firstEnd, withBias: !reverse, addToTile: false);
            Tile1x4(weights, wAll, bAll, u, 0, io, tile + u * W, secondBegin, secondEnd, withBias: reverse, addToTile: true);
        }
        for (; u + 2 <= blocks; u += 2)
        {
            Tile1x2(weights, wAll, bAll, u, 0, io, tile + u * W, firstBegin, firstEnd, withBias: !reverse, addToTile: false);
            Tile1x2(weights, wAll, bAll, u, 0, io, tile + u * W, secondBegin, secondEnd, withBias: reverse, addToTile: true);
        }
        for (; u < blocks; u++)
        {
            Tile1x1(weights, wAll, bAll, u, 0, io, tile + u * W, firstBegin, firstEnd, withBias: !reverse, addToTile: false);
            Tile1x1(weights, wAll, bAll, u, 0, io, tile + u * W, secondBegin, secondEnd, withBias: reverse, addToTile: true);
        }
        for (u = 0; u < blocks; u++) Apply(tile + u * W, io, 0, u * PackedGateWeights.Lanes, hidden);
        GC.KeepAlive(weights);
    }

    private static void Tile6(PackedGateWeights weights, float* wu, float* bu, int s0, in CellIo io, float* tile,
        int pBegin, int pEnd, bool withBias, bool addToTile)
    {
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
        if (withBias) { b0 = Vector512.Load(bu); b1 = Vector512.Load(bu + 16); b2 = Vector512.Load(bu + 32); b3 = Vector512.Load(bu + 48); }
        Vector512<float> a00 = b0, a01 = b1, a02 = b2, a03 = b3, a10 = b0, a11 = b1, a12 = b2, a13 = b3;
        Vector512<float> a20 = b0, a21 = b1, a22 = b2, a23 = b3, a30 = b0, a31 = b1, a32 = b2, a33 = b3;
        Vector512<float> a40 = b0, a41 = b1, a42 = b2, a43 = b3, a50 = b0, a51 = b1, a52 = b2, a53 = b3;
        float* wp = wu + (long)pBegin * W;
        int hidden = weights.Hidden;
        // Inputs p in [pBegin, pEnd) of the concatenation [h_{t-1}, x_t]: the part in h, then the part in x
        // (row pointers shifted by -H there so both parts index by p); the weight panel rows continue across them.
        for (int segment = 0; segment < 2; segment++)
        {
            int stride = segment == 0 ? io.HPrevStride : io.InputStride;
            int lo = segment == 0 ? pBegin : Math.Max(pBegin, hidden), hi = segment == 0 ? Math.Min(pEnd, hidden) : pEnd;
            float* r0 = (segment == 0 ? io.HPrev : io.Input - hidden) + (long)s0 * stride;
            float* r1 = r0 + stride, r2 = r1 + stride, r3 = r2 + stride, r4 = r3 + stride, r5 = r4 + stride;
            for (int p = lo; p < hi; p++, wp += W)
            {
                var w0 = Vector512.Load(wp); var w1 = Vector512.Load(wp + 16); var w2 = Vector512.Load(wp + 32); var w3 = Vector512.Load(wp + 48);
                var s = Vector512.Create(r0[p]);
                a00 = Vector512.FusedMultiplyAdd(s, w0, a00); a01 = Vector512.FusedMultiplyAdd(s, w1, a01);
                a02 = Vector512.FusedMultiplyAdd(s, w2, a02); a03 = Vector512.FusedMultiplyAdd(s, w3, a03);
                s = Vector512.Create(r1[p]);
                a10 = Vector512.FusedMultiplyAdd(s, w0, a10); a11 = Vector512.FusedMultiplyAdd(s, w1, a11);
                a12 = Vector512.FusedMultiplyAdd(s, w2, a12); a13 = Vector512.FusedMultiplyAdd(s, w3, a13);
                s = Vector512.Create(r2[p]);
                a20 = Vector512.FusedMultiplyAdd(s, w0, a20); a21 = Vector512.FusedMultiplyAdd(s, w1, a21);
                a22 = Vector512.FusedMultiplyAdd(s, w2, a22); a23 = Vector512.FusedMultiplyAdd(s, w3, a23);
                s = Vector512.Create(r3[p]);
                a30 = Vector512.FusedMultiplyAdd(s, w0, a30); a31 = Vector512.FusedMultiplyAdd(s, w1, a31);
                a32 = Vector512.FusedMultiplyAdd(s, w2, a32); a33 = Vector512.FusedMultiplyAdd(s, w3, a33);
                s = Vector512.Create(r4[p]);
                a40 = Vector512.FusedMultiplyAdd(s, w0, a40); a41 = Vector512.FusedMultiplyAdd(s, w1, a41);
                a42 = Vector512.FusedMultiplyAdd(s, w2, a42); a43 = Vector512.FusedMultiplyAdd(s, w3, a43);
                s = Vector512.Create(r5[p]);
                a50 = Vector512.FusedMultiplyAdd(s, w0, a50); a51 = Vector512.FusedMultiplyAdd(s, w1, a51);
                a52 = Vector512.FusedMultiplyAdd(s, w2, a52); a53 = Vector512.FusedMultiplyAdd(s, w3, a53);
            }
        }
        Put(a00, tile + 0, addToTile); Put(a01, tile + 16, addToTile); Put(a02, tile + 32, addToTile); Put(a03, tile + 48, addToTile);
        Put(a10, tile + 64, addToTile); Put(a11, tile + 80, addToTile); Put(a12, tile + 96, addToTile); Put(a13, tile + 112, addToTile);
        Put(a20, tile + 128, addToTile); Put(a21, tile + 144, addToTile); Put(a22, tile + 160, addToTile); Put(a23, tile + 176, addToTile);
        Put(a30, tile + 192, addToTile); Put(a31, tile + 208, addToTile); Put(a32, tile + 224, addToTile); Put(a33, tile + 240, addToTile);
        Put(a40, tile + 256, addToTile); Put(a41, tile + 272, addToTile); Put(a42, tile + 288, addToTile); Put(a43, tile + 304, addToTile);
        Put(a50, tile + 320, addToTile); Put(a51, tile + 336, addToTile); Put(a52, tile + 352, addToTile); Put(a53, tile + 368, addToTile);
    }

    private static void Tile1x4(PackedGateWeights weights, float* wAll, float* bAll, int u0, int s, in CellIo io, float* tile,
        int pBegin, int pEnd, bool withBias, bool addToTile)
    {
        long panel = (long)weights.Depth * W;
        float* bu = bAll + u0 * W;
        Vector512<float> a00 = Bias(withBias, bu), a01 = Bias(withBias, bu + 16), a02 = Bias(withBias, bu + 32), a03 = Bias(withBias, bu + 48);
        Vector512<float> a10 = Bias(withBias, bu + 64), a11 = Bias(withBias, bu + 80), a12 = Bias(withBias, bu + 96), a13 = Bias(withBias, bu + 112);
        Vector512<float> a20 = Bias(withBias, bu + 128), a21 = Bias(withBias, bu + 144), a22 = Bias(withBias, bu + 160), a23 = Bias(withBias, bu + 176);
        Vector512<float> a30 = Bias(withBias, bu + 192), a31 = Bias(withBias, bu + 208), a32 = Bias(withBias, bu + 224), a33 = Bias(withBias, bu + 240);
        float* w0p = wAll + u0 * panel + (long)pBegin * W;
        float* w1p = w0p + panel, w2p = w1p + panel, w3p = w2p + panel;
        int hidden = weights.Hidden;
        for (int segment = 0; segment < 2; segment++)
        {
            int lo = segment == 0 ? pBegin : Math.Max(pBegin, hidden), hi = segment == 0 ? Math.Min(pEnd, hidden) : pEnd;
            float* r = segment == 0 ? io.HPrev + (long)s * io.HPrevStride : io.Input - hidden + (long)s * io.InputStride;
            for (int p = lo; p < hi; p++, w0p += W, w1p += W, w2p += W, w3p += W)
            {
                var x = Vector512.Create(r[p]);
                a00 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p), a00); a01 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p + 16), a01);
                a02 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p + 32), a02); a03 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p + 48), a03);
                a10 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w1p), a10); a11 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w1p + 16), a11);
                a12 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w1p + 32), a12); a13 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w1p + 48), a13);
                a20 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w2p), a20); a21 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w2p + 16), a21);
                a22 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w2p + 32), a22); a23 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w2p + 48), a23);
                a30 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w3p), a30); a31 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w3p + 16), a31);
                a32 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w3p + 32), a32); a33 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w3p + 48), a33);
            }
        }
        Put(a00, tile + 0, addToTile); Put(a01, tile + 16, addToTile); Put(a02, tile + 32, addToTile); Put(a03, tile + 48, addToTile);
        Put(a10, tile + 64, addToTile); Put(a11, tile + 80, addToTile); Put(a12, tile + 96, addToTile); Put(a13, tile + 112, addToTile);
        Put(a20, tile + 128, addToTile); Put(a21, tile + 144, addToTile); Put(a22, tile + 160, addToTile); Put(a23, tile + 176, addToTile);
        Put(a30, tile + 192, addToTile); Put(a31, tile + 208, addToTile); Put(a32, tile + 224, addToTile); Put(a33, tile + 240, addToTile);
    }

    private static void Tile1x2(PackedGateWeights weights, float* wAll, float* bAll, int u0, int s, in CellIo io, float* tile,
        int pBegin, int pEnd, bool withBias, bool addToTile)
    {
        long panel = (long)weights.Depth * W;
        float* bu = bAll + u0 * W;
        Vector512<float> a00 = Bias(withBias, bu), a01 = Bias(withBias, bu + 16), a02 = Bias(withBias, bu + 32), a03 = Bias(withBias, bu + 48);
        Vector512<float> a10 = Bias(withBias, bu + 64), a11 = Bias(withBias, bu + 80), a12 = Bias(withBias, bu + 96), a13 = Bias(withBias, bu + 112);
        float* w0p = wAll + u0 * panel + (long)pBegin * W;
        float* w1p = w0p + panel;
        int hidden = weights.Hidden;
        for (int segment = 0; segment < 2; segment++)
        {
            int lo = segment == 0 ? pBegin : Math.Max(pBegin, hidden), hi = segment == 0 ? Math.Min(pEnd, hidden) : pEnd;
            float* r = segment == 0 ? io.HPrev + (long)s * io.HPrevStride : io.Input - hidden + (long)s * io.InputStride;
            for (int p = lo; p < hi; p++, w0p += W, w1p += W)
            {
                var x = Vector512.Create(r[p]);
                a00 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p), a00); a01 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p + 16), a01);
                a02 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p + 32), a02); a03 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p + 48), a03);
                a10 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w1p), a10); a11 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w1p + 16), a11);
                a12 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w1p + 32), a12); a13 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w1p + 48), a13);
            }
        }
        Put(a00, tile + 0, addToTile); Put(a01, tile + 16, addToTile); Put(a02, tile + 32, addToTile); Put(a03, tile + 48, addToTile);
        Put(a10, tile + 64, addToTile); Put(a11, tile + 80, addToTile); Put(a12, tile + 96, addToTile); Put(a13, tile + 112, addToTile);
    }

    private static void Tile1x1(PackedGateWeights weights, float* wAll, float* bAll, int u0, int s, in CellIo io, float* tile,
        int pBegin, int pEnd, bool withBias, bool addToTile)
    {
        float* bu = bAll + u0 * W;
        Vector512<float> a00 = Bias(withBias, bu), a01 = Bias(withBias, bu + 16), a02 = Bias(withBias, bu + 32), a03 = Bias(withBias, bu + 48);
        float* w0p = wAll + u0 * (long)weights.Depth * W + (long)pBegin * W;
        int hidden = weights.Hidden;
        for (int segment = 0; segment < 2; segment++)
        {
            int lo = segment == 0 ? pBegin : Math.Max(pBegin, hidden), hi = segment == 0 ? Math.Min(pEnd, hidden) : pEnd;
            float* r = segment == 0 ? io.HPrev + (long)s * io.HPrevStride : io.Input - hidden + (long)s * io.InputStride;
            for (int p = lo; p < hi; p++, w0p += W)
            {
                var x = Vector512.Create(r[p]);
                a00 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p), a00); a01 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p + 16), a01);
                a02 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p + 32), a02); a03 = Vector512.FusedMultiplyAdd(x, Vector512.Load(w0p + 48), a03);
            }
        }
        Put(a00, tile + 0, addToTile); Put(a01, tile + 16, addToTile); Put(a02, tile + 32, addToTile); Put(a03, tile + 48, addToTile);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Bias(bool withBias, float* bias) => withBias ? Vector512.Load(bias) : Vector512<float>.Zero;

    /// <summary>Stores a finished partial sum, or adds it to the other half's (commutative: either order gives the same bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(Vector512<float> sum, float* tile, bool addToTile) => (addToTile ? sum + Vector512.Load(tile) : sum).Store(tile);

    /// <summary>
    /// Cell update for 16 units (lanes) j0..j0+15 of stream s from their gate pre-activations:
    /// i, f, o = σ(·); g = tanh(·); c = f ⊙ cPrev + i ⊙ g; h = o ⊙ tanh(c).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Apply(float* pre, in CellIo io, int s, int j0, int hidden)
    {
        var ai = Vector512.Load(pre); var af = Vector512.Load(pre + 16); var ag = Vector512.Load(pre + 32); var ao = Vector512.Load(pre + 48);
        if (hidden - j0 < PackedGateWeights.Lanes)
        {
            ApplyPartial(ai, af, ag, ao, io, s, j0, hidden);
            return;
        }
        var i = FastActivations.Sigmoid(ai);
        var f = FastActivations.Sigmoid(af);
        var g = FastActivations.Tanh(ag);
        var o = FastActivations.Sigmoid(ao);
        long state = (long)s * io.StateStride + j0;
        var c = Vector512.FusedMultiplyAdd(f, Vector512.Load(io.CPrev + state), i * g);
        var tanhC = FastActivations.Tanh(c);
        c.Store(io.CNext + state);
        (o * tanhC).Store(io.HNext + state);
        if (io.Gates != null)
        {
            float* row = io.Gates + (long)s * 4 * hidden + j0;
            i.Store(row); f.Store(row + hidden); g.Store(row + 2 * hidden); o.Store(row + 3 * hidden);
        }
        if (io.TanhC != null) tanhC.Store(io.TanhC + (long)s * hidden + j0);
    }

    /// <summary>The last, partial unit block (H not a multiple of 16): same arithmetic through a 16-lane buffer.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ApplyPartial(Vector512<float> ai, Vector512<float> af, Vector512<float> ag, Vector512<float> ao, in CellIo io, int s, int j0, int hidden)
    {
        int valid = hidden - j0;
        float* lanes = stackalloc float[6 * PackedGateWeights.Lanes];   // cPrev→c, h, i, f, g, o  (each [16])
        new Span<float>(lanes, PackedGateWeights.Lanes).Clear();
        long state = (long)s * io.StateStride + j0;
        for (int e = 0; e < valid; e++) lanes[e] = io.CPrev[state + e];
        var i = FastActivations.Sigmoid(ai);
        var f = FastActivations.Sigmoid(af);
        var g = FastActivations.Tanh(ag);
        var o = FastActivations.Sigmoid(ao);
        var c = Vector512.FusedMultiplyAdd(f, Vector512.Load(lanes), i * g);
        var tanhC = FastActivations.Tanh(c);
        c.Store(lanes);
        (o * tanhC).Store(lanes + 16);
        i.Store(lanes + 32); f.Store(lanes + 48); g.Store(lanes + 64); o.Store(lanes + 80);
        for (int e = 0; e < valid; e++)
        {
            io.CNext[state + e] = lanes[e];
            io.HNext[state + e] = lanes[16 + e];
        }
        if (io.Gates != null)
        {
            float* row = io.Gates + (long)s * 4 * hidden + j0;
            for (int gate = 0; gate < 4; gate++)
                for (int e = 0; e < valid; e++) row[gate * hidden + e] = lanes[32 + gate * 16 + e];
        }
        if (io.TanhC != null)
        {
            Span<float> t = stackalloc float[PackedGateWeights.Lanes];
            tanhC.CopyTo(t);
            for (int e = 0; e < valid; e++) io.TanhC[(long)s * hidden + j0 + e] = t[e];
        }
    }

    /// <summary>Fallback without AVX-512: the same step one value at a time (same FMA order, scalar activations).</summary>
    internal static void ForwardScalar(PackedGateWeights weights, int n, in CellIo io)
    {
        int hidden = weights.Hidden, depth = weights.Depth, half = depth / 2;
        float* w = weights.WeightsPointer, bias = weights.BiasPointer;
        Span<float> a = stackalloc float[4];   // pre-activations i, f, g, o of one unit
        for (int s = 0; s < n; s++)
        {
            float* hPrev = io.HPrev + (long)s * io.HPrevStride, input = io.Input + (long)s * io.InputStride;
            long state = (long)s * io.StateStride;
            for (int j = 0; j < hidden; j++)
            {
                int u = j / PackedGateWeights.Lanes, lane = j % PackedGateWeights.Lanes;
                for (int gate = 0; gate < 4; gate++)
                {
                    int col = gate * PackedGateWeights.Lanes + lane;
                    int panel = u * depth * W + col;
                    // Same canonical order as the vector tiles: (bias + first half) + (second half).
                    float first = bias[u * W + col], second = 0f;
                    for (int p = 0; p < half; p++) first = MathF.FusedMultiplyAdd(p < hidden ? hPrev[p] : input[p - hidden], w[panel + p * W], first);
                    for (int p = half; p < depth; p++) second = MathF.FusedMultiplyAdd(p < hidden ? hPrev[p] : input[p - hidden], w[panel + p * W], second);
                    a[gate] = first + second;
                }
                float i = FastActivations.Sigmoid(a[0]), f = FastActivations.Sigmoid(a[1]);
                float g = FastActivations.Tanh(a[2]), o = FastActivations.Sigmoid(a[3]);
                float c = MathF.FusedMultiplyAdd(f, io.CPrev[state + j], i * g);
                float tanhC = FastActivations.Tanh(c);
                io.CNext[state + j] = c;
                io.HNext[state + j] = o * tanhC;
                if (io.Gates != null)
                {
                    float* row = io.Gates + (long)s * 4 * hidden;
                    row[j] = i; row[hidden + j] = f; row[2 * hidden + j] = g; row[3 * hidden + j] = o;
                }
                if (io.TanhC != null) io.TanhC[(long)s * hidden + j] = tanhC;
            }
        }
    }
}
