//! The live query view: every query the server admits, while it waits, runs,
//! and for a while after it ended (bounded history), readable as the table
//! `system.runtime.queries`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

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
    user: String,
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

    /// Who runs it.
    pub fn user(&self) -> String {
        self.0.lock().expect("not poisoned").user.clone()
    }
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
    ]))
}

impl QueryLog {
    /// Records a new query `id` of `user`, queued.
    pub fn start(&self, id: &str, user: &str, sql: &str) -> QueryEntry {
        let entry = QueryEntry(Arc::new(Mutex::new(Record {
            id: id.to_string(),
            user: user.to_string(),
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
        let mut entries = self.entries.lock().expect("not poisoned");
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
        entry
    }

    /// The query `id`, if it is known.
    pub fn find(&self, id: &str) -> Option<QueryEntry> {
        let entries = self.entries.lock().expect("not poisoned");
        entries.iter().find(|e| e.id() == id).cloned()
    }

    /// The view as `user` sees it: their own queries, or everyone's.
    pub fn snapshot(&self, user: &str, everyone: bool) -> RecordBatch {
        let entries: Vec<QueryEntry> = self
            .entries
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect();
        let mut cols: (Vec<String>, Vec<String>, Vec<&'static str>, Vec<String>) =
            Default::default();
        let (mut started, mut queued, mut elapsed, mut rows, mut bytes, mut peak, mut error) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for e in entries {
            let r = e.0.lock().expect("not poisoned");
            if !everyone && r.user != user {
                continue;
            }
            cols.0.push(r.id.clone());
            cols.1.push(r.user.clone());
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
        ];
        RecordBatch::try_new(queries_schema(), columns).expect("columns match the schema")
    }
}

/// `system.runtime.queries` as one caller sees it, read when a query scans it.
#[derive(Debug)]
pub struct QueriesTable {
    log: Arc<QueryLog>,
    user: String,
    everyone: bool,
}

impl QueriesTable {
    /// The view of `log` for `caller`.
    pub fn new(log: Arc<QueryLog>, caller: &crate::engine::Caller) -> Self {
        QueriesTable {
            log,
            user: caller.name.clone(),
            everyone: caller.sees_all,
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
        let view = self.log.snapshot(&self.user, self.everyone);
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
        let a = log.start("q1", "ann", "SELECT 1");
        log.start("q2", "bob", "SELECT 2");
        a.running();
        a.progress(5, 100, 2048);
        a.end(QueryState::Finished, None);
        a.end(QueryState::Failed, Some("late".into())); // the first ending stays
        let mine = log.snapshot("ann", false);
        assert_eq!(mine.num_rows(), 1);
        let state = mine
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(state.value(0), "finished");
        assert_eq!(log.snapshot("ann", true).num_rows(), 2);
        assert!(log.find("q2").is_some() && log.find("q3").is_none());
    }
}
