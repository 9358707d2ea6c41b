namespace LstmOrleans.Abstractions;

/// <summary>
/// One sensor stream (key = stream id, e.g. "plant-7/boiler-3/temp"). Holds its own LSTM state durably and advances
/// exactly one LSTM step per accepted observation, with the shared weights of the model it is bound to.
/// Also fed by Orleans streams: observations published on (<see cref="LstmOrleansNames.StreamProviderName"/>,
/// <see cref="LstmOrleansNames.ObservationStreamNamespace"/>, key) are ingested with the same rules.
/// </summary>
[Alias("lstm.IStreamGrain")]
public interface IStreamGrain : IGrainWithStringKey
{
    /// <summary>
    /// Binds the stream to a model (null = <see cref="LstmOrleansNames.DefaultModelName"/>). Rebinding to another
    /// model clears the stream's learned state (its shape may differ) but keeps sequence/timestamp ordering, and moves
    /// the stream from the old model's stream listing to the new one's.
    /// Throws <see cref="ModelNotFoundException"/> for an unknown model.
    /// </summary>
    [Alias("Bind")]
    Task<StreamSummary> BindAsync(string? modelName);

    /// <summary>
    /// Applies one observation: exactly one LSTM step unless it is a duplicate. Returns after the new state is
    /// durable (unless the silo is configured to persist less often). Throws <see cref="ObservationRejectedException"/>
    /// or <see cref="ModelNotFoundException"/> and changes nothing when the observation is invalid (a negative sequence
    /// number is, <see cref="RejectionReason.InvalidSequence"/>, in every ingest call).
    /// </summary>
    [Alias("Ingest")]
    Task<StepResult> IngestAsync(Observation observation);

    /// <summary>
    /// Applies observations in order, all or nothing: every element is validated first, the steps are computed on
    /// copies and the state is committed once. Sequence numbers must increase strictly within the batch; elements
    /// at or below the last accepted sequence are reported as duplicates and skipped. One result per element. An empty
    /// batch is rejected (<see cref="RejectionReason.Empty"/>).
    /// </summary>
    [Alias("IngestBatch")]
    Task<StepResult[]> IngestBatchAsync(Observation[] observations);

    /// <summary>
    /// <see cref="IngestBatchAsync"/> for observations without sequence numbers: the stream numbers them after its
    /// last accepted sequence, and stamps those without a timestamp with its clock, in the same turn as it applies
    /// them. So callers sending at once never take the same numbers (the later one would be skipped as a duplicate:
    /// acknowledged but lost) and a server-chosen time is taken after whatever was applied before it. Throws
    /// <see cref="ObservationRejectedException"/> (<see cref="RejectionReason.SequenceExhausted"/> when too few
    /// numbers are left) and changes nothing when the batch is invalid.
    /// </summary>
    [Alias("IngestAfterLast")]
    Task<StepResult[]> IngestAfterLastAsync(UnnumberedObservation[] observations);

    /// <summary>
    /// <see cref="IngestBatchAsync"/> in columns, the cheap way to send many values: the same rules (all or nothing,
    /// duplicates prefix, ordering, <c>MaxBatchSize</c>) and the same steps and commit, answered in columns;
    /// <see cref="BatchForecast.ToStepResults"/> gives exactly the <see cref="StepResult"/>s the row call would return.
    /// </summary>
    [Alias("IngestColumns")]
    Task<BatchForecast> IngestColumnsAsync(ObservationBatch batch);

    /// <summary>The current forecast (after the last accepted observation), or null before the first step.</summary>
    [Alias("GetPrediction")]
    Task<StepResult?> GetPredictionAsync();

    [Alias("GetSummary")]
    Task<StreamSummary> GetSummaryAsync();

    /// <summary>The full durable state (h, c, normalisation and error statistics).</summary>
    [Alias("GetState")]
    Task<StreamStateSnapshot> GetStateAsync();

    /// <summary>Up to <paramref name="maxCount"/> most recent accepted observations, oldest first.</summary>
    [Alias("GetHistory")]
    Task<Observation[]> GetHistoryAsync(int maxCount);

    /// <summary>
    /// Up to <paramref name="maxCount"/> most recent inputs exactly as the LSTM saw them (normalised values, then the
    /// model's calendar features), oldest first,
    /// with the current normalisation statistics; read by the model's training grain.
    /// </summary>
    [Alias("GetTrainingWindow")]
    Task<StreamTrainingWindow> GetTrainingWindowAsync(int maxCount);

    /// <summary>
    /// Forgets everything the stream learned (h, c, statistics, history, sequence and timestamp) but keeps its model
    /// binding; afterwards any sequence number is accepted again.
    /// </summary>
    [Alias("Reset")]
    Task ResetAsync();

    /// <summary>Removes the stream's stored state and its entry in its model's stream listing, and deactivates it.</summary>
    [Alias("Delete")]
    Task DeleteAsync();
}
