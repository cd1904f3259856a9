//! A folder of entity files as an [`EntitySource`]: `DIR/<model>/<version>/*.ndjson|*.json`.
//! Files are indexed in parallel the first time they are seen and again only when
//! their size or modification time changes, so every query sees added, changed
//! and removed files without a restart.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use datafusion::common::{DataFusionError, Result};
use tsql_entity_tables::json::Cursor;
use tsql_entity_tables::layout::DeclaredTypes;
use tsql_entity_tables::{
    BadRecordPolicy, BadRecords, EntitySource, Location, ModelId, ModelSnapshot, ObjectShape,
    PayloadStore, Revision, SqlType,
};

use crate::records::{FileFacts, IndexedRecords, index_json_document, index_ndjson};

/// NDJSON files are indexed in pieces of about this many bytes, in parallel.
const PIECE_BYTES: usize = 16 << 20;

/// Identity of a file's content as far as caching goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: i64,
    len: u64,
}

#[derive(Debug)]
struct IndexedFile {
    stamp: Stamp,
    records: IndexedRecords,
}

/// The optional file of declared types in a model's folder.
pub const TYPES_FILE: &str = "_types.json";

#[derive(Debug, Default)]
struct ModelCache {
    files: HashMap<PathBuf, Arc<IndexedFile>>,
    listing: Vec<(PathBuf, Stamp)>,
    types: Option<Stamp>,
    snapshot: Option<Arc<ModelSnapshot>>,
}

/// Entity files under one folder.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    policy: BadRecordPolicy,
    bad_records: Arc<BadRecords>,
    threads: usize,
    cache: Mutex<HashMap<ModelId, ModelCache>>,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!("cannot {what} {}: {e}", path.display()))
}

impl LocalStore {
    /// A store over `root`. Bad records fail queries or are skipped and counted in `bad_records`.
    pub fn new(
        root: impl Into<PathBuf>,
        policy: BadRecordPolicy,
        bad_records: Arc<BadRecords>,
    ) -> Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            return Err(DataFusionError::Execution(format!(
                "data folder {} does not exist or is not a folder: point --data at a folder laid out as <model>/<version>/*.ndjson",
                root.display()
            )));
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(LocalStore {
            root,
            policy,
            bad_records,
            threads,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The folder this store reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn model_dir(&self, model: &ModelId) -> PathBuf {
        self.root.join(&model.name).join(model.version.to_string())
    }

    /// Entity files of a model with their stamps, ordered by modification time then
    /// path, so that fields of newer files come later in the column order.
    fn list_files(&self, model: &ModelId) -> Result<Vec<(PathBuf, Stamp)>> {
        let dir = self.model_dir(model);
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_error("list", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", &dir, e))?;
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let name = entry.file_name();
            let hidden = name.to_string_lossy().starts_with(['.', '_']);
            if hidden || (ext != "ndjson" && ext != "json") {
                continue;
            }
            let md = match entry.metadata() {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("read", &path, e)),
            };
            let modified = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0);
            out.push((
                path,
                Stamp {
                    modified,
                    len: md.len(),
                },
            ));
        }
        out.sort_by(|a, b| (a.1.modified, &a.0).cmp(&(b.1.modified, &b.0)));
        Ok(out)
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Indexes the given files, in parallel pieces.
    fn index_files(&self, files: &[(PathBuf, Stamp)]) -> Result<Vec<Arc<IndexedFile>>> {
        // With many files, each worker reads and indexes whole files, so reading
        // overlaps parsing. With few, large NDJSON files are read first and split
        // into pieces at line ends. Work items: (file, byte range, first line);
        // an empty range means "the whole file, read by the worker".
        let split = files.len() < 2 * self.threads;
        let mut contents: Vec<Option<Vec<u8>>> = Vec::with_capacity(files.len());
        let mut pieces: Vec<(usize, usize, usize, usize)> = Vec::new();
        for (f, (path, _)) in files.iter().enumerate() {
            let is_ndjson = path.extension().is_some_and(|e| e == "ndjson");
            if !(split && is_ndjson) {
                contents.push(None);
                pieces.push((f, 0, 0, 1));
                continue;
            }
            let buf = std::fs::read(path).map_err(|e| io_error("read", path, e))?;
            let (mut start, mut line) = (0, 1);
            while start < buf.len() {
                let mut end = (start + PIECE_BYTES).min(buf.len());
                end = memchr::memchr(b'\n', &buf[end..]).map_or(buf.len(), |p| end + p + 1);
                pieces.push((f, start, end, line));
                line += memchr::memchr_iter(b'\n', &buf[start..end]).count();
                start = end;
            }
            contents.push(Some(buf));
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Mutex<Vec<Option<IndexedRecords>>> =
            Mutex::new((0..pieces.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..self.threads.min(pieces.len()).max(1) {
                scope.spawn(|| {
                    // One buffer per worker, reused across files (fewer page faults).
                    let mut owned: Vec<u8> = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(f, s, e, first_line)) = pieces.get(i) else {
                            break;
                        };
                        let (path, stamp) = &files[f];
                        let facts = FileFacts {
                            relative_path: self.relative(path),
                            modified: stamp.modified,
                        };
                        let (buf, s, e) = match &contents[f] {
                            Some(buf) => (buf.as_slice(), s, e),
                            None => match read_into(path, &mut owned) {
                                Ok(()) => (owned.as_slice(), 0, owned.len()),
                                Err(err) => {
                                    let mut r = IndexedRecords::default();
                                    r.bad.push(crate::records::BadRecord {
                                        line: 0,
                                        message: format!("cannot read the file: {err}"),
                                    });
                                    results.lock().expect("not poisoned")[i] = Some(r);
                                    continue;
                                }
                            },
                        };
                        let r = if path.extension().is_some_and(|x| x == "json") {
                            index_json_document(buf, &facts)
                        } else {
                            index_ndjson(&buf[s..e], s as u64, first_line, &facts)
                        };
                        results.lock().expect("not poisoned")[i] = Some(r);
                    }
                });
            }
        });
        let results = results.into_inner().expect("not poisoned");
        let mut per_file: Vec<IndexedRecords> = (0..files.len())
            .map(|_| IndexedRecords::default())
            .collect();
        for ((f, _, _, _), r) in pieces.iter().zip(results) {
            let r = r.expect("every piece was indexed");
            let acc = &mut per_file[*f];
            acc.revisions.extend(r.revisions);
            acc.shape.merge(&r.shape);
            acc.bad.extend(r.bad);
        }
        Ok(per_file
            .into_iter()
            .zip(files)
            .map(|(records, (_, stamp))| {
                Arc::new(IndexedFile {
                    stamp: *stamp,
                    records,
                })
            })
            .collect())
    }
}

impl EntitySource for LocalStore {
    fn models(&self) -> Result<Vec<ModelId>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.root).map_err(|e| io_error("list", &self.root, e))?;
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            let Ok(versions) = std::fs::read_dir(entry.path()) else {
                continue;
            };
            for v in versions.flatten() {
                let version = v.file_name().to_str().and_then(|s| s.parse::<u32>().ok());
                if let Some(version) = version.filter(|v| *v >= 1) {
                    if v.path().is_dir() {
                        out.push(ModelId {
                            name: name.clone(),
                            version,
                        });
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn snapshot(&self, model: &ModelId) -> Result<Arc<ModelSnapshot>> {
        let listing = self.list_files(model)?;
        let types_path = self.model_dir(model).join(TYPES_FILE);
        let types_stamp = std::fs::metadata(&types_path).ok().map(|m| Stamp {
            modified: m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0),
            len: m.len(),
        });
        let mut cache = self.cache.lock().expect("not poisoned");
        let entry = cache.entry(model.clone()).or_default();
        if let Some(s) = &entry.snapshot {
            if entry.listing == listing && entry.types == types_stamp {
                return Ok(s.clone());
            }
        }
        let stale: Vec<(PathBuf, Stamp)> = listing
            .iter()
            .filter(|(p, st)| entry.files.get(p).is_none_or(|f| f.stamp != *st))
            .cloned()
            .collect();
        for (f, indexed) in stale.iter().zip(self.index_files(&stale)?) {
            entry.files.insert(f.0.clone(), indexed);
        }
        entry
            .files
            .retain(|p, _| listing.iter().any(|(q, _)| q == p));
        let mut shape = ObjectShape::default();
        let mut revisions: Vec<Revision> = Vec::new();
        let mut unreadable = Vec::new();
        for (part, (path, _)) in listing.iter().enumerate() {
            let f = &entry.files[path];
            for b in &f.records.bad {
                let why = || format!("{} line {}: {}", self.relative(path), b.line, b.message);
                match self.policy {
                    BadRecordPolicy::Fail => unreadable.push(why()),
                    BadRecordPolicy::Skip => self.bad_records.skip(why),
                }
            }
            shape.merge(&f.records.shape);
            revisions.extend(f.records.revisions.iter().map(|r| Revision {
                location: Location {
                    part: part as u32,
                    ..r.location
                },
                ..r.clone()
            }));
        }
        let store = Arc::new(LocalPayloads {
            files: listing.iter().map(|(p, _)| p.clone()).collect(),
            root: self.root.clone(),
        });
        let declared = match types_stamp {
            Some(_) => read_declared_types(&types_path, &self.relative(&types_path))?,
            None => DeclaredTypes::new(),
        };
        let snapshot = Arc::new(
            ModelSnapshot::new(model.clone(), shape, revisions, store)
                .with_declared(declared)
                .with_unreadable(unreadable),
        );
        entry.listing = listing;
        entry.types = types_stamp;
        entry.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }
}

/// Reads a whole file into `buf`, keeping its allocation.
fn read_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    buf.clear();
    File::open(path)?.read_to_end(buf)?;
    Ok(())
}

/// Reads `_types.json`: `{"$.path": "CYODA_TYPE", …}` (e.g. `"$.lines[*].qty": "INTEGER"`).
fn read_declared_types(path: &Path, shown: &str) -> Result<DeclaredTypes> {
    let text = std::fs::read(path).map_err(|e| io_error("read", path, e))?;
    let bad = |msg: String| {
        DataFusionError::Execution(format!(
            "{shown}: {msg}. It maps JSON paths to Cyoda types, e.g. {{\"$.lines[*].qty\": \"INTEGER\"}}"
        ))
    };
    let mut c = Cursor::new(&text);
    let mut out = DeclaredTypes::new();
    c.begin_object().map_err(|e| bad(e.to_string()))?;
    let mut first = true;
    while let Some(key) = c.next_key(first).map_err(|e| bad(e.to_string()))? {
        first = false;
        let name = c.read_str().map_err(|e| bad(e.to_string()))?;
        let t = SqlType::from_declared(&name)
            .ok_or_else(|| bad(format!("unknown type {name} for {key}")))?;
        out.insert(key.into_owned(), t);
    }
    Ok(out)
}

/// Reads payloads from the files of one snapshot.
#[derive(Debug)]
struct LocalPayloads {
    files: Vec<PathBuf>,
    root: PathBuf,
}

impl PayloadStore for LocalPayloads {
    fn read(&self, part: u32, start: u64, end: u64) -> Result<Vec<u8>> {
        let path = &self.files[part as usize];
        let file = File::open(path).map_err(|e| io_error("open", path, e))?;
        let mut buf = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut buf, start).map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot read {} (did it change during the query? run it again): {e}",
                path.display()
            ))
        })?;
        Ok(buf)
    }

    fn describe(&self, location: &Location) -> String {
        let path = &self.files[location.part as usize];
        let rel = path
            .strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string();
        // The line is found by counting newlines up to the payload.
        let line = std::fs::read(path).ok().map(|b| {
            1 + b[..(location.start as usize).min(b.len())]
                .iter()
                .filter(|&&c| c == b'\n')
                .count()
        });
        match line {
            Some(l) => format!("{rel} line {l}"),
            None => rel,
        }
    }
}
