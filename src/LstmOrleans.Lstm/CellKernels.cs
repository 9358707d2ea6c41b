using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LstmOrleans.Lstm;

/// <summary>
/// Elementwise backward of the LSTM cell. Its forward is fused into <see cref="FusedLstmCell"/> (gates, activations
/// and cell update in one pass), which stores the activated gates i, f, g, o and tanh(c_t) this backward reads.
/// </summary>
internal static class CellKernels
{
    /// <summary>
    /// Backward for one row. In: activated gates [4H], cPrev [H], tanhC [H], dhAbove [H], dhNext [H] (from
    /// step t + 1), dcNext [H] (from step t + 1; replaced by dL/dc_{t−1}). Out: dGates [4H] with respect to
    /// the pre-activations:
    ///   dh = dhAbove + dhNext; dc = dcNext + dh ⊙ o ⊙ (1 − tanhC²)
    ///   da_i = dc ⊙ g ⊙ i(1 − i); da_f = dc ⊙ cPrev ⊙ f(1 − f); da_g = dc ⊙ i ⊙ (1 − g²); da_o = dh ⊙ tanhC ⊙ o(1 − o)
    ///   dcPrev = dc ⊙ f
    /// </summary>
    public static void BackwardRow(ReadOnlySpan<float> gates, ReadOnlySpan<float> cPrev, ReadOnlySpan<float> tanhC,
        ReadOnlySpan<float> dhAbove, ReadOnlySpan<float> dhNext, Span<float> dcNext, Span<float> dGates, int hidden)
    {
        if (gates.Length < 4 * hidden || dGates.Length < 4 * hidden || cPrev.Length < hidden || tanhC.Length < hidden
            || dhAbove.Length < hidden || dhNext.Length < hidden || dcNext.Length < hidden)
            throw new ArgumentException("Cell spans too short.");
        ref float gi = ref MemoryMarshal.GetReference(gates);
        ref float gf = ref Unsafe.Add(ref gi, hidden);
        ref float gg = ref Unsafe.Add(ref gi, 2 * hidden);
        ref float go = ref Unsafe.Add(ref gi, 3 * hidden);
        ref float di = ref MemoryMarshal.GetReference(dGates);
        ref float df = ref Unsafe.Add(ref di, hidden);
        ref float dg = ref Unsafe.Add(ref di, 2 * hidden);
        ref float dO = ref Unsafe.Add(ref di, 3 * hidden);
        ref float cp = ref MemoryMarshal.GetReference(cPrev);
        ref float tc = ref MemoryMarshal.GetReference(tanhC);
        ref float dha = ref MemoryMarshal.GetReference(dhAbove);
        ref float dhn = ref MemoryMarshal.GetReference(dhNext);
        ref float dcn = ref MemoryMarshal.GetReference(dcNext);
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var one = Vector512<float>.One;
            for (; j + 16 <= hidden; j += 16)
            {
                nuint u = (nuint)j;
                var i = Vector512.LoadUnsafe(ref gi, u); var f = Vector512.LoadUnsafe(ref gf, u);
                var g = Vector512.LoadUnsafe(ref gg, u); var o = Vector512.LoadUnsafe(ref go, u);
                var t = Vector512.LoadUnsafe(ref tc, u);
                var dh = Vector512.LoadUnsafe(ref dha, u) + Vector512.LoadUnsafe(ref dhn, u);
                var dc = Vector512.FusedMultiplyAdd(dh * o, one - t * t, Vector512.LoadUnsafe(ref dcn, u));
                (dc * g * i * (one - i)).StoreUnsafe(ref di, u);
                (dc * Vector512.LoadUnsafe(ref cp, u) * f * (one - f)).StoreUnsafe(ref df, u);
                (dc * i * (one - g * g)).StoreUnsafe(ref dg, u);
                (dh * t * o * (one - o)).StoreUnsafe(ref dO, u);
                (dc * f).StoreUnsafe(ref dcn, u);
            }
        }
        for (; j < hidden; j++)
        {
            float i = Unsafe.Add(ref gi, j), f = Unsafe.Add(ref gf, j), g = Unsafe.Add(ref gg, j), o = Unsafe.Add(ref go, j);
            float t = Unsafe.Add(ref tc, j);
            float dh = Unsafe.Add(ref dha, j) + Unsafe.Add(ref dhn, j);
            float dc = Unsafe.Add(ref dcn, j) + dh * o * (1f - t * t);
            Unsafe.Add(ref di, j) = dc * g * i * (1f - i);
            Unsafe.Add(ref df, j) = dc * Unsafe.Add(ref cp, j) * f * (1f - f);
            Unsafe.Add(ref dg, j) = dc * i * (1f - g * g);
            Unsafe.Add(ref dO, j) = dh * t * o * (1f - o);
            Unsafe.Add(ref dcn, j) = dc * f;
        }
    }
}
