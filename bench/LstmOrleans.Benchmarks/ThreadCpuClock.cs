using System.Runtime.InteropServices;

namespace LstmOrleans.Benchmarks;

/// <summary>
/// CPU time consumed by the calling thread (Linux clock_gettime(CLOCK_THREAD_CPUTIME_ID)), cheap enough to read
/// every few calls. On a shared machine it excludes time spent descheduled, which the wall clock counts.
/// Falls back to the process CPU time elsewhere.
/// </summary>
internal static partial class ThreadCpuClock
{
    private const int ClockThreadCpuTimeId = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    public static double NowNanoseconds()
    {
        if (OperatingSystem.IsLinux() && ClockGetTime(ClockThreadCpuTimeId, out var t) == 0)
            return t.Seconds * 1e9 + t.Nanoseconds;
        return System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalNanoseconds;
    }
}
