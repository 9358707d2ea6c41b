using Npgsql;
using StackExchange.Redis;

namespace LstmOrleans.Silo.Hosting;

/// <summary>
/// A start that failed because Redis or PostgreSQL could not be reached (down, wrong host or port, refused login) is a
/// problem with a setting, not a bug: the operator needs the connection string's key and where it points, not the
/// client library's stack trace and its advice to set abortConnect=false. Orleans' providers wrap the client's
/// exception in their own (RedisStorageException, RedisRemindersException: the client's exception as text only), so
/// the whole chain is searched.
/// </summary>
internal static class ServiceConnectFailure
{
    /// <summary>A one-line reason naming the connection string's key, or null when the failure is something else.</summary>
    public static string? Describe(Exception exception, SiloSettings settings)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case RedisConnectionException redis:
                    return $"cannot connect to Redis at {RedisEndpoints(settings.ConnectionStrings.Redis)} (ConnectionStrings:Redis): "
                        + $"{redis.FailureType}: {FirstSentence(redis.Message)}";
                // The storage and reminder providers keep only the text of the client's exception, not the exception.
                case Orleans.Persistence.Redis.RedisStorageException or Orleans.Reminders.Redis.RedisRemindersException:
                    return $"cannot use Redis at {RedisEndpoints(settings.ConnectionStrings.Redis)} (ConnectionStrings:Redis): "
                        + FirstSentence(e.Message);
                case NpgsqlException postgres:
                    return $"cannot use PostgreSQL at {PostgresEndpoint(settings.ConnectionStrings.Postgres)} (ConnectionStrings:Postgres): "
                        + FirstSentence(postgres.Message);
            }
        }

        return null;
    }

    /// <summary>The endpoints of a Redis connection string alone: its password and other options are never shown or stored.</summary>
    internal static string RedisEndpoints(string? connectionString)
    {
        try
        {
            return string.Join(",", ConfigurationOptions.Parse(connectionString ?? "").EndPoints.Select(EndPointCollection.ToString));
        }
        catch (ArgumentException)
        {
            return "(unparsable)"; // validated at load, so not expected
        }
    }

    private static string PostgresEndpoint(string? connectionString)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            return $"{builder.Host}:{builder.Port}";
        }
        catch (ArgumentException)
        {
            return "(unparsable)";
        }
    }

    private static string FirstSentence(string message)
    {
        int end = message.IndexOf(". ", StringComparison.Ordinal);
        return end < 0 ? message.TrimEnd() : message[..(end + 1)];
    }
}
