//! One line on standard error per query execution: who ran what, how many
//! rows it sent, how long it took and how it ended (finished, failed,
//! cancelled, or stopped because the client went away).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryPool;
use futures::Stream;

/// How much of the SQL text goes into the log line.
const SQL_SHOWN: usize = 200;

/// Wraps a result stream and logs its execution when the stream is dropped.
pub struct LoggedStream<S> {
    inner: S,
    entry: Option<(crate::queries::QueryEntry, Arc<dyn MemoryPool>)>,
    execution: String,
    owner: crate::caller::Owner,
    sql: String,
    started: Instant,
    rows: usize,
    ending: Option<String>,
}

impl<S> LoggedStream<S> {
    /// Also keeps `entry` of the query view up to date (rows, bytes, the
    /// memory the query's `pool` holds, how it ended).
    pub fn with_entry(
        mut self,
        entry: crate::queries::QueryEntry,
        pool: Arc<dyn MemoryPool>,
    ) -> Self {
        self.entry = Some((entry, pool));
        self
    }

    /// Logs `inner`, the execution `execution` of `sql` by `owner`.
    pub fn new(inner: S, execution: &str, owner: &crate::caller::Owner, sql: &str) -> Self {
        LoggedStream {
            inner,
            entry: None,
            execution: execution.to_string(),
            owner: owner.clone(),
            sql: one_line(sql),
            started: Instant::now(),
            rows: 0,
            ending: None,
        }
    }
}

impl<S: Stream<Item = Result<RecordBatch>> + Unpin> Stream for LoggedStream<S> {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(b))) => {
                self.rows += b.num_rows();
                let m = crate::metrics::metrics();
                m.rows.inc_by(b.num_rows() as u64);
                m.bytes.inc_by(b.get_array_memory_size() as u64);
                if let Some((entry, pool)) = &self.entry {
                    entry.progress(b.num_rows(), b.get_array_memory_size(), pool.reserved());
                }
            }
            Poll::Ready(Some(Err(e))) => self.ending = Some(ending_of(e)),
            Poll::Ready(None) if self.ending.is_none() => self.ending = Some("finished".into()),
            _ => {}
        }
        polled
    }
}

impl<S> Drop for LoggedStream<S> {
    fn drop(&mut self) {
        let ending = self
            .ending
            .take()
            .unwrap_or_else(|| "stopped: the client went away".into());
        let outcome = match ending.as_str() {
            "finished" => "finished",
            e if e.starts_with("failed") => "failed",
            "cancelled" => "cancelled",
            _ => "client_gone",
        };
        let m = crate::metrics::metrics();
        m.queries.with_label_values(&[outcome]).inc();
        m.latency.observe(self.started.elapsed().as_secs_f64());
        if let Some((entry, _)) = &self.entry {
            use crate::queries::QueryState;
            let (state, error) = match ending.as_str() {
                "finished" => (QueryState::Finished, None),
                e if e.starts_with("failed") => (QueryState::Failed, Some(e.to_string())),
                e => (QueryState::Cancelled, Some(e.to_string())),
            };
            entry.end(state, error);
        }
        tracing::info!(
            query_id = %self.execution,
            user = %self.owner.subject,
            tenant = self.owner.tenant.as_deref().unwrap_or(""),
            rows = self.rows,
            seconds = self.started.elapsed().as_secs_f64(),
            outcome,
            "query {} by {}: {} rows in {:.3} s, {ending}: {}",
            self.execution,
            self.owner,
            self.rows,
            self.started.elapsed().as_secs_f64(),
            self.sql
        );
    }
}

fn ending_of(e: &DataFusionError) -> String {
    let message = e.to_string();
    if message.contains("query cancelled") {
        "cancelled".into()
    } else {
        format!("failed ({})", one_line(&message))
    }
}

fn one_line(text: &str) -> String {
    let mut line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > SQL_SHOWN {
        line = line.chars().take(SQL_SHOWN).collect::<String>() + "…";
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn sql_is_shown_on_one_short_line() {
        assert_eq!(one_line("SELECT a,\n  b\tFROM t"), "SELECT a, b FROM t");
        let long = "x ".repeat(300);
        assert_eq!(one_line(&long).chars().count(), 201);
    }
}
