//! What a connector provides: models, and per model a snapshot of its
//! revisions (metadata plus where each payload lives) and its inferred shape.

use rustc_hash::FxHashMap as HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::error::Result;

use crate::layout::{DeclaredTypes, ModelId};
use crate::shape::ObjectShape;

/// Where one revision's payload is: bytes `start..end` of part `part` (a file,
/// a page, … as the connector defines it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Which part of the store.
    pub part: u32,
    /// First byte of the payload.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// One stored revision of an entity.
#[derive(Debug, Clone)]
pub struct Revision {
    /// Entity id (a UUID as text).
    pub entity_id: Arc<str>,
    /// Workflow state of this revision.
    pub state: Arc<str>,
    /// When the entity was created (UTC µs).
    pub creation: Option<i64>,
    /// When this revision was written (UTC µs).
    pub last_update: i64,
    /// True when this revision deletes the entity.
    pub deleted: bool,
    /// Where the payload is.
    pub location: Location,
}

/// Reads payload bytes for a snapshot.
pub trait PayloadStore: Send + Sync + Debug {
    /// Bytes `start..end` of `part`.
    fn read(&self, part: u32, start: u64, end: u64) -> Result<Vec<u8>>;
    /// Where a payload is, for messages: e.g. `orders/1/a.ndjson line 12`.
    fn describe(&self, location: &Location) -> String;
}

/// A source of entity models: local files, a Cyoda entity service, Cassandra, ….
pub trait EntitySource: Send + Sync + Debug {
    /// Models available now.
    fn models(&self) -> Result<Vec<ModelId>>;
    /// The current snapshot of `model` (cheap when nothing changed).
    fn snapshot(&self, model: &ModelId) -> Result<Arc<ModelSnapshot>>;
}

/// What to do with a record that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRecordPolicy {
    /// Stop with an error naming the record.
    #[default]
    Fail,
    /// Count the record, leave it out and go on.
    Skip,
}

/// Counts and remembers records left out under [`BadRecordPolicy::Skip`].
#[derive(Debug, Default)]
pub struct BadRecords {
    count: AtomicUsize,
    first: Mutex<Option<String>>,
}

impl BadRecords {
    /// Records one skipped record and why.
    pub fn skip(&self, why: impl FnOnce() -> String) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            *self.first.lock().expect("not poisoned") = Some(why());
        }
    }

    /// How many records were skipped, and the first reason.
    pub fn summary(&self) -> (usize, Option<String>) {
        (
            self.count.load(Ordering::Relaxed),
            self.first.lock().expect("not poisoned").clone(),
        )
    }

    /// Forgets what was counted.
    pub fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        *self.first.lock().expect("not poisoned") = None;
    }
}

/// A consistent view of one model: every revision and the union shape.
#[derive(Debug)]
pub struct ModelSnapshot {
    /// The model.
    pub model: ModelId,
    /// Union of every field of every revision.
    pub shape: ObjectShape,
    /// Every revision, in storage order.
    pub revisions: Vec<Revision>,
    /// Where payloads are read from.
    pub store: Arc<dyn PayloadStore>,
    /// Types declared upstream, by JSON path; they replace inferred types.
    pub declared: DeclaredTypes,
    /// Records that could not be read (with where they are), when the policy
    /// is to fail: every scan of this model reports the first of them.
    pub unreadable: Vec<String>,
    current: OnceLock<Arc<Vec<u32>>>,
    by_id: OnceLock<HashMap<Arc<str>, Vec<u32>>>,
}

impl ModelSnapshot {
    /// A snapshot of `model` over `revisions`.
    pub fn new(
        model: ModelId,
        shape: ObjectShape,
        revisions: Vec<Revision>,
        store: Arc<dyn PayloadStore>,
    ) -> Self {
        ModelSnapshot {
            model,
            shape,
            revisions,
            store,
            declared: DeclaredTypes::new(),
            unreadable: Vec::new(),
            current: OnceLock::new(),
            by_id: OnceLock::new(),
        }
    }

    /// The same snapshot with records that could not be read.
    pub fn with_unreadable(mut self, unreadable: Vec<String>) -> Self {
        self.unreadable = unreadable;
        self
    }

    /// The same snapshot with types declared upstream.
    pub fn with_declared(mut self, declared: DeclaredTypes) -> Self {
        self.declared = declared;
        self
    }

    /// Revisions (indexes into `revisions`, in storage order) visible at instant
    /// `at` (UTC µs), or now when `None`: per entity the newest revision not
    /// later than `at`, left out when that revision is a deletion.
    pub fn visible(&self, at: Option<i64>) -> Arc<Vec<u32>> {
        match at {
            None => self
                .current
                .get_or_init(|| {
                    Arc::new(resolve(
                        &self.revisions,
                        0..self.revisions.len() as u32,
                        None,
                    ))
                })
                .clone(),
            Some(t) => Arc::new(resolve(
                &self.revisions,
                0..self.revisions.len() as u32,
                Some(t),
            )),
        }
    }

    /// Like [`ModelSnapshot::visible`] but only for the entities in `ids`.
    pub fn visible_for(&self, ids: &[&str], at: Option<i64>) -> Vec<u32> {
        let index = self.by_id.get_or_init(|| {
            let mut m: HashMap<Arc<str>, Vec<u32>> = HashMap::default();
            for (i, r) in self.revisions.iter().enumerate() {
                m.entry(r.entity_id.clone()).or_default().push(i as u32);
            }
            m
        });
        let candidates: Vec<u32> = ids
            .iter()
            .filter_map(|id| index.get(*id))
            .flatten()
            .copied()
            .collect();
        let mut out = resolve(&self.revisions, candidates.into_iter(), at);
        out.dedup();
        out
    }
}

fn resolve(
    revisions: &[Revision],
    candidates: impl Iterator<Item = u32>,
    at: Option<i64>,
) -> Vec<u32> {
    let (_, most) = candidates.size_hint();
    let capacity = most.unwrap_or(revisions.len()).min(revisions.len());
    let mut best: HashMap<&str, u32> =
        HashMap::with_capacity_and_hasher(capacity, Default::default());
    for i in candidates {
        let r = &revisions[i as usize];
        if at.is_some_and(|t| r.last_update > t) {
            continue;
        }
        best.entry(&r.entity_id)
            .and_modify(|b| {
                if r.last_update >= revisions[*b as usize].last_update {
                    *b = i;
                }
            })
            .or_insert(i);
    }
    let mut out: Vec<u32> = best
        .into_values()
        .filter(|&i| !revisions[i as usize].deleted)
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoStore;
    impl PayloadStore for NoStore {
        fn read(&self, _: u32, _: u64, _: u64) -> Result<Vec<u8>> {
            Ok(Vec::new())
        }
        fn describe(&self, _: &Location) -> String {
            String::new()
        }
    }

    fn rev(id: &str, t: i64, deleted: bool) -> Revision {
        Revision {
            entity_id: id.into(),
            state: "S".into(),
            creation: None,
            last_update: t,
            deleted,
            location: Location {
                part: 0,
                start: 0,
                end: 0,
            },
        }
    }

    #[test]
    fn newest_revision_wins_and_deletion_hides() {
        let snap = ModelSnapshot::new(
            ModelId {
                name: "m".into(),
                version: 1,
            },
            ObjectShape::default(),
            vec![
                rev("a", 20, false),
                rev("a", 10, false),
                rev("b", 5, false),
                rev("b", 30, true),
            ],
            Arc::new(NoStore),
        );
        assert_eq!(*snap.visible(None), vec![0]);
        assert_eq!(*snap.visible(Some(15)), vec![1, 2]);
        assert_eq!(*snap.visible(Some(4)), Vec::<u32>::new());
        assert_eq!(snap.visible_for(&["b"], Some(29)), vec![2]);
        assert_eq!(snap.visible_for(&["b", "zz"], None), Vec::<u32>::new());
    }
}
