//! A VFS for the event writer's connection that writes a commit's WAL frames
//! with one system call instead of two a frame.
//!
//! SQLite appends each frame of a commit to the WAL as two `pwrite`s (its
//! 24-byte header, then the page), and an event's commit is about fifteen
//! frames: thirty system calls before its `fdatasync` (PERFORMANCE §1f). This
//! VFS is SQLite's own (`unix`) for every file, except that the WAL file's
//! writes are gathered while the writer thread runs its `COMMIT` statement
//! (`gathering`) and written as one `pwrite` when SQLite syncs the file — or
//! reads it, asks its size, truncates or closes it, or writes somewhere else
//! in it — and in any case before `gathering` returns.
//!
//! Why that keeps every guarantee:
//! - **Durability:** SQLite syncs the WAL before a commit counts
//!   (`synchronous=FULL`) and the sync writes what was gathered first, so what
//!   reaches the disk before `fdatasync` returns is the same bytes.
//! - **Nobody reads what is not written:** other connections read only
//!   committed frames, and a commit's frames are written before its sync;
//!   this connection's own reads write the gathered bytes out first.
//! - **Nothing lands late:** by the time `COMMIT` returns, SQLite has made
//!   the commit visible (the wal-index header) and let go of the WAL's write
//!   lock, so every gathered byte must be written by the sync *inside* the
//!   commit. That holds when the connection commits with `synchronous=FULL`
//!   and its database file promises power-safe overwrites (SQLite then syncs
//!   after the commit's last frame and pads nothing after the sync); `usable`
//!   checks both, and the writer does not gather otherwise. A `COMMIT` that
//!   fails before its sync leaves frames past the WAL's committed end, which
//!   nothing refers to: they are dropped, never written after the lock is gone
//!   (where they could land on another connection's frames). Anything left
//!   after a `COMMIT` that succeeded would be a broken promise of the above:
//!   it is written at once and logged as an error.
//! - Everything else (every other file, every other thread, and every other
//!   statement of this one, spills of a large transaction included) goes
//!   straight to the `unix` VFS.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The VFS's name, for `Connection::open_with_flags_and_vfs`.
pub(super) const NAME: &str = "duecall-gather";

thread_local! {
    /// Whether this thread is inside `gathering`.
    static GATHERING: Cell<bool> = const { Cell::new(false) };
    /// The WAL file whose writes this thread has gathered and not written yet.
    static PENDING: Cell<*mut WalFile> = const { Cell::new(ptr::null_mut()) };
}

#[cfg(test)]
thread_local! {
    /// Writes this thread handed the `unix` VFS for WAL files.
    static WRITES: Cell<usize> = const { Cell::new(0) };
}

fn count_write() {
    #[cfg(test)]
    WRITES.with(|w| w.set(w.get() + 1));
}

/// Run `f` (the writer's `COMMIT`) with the WAL's writes gathered; all of
/// them are written before this returns. An error writing them out, when `f`
/// did not already fail, is `f`'s error.
pub(super) fn gathering<T>(f: impl FnOnce() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    /// Ends the gathering however `f` ends (a panic included): nothing stays
    /// gathered, and nothing gathered is written unless asked.
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            GATHERING.with(|g| g.set(false));
            let file = PENDING.with(|p| p.replace(ptr::null_mut()));
            if !file.is_null() {
                // SAFETY: `PENDING` only ever holds an open WAL file of a
                // connection this thread is using (`xClose` clears it).
                unsafe { (*file).buf.clear() };
            }
        }
    }
    let scope = Scope;
    GATHERING.with(|g| g.set(true));
    let result = f();
    GATHERING.with(|g| g.set(false));
    let file = PENDING.with(|p| p.replace(ptr::null_mut()));
    drop(scope);
    if file.is_null() || result.is_err() {
        // A failed COMMIT's frames lie past the WAL's committed end: dropped
        // (by `Scope`), never written after the write lock is gone.
        return result;
    }
    // A commit that succeeded with frames not yet written: the sync inside
    // it should have written them (see `usable`). Written now, and said.
    // SAFETY: as in `Scope`.
    let rc = unsafe {
        let wal = &mut *file;
        let left = wal.buf.len();
        let rc = flush(wal);
        tracing::error!(
            bytes = left,
            "SQLite WAL frames were still gathered after their commit; written late"
        );
        rc
    };
    match rc {
        ffi::SQLITE_OK => result,
        rc => Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some("writing the commit's WAL frames".into()),
        )),
    }
}

/// Whether `conn`'s commits write every gathered byte with their sync:
/// `synchronous=FULL` (a sync after the commit's last frame) and power-safe
/// overwrite on its database file (no padding written after that sync).
pub(super) fn usable(conn: &rusqlite::Connection) -> bool {
    let full = conn
        .query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
        .is_ok_and(|level| level >= 2);
    let mut psow: c_int = -1;
    // SAFETY: a query (-1) of the main database file's flag on an open handle.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_POWERSAFE_OVERWRITE,
            (&mut psow as *mut c_int).cast(),
        )
    };
    full && rc == ffi::SQLITE_OK && psow == 1
}

/// Register the VFS (once per process). `Err`: SQLite has no default VFS.
pub(super) fn register() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        // SAFETY: reading SQLite's default VFS, then registering a copy of it
        // that lives for the whole process (leaked on purpose).
        unsafe {
            let base = ffi::sqlite3_vfs_find(ptr::null());
            if base.is_null() {
                return Err("SQLite has no default VFS".into());
            }
            BASE.store(base, std::sync::atomic::Ordering::Release);
            let mut vfs: ffi::sqlite3_vfs = *base;
            vfs.pNext = ptr::null_mut();
            vfs.zName = CString::new(NAME).expect("no NUL").into_raw();
            vfs.szOsFile = (wal_file_size() + (*base).szOsFile as usize) as c_int;
            vfs.xOpen = Some(open);
            let vfs = Box::into_raw(Box::new(vfs));
            match ffi::sqlite3_vfs_register(vfs, 0) {
                ffi::SQLITE_OK => Ok(()),
                rc => Err(format!("registering the SQLite VFS failed ({rc})")),
            }
        }
    })
    .clone()
}

static BASE: std::sync::atomic::AtomicPtr<ffi::sqlite3_vfs> =
    std::sync::atomic::AtomicPtr::new(ptr::null_mut());

/// A WAL file: SQLite's handle, the `unix` VFS's file after it, and the
/// gathered bytes (`start` is the file offset of `buf[0]`).
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    buf: Vec<u8>,
    start: i64,
}

/// Where the `unix` file starts in the allocation SQLite gives `open`.
fn wal_file_size() -> usize {
    std::mem::size_of::<WalFile>().next_multiple_of(16)
}

fn base() -> *mut ffi::sqlite3_vfs {
    BASE.load(std::sync::atomic::Ordering::Acquire)
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let base = base();
    let base_open = (*base).xOpen.expect("the unix VFS opens files");
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a WAL: the unix VFS's own file, in SQLite's allocation.
        return base_open(base, name, file, flags, out_flags);
    }
    let wal = file.cast::<WalFile>();
    let real = file
        .cast::<u8>()
        .add(wal_file_size())
        .cast::<ffi::sqlite3_file>();
    (*real).pMethods = ptr::null();
    let rc = base_open(base, name, real, flags, out_flags);
    if rc != ffi::SQLITE_OK || (*real).pMethods.is_null() {
        (*file).pMethods = ptr::null();
        return if rc == ffi::SQLITE_OK {
            ffi::SQLITE_CANTOPEN
        } else {
            rc
        };
    }
    ptr::write(
        wal,
        WalFile {
            base: ffi::sqlite3_file {
                pMethods: &WAL_METHODS,
            },
            real,
            buf: Vec::new(),
            start: 0,
        },
    );
    ffi::SQLITE_OK
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe fn real(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    let real = (*file.cast::<WalFile>()).real;
    (real, &*(*real).pMethods)
}

/// The most one write hands the `unix` VFS: it keeps only the low 17 bits
/// of a write's length (`seekAndWriteFd`), so a longer write is cut, and one
/// of a multiple of 128 KiB writes nothing and fails as `SQLITE_FULL`.
const MAX_WRITE: usize = 120 * 1024;

/// Write out what was gathered: one call per `MAX_WRITE` bytes.
unsafe fn flush(wal: &mut WalFile) -> c_int {
    let methods = &*(*wal.real).pMethods;
    let write = methods.xWrite.expect("unix files write");
    let mut rc = ffi::SQLITE_OK;
    let mut offset = wal.start;
    for chunk in wal.buf.chunks(MAX_WRITE) {
        // At most MAX_WRITE: fits a c_int.
        count_write();
        rc = write(
            wal.real,
            chunk.as_ptr().cast(),
            chunk.len() as c_int,
            offset,
        );
        if rc != ffi::SQLITE_OK {
            break;
        }
        offset += chunk.len() as i64;
    }
    wal.buf.clear();
    rc
}

/// Flush before an operation that must see the file as written.
unsafe fn flushed(file: *mut ffi::sqlite3_file) -> c_int {
    let wal = file.cast::<WalFile>();
    PENDING.with(|p| {
        if p.get() == wal {
            p.set(ptr::null_mut());
        }
    });
    flush(&mut *wal)
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let rc = flushed(file);
    let (real, methods) = real(file);
    let closed = methods.xClose.map_or(ffi::SQLITE_OK, |f| f(real));
    ptr::drop_in_place(file.cast::<WalFile>());
    (*file).pMethods = ptr::null();
    if rc != ffi::SQLITE_OK {
        rc
    } else {
        closed
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let wal = file.cast::<WalFile>();
    if !GATHERING.with(Cell::get) {
        let rc = flushed(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let (real, methods) = real(file);
        count_write();
        return methods.xWrite.expect("unix files write")(real, data, amount, offset);
    }
    let w = &mut *wal;
    let end = w.start + w.buf.len() as i64;
    if !w.buf.is_empty() && offset != end {
        // Somewhere else in the file: what was gathered goes first.
        let rc = flush(w);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if w.buf.is_empty() {
        w.start = offset;
    }
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), amount.max(0) as usize);
    w.buf.extend_from_slice(bytes);
    PENDING.with(|p| p.set(wal));
    ffi::SQLITE_OK
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let rc = flushed(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let (real, methods) = real(file);
    methods.xRead.expect("unix files read")(real, data, amount, offset)
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let rc = flushed(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let (real, methods) = real(file);
    methods.xTruncate.expect("unix files truncate")(real, size)
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let rc = flushed(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let (real, methods) = real(file);
    methods.xSync.expect("unix files sync")(real, flags)
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    let rc = flushed(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let (real, methods) = real(file);
    methods.xFileSize.expect("unix files have a size")(real, size)
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (real, methods) = real(file);
    methods.xLock.map_or(ffi::SQLITE_OK, |f| f(real, level))
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (real, methods) = real(file);
    methods.xUnlock.map_or(ffi::SQLITE_OK, |f| f(real, level))
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let (real, methods) = real(file);
    methods
        .xCheckReservedLock
        .map_or(ffi::SQLITE_OK, |f| f(real, out))
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    let rc = flushed(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let (real, methods) = real(file);
    methods
        .xFileControl
        .map_or(ffi::SQLITE_NOTFOUND, |f| f(real, op, arg))
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let (real, methods) = real(file);
    methods.xSectorSize.map_or(4096, |f| f(real))
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let (real, methods) = real(file);
    methods.xDeviceCharacteristics.map_or(0, |f| f(real))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    fn open(path: &std::path::Path) -> Connection {
        register().unwrap();
        let c = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), NAME).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;",
        )
        .unwrap();
        c
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    fn integrity(c: &Connection) {
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    /// Commits whose frames were gathered are whole and visible to a
    /// connection on SQLite's own VFS, commit after commit (the WAL growing
    /// and, after a checkpoint, starting over).
    #[test]
    fn gathered_commits_are_read_back_whole_by_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let writer = open(&path);
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)")
            .unwrap();
        let reader = Connection::open(&path).unwrap();
        let mut n = 0;
        for round in 0..60 {
            writer.execute_batch("BEGIN IMMEDIATE").unwrap();
            // Random keys: many pages touched, many frames per commit.
            for _ in 0..50 {
                n += 1;
                writer
                    .execute(
                        "INSERT INTO t (k, v) VALUES (hex(randomblob(16)), zeroblob(300))",
                        [],
                    )
                    .unwrap();
            }
            let before = WRITES.with(Cell::get);
            gathering(|| writer.execute_batch("COMMIT")).unwrap();
            let writes = WRITES.with(Cell::get) - before;
            // Dozens of frames (two writes each without gathering) in a few
            // calls of at most MAX_WRITE bytes.
            assert!((1..=4).contains(&writes), "round {round}: {writes} writes");
            assert!(PENDING.with(Cell::get).is_null(), "nothing left gathered");
            assert_eq!(count(&reader), n, "round {round}");
            if round % 20 == 19 {
                reader
                    .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                    .unwrap();
            }
        }
        integrity(&reader);
        drop(writer);
        integrity(&Connection::open(&path).unwrap());
    }

    /// Gathering is for connections whose commit's sync writes every frame.
    #[test]
    fn only_a_full_sync_connection_may_gather() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("u.db"));
        assert!(usable(&c), "synchronous=FULL, power-safe overwrite");
        c.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
        assert!(!usable(&c), "NORMAL commits without a sync");
    }

    /// A panic inside `gathering` leaves nothing gathered behind.
    #[test]
    fn a_panic_while_gathering_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("p.db"));
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)")
            .unwrap();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            gathering(|| -> rusqlite::Result<()> { panic!("in the statement") })
        }));
        assert!(unwound.is_err());
        assert!(!GATHERING.with(Cell::get), "gathering ended");
        assert!(PENDING.with(Cell::get).is_null());
        // Writes go straight through again.
        let before = WRITES.with(Cell::get);
        c.execute("INSERT INTO t (k, v) VALUES ('x', zeroblob(10))", [])
            .unwrap();
        assert!(WRITES.with(Cell::get) > before);
    }

    /// A transaction that spilled frames to the WAL (written at once, not
    /// gathered) and rolled back, then another connection's commit over the
    /// same part of the WAL, then a gathered commit: nothing of the rolled
    /// back transaction lands late, and every commit is there.
    #[test]
    fn a_rolled_back_spill_never_lands_over_another_connections_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let writer = open(&path);
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB); PRAGMA cache_size = 5;")
            .unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("PRAGMA busy_timeout = 5000").unwrap();
        for round in 0..10 {
            writer.execute_batch("BEGIN IMMEDIATE").unwrap();
            for _ in 0..200 {
                writer
                    .execute(
                        "INSERT INTO t (k, v) VALUES (hex(randomblob(16)), zeroblob(500))",
                        [],
                    )
                    .unwrap();
            }
            writer.execute_batch("ROLLBACK").unwrap();
            other
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE; INSERT INTO t (k, v) VALUES ('other-{round}', zeroblob(2000)); COMMIT;"
                ))
                .unwrap();
            writer.execute_batch("BEGIN IMMEDIATE").unwrap();
            writer
                .execute(
                    "INSERT INTO t (k, v) VALUES (?, zeroblob(100))",
                    [format!("mine-{round}")],
                )
                .unwrap();
            gathering(|| writer.execute_batch("COMMIT")).unwrap();
        }
        let fresh = Connection::open(&path).unwrap();
        assert_eq!(
            count(&fresh),
            20,
            "ten of each, nothing of the rolled-back ones"
        );
        integrity(&fresh);
    }
}
