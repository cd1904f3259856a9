//! Graceful shutdown, as Kubernetes asks for it: on SIGTERM (or SIGINT) the
//! server stops being ready (`/readyz` answers 503 so the Service sends no
//! new clients), refuses new queries on every protocol, and lets the
//! queries already running — and the fetching of their results (Flight
//! `DoGet` of tickets already issued, Trino `nextUri` pages) — go on for up
//! to `shutdown_grace_seconds`. Then whatever still runs is cancelled and
//! the process ends (exit code 0).
//!
//! Front ends tell the [`Shutdown`] how much unfinished work they hold
//! ([`Shutdown::count_busy_with`]); the drain ends when none is left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The default `shutdown_grace_seconds`: how long running queries may go on after SIGTERM.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// What a query sent while the server shuts down is told.
pub const SHUTTING_DOWN: &str = "the server is shutting down; retry on another replica";

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every query finished within the grace period.
    Finished,
    /// The grace period passed (or a second signal came): this many queries
    /// were still running and were cancelled.
    Cancelled(usize),
}

/// Counts one front end's unfinished work (running queries, results not yet fetched).
pub type BusyCount = Box<dyn Fn() -> usize + Send + Sync>;

/// The shutdown state of a serving process; shared by every front end.
pub struct Shutdown {
    grace: Duration,
    draining: AtomicBool,
    started: tokio::sync::Notify,
    busy: Mutex<Vec<BusyCount>>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("grace", &self.grace)
            .field("draining", &self.is_draining())
            .finish()
    }
}

impl Shutdown {
    /// A server not shutting down, whose running queries get `grace` once it does.
    pub fn new(grace: Duration) -> Shutdown {
        Shutdown {
            grace,
            draining: AtomicBool::new(false),
            started: tokio::sync::Notify::new(),
            busy: Mutex::new(Vec::new()),
        }
    }

    /// How long running queries may go on once shutdown begins.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Whether shutdown has begun: new queries are refused and the server is not ready.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Begins shutting down (again is harmless).
    pub fn begin(&self) {
        self.draining.store(true, Ordering::Release);
        self.started.notify_waiters();
    }

    /// Waits until shutdown has begun.
    pub async fn begun(&self) {
        loop {
            let notified = self.started.notified();
            if self.is_draining() {
                return;
            }
            notified.await;
        }
    }

    /// Adds `count` to the unfinished work the drain waits for.
    pub fn count_busy_with(&self, count: BusyCount) {
        self.busy.lock().expect("not poisoned").push(count);
    }

    /// The unfinished work of every front end now.
    pub fn busy(&self) -> usize {
        self.busy
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|count| count())
            .sum()
    }

    /// Waits until no work is left, the grace period has passed since now,
    /// or `hurry` completes (a second signal); in the last two cases calls
    /// `cancel` to stop whatever still runs.
    pub async fn drain(
        &self,
        hurry: impl std::future::Future<Output = ()>,
        cancel: impl FnOnce(),
    ) -> Drained {
        let deadline = Instant::now() + self.grace;
        let settled = async {
            loop {
                if self.busy() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let finished = tokio::select! {
            _ = settled => true,
            _ = tokio::time::sleep_until(deadline.into()) => false,
            _ = hurry => false,
        };
        if finished {
            return Drained::Finished;
        }
        let left = self.busy();
        cancel();
        Drained::Cancelled(left)
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new(DEFAULT_GRACE)
    }
}

/// The gRPC answer to a new query while the server shuts down.
pub fn unavailable() -> tonic::Status {
    tonic::Status::unavailable(SHUTTING_DOWN)
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs the shutdown of a serving process: waits for the first signal,
/// begins the drain, waits for the running work (or the grace period, or a
/// second signal), cancels what is left with `cancel`, and returns.
pub async fn on_signal(shutdown: Arc<Shutdown>, cancel: impl FnOnce()) -> Drained {
    signal().await;
    shutdown.begin();
    let running = shutdown.busy();
    tracing::info!(
        running,
        grace_seconds = shutdown.grace().as_secs_f64(),
        "shutting down: not ready, new queries refused; running queries get {} s to finish (a second signal stops them now)",
        shutdown.grace().as_secs_f64()
    );
    let outcome = shutdown.drain(signal(), cancel).await;
    match outcome {
        Drained::Finished => tracing::info!("shutting down: every query finished"),
        Drained::Cancelled(n) => tracing::warn!(
            cancelled = n,
            "shutting down: {n} queries still running after the grace period (shutdown_grace_seconds) were cancelled"
        ),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn the_drain_waits_for_running_work() {
        let s = Arc::new(Shutdown::new(Duration::from_secs(5)));
        let work = Arc::new(AtomicUsize::new(2));
        let w = work.clone();
        s.count_busy_with(Box::new(move || w.load(Ordering::Relaxed)));
        assert!(!s.is_draining());
        s.begin();
        assert!(s.is_draining());
        s.begun().await;
        let w = work.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            w.store(0, Ordering::Relaxed);
        });
        let started = Instant::now();
        let outcome = s
            .drain(std::future::pending(), || panic!("nothing to cancel"))
            .await;
        assert_eq!(outcome, Drained::Finished);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn work_past_the_grace_period_is_cancelled() {
        let s = Shutdown::new(Duration::from_millis(200));
        s.count_busy_with(Box::new(|| 1));
        let cancelled = AtomicBool::new(false);
        let outcome = s
            .drain(std::future::pending(), || {
                cancelled.store(true, Ordering::Relaxed)
            })
            .await;
        assert_eq!(outcome, Drained::Cancelled(1));
        assert!(cancelled.load(Ordering::Relaxed));
        // A second signal cuts the grace short.
        let s = Shutdown::new(Duration::from_secs(60));
        s.count_busy_with(Box::new(|| 3));
        let started = Instant::now();
        let outcome = s.drain(async {}, || {}).await;
        assert_eq!(outcome, Drained::Cancelled(3));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
