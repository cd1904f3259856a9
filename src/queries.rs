//! The live query view: every query the server admits, while it waits, runs,
//! and for a while after it ended (bounded history), readable as the table
//! `system.runtime.queries`; a distributed query's stages and how far their
//! tasks are show in its `stages` column ([`crate::cluster::StageBoard`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::caller::Owner;

/// Ended queries kept for the view.
const HISTORY: usize = 1000;

/// Where a query is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    /// Waiting for its turn.
    Queued,
    /// Planning or streaming results.
    Running,
    /// Ended with every row sent.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped by a client or an operator.
    Cancelled,
}

impl QueryState {
    fn name(self) -> &'static str {
        match self {
            QueryState::Queued => "queued",
            QueryState::Running => "running",
            QueryState::Finished => "finished",
            QueryState::Failed => "failed",
            QueryState::Cancelled => "cancelled",
        }
    }

    fn ended(self) -> bool {
        !matches!(self, QueryState::Queued | QueryState::Running)
    }
}

#[derive(Debug)]
struct Record {
    id: String,
    owner: Owner,
    sql: String,
    state: QueryState,
    started: SystemTime,
    clock: Instant,
    queued_for: Option<f64>,
    ran_for: Option<f64>,
    rows: u64,
    bytes: u64,
    peak_memory: u64,
    error: Option<String>,
}

/// One query's entry; updates show in the view at once.
#[derive(Debug, Clone)]
pub struct QueryEntry(Arc<Mutex<Record>>);

impl QueryEntry {
    /// The query id (the execution id of its ticket).
    pub fn id(&self) -> String {
        self.0.lock().expect("not poisoned").id.clone()
    }

    /// The query left the queue.
    pub fn running(&self) {
        let mut r = self.0.lock().expect("not poisoned");
        r.state = QueryState::Running;
        r.queued_for = Some(r.clock.elapsed().as_secs_f64());
    }

    /// Rows and bytes sent, and the memory the query holds now.
    pub fn progress(&self, rows: usize, bytes: usize, memory: usize) {
        let mut r = self.0.lock().expect("not poisoned");
        r.rows += rows as u64;
        r.bytes += bytes as u64;
        r.peak_memory = r.peak_memory.max(memory as u64);
    }

    /// The query ended.
    pub fn end(&self, state: QueryState, error: Option<String>) {
        let mut r = self.0.lock().expect("not poisoned");
        if r.state.ended() {
            return;
        }
        r.state = state;
        r.error = error;
        r.ran_for = Some(r.clock.elapsed().as_secs_f64());
    }

    /// Whose query it is.
    pub fn owner(&self) -> Owner {
        self.0.lock().expect("not poisoned").owner.clone()
    }
}

/// A query id that is in the log already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateId(pub String);

/// A new query id nobody can guess: 128 random bits as 32 hex digits.
pub fn new_query_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A new query id in Trino's shape, `YYYYmmdd_HHMMSS_NNNNN_xxxxx…`, for
/// Trino clients: the time it started, then random digits and letters (no
/// counter, so an id tells nothing of other queries; ~100 random bits).
pub fn new_trino_query_id() -> String {
    let random = uuid::Uuid::new_v4();
    let bytes = random.as_bytes();
    let number = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % 100_000;
    let letters: String = bytes[4..]
        .iter()
        .map(|b| char::from(b'a' + b % 26))
        .collect();
    format!(
        "{}_{number:05}_{letters}",
        chrono::Utc::now().format("%Y%m%d_%H%M%S")
    )
}

/// Every recent query.
#[derive(Debug, Default)]
pub struct QueryLog {
    entries: Mutex<VecDeque<QueryEntry>>,
}

/// The columns of `system.runtime.queries`.
pub fn queries_schema() -> SchemaRef {
    let instant = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("sql", DataType::Utf8, false),
        Field::new("started", instant, false),
        Field::new("queued_ms", DataType::UInt64, false),
        Field::new("elapsed_ms", DataType::UInt64, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("peak_memory", DataType::UInt64, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("tenant", DataType::Utf8, true),
        Field::new("stages", DataType::Utf8, true),
    ]))
}

impl QueryLog {
    /// Records a new query `id` of `owner`, queued. An id already in the
    /// log is refused (never a second entry with the same id): the caller
    /// takes a fresh one from [`new_query_id`].
    pub fn start(&self, id: &str, owner: &Owner, sql: &str) -> Result<QueryEntry, DuplicateId> {
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries
            .iter()
            .any(|e| e.0.lock().expect("not poisoned").id == id)
        {
            return Err(DuplicateId(id.to_string()));
        }
        let entry = QueryEntry(Arc::new(Mutex::new(Record {
            id: id.to_string(),
            owner: owner.clone(),
            sql: sql.to_string(),
            state: QueryState::Queued,
            started: SystemTime::now(),
            clock: Instant::now(),
            queued_for: None,
            ran_for: None,
            rows: 0,
            bytes: 0,
            peak_memory: 0,
            error: None,
        })));
        entries.push_back(entry.clone());
        // Forget the oldest ended queries beyond the history.
        let ended = entries
            .iter()
            .filter(|e| e.0.lock().expect("not poisoned").state.ended())
            .count();
        if ended > HISTORY {
            let mut extra = ended - HISTORY;
            entries.retain(|e| {
                let gone = extra > 0 && e.0.lock().expect("not poisoned").state.ended();
                if gone {
                    extra -= 1;
                }
                !gone
            });
        }
        Ok(entry)
    }

    /// How many queries are queued or running now.
    pub fn unfinished(&self) -> usize {
        self.entries
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|e| !e.0.lock().expect("not poisoned").state.ended())
            .count()
    }

    /// The query `id`, if it is known (ids are unique in the log).
    pub fn find(&self, id: &str) -> Option<QueryEntry> {
        let entries = self.entries.lock().expect("not poisoned");
        entries.iter().find(|e| e.id() == id).cloned()
    }

    /// The view as `owner` sees it: their own queries, or everyone's.
    pub fn snapshot(&self, owner: &Owner, everyone: bool) -> RecordBatch {
        let entries: Vec<QueryEntry> = self
            .entries
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect();
        let mut cols: (Vec<String>, Vec<String>, Vec<&'static str>, Vec<String>) =
            Default::default();
        let mut tenants: Vec<Option<String>> = Vec::new();
        let mut stages: Vec<Option<String>> = Vec::new();
        let (mut started, mut queued, mut elapsed, mut rows, mut bytes, mut peak, mut error) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        // This node's own tasks of distributed queries, counted now.
        crate::cluster::stage_boards().update_local();
        for e in entries {
            let r = e.0.lock().expect("not poisoned");
            if !everyone && r.owner != *owner {
                continue;
            }
            cols.0.push(r.id.clone());
            cols.1.push(r.owner.subject.clone());
            tenants.push(r.owner.tenant.clone());
            cols.2.push(r.state.name());
            cols.3.push(r.sql.clone());
            started.push(
                r.started
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as i64),
            );
            let now = r.ran_for.unwrap_or_else(|| r.clock.elapsed().as_secs_f64());
            queued.push((r.queued_for.unwrap_or(now) * 1000.0) as u64);
            elapsed.push((now * 1000.0) as u64);
            rows.push(r.rows);
            bytes.push(r.bytes);
            peak.push(r.peak_memory);
            error.push(r.error.clone());
            stages.push(crate::cluster::stage_boards().describe(&r.id));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(cols.0)),
            Arc::new(StringArray::from(cols.1)),
            Arc::new(StringArray::from(cols.2)),
            Arc::new(StringArray::from(cols.3)),
            Arc::new(TimestampMicrosecondArray::from(started).with_timezone("UTC")),
            Arc::new(UInt64Array::from(queued)),
            Arc::new(UInt64Array::from(elapsed)),
            Arc::new(UInt64Array::from(rows)),
            Arc::new(UInt64Array::from(bytes)),
            Arc::new(UInt64Array::from(peak)),
            Arc::new(StringArray::from(error)),
            Arc::new(StringArray::from(tenants)),
            Arc::new(StringArray::from(stages)),
        ];
        RecordBatch::try_new(queries_schema(), columns).expect("columns match the schema")
    }
}

/// `system.runtime.queries` as one caller sees it, read when a query scans it.
#[derive(Debug)]
pub struct QueriesTable {
    log: Arc<QueryLog>,
    owner: Owner,
    everyone: bool,
}

impl QueriesTable {
    /// The view of `log` for `owner` (with everyone's queries when `everyone`).
    pub fn new(log: Arc<QueryLog>, owner: &Owner, everyone: bool) -> Self {
        QueriesTable {
            log,
            owner: owner.clone(),
            everyone,
        }
    }
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for QueriesTable {
    fn schema(&self) -> SchemaRef {
        queries_schema()
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        datafusion::logical_expr::TableType::View
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let view = self.log.snapshot(&self.owner, self.everyone);
        datafusion::datasource::MemTable::try_new(view.schema(), vec![vec![view]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_see_their_own_queries_unless_they_see_all() {
        let log = QueryLog::default();
        let ann = Owner::local("ann");
        let a = log.start("q1", &ann, "SELECT 1").unwrap();
        log.start("q2", &Owner::local("bob"), "SELECT 2").unwrap();
        // An id is never in the log twice.
        assert!(log.start("q2", &ann, "SELECT 3").is_err());
        a.running();
        a.progress(5, 100, 2048);
        a.end(QueryState::Finished, None);
        a.end(QueryState::Failed, Some("late".into())); // the first ending stays
        let mine = log.snapshot(&ann, false);
        assert_eq!(mine.num_rows(), 1);
        let state = mine
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(state.value(0), "finished");
        assert_eq!(log.snapshot(&ann, true).num_rows(), 2);
        // Same subject, another tenant: not ann's.
        assert_eq!(
            log.snapshot(&Owner::of_tenant("t", "ann"), false)
                .num_rows(),
            0
        );
        assert!(log.find("q2").is_some() && log.find("q3").is_none());
    }

    #[test]
    fn trino_ids_are_random_in_trino_shape() {
        let a = new_trino_query_id();
        let b = new_trino_query_id();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('_').collect();
        assert_eq!(parts.len(), 4, "{a}");
        assert_eq!(parts[0].len(), 8);
        assert_eq!(parts[1].len(), 6);
        assert_eq!(parts[2].len(), 5);
        assert_eq!(parts[3].len(), 12);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
