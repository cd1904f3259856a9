//! Where the workers are: the `workers` list (host:port entries; a name
//! resolves to all its addresses, as a Kubernetes headless Service does),
//! resolved again and health-checked every few seconds. A worker that stops
//! answering is left out of new plans until it answers again; a new address
//! behind the name is used from the next refresh on, without a restart.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result};
use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{ChannelResolver, WorkerChannel, WorkerResolver};
use tonic::transport::Endpoint;
use url::Url;

/// How often the workers are resolved and checked.
pub const REFRESH: Duration = Duration::from_secs(2);

/// How long a worker may take to accept a connection before it counts as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The live workers, refreshed in the background.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    live: Arc<RwLock<Vec<Url>>>,
    known: Arc<RwLock<BTreeSet<Url>>>,
}

impl Workers {
    /// Workers found from `entries` (host:port each), refreshed every
    /// [`REFRESH`] on the current tokio runtime. The first resolution is
    /// done before this returns.
    pub async fn start(entries: Vec<String>) -> Workers {
        let workers = Workers::default();
        workers.refresh(&entries).await;
        let w = workers.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                w.refresh(&entries).await;
            }
        });
        workers
    }

    /// Workers at fixed URLs, never checked (for tests).
    pub fn fixed(urls: Vec<Url>) -> Workers {
        let w = Workers::default();
        *w.live.write().expect("not poisoned") = urls;
        w
    }

    /// The workers that answered the last check.
    pub fn live(&self) -> Vec<Url> {
        self.live.read().expect("not poisoned").clone()
    }

    /// Every worker address found, answering or not.
    pub fn known(&self) -> Vec<Url> {
        self.known
            .read()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect()
    }

    async fn refresh(&self, entries: &[String]) {
        let mut found = BTreeSet::new();
        for entry in entries {
            match tokio::net::lookup_host(entry.as_str()).await {
                Ok(addrs) => found.extend(addrs.map(url_of)),
                Err(e) => tracing::warn!("cluster: cannot resolve worker '{entry}': {e}"),
            }
        }
        let checks = found.iter().map(|u| {
            let u = u.clone();
            async move {
                let addr = (u.host_str().unwrap_or(""), u.port().unwrap_or(0));
                let ok =
                    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
                        .await
                        .is_ok_and(|r| r.is_ok());
                (u, ok)
            }
        });
        let results = futures::future::join_all(checks).await;
        let live: Vec<Url> = results
            .iter()
            .filter(|r| r.1)
            .map(|r| r.0.clone())
            .collect();
        let before = self.live();
        if before != live {
            let down: Vec<String> = results
                .iter()
                .filter(|r| !r.1)
                .map(|r| r.0.to_string())
                .collect();
            tracing::info!(
                "cluster: {} worker(s) answer: [{}]{}",
                live.len(),
                live.iter().map(Url::as_str).collect::<Vec<_>>().join(", "),
                if down.is_empty() {
                    String::new()
                } else {
                    format!("; not answering: [{}]", down.join(", "))
                }
            );
        }
        *self.known.write().expect("not poisoned") = found;
        *self.live.write().expect("not poisoned") = live;
    }
}

/// Whether the worker at `url` accepts a connection within [`CONNECT_TIMEOUT`].
pub async fn answers(url: &Url) -> bool {
    let addr = (url.host_str().unwrap_or(""), url.port().unwrap_or(0));
    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .is_ok_and(|r| r.is_ok())
}

fn url_of(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}")).expect("an address makes a URL")
}

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        let live = self.live();
        if live.is_empty() {
            return Err(unavailable(
                "no worker of the cluster answers: check the `workers` setting and that the worker processes run",
            ));
        }
        Ok(live)
    }
}

/// An error a client sees as UNAVAILABLE.
pub fn unavailable(message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(tsql_entity_tables::UpstreamError::new(
        tsql_entity_tables::UpstreamErrorKind::Unavailable,
        message,
    )))
}

/// Connections to workers: one per worker, reused; a connection that
/// cannot be made in [`CONNECT_TIMEOUT`], or that stops answering HTTP/2
/// pings, fails the query naming the worker instead of hanging it.
#[derive(Clone, Default)]
pub struct Channels {
    open: Arc<Mutex<HashMap<Url, BoxCloneSyncChannel>>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.open.lock().expect("not poisoned");
        f.debug_list().entries(open.keys()).finish()
    }
}

#[async_trait]
impl ChannelResolver for Channels {
    async fn get_worker_client_for_url(&self, url: &Url) -> Result<Box<dyn WorkerChannel>> {
        if let Some(c) = self.open.lock().expect("not poisoned").get(url) {
            return Ok(create_worker_client(c.clone()));
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| unavailable(format!("worker {url}: not a URL: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect().await.map_err(|e| {
            unavailable(format!(
                "worker {url} is unavailable ({e}); it is left out of new queries until it answers again"
            ))
        })?;
        let boxed = BoxCloneSyncChannel::new(channel);
        self.open
            .lock()
            .expect("not poisoned")
            .insert(url.clone(), boxed.clone());
        Ok(create_worker_client(boxed))
    }
}

impl Channels {
    /// Forgets the connection to `url` (after it failed).
    pub fn forget(&self, url: &Url) {
        self.open.lock().expect("not poisoned").remove(url);
    }
}
