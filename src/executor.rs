//! A dedicated runtime for query work.
//!
//! Planning and executing a query is CPU-bound: an aggregate or a join can
//! compute for seconds between two awaits. Run on the runtime that also
//! serves network calls, such work starves it: cancellations, new calls and
//! shutdown wait for the query. The [`QueryExecutor`] runs query work on its
//! own threads and hands results back through channels, so the network side
//! stays responsive and can stop a query at any time by dropping its handle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::RecordBatchStream;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Runs query work on dedicated threads; cheap to clone.
#[derive(Clone)]
pub struct QueryExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    handle: tokio::runtime::Handle,
    /// Dropped with the last clone: tells the runtime thread to stop.
    _stop: oneshot::Sender<()>,
}

/// Batches a running query may produce ahead of a slow client.
const AHEAD: usize = 2;

/// The stack of a query thread (and of the serving threads, which parse).
pub const QUERY_THREAD_STACK: usize = 16 << 20;

impl QueryExecutor {
    /// An executor with `threads` worker threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<QueryExecutor> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("tsql-query")
            // Deep expressions (a BI tool's 100-term OR) recurse deeply while
            // planning; the engine grows stacks on demand past this too.
            .thread_stack_size(QUERY_THREAD_STACK)
            .enable_time()
            .enable_io()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tsql-query-runtime".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Running queries are abandoned, not awaited.
                runtime.shutdown_background();
            })?;
        Ok(QueryExecutor {
            inner: Arc::new(Inner {
                handle,
                _stop: stop,
            }),
        })
    }

    /// Runs `work` on the query threads. Dropping the returned future stops
    /// the work at its next await.
    pub fn run<T, F>(&self, work: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        AbortOnDrop(self.inner.handle.spawn(work))
    }

    /// Starts the stream `start` returns on the query threads and yields its
    /// batches here. Dropping the returned stream stops the query; so does
    /// aborting the returned handle, after which the stream ends with a
    /// "query cancelled" error.
    pub fn stream<F>(
        &self,
        schema: SchemaRef,
        start: F,
    ) -> (SendableRecordBatchStream, tokio::task::AbortHandle)
    where
        F: Future<Output = Result<SendableRecordBatchStream>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(AHEAD);
        let completed = Arc::new(AtomicBool::new(false));
        let done = completed.clone();
        let task = self.inner.handle.spawn(async move {
            let work = async {
                let mut stream = match start.await {
                    Ok(s) => s,
                    Err(e) => {
                        done.store(true, Ordering::Release);
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                while let Some(item) = stream.next().await {
                    let failed = item.is_err();
                    if failed {
                        done.store(true, Ordering::Release);
                    }
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
                done.store(true, Ordering::Release);
            };
            // A panic inside the engine ends this query with an internal
            // error (not as a cancellation); the server goes on.
            if let Err(panic) = std::panic::AssertUnwindSafe(work).catch_unwind().await {
                done.store(true, Ordering::Release);
                let _ = tx.send(Err(panic_error(panic))).await;
            }
        });
        let abort = task.abort_handle();
        let stream = Box::pin(ForeignStream {
            schema,
            rx,
            completed,
            _task: AbortOnDrop(task),
        });
        (stream, abort)
    }
}

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<Result<T>> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Err(cancelled()),
            Err(e) => Err(panic_error(e.into_panic())),
        })
    }
}

/// The error a caught panic becomes: one line of reason (the panic itself,
/// with its backtrace, went to the log through the panic hook).
pub fn panic_error(panic: Box<dyn std::any::Any + Send>) -> DataFusionError {
    let reason = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    let line = reason.lines().next().unwrap_or_default().to_string();
    DataFusionError::Internal(format!("the engine failed (a panic): {line}"))
}

fn cancelled() -> DataFusionError {
    DataFusionError::Execution("query cancelled: it was stopped before its end".into())
}

/// Batches produced on the query threads.
struct ForeignStream {
    schema: SchemaRef,
    rx: mpsc::Receiver<Result<RecordBatch>>,
    /// Set by the task when the query ended by itself (result or error).
    completed: Arc<AtomicBool>,
    _task: AbortOnDrop<()>,
}

impl Stream for ForeignStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) if !self.completed.load(Ordering::Acquire) => {
                // The task is gone without ending the query: it was aborted
                // (or panicked). Say so instead of ending the result short.
                self.completed.store(true, Ordering::Release);
                Poll::Ready(Some(Err(cancelled())))
            }
            other => other,
        }
    }
}

impl RecordBatchStream for ForeignStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_query_threads() {
        let exec = QueryExecutor::new(1).unwrap();
        let name = exec
            .run(async { Ok(std::thread::current().name().map(str::to_string)) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("tsql-query"));
    }

    #[tokio::test]
    async fn dropping_the_future_stops_the_work() {
        let exec = QueryExecutor::new(1).unwrap();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let work = exec.run(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        drop(work);
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(!finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn an_aborted_stream_ends_with_a_cancelled_error() {
        use arrow::datatypes::Schema;
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        let exec = QueryExecutor::new(1).unwrap();
        let schema = Arc::new(Schema::empty());
        let endless = RecordBatchStreamAdapter::new(
            schema.clone(),
            futures::stream::pending::<Result<RecordBatch>>(),
        );
        let (mut stream, abort) = exec.stream(schema, async move {
            Ok(Box::pin(endless) as SendableRecordBatchStream)
        });
        abort.abort();
        let err = stream.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("query cancelled"), "{err}");
    }

    #[tokio::test]
    async fn a_finished_stream_ends_cleanly() {
        use arrow::datatypes::Schema;
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        let exec = QueryExecutor::new(1).unwrap();
        let schema = Arc::new(Schema::empty());
        let batch = RecordBatch::new_empty(schema.clone());
        let two = RecordBatchStreamAdapter::new(
            schema.clone(),
            futures::stream::iter(vec![Ok(batch.clone()), Ok(batch)]),
        );
        let (stream, _abort) = exec.stream(schema, async move {
            Ok(Box::pin(two) as SendableRecordBatchStream)
        });
        let all: Vec<_> = stream.collect().await;
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|b| b.is_ok()));
    }
}
