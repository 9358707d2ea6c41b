using System.Globalization;
using LstmOrleans.Client.Replay;
using SkiaSharp;

namespace LstmOrleans.Client.Plotting;

/// <summary>Draws actual vs one-step forecast with its prediction interval, one panel per stream, to a PNG.</summary>
internal static class ForecastPlot
{
    private const int PanelWidth = 1400;
    private const int PanelHeight = 320;
    private const int Margin = 60;

    public static void Write(string path, IReadOnlyList<(string Title, IReadOnlyList<PredictionRow> Rows)> panels)
    {
        if (panels.Count == 0 || panels.All(p => p.Rows.Count == 0))
            throw new InvalidOperationException("Nothing to plot: no scored predictions.");
        var height = PanelHeight * panels.Count;
        using var surface = SKSurface.Create(new SKImageInfo(PanelWidth, height));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        for (var p = 0; p < panels.Count; p++)
            DrawPanel(canvas, new SKRect(0, p * PanelHeight, PanelWidth, (p + 1) * PanelHeight), panels[p].Title, panels[p].Rows);
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 90);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null) Directory.CreateDirectory(directory);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    private static void DrawPanel(SKCanvas canvas, SKRect area, string title, IReadOnlyList<PredictionRow> rows)
    {
        using var font = new SKFont(SKTypeface.Default, 14);
        using var textPaint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        canvas.DrawText(title, area.Left + Margin, area.Top + 22, font, textPaint);
        if (rows.Count < 2) return;

        var plot = new SKRect(area.Left + Margin, area.Top + 34, area.Right - 20, area.Bottom - 30);
        // Scale to the data and forecasts, but not to intervals that blow up (they would flatten everything else).
        var low = rows.Min(r => Math.Min(r.Actual, r.Predicted));
        var high = rows.Max(r => Math.Max(r.Actual, r.Predicted));
        var span = Math.Max(high - low, 1e-6f);
        low -= 0.1f * span;
        high += 0.1f * span;
        float X(int i) => plot.Left + plot.Width * i / (rows.Count - 1);
        float Y(float v) => plot.Bottom - plot.Height * (Math.Clamp(v, low, high) - low) / (high - low);

        using var axis = new SKPaint { Color = SKColors.Gray, StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        canvas.DrawRect(plot, axis);
        canvas.DrawText(high.ToString("G4", CultureInfo.InvariantCulture), area.Left + 4, plot.Top + 10, font, textPaint);
        canvas.DrawText(low.ToString("G4", CultureInfo.InvariantCulture), area.Left + 4, plot.Bottom, font, textPaint);

        using (var band = new SKPath())
        {
            band.MoveTo(X(0), Y(rows[0].Upper));
            for (var i = 1; i < rows.Count; i++) band.LineTo(X(i), Y(rows[i].Upper));
            for (var i = rows.Count - 1; i >= 0; i--) band.LineTo(X(i), Y(rows[i].Lower));
            band.Close();
            using var fill = new SKPaint { Color = new SKColor(255, 140, 0, 60), Style = SKPaintStyle.Fill, IsAntialias = true };
            canvas.DrawPath(band, fill);
        }
        DrawLine(canvas, rows, r => r.Actual, X, Y, new SKColor(30, 30, 30), 1.2f);
        DrawLine(canvas, rows, r => r.Predicted, X, Y, new SKColor(220, 90, 0), 1.5f);

        using var legendActual = new SKPaint { Color = new SKColor(30, 30, 30), IsAntialias = true };
        using var legendForecast = new SKPaint { Color = new SKColor(220, 90, 0), IsAntialias = true };
        canvas.DrawText("actual", plot.Right - 300, area.Top + 22, font, legendActual);
        canvas.DrawText("forecast (1 step) with interval", plot.Right - 230, area.Top + 22, font, legendForecast);
    }

    private static void DrawLine(SKCanvas canvas, IReadOnlyList<PredictionRow> rows, Func<PredictionRow, float> value,
        Func<int, float> x, Func<float, float> y, SKColor color, float width)
    {
        using var path = new SKPath();
        path.MoveTo(x(0), y(value(rows[0])));
        for (var i = 1; i < rows.Count; i++) path.LineTo(x(i), y(value(rows[i])));
        using var paint = new SKPaint { Color = color, StrokeWidth = width, Style = SKPaintStyle.Stroke, IsAntialias = true };
        canvas.DrawPath(path, paint);
    }

    /// <summary>Reads a predictions CSV written by `replay --out` or `demo`.</summary>
    public static List<PredictionRow> ReadPredictionsCsv(string path)
    {
        var rows = new List<PredictionRow>();
        using var reader = new StreamReader(path);
        var header = reader.ReadLine();
        if (header is null || !header.StartsWith("stream,sequence,timestamp,actual,predicted,lower,upper", StringComparison.Ordinal))
            throw new FormatException($"{path}: not a predictions CSV (expected the header written by `replay --out`).");
        var lineNumber = 1;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var c = line.Split(',');
            if (c.Length < 7) throw new FormatException($"{path} line {lineNumber}: expected at least 7 cells.");
            try
            {
                var inv = CultureInfo.InvariantCulture;
                rows.Add(new PredictionRow(c[0], long.Parse(c[1], inv), DateTimeOffset.Parse(c[2], inv), float.Parse(c[3], inv),
                    float.Parse(c[4], inv), float.Parse(c[5], inv), float.Parse(c[6], inv), c.Length > 7 ? float.Parse(c[7], inv) : float.NaN));
            }
            catch (Exception ex) when (ex is FormatException or OverflowException)
            {
                throw new FormatException($"{path} line {lineNumber}: {ex.Message}");
            }
        }
        return rows;
    }
}
