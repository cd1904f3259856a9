//! One query of the Trino protocol: planned on its first page request,
//! then streamed page by page — each `nextUri` token answers the same page
//! when asked again, the next token reads on from the engine. Nothing is
//! buffered beyond the page being sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use super::errors::{Kind, codes, error_json, kind_of};
use super::types::column;
use crate::Caller;
use crate::queries::{QueryEntry, QueryState};
use crate::serving::Serving;

/// JSON bytes of data a page holds at most (about; a page ends after the row that passes it).
const PAGE_BYTES: usize = 1 << 20;
/// A page waits this long for more rows once it has some.
const PAGE_WAIT: Duration = Duration::from_millis(500);

type Batches = Pin<Box<dyn Stream<Item = datafusion::error::Result<RecordBatch>> + Send>>;

/// A query and where its client is in it.
pub struct TrinoQuery {
    /// Its id, in Trino's shape (`20261130_015500_48213_kqzwhdbtmafe`), random.
    pub id: String,
    /// A random part of its URIs, so they cannot be guessed.
    pub slug: String,
    /// Who runs it.
    pub caller: Caller,
    catalog: String,
    schema: String,
    sql: String,
    progress: tokio::sync::Mutex<Progress>,
    touched: std::sync::Mutex<Instant>,
    cancelled: AtomicBool,
    cancel_signal: tokio::sync::Notify,
    /// How `kill_query` (from any front end) stops this query.
    stopper: std::sync::OnceLock<crate::serving::StopperGuard>,
    /// Whether this is `DESCRIBE OUTPUT` (true) or `DESCRIBE INPUT` (false)
    /// of `sql` rather than `sql` itself.
    describe: Option<bool>,
    /// The session's `distributed` setting (`X-Trino-Session`), when given.
    distributed: Option<String>,
    created: Instant,
}

struct Progress {
    token: u64,
    page: Option<Arc<String>>,
    run: Run,
    rows: u64,
}

enum Run {
    Waiting,
    Streaming {
        batches: Batches,
        columns: Value,
        columns_sent: bool,
        entry: QueryEntry,
        pending: Option<RecordBatch>,
        /// The caller's engine, kept while the query runs: the
        /// `system.jdbc`/`system.metadata` views plan against it.
        _engine: crate::Engine,
    },
    Done,
}

/// Trino's `stats` object of a query in `state` that made `rows` rows in
/// `ms` milliseconds (the counters tsql does not keep are 0).
pub fn stats_json(state: &str, rows: u64, ms: u64) -> Value {
    json!({
        "state": state, "queued": state == "QUEUED", "scheduled": state != "QUEUED",
        "nodes": 1, "totalSplits": 0, "queuedSplits": 0, "runningSplits": 0, "completedSplits": 0,
        "cpuTimeMillis": 0, "wallTimeMillis": ms, "queuedTimeMillis": 0, "elapsedTimeMillis": ms,
        "analysisTimeMillis": 0, "planningTimeMillis": 0, "finishingTimeMillis": 0,
        "processedRows": rows, "processedBytes": 0, "physicalInputBytes": 0,
        "physicalInputTimeMillis": 0, "physicalWrittenBytes": 0, "internalNetworkInputBytes": 0,
        "peakMemoryBytes": 0, "spilledBytes": 0,
    })
}

/// Why a cancelled query ended: the client (or `kill_query`), or the end of a
/// shutdown's grace period.
fn canceled_because(serving: &Serving) -> &'static str {
    if serving.shutdown.is_draining() {
        "Query was canceled: the server shut down before it finished (shutdown_grace_seconds passed); run it again"
    } else {
        "Query was canceled"
    }
}

/// A page request that cannot be answered.
#[derive(Debug)]
pub enum PageError {
    /// The token is neither the current page nor the next one.
    Gone,
}

impl TrinoQuery {
    /// This query under the session setting `distributed` (on, off, auto).
    pub fn distributed(mut self, value: Option<String>) -> Self {
        self.distributed = value;
        self
    }

    /// A query of `sql` by `caller` under the given defaults; nothing runs yet.
    pub fn new(id: String, caller: Caller, catalog: String, schema: String, sql: String) -> Self {
        TrinoQuery {
            id,
            slug: uuid::Uuid::new_v4().simple().to_string(),
            caller,
            catalog,
            schema,
            sql,
            progress: tokio::sync::Mutex::new(Progress {
                token: 0,
                page: None,
                run: Run::Waiting,
                rows: 0,
            }),
            touched: std::sync::Mutex::new(Instant::now()),
            cancelled: AtomicBool::new(false),
            cancel_signal: tokio::sync::Notify::new(),
            stopper: std::sync::OnceLock::new(),
            describe: None,
            distributed: None,
            created: Instant::now(),
        }
    }

    /// This query as `DESCRIBE OUTPUT` (`output`) or `DESCRIBE INPUT` of its statement.
    pub fn describing(mut self, output: bool) -> Self {
        self.describe = Some(output);
        self
    }

    /// Keeps `guard` (how `kill_query` stops this query) while the query lives.
    pub fn stop_with(&self, guard: crate::serving::StopperGuard) {
        let _ = self.stopper.set(guard);
    }

    /// How long no client asked for this query.
    pub fn idle(&self) -> Duration {
        self.touched.lock().expect("not poisoned").elapsed()
    }

    /// Stops the query: the stream is dropped at the next page request or
    /// when the query is forgotten.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        // A page being made now stops waiting and answers USER_CANCELED.
        self.cancel_signal.notify_waiters();
        if let Ok(mut p) = self.progress.try_lock() {
            if let Run::Streaming { entry, .. } = &p.run {
                entry.end(
                    QueryState::Cancelled,
                    Some("cancelled by the client".into()),
                );
            }
            p.run = Run::Done;
        }
    }

    /// Whether the query was submitted but has not started (it is not in
    /// the query log yet, so a shutdown counts it here). A page being made
    /// has started it.
    pub fn not_started(&self) -> bool {
        !self.cancelled.load(Ordering::Acquire)
            && self
                .progress
                .try_lock()
                .is_ok_and(|p| matches!(p.run, Run::Waiting))
    }

    /// Whether the query has ended (its last page was made).
    pub fn ended(&self) -> bool {
        self.progress
            .try_lock()
            .map(|p| matches!(p.run, Run::Done))
            .unwrap_or(false)
    }

    fn uri(&self, base: &str, token: u64) -> String {
        format!(
            "{base}/v1/statement/executing/{}/{}/{token}",
            self.id, self.slug
        )
    }

    /// The first answer to `POST /v1/statement`: queued, with the URI of page 1.
    pub fn queued_page(&self, base: &str) -> Value {
        json!({
            "id": self.id,
            "infoUri": format!("{base}/ui/query.html?{}", self.id),
            "nextUri": self.uri(base, 1),
            "stats": self.stats("QUEUED", 0),
            "warnings": [],
        })
    }

    fn stats(&self, state: &str, rows: u64) -> Value {
        stats_json(state, rows, self.created.elapsed().as_millis() as u64)
    }

    /// Page `token`: the same page again, or the next one.
    pub async fn page(
        &self,
        serving: &Serving,
        base: &str,
        token: u64,
    ) -> Result<Arc<String>, PageError> {
        *self.touched.lock().expect("not poisoned") = Instant::now();
        let mut p = self.progress.lock().await;
        if token == p.token
            && let Some(page) = &p.page
        {
            return Ok(page.clone());
        }
        if token != p.token + 1 {
            return Err(PageError::Gone);
        }
        let cancelled = self.cancel_signal.notified();
        let page = if self.cancelled.load(Ordering::Acquire) {
            self.failed(
                &mut p,
                base,
                codes::USER_CANCELED,
                canceled_because(serving),
            )
            .to_string()
        } else {
            let made = tokio::select! {
                page = self.next(&mut p, serving, base, token) => Some(page),
                _ = cancelled => None,
            };
            // A cancelled page drops its work (planning, admission, the
            // batch it waited for); the stream goes with `failed`.
            match made {
                Some(page) => page,
                None => self
                    .failed(
                        &mut p,
                        base,
                        codes::USER_CANCELED,
                        canceled_because(serving),
                    )
                    .to_string(),
            }
        };
        let page = Arc::new(page);
        p.token = token;
        p.page = Some(page.clone());
        Ok(page)
    }

    fn failed(&self, p: &mut Progress, base: &str, kind: Kind, message: &str) -> Value {
        if let Run::Streaming { entry, .. } = &p.run {
            let state = if kind == codes::USER_CANCELED {
                QueryState::Cancelled
            } else {
                QueryState::Failed
            };
            entry.end(state, Some(message.to_string()));
        }
        p.run = Run::Done;
        json!({
            "id": self.id,
            "infoUri": format!("{base}/ui/query.html?{}", self.id),
            "stats": self.stats("FAILED", p.rows),
            "error": error_json(kind, message),
            "warnings": [],
        })
    }

    async fn start(&self, p: &mut Progress, serving: &Serving) -> Result<(), (Kind, String)> {
        let owner = &self.caller.owner;
        let entry = serving
            .queries
            .start(&self.id, owner, &self.sql)
            .map_err(|e| {
                (
                    codes::GENERIC_INTERNAL_ERROR,
                    format!("query id {} is in use already; run the query again", e.0),
                )
            })?;
        let ticket = match serving.admission.admit(owner).await {
            Ok(t) => t,
            Err(status) => {
                let kind = if status.code() == tonic::Code::DeadlineExceeded {
                    codes::EXCEEDED_TIME_LIMIT
                } else {
                    codes::QUERY_REJECTED
                };
                entry.end(QueryState::Failed, Some(status.message().to_string()));
                return Err((kind, status.message().to_string()));
            }
        };
        entry.running();
        // system.jdbc lists every catalog: load them all for it.
        let reads = serving
            .engine
            .catalogs_of(&self.sql, &self.catalog)
            .filter(|r| !r.iter().any(|c| c == "system"));
        let engine = serving
            .engine
            .for_caller_reading(&self.caller, reads.as_deref())
            .await;
        super::jdbc::register(&engine);
        let planned = match engine
            .with_defaults(&self.catalog, &self.schema)
            .and_then(|e| match &self.distributed {
                Some(v) => e.with_distributed(v),
                None => Ok(e),
            })
            .map(|e| e.with_query_id(&self.id))
        {
            Ok(engine) => {
                let sql = self.sql.clone();
                let catalog = self.catalog.clone();
                serving
                    .executor
                    .run(async move {
                        engine
                            .plan_adapted(&sql, |s| super::dialect::adapt(s, &catalog))
                            .await
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        let planned = match (planned, self.describe) {
            (Ok(df), Some(output)) => super::describe::description(&df, output, engine.context()),
            (planned, _) => planned,
        };
        let df = match planned {
            Ok(df) => df,
            Err(e) => {
                entry.end(QueryState::Failed, Some(e.to_string()));
                let kind = super::errors::refine_not_found(kind_of(&e), &e.to_string(), &engine);
                let message = if kind == codes::SYNTAX_ERROR {
                    super::errors::with_place(e.to_string(), &self.sql)
                } else {
                    e.to_string()
                };
                return Err((kind, message));
            }
        };
        let schema = df.schema().as_arrow().clone();
        let columns = Value::Array(
            schema
                .fields()
                .iter()
                .map(|f| column(f.name(), f.data_type()))
                .collect(),
        );
        let (batches, _abort) = serving
            .executor
            .stream(Arc::new(schema), async move { df.execute_stream().await });
        let batches: Batches = Box::pin(crate::admission::until_deadline(batches, ticket));
        p.run = Run::Streaming {
            batches,
            columns,
            columns_sent: false,
            entry,
            pending: None,
            _engine: engine,
        };
        Ok(())
    }

    /// The next page's JSON text (rows are written as text once, not kept as values).
    async fn next(&self, p: &mut Progress, serving: &Serving, base: &str, token: u64) -> String {
        if self.cancelled.load(Ordering::Acquire) {
            return self
                .failed(p, base, codes::USER_CANCELED, canceled_because(serving))
                .to_string();
        }
        if matches!(p.run, Run::Waiting)
            && let Err((kind, message)) = self.start(p, serving).await
        {
            return self.failed(p, base, kind, &message).to_string();
        }
        let Run::Streaming {
            batches,
            columns,
            columns_sent,
            entry,
            pending,
            ..
        } = &mut p.run
        else {
            return json!({"id": self.id, "stats": self.stats("FINISHED", p.rows), "warnings": []})
                .to_string();
        };
        let mut data = String::new();
        let mut rows = 0u64;
        let mut ended = false;
        let mut failure: Option<DataFusionError> = None;
        let first_at = Instant::now();
        while data.len() < PAGE_BYTES {
            let batch = match pending.take() {
                Some(b) => b,
                None => {
                    let next = if rows == 0 {
                        batches.next().await
                    } else {
                        let left = PAGE_WAIT.saturating_sub(first_at.elapsed());
                        match tokio::time::timeout(left, batches.next()).await {
                            Ok(n) => n,
                            Err(_) => break,
                        }
                    };
                    match next {
                        None => {
                            ended = true;
                            break;
                        }
                        Some(Err(e)) => {
                            failure = Some(e);
                            break;
                        }
                        Some(Ok(b)) => b,
                    }
                }
            };
            let written = super::rows::Rows::of(&batch);
            let mut taken = 0;
            for r in 0..written.len() {
                data.push(if rows == 0 { '[' } else { ',' });
                written.write(r, &mut data);
                rows += 1;
                taken += 1;
                if data.len() >= PAGE_BYTES {
                    break;
                }
            }
            if taken < batch.num_rows() {
                *pending = Some(batch.slice(taken, batch.num_rows() - taken));
            }
        }
        entry.progress(rows as usize, data.len(), 0);
        if let Some(e) = failure {
            let e = crate::engine::explain(e);
            return self
                .failed(p, base, kind_of(&e), &e.to_string())
                .to_string();
        }
        let mut page = json!({
            "id": self.id,
            "infoUri": format!("{base}/ui/query.html?{}", self.id),
            "warnings": [],
        });
        if !*columns_sent || rows > 0 || ended {
            page["columns"] = columns.clone();
            *columns_sent = true;
        }
        p.rows += rows;
        if ended {
            entry.end(QueryState::Finished, None);
            page["stats"] = self.stats("FINISHED", p.rows);
            p.run = Run::Done;
        } else {
            page["stats"] = self.stats("RUNNING", p.rows);
            page["nextUri"] = json!(self.uri(base, token + 1));
        }
        let mut text = page.to_string();
        if rows > 0 {
            // The rows, already JSON, go in as they are.
            text.pop(); // the closing brace
            text.push_str(",\"data\":");
            text.push_str(&data);
            text.push_str("]}");
        }
        text
    }
}
