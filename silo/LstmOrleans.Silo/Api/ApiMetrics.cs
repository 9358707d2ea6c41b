using System.Diagnostics.Metrics;

namespace LstmOrleans.Silo.Api;

/// <summary>
/// HTTP-side metrics on the "LstmOrleans" meter (observe with dotnet-counters or an OpenTelemetry exporter).
/// The grains may publish their own instruments on the same meter name.
/// </summary>
public sealed class ApiMetrics : IDisposable
{
    public const string MeterName = "LstmOrleans";

    private readonly Meter _meter;
    private readonly Counter<long> _observations;
    private readonly Counter<long> _steps;
    private readonly Counter<long> _rejected;
    private readonly Histogram<double> _ingestLatency;

    public ApiMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _observations = _meter.CreateCounter<long>("lstmorleans.api.observations", "{observation}", "Observations received by the HTTP API.");
        _steps = _meter.CreateCounter<long>("lstmorleans.api.steps", "{step}", "LSTM steps taken for HTTP observations (duplicates excluded).");
        _rejected = _meter.CreateCounter<long>("lstmorleans.api.rejected", "{request}", "Ingest requests rejected as invalid.");
        _ingestLatency = _meter.CreateHistogram<double>("lstmorleans.api.ingest.duration", "ms", "Time to ingest one request, grain calls included.");
    }

    public void Ingested(int observations, int steps, double milliseconds)
    {
        _observations.Add(observations);
        _steps.Add(steps);
        _ingestLatency.Record(milliseconds);
    }

    public void Rejected() => _rejected.Add(1);

    public void Dispose() => _meter.Dispose();
}
