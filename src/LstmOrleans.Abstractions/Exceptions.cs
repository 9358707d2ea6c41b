namespace LstmOrleans.Abstractions;

/// <summary>Why an observation or batch was rejected.</summary>
public enum RejectionReason
{
    /// <summary>A value is NaN, infinite or larger in magnitude than <see cref="Observation.MaxMagnitude"/>.</summary>
    NonFiniteValue = 1,
    WrongLength = 2,
    TimestampBackwards = 3,
    BatchTooLarge = 4,
    BatchOutOfOrder = 5,
    Empty = 6,
    MissingValues = 7,
    /// <summary>A column batch's timestamp ticks or clock offset do not make a valid date.</summary>
    InvalidTimestamp = 8,
    /// <summary>No sequence numbers are left after the stream's last one to number the batch with.</summary>
    SequenceExhausted = 9,
    /// <summary>
    /// The observation is valid, but the model's step on it came out NaN or infinite (weights that overflow float on
    /// this stream's input); the stream kept its previous state. Fixed by activating or publishing other weights.
    /// </summary>
    NonFiniteResult = 10,
    /// <summary>
    /// A sequence number is negative. Sequence numbers are 0 or greater (the HTTP API's rule too); a stream numbers
    /// values sent without one from 1.
    /// </summary>
    InvalidSequence = 11,
    /// <summary>
    /// The stream id cannot name a new stream (<see cref="LstmOrleansNames.StreamIdProblem"/>): the stream was not
    /// bound and took no value. Streams created before this check keep working.
    /// </summary>
    InvalidStreamId = 12,
    /// <summary>
    /// The timestamp is further ahead of the silo's clock (UTC) than the silo's <c>Streams:MaxTimestampAhead</c> allows:
    /// a sensor clock glitch (year 9999), refused because timestamps never go back and one accepted reading from the
    /// future would have made the stream refuse every real one after it until a reset.
    /// </summary>
    TimestampTooFarAhead = 13,
}

/// <summary>
/// An observation or batch was rejected; nothing in the stream changed. Serializable, so callers across the
/// cluster see the type, reason and message.
/// </summary>
[GenerateSerializer, Alias("lstm.ObservationRejectedException")]
public sealed class ObservationRejectedException : ArgumentException
{
    public ObservationRejectedException(RejectionReason reason, string message, long? sequence = null)
        : base(message)
    {
        Reason = reason;
        Sequence = sequence;
    }

    [Id(0)] public RejectionReason Reason { get; private set; }

    /// <summary>Sequence number of the offending observation, when one is to blame.</summary>
    [Id(1)] public long? Sequence { get; private set; }
}

/// <summary>The named model does not exist (it was never created). Nothing changed.</summary>
[GenerateSerializer, Alias("lstm.ModelNotFoundException")]
public sealed class ModelNotFoundException : InvalidOperationException
{
    public ModelNotFoundException(string modelName)
        : base($"Model '{modelName}' does not exist; create it first.")
    {
        ModelName = modelName;
    }

    [Id(0)] public string ModelName { get; private set; }
}

/// <summary>A model operation was invalid (bad config, wrong parameter count, unknown version...). Nothing changed.</summary>
[GenerateSerializer, Alias("lstm.ModelOperationException")]
public sealed class ModelOperationException : InvalidOperationException
{
    public ModelOperationException(string modelName, string message)
        : base(message)
    {
        ModelName = modelName;
    }

    [Id(0)] public string ModelName { get; private set; }
}
