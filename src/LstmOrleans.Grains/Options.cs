using LstmOrleans.Abstractions;
using Microsoft.Extensions.Options;

namespace LstmOrleans.Grains;

/// <summary>Behaviour of every stream grain on a silo.</summary>
public sealed class StreamGrainOptions
{
    /// <summary>
    /// Write the stream's state after this many accepted steps. 1 (the default) means every acknowledged observation
    /// is durable before the call returns. Larger values trade durability for speed: after a crash up to N - 1
    /// acknowledged steps are lost (callers may resend them; they are accepted again because the stored sequence
    /// number is older).
    /// </summary>
    public int PersistEverySteps { get; set; } = 1;

    /// <summary>
    /// When positive, also write once this much time has passed since the last write (checked on each step and by a
    /// timer while unsaved steps exist). Only meaningful with <see cref="PersistEverySteps"/> &gt; 1.
    /// </summary>
    public TimeSpan PersistInterval { get; set; } = TimeSpan.Zero;

    /// <summary>Longest <see cref="PersistInterval"/>.</summary>
    public static readonly TimeSpan MaxPersistInterval = TimeSpan.FromDays(1);

    /// <summary>Observations kept per stream (ring buffer), used for training windows and for re-warming after a weights change.</summary>
    public int HistoryCapacity { get; set; } = 512;

    /// <summary>
    /// Observations held in the stream's core state (the open tail chunk) before they are moved, as one record, to the
    /// stream's closed history (a ring of ceil(N / C) + 1 such records). The core state is written on every step, a
    /// history record once per chunk, so this trades the size of every core write (with one feature about 10 bytes per
    /// observation stored when readings come at a steady interval, 24 in memory) against the number of history writes
    /// and of records a full window read takes. A batch of B values writes 1 + B / C records (the core and every chunk
    /// it closes, in one transaction where the store can): at the default 64 a batch of 64 writes two instead of three
    /// at 32, which on SQLite raised batch ingest by 17 % (median of 6 alternating runs) for about 770 more bytes per
    /// active stream (the tail is allocated at C entries) and a larger core record (BENCHMARKS.md, session 12). Fixed
    /// per stream generation: a change applies to streams bound or reset after it.
    /// </summary>
    public int HistoryChunkSize { get; set; } = 64;

    /// <summary>Largest ceil(<see cref="HistoryCapacity"/> / <see cref="HistoryChunkSize"/>): closed-history records a full window read takes.</summary>
    public const int MaxHistoryChunks = 1024;

    /// <summary>
    /// Sets <see cref="HistoryCapacity"/> to <paramref name="capacity"/> and raises <see cref="HistoryChunkSize"/> when
    /// needed so the ring stays within <see cref="MaxHistoryChunks"/> records (for tools that size the history from data).
    /// </summary>
    public void SetHistoryCapacity(int capacity)
    {
        HistoryCapacity = capacity;
        HistoryChunkSize = Math.Max(HistoryChunkSize, (capacity + MaxHistoryChunks - 1) / MaxHistoryChunks);
    }

    /// <summary>Largest batch accepted by IngestBatch.</summary>
    public int MaxBatchSize { get; set; } = 1024;

    /// <summary>Half-width of the prediction interval in multiples of the RMSE (1.96 ~ 95 % for Gaussian errors).</summary>
    public double IntervalZ { get; set; } = 1.96;

    /// <summary>Weight of the newest squared error in the per-horizon EWMA.</summary>
    public double ErrorSmoothing { get; set; } = 0.05;

    /// <summary>
    /// A batch (with its re-warm replay, if any) or a re-warm whose estimated work reaches this many multiply-adds is
    /// computed on the thread pool instead of in the grain's turn, so CPU-heavy work never holds the grain scheduler;
    /// below it, the hop would cost more than the work. The estimate is steps x (the model's multiply-adds per step,
    /// per layer 4H(D_l + H) plus the K x H head, + 2000 for the per-step bookkeeping). The default, 3M, is about
    /// 100 us of compute on this project's AVX-512 kernel (~30 multiply-adds per ns): a batch of 64 at H = 32
    /// (~0.4M, ~10 us) stays in the turn; 64 steps at H = 128 (~4.4M) or a 512-step re-warm at H = 64 (~9.6M) leave it.
    /// </summary>
    public long OffloadMultiplyAdds { get; set; } = 3_000_000;

    /// <summary>
    /// How far ahead of the silo's clock (UTC) an observation's timestamp may be; a later one is refused
    /// (<see cref="RejectionReason.TimestampTooFarAhead"/>) and changes nothing. Timestamps never go back, so one accepted
    /// reading from a sensor whose clock jumped (year 9999) made the stream refuse every real reading after it until a
    /// reset. The default, a day, leaves room for sensor clocks that run ahead and for local times labelled UTC (at most
    /// 14 hours). <see cref="TimeSpan.Zero"/> turns the check off (data stamped in the future on purpose, e.g. simulations).
    /// </summary>
    public TimeSpan MaxTimestampAhead { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// Whether UTC ticks <paramref name="utcTicks"/> are more than <see cref="MaxTimestampAhead"/> after
    /// <paramref name="now"/>; never when the check is off. Compares differences, so no limit overflows a date.
    /// </summary>
    public bool IsTooFarAhead(long utcTicks, DateTimeOffset now) =>
        MaxTimestampAhead > TimeSpan.Zero && utcTicks - now.UtcTicks > MaxTimestampAhead.Ticks;

    /// <summary>
    /// The refusal of a timestamp <see cref="IsTooFarAhead"/> found, naming it (<paramref name="subject"/>, e.g.
    /// "Observation 5"), the silo's time, the limit and the setting. Built only when thrown: callers check first.
    /// </summary>
    public ObservationRejectedException TimestampTooFarAhead(string subject, DateTimeOffset timestamp, DateTimeOffset now, long? sequence) =>
        new(RejectionReason.TimestampTooFarAhead,
            $"{subject} at {timestamp:O} is more than {MaxTimestampAhead} ahead of the silo's clock ({now:O}); the limit is the silo's " +
            $"Streams:{nameof(MaxTimestampAhead)} ({MaxTimestampAhead}, 00:00:00 turns it off). Nothing in the stream changed.", sequence);
}

/// <summary>Behaviour of the model grains.</summary>
public sealed class ModelGrainOptions
{
    /// <summary>Versions retained for rollback (the active one is never dropped).</summary>
    public int MaxRetainedVersions { get; set; } = 16;

    /// <summary>A silo cache's observer registration lapses after this long without renewal.</summary>
    public TimeSpan ObserverExpiry { get; set; } = TimeSpan.FromMinutes(3);
}

/// <summary>Behaviour of the per-silo <see cref="ModelWeightsCache"/>.</summary>
public sealed class ModelWeightsCacheOptions
{
    /// <summary>
    /// How often the cache renews its observer registrations and checks each cached model's active version, so a
    /// silo that missed a push catches up. Keep well below <see cref="ModelGrainOptions.ObserverExpiry"/>.
    /// </summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>Rejects unusable <see cref="StreamGrainOptions"/> (at silo start, and in the silo host's configuration check).</summary>
public sealed class StreamGrainOptionsValidator : IValidateOptions<StreamGrainOptions>
{
    private const int MaxHistoryChunks = StreamGrainOptions.MaxHistoryChunks;

    public ValidateOptionsResult Validate(string? name, StreamGrainOptions options)
    {
        var errors = new List<string>();
        if (options.PersistEverySteps < 1) errors.Add($"{nameof(options.PersistEverySteps)} must be at least 1.");
        // It is also the period of a grain timer, which cannot wait longer than ~49.7 days: beyond that every stream's
        // activation failed. A day is far past any useful bound on unsaved steps.
        if (options.PersistInterval < TimeSpan.Zero || options.PersistInterval > StreamGrainOptions.MaxPersistInterval)
            errors.Add($"{nameof(options.PersistInterval)} must be between 00:00:00 and {StreamGrainOptions.MaxPersistInterval}; got {options.PersistInterval}.");
        if (options.HistoryCapacity < 1 || options.HistoryCapacity > 1_000_000) errors.Add($"{nameof(options.HistoryCapacity)} must be between 1 and 1000000.");
        if (options.HistoryChunkSize < 1 || options.HistoryChunkSize > 4096) errors.Add($"{nameof(options.HistoryChunkSize)} must be between 1 and 4096.");
        if (options.HistoryCapacity >= 1 && options.HistoryChunkSize >= 1
            && (options.HistoryCapacity + options.HistoryChunkSize - 1) / options.HistoryChunkSize > MaxHistoryChunks)
            errors.Add($"{nameof(options.HistoryCapacity)} / {nameof(options.HistoryChunkSize)} must be at most {MaxHistoryChunks} " +
                $"(got {options.HistoryCapacity} / {options.HistoryChunkSize}): the closed history is a ring of ceil(N / C) + 1 records, " +
                $"and a full window reads them all; raise {nameof(options.HistoryChunkSize)}.");
        if (options.MaxBatchSize < 1) errors.Add($"{nameof(options.MaxBatchSize)} must be at least 1.");
        if (!(options.IntervalZ >= 0) || double.IsInfinity(options.IntervalZ)) errors.Add($"{nameof(options.IntervalZ)} must be a finite number >= 0.");
        if (!(options.ErrorSmoothing > 0 && options.ErrorSmoothing <= 1)) errors.Add($"{nameof(options.ErrorSmoothing)} must be in (0, 1].");
        if (options.OffloadMultiplyAdds < 1) errors.Add($"{nameof(options.OffloadMultiplyAdds)} must be at least 1.");
        if (options.MaxTimestampAhead < TimeSpan.Zero)
            errors.Add($"{nameof(options.MaxTimestampAhead)} must be positive, or 00:00:00 for no limit; got {options.MaxTimestampAhead}.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

internal sealed class ModelGrainOptionsValidator : IValidateOptions<ModelGrainOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelGrainOptions options)
    {
        if (options.MaxRetainedVersions < 1) return ValidateOptionsResult.Fail($"{nameof(options.MaxRetainedVersions)} must be at least 1.");
        if (options.ObserverExpiry <= TimeSpan.Zero) return ValidateOptionsResult.Fail($"{nameof(options.ObserverExpiry)} must be positive.");
        return ValidateOptionsResult.Success;
    }
}

internal sealed class ModelWeightsCacheOptionsValidator : IValidateOptions<ModelWeightsCacheOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelWeightsCacheOptions options) =>
        options.RefreshInterval > TimeSpan.Zero
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"{nameof(options.RefreshInterval)} must be positive.");
}
