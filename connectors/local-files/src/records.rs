//! Reading records out of one entity file: Cyoda envelopes or bare objects,
//! one per line (`.ndjson`) or one / an array of them (`.json`), each indexed
//! with its metadata and the byte range of its payload, and observed into the
//! model's shape.

use std::sync::Arc;

use tsql_entity_tables::envelope::read_envelope;
use tsql_entity_tables::json::{Cursor, JsonError, Kind};
use tsql_entity_tables::{Location, ObjectShape, Revision};

/// A record that could not be read, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// 1-based line where the record starts.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Everything read from one part of a file.
#[derive(Debug, Default)]
pub struct IndexedRecords {
    /// One revision per good record, in file order (`location.part` is 0).
    pub revisions: Vec<Revision>,
    /// Union shape of their payloads.
    pub shape: ObjectShape,
    /// Records that could not be read.
    pub bad: Vec<BadRecord>,
    states: Vec<Arc<str>>,
}

impl IndexedRecords {
    /// One shared copy of each workflow state name (there are few).
    fn intern(&mut self, state: String) -> Arc<str> {
        if let Some(s) = self.states.iter().find(|s| ***s == *state) {
            return s.clone();
        }
        let s: Arc<str> = Arc::from(state);
        self.states.push(s.clone());
        s
    }
}

/// What bare records (no envelope) get as metadata.
#[derive(Debug, Clone)]
pub struct FileFacts {
    /// Path relative to the data folder, used for bare records' ids.
    pub relative_path: String,
    /// File modification time (UTC µs): both dates of bare records.
    pub modified: i64,
}

const BARE_STATE: &str = "CREATED";

/// Indexes the NDJSON text `buf`, which starts at byte `base` of the file, on line `first_line`.
pub fn index_ndjson(buf: &[u8], base: u64, first_line: usize, facts: &FileFacts) -> IndexedRecords {
    let mut out = IndexedRecords::default();
    let mut line = first_line;
    let mut start = 0;
    let state: Arc<str> = Arc::from(BARE_STATE);
    while start < buf.len() {
        let end = memchr::memchr(b'\n', &buf[start..]).map_or(buf.len(), |p| start + p);
        let text = &buf[start..end];
        if text.iter().any(|b| !b.is_ascii_whitespace()) {
            index_record(text, base + start as u64, line, facts, &state, &mut out);
        }
        start = end + 1;
        line += 1;
    }
    out
}

/// Indexes a `.json` file: one record, or an array of records.
pub fn index_json_document(buf: &[u8], facts: &FileFacts) -> IndexedRecords {
    let mut out = IndexedRecords::default();
    let state: Arc<str> = Arc::from(BARE_STATE);
    let mut c = Cursor::new(buf);
    let line_at = |offset: usize| {
        1 + buf[..offset.min(buf.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    };
    let result: Result<(), JsonError> = (|| {
        if c.peek_kind()? == Kind::Array {
            c.begin_array()?;
            let mut first = true;
            while c.next_element(first)? {
                first = false;
                c.skip_ws();
                let (s, e) = c.skip_value()?;
                index_record(&buf[s..e], s as u64, line_at(s), facts, &state, &mut out);
            }
        } else {
            c.skip_ws();
            let (s, e) = c.skip_value()?;
            index_record(&buf[s..e], s as u64, line_at(s), facts, &state, &mut out);
        }
        if !c.at_end() {
            return Err(c.error("unexpected text after the JSON value"));
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.bad.push(BadRecord {
            line: line_at(e.offset),
            message: e.to_string(),
        });
    }
    out
}

fn index_record(
    text: &[u8],
    offset: u64,
    line: usize,
    facts: &FileFacts,
    bare_state: &Arc<str>,
    out: &mut IndexedRecords,
) {
    let env = match read_envelope(text, Some(&mut out.shape)) {
        Ok(env) => env,
        Err(message) => {
            out.bad.push(BadRecord { line, message });
            return;
        }
    };
    let env_observed = env.observed;
    let (payload, revision) = if env.is_entity {
        let Some((ds, de)) = env.data else {
            out.bad.push(BadRecord {
                line,
                message: "an ENTITY envelope needs a \"data\" object".into(),
            });
            return;
        };
        let Some(id) = env.id else {
            out.bad.push(BadRecord {
                line,
                message: "an ENTITY envelope needs \"meta\": {\"id\": …}".into(),
            });
            return;
        };
        let last_update = env.last_update.or(env.creation).unwrap_or(facts.modified);
        let rev = Revision {
            entity_id: Arc::from(id),
            state: match env.state {
                Some(s) => out.intern(s),
                None => bare_state.clone(),
            },
            creation: env.creation.or(Some(last_update)),
            last_update,
            deleted: env.deleted,
            location: Location {
                part: 0,
                start: offset + ds as u64,
                end: offset + de as u64,
            },
        };
        (&text[ds..de], rev)
    } else {
        let name = format!("{}:{}", facts.relative_path, line);
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string();
        let rev = Revision {
            entity_id: Arc::from(id),
            state: bare_state.clone(),
            creation: Some(facts.modified),
            last_update: facts.modified,
            deleted: false,
            location: Location {
                part: 0,
                start: offset,
                end: offset + text.len() as u64,
            },
        };
        (text, rev)
    };
    if env_observed {
        out.revisions.push(revision);
        return;
    }
    if let Err(e) = out.shape.observe(&mut Cursor::new(payload)) {
        out.bad.push(BadRecord {
            line,
            message: e.to_string(),
        });
        return;
    }
    out.revisions.push(revision);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> FileFacts {
        FileFacts {
            relative_path: "m/1/a.ndjson".into(),
            modified: 42,
        }
    }

    #[test]
    fn envelopes_and_bare_records() {
        let text = b"{\"type\":\"ENTITY\",\"data\":{\"a\":1},\"meta\":{\"id\":\"e1\",\"state\":\"NEW\",\"creationDate\":\"1970-01-01T00:00:01Z\",\"lastUpdateTime\":\"1970-01-01T00:00:02Z\",\"x\":[1]}}\n\n{\"b\":2}\n";
        let r = index_ndjson(text, 0, 1, &facts());
        assert!(r.bad.is_empty(), "{:?}", r.bad);
        assert_eq!(r.revisions.len(), 2);
        let e = &r.revisions[0];
        assert_eq!(
            (&*e.entity_id, &*e.state, e.creation, e.last_update),
            ("e1", "NEW", Some(1_000_000), 2_000_000)
        );
        assert_eq!(
            &text[e.location.start as usize..e.location.end as usize],
            b"{\"a\":1}"
        );
        let b = &r.revisions[1];
        assert_eq!((&*b.state, b.last_update), ("CREATED", 42));
        assert_eq!(b.entity_id.len(), 36);
        assert_eq!(r.shape.fields().count(), 2);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_line() {
        let r = index_ndjson(b"{\"a\":1}\n{\"a\":\n[1]\n", 0, 1, &facts());
        assert_eq!(r.revisions.len(), 1);
        assert_eq!(r.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn json_arrays_hold_many_records() {
        let r = index_json_document(b"[\n {\"a\":1},\n {\"a\":2}\n]", &facts());
        assert_eq!(r.revisions.len(), 2);
        assert_ne!(r.revisions[0].entity_id, r.revisions[1].entity_id);
    }
}
