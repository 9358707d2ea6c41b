namespace LstmOrleans.Abstractions;

/// <summary>
/// The answer to one accepted observation: the stream advanced exactly one LSTM step.
/// All values are in the stream's own units (predictions are de-normalised).
/// </summary>
/// <param name="StreamId">Key of the stream grain.</param>
/// <param name="Sequence">Sequence number of the observation the forecast follows.</param>
/// <param name="Timestamp">Timestamp of that observation.</param>
/// <param name="Predictions">[K]: Predictions[k] forecasts the target k + 1 observations ahead.</param>
/// <param name="Lower">[K]: lower end of the prediction interval, Predictions[k] - z * Rmse[k].</param>
/// <param name="Upper">[K]: upper end of the prediction interval, Predictions[k] + z * Rmse[k].</param>
/// <param name="Rmse">
/// [K]: root of the exponentially weighted mean squared error of past forecasts at each horizon. Until a horizon
/// has been scored at least once it falls back to the target's running standard deviation.
/// </param>
/// <param name="ErrorSamples">[K]: how many forecasts have been scored at each horizon.</param>
/// <param name="PreviousError">
/// Actual target minus the previous step's one-step-ahead forecast; null on a stream's first step.
/// </param>
/// <param name="WeightsVersion">Version of the model weights that produced this forecast.</param>
/// <param name="Duplicate">
/// True when the observation was a retry (sequence not greater than the last accepted): nothing was applied.
/// For a retry of the last accepted observation the original answer is returned; for an older one the stream's
/// current forecast (following the last accepted observation) is returned.
/// </param>
/// <param name="StepCount">Steps taken by the stream so far (after this one).</param>
[GenerateSerializer, Immutable, Alias("lstm.StepResult")]
public sealed record StepResult(
    [property: Id(0)] string StreamId,
    [property: Id(1)] long Sequence,
    [property: Id(2)] DateTimeOffset Timestamp,
    [property: Id(3)] float[] Predictions,
    [property: Id(4)] float[] Lower,
    [property: Id(5)] float[] Upper,
    [property: Id(6)] float[] Rmse,
    [property: Id(7)] long[] ErrorSamples,
    [property: Id(8)] float? PreviousError,
    [property: Id(9)] long WeightsVersion,
    [property: Id(10)] bool Duplicate,
    [property: Id(11)] long StepCount);
