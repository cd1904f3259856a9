//! Admission: at most `max_running` queries run at once and at most
//! `per_user` of one user; others wait in a queue of at most `max_queued`,
//! beyond which a query is refused at once. A query that waits or runs
//! longer than `timeout` (or its user's own timeout) ends with DEADLINE_EXCEEDED.
//! On a node of a cluster the queries the other coordinators run count too:
//! a query starts only while the cluster runs fewer than
//! `cluster_max_running_queries` ([`ClusterGate`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::caller::Owner;

/// The limits.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionSettings {
    /// Queries running at once.
    pub max_running: usize,
    /// Queries waiting at once.
    pub max_queued: usize,
    /// Queries of one user running at once.
    pub per_user: usize,
    /// How long a query may take, queueing included (`None`: no limit).
    pub timeout: Option<Duration>,
    /// Users with a timeout of their own (`[[users]]` entries'
    /// `query_timeout_seconds`); everyone else, Cyoda identities included,
    /// gets `timeout`.
    pub user_timeouts: HashMap<String, Option<Duration>>,
}

/// The default `query_timeout_seconds`: half an hour, queueing included.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(1800);

impl AdmissionSettings {
    /// How long a query of `user` may take.
    pub fn timeout_of(&self, owner: &Owner) -> Option<Duration> {
        // Only configured users have their own; a Cyoda identity never
        // borrows the timeout of a user that happens to share its name.
        let own = match owner.tenant {
            None => self.user_timeouts.get(&owner.subject).copied(),
            Some(_) => None,
        };
        own.unwrap_or(self.timeout)
    }
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        // Cores as the container's CPU quota allows.
        let cores = crate::container::query_threads();
        AdmissionSettings {
            max_running: 4 * cores,
            max_queued: 256,
            per_user: 2 * cores,
            timeout: Some(DEFAULT_QUERY_TIMEOUT),
            user_timeouts: HashMap::new(),
        }
    }
}

/// Admits queries under the limits.
#[derive(Debug)]
pub struct Admission {
    settings: AdmissionSettings,
    running: Arc<Semaphore>,
    users: Mutex<HashMap<Owner, Arc<Semaphore>>>,
    queued: Mutex<usize>,
    cluster: OnceLock<ClusterGate>,
}

/// The cluster-wide limit of a coordinator: how many queries the whole
/// cluster may run, and how many the other coordinators run now (as the
/// workers last reported, every couple of seconds: the cluster may briefly
/// run a few more when coordinators admit at the same moment).
pub struct ClusterGate {
    /// `cluster_max_running_queries`.
    pub limit: usize,
    /// Queries the other coordinators run.
    pub elsewhere: Box<dyn Fn() -> usize + Send + Sync>,
}

impl std::fmt::Debug for ClusterGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterGate")
            .field("limit", &self.limit)
            .field("elsewhere", &(self.elsewhere)())
            .finish()
    }
}

/// How often a query waiting for the cluster looks again.
const CLUSTER_POLL: Duration = Duration::from_millis(100);

/// Counts a query in `tsql_queries_running` while it lives.
#[derive(Debug)]
struct RunningGauge;

impl RunningGauge {
    fn new() -> Self {
        crate::metrics::metrics().running.inc();
        RunningGauge
    }
}

impl Drop for RunningGauge {
    fn drop(&mut self) {
        crate::metrics::metrics().running.dec();
    }
}

/// A query's right to run; dropping it lets the next one in.
#[derive(Debug)]
pub struct Ticket {
    _gauge: RunningGauge,
    _running: OwnedSemaphorePermit,
    _user: OwnedSemaphorePermit,
    /// When the query must end.
    pub deadline: Option<Instant>,
    /// The timeout the deadline comes from.
    pub limit: Option<Duration>,
    /// How long it waited in the queue.
    pub queued_for: Duration,
}

/// Counts a query in `tsql_queries_queued` while it waits for the cluster.
struct QueueGauge;

impl Drop for QueueGauge {
    fn drop(&mut self) {
        crate::metrics::metrics().queued.dec();
    }
}

struct QueueSlot<'a>(&'a Mutex<usize>);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        *self.0.lock().expect("not poisoned") -= 1;
        crate::metrics::metrics().queued.dec();
    }
}

impl Admission {
    /// Admission under `settings`.
    pub fn new(settings: AdmissionSettings) -> Self {
        Admission {
            running: Arc::new(Semaphore::new(settings.max_running.max(1))),
            users: Mutex::new(HashMap::new()),
            queued: Mutex::new(0),
            settings,
            cluster: OnceLock::new(),
        }
    }

    /// From now on, queries also wait for room in the cluster (`gate`).
    pub fn join_cluster(&self, gate: ClusterGate) {
        let _ = self.cluster.set(gate);
    }

    /// Queries running on this node now.
    fn running_here(&self) -> usize {
        self.settings.max_running.max(1) - self.running.available_permits()
    }

    /// Waits, with `ticket` held, until the cluster runs no more than its
    /// limit (this query included).
    async fn cluster_turn(
        &self,
        ticket: Ticket,
        owner: &Owner,
        started: Instant,
    ) -> Result<Ticket, Status> {
        let Some(gate) = self.cluster.get() else {
            return Ok(ticket);
        };
        let busy = || self.running_here() + (gate.elsewhere)() > gate.limit.max(1);
        if !busy() {
            return Ok(ticket);
        }
        crate::metrics::metrics().queued.inc();
        let _slot = QueueGauge;
        loop {
            if let Some(d) = ticket.deadline
                && Instant::now() >= d
            {
                return Err(Status::deadline_exceeded(format!(
                    "the query waited {:.1} s for room in the cluster and did not start within query_timeout_seconds ({} s): {} queries run on this coordinator and {} on the others (cluster_max_running_queries = {}); try again later",
                    started.elapsed().as_secs_f64(),
                    ticket.limit.map_or(0, |t| t.as_secs()),
                    self.running_here().saturating_sub(1),
                    (gate.elsewhere)(),
                    gate.limit
                )));
            }
            tokio::time::sleep(CLUSTER_POLL).await;
            if !busy() {
                tracing::debug!("admission: a query of {owner} got room in the cluster");
                return Ok(Ticket {
                    queued_for: started.elapsed(),
                    ..ticket
                });
            }
        }
    }

    /// The limits.
    pub fn settings(&self) -> &AdmissionSettings {
        &self.settings
    }

    fn user_slots(&self, owner: &Owner) -> Arc<Semaphore> {
        let mut users = self.users.lock().expect("not poisoned");
        // Users with nothing running are forgotten now and then.
        if users.len() > 10_000 {
            let full = self.settings.per_user.max(1);
            users.retain(|_, s| s.available_permits() < full);
        }
        users
            .entry(owner.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_user.max(1))))
            .clone()
    }

    /// Waits for the right to run a query of `owner`.
    pub async fn admit(&self, owner: &Owner) -> Result<Ticket, Status> {
        let started = Instant::now();
        let timeout = self.settings.timeout_of(owner);
        let deadline = timeout.map(|t| started + t);
        let user_slots = self.user_slots(owner);
        // Fast path: room at once.
        if let (Ok(u), Ok(r)) = (
            user_slots.clone().try_acquire_owned(),
            self.running.clone().try_acquire_owned(),
        ) {
            let ticket = Ticket {
                _gauge: RunningGauge::new(),
                _running: r,
                _user: u,
                deadline,
                limit: timeout,
                queued_for: Duration::ZERO,
            };
            return self.cluster_turn(ticket, owner, started).await;
        }
        let slot = {
            let mut queued = self.queued.lock().expect("not poisoned");
            if *queued >= self.settings.max_queued {
                crate::metrics::metrics().refused.inc();
                return Err(Status::resource_exhausted(format!(
                    "the server is busy: {} queries run and {} wait (max_running_queries = {}, max_queued_queries = {}); try again shortly",
                    self.settings.max_running,
                    *queued,
                    self.settings.max_running,
                    self.settings.max_queued
                )));
            }
            *queued += 1;
            crate::metrics::metrics().queued.inc();
            QueueSlot(&self.queued)
        };
        let wait = async {
            let u = user_slots.acquire_owned().await.expect("never closed");
            let r = self
                .running
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            (u, r)
        };
        let (u, r) = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), wait).await.map_err(|_| {
                Status::deadline_exceeded(format!(
                    "the query waited {:.1} s in the queue and did not start within query_timeout_seconds ({} s); the server is busy, or user '{owner}' already runs {} queries (max_queries_per_user)",
                    started.elapsed().as_secs_f64(),
                    timeout.map_or(0, |t| t.as_secs()),
                    self.settings.per_user
                ))
            })?,
            None => wait.await,
        };
        drop(slot);
        let ticket = Ticket {
            _gauge: RunningGauge::new(),
            _running: r,
            _user: u,
            deadline,
            limit: timeout,
            queued_for: started.elapsed(),
        };
        self.cluster_turn(ticket, owner, started).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        running: usize,
        queued: usize,
        per_user: usize,
        timeout_ms: u64,
    ) -> AdmissionSettings {
        AdmissionSettings {
            max_running: running,
            max_queued: queued,
            per_user,
            timeout: Some(Duration::from_millis(timeout_ms)),
            user_timeouts: HashMap::new(),
        }
    }

    #[tokio::test]
    async fn a_user_may_have_a_timeout_of_their_own() {
        let mut s = settings(4, 4, 4, 300);
        s.user_timeouts
            .insert("batch".into(), Some(Duration::from_secs(7200)));
        s.user_timeouts.insert("ops".into(), None);
        assert_eq!(
            s.timeout_of(&Owner::local("batch")),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(s.timeout_of(&Owner::local("ops")), None);
        assert_eq!(
            s.timeout_of(&Owner::of_tenant("tenant", "batch")),
            Some(Duration::from_millis(300))
        );
        let a = Admission::new(s);
        assert_eq!(
            a.admit(&Owner::local("batch")).await.unwrap().limit,
            Some(Duration::from_secs(7200))
        );
        assert!(
            a.admit(&Owner::local("ops"))
                .await
                .unwrap()
                .deadline
                .is_none()
        );
        assert_eq!(
            a.admit(&Owner::local("ann")).await.unwrap().limit,
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            AdmissionSettings::default().timeout,
            Some(DEFAULT_QUERY_TIMEOUT)
        );
    }

    #[tokio::test]
    async fn queries_elsewhere_in_the_cluster_count() {
        let elsewhere = Arc::new(std::sync::atomic::AtomicUsize::new(2));
        let a = Arc::new(Admission::new(settings(4, 4, 4, 300)));
        let seen = elsewhere.clone();
        a.join_cluster(ClusterGate {
            limit: 3,
            elsewhere: Box::new(move || seen.load(std::sync::atomic::Ordering::Relaxed)),
        });
        // 2 elsewhere + 1 here: room for exactly one.
        let first = a.admit(&Owner::local("ann")).await.unwrap();
        let e = a.admit(&Owner::local("bob")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
        assert!(
            e.message().contains("cluster_max_running_queries = 3"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("2 on the others"), "{}", e.message());
        // The others finish: the waiting query starts.
        let waiting = {
            let a = a.clone();
            tokio::spawn(async move { a.admit(&Owner::local("cy")).await.map(|t| t.queued_for) })
        };
        tokio::time::sleep(Duration::from_millis(120)).await;
        elsewhere.store(0, std::sync::atomic::Ordering::Relaxed);
        let waited = waiting.await.unwrap().unwrap();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        drop(first);
    }

    #[tokio::test]
    async fn the_queue_and_the_per_user_cap_hold() {
        let a = Arc::new(Admission::new(settings(2, 1, 1, 300)));
        let first = a.admit(&Owner::local("ann")).await.unwrap();
        // Ann's second query waits for her first; it gives up at the deadline.
        let e = a.admit(&Owner::local("ann")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
        assert!(e.message().contains("in the queue"), "{}", e.message());
        let _bob = a.admit(&Owner::local("bob")).await.unwrap();
        // Both slots are taken: one may wait, the next is refused at once.
        let waiting = {
            let a = a.clone();
            tokio::spawn(async move { a.admit(&Owner::local("cy")).await.map(|t| t.queued_for) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = a.admit(&Owner::local("dee")).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        drop(first);
        let waited = waiting.await.unwrap().unwrap();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
    }
}

/// A query ran past `query_timeout_seconds`.
#[derive(Debug, thiserror::Error)]
#[error(
    "the query ran past query_timeout_seconds ({limit} s): it waited {queued:.1} s in the queue and ran {ran:.1} s, then was stopped; narrow it, or raise the timeout in the server config"
)]
pub struct QueryTimeout {
    /// The limit, seconds.
    pub limit: u64,
    /// Seconds it waited to start.
    pub queued: f64,
    /// Seconds it ran.
    pub ran: f64,
}

/// `batches`, ended with a [`QueryTimeout`] error at the ticket's deadline;
/// the ticket is held (the query keeps its place) until the stream ends. An
/// error caused by a limit is answered as that limit's error alone
/// ([`crate::spill::limit_error`]).
pub fn until_deadline<S>(
    batches: S,
    ticket: Ticket,
) -> impl futures::Stream<Item = datafusion::error::Result<arrow::array::RecordBatch>> + Send
where
    S: futures::Stream<Item = datafusion::error::Result<arrow::array::RecordBatch>>
        + Send
        + Unpin
        + 'static,
{
    use futures::StreamExt;
    let started = Instant::now();
    futures::stream::unfold(Some((batches, ticket)), move |state| async move {
        let (mut batches, ticket) = state?;
        let next = match ticket.deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), batches.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let queued = ticket.queued_for.as_secs_f64();
                    let ran = started.elapsed().as_secs_f64();
                    let timeout = QueryTimeout {
                        limit: ticket.limit.map_or(0, |l| l.as_secs()),
                        queued,
                        ran,
                    };
                    let error = datafusion::error::DataFusionError::External(Box::new(timeout));
                    return Some((Err(error), None));
                }
            },
            None => batches.next().await,
        };
        // A limit reached deep inside (a spill write) answers with the limit's own message.
        next.map(|item| {
            (
                item.map_err(crate::spill::limit_error),
                Some((batches, ticket)),
            )
        })
    })
}
