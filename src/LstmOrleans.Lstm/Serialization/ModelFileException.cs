namespace LstmOrleans.Lstm.Serialization;

/// <summary>
/// A model file could not be read: it is truncated, malformed, over a size limit, or describes a model this
/// engine cannot run. The message says what is wrong in terms a user can act on.
/// </summary>
public sealed class ModelFileException : Exception
{
    public ModelFileException(string message) : base(message) { }

    public ModelFileException(string message, Exception innerException) : base(message, innerException) { }
}
