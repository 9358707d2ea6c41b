namespace LstmOrleans.Client.Replay;

/// <summary>Running MAE and RMSE of one-step-ahead forecasts.</summary>
internal sealed class ErrorTally
{
    private double _absolute;
    private double _squared;

    public long Count { get; private set; }
    public double Mae => Count == 0 ? double.NaN : _absolute / Count;
    public double Rmse => Count == 0 ? double.NaN : Math.Sqrt(_squared / Count);

    public void Add(double predicted, double actual)
    {
        var error = actual - predicted;
        _absolute += Math.Abs(error);
        _squared += error * error;
        Count++;
    }

    public void Add(ErrorTally other)
    {
        _absolute += other._absolute;
        _squared += other._squared;
        Count += other.Count;
    }
}
