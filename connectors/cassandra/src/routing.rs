//! Where each read goes and when it is retried: a token range is read on a
//! replica that owns it (others when it is down), and failed attempts are
//! retried only where that can help.

use std::sync::Arc;

use scylla::cluster::{ClusterState, Node, NodeRef};
use scylla::errors::{DbError, RequestAttemptError};
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

/// Retries reads (always idempotent here) on another node after a broken
/// connection, an overloaded or bootstrapping node, or a read timeout; up to
/// `retries` times. Unavailable is final: the coordinator already knows too
/// few replicas are up, and the user gets that reason.
#[derive(Debug)]
pub struct ReadRetries {
    /// How many retries a request gets.
    pub retries: usize,
}

struct ReadRetrySession {
    left: usize,
}

impl RetryPolicy for ReadRetries {
    fn new_session(&self) -> Box<dyn RetrySession> {
        Box::new(ReadRetrySession { left: self.retries })
    }
}

impl RetrySession for ReadRetrySession {
    fn decide_should_retry(&mut self, info: RequestInfo) -> RetryDecision {
        if self.left == 0 {
            return RetryDecision::DontRetry;
        }
        let retry = match info.error {
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
        };
        if retry {
            self.left -= 1;
            RetryDecision::RetryNextTarget(None)
        } else {
            RetryDecision::DontRetry
        }
    }

    fn reset(&mut self) {}
}
