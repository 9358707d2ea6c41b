using System.Net;
using System.Net.Sockets;

namespace LstmOrleans.Persistence.Tests;

/// <summary>
/// A TCP relay on a free loopback port between a client (Npgsql) and a server (the test's PostgreSQL) that can cut the
/// connection at the next message the client sends, the way a network failure or a server crash cuts a COMMIT: the
/// client sent it and never hears back. Cut with the message passed on first, the server still runs it (a COMMIT is then
/// committed although the client saw an error); cut before, the server never gets it (and rolls the transaction back
/// when it sees the connection close). Test-only: the provider's code is unchanged, its connection string points here.
/// It can also answer a message the server ran with a FATAL error of its own in place of the server's reply, the way a
/// backend terminated while it waits for synchronous replication answers a COMMIT it has already committed locally.
/// </summary>
internal sealed class ConnectionCuttingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _sockets = [];
    private readonly Task _accepting;
    private int _armed;   // 0: relay; 1: cut before passing on; 2: pass on, then cut; 3: pass on, answer FATAL
    private int _cuts;

    public ConnectionCuttingProxy(int targetPort)
    {
        _target = new IPEndPoint(IPAddress.Loopback, targetPort);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    /// <summary>Connections cut so far.</summary>
    public int Cuts => Volatile.Read(ref _cuts);

    /// <summary>Cuts the connection that next sends anything, after passing that message on when <paramref name="passOn"/>.</summary>
    public void CutAtNextClientMessage(bool passOn) => Volatile.Write(ref _armed, passOn ? 2 : 1);

    /// <summary>
    /// Passes the next message a client sends on to the server, drops the server's reply to it and sends the client a
    /// FATAL ErrorResponse (57P01, "terminating connection due to administrator command") instead, then closes.
    /// </summary>
    public void AnswerNextClientMessageWithFatal() => Volatile.Write(ref _armed, 3);

    /// <summary>The relays of one client connection: set when the server's next reply is to be replaced.</summary>
    private sealed class Pair
    {
        public int ReplaceNextReply;
    }

    /// <summary>A PostgreSQL v3 ErrorResponse: 'E', its length (itself included), then typed C strings and a 0.</summary>
    private static byte[] FatalErrorResponse()
    {
        var fields = new List<byte>();
        foreach (var (type, value) in new[] { ('S', "FATAL"), ('V', "FATAL"), ('C', "57P01"), ('M', "terminating connection due to administrator command") })
        {
            fields.Add((byte)type);
            fields.AddRange(System.Text.Encoding.ASCII.GetBytes(value));
            fields.Add(0);
        }

        fields.Add(0);
        var message = new byte[1 + 4 + fields.Count];
        message[0] = (byte)'E';
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + fields.Count);
        fields.CopyTo(message, 5);
        return message;
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                var server = new TcpClient();
                await server.ConnectAsync(_target, _stop.Token);
                lock (_sockets)
                {
                    _sockets.Add(client);
                    _sockets.Add(server);
                }

                var pair = new Pair();
                _ = RelayAsync(client, server, fromClient: true, pair);
                _ = RelayAsync(server, client, fromClient: false, pair);
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
        }
    }

    private async Task RelayAsync(TcpClient from, TcpClient to, bool fromClient, Pair pair)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            var input = from.GetStream();
            var output = to.GetStream();
            int read;
            while ((read = await input.ReadAsync(buffer, _stop.Token)) > 0)
            {
                if (!fromClient && Interlocked.Exchange(ref pair.ReplaceNextReply, 0) == 1)
                {
                    // The server answered the message (it ran it); the client hears a FATAL error instead.
                    Interlocked.Increment(ref _cuts);
                    await output.WriteAsync(FatalErrorResponse(), _stop.Token);
                    to.Client.Shutdown(SocketShutdown.Send);
                    to.Close();
                    from.Close();
                    return;
                }

                int armed = fromClient ? Interlocked.Exchange(ref _armed, 0) : 0;
                if (armed == 3)
                {
                    // Flagged before passing on: nothing else is outstanding on the connection, so the server's next
                    // bytes are its reply to this message.
                    Volatile.Write(ref pair.ReplaceNextReply, 1);
                    await output.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                    continue;
                }

                if (armed == 2) await output.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                if (armed != 0)
                {
                    Interlocked.Increment(ref _cuts);
                    // The server side closes gracefully, so what was passed on is delivered before the end of the stream.
                    to.Client.Shutdown(SocketShutdown.Send);
                    to.Close();
                    from.Close();
                    return;
                }

                await output.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception)
        {
            // The other direction was cut or the relay stopped: end both sides.
        }

        from.Close();
        to.Close();
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
        lock (_sockets)
        {
            foreach (var socket in _sockets) socket.Close();
        }

        _stop.Dispose();
    }
}
