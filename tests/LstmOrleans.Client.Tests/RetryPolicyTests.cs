using Xunit;
using LstmOrleans.Abstractions;
using LstmOrleans.Client.Replay;
using Orleans.Runtime;
using Orleans.Runtime.Messaging;
using Orleans.Storage;

namespace LstmOrleans.Client.Tests;

/// <summary>The retry policy shared by <c>lstmorleans replay</c> and the chaos harness: what it retries, how often, how long it waits.</summary>
public sealed class RetryPolicyTests
{
    private static readonly RetryPolicy Fast = new()
    {
        AttemptTimeout = TimeSpan.FromSeconds(10), MaxRetries = 3, InitialDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(4), Jitter = 0,
    };

    public static TheoryData<Exception> Transient() =>
    [
        new TimeoutException("Response did not arrive on time"),
        new SiloUnavailableException("silo gone"),
        (Exception)System.Runtime.CompilerServices.RuntimeHelpers.GetUninitializedObject(typeof(OrleansMessageRejectionException)),   // its constructors are internal
        new ConnectionFailedException("no gateway"),
        new GatewayTooBusyException(),
        new InconsistentStateException("etag mismatch"),
        new OperationCanceledException("connection aborted"),
    ];

    public static TheoryData<Exception> Rejections() =>
    [
        new ObservationRejectedException(RejectionReason.NonFiniteValue, "value 0 is NaN"),
        new ArgumentException("wrong dimensions"),
        new ModelNotFoundException("no-such-model"),
        new ModelOperationException("m", "model exists with another configuration"),
        new InvalidOperationException("a bug"),
        new NullReferenceException(),
    ];

    [Theory]
    [MemberData(nameof(Transient))]
    public void Transport_failures_are_transient(Exception error) => Assert.True(RetryPolicy.IsTransient(error));

    [Theory]
    [MemberData(nameof(Rejections))]
    public void Rejections_and_unexpected_errors_are_not(Exception error) => Assert.False(RetryPolicy.IsTransient(error));

    [Fact]
    public void A_cancellation_the_caller_asked_for_is_not_transient()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.False(RetryPolicy.IsTransient(new OperationCanceledException(cts.Token), cts.Token));
    }

    [Fact]
    public void Delays_double_from_the_initial_one_up_to_the_cap()
    {
        var policy = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(200), MaxDelay = TimeSpan.FromSeconds(1) };
        Assert.Equal([200, 400, 800, 1000, 1000], Enumerable.Range(1, 5).Select(r => policy.DelayBefore(r).TotalMilliseconds));
        Assert.Equal(TimeSpan.FromSeconds(10), RetryPolicy.Default.DelayBefore(1000));   // no overflow far out
    }

    [Fact]
    public async Task A_transient_failure_is_retried_until_the_call_answers()
    {
        int calls = 0;
        var notices = new List<RetryNotice>();
        var answer = await Fast.ExecuteAsync(() => ++calls < 3 ? throw new SiloUnavailableException("gone") : Task.FromResult(42), notices.Add);
        Assert.Equal(42, answer);
        Assert.Equal(3, calls);
        Assert.Equal([1, 2], notices.Select(n => n.Retry));
        Assert.Equal([1, 2], notices.Select(n => n.Delay.TotalMilliseconds));
        Assert.All(notices, n => Assert.IsType<SiloUnavailableException>(n.Error));
    }

    [Fact]
    public async Task Retries_are_bounded_and_the_last_failure_is_thrown()
    {
        int calls = 0;
        await Assert.ThrowsAsync<TimeoutException>(() => Fast.ExecuteAsync<int>(() => throw new TimeoutException($"attempt {++calls}")));
        Assert.Equal(1 + Fast.MaxRetries, calls);
    }

    [Fact]
    public async Task A_rejection_is_thrown_at_once_and_never_resent()
    {
        int calls = 0;
        var notices = new List<RetryNotice>();
        await Assert.ThrowsAsync<ObservationRejectedException>(() => Fast.ExecuteAsync<int>(() =>
        {
            calls++;
            throw new ObservationRejectedException(RejectionReason.TimestampBackwards, "timestamp goes backwards", 3);
        }, notices.Add));
        Assert.Equal(1, calls);
        Assert.Empty(notices);
    }

    [Fact]
    public async Task A_hung_attempt_is_abandoned_after_the_attempt_timeout_and_resent()
    {
        var hung = new TaskCompletionSource<int>();
        int calls = 0;
        var policy = Fast with { AttemptTimeout = TimeSpan.FromMilliseconds(100) };
        var notices = new List<RetryNotice>();
        var answer = await policy.ExecuteAsync(() => ++calls == 1 ? hung.Task : Task.FromResult(7), notices.Add);
        Assert.Equal(7, answer);
        Assert.Equal(2, calls);
        Assert.IsType<TimeoutException>(Assert.Single(notices).Error);
        hung.SetException(new SiloUnavailableException("late failure of the abandoned attempt"));   // observed, not rethrown
    }

    [Fact]
    public async Task No_retry_starts_after_the_time_budget()
    {
        int calls = 0;
        var policy = Fast with { MaxRetries = int.MaxValue, InitialDelay = TimeSpan.FromMilliseconds(20), MaxDelay = TimeSpan.FromMilliseconds(20), GiveUpAfter = TimeSpan.FromMilliseconds(150) };
        await Assert.ThrowsAsync<SiloUnavailableException>(() => policy.ExecuteAsync<int>(() => { calls++; throw new SiloUnavailableException("gone"); }));
        Assert.InRange(calls, 2, 9);   // 150 ms of 20 ms waits: at most 8 retries, and the budget did stop it
    }

    [Fact]
    public void Settings_out_of_range_are_refused()
    {
        Assert.Throws<ArgumentException>(() => (RetryPolicy.Default with { MaxRetries = -1 }).Validated());
        Assert.Throws<ArgumentException>(() => (RetryPolicy.Default with { AttemptTimeout = TimeSpan.Zero }).Validated());
        Assert.Throws<ArgumentException>(() => (RetryPolicy.Default with { InitialDelay = TimeSpan.FromSeconds(20) }).Validated());
        Assert.Throws<ArgumentException>(() => (RetryPolicy.Default with { Jitter = 2 }).Validated());
        Assert.Same(RetryPolicy.Default, RetryPolicy.Default.Validated());
    }
}

/// <summary>The replay command's retry options: ranges refused at parse time, inconsistent delays before connecting.</summary>
public sealed class ReplayRetryOptionsTests
{
    private static System.CommandLine.ParseResult Parse(params string[] args) => Commands.ReplayCommand.Create().Parse(args);

    [Theory]
    [InlineData("--retries", "-1")]
    [InlineData("--retries", "1001")]
    [InlineData("--attempt-timeout", "-2")]
    [InlineData("--retry-delay", "-0.5")]
    [InlineData("--retry-max-delay", "601")]
    public void Out_of_range_values_are_parse_errors(string option, string value)
    {
        var errors = Parse("series.csv", option, value).Errors;
        Assert.Contains(errors, e => e.Message.Contains(option, StringComparison.Ordinal));
    }

    [Fact]
    public void The_defaults_and_sensible_values_parse()
    {
        Assert.Empty(Parse("series.csv").Errors);
        Assert.Empty(Parse("series.csv", "--attempt-timeout", "0", "--retries", "0", "--retry-delay", "0.05", "--retry-max-delay", "2").Errors);
    }

    [Fact]
    public async Task A_first_delay_longer_than_the_longest_is_refused_before_connecting()
    {
        using var folder = new TempDir();
        var csv = folder.File("s.csv");
        await File.WriteAllLinesAsync(csv, ["timestamp,value", "2024-01-01 00:00:00,1", "2024-01-01 00:05:00,2"]);
        var root = new System.CommandLine.RootCommand { Commands.ReplayCommand.Create() };
        // Nothing listens on port 1: a valid command fails to connect (exit 3); the bad delays are refused first (exit 2).
        string[] common = ["replay", csv, "--cluster", "127.0.0.1:1", "--connect-timeout", "1"];
        Assert.Equal(2, await root.Parse([.. common, "--retry-delay", "5", "--retry-max-delay", "1"]).InvokeAsync());
        Assert.Equal(3, await root.Parse(common).InvokeAsync());
    }
}
