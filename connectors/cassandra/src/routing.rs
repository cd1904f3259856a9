//! Where each read goes and when it is retried: a token range is read on a
//! replica that owns it (others when it is down), and failed attempts are
//! retried only where that can help. Each attempt has a deadline of its own:
//! the driver's request timeout covers all of its attempts together, so tsql
//! runs the attempts itself ([`attempts`]) and sends one that timed out again
//! to a node not tried yet ([`Untried`]).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scylla::cluster::{ClusterState, Node, NodeRef};
use scylla::errors::{DbError, RequestAttemptError, RequestError};
use scylla::observability::history::{AttemptId, HistoryListener, RequestId, SpeculativeId};
use scylla::policies::load_balancing::{FallbackPlan, LoadBalancingPolicy, RoutingInfo};
use scylla::policies::retry::{RequestInfo, RetryDecision, RetryPolicy, RetrySession};
use scylla::routing::Shard;

/// Sends a request to the first enabled node of `replicas`, then to the
/// other replicas, then to every other node.
#[derive(Debug)]
pub struct ReplicasFirst {
    replicas: Vec<Arc<Node>>,
}

impl ReplicasFirst {
    /// A policy preferring `replicas`, in order.
    pub fn new(replicas: Vec<Arc<Node>>) -> Arc<dyn LoadBalancingPolicy> {
        Arc::new(ReplicasFirst { replicas })
    }
}

impl LoadBalancingPolicy for ReplicasFirst {
    fn pick<'a>(
        &'a self,
        _request: &'a RoutingInfo,
        cluster: &'a ClusterState,
    ) -> Option<(NodeRef<'a>, Option<Shard>)> {
        self.replicas
            .iter()
            .find(|n| n.is_enabled() && n.is_connected())
            .or_else(|| cluster.get_nodes_info().iter().find(|n| n.is_enabled()))
            .map(|n| (n, None))
    }

    fn fallback<'a>(
        &'a self,
        _request: &'a RoutingInfo,
        cluster: &'a ClusterState,
    ) -> FallbackPlan<'a> {
        let others = cluster
            .get_nodes_info()
            .iter()
            .filter(|n| !self.replicas.iter().any(|r| r.host_id == n.host_id));
        Box::new(
            self.replicas
                .iter()
                .chain(others)
                .filter(|n| n.is_enabled())
                .map(|n| (n, None)),
        )
    }

    fn name(&self) -> String {
        "ReplicasFirst".into()
    }
}

/// `inner`'s plan with the nodes already tried for this request moved to
/// its end: an attempt after a timeout goes to a node that has not been tried
/// yet when there is one (a frozen node keeps its connections, so the driver
/// would otherwise pick it again).
#[derive(Debug)]
pub struct Untried {
    inner: Arc<dyn LoadBalancingPolicy>,
    tried: Vec<IpAddr>,
}

impl Untried {
    /// `inner`, trying the nodes at `tried` last.
    pub fn new(
        inner: Arc<dyn LoadBalancingPolicy>,
        tried: Vec<IpAddr>,
    ) -> Arc<dyn LoadBalancingPolicy> {
        Arc::new(Untried { inner, tried })
    }

    fn was_tried(&self, node: &Node) -> bool {
        self.tried.contains(&node.address.ip())
    }
}

impl LoadBalancingPolicy for Untried {
    fn pick<'a>(
        &'a self,
        request: &'a RoutingInfo,
        cluster: &'a ClusterState,
    ) -> Option<(NodeRef<'a>, Option<Shard>)> {
        // None makes the driver take the plan from `fallback`, reordered.
        self.inner
            .pick(request, cluster)
            .filter(|(n, _)| !self.was_tried(n))
    }

    fn fallback<'a>(
        &'a self,
        request: &'a RoutingInfo,
        cluster: &'a ClusterState,
    ) -> FallbackPlan<'a> {
        let (fresh, tried): (Vec<_>, Vec<_>) = self
            .inner
            .fallback(request, cluster)
            .partition(|(n, _)| !self.was_tried(n));
        Box::new(fresh.into_iter().chain(tried))
    }

    fn name(&self) -> String {
        format!("Untried({})", self.inner.name())
    }
}

/// Nodes that recently left an attempt unanswered: every request tries them
/// last for [`SlowNodes::FOR`] (a frozen node keeps its connections, and
/// the cluster takes ~20 s to call it down), so one frozen node costs a scan
/// one deadline, not one per token range.
#[derive(Debug, Default)]
pub struct SlowNodes {
    since: Mutex<Vec<(IpAddr, Instant)>>,
}

impl SlowNodes {
    /// How long a node that did not answer is tried last.
    pub const FOR: Duration = Duration::from_secs(30);

    /// Marks `nodes` as having left an attempt unanswered now.
    pub fn mark(&self, nodes: &[IpAddr]) {
        let now = Instant::now();
        let mut since = self.since.lock().expect("not poisoned");
        since.retain(|(n, _)| !nodes.contains(n));
        since.extend(nodes.iter().map(|n| (*n, now)));
    }

    /// The nodes marked within the last [`SlowNodes::FOR`].
    pub fn current(&self) -> Vec<IpAddr> {
        let mut since = self.since.lock().expect("not poisoned");
        since.retain(|(_, at)| at.elapsed() < Self::FOR);
        since.iter().map(|(n, _)| *n).collect()
    }
}

/// The retries left for one request: shared by the driver's retries after
/// an error answer ([`ReadRetries`]) and tsql's after an attempt that timed
/// out ([`attempts`]), so a request makes at most `retries + 1` attempts.
#[derive(Debug, Clone)]
pub struct RetryBudget(Arc<AtomicUsize>);

impl RetryBudget {
    /// A budget of `retries` retries.
    pub fn new(retries: usize) -> Self {
        RetryBudget(Arc::new(AtomicUsize::new(retries)))
    }

    /// Takes one retry; false when none is left.
    pub fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// How many retries are left.
    pub fn left(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Retries reads (always idempotent here) on another node after a broken
/// connection, an overloaded or bootstrapping node, or a read timeout the
/// coordinator reports; up to `retries` times. Unavailable is final: the
/// coordinator already knows too few replicas are up, and the user gets that
/// reason. (An attempt that gets no answer at all is retried by [`attempts`].)
#[derive(Debug)]
pub struct ReadRetries {
    retries: usize,
    shared: Option<RetryBudget>,
}

impl ReadRetries {
    /// Up to `retries` retries for each request.
    pub fn new(retries: usize) -> Self {
        ReadRetries {
            retries,
            shared: None,
        }
    }

    /// Retries taken from `budget`, which tsql's own retries of the same
    /// request share.
    pub fn sharing(budget: RetryBudget) -> Self {
        ReadRetries {
            retries: 0,
            shared: Some(budget),
        }
    }
}

struct ReadRetrySession {
    budget: RetryBudget,
}

impl ReadRetries {
    fn session(&self) -> ReadRetrySession {
        let budget = match &self.shared {
            Some(b) => b.clone(),
            None => RetryBudget::new(self.retries),
        };
        ReadRetrySession { budget }
    }
}

impl RetryPolicy for ReadRetries {
    fn new_session(&self) -> Box<dyn RetrySession> {
        Box::new(self.session())
    }
}

/// Whether an attempt that failed with `error` may succeed on another node.
pub fn retryable(error: &RequestAttemptError) -> bool {
    match error {
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => true,
        RequestAttemptError::DbError(e, _) => matches!(
            e,
            DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::ServerError
                | DbError::TruncateError
                | DbError::ReadTimeout { .. }
        ),
        _ => false,
    }
}

impl ReadRetrySession {
    fn decide(&mut self, error: &RequestAttemptError) -> RetryDecision {
        if retryable(error) && self.budget.take() {
            RetryDecision::RetryNextTarget(None)
        } else {
            RetryDecision::DontRetry
        }
    }
}

impl RetrySession for ReadRetrySession {
    fn decide_should_retry(&mut self, info: RequestInfo) -> RetryDecision {
        self.decide(info.error)
    }

    fn reset(&mut self) {}
}

/// The nodes a request's attempts were sent to, as the driver reports them.
#[derive(Debug, Default)]
pub struct Tried {
    nodes: Mutex<Vec<IpAddr>>,
    ids: AtomicUsize,
}

impl Tried {
    /// The nodes tried so far, each once, in order.
    pub fn nodes(&self) -> Vec<IpAddr> {
        self.nodes.lock().expect("not poisoned").clone()
    }

    fn id(&self) -> usize {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

impl HistoryListener for Tried {
    fn log_request_start(&self) -> RequestId {
        RequestId(self.id())
    }

    fn log_request_success(&self, _request_id: RequestId) {}

    fn log_request_error(&self, _request_id: RequestId, _error: &RequestError) {}

    fn log_new_speculative_fiber(&self, _request_id: RequestId) -> SpeculativeId {
        SpeculativeId(self.id())
    }

    fn log_attempt_start(
        &self,
        _request_id: RequestId,
        _speculative_id: Option<SpeculativeId>,
        node_addr: SocketAddr,
    ) -> AttemptId {
        let mut nodes = self.nodes.lock().expect("not poisoned");
        if !nodes.contains(&node_addr.ip()) {
            nodes.push(node_addr.ip());
        }
        AttemptId(self.id())
    }

    fn log_attempt_success(&self, _attempt_id: AttemptId) {}

    fn log_attempt_error(
        &self,
        _attempt_id: AttemptId,
        _error: &RequestAttemptError,
        _retry_decision: &RetryDecision,
    ) {
    }
}

/// Why a request failed after its attempts.
#[derive(Debug)]
pub enum Failed<E> {
    /// An attempt failed in a way another attempt cannot mend (or the
    /// budget was spent on the driver's retries).
    Error(E),
    /// Every attempt went unanswered for its whole deadline.
    TimedOut {
        /// How many attempts were made.
        attempts: usize,
        /// The nodes they were sent to.
        tried: Vec<IpAddr>,
    },
}

/// Runs one request: `attempt(tried)` makes an attempt (sending it, when
/// `tried` names nodes, to others first, and reporting the nodes it uses to
/// `tried`). Each attempt has `deadline` of its own; one that does not
/// answer within it, or fails as `is_timeout` says, is made again while
/// `budget` has retries left. So a request gets at most
/// `(retries + 1) × deadline`.
pub async fn attempts<T, E, Fut>(
    deadline: Duration,
    budget: &RetryBudget,
    is_timeout: impl Fn(&E) -> bool,
    mut attempt: impl FnMut(&Arc<Tried>) -> Fut,
) -> Result<T, Failed<E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    let tried = Arc::new(Tried::default());
    let mut made = 0;
    loop {
        made += 1;
        match tokio::time::timeout(deadline, attempt(&tried)).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) if !is_timeout(&e) => return Err(Failed::Error(e)),
            Ok(Err(_)) | Err(_) => {}
        }
        if !budget.take() {
            return Err(Failed::TimedOut {
                attempts: made,
                tried: tried.nodes(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use scylla::statement::Consistency;

    fn read_timeout() -> RequestAttemptError {
        RequestAttemptError::DbError(
            DbError::ReadTimeout {
                consistency: Consistency::Quorum,
                received: 1,
                required: 2,
                data_present: false,
            },
            "read timed out".into(),
        )
    }

    fn unavailable() -> RequestAttemptError {
        RequestAttemptError::DbError(
            DbError::Unavailable {
                consistency: Consistency::Quorum,
                required: 2,
                alive: 1,
            },
            "too few".into(),
        )
    }

    #[test]
    fn read_timeouts_are_retried_on_the_next_node_until_the_retries_are_spent() {
        let mut session = ReadRetries::new(2).session();
        for _ in 0..2 {
            assert!(matches!(
                session.decide(&read_timeout()),
                RetryDecision::RetryNextTarget(None)
            ));
        }
        assert!(matches!(
            session.decide(&read_timeout()),
            RetryDecision::DontRetry
        ));
        // Each request starts with the full count.
        let mut again = ReadRetries::new(2).session();
        assert!(matches!(
            again.decide(&read_timeout()),
            RetryDecision::RetryNextTarget(None)
        ));
    }

    #[test]
    fn unavailable_is_final() {
        let mut session = ReadRetries::new(2).session();
        assert!(matches!(
            session.decide(&unavailable()),
            RetryDecision::DontRetry
        ));
    }

    #[test]
    fn driver_retries_and_timeout_retries_share_one_budget() {
        let budget = RetryBudget::new(2);
        let mut session = ReadRetries::sharing(budget.clone()).session();
        assert!(matches!(
            session.decide(&read_timeout()),
            RetryDecision::RetryNextTarget(None)
        ));
        assert_eq!(budget.left(), 1);
        assert!(budget.take());
        assert!(!budget.take());
        assert!(matches!(
            session.decide(&read_timeout()),
            RetryDecision::DontRetry
        ));
    }

    const DEADLINE: Duration = Duration::from_millis(150);

    #[tokio::test]
    async fn an_unanswered_attempt_is_made_again_each_with_its_own_deadline() {
        let budget = RetryBudget::new(2);
        let started = Instant::now();
        let mut calls = 0;
        let got: Result<(), Failed<String>> = attempts(
            DEADLINE,
            &budget,
            |_| false,
            |tried| {
                calls += 1;
                let node: SocketAddr = format!("127.0.0.{calls}:9042").parse().unwrap();
                tried.log_attempt_start(RequestId(0), None, node);
                std::future::pending()
            },
        )
        .await;
        let took = started.elapsed();
        match got {
            Err(Failed::TimedOut { attempts, tried }) => {
                assert_eq!(attempts, 3);
                assert_eq!(tried.len(), 3, "{tried:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(calls, 3);
        // Three deadlines, one after another: not one for all of them.
        assert!(took >= DEADLINE * 3, "{took:?}");
        assert!(took < DEADLINE * 3 + Duration::from_secs(1), "{took:?}");
    }

    #[tokio::test]
    async fn a_retry_that_answers_ends_the_request_and_sees_the_nodes_tried() {
        let budget = RetryBudget::new(2);
        let mut seen = Vec::new();
        let got: Result<&str, Failed<String>> = attempts(
            DEADLINE,
            &budget,
            |_| false,
            |tried| {
                seen.push(tried.nodes());
                let first = seen.len() == 1;
                if first {
                    tried.log_attempt_start(RequestId(0), None, "127.0.0.3:9042".parse().unwrap());
                }
                async move {
                    if first {
                        std::future::pending::<()>().await;
                    }
                    Ok("rows")
                }
            },
        )
        .await;
        assert_eq!(got.unwrap(), "rows");
        assert_eq!(
            seen,
            vec![vec![], vec!["127.0.0.3".parse::<IpAddr>().unwrap()]]
        );
        assert_eq!(budget.left(), 1);
    }

    #[tokio::test]
    async fn a_timeout_the_driver_reports_counts_as_unanswered_and_other_errors_end_at_once() {
        let budget = RetryBudget::new(1);
        let mut calls = 0;
        let got: Result<(), Failed<&str>> = attempts(
            DEADLINE,
            &budget,
            |e| *e == "timeout",
            |_| {
                calls += 1;
                async { Err("timeout") }
            },
        )
        .await;
        assert!(matches!(got, Err(Failed::TimedOut { attempts: 2, .. })));
        assert_eq!(calls, 2);
        let budget = RetryBudget::new(2);
        let got: Result<(), Failed<&str>> = attempts(
            DEADLINE,
            &budget,
            |e| *e == "timeout",
            |_| async { Err("unavailable") },
        )
        .await;
        assert!(matches!(got, Err(Failed::Error("unavailable"))));
        assert_eq!(budget.left(), 2);
    }

    #[test]
    fn slow_nodes_are_remembered_once_each() {
        let slow = SlowNodes::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        slow.mark(&[a]);
        slow.mark(&[a, b]);
        assert_eq!(slow.current(), vec![a, b]);
    }

    #[tokio::test]
    async fn no_retries_means_one_attempt() {
        let budget = RetryBudget::new(0);
        let started = Instant::now();
        let got: Result<(), Failed<String>> =
            attempts(DEADLINE, &budget, |_| false, |_| std::future::pending()).await;
        assert!(matches!(got, Err(Failed::TimedOut { attempts: 1, .. })));
        assert!(started.elapsed() < DEADLINE * 2);
    }
}
