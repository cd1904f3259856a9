//! The status call a coordinator makes to every worker each
//! [`super::workers::REFRESH`]. It is the health check (a worker that does
//! not answer it, or refuses this node's pass, is left out of new plans);
//! it tells the worker how many queries the coordinator runs, so that every
//! coordinator learns how many run on the others (cluster-wide admission);
//! and it brings back the progress of the coordinator's tasks on that
//! worker (per-stage progress in the query view).
//!
//! It is served next to datafusion-distributed's own service on the worker
//! port, behind the same task-pass check.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::server::NamedService;

use super::progress::{TaskProgress, task_board};

/// The gRPC path of the call.
pub const STATUS_PATH: &str = "/tsql.cluster.Node/Status";

/// What a coordinator tells a worker.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {
    /// The coordinator's node id.
    #[prost(string, tag = "1")]
    pub node: String,
    /// Queries the coordinator runs now.
    #[prost(uint32, tag = "2")]
    pub running: u32,
}

/// What a worker answers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusReply {
    /// The asking coordinator's tasks on this worker (running, or ended lately).
    #[prost(message, repeated, tag = "1")]
    pub tasks: Vec<TaskProgress>,
    /// Queries the other coordinators that call this worker run, as each told it last.
    #[prost(uint32, tag = "2")]
    pub running_elsewhere: u32,
    /// How many other coordinators called lately.
    #[prost(uint32, tag = "3")]
    pub coordinators_elsewhere: u32,
}

/// A coordinator that has not called for this long no longer counts.
const FRESH: Duration = Duration::from_secs(10);

/// The coordinators that call this node, and what each runs.
#[derive(Debug, Default)]
pub struct Coordinators {
    seen: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Coordinators {
    /// Records `request`; the running queries and count of the other
    /// coordinators that called within [`FRESH`].
    pub fn record(&self, request: &StatusRequest) -> (u32, u32) {
        let mut seen = self.seen.lock().expect("not poisoned");
        let now = Instant::now();
        seen.insert(request.node.clone(), (request.running, now));
        seen.retain(|_, (_, at)| now.duration_since(*at) < FRESH);
        let others = seen.iter().filter(|(node, _)| **node != request.node);
        others.fold((0, 0), |(running, n), (_, (r, _))| (running + r, n + 1))
    }
}

/// The status service of a worker port.
#[derive(Debug, Clone, Default)]
pub struct StatusService {
    coordinators: Arc<Coordinators>,
}

impl StatusService {
    fn answer(&self, request: &StatusRequest) -> StatusReply {
        let (running_elsewhere, coordinators_elsewhere) = self.coordinators.record(request);
        StatusReply {
            tasks: task_board().of_node(&request.node),
            running_elsewhere,
            coordinators_elsewhere,
        }
    }
}

impl NamedService for StatusService {
    const NAME: &'static str = "tsql.cluster.Node";
}

struct Unary(StatusService);

impl tonic::server::UnaryService<StatusRequest> for Unary {
    type Response = StatusReply;
    type Future = BoxFuture<'static, Result<tonic::Response<StatusReply>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<StatusRequest>) -> Self::Future {
        let reply = self.0.answer(request.get_ref());
        Box::pin(async move { Ok(tonic::Response::new(reply)) })
    }
}

impl tower_service::Service<http::Request<Body>> for StatusService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() != STATUS_PATH {
                return Ok(tonic::Status::unimplemented(format!(
                    "{} is not a call of this worker port",
                    request.uri().path()
                ))
                .into_http());
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Unary(service), request).await)
        })
    }
}

/// Asks the worker behind `channel` for its status, with `headers` (a
/// task pass, [`super::PassKey::headers`]) as credentials.
pub async fn ask(
    channel: tonic::transport::Channel,
    headers: http::HeaderMap,
    request: StatusRequest,
) -> Result<StatusReply, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(request);
    *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
    let path = http::uri::PathAndQuery::from_static(STATUS_PATH);
    grpc.unary(request, path, tonic_prost::ProstCodec::default())
        .await
        .map(tonic::Response::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_coordinator_learns_what_the_others_run() {
        let c = Coordinators::default();
        let ask = |node: &str, running| StatusRequest {
            node: node.into(),
            running,
        };
        assert_eq!(c.record(&ask("a", 3)), (0, 0));
        assert_eq!(c.record(&ask("b", 5)), (3, 1));
        assert_eq!(c.record(&ask("a", 1)), (5, 1));
        assert_eq!(c.record(&ask("c", 0)), (6, 2));
    }
}
