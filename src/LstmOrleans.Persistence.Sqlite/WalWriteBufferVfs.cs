using System.Runtime.InteropServices;

namespace LstmOrleans.Persistence.Sqlite;

/// <summary>
/// A SQLite VFS shim over the platform's default VFS that gathers the writes SQLite makes to a WAL file in one buffer
/// and hands them to the file as one write: when SQLite syncs, reads, sizes, truncates or closes the file, or writes
/// anywhere but at the buffer's end. Every other file (the database itself, its shared memory) goes straight to the
/// default VFS, with its own methods.
///
/// Why: SQLite writes each WAL frame as two writes, the 24-byte frame header and then the page, one system call each.
/// On this machine (a paravirtualised VM) that is ~3.3 µs per 4 KB frame against ~0.35 µs for the same bytes in one
/// write, and the group-commit writer thread spent 40 % of its time in those calls (BENCHMARKS.md, session 9).
///
/// Safe only where SQLite syncs the WAL at every commit, i.e. synchronous=FULL or EXTRA: a commit becomes visible to
/// other connections (the WAL index header) and to crash recovery only after that sync, and the sync writes the
/// buffer first, so nothing anyone can look for is ever still in the buffer. With NORMAL a commit is published
/// without a sync, so the provider does not use the shim then (<see cref="SqliteStore"/>). Frames lost from the buffer
/// by a crash belong to a transaction that never committed, exactly as if the process had died before writing them.
///
/// A WAL file is used by one connection, and a connection by one thread at a time, so the buffer needs no lock.
/// </summary>
internal static unsafe partial class WalWriteBufferVfs
{
    /// <summary>The VFS name, for a URI filename's <c>vfs=</c> parameter.</summary>
    public const string Name = "lstmorleans-walbuffer";

    /// <summary>Bytes gathered before the buffer is written out on its own: 256 frames of 4 KB.</summary>
    public const int BufferBytes = 1 << 20;

    /// <summary>The longest single write handed to the root VFS: 120 KiB, under the unix VFS's 128 KiB limit.</summary>
    public const int LargestWrite = 30 * 4096;

    private const int SqliteOk = 0;
    private const int SqliteOpenWal = 0x00080000;
    private const int SqliteNoMem = 7;

    private static readonly Lock Gate = new();
    private static Sqlite3Vfs* s_root;            // the default VFS this one forwards to
    private static Sqlite3Vfs* s_vfs;             // this one (registered once, never freed: SQLite keeps a pointer)
    private static int s_bufferOffset;            // where a file's WalBuffer starts, after the root's own file struct
    private static Sqlite3IoMethods* s_rootWal;   // the root's methods for WAL files (the first ones seen)
    private static Sqlite3IoMethods* s_walMethods;
    private static long s_writesReceived;
    private static long s_writesIssued;

    private const int SqliteIoErrFsync = 10 | (4 << 8);   // SQLITE_IOERR_FSYNC

    // Test seam (FailSyncs): WAL file names whose syncs may be made to fail, each with its slot in s_syncFaultArmed.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> s_syncFaultNames = new(StringComparer.Ordinal);
    private static readonly int[] s_syncFaultArmed = new int[64];
    private static int s_syncFaultSlots;

    /// <summary>
    /// Test seam: the WAL file of the database file named <paramref name="databaseFileName"/> (opened through this VFS
    /// from now on) fails its syncs with SQLITE_IOERR_FSYNC while <see cref="SyncFault.Armed"/>, as a disk that refuses
    /// fsync would: the buffered frames are still written to the file first, only the fsync fails. The file name
    /// (not the path, which SQLite may spell differently) must be unique to the test.
    /// </summary>
    internal static SyncFault FailSyncs(string databaseFileName)
    {
        int slot = Interlocked.Increment(ref s_syncFaultSlots);
        if (slot >= s_syncFaultArmed.Length) throw new InvalidOperationException("Too many WAL sync faults registered in this process.");
        s_syncFaultNames[databaseFileName + "-wal"] = slot;
        return new SyncFault(databaseFileName + "-wal", slot);
    }

    internal sealed class SyncFault(string walFileName, int slot) : IDisposable
    {
        public bool Armed
        {
            get => Volatile.Read(ref s_syncFaultArmed[slot]) != 0;
            set => Volatile.Write(ref s_syncFaultArmed[slot], value ? 1 : 0);
        }

        /// <summary>Syncs that failed because of this fault.</summary>
        public int FailedSyncs => Volatile.Read(ref s_syncFaultsFailed[slot]);

        public void Dispose()
        {
            Armed = false;
            s_syncFaultNames.TryRemove(walFileName, out _);
        }
    }

    private static readonly int[] s_syncFaultsFailed = new int[64];

    /// <summary>Writes SQLite made to WAL files through this VFS, and writes this VFS made to the files for them.</summary>
    public static (long Received, long Issued) WriteCounts => (Interlocked.Read(ref s_writesReceived), Interlocked.Read(ref s_writesIssued));

    /// <summary>Registers the VFS (not as the default) the first time it is called; later calls do nothing.</summary>
    public static void EnsureRegistered()
    {
        lock (Gate)
        {
            if (s_vfs != null) return;
            // SQLitePCLRaw's provider first (what Microsoft.Data.Sqlite does on first use), so this process's one
            // e_sqlite3 is set up the usual way before its VFS list is touched.
            SQLitePCL.Batteries_V2.Init();
            var root = sqlite3_vfs_find(null);
            if (root == null || root->iVersion < 1) throw new InvalidOperationException("SQLite has no default VFS to wrap.");
            var nameBytes = System.Text.Encoding.UTF8.GetBytes(Name + "\0");
            var name = (byte*)NativeMemory.Alloc((nuint)nameBytes.Length);
            nameBytes.CopyTo(new Span<byte>(name, nameBytes.Length));

            var vfs = (Sqlite3Vfs*)NativeMemory.AllocZeroed((nuint)sizeof(Sqlite3Vfs));
            // Copy the root's methods (as many as its version has); only xOpen is ours. The root's other methods get
            // this VFS's pointer, and read nothing from it that is not copied here (pAppData, mxPathname).
            Buffer.MemoryCopy(root, vfs, sizeof(Sqlite3Vfs), VfsSize(root->iVersion));
            s_bufferOffset = (root->szOsFile + 15) & ~15;
            vfs->szOsFile = s_bufferOffset + sizeof(WalBuffer);
            vfs->pNext = null;
            vfs->zName = name;
            vfs->xOpen = &Open;
            s_root = root;
            int rc = sqlite3_vfs_register(vfs, 0);
            if (rc != SqliteOk) throw new InvalidOperationException($"sqlite3_vfs_register failed with {rc}.");
            s_vfs = vfs;
        }
    }

    // A version-1 or -2 struct ends before the members later versions added.
    private static int VfsSize(int version)
    {
        Sqlite3Vfs v = default;
        return version switch
        {
            1 => (int)((byte*)&v.xCurrentTimeInt64 - (byte*)&v),
            2 => (int)((byte*)&v.xSetSystemCall - (byte*)&v),
            _ => sizeof(Sqlite3Vfs),
        };
    }

    /// <summary>
    /// The root opens the file into the same memory (its struct first, the buffer's state after it), so for anything
    /// but a WAL file this VFS is invisible: the file keeps the root's methods. A WAL file gets methods that buffer
    /// and forward to the root's with the same file pointer.
    /// </summary>
    [UnmanagedCallersOnly]
    private static int Open(Sqlite3Vfs* vfs, byte* name, Sqlite3File* file, int flags, int* outFlags)
    {
        var buffer = BufferOf(file);
        *buffer = default;
        int rc = s_root->xOpen(s_root, name, file, flags, outFlags);
        if (rc != SqliteOk || file->pMethods == null || (flags & SqliteOpenWal) == 0) return rc;
        // Without our methods table (out of memory building it) the file simply keeps the root's, unbuffered.
        Sqlite3IoMethods* methods;
        try { methods = WalMethodsFor(file->pMethods); }
        catch (OutOfMemoryException) { methods = null; }
        if (methods != null) file->pMethods = methods;
        if (!s_syncFaultNames.IsEmpty)
        {
            try
            {
                var path = Marshal.PtrToStringUTF8((nint)name);
                if (path is not null && s_syncFaultNames.TryGetValue(Path.GetFileName(path), out var slot)) buffer->SyncFaultSlot = slot;
            }
            catch (Exception)
            {
                // No exception may leave a callback SQLite made; a test seam that cannot be looked up injects nothing.
            }
        }

        return SqliteOk;
    }

    /// <summary>Our methods over the root's WAL methods; null (leave the file alone) for any other root methods.
    /// Under the lock: a WAL file is opened once per connection, so this is never hot.</summary>
    private static Sqlite3IoMethods* WalMethodsFor(Sqlite3IoMethods* root)
    {
        lock (Gate)
        {
            if (s_walMethods == null)
            {
                var methods = (Sqlite3IoMethods*)NativeMemory.AllocZeroed((nuint)sizeof(Sqlite3IoMethods));
                Buffer.MemoryCopy(root, methods, sizeof(Sqlite3IoMethods), IoMethodsSize(root->iVersion));
                methods->xClose = &Close;
                methods->xRead = &Read;
                methods->xWrite = &Write;
                methods->xTruncate = &Truncate;
                methods->xSync = &Sync;
                methods->xFileSize = &FileSize;
                methods->xFileControl = &FileControl;
                s_rootWal = root;
                s_walMethods = methods;
            }

            return root == s_rootWal ? s_walMethods : null;
        }
    }

    private static int IoMethodsSize(int version)
    {
        Sqlite3IoMethods m = default;
        return version switch
        {
            1 => (int)((byte*)&m.xShmMap - (byte*)&m),
            2 => (int)((byte*)&m.xFetch - (byte*)&m),
            _ => sizeof(Sqlite3IoMethods),
        };
    }

    private static WalBuffer* BufferOf(Sqlite3File* file) => (WalBuffer*)((byte*)file + s_bufferOffset);

    /// <summary>
    /// Writes what is buffered and empties the buffer, also when a write failed: the transaction those frames belong
    /// to fails with the error and is rolled back. In pieces of <see cref="LargestWrite"/> bytes: the unix VFS masks a
    /// write's length to 17 bits (it only ever expects a page or a frame), so one longer write would be cut short.
    /// </summary>
    private static int Flush(Sqlite3File* file, WalBuffer* buffer)
    {
        int length = buffer->Length;
        buffer->Length = 0;
        for (int written = 0; written < length; written += LargestWrite)
        {
            Interlocked.Increment(ref s_writesIssued);
            int rc = s_rootWal->xWrite(file, buffer->Data + written, Math.Min(LargestWrite, length - written), buffer->Start + written);
            if (rc != SqliteOk) return rc;
        }

        return SqliteOk;
    }

    [UnmanagedCallersOnly]
    private static int Write(Sqlite3File* file, void* data, int amount, long offset)
    {
        Interlocked.Increment(ref s_writesReceived);
        var buffer = BufferOf(file);
        if (buffer->Length > 0 && offset == buffer->Start + buffer->Length && amount <= buffer->Capacity - buffer->Length)
        {
            Buffer.MemoryCopy(data, buffer->Data + buffer->Length, amount, amount);
            buffer->Length += amount;
            return SqliteOk;
        }

        // Anything else (the first write, a write elsewhere, e.g. a frame rewritten in place or the header of a
        // restarted WAL, or a full buffer) writes what is buffered first, so the file sees every write in order.
        int rc = Flush(file, buffer);
        if (rc != SqliteOk) return rc;
        if (amount > LargestWrite)
        {
            Interlocked.Increment(ref s_writesIssued);
            return s_rootWal->xWrite(file, data, amount, offset);
        }

        if (buffer->Data == null)
        {
            // No exception may leave a callback SQLite made: out of memory is SQLite's own NOMEM, and nothing is lost.
            try { buffer->Data = (byte*)NativeMemory.Alloc(BufferBytes); }
            catch (OutOfMemoryException) { return SqliteNoMem; }
            buffer->Capacity = BufferBytes;
        }

        Buffer.MemoryCopy(data, buffer->Data, amount, amount);
        buffer->Start = offset;
        buffer->Length = amount;
        return SqliteOk;
    }

    [UnmanagedCallersOnly]
    private static int Close(Sqlite3File* file)
    {
        var buffer = BufferOf(file);
        int flushed = Flush(file, buffer);
        NativeMemory.Free(buffer->Data);
        *buffer = default;
        int closed = s_rootWal->xClose(file);
        return flushed != SqliteOk ? flushed : closed;
    }

    [UnmanagedCallersOnly]
    private static int Read(Sqlite3File* file, void* data, int amount, long offset)
    {
        int rc = Flush(file, BufferOf(file));
        return rc != SqliteOk ? rc : s_rootWal->xRead(file, data, amount, offset);
    }

    [UnmanagedCallersOnly]
    private static int Truncate(Sqlite3File* file, long size)
    {
        int rc = Flush(file, BufferOf(file));
        return rc != SqliteOk ? rc : s_rootWal->xTruncate(file, size);
    }

    [UnmanagedCallersOnly]
    private static int Sync(Sqlite3File* file, int flags)
    {
        var buffer = BufferOf(file);
        int rc = Flush(file, buffer);
        if (rc != SqliteOk) return rc;
        if (buffer->SyncFaultSlot != 0 && Volatile.Read(ref s_syncFaultArmed[buffer->SyncFaultSlot]) != 0)
        {
            Interlocked.Increment(ref s_syncFaultsFailed[buffer->SyncFaultSlot]);
            return SqliteIoErrFsync;
        }

        return s_rootWal->xSync(file, flags);
    }

    [UnmanagedCallersOnly]
    private static int FileSize(Sqlite3File* file, long* size)
    {
        int rc = Flush(file, BufferOf(file));
        return rc != SqliteOk ? rc : s_rootWal->xFileSize(file, size);
    }

    [UnmanagedCallersOnly]
    private static int FileControl(Sqlite3File* file, int op, void* argument)
    {
        int rc = Flush(file, BufferOf(file));
        return rc != SqliteOk ? rc : s_rootWal->xFileControl(file, op, argument);
    }

    [LibraryImport("e_sqlite3")]
    private static partial Sqlite3Vfs* sqlite3_vfs_find(byte* name);

    [LibraryImport("e_sqlite3")]
    private static partial int sqlite3_vfs_register(Sqlite3Vfs* vfs, int makeDefault);

    /// <summary>The state kept after the root's file struct: the buffered bytes and the file offset they start at.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct WalBuffer
    {
        public byte* Data;
        public long Start;
        public int Length;
        public int Capacity;
        public int SyncFaultSlot;   // test seam: a slot of s_syncFaultArmed, 0 for none
    }

    /// <summary>sqlite3_file: every VFS's file struct starts with its methods.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Sqlite3File
    {
        public Sqlite3IoMethods* pMethods;
    }

    /// <summary>sqlite3_io_methods, version 3 (sqlite3.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Sqlite3IoMethods
    {
        public int iVersion;
        public delegate* unmanaged<Sqlite3File*, int> xClose;
        public delegate* unmanaged<Sqlite3File*, void*, int, long, int> xRead;
        public delegate* unmanaged<Sqlite3File*, void*, int, long, int> xWrite;
        public delegate* unmanaged<Sqlite3File*, long, int> xTruncate;
        public delegate* unmanaged<Sqlite3File*, int, int> xSync;
        public delegate* unmanaged<Sqlite3File*, long*, int> xFileSize;
        public nint xLock;
        public nint xUnlock;
        public nint xCheckReservedLock;
        public delegate* unmanaged<Sqlite3File*, int, void*, int> xFileControl;
        public nint xSectorSize;
        public nint xDeviceCharacteristics;
        public nint xShmMap;
        public nint xShmLock;
        public nint xShmBarrier;
        public nint xShmUnmap;
        public nint xFetch;
        public nint xUnfetch;
    }

    /// <summary>sqlite3_vfs, version 3 (sqlite3.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Sqlite3Vfs
    {
        public int iVersion;
        public int szOsFile;
        public int mxPathname;
        public Sqlite3Vfs* pNext;
        public byte* zName;
        public void* pAppData;
        public delegate* unmanaged<Sqlite3Vfs*, byte*, Sqlite3File*, int, int*, int> xOpen;
        public nint xDelete;
        public nint xAccess;
        public nint xFullPathname;
        public nint xDlOpen;
        public nint xDlError;
        public nint xDlSym;
        public nint xDlClose;
        public nint xRandomness;
        public nint xSleep;
        public nint xCurrentTime;
        public nint xGetLastError;
        public nint xCurrentTimeInt64;
        public nint xSetSystemCall;
        public nint xGetSystemCall;
        public nint xNextSystemCall;
    }
}
