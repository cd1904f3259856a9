//! Bounded disk for spilling: sorts, aggregates and joins that do not fit in
//! memory write to `spill_dir`, but all running queries together may hold at
//! most `spill_limit` there and one query at most `query_spill_limit`.
//!
//! Every query gets its own spill files through a [`SpillSpace`]: a query
//! over either limit, or one whose write finds the disk full, ends at once
//! with `ResourcesExhausted` naming the setting to change, writes nothing
//! more, and its files are deleted as the query's operators let go of them.
//! Each query's files live in a folder of their own
//! (`<spill_dir>/tsql-spill-<pid>-<n>`), which is removed with its last file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::disk_manager::{DiskManager, DiskManagerBuilder};
use datafusion::execution::spill_file::{SpillFile, SpillWriter, TempFileFactory};
use futures::{Stream, StreamExt};

use crate::memory::show_size;

/// The most `spill_limit` defaults to, however much room the disk has: 100 GiB.
pub const DEFAULT_SPILL_CAP: u64 = 100 << 30;

/// `spill_limit` when the spill folder's free space cannot be read: 10 GiB.
pub const DEFAULT_SPILL_UNKNOWN_FREE: u64 = 10 << 30;

/// Prefix of the folder each query's spill files live in.
const FOLDER_PREFIX: &str = "tsql-spill-";

/// How much may be spilled: by all running queries together, and by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpillLimits {
    /// Bytes all running queries together may hold in spill files (`spill_limit`).
    pub total: u64,
    /// Bytes one query may hold in spill files (`query_spill_limit`).
    pub per_query: u64,
}

impl SpillLimits {
    /// The limits from what is configured, else the defaults: `spill_limit`
    /// is half the spill folder's `free` bytes at startup, at most
    /// [`DEFAULT_SPILL_CAP`] ([`DEFAULT_SPILL_UNKNOWN_FREE`] when the free
    /// space is unknown); `query_spill_limit` is half of `spill_limit`, and
    /// never more than it.
    pub fn resolve(total: Option<u64>, per_query: Option<u64>, free: Option<u64>) -> SpillLimits {
        let total = total.unwrap_or_else(|| match free {
            Some(f) => (f / 2).min(DEFAULT_SPILL_CAP),
            None => DEFAULT_SPILL_UNKNOWN_FREE,
        });
        let per_query = per_query.unwrap_or(total / 2).min(total);
        SpillLimits { total, per_query }
    }
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
pub fn free_space(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// The spill folder of a server and what its queries hold there now.
#[derive(Debug)]
pub struct SpillSpace {
    dir: PathBuf,
    limits: SpillLimits,
    /// Bytes all queries hold in spill files now.
    used: AtomicU64,
    /// Spill files all queries hold now.
    files: AtomicUsize,
    /// Numbers the queries' folders.
    next_folder: AtomicU64,
    /// Numbers spill files (never reused, so a name is never taken).
    next_file: AtomicU64,
}

impl SpillSpace {
    /// The spill space in `dir` (the system's temporary folder when `None`)
    /// under `total` and `per_query` bytes (each the default of
    /// [`SpillLimits::resolve`] when `None`). Creates `dir`, and removes
    /// query folders left behind by tsql processes that no longer run.
    pub fn new(
        dir: Option<&Path>,
        total: Option<u64>,
        per_query: Option<u64>,
    ) -> Result<Arc<SpillSpace>> {
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        std::fs::create_dir_all(&dir).map_err(|e| {
            DataFusionError::Configuration(format!(
                "cannot use spill_dir {}: {e}; create it, or set spill_dir to a writable folder",
                dir.display()
            ))
        })?;
        sweep_orphans(&dir);
        let free = free_space(&dir);
        let limits = SpillLimits::resolve(total, per_query, free);
        tracing::info!(
            "spill_dir {}: spill_limit {}, query_spill_limit {} ({} free there now)",
            dir.display(),
            show_size(limits.total as usize),
            show_size(limits.per_query as usize),
            free.map_or_else(|| "unknown".to_string(), |f| show_size(f as usize))
        );
        crate::metrics::metrics()
            .spill_limit
            .set(i64::try_from(limits.total).unwrap_or(i64::MAX));
        Ok(Arc::new(SpillSpace {
            dir,
            limits,
            used: AtomicU64::new(0),
            files: AtomicUsize::new(0),
            next_folder: AtomicU64::new(0),
            next_file: AtomicU64::new(0),
        }))
    }

    /// The limits in force.
    pub fn limits(&self) -> SpillLimits {
        self.limits
    }

    /// The folder queries spill into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes and files all queries hold in spill files now.
    pub fn usage(&self) -> (u64, usize) {
        (
            self.used.load(Ordering::Relaxed),
            self.files.load(Ordering::Relaxed),
        )
    }

    /// A disk manager for one query: its spill files count against the
    /// query's `query_spill_limit` and the server's `spill_limit`, and once
    /// one of its writes fails for a limit or a full disk, it spills nothing more.
    pub fn disk_manager(self: &Arc<SpillSpace>) -> Result<Arc<DiskManager>> {
        Ok(Arc::new(self.builder(true).build()?))
    }

    /// A disk manager builder for a runtime that queries share (what runs
    /// on it directly): its files count against `query_spill_limit` and
    /// `spill_limit` together, and a failed write stops only itself.
    pub fn disk_manager_builder(self: &Arc<SpillSpace>) -> DiskManagerBuilder {
        self.builder(false)
    }

    fn builder(self: &Arc<SpillSpace>, latch: bool) -> DiskManagerBuilder {
        let share = Arc::new(QueryShare {
            space: self.clone(),
            used: AtomicU64::new(0),
            latch,
            failure: OnceLock::new(),
            folder: Mutex::new(Weak::new()),
        });
        DiskManagerBuilder::default().with_temp_file_factory(Arc::new(ShareFactory(share)))
    }
}

/// Removes `tsql-spill-<pid>-<n>` folders in `dir` whose process is gone
/// (a server that was killed leaves its spill files behind).
fn sweep_orphans(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return; // cannot tell which processes run
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(FOLDER_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// One query's spill files: what it holds, and why it was stopped.
#[derive(Debug)]
struct QueryShare {
    space: Arc<SpillSpace>,
    /// Bytes this query holds in spill files now.
    used: AtomicU64,
    /// Whether the first failure stops all later spilling (one query's share).
    latch: bool,
    /// Why the query may spill no more (set once, by the first failure, when `latch`).
    failure: OnceLock<String>,
    /// The query's folder while any of its files exists.
    folder: Mutex<Weak<QueryFolder>>,
}

/// The error a stopped query's spill gets: `ResourcesExhausted(why)`.
fn exhausted(why: &str) -> DataFusionError {
    DataFusionError::ResourcesExhausted(why.to_string())
}

/// `e` for the `std::io::Write` a spill goes through, keeping `e` as the
/// error's root (`DataFusionError::find_root`), so the front ends see
/// `ResourcesExhausted` and not an I/O error.
fn as_io(e: DataFusionError) -> std::io::Error {
    std::io::Error::other(Carried(e))
}

/// Carries a [`DataFusionError`] through an I/O error: `io::Error::source()`
/// answers the carrier's source, which is the error itself.
#[derive(Debug)]
struct Carried(DataFusionError);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Carried {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// `e` as the limit that caused it, when a limit did: a spill over
/// `query_spill_limit` reaches the query wrapped in I/O and Arrow errors
/// ("Arrow error: Io error: …"), and is answered as the plain
/// `ResourcesExhausted` it started as. Any other error is returned as it is.
pub fn limit_error(e: DataFusionError) -> DataFusionError {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(why)
            if !matches!(e, DataFusionError::ResourcesExhausted(_)) =>
        {
            DataFusionError::ResourcesExhausted(why.clone())
        }
        _ => e,
    }
}

/// Whether `e` says the disk (or the user's disk quota) is full.
fn disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl QueryShare {
    /// Stops the query's spilling for `why` (the first reason wins) and
    /// returns the error to answer with.
    fn stop(&self, why: String) -> DataFusionError {
        if !self.latch {
            crate::metrics::metrics().spill_exhausted.inc();
            return exhausted(&why);
        }
        if self.failure.set(why).is_ok() {
            crate::metrics::metrics().spill_exhausted.inc();
        }
        exhausted(self.failure.get().expect("set above"))
    }

    /// The error of a query already stopped, if it is.
    fn stopped(&self) -> Option<DataFusionError> {
        self.failure.get().map(|why| exhausted(why))
    }

    /// Counts `len` more bytes against both limits, or stops the query.
    fn reserve(&self, len: u64) -> Result<()> {
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        let limits = self.space.limits;
        let query = self.used.fetch_add(len, Ordering::Relaxed) + len;
        if query > limits.per_query {
            self.used.fetch_sub(len, Ordering::Relaxed);
            return Err(self.stop(format!(
                "the query needs more than query_spill_limit ({}) of disk to spill to; it was stopped and its spill files removed. \
                 Narrow it (filters, fewer columns, a LIMIT), or raise query_spill_limit (or query_memory_limit, so it spills less) in the server config",
                show_size(limits.per_query as usize)
            )));
        }
        let total = self.space.used.fetch_add(len, Ordering::Relaxed) + len;
        if total > limits.total {
            self.space.used.fetch_sub(len, Ordering::Relaxed);
            self.used.fetch_sub(len, Ordering::Relaxed);
            return Err(self.stop(format!(
                "the running queries together need more than spill_limit ({}) of disk to spill to (this query holds {}); it was stopped and its spill files removed. \
                 Try again when fewer large queries run, or raise spill_limit in the server config (spill_dir must have that much room)",
                show_size(limits.total as usize),
                show_size((query - len) as usize)
            )));
        }
        Ok(())
    }

    /// Gives back `len` bytes counted by [`QueryShare::reserve`].
    fn release(&self, len: u64) {
        self.used.fetch_sub(len, Ordering::Relaxed);
        self.space.used.fetch_sub(len, Ordering::Relaxed);
    }

    /// The error of a spill that could not create or write a file in the
    /// spill folder: a full disk stops the query with `ResourcesExhausted`;
    /// anything else says which folder failed.
    fn io_failure(&self, e: std::io::Error, doing: &str) -> DataFusionError {
        let dir = self.space.dir.display();
        if disk_full(&e) {
            return self.stop(format!(
                "the disk of spill_dir ({dir}) is full ({e}) while {doing}; the query was stopped and its spill files removed. \
                 Free space there, set spill_dir to a larger disk, or lower spill_limit so queries stop before the disk fills"
            ));
        }
        DataFusionError::Execution(format!(
            "cannot spill to spill_dir ({dir}) while {doing}: {e}; check that the folder exists and the server may write to it, or set spill_dir"
        ))
    }

    /// The query's folder, made when it has none.
    fn folder(&self) -> Result<Arc<QueryFolder>> {
        let mut held = self.folder.lock().expect("not poisoned");
        if let Some(f) = held.upgrade() {
            return Ok(f);
        }
        let n = self.space.next_folder.fetch_add(1, Ordering::Relaxed);
        let path = self
            .space
            .dir
            .join(format!("{FOLDER_PREFIX}{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| self.io_failure(e, "making the query's spill folder"))?;
        let f = Arc::new(QueryFolder { path });
        *held = Arc::downgrade(&f);
        Ok(f)
    }
}

/// A query's spill folder; removed (with anything left in it) when its last
/// file is gone.
#[derive(Debug)]
struct QueryFolder {
    path: PathBuf,
}

impl Drop for QueryFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Makes a query's spill files (DataFusion's [`TempFileFactory`]).
struct ShareFactory(Arc<QueryShare>);

impl TempFileFactory for ShareFactory {
    fn create_temp_file(&self, description: &str) -> Result<Arc<dyn SpillFile>> {
        let share = &self.0;
        if let Some(e) = share.stopped() {
            return Err(e);
        }
        let folder = share.folder()?;
        let n = share.space.next_file.fetch_add(1, Ordering::Relaxed);
        let path = folder.path.join(format!("{n}.arrow"));
        share.space.files.fetch_add(1, Ordering::Relaxed);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path);
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                share.space.files.fetch_sub(1, Ordering::Relaxed);
                return Err(share.io_failure(e, description));
            }
        };
        Ok(Arc::new(LimitedFile(Arc::new(FileState {
            path,
            file,
            size: AtomicU64::new(0),
            share: share.clone(),
            _folder: folder,
        }))))
    }
}

/// One spill file; deleted, and its bytes given back, when the file and
/// every writer of it are gone.
#[derive(Debug)]
struct FileState {
    path: PathBuf,
    file: std::fs::File,
    /// Bytes written (and counted against the limits).
    size: AtomicU64,
    share: Arc<QueryShare>,
    _folder: Arc<QueryFolder>,
}

impl Drop for FileState {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.share.release(*self.size.get_mut());
        self.share.space.files.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A spill file as DataFusion's operators hold it.
struct LimitedFile(Arc<FileState>);

impl SpillFile for LimitedFile {
    fn path(&self) -> Option<&Path> {
        Some(&self.0.path)
    }

    fn size(&self) -> Option<u64> {
        Some(self.0.size.load(Ordering::Relaxed))
    }

    fn read_stream(&self) -> Result<Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>> {
        use tokio::io::AsyncReadExt;
        const CHUNK: usize = 128 * 1024;
        // The file state stays alive while the stream reads, so the file is not deleted under it.
        let state = self.0.clone();
        let opened = async move {
            let file = tokio::fs::File::open(&state.path).await;
            file.map(|f| (f, state))
        };
        let chunks = futures::stream::once(opened).flat_map(|opened| {
            let stream: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>> = match opened {
                Err(e) => Box::pin(futures::stream::once(async move {
                    Err(DataFusionError::IoError(e))
                })),
                Ok((file, state)) => Box::pin(futures::stream::unfold(
                    Some((file, state)),
                    |open| async move {
                        let (mut file, state) = open?;
                        let mut buf = vec![0u8; CHUNK];
                        match file.read(&mut buf).await {
                            Ok(0) => None,
                            Ok(n) => {
                                buf.truncate(n);
                                Some((Ok(Bytes::from(buf)), Some((file, state))))
                            }
                            Err(e) => Some((Err(DataFusionError::IoError(e)), None)),
                        }
                    },
                )),
            };
            stream
        });
        Ok(Box::pin(chunks))
    }

    fn open_writer(&self) -> Result<Box<dyn SpillWriter>> {
        if let Some(e) = self.0.share.stopped() {
            return Err(e);
        }
        Ok(Box::new(LimitedWriter {
            file: self.0.file.try_clone()?,
            state: self.0.clone(),
        }))
    }
}

/// Writes a spill file, counting every byte against the limits first.
struct LimitedWriter {
    file: std::fs::File,
    state: Arc<FileState>,
}

impl Write for LimitedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len() as u64;
        let share = &self.state.share;
        share.reserve(len).map_err(as_io)?;
        if let Err(e) = self.file.write_all(buf) {
            share.release(len);
            return Err(as_io(share.io_failure(e, "writing a spill file")));
        }
        self.state.size.fetch_add(len, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl SpillWriter for LimitedWriter {
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    const MB: u64 = 1 << 20;

    #[test]
    fn default_limits_follow_the_free_space() {
        // Half the free space, capped; the query's share is half of that.
        let l = SpillLimits::resolve(None, None, Some(60 << 30));
        assert_eq!(
            l,
            SpillLimits {
                total: 30 << 30,
                per_query: 15 << 30
            }
        );
        let l = SpillLimits::resolve(None, None, Some(10 << 40));
        assert_eq!(l.total, DEFAULT_SPILL_CAP);
        assert_eq!(l.per_query, DEFAULT_SPILL_CAP / 2);
        let l = SpillLimits::resolve(None, None, None);
        assert_eq!(l.total, DEFAULT_SPILL_UNKNOWN_FREE);
        // Configured values win; a query's share never exceeds the server's.
        let l = SpillLimits::resolve(Some(200 * MB), Some(100 * MB), Some(1 << 40));
        assert_eq!(
            l,
            SpillLimits {
                total: 200 * MB,
                per_query: 100 * MB
            }
        );
        let l = SpillLimits::resolve(Some(64 * MB), Some(100 * MB), None);
        assert_eq!(l.per_query, 64 * MB);
        let l = SpillLimits::resolve(None, Some(MB), Some(8 << 30));
        assert_eq!(
            l,
            SpillLimits {
                total: 4 << 30,
                per_query: MB
            }
        );
    }

    fn write(file: &Arc<dyn SpillFile>, bytes: usize) -> std::io::Result<()> {
        file.open_writer()
            .map_err(std::io::Error::other)?
            .write_all(&vec![7u8; bytes])
    }

    fn files_in(dir: &Path) -> usize {
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                n += files_in(&e.path());
            } else {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn a_query_over_its_share_stops_and_its_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let space = SpillSpace::new(Some(dir.path()), Some(10 * MB), Some(4 * MB)).unwrap();
        let query = space.disk_manager().unwrap();
        let a = query.create_tmp_file("sort").unwrap();
        write(&a, 3 * MB as usize).unwrap();
        assert_eq!(space.usage(), (3 * MB, 1));
        assert_eq!(std::fs::metadata(a.path().unwrap()).unwrap().len(), 3 * MB);
        let b = query.create_tmp_file("sort").unwrap();
        let e = write(&b, 2 * MB as usize).unwrap_err();
        assert!(e.to_string().contains("query_spill_limit (4 MiB)"), "{e}");
        // Nothing of the refused write was counted or written.
        assert_eq!(space.usage(), (3 * MB, 2));
        assert_eq!(std::fs::metadata(b.path().unwrap()).unwrap().len(), 0);
        // Once stopped, the query spills nothing more, not even within its share.
        let Err(again) = query.create_tmp_file("sort") else {
            panic!("a stopped query made a spill file")
        };
        assert!(
            matches!(again, DataFusionError::ResourcesExhausted(_)),
            "{again}"
        );
        assert!(write(&a, 10).is_err());
        assert_eq!(files_in(dir.path()), 2);
        drop((a, b));
        assert_eq!(space.usage(), (0, 0));
        // The files and the query's folder are gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Another query still spills.
        let other = space.disk_manager().unwrap();
        let c = other.create_tmp_file("join").unwrap();
        write(&c, 4 * MB as usize).unwrap();
    }

    #[test]
    fn a_shared_runtime_is_not_stopped_by_one_failure() {
        let dir = tempfile::tempdir().unwrap();
        let space = SpillSpace::new(Some(dir.path()), Some(4 * MB), Some(2 * MB)).unwrap();
        let shared = Arc::new(space.disk_manager_builder().build().unwrap());
        let a = shared.create_tmp_file("sort").unwrap();
        assert!(write(&a, 3 * MB as usize).is_err());
        // What runs next on the shared runtime still spills (within the limits).
        let b = shared.create_tmp_file("sort").unwrap();
        write(&b, MB as usize).unwrap();
        write(&a, MB as usize).unwrap();
        assert_eq!(space.usage(), (2 * MB, 2));
        // A new file never takes the name of one still there.
        drop(a);
        let c = shared.create_tmp_file("sort").unwrap();
        assert_ne!(c.path(), b.path());
        write(&c, 1).unwrap();
    }

    #[test]
    fn all_queries_together_stay_under_the_server_limit() {
        let dir = tempfile::tempdir().unwrap();
        let space = SpillSpace::new(Some(dir.path()), Some(6 * MB), Some(4 * MB)).unwrap();
        let (q1, q2) = (space.disk_manager().unwrap(), space.disk_manager().unwrap());
        let a = q1.create_tmp_file("sort").unwrap();
        let b = q2.create_tmp_file("sort").unwrap();
        write(&a, 3 * MB as usize).unwrap();
        write(&b, 3 * MB as usize).unwrap();
        // Both are within their shares (4 MiB), but together at the server's 6 MiB.
        let e = write(&b, 1).unwrap_err();
        assert!(e.to_string().contains("spill_limit (6 MiB)"), "{e}");
        assert!(!e.to_string().contains("query_spill_limit"), "{e}");
        // The first query is not stopped: once the second lets go, it goes on.
        drop(b);
        assert_eq!(space.usage().0, 3 * MB);
        write(&a, MB as usize).unwrap();
        assert_eq!(space.usage(), (4 * MB, 1));
        // Each query's files live in a folder of their own.
        let folder = a.path().unwrap().parent().unwrap().to_path_buf();
        assert!(
            folder
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(FOLDER_PREFIX)
        );
        drop(a);
        assert!(!folder.exists());
    }

    /// A query's share, made directly, with its folder.
    fn share(space: &Arc<SpillSpace>) -> (Arc<QueryShare>, Arc<QueryFolder>) {
        let share = Arc::new(QueryShare {
            space: space.clone(),
            used: AtomicU64::new(0),
            latch: true,
            failure: OnceLock::new(),
            folder: Mutex::new(Weak::new()),
        });
        let folder = share.folder().unwrap();
        (share, folder)
    }

    #[test]
    fn a_full_disk_stops_the_query_naming_spill_dir() {
        // /dev/full answers every write with ENOSPC.
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let space = SpillSpace::new(Some(dir.path()), Some(10 * MB), None).unwrap();
        let (share, folder) = share(&space);
        space.files.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(FileState {
            path: folder.path.join("full"),
            file: full.try_clone().unwrap(),
            size: AtomicU64::new(0),
            share: share.clone(),
            _folder: folder,
        });
        let mut w = LimitedWriter { file: full, state };
        let e = DataFusionError::from(w.write(&[1, 2, 3]).unwrap_err());
        let DataFusionError::ResourcesExhausted(why) = e.find_root() else {
            panic!("not ResourcesExhausted: {e}");
        };
        assert!(
            why.contains("spill_dir") && why.contains("is full"),
            "{why}"
        );
        assert_eq!(space.usage().0, 0);
        // The query is stopped: it makes no more spill files.
        assert!(ShareFactory(share).create_temp_file("sort").is_err());
        drop(w);
        assert_eq!(space.usage(), (0, 0));
    }

    #[test]
    fn the_limit_survives_the_arrow_writer_and_is_answered_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let space = SpillSpace::new(Some(dir.path()), Some(MB), Some(MB)).unwrap();
        let file = space
            .disk_manager()
            .unwrap()
            .create_tmp_file("sort")
            .unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let values: ArrayRef = Arc::new(Int64Array::from_iter_values(0..200_000));
        let batch = RecordBatch::try_new(schema.clone(), vec![values]).unwrap();
        let writer = file.open_writer().unwrap();
        let mut ipc = arrow::ipc::writer::StreamWriter::try_new(writer, &schema).unwrap();
        let e = DataFusionError::from(ipc.write(&batch).unwrap_err());
        // Wrapped by Arrow ("Arrow error: Io error: …"), the root is the limit:
        assert!(e.to_string().starts_with("Arrow error"), "{e}");
        assert_eq!(
            crate::error_class::class(&e),
            crate::error_class::ErrorClass::Exhausted
        );
        let plain = limit_error(e);
        assert!(
            matches!(&plain, DataFusionError::ResourcesExhausted(m) if m.contains("query_spill_limit (1 MiB)")),
            "{plain}"
        );
        // Other errors pass as they are.
        let other = limit_error(DataFusionError::Execution("x".into()));
        assert!(matches!(other, DataFusionError::Execution(_)));
    }

    #[test]
    fn folders_of_processes_that_are_gone_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir
            .path()
            .join(format!("{FOLDER_PREFIX}{}-0", u32::MAX - 1));
        let mine = dir
            .path()
            .join(format!("{FOLDER_PREFIX}{}-999", std::process::id()));
        let other = dir.path().join("something-else");
        for d in [&gone, &mine, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("0.arrow"), b"x").unwrap();
        }
        SpillSpace::new(Some(dir.path()), None, None).unwrap();
        assert_eq!(gone.exists(), !Path::new("/proc/self").exists());
        assert!(mine.exists() && other.exists());
    }
}
