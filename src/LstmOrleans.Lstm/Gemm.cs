using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LstmOrleans.Lstm;

/// <summary>
/// The matrix kernel of the training backward pass (the forward step has its own fused kernel, FusedLstmCell):
/// C[M, N] += A[M, K] · B[K, N], with B and C row-major
/// (rows contiguous) and A addressed by two strides so the same kernel serves A and Aᵀ:
/// element A(i, p) is a[i * aRowStride + p * aColStride]. The inner loop runs along a row of B and C
/// (AXPY form), which vectorises whatever M is, including single rows (M = 1, e.g. bias gradients).
/// Register blocking: 4 rows × 64 columns (16 Vector512 accumulators) for the batched passes, 1 row × 256 or 128
/// columns (enough independent FMA chains to hide latency) for thin cases.
/// </summary>
internal static class Gemm
{
    /// <summary>C[M, N] += A[M, K] · B[K, N]. Spans must cover the addressed elements (checked).</summary>
    public static void MultiplyAdd(int m, int n, int k,
        ReadOnlySpan<float> a, int aRowStride, int aColStride,
        ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc)
    {
        if (m == 0 || n == 0 || k == 0) return;
        // Bounds checked once here so the unchecked inner kernels cannot read or write outside the spans.
        long aLast = (long)(m - 1) * aRowStride + (long)(k - 1) * aColStride;
        if (aLast >= a.Length || (long)(k - 1) * ldb + n > b.Length || (long)(m - 1) * ldc + n > c.Length || n > ldb || n > ldc)
            throw new ArgumentException("Matrix spans are too short for the given shape.");
        if (Vector512.IsHardwareAccelerated)
            MultiplyAdd512(m, n, k, ref MemoryMarshal.GetReference(a), aRowStride, aColStride,
                ref MemoryMarshal.GetReference(b), ldb, ref MemoryMarshal.GetReference(c), ldc);
        else
            MultiplyAddPortable(m, n, k, a, aRowStride, aColStride, b, ldb, c, ldc);
    }

    /// <summary>Reference path (also the fallback without AVX-512): one TensorPrimitives AXPY per (i, p).</summary>
    internal static void MultiplyAddPortable(int m, int n, int k,
        ReadOnlySpan<float> a, int aRowStride, int aColStride,
        ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc)
    {
        for (int i = 0; i < m; i++)
        {
            Span<float> row = c.Slice(i * ldc, n);
            for (int p = 0; p < k; p++)
                TensorPrimitives.MultiplyAdd(b.Slice(p * ldb, n), a[i * aRowStride + p * aColStride], row, row);
        }
    }

    /// <summary>
    /// Depth of one pass over B: a long inner dimension (the weight gradients sum over all T·B rows) is cut into
    /// panels of this many rows of B, so a panel stays in cache while every block of C is updated from it,
    /// instead of streaming all of B once per block of C. 64 rather than 128: a [64, 64] B slice and the matching
    /// A panel then fit the 48 KB L1 together. C is still updated in ascending p, so the depth changes no result.
    /// </summary>
    private const int DepthBlock = 64;

    private static void MultiplyAdd512(int m, int n, int k, ref float a, int ars, int acs, ref float b, int ldb, ref float c, int ldc)
    {
        for (int p0 = 0; p0 < k; p0 += DepthBlock)
            MultiplyAddPanel512(m, n, Math.Min(DepthBlock, k - p0), ref Unsafe.Add(ref a, p0 * acs), ars, acs,
                ref Unsafe.Add(ref b, p0 * ldb), ldb, ref c, ldc);
    }

    private static void MultiplyAddPanel512(int m, int n, int k, ref float a, int ars, int acs, ref float b, int ldb, ref float c, int ldc)
    {
        int blockedRows = m / 4 * 4;
        // Column block outermost: its [k, 64] slice of B (at most DepthBlock x 64 floats) stays in L1 while every
        // 4-row block of C is updated from it.
        int j = 0;
        for (; j + 64 <= n; j += 64)
            for (int i = 0; i < blockedRows; i += 4)
                Block4x64(k, ref Unsafe.Add(ref a, i * ars), ars, acs, ref Unsafe.Add(ref b, j), ldb, ref Unsafe.Add(ref c, i * ldc + j), ldc);
        for (int i = 0; i < blockedRows; i++)
            RowTail(j, n, k, ref Unsafe.Add(ref a, i * ars), acs, ref b, ldb, ref Unsafe.Add(ref c, i * ldc));
        for (int i = blockedRows; i < m; i++)
        {
            ref float ai = ref Unsafe.Add(ref a, i * ars);
            ref float ci = ref Unsafe.Add(ref c, i * ldc);
            int jj = 0;
            // A lone row reads B once, front to back: 256 columns = 16 accumulators.
            for (; jj + 256 <= n; jj += 256)
                Block1x256(k, ref ai, acs, ref Unsafe.Add(ref b, jj), ldb, ref Unsafe.Add(ref ci, jj));
            for (; jj + 128 <= n; jj += 128)
                Block1x128(k, ref ai, acs, ref Unsafe.Add(ref b, jj), ldb, ref Unsafe.Add(ref ci, jj));
            RowTail(jj, n, k, ref ai, acs, ref b, ldb, ref ci);
        }
    }

    /// <summary>Columns [j0, n) of one row: 16-wide vectors, then scalars.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RowTail(int j0, int n, int k, ref float ai, int acs, ref float b, int ldb, ref float ci)
    {
        int j = j0;
        for (; j + 64 <= n; j += 64)
            Block1x64(k, ref ai, acs, ref Unsafe.Add(ref b, j), ldb, ref Unsafe.Add(ref ci, j));
        for (; j + 16 <= n; j += 16)
        {
            var acc = Vector512.LoadUnsafe(ref ci, (nuint)j);
            for (int p = 0; p < k; p++)
                acc = Vector512.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref ai, p * acs)), Vector512.LoadUnsafe(ref b, (nuint)(p * ldb + j)), acc);
            acc.StoreUnsafe(ref ci, (nuint)j);
        }
        for (; j < n; j++)
        {
            float acc = Unsafe.Add(ref ci, j);
            for (int p = 0; p < k; p++)
                acc = MathF.FusedMultiplyAdd(Unsafe.Add(ref ai, p * acs), Unsafe.Add(ref b, p * ldb + j), acc);
            Unsafe.Add(ref ci, j) = acc;
        }
    }

    private static void Block4x64(int k, ref float a, int ars, int acs, ref float b, int ldb, ref float c, int ldc)
    {
        ref float c1 = ref Unsafe.Add(ref c, ldc);
        ref float c2 = ref Unsafe.Add(ref c, 2 * ldc);
        ref float c3 = ref Unsafe.Add(ref c, 3 * ldc);
        var c00 = Vector512.LoadUnsafe(ref c, 0); var c01 = Vector512.LoadUnsafe(ref c, 16); var c02 = Vector512.LoadUnsafe(ref c, 32); var c03 = Vector512.LoadUnsafe(ref c, 48);
        var c10 = Vector512.LoadUnsafe(ref c1, 0); var c11 = Vector512.LoadUnsafe(ref c1, 16); var c12 = Vector512.LoadUnsafe(ref c1, 32); var c13 = Vector512.LoadUnsafe(ref c1, 48);
        var c20 = Vector512.LoadUnsafe(ref c2, 0); var c21 = Vector512.LoadUnsafe(ref c2, 16); var c22 = Vector512.LoadUnsafe(ref c2, 32); var c23 = Vector512.LoadUnsafe(ref c2, 48);
        var c30 = Vector512.LoadUnsafe(ref c3, 0); var c31 = Vector512.LoadUnsafe(ref c3, 16); var c32 = Vector512.LoadUnsafe(ref c3, 32); var c33 = Vector512.LoadUnsafe(ref c3, 48);
        ref float a1 = ref Unsafe.Add(ref a, ars);
        ref float a2 = ref Unsafe.Add(ref a, 2 * ars);
        ref float a3 = ref Unsafe.Add(ref a, 3 * ars);
        for (int p = 0; p < k; p++)
        {
            ref float bp = ref Unsafe.Add(ref b, p * ldb);
            var b0 = Vector512.LoadUnsafe(ref bp, 0); var b1 = Vector512.LoadUnsafe(ref bp, 16);
            var b2 = Vector512.LoadUnsafe(ref bp, 32); var b3 = Vector512.LoadUnsafe(ref bp, 48);
            int ap = p * acs;
            var s = Vector512.Create(Unsafe.Add(ref a, ap));
            c00 = Vector512.FusedMultiplyAdd(s, b0, c00); c01 = Vector512.FusedMultiplyAdd(s, b1, c01);
            c02 = Vector512.FusedMultiplyAdd(s, b2, c02); c03 = Vector512.FusedMultiplyAdd(s, b3, c03);
            s = Vector512.Create(Unsafe.Add(ref a1, ap));
            c10 = Vector512.FusedMultiplyAdd(s, b0, c10); c11 = Vector512.FusedMultiplyAdd(s, b1, c11);
            c12 = Vector512.FusedMultiplyAdd(s, b2, c12); c13 = Vector512.FusedMultiplyAdd(s, b3, c13);
            s = Vector512.Create(Unsafe.Add(ref a2, ap));
            c20 = Vector512.FusedMultiplyAdd(s, b0, c20); c21 = Vector512.FusedMultiplyAdd(s, b1, c21);
            c22 = Vector512.FusedMultiplyAdd(s, b2, c22); c23 = Vector512.FusedMultiplyAdd(s, b3, c23);
            s = Vector512.Create(Unsafe.Add(ref a3, ap));
            c30 = Vector512.FusedMultiplyAdd(s, b0, c30); c31 = Vector512.FusedMultiplyAdd(s, b1, c31);
            c32 = Vector512.FusedMultiplyAdd(s, b2, c32); c33 = Vector512.FusedMultiplyAdd(s, b3, c33);
        }
        c00.StoreUnsafe(ref c, 0); c01.StoreUnsafe(ref c, 16); c02.StoreUnsafe(ref c, 32); c03.StoreUnsafe(ref c, 48);
        c10.StoreUnsafe(ref c1, 0); c11.StoreUnsafe(ref c1, 16); c12.StoreUnsafe(ref c1, 32); c13.StoreUnsafe(ref c1, 48);
        c20.StoreUnsafe(ref c2, 0); c21.StoreUnsafe(ref c2, 16); c22.StoreUnsafe(ref c2, 32); c23.StoreUnsafe(ref c2, 48);
        c30.StoreUnsafe(ref c3, 0); c31.StoreUnsafe(ref c3, 16); c32.StoreUnsafe(ref c3, 32); c33.StoreUnsafe(ref c3, 48);
    }

    private static void Block1x64(int k, ref float a, int acs, ref float b, int ldb, ref float c)
    {
        var c0 = Vector512.LoadUnsafe(ref c, 0); var c1 = Vector512.LoadUnsafe(ref c, 16);
        var c2 = Vector512.LoadUnsafe(ref c, 32); var c3 = Vector512.LoadUnsafe(ref c, 48);
        for (int p = 0; p < k; p++)
        {
            ref float bp = ref Unsafe.Add(ref b, p * ldb);
            var s = Vector512.Create(Unsafe.Add(ref a, p * acs));
            c0 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 0), c0);
            c1 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 16), c1);
            c2 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 32), c2);
            c3 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 48), c3);
        }
        c0.StoreUnsafe(ref c, 0); c1.StoreUnsafe(ref c, 16); c2.StoreUnsafe(ref c, 32); c3.StoreUnsafe(ref c, 48);
    }

    private static void Block1x256(int k, ref float a, int acs, ref float b, int ldb, ref float c)
    {
        var c0 = Vector512.LoadUnsafe(ref c, 0); var c1 = Vector512.LoadUnsafe(ref c, 16);
        var c2 = Vector512.LoadUnsafe(ref c, 32); var c3 = Vector512.LoadUnsafe(ref c, 48);
        var c4 = Vector512.LoadUnsafe(ref c, 64); var c5 = Vector512.LoadUnsafe(ref c, 80);
        var c6 = Vector512.LoadUnsafe(ref c, 96); var c7 = Vector512.LoadUnsafe(ref c, 112);
        var c8 = Vector512.LoadUnsafe(ref c, 128); var c9 = Vector512.LoadUnsafe(ref c, 144);
        var c10 = Vector512.LoadUnsafe(ref c, 160); var c11 = Vector512.LoadUnsafe(ref c, 176);
        var c12 = Vector512.LoadUnsafe(ref c, 192); var c13 = Vector512.LoadUnsafe(ref c, 208);
        var c14 = Vector512.LoadUnsafe(ref c, 224); var c15 = Vector512.LoadUnsafe(ref c, 240);
        for (int p = 0; p < k; p++)
        {
            ref float bp = ref Unsafe.Add(ref b, p * ldb);
            var s = Vector512.Create(Unsafe.Add(ref a, p * acs));
            c0 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 0), c0);
            c1 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 16), c1);
            c2 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 32), c2);
            c3 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 48), c3);
            c4 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 64), c4);
            c5 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 80), c5);
            c6 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 96), c6);
            c7 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 112), c7);
            c8 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 128), c8);
            c9 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 144), c9);
            c10 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 160), c10);
            c11 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 176), c11);
            c12 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 192), c12);
            c13 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 208), c13);
            c14 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 224), c14);
            c15 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 240), c15);
        }
        c0.StoreUnsafe(ref c, 0); c1.StoreUnsafe(ref c, 16); c2.StoreUnsafe(ref c, 32); c3.StoreUnsafe(ref c, 48);
        c4.StoreUnsafe(ref c, 64); c5.StoreUnsafe(ref c, 80); c6.StoreUnsafe(ref c, 96); c7.StoreUnsafe(ref c, 112);
        c8.StoreUnsafe(ref c, 128); c9.StoreUnsafe(ref c, 144); c10.StoreUnsafe(ref c, 160); c11.StoreUnsafe(ref c, 176);
        c12.StoreUnsafe(ref c, 192); c13.StoreUnsafe(ref c, 208); c14.StoreUnsafe(ref c, 224); c15.StoreUnsafe(ref c, 240);
    }

    private static void Block1x128(int k, ref float a, int acs, ref float b, int ldb, ref float c)
    {
        var c0 = Vector512.LoadUnsafe(ref c, 0); var c1 = Vector512.LoadUnsafe(ref c, 16);
        var c2 = Vector512.LoadUnsafe(ref c, 32); var c3 = Vector512.LoadUnsafe(ref c, 48);
        var c4 = Vector512.LoadUnsafe(ref c, 64); var c5 = Vector512.LoadUnsafe(ref c, 80);
        var c6 = Vector512.LoadUnsafe(ref c, 96); var c7 = Vector512.LoadUnsafe(ref c, 112);
        for (int p = 0; p < k; p++)
        {
            ref float bp = ref Unsafe.Add(ref b, p * ldb);
            var s = Vector512.Create(Unsafe.Add(ref a, p * acs));
            c0 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 0), c0);
            c1 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 16), c1);
            c2 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 32), c2);
            c3 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 48), c3);
            c4 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 64), c4);
            c5 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 80), c5);
            c6 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 96), c6);
            c7 = Vector512.FusedMultiplyAdd(s, Vector512.LoadUnsafe(ref bp, 112), c7);
        }
        c0.StoreUnsafe(ref c, 0); c1.StoreUnsafe(ref c, 16); c2.StoreUnsafe(ref c, 32); c3.StoreUnsafe(ref c, 48);
        c4.StoreUnsafe(ref c, 64); c5.StoreUnsafe(ref c, 80); c6.StoreUnsafe(ref c, 96); c7.StoreUnsafe(ref c, 112);
    }
}
