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

/// NDJSON files are read and indexed in pieces of about this many bytes.
const PIECE_BYTES: usize = 8 << 20;

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

    /// Indexes the given files. This thread reads them in pieces of about
    /// [`PIECE_BYTES`] ending at a line end (a `.json` file is one piece) and
    /// workers index the pieces in parallel, so memory stays bounded by a few
    /// pieces whatever the file sizes.
    fn index_files(&self, files: &[(PathBuf, Stamp)]) -> Result<Vec<Arc<IndexedFile>>> {
        struct Piece {
            file: usize,
            buf: Vec<u8>,
            base: u64,
            first_line: usize,
        }
        let results: Mutex<Vec<(usize, usize, IndexedRecords)>> = Mutex::new(Vec::new());
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Piece)>(self.threads * 2);
        let rx = Mutex::new(rx);
        let mut read_errors: Vec<(usize, String)> = Vec::new();
        std::thread::scope(|scope| {
            for _ in 0..self.threads.max(1) {
                scope.spawn(|| {
                    loop {
                        let next = rx.lock().expect("not poisoned").recv();
                        let Ok((seq, piece)) = next else { break };
                        let (path, stamp) = &files[piece.file];
                        let facts = FileFacts {
                            relative_path: self.relative(path),
                            modified: stamp.modified,
                        };
                        let r = if path.extension().is_some_and(|x| x == "json") {
                            index_json_document(&piece.buf, &facts)
                        } else {
                            index_ndjson(&piece.buf, piece.base, piece.first_line, &facts)
                        };
                        results
                            .lock()
                            .expect("not poisoned")
                            .push((seq, piece.file, r));
                    }
                });
            }
            let mut seq = 0;
            for (f, (path, _)) in files.iter().enumerate() {
                let sent = self.read_pieces(path, |buf, base, first_line| {
                    let piece = Piece {
                        file: f,
                        buf,
                        base,
                        first_line,
                    };
                    let ok = tx.send((seq, piece)).is_ok();
                    seq += 1;
                    ok
                });
                if let Err(e) = sent {
                    read_errors.push((f, format!("cannot read the file: {e}")));
                }
            }
            drop(tx);
        });
        let mut results = results.into_inner().expect("not poisoned");
        results.sort_by_key(|(seq, _, _)| *seq);
        let mut per_file: Vec<IndexedRecords> = (0..files.len())
            .map(|_| IndexedRecords::default())
            .collect();
        for (_, f, r) in results {
            let acc = &mut per_file[f];
            acc.revisions.extend(r.revisions);
            acc.shape.merge(&r.shape);
            acc.bad.extend(r.bad);
        }
        for (f, message) in read_errors {
            per_file[f]
                .bad
                .push(crate::records::BadRecord { line: 0, message });
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

    /// Calls `piece(bytes, offset, first line)` for consecutive pieces of `path`
    /// that end at line ends (one piece for `.json`); stops when it returns false.
    fn read_pieces(
        &self,
        path: &Path,
        mut piece: impl FnMut(Vec<u8>, u64, usize) -> bool,
    ) -> std::io::Result<()> {
        use std::io::Read;
        let mut file = File::open(path)?;
        if path.extension().is_some_and(|e| e == "json") {
            let mut buf = Vec::new();
            file.read_to_end(&mut buf)?;
            piece(buf, 0, 1);
            return Ok(());
        }
        let (mut base, mut line) = (0u64, 1usize);
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let mut buf = std::mem::take(&mut carry);
            let have = buf.len();
            buf.resize(have + PIECE_BYTES, 0);
            let mut filled = have;
            while filled < buf.len() {
                match file.read(&mut buf[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            buf.truncate(filled);
            let at_end = filled < have + PIECE_BYTES;
            if !at_end {
                // Keep the partial last line for the next piece.
                match memchr::memrchr(b'\n', &buf) {
                    Some(p) => carry = buf.split_off(p + 1),
                    None => {
                        carry = buf;
                        continue;
                    }
                }
            }
            if buf.is_empty() {
                return Ok(());
            }
            let len = buf.len() as u64;
            let lines = memchr::memchr_iter(b'\n', &buf).count();
            if !piece(buf, base, line) {
                return Ok(());
            }
            base += len;
            line += lines;
            if at_end {
                return Ok(());
            }
        }
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
        // A broken types file fails the scans of this model only, whatever the policy.
        let declared = match types_stamp {
            Some(_) => read_declared_types(&types_path, &self.relative(&types_path))
                .unwrap_or_else(|e| {
                    unreadable.insert(
                        0,
                        e.to_string()
                            .trim_start_matches("Execution error: ")
                            .to_string(),
                    );
                    DeclaredTypes::new()
                }),
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

/// Reads `_types.json`: `{"$.path": "CYODA_TYPE", …}` (e.g. `"$.lines[*].qty": "INTEGER"`),
/// where the pseudo-type `FLATTENED` on a 1-D primitive array (`"$.tags": "FLATTENED"`)
/// makes it positional columns instead of a list.
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
        if name == "FLATTENED" {
            out.flattened.insert(key.into_owned());
            continue;
        }
        let t = SqlType::from_declared(&name)
            .ok_or_else(|| bad(format!("unknown type {name} for {key}")))?;
        out.types.insert(key.into_owned(), t);
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
