using LstmOrleans.Abstractions;
using LstmOrleans.Lstm;
using LstmOrleans.Lstm.Serialization;

namespace LstmOrleans.Grains.Tests;

/// <summary>
/// Calendar features on the live path: a stream of a model with calendar features feeds the LSTM exactly what the
/// offline <see cref="ModelInputEncoder"/> builds from the same (normalised) value and timestamp.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class CalendarFeatureTests(ClusterFixture fixture)
{
    private static readonly string[] AllCalendar = ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos"];

    private IClusterClient Client => fixture.Client;

    private static ModelConfig CalendarConfig(string[]? calendar = null, NormalizationMode normalization = NormalizationMode.RunningZScore,
        bool residual = false) =>
        new(InputSize: 1, HiddenSize: 8, Layers: 2, Horizons: 3, Features: ["load"], TargetIndex: 0, normalization, Seed: 11,
            CalendarFeatures: calendar ?? AllCalendar, Residual: residual);

    /// <summary>Every 37 minutes from Saturday 2026-01-03 22:00 at UTC+02:00, so hours and weekdays both wrap.</summary>
    private static Observation Obs(long t) =>
        new(t, new DateTimeOffset(2026, 1, 3, 22, 0, 0, TimeSpan.FromHours(2)).AddMinutes(37 * t),
            [(float)(50 + 20 * Math.Sin(2 * Math.PI * t * 37 / 1440.0) + 3 * Math.Cos(1.3 * t))]);

    /// <summary>
    /// The specification, driven directly: running z-score of the value (Welford, statistics including this value),
    /// then <see cref="ModelInputEncoder.Encode"/> with the model's calendar features and no fixed normalisation, the
    /// timestamp's clock time, one <see cref="LstmWeights.Step"/>, plus the normalised value for a residual model,
    /// outputs de-normalised with the value's statistics.
    /// </summary>
    private sealed class Reference
    {
        private readonly ModelConfig _config;
        private readonly ModelInputEncoder _encoder;
        private LstmWeights _weights;
        private double _mean, _m2;
        private long _count;

        public Reference(ModelConfig config, LstmWeights weights)
        {
            _config = config;
            _weights = weights;
            _encoder = new ModelInputEncoder(weights.Config, new ModelMetadata
            {
                FeatureNames = config.Features,
                CalendarFeatures = config.CalendarFeatures!.Select(Parse).ToArray(),
            });
            H = new float[config.Layers * config.HiddenSize];
            C = new float[config.Layers * config.HiddenSize];
        }

        public float[] H { get; }
        public float[] C { get; }
        public List<float[]> Inputs { get; } = [];

        public float[] Step(Observation o)
        {
            double v = o.Values[0];
            _count++;
            double delta = v - _mean;
            _mean += delta / _count;
            _m2 += delta * (v - _mean);
            float normalized = _config.Normalization == NormalizationMode.RunningZScore ? (float)((v - _mean) / Std()) : o.Values[0];
            var x = new float[_weights.Config.InputSize];
            _encoder.Encode(o.Timestamp.DateTime, [normalized], x);
            Inputs.Add(x);
            var y = new float[_config.Horizons];
            _weights.Step(x, H, C, y);
            if (_config.Residual) y = y.Select(v => v + x[0]).ToArray();
            return Denormalize(y);
        }

        /// <summary>New weights: zero state, replay the last <paramref name="window"/> inputs.</summary>
        public void Rewarm(LstmWeights next, int window)
        {
            _weights = next;
            Array.Clear(H);
            Array.Clear(C);
            var y = new float[_config.Horizons];
            foreach (var x in Inputs.Skip(Math.Max(0, Inputs.Count - window))) _weights.Step(x, H, C, y);
        }

        private float[] Denormalize(float[] y) =>
            _config.Normalization == NormalizationMode.RunningZScore ? y.Select(v => (float)(v * Std() + _mean)).ToArray() : y;

        private double Std()
        {
            double variance = _m2 / _count;
            return variance > 1e-12 ? Math.Sqrt(variance) : 1.0;
        }

        private static CalendarFeature Parse(string name) =>
            ModelMetadataCodec.TryParseCalendarFeature(name, out var f) ? f : throw new ArgumentException(name);
    }

    private static LstmWeights Engine(ModelWeights weights, int inputWidth)
    {
        var c = weights.Config;
        var parameters = new LstmParameters(new LstmConfig(inputWidth, c.HiddenSize, c.Layers, c.Horizons));
        Assert.Equal(parameters.Count, weights.Parameters.Length);
        weights.Parameters.AsSpan().CopyTo(parameters.Data);
        return LstmWeights.From(parameters);
    }

    [Theory]
    [InlineData(NormalizationMode.RunningZScore, false)]
    [InlineData(NormalizationMode.None, false)]
    [InlineData(NormalizationMode.RunningZScore, true)]
    public async Task Stream_inputs_and_forecasts_equal_the_offline_encoder_and_the_engine(NormalizationMode normalization, bool residual)
    {
        string model = $"calendar-{normalization}-{residual}";
        var config = CalendarConfig(normalization: normalization, residual: residual);
        var info = await Client.GetGrain<IModelGrain>(model).CreateAsync(config);
        Assert.Equal(5, info.Config.ModelInputSize);
        Assert.Equal(AllCalendar, info.Config.CalendarFeatures);
        Assert.Equal(LstmParameters.CountFor(new LstmConfig(5, 8, 2, 3)), info.ParameterCount);

        var weights = await Client.GetGrain<IModelGrain>(model).GetActiveWeightsAsync();
        var reference = new Reference(config, Engine(weights, 5));
        var stream = Client.GetGrain<IStreamGrain>($"{model}/feeder-1");
        await stream.BindAsync(model);

        // One at a time, then batches (computed off the scheduler above the offload threshold).
        long t = 0;
        for (; t < 20; t++)
            Assert.Equal(reference.Step(Obs(t)), (await stream.IngestAsync(Obs(t))).Predictions);
        foreach (int size in new[] { 5, 40, 30 })
        {
            var batch = Enumerable.Range(0, size).Select(i => Obs(t + i)).ToArray();
            var results = await stream.IngestBatchAsync(batch);
            for (int i = 0; i < size; i++) Assert.Equal(reference.Step(batch[i]), results[i].Predictions);
            t += size;
        }
        var state = await stream.GetStateAsync();
        Assert.Equal(reference.H, state.Hidden);
        Assert.Equal(reference.C, state.Cell);

        // The training window holds the same rows: the value column, then the four calendar columns.
        var window = await stream.GetTrainingWindowAsync(int.MaxValue);
        int kept = Math.Min(reference.Inputs.Count, 64);
        Assert.Equal(5, window.InputSize);
        Assert.Equal(kept, window.Rows);
        Assert.Equal(reference.Inputs.Skip(reference.Inputs.Count - kept).SelectMany(x => x).ToArray(), window.Inputs);
        Assert.Single(window.Mean);

        // A new version re-warms from the stored inputs, calendar columns included, and keeps stepping identically.
        var changed = weights.Parameters.Select((p, i) => p + 0.01f * MathF.Sin(i)).ToArray();
        long version = await Client.GetGrain<IModelGrain>(model).PublishAsync(new PublishRequest(changed, "changed"));
        var next = Engine(await Client.GetGrain<IModelGrain>(model).GetWeightsAsync(version), 5);
        await TestSupport.Eventually(
            () => Task.FromResult(fixture.Caches.All(c => !c.TryGet(model, out var m) || m.Version == version)), done => done);
        reference.Rewarm(next, 64);
        var step = await stream.IngestAsync(Obs(t));
        Assert.Equal(version, step.WeightsVersion);
        Assert.Equal(reference.Step(Obs(t)), step.Predictions);
        Assert.Equal(reference.H, (await stream.GetStateAsync()).Hidden);
    }

    [Fact]
    public async Task A_residual_model_starts_as_persistence()
    {
        const string model = "residual-start";
        var info = await Client.GetGrain<IModelGrain>(model).CreateAsync(CalendarConfig([], residual: true));
        Assert.True(info.Config.Residual);
        var weights = await Client.GetGrain<IModelGrain>(model).GetActiveWeightsAsync();
        var c = info.Config;
        var parameters = new LstmParameters(new LstmConfig(c.ModelInputSize, c.HiddenSize, c.Layers, c.Horizons));
        weights.Parameters.AsSpan().CopyTo(parameters.Data);
        Assert.All(parameters.HeadWeight.ToArray(), w => Assert.Equal(0f, w));
        Assert.All(parameters.HeadBias.ToArray(), b => Assert.Equal(0f, b));
        Assert.Contains(parameters.WeightIh(0).ToArray(), w => w != 0f);

        // Every horizon forecasts the value just received (up to the rounding of normalising and de-normalising).
        var stream = Client.GetGrain<IStreamGrain>("residual-start/s");
        await stream.BindAsync(model);
        for (long t = 0; t < 30; t++)
        {
            var o = Obs(t);
            var r = await stream.IngestAsync(o);
            Assert.All(r.Predictions, p => Assert.Equal(o.Values[0], p, 1e-3f));
        }
    }

    [Fact]
    public async Task Observations_carry_the_values_only_and_bad_calendar_configs_are_refused()
    {
        const string model = "calendar-shape";
        var grain = Client.GetGrain<IModelGrain>(model);
        await grain.CreateAsync(CalendarConfig(["weekday_cos", "hour_sin"]));
        Assert.Equal(new[] { "weekday_cos", "hour_sin" }, (await grain.GetInfoAsync()).Config.CalendarFeatures);
        await grain.CreateAsync(CalendarConfig(["weekday_cos", "hour_sin"]));   // idempotent for an equal config
        await Assert.ThrowsAsync<ModelOperationException>(() => grain.CreateAsync(CalendarConfig(["hour_sin", "weekday_cos"])));
        await Assert.ThrowsAsync<ModelOperationException>(() => grain.CreateAsync(CalendarConfig([])));

        var stream = Client.GetGrain<IStreamGrain>("calendar-shape/stream");
        await stream.BindAsync(model);
        var e = await Assert.ThrowsAsync<ObservationRejectedException>(() => stream.IngestAsync(new Observation(1, DateTimeOffset.UtcNow, [1f, 0f, 1f])));
        Assert.Equal(RejectionReason.WrongLength, e.Reason);
        Assert.Equal(0, (await stream.GetSummaryAsync()).StepCount);
        Assert.Equal(1, (await stream.IngestAsync(new Observation(1, DateTimeOffset.UtcNow, [1f]))).StepCount);

        await Assert.ThrowsAsync<ModelOperationException>(() => Client.GetGrain<IModelGrain>("calendar-unknown").CreateAsync(CalendarConfig(["moon_phase"])));
        await Assert.ThrowsAsync<ModelOperationException>(() => Client.GetGrain<IModelGrain>("calendar-twice").CreateAsync(CalendarConfig(["hour_sin", "hour_sin"])));
        await Assert.ThrowsAsync<ModelNotFoundException>(() => Client.GetGrain<IModelGrain>("calendar-unknown").GetInfoAsync());
    }
}
