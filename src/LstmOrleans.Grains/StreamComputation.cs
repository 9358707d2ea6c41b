using System.Buffers;
using System.Numerics.Tensors;
using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;

namespace LstmOrleans.Grains;

/// <summary>
/// The arithmetic of a stream, on a <see cref="StreamState"/> with no Orleans in sight, so the grain stays a thin
/// shell of validation, persistence and scheduling.
///
/// Normalisation (<see cref="NormalizationMode.RunningZScore"/>): the arithmetic of <see cref="RunningZScore"/> (shared
/// with offline <c>model predict</c> and <c>model train</c>), applied per accepted observation. Statistics come only from
/// observations already received (this one included), never later ones.
/// </summary>
internal static class StreamComputation
{

    /// <summary>
    /// (Re)binds <paramref name="s"/> to a model: fresh learned state and a new history generation (earlier history
    /// records are ignored from now on), ordering (sequence, timestamp) kept.
    /// </summary>
    public static void Bind(StreamState s, CachedModel model, int historyCapacity, int chunkSize)
    {
        var config = model.Config;
        int d = config.InputSize, k = config.Horizons, n = historyCapacity;
        int stateSize = config.Layers * config.HiddenSize;
        s.ModelName = model.Name;
        s.WeightsVersion = model.Version;
        s.InputSize = d;
        s.ModelInputSize = config.ModelInputSize;
        s.Horizons = k;
        s.Hidden = new float[stateSize];
        s.Cell = new float[stateSize];
        s.StepCount = 0;
        s.NormCount = 0;
        s.Mean = new double[d];
        s.M2 = new double[d];
        s.HistoryCapacity = n;
        s.Generation++;
        s.ClosedCount = 0;
        s.Tail = ObservationChunk.Create(0, Math.Min(chunkSize, n), d, config.ModelInputSize);
        s.PendingClosed = null;
        s.ErrorMeanSquare = new double[k];
        s.ErrorSamples = new long[k];
        s.Pending = new float[k * k];
        s.LatestAnswer.Clear();
    }

    /// <summary>Throws <see cref="ObservationRejectedException"/> unless the observation has D finite values.</summary>
    public static void ValidateValues(Observation? observation, int inputSize)
    {
        if (observation is null) throw NullObservation();
        ValidateValues(observation.Values, observation.Sequence, inputSize);
    }

    /// <summary>Throws <see cref="ObservationRejectedException"/> unless <paramref name="values"/> (observation <paramref name="sequence"/>'s) are D finite values.</summary>
    private static void ValidateValues(float[]? values, long sequence, int inputSize)
    {
        if (values is null)
            throw new ObservationRejectedException(RejectionReason.MissingValues, $"Observation {sequence} has no values.", sequence);
        if (values.Length != inputSize)
            throw new ObservationRejectedException(RejectionReason.WrongLength,
                $"Observation {sequence} has {values.Length} values; the model expects {inputSize}.", sequence);
        for (int i = 0; i < inputSize; i++)
            if (!Observation.IsAcceptable(values[i]))
                throw new ObservationRejectedException(RejectionReason.NonFiniteValue,
                    $"Observation {sequence} value {i} is {values[i]}; values must be finite and at most {Observation.MaxMagnitude:G} in magnitude.", sequence);
    }

    private static ObservationRejectedException NullObservation() => new(RejectionReason.MissingValues, "Observation is null.");

    /// <summary>
    /// Readings sent without sequence numbers (<see cref="IStreamGrain.IngestAfterLastAsync"/>), numbered
    /// <paramref name="firstSequence"/>, +1, ... and, where they have no timestamp, stamped <paramref name="now"/>, in
    /// columns: checked row by row as <see cref="ValidateValues(Observation?, int)"/> checks the numbered observations
    /// (the same rejections, naming the numbers given), without building an <see cref="Observation"/> per reading.
    /// </summary>
    public static ObservationBatch NumberAfterLast(UnnumberedObservation[] readings, long firstSequence, DateTimeOffset now, int inputSize)
    {
        for (int i = 0; i < readings.Length; i++)
        {
            if (readings[i] is not { } reading) throw NullObservation();
            ValidateValues(reading.Values, firstSequence + i, inputSize);
        }
        return ObservationBatch.Numbered(readings, firstSequence, now, inputSize);
    }

    /// <summary>
    /// Throws <see cref="ObservationRejectedException"/> (<see cref="RejectionReason.InvalidSequence"/>) for a negative
    /// sequence number. Sequence numbers are 0 or greater everywhere (the HTTP API refused negative ones, the grain took
    /// them): a new stream that took -5 then numbered the values sent without one -4, -3, ...
    /// </summary>
    /// <param name="batchIndex">The element's index in a batch of more than one, else null.</param>
    public static void ValidateSequence(long sequence, int? batchIndex = null)
    {
        if (sequence < 0)
            throw new ObservationRejectedException(RejectionReason.InvalidSequence,
                $"{(batchIndex is { } i ? $"Batch element {i} has sequence number" : "Sequence number")} {sequence}; sequence numbers must be 0 or greater.", sequence);
    }

    /// <summary>
    /// Checks a whole batch against the stream before anything changes (the rules of <see cref="IStreamGrain.IngestBatchAsync"/>):
    /// at least one element, consistent columns of D values, finite values, strictly increasing sequences, timestamps
    /// never going back from the last accepted one. Elements at or below the stream's last sequence (necessarily a
    /// prefix) are duplicates; returns how many. Throws <see cref="ObservationRejectedException"/> for the first fault.
    /// </summary>
    public static int ValidateBatch(StreamState s, ObservationBatch batch, int inputSize)
    {
        if (batch.CheckShape(inputSize) is { } rejection) throw rejection;
        int n = batch.Count, d = inputSize;
        if (n == 0) throw new ObservationRejectedException(RejectionReason.Empty, "Batch rejected: it holds no observations.");
        var sequences = batch.Sequences;
        var ticks = batch.TimestampTicks;
        var values = batch.Values;
        int firstNew = 0;
        long? previousTicks = s.HasSequence ? s.LastTimestamp.UtcTicks : null;
        for (int i = 0; i < n; i++)
        {
            long sequence = sequences[i];
            ValidateSequence(sequence, n == 1 ? null : i);
            var row = values.Slice(i * d, d);
            for (int f = 0; f < d; f++)
                if (!Observation.IsAcceptable(row[f]))
                    throw new ObservationRejectedException(RejectionReason.NonFiniteValue,
                        $"{Element(n, i, sequence)} value {f} is {row[f]}; values must be finite and at most {Observation.MaxMagnitude:G} in magnitude.", sequence);
            if (i > 0 && sequence <= sequences[i - 1])
                throw new ObservationRejectedException(RejectionReason.BatchOutOfOrder,
                    $"Batch element {i} has sequence {sequence}, not greater than the previous element's {sequences[i - 1]}.", sequence);
            if (s.HasSequence && sequence <= s.LastSequence) { firstNew = i + 1; continue; }
            if (previousTicks is { } previous && ticks[i] < previous)
                throw new ObservationRejectedException(RejectionReason.TimestampBackwards,
                    n == 1
                        ? $"{Element(n, i, sequence)} at {batch.Timestamp(i):O} is earlier than the last accepted one at {new DateTimeOffset(previous, TimeSpan.Zero):O}."
                        : $"{Element(n, i, sequence)} at {batch.Timestamp(i):O} is earlier than {new DateTimeOffset(previous, TimeSpan.Zero):O}.", sequence);
            previousTicks = ticks[i];
        }
        return firstNew;
    }

    /// <summary>
    /// Throws <see cref="RejectionReason.TimestampTooFarAhead"/> when an element the batch would apply (from
    /// <paramref name="firstNew"/>, as <see cref="ValidateBatch"/> returned it) is stamped more than
    /// <see cref="StreamGrainOptions.MaxTimestampAhead"/> after <paramref name="now"/>. ValidateBatch has checked that
    /// those elements' timestamps never decrease, so the last one is the latest: a valid batch costs one comparison and
    /// allocates nothing; the first offending element is looked for only when there is one.
    /// </summary>
    public static void CheckNotTooFarAhead(ObservationBatch batch, int firstNew, DateTimeOffset now, StreamGrainOptions options)
    {
        int n = batch.Count;
        var ticks = batch.TimestampTicks;
        if (firstNew >= n || !options.IsTooFarAhead(ticks[n - 1], now)) return;
        int i = firstNew;
        while (!options.IsTooFarAhead(ticks[i], now)) i++;
        long sequence = batch.Sequences[i];
        throw options.TimestampTooFarAhead(Element(n, i, sequence), batch.Timestamp(i), now, sequence);
    }

    /// <summary>
    /// How a rejection names batch element <paramref name="index"/>, built only when one is thrown (every element of every
    /// batch passes through the loop above). A batch of one is how a single value sent without a sequence number arrives
    /// (IngestAfterLastAsync): its messages speak of the observation, as IngestAsync's do, not of batch element 0.
    /// </summary>
    private static string Element(int count, int index, long sequence) =>
        count == 1 ? $"Observation {sequence}" : $"Batch element {index} (sequence {sequence})";

    public static double NormalizationStd(StreamState s, int feature) => RunningZScore.Std(s.M2[feature], s.NormCount);

    private static double RawStd(StreamState s, int feature) => s.NormCount > 0 ? Math.Sqrt(Math.Max(0, s.M2[feature] / s.NormCount)) : 0;

    /// <summary>
    /// Re-derives (h, c) for the model's current weights by replaying the stored inputs of <paramref name="window"/>
    /// (the retained history, see <see cref="Window"/>) from zero state, then recomputes the newest step's forecasts
    /// (the ones the next observation is scored against).
    /// </summary>
    public static void Rewarm(StreamState s, CachedModel model, ObservationChunk window)
    {
        // Replayed into fresh arrays: the stream's own state changes only once the replay has come out finite.
        var hidden = new float[s.Hidden.Length];                        // [L*H]
        var cell = new float[s.Cell.Length];                            // [L*H]
        int w = s.InputWidth, k = s.Horizons;
        var y = new float[k];                                           // [K]
        for (int i = 0; i < window.Count; i++)
            model.Weights.Step(window.Inputs.AsSpan(i * w, w), hidden, cell, y);
        if (window.Count > 0)
        {
            AddResidualBase(model.Config, window.Inputs.AsSpan((window.Count - 1) * w, w), y);
            Denormalize(model.Config, s.Mean[model.Config.TargetIndex], NormalizationStd(s, model.Config.TargetIndex), y);
        }
        if (!TensorPrimitives.IsFiniteAll<float>(hidden) || !TensorPrimitives.IsFiniteAll<float>(cell) || !TensorPrimitives.IsFiniteAll<float>(y))
            throw NonFiniteResult(model, $"re-warming the stream on the {window.Count} retained observations gave a NaN or infinite state or forecast", null);
        hidden.CopyTo(s.Hidden, 0);
        cell.CopyTo(s.Cell, 0);
        if (window.Count > 0) y.CopyTo(s.Pending.AsSpan((int)((s.StepCount - 1) % k) * k, k));
        s.WeightsVersion = model.Version;
    }

    /// <summary>
    /// A step (or re-warm) whose result is not finite: the model's weights overflow float on this stream's input.
    /// Publishing refuses weights that could (<see cref="ModelParameterBounds"/>), so this guards versions stored before
    /// that check and anything it did not foresee; the stream keeps its previous state rather than carrying NaN on.
    /// </summary>
    private static ObservationRejectedException NonFiniteResult(CachedModel model, string what, long? sequence) =>
        new(RejectionReason.NonFiniteResult,
            $"Model '{model.Name}' version {model.Version}: {what}; nothing in the stream changed. Activate or publish other weights for the model.",
            sequence);

    /// <summary>
    /// One accepted observation: update statistics, score the earlier forecasts that target it, take exactly one
    /// LSTM step and record the new forecasts; returns its answer, which also becomes <see cref="StreamState.Latest"/>.
    /// The caller has validated the observation and its ordering.
    /// </summary>
    public static StepResult Step(StreamState s, string streamId, Observation observation, CachedModel model, StreamGrainOptions options)
    {
        // The forecasts go straight into the stream's answer buffers (overwritten in place on every step, so nothing
        // allocated here outlives the call); the caller gets a record with its own copies.
        int k = s.Horizons;
        Span<double> rmse = k <= 64 ? stackalloc double[k] : new double[k];   // [K]
        // Forecasts reach the answer buffers only once the step has been accepted: a refused step leaves the last answer.
        Span<float> predictions = k <= 64 ? stackalloc float[k] : new float[k];   // [K]
        float previousError = StepInto(s, observation.Sequence, observation.Timestamp, observation.Values, model, options.ErrorSmoothing, predictions, rmse);
        WriteLatestAnswer(s, streamId, observation.Sequence, observation.Timestamp, predictions, rmse, previousError, options.IntervalZ);
        return s.LatestAnswer.ToStepResult()!;
    }

    /// <summary>
    /// Writes the answer to the step just taken into the stream's answer buffers (<see cref="StreamState.LatestAnswer"/>):
    /// its forecasts <paramref name="predictions"/> [K], RMSE <paramref name="rmse"/> [K] and one-step error as
    /// <see cref="StepInto"/> gave them, the error sample counts of the stream as it now is. The single-value answer
    /// and a batch's last element's (what <see cref="BatchForecast.StepResultAt"/> gives for it) are the same values.
    /// </summary>
    private static void WriteLatestAnswer(StreamState s, string streamId, long sequence, DateTimeOffset timestamp,
        ReadOnlySpan<float> predictions, ReadOnlySpan<double> rmse, float previousError, double intervalZ)
    {
        var answer = s.LatestAnswer;
        answer.Prepare(s.Horizons);
        predictions.CopyTo(answer.Predictions);
        BatchForecast.WriteIntervals(answer.Predictions, rmse, intervalZ, answer.Lower, answer.Upper, answer.Rmse);
        s.ErrorSamples.CopyTo(answer.ErrorSamples, 0);
        answer.StreamId = streamId;
        answer.Sequence = sequence;
        answer.Timestamp = timestamp;
        answer.PreviousError = s.StepCount == 1 ? null : previousError;
        answer.WeightsVersion = s.WeightsVersion;
        answer.Duplicate = false;
        answer.StepCount = s.StepCount;
    }

    /// <summary>
    /// <see cref="StepBatch"/> after a re-warm over <paramref name="rewarmWindow"/> when one is given, in the caller's turn,
    /// or on the thread pool when the estimated work is too much for a turn (<see cref="ShouldOffload"/>). Only the
    /// offloaded path allocates a closure and a task: the caller's turn allocates the answer alone, as StepBatch does.
    /// </summary>
    public static ValueTask<BatchForecast> StepBatchOffloadingAsync(StreamState s, string streamId, ObservationBatch batch, int firstNew,
        StepResult? duplicateAnswer, CachedModel model, ObservationChunk? rewarmWindow, StreamGrainOptions options)
    {
        long steps = batch.Count - firstNew + (rewarmWindow?.Count ?? 0);
        return ShouldOffload(model, steps, options)
            ? new(OnThreadPool(s, streamId, batch, firstNew, duplicateAnswer, model, rewarmWindow, options))
            : new(RewarmAndStepBatch(s, streamId, batch, firstNew, duplicateAnswer, model, rewarmWindow, options));
    }

    /// <summary>The offloaded path: its own method, so that only it pays for the lambda's closure.</summary>
    private static Task<BatchForecast> OnThreadPool(StreamState s, string streamId, ObservationBatch batch, int firstNew,
        StepResult? duplicateAnswer, CachedModel model, ObservationChunk? rewarmWindow, StreamGrainOptions options) =>
        Task.Run(() => RewarmAndStepBatch(s, streamId, batch, firstNew, duplicateAnswer, model, rewarmWindow, options));

    private static BatchForecast RewarmAndStepBatch(StreamState s, string streamId, ObservationBatch batch, int firstNew,
        StepResult? duplicateAnswer, CachedModel model, ObservationChunk? rewarmWindow, StreamGrainOptions options)
    {
        if (rewarmWindow is not null) Rewarm(s, model, rewarmWindow);
        return StepBatch(s, streamId, batch, firstNew, duplicateAnswer, model, options);
    }

    /// <summary>
    /// Steps the new elements (<paramref name="firstNew"/> onwards) of a validated batch, in order, and answers in columns.
    /// Every element goes through the same <see cref="StepInto"/> as <see cref="Step"/>, writing into the answer's
    /// columns instead of a record per value; <see cref="StreamState.Latest"/> is set once, to the last element's answer.
    /// </summary>
    public static BatchForecast StepBatch(StreamState s, string streamId, ObservationBatch batch, int firstNew, StepResult? duplicateAnswer,
        CachedModel model, StreamGrainOptions options)
    {
        int n = batch.Count, m = n - firstNew, k = s.Horizons, d = s.InputSize;
        var predictions = ArrayPool<float>.Shared.Rent(m * k);          // [m, K]
        var rmse = ArrayPool<double>.Shared.Rent(m * k);                // [m, K]
        var previousErrors = ArrayPool<float>.Shared.Rent(m);           // [m]
        try
        {
            long firstStepCount = s.StepCount + 1;
            var sequences = batch.Sequences;
            var values = batch.Values;
            for (int j = 0; j < m; j++)
            {
                int i = firstNew + j;
                previousErrors[j] = StepInto(s, sequences[i], batch.Timestamp(i), values.Slice(i * d, d), model, options.ErrorSmoothing,
                    predictions.AsSpan(j * k, k), rmse.AsSpan(j * k, k));
            }
            var forecast = new BatchForecast(streamId, n, k, firstNew, duplicateAnswer, s.WeightsVersion, firstStepCount, options.IntervalZ,
                (long[])s.ErrorSamples.Clone(), predictions.AsSpan(0, m * k), rmse.AsSpan(0, m * k), previousErrors.AsSpan(0, m));
            // The last element's answer straight into the stream's buffers: setting Latest to forecast.StepResultAt(m - 1)
            // built a record and five arrays per batch only to copy them in.
            if (m > 0)
                WriteLatestAnswer(s, streamId, sequences[n - 1], batch.Timestamp(n - 1), predictions.AsSpan((m - 1) * k, k), rmse.AsSpan((m - 1) * k, k),
                    previousErrors[m - 1], options.IntervalZ);
            return forecast;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(predictions);
            ArrayPool<double>.Shared.Return(rmse);
            ArrayPool<float>.Shared.Return(previousErrors);
        }
    }

    /// <summary>
    /// The arithmetic of one accepted observation, shared by the single and batch paths: writes the new forecasts
    /// (<paramref name="predictions"/> [K], stream units) and the RMSE per horizon after scoring
    /// (<paramref name="rmse"/> [K], unrounded); returns the one-step error of the previous forecast (NaN on the
    /// stream's first step). Throws <see cref="ObservationRejectedException"/> (<see cref="RejectionReason.NonFiniteResult"/>)
    /// and changes nothing in <paramref name="s"/> when the step's state or forecasts come out NaN or infinite.
    /// </summary>
    internal static float StepInto(StreamState s, long sequence, DateTimeOffset timestamp, ReadOnlySpan<float> values, CachedModel model,
        double alpha, Span<float> predictions, Span<double> rmse)
    {
        var config = model.Config;
        int d = s.InputSize, w = s.InputWidth, k = s.Horizons, target = config.TargetIndex, state = s.Hidden.Length;

        // The step is computed before the stream changes: the updated statistics and the model input in scratch, h and
        // c stepped in place with a copy of their previous values to put back, so a step that comes out non-finite is
        // refused and leaves the stream as it was. The copies are 2 L*H floats against the step's 4 H (D + H) L
        // multiply-adds.
        double[]? rentedDoubles = null;
        float[]? rentedFloats = null;
        Span<double> statistics = 2 * d <= ScratchOnStack / 2
            ? stackalloc double[2 * d]
            : (rentedDoubles = ArrayPool<double>.Shared.Rent(2 * d)).AsSpan(0, 2 * d);
        int floats = w + 2 * state;
        Span<float> scratch = floats <= ScratchOnStack
            ? stackalloc float[floats]
            : (rentedFloats = ArrayPool<float>.Shared.Rent(floats)).AsSpan(0, floats);
        try
        {
            Span<double> mean = statistics[..d], m2 = statistics[d..];          // [D] each
            Span<float> input = scratch[..w];                                   // [D_in]
            Span<float> previousHidden = scratch.Slice(w, state), previousCell = scratch.Slice(w + state, state);

            // Welford update, then normalise with statistics that include this observation and nothing later.
            long count = s.NormCount + 1;
            RunningZScore.Update(values, s.Mean, s.M2, count, mean, m2);
            EncodeInput(model, values, mean, m2, count, timestamp, input);

            // Exactly one LSTM step.
            s.Hidden.CopyTo(previousHidden);
            s.Cell.CopyTo(previousCell);
            model.Weights.Step(input, s.Hidden, s.Cell, predictions);
            AddResidualBase(config, input, predictions);
            Denormalize(config, mean[target], RunningZScore.Std(m2[target], count), predictions);
            if (!TensorPrimitives.IsFiniteAll<float>(predictions) || !TensorPrimitives.IsFiniteAll<float>(s.Hidden) || !TensorPrimitives.IsFiniteAll<float>(s.Cell))
            {
                previousHidden.CopyTo(s.Hidden);
                previousCell.CopyTo(s.Cell);
                throw NonFiniteResult(model, $"observation {sequence} gave a NaN or infinite LSTM state or forecast (its weights overflow float on this input)", sequence);
            }

            // Accepted: record the observation and its statistics. Tail slot for this observation (a full tail is
            // closed first: moved to the pending closed history).
            var tail = s.Tail;
            if (tail.Count == tail.Capacity) CloseTail(s);
            int slot = tail.Count++;
            tail.Sequences[slot] = sequence;
            tail.Ticks[slot] = timestamp.UtcTicks;
            values.CopyTo(tail.Values.AsSpan(slot * d, d));
            input.CopyTo(tail.Inputs.AsSpan(slot * w, w));
            s.NormCount = count;
            mean.CopyTo(s.Mean);
            m2.CopyTo(s.M2);

            // Score the forecasts made 1..K steps ago for this step (before this step's forecasts take their slot,
            // which held those of K steps ago).
            float actual = values[target];
            float previousError = float.NaN;
            for (int h = 1; h <= k && h <= s.StepCount; h++)
            {
                long madeAt = s.StepCount - h;
                float forecast = s.Pending[(int)(madeAt % k) * k + (h - 1)];
                double error = (double)actual - forecast;
                double squared = error * error;
                s.ErrorMeanSquare[h - 1] = s.ErrorSamples[h - 1] == 0 ? squared : (1 - alpha) * s.ErrorMeanSquare[h - 1] + alpha * squared;
                s.ErrorSamples[h - 1]++;
                if (h == 1) previousError = (float)error;
            }
            predictions.CopyTo(s.Pending.AsSpan((int)(s.StepCount % k) * k, k));

            s.StepCount++;
            s.HasSequence = true;
            s.LastSequence = sequence;
            s.LastTimestamp = timestamp;
            s.WeightsVersion = model.Version;
            for (int h = 0; h < k; h++)
                rmse[h] = s.ErrorSamples[h] > 0 ? Math.Sqrt(s.ErrorMeanSquare[h]) : RawStd(s, target);
            return previousError;
        }
        finally
        {
            if (rentedDoubles is not null) ArrayPool<double>.Shared.Return(rentedDoubles);
            if (rentedFloats is not null) ArrayPool<float>.Shared.Return(rentedFloats);
        }
    }

    /// <summary>Floats of per-step scratch (model input and the previous h and c) kept on the stack rather than rented.</summary>
    private const int ScratchOnStack = 512;

    /// <summary>
    /// Multiply-adds of one step of <paramref name="config"/>'s LSTM: per layer 4H x (D_l + H) gate sums, then the
    /// K x H head. The unit of the offload decision (<see cref="StreamGrainOptions.OffloadMultiplyAdds"/>).
    /// </summary>
    public static long MultiplyAddsPerStep(Lstm.LstmConfig config)
    {
        long total = (long)config.Horizons * config.HiddenSize;
        for (int l = 0; l < config.Layers; l++) total += 4L * config.HiddenSize * (config.LayerInputSize(l) + config.HiddenSize);
        return total;
    }

    /// <summary>
    /// Estimated work of <paramref name="steps"/> steps (LSTM steps plus the per-step bookkeeping of normalising,
    /// scoring and recording, counted as <see cref="StepOverheadMultiplyAdds"/>), in multiply-adds.
    /// </summary>
    public static long EstimatedWork(CachedModel model, long steps) => steps * (MultiplyAddsPerStep(model.Weights.Config) + StepOverheadMultiplyAdds);

    /// <summary>Whether <paramref name="steps"/> steps are too much work for a grain turn (see <see cref="StreamGrainOptions.OffloadMultiplyAdds"/>).</summary>
    public static bool ShouldOffload(CachedModel model, long steps, StreamGrainOptions options) => EstimatedWork(model, steps) >= options.OffloadMultiplyAdds;

    /// <summary>
    /// The bookkeeping of one step (Welford update, input encoding, error scoring, tail copy: ~0.05-0.1 us with one
    /// feature), expressed in multiply-adds of the LSTM kernel (~30 per ns), so tiny models are not counted as free.
    /// </summary>
    public const long StepOverheadMultiplyAdds = 2_000;

    /// <summary>
    /// The model input x [D_in] of one observation: its values normalised with the statistics of this step (which
    /// include it), then the model's calendar features of its timestamp (see <see cref="ModelInputs"/>).
    /// </summary>
    private static void EncodeInput(CachedModel model, ReadOnlySpan<float> raw, ReadOnlySpan<double> mean, ReadOnlySpan<double> m2, long count,
        DateTimeOffset timestamp, Span<float> x)
    {
        int d = raw.Length;
        if (model.Config.Normalization == NormalizationMode.RunningZScore)
            RunningZScore.Normalize(raw, mean, m2, count, x[..d]);
        else
            raw.CopyTo(x);
        ModelInputs.WriteCalendarFeatures(timestamp, model.Calendar, x[d..]);
    }

    /// <summary>Residual models: the head's outputs y [K] are changes from the current target input; make them levels.</summary>
    private static void AddResidualBase(ModelConfig config, ReadOnlySpan<float> input, Span<float> y)
    {
        if (config.Residual) LstmOrleans.Lstm.ResidualHead.ToLevels(input, config.TargetIndex, y);
    }

    private static void Denormalize(ModelConfig config, double mean, double std, Span<float> y)
    {
        if (config.Normalization == NormalizationMode.RunningZScore) RunningZScore.Denormalize(mean, std, y);
    }

    /// <summary>The answer to a retry: the last answer, flagged, or a bare marker when there is none.</summary>
    public static StepResult Duplicate(StreamState s, string streamId) =>
        s.LatestAnswer.ToStepResult(duplicate: true)
            ?? new StepResult(streamId, s.LastSequence, s.LastTimestamp, [], [], [], [], [], null, s.WeightsVersion, true, s.StepCount);

    /// <summary>Moves the (full) tail into the pending closed history; the tail starts over at the next index.</summary>
    private static void CloseTail(StreamState s)
    {
        var tail = s.Tail;
        int d = s.InputSize, w = s.InputWidth;
        var pending = s.PendingClosed ??= ObservationChunk.Create(s.ClosedCount, tail.Capacity, d, w);
        for (int i = 0; i < tail.Count; i++) pending.AppendFrom(tail, i, d, w);
        s.ClosedCount += tail.Count;
        tail.Count = 0;
        tail.StartIndex = s.ClosedCount;
    }

    /// <summary>First index the newest <paramref name="maxCount"/> retained observations (at most N) would start at.</summary>
    private static long WantedStart(StreamState s, int maxCount) =>
        Math.Max(0, s.ClosedCount + s.Tail.Count - Math.Min(maxCount, s.HistoryCapacity));

    // ---- closed history: one record per chunk, in a ring of slots ----
    //
    // Closed observations are stored a chunk per record: the chunk starting at index j*C (C = the tail's capacity,
    // fixed for a generation) goes to slot j mod S, S = ceil(N / C) + 1. Closing a chunk writes one small record and
    // reads nothing: no record ever holds more than C observations, however large N is. S - 1 slots hold the N
    // retained observations at any tail position; the extra slot keeps the chunks the previous core needs while the
    // next one is written, so a crash between the history writes and the core write leaves the old core its whole
    // history when one chunk closed (when a batch closes several at once, the old core may lose its oldest ones: its
    // window then starts later, it never shows wrong entries). Every record carries its chunk's start index and
    // generation, and readers take an entry from a record only when that record covers exactly that index.

    /// <summary>C, observations per closed-history record (the tail's capacity).</summary>
    public static int HistoryChunkSize(StreamState s) => Math.Max(1, s.Tail.Capacity);

    /// <summary>S, the slots of the stream's closed-history ring: ceil(N / C) + 1.</summary>
    public static int HistorySlotCount(StreamState s)
    {
        int c = HistoryChunkSize(s);
        return (s.HistoryCapacity + c - 1) / c + 1;
    }

    /// <summary>
    /// How many slots, from slot 0, this generation may have written: chunk j (indexes from j*C) goes to slot j mod S and
    /// every closed chunk starts below <see cref="StreamState.ClosedCount"/>, so slots from min(S, floor((ClosedCount - 1) / C) + 1)
    /// on were never written in this generation. An upper bound (it counts chunks still pending, and in-memory steps not yet saved).
    /// </summary>
    public static int SlotsWritten(StreamState s) =>
        s.IsBound && s.ClosedCount > 0 ? (int)Math.Min(HistorySlotCount(s), (s.ClosedCount - 1) / HistoryChunkSize(s) + 1) : 0;

    /// <summary>The slot of the chunk that starts at <paramref name="startIndex"/>.</summary>
    public static int HistorySlot(StreamState s, long startIndex) => (int)(startIndex / HistoryChunkSize(s) % HistorySlotCount(s));

    /// <summary>
    /// The slots whose records hold the indexes that <see cref="Window"/> for <paramref name="maxCount"/> needs from
    /// storage (empty when the tail and pending chunks cover the window): consecutive chunks, at most S of them, so no
    /// slot twice.
    /// </summary>
    public static int[] StoredSlots(StreamState s, int maxCount)
    {
        long from = WantedStart(s, maxCount), to = s.DurableClosedCount;
        if (from >= to) return [];
        int c = HistoryChunkSize(s);
        long firstChunk = from / c, chunks = Math.Min((to - 1) / c - firstChunk + 1, HistorySlotCount(s));
        var slots = new int[chunks];
        for (int i = 0; i < slots.Length; i++) slots[i] = HistorySlot(s, (firstChunk + i) * c);
        return slots;
    }

    /// <summary>
    /// The newest min(<paramref name="maxCount"/>, N) retained observations, oldest first, as one contiguous chunk (a
    /// copy): stored entries below the core's durable watermark, then the pending closed ones, then the tail.
    /// <paramref name="slots"/>[k] is the record read from slot k (null when not read or missing; any of them may hold
    /// another generation or another chunk), <paramref name="legacy"/> a record of the old single-record layout. An
    /// entry is taken only from a record of this generation that covers exactly its index (the slot's record first),
    /// and below the watermark the window is the newest run of indexes covered without a gap, so entries missing from
    /// storage shorten the window from its old end.
    /// </summary>
    public static ObservationChunk Window(StreamState s, IReadOnlyList<StreamHistory?> slots, StreamHistory? legacy, int maxCount)
    {
        int d = s.InputSize, w = s.InputWidth;
        long end = s.ClosedCount + s.Tail.Count;
        long durable = s.DurableClosedCount;
        long first = WantedStart(s, maxCount);
        long covered = durable;
        while (covered > first && Covering(s, slots, legacy, covered - 1) is { } piece) covered = piece.StartIndex;
        first = Math.Max(first, covered);
        var window = ObservationChunk.Create(first, (int)(end - first), d, w);
        for (long index = first; index < end; index++)
        {
            if (index >= s.ClosedCount) window.AppendFrom(s.Tail, (int)(index - s.ClosedCount), d, w);
            else if (index >= durable) window.AppendFrom(s.PendingClosed!, (int)(index - durable), d, w);
            else
            {
                var piece = Covering(s, slots, legacy, index)!;
                window.AppendFrom(piece, (int)(index - piece.StartIndex), d, w);
            }
        }
        return window;
    }

    /// <summary>The stored chunk holding <paramref name="index"/>: its slot's record if it covers it, else the old single record if that does.</summary>
    private static ObservationChunk? Covering(StreamState s, IReadOnlyList<StreamHistory?> slots, StreamHistory? legacy, long index)
    {
        int slot = HistorySlot(s, index);
        if (slot < slots.Count && Covers(s, slots[slot], index)) return slots[slot]!.Closed;
        return Covers(s, legacy, index) ? legacy!.Closed : null;
    }

    private static bool Covers(StreamState s, StreamHistory? record, long index) =>
        record is { Closed: { } chunk } && record.Generation == s.Generation && chunk.StartIndex <= index && index < chunk.EndIndex;

    /// <summary>
    /// The chunks to write before the core state that moves the watermark from
    /// <see cref="StreamState.DurableClosedCount"/> to <see cref="StreamState.ClosedCount"/>: the pending closed
    /// observations cut at chunk boundaries (C each, exact-size arrays), leaving out those the new core no longer
    /// retains (a batch much larger than N closes chunks that are out of its window at once).
    /// </summary>
    public static List<ObservationChunk> ClosedChunksToWrite(StreamState s)
    {
        if (s.PendingClosed is not { Count: > 0 } pending) return [];
        int c = HistoryChunkSize(s);
        long keepFrom = s.ClosedCount + s.Tail.Count - s.HistoryCapacity;
        // Whole chunks from the one holding keepFrom (a chunk ending at or before it is out of the new window).
        long from = Math.Max(pending.StartIndex, keepFrom <= 0 ? 0 : keepFrom / c * c);
        // The common case (one chunk closed since the last write, by C single values or a batch of C): the pending chunk
        // is already exactly the record Cut would make (aligned, C entries in arrays of C rows), so it is written as it is
        // rather than copied, which was a second ~2 KB chunk per close (C = 64, D = 1 or 2). Nothing changes it afterwards:
        // the write that takes it ends with PendingClosed = null, and a failed one leaves it pending, to be grown or cut
        // by the next write.
        if (from == pending.StartIndex && from % c == 0 && pending.Count == c && pending.Capacity == c
            && pending.Values.Length == c * s.InputSize && pending.Inputs.Length == c * s.InputWidth)
            return [pending];
        return Cut(s, pending, from, pending.EndIndex);
    }

    /// <summary>
    /// Re-cuts a closed-history record of the old single-record layout (<paramref name="legacy"/>) into chunk-aligned
    /// records: its entries from N before the core's durable watermark up to it (anything beyond was never acknowledged).
    /// </summary>
    public static List<ObservationChunk> LegacyChunks(StreamState s, ObservationChunk legacy)
    {
        // Everything the last durable core may still need (N before its watermark), not just what the new state
        // retains: the old record is removed before the new core is written, and if that write fails the old core
        // is what the stream reloads.
        long from = Math.Max(legacy.StartIndex, s.DurableClosedCount - s.HistoryCapacity);
        return Cut(s, legacy, Math.Max(0, from), Math.Min(legacy.EndIndex, s.DurableClosedCount));
    }

    /// <summary>Copies <paramref name="source"/>'s entries [from, to) into records cut at chunk boundaries (the first may be partial).</summary>
    private static List<ObservationChunk> Cut(StreamState s, ObservationChunk source, long from, long to)
    {
        var chunks = new List<ObservationChunk>();
        int d = s.InputSize, w = s.InputWidth, c = HistoryChunkSize(s);
        for (long start = from; start < to; start = (start / c + 1) * c)
        {
            int count = (int)(Math.Min((start / c + 1) * c, to) - start);
            var chunk = ObservationChunk.Create(start, count, d, w);
            for (int i = 0; i < count; i++) chunk.AppendFrom(source, (int)(start - source.StartIndex) + i, d, w);
            chunks.Add(chunk);
        }
        return chunks;
    }

    public static Observation[] History(ObservationChunk window, int inputSize)
    {
        int d = inputSize;
        var result = new Observation[window.Count];
        for (int i = 0; i < window.Count; i++)
            result[i] = new Observation(window.Sequences[i], new DateTimeOffset(window.Ticks[i], TimeSpan.Zero),
                window.Values.AsSpan(i * d, d).ToArray());
        return result;
    }

    public static StreamSummary Summary(StreamState s, string streamId) =>
        new(streamId, s.ModelName, s.WeightsVersion, s.HasSequence ? s.LastSequence : null, s.HasSequence ? s.LastTimestamp : null,
            s.StepCount, s.HistoryCount, s.HistoryCapacity, s.Latest);

    public static StreamStateSnapshot Snapshot(StreamState s, string streamId)
    {
        var std = new double[s.InputSize];
        for (int i = 0; i < std.Length; i++) std[i] = NormalizationStd(s, i);
        return new StreamStateSnapshot(Summary(s, streamId), (float[])s.Hidden.Clone(), (float[])s.Cell.Clone(), s.NormCount,
            (double[])s.Mean.Clone(), std, (double[])s.ErrorMeanSquare.Clone(), (long[])s.ErrorSamples.Clone());
    }
}
