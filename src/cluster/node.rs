//! One node of a cluster: it coordinates (plans, hands stages to workers)
//! and works (runs the fragments other nodes send, as their callers).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion_distributed::{DistributedExt, Worker, WorkerQueryContext};
use http::HeaderMap;
use url::Url;

use super::codec::ScanCodec;
use super::pass::{PASS_HEADER, PassKey};
use super::scan::WorkerTables;
use super::settings::ClusterSettings;
use super::workers::{Channels, Workers};
use crate::caller::Caller;
use crate::engine::Engine;

/// This node's part in the cluster.
pub struct Cluster {
    /// The config file's cluster settings.
    pub settings: ClusterSettings,
    /// The workers found.
    pub workers: Workers,
    /// Connections to them.
    pub channels: Channels,
    /// Seals and opens task passes.
    pub pass: Arc<PassKey>,
    /// How the other nodes reach this one's worker port.
    pub self_url: Url,
    engine: Arc<OnceLock<Engine>>,
    worker: Worker,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("self_url", &self.self_url.as_str())
            .field("workers", &self.workers)
            .finish()
    }
}

impl Cluster {
    /// The cluster of `settings`, with this node's worker port at
    /// `worker_addr` (the bound address; for the default URL). Workers are
    /// resolved once before this returns, then every few seconds.
    pub async fn start(settings: ClusterSettings, worker_addr: SocketAddr) -> Result<Arc<Cluster>> {
        let pass = Arc::new(PassKey::from_secret(&settings.secret).map_err(DataFusionError::Plan)?);
        let self_url = match &settings.worker_url {
            Some(u) => {
                Url::parse(u).map_err(|e| DataFusionError::Plan(format!("worker_url: {e}")))?
            }
            None => {
                let host = if worker_addr.ip().is_unspecified() {
                    routable_ip(&settings.workers)
                        .await
                        .unwrap_or_else(hostname)
                } else {
                    worker_addr.ip().to_string()
                };
                Url::parse(&format!("http://{host}:{}", worker_addr.port()))
                    .map_err(|e| DataFusionError::Plan(format!("worker_url: {e}")))?
            }
        };
        let channels = Channels::default();
        let workers =
            Workers::start(settings.workers.clone(), pass.clone(), channels.clone()).await;
        let engine = Arc::new(OnceLock::new());
        let sessions = WorkerSessions {
            engine: engine.clone(),
            pass: pass.clone(),
            channels: channels.clone(),
        };
        let worker = Worker::from_session_builder(move |ctx: WorkerQueryContext| {
            let sessions = sessions.clone();
            async move { sessions.build(ctx).await }
        });
        Ok(Arc::new(Cluster {
            settings,
            workers,
            channels,
            pass,
            self_url,
            engine,
            worker,
        }))
    }

    /// The engine fragments run on (set once, by [`Engine::with_cluster`]).
    pub fn attach(&self, engine: Engine) {
        let _ = self.engine.set(engine);
    }

    /// This node's worker (for running its own single-task stages in process).
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Serves plan fragments on `listener` until the process ends: every
    /// request must carry a task pass sealed with the cluster secret.
    pub fn serve(self: &Arc<Self>, listener: tokio::net::TcpListener) {
        let pass = self.pass.clone();
        let check = move |request: tonic::Request<()>| {
            let header = request.metadata().get(PASS_HEADER);
            match pass.open_header(header.and_then(|v| v.to_str().ok())) {
                Ok(_) => Ok(request),
                Err(e) => {
                    crate::metrics::metrics().cluster_refused.inc();
                    tracing::warn!("cluster: refused a request to the worker port: {e}");
                    Err(tonic::Status::unauthenticated(e))
                }
            }
        };
        let service = self.worker.clone().into_worker_server();
        let status = super::status::StatusService::default();
        let incoming = tokio_stream_of(listener);
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .layer(tonic::service::InterceptorLayer::new(check))
                .add_service(service)
                .add_service(status)
                .serve_with_incoming(incoming)
                .await;
            if let Err(e) = served {
                tracing::error!("cluster: the worker port stopped: {e}");
            }
        });
    }
}

/// Accepted connections of `listener`, as tonic takes them.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((next, l))
    })
}

/// The address of this host that the first of `workers` is reached from
/// (what a worker uses to reach this node back: a pod's IP in Kubernetes).
async fn routable_ip(workers: &[String]) -> Option<String> {
    let target = tokio::net::lookup_host(workers.first()?.as_str())
        .await
        .ok()?
        .next()?;
    let local: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let socket = tokio::net::UdpSocket::bind(local).await.ok()?;
    socket.connect(target).await.ok()?;
    let ip = socket.local_addr().ok()?.ip();
    Some(match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// Builds the session each fragment runs in: the caller's own catalogs and
/// memory share, from the pass the request carries.
#[derive(Clone)]
struct WorkerSessions {
    engine: Arc<OnceLock<Engine>>,
    pass: Arc<PassKey>,
    channels: Channels,
}

impl WorkerSessions {
    async fn build(&self, ctx: WorkerQueryContext) -> Result<SessionState> {
        let caller = self.caller(&ctx.headers)?;
        let Some(engine) = self.engine.get() else {
            return Err(DataFusionError::Execution(
                "this node is still starting: its engine is not ready for fragments".into(),
            ));
        };
        crate::metrics::metrics().cluster_fragments.inc();
        let engine = engine.for_caller(&caller).await;
        let mut builder = ctx.builder;
        let config = builder
            .config()
            .take()
            .unwrap_or_default()
            .with_extension(Arc::new(WorkerTables(engine.context().clone())));
        // The next hop (a worker reading another's stage) carries a fresh pass.
        let headers = self.pass.headers(&caller);
        Ok(
            SessionStateBuilder::new_from_existing(engine.context().state())
                .with_config(config)
                .with_distributed_user_codec(ScanCodec)
                .with_distributed_channel_resolver(self.channels.clone())
                .with_distributed_passthrough_headers(headers)?
                .build(),
        )
    }

    fn caller(&self, headers: &HeaderMap) -> Result<Caller> {
        let header = headers.get(PASS_HEADER).and_then(|v| v.to_str().ok());
        self.pass
            .open_header(header)
            .map_err(DataFusionError::Execution)
    }
}
