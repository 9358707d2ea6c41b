namespace LstmOrleans.Lstm.Tests;

/// <summary>
/// An independent double-precision LSTM written straight from the equations with scalar loops, reading the
/// parameters only through the documented flat layout (never through the engine's packed copies):
///   a = W_ih x + b_ih + W_hh h + b_hh, rows in PyTorch order (i, f, g, o)
///   i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o); c = f c + i g; h = o tanh(c); y = W_y h_top + b_y.
/// </summary>
internal static class ReferenceLstm
{
    public static double Sigmoid(double v) => 1.0 / (1.0 + Math.Exp(-v));

    /// <summary>Offsets of each tensor in the flat layout, recomputed here from the layout comment.</summary>
    public static (int wih, int whh, int bih, int bhh)[] LayerOffsets(LstmConfig config, out int headW, out int headB)
    {
        int hidden = config.HiddenSize, rows = 4 * hidden;
        var result = new (int, int, int, int)[config.Layers];
        int offset = 0;
        for (int l = 0; l < config.Layers; l++)
        {
            int din = l == 0 ? config.InputSize : hidden;
            int wih = offset; offset += rows * din;
            int whh = offset; offset += rows * hidden;
            int bih = offset; offset += rows;
            int bhh = offset; offset += rows;
            result[l] = (wih, whh, bih, bhh);
        }
        headW = offset; offset += config.Horizons * hidden;
        headB = offset;
        return result;
    }

    /// <summary>One step in double. h, c: [L*H] updated in place; returns y [K].</summary>
    public static double[] Step(LstmConfig config, IReadOnlyList<double> p, double[] x, double[] h, double[] c)
    {
        int hidden = config.HiddenSize;
        var offsets = LayerOffsets(config, out int headW, out int headB);
        double[] input = x;
        for (int l = 0; l < config.Layers; l++)
        {
            int din = input.Length;
            var (wih, whh, bih, bhh) = offsets[l];
            var a = new double[4 * hidden];
            for (int r = 0; r < 4 * hidden; r++)
            {
                double s = p[bih + r] + p[bhh + r];
                for (int j = 0; j < din; j++) s += p[wih + r * din + j] * input[j];
                for (int j = 0; j < hidden; j++) s += p[whh + r * hidden + j] * h[l * hidden + j];
                a[r] = s;
            }
            var output = new double[hidden];
            for (int j = 0; j < hidden; j++)
            {
                double ig = Sigmoid(a[j]), fg = Sigmoid(a[hidden + j]), gg = Math.Tanh(a[2 * hidden + j]), og = Sigmoid(a[3 * hidden + j]);
                double cNew = fg * c[l * hidden + j] + ig * gg;
                c[l * hidden + j] = cNew;
                output[j] = og * Math.Tanh(cNew);
                h[l * hidden + j] = output[j];
            }
            input = output;
        }
        var y = new double[config.Horizons];
        for (int k = 0; k < config.Horizons; k++)
        {
            double s = p[headB + k];
            for (int j = 0; j < hidden; j++) s += p[headW + k * hidden + j] * input[j];
            y[k] = s;
        }
        return y;
    }

    /// <summary>
    /// The training loss in double: windows x [B,T,D], targets [B,T,K], mask [B,T,K] (1 = counts),
    /// initial states h0, c0 [B, L*H]; steps t &lt; burnIn do not count. MSE mean over counted entries.
    /// </summary>
    public static double Loss(LstmConfig config, IReadOnlyList<double> p, int batch, int steps, double[] x, double[] targets,
        float[]? mask, double[]? h0, double[]? c0, int burnIn)
    {
        int d = config.InputSize, k = config.Horizons, s = config.StateSize;
        double sum = 0; int count = 0;
        for (int b = 0; b < batch; b++)
        {
            var h = new double[s]; var c = new double[s];
            if (h0 != null) Array.Copy(h0, b * s, h, 0, s);
            if (c0 != null) Array.Copy(c0, b * s, c, 0, s);
            for (int t = 0; t < steps; t++)
            {
                var xt = new double[d];
                Array.Copy(x, (b * steps + t) * d, xt, 0, d);
                var y = Step(config, p, xt, h, c);
                if (t < burnIn) continue;
                for (int q = 0; q < k; q++)
                {
                    int idx = (b * steps + t) * k + q;
                    if (mask != null && mask[idx] == 0f) continue;
                    double e = y[q] - targets[idx];
                    sum += e * e; count++;
                }
            }
        }
        return count == 0 ? 0 : sum / count;
    }
}
