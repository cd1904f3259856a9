//! Where the workers are: the `workers` list (host:port entries; a name
//! resolves to all its addresses, as a Kubernetes headless Service does),
//! resolved again and asked for their status every few seconds
//! ([`super::status`]). A worker that stops answering, or refuses this
//! node's pass, is left out of new plans until it answers again; a new
//! address behind the name is used from the next refresh on, without a
//! restart.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result};
use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{ChannelResolver, WorkerChannel, WorkerResolver};
use tonic::transport::{Channel, Endpoint};
use url::Url;

use super::pass::PassKey;
use super::progress::{node_id, stage_boards};
use super::status::{StatusRequest, ask};
use crate::caller::Caller;

/// How often the workers are resolved and checked.
pub const REFRESH: Duration = Duration::from_secs(2);

/// How long a worker may take to accept a connection before it counts as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Status rounds in a row a live worker may leave unanswered in time
/// before it is left out (a worker whose cores a query saturates answers late).
const SLOW_ROUNDS: u32 = 3;

/// The live workers, refreshed in the background.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    live: Arc<RwLock<Vec<Url>>>,
    known: Arc<RwLock<BTreeSet<Url>>>,
    refusing: Arc<RwLock<Vec<Url>>>,
    elsewhere: Arc<AtomicUsize>,
    channels: Channels,
    misses: Arc<Mutex<HashMap<Url, u32>>>,
    pass: Option<Arc<PassKey>>,
}

impl Workers {
    /// Workers found from `entries` (host:port each), asked for their
    /// status with passes of `pass` every [`REFRESH`] on the current tokio
    /// runtime. The first round is done before this returns.
    /// Status calls go over `channels`, the connections queries use.
    pub async fn start(entries: Vec<String>, pass: Arc<PassKey>, channels: Channels) -> Workers {
        let workers = Workers {
            pass: Some(pass),
            channels,
            ..Workers::default()
        };
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

    /// The workers that answered the last status call.
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

    /// Workers that answered but refused this node's pass (another `cluster_secret`).
    pub fn refusing(&self) -> Vec<Url> {
        self.refusing.read().expect("not poisoned").clone()
    }

    /// Queries the other coordinators of the cluster run, as the workers
    /// last reported (the largest report: a worker hears from every
    /// coordinator that uses it).
    pub fn running_elsewhere(&self) -> usize {
        self.elsewhere.load(Ordering::Relaxed)
    }

    async fn refresh(&self, entries: &[String]) {
        let mut found = BTreeSet::new();
        for entry in entries {
            match tokio::net::lookup_host(entry.as_str()).await {
                Ok(addrs) => found.extend(addrs.map(url_of)),
                Err(e) => tracing::warn!("cluster: cannot resolve worker '{entry}': {e}"),
            }
        }
        let results = self.ask_all(found.iter().cloned()).await;
        let previously = self.live();
        let mut live = Vec::new();
        let mut refusing = Vec::new();
        let mut down = Vec::new();
        let mut elsewhere = 0;
        for (url, outcome) in results {
            match outcome {
                Ok(reply) => {
                    self.misses.lock().expect("not poisoned").remove(&url);
                    elsewhere = elsewhere.max(reply.running_elsewhere as usize);
                    stage_boards().update(reply.tasks);
                    live.push(url);
                }
                Err(e) if e.code() == tonic::Code::Unauthenticated => refusing.push(url),
                // A live worker too busy to answer in time (its cores saturated
                // by a query) stays in for a few rounds; one that is gone
                // (connection refused, reset) is left out at once.
                Err(e)
                    if e.code() == tonic::Code::DeadlineExceeded
                        && previously.contains(&url)
                        && self.missed(&url) < SLOW_ROUNDS =>
                {
                    live.push(url);
                }
                Err(_) => {
                    self.channels.forget(&url);
                    down.push(url.to_string());
                }
            }
        }
        self.elsewhere.store(elsewhere, Ordering::Relaxed);
        if previously != live || *self.refusing.read().expect("not poisoned") != refusing {
            tracing::info!(
                "cluster: {} worker(s) answer: [{}]{}{}",
                live.len(),
                listed(&live),
                if down.is_empty() {
                    String::new()
                } else {
                    format!("; not answering: [{}]", down.join(", "))
                },
                if refusing.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; refusing this node's task passes (their cluster_secret differs): [{}]",
                        listed(&refusing)
                    )
                }
            );
        }
        *self.known.write().expect("not poisoned") = found;
        *self.live.write().expect("not poisoned") = live;
        *self.refusing.write().expect("not poisoned") = refusing;
    }

    /// Makes the status call to each of `urls` (at most [`CONNECT_TIMEOUT`] each).
    async fn ask_all(
        &self,
        urls: impl Iterator<Item = Url>,
    ) -> Vec<(Url, Result<super::status::StatusReply, tonic::Status>)> {
        let request = StatusRequest {
            node: node_id().to_string(),
            running: crate::metrics::metrics().running.get().max(0) as u32,
        };
        let headers = self
            .pass
            .as_ref()
            .map(|p| p.headers(&Caller::named("tsql-node")))
            .unwrap_or_default();
        let checks = urls.map(|u| {
            let (request, headers) = (request.clone(), headers.clone());
            async move {
                let outcome = match self.channels.channel(&u).await {
                    Ok(channel) => {
                        tokio::time::timeout(CONNECT_TIMEOUT, ask(channel, headers, request))
                            .await
                            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer")))
                    }
                    Err(e) => Err(tonic::Status::unavailable(e.to_string())),
                };
                (u, outcome)
            }
        });
        futures::future::join_all(checks).await
    }

    /// The known workers that do not answer a status call now. (A TCP
    /// connect is not enough: the kernel still completes handshakes on the
    /// port of a process that is being killed.)
    pub async fn not_answering(&self) -> Vec<Url> {
        self.ask_all(self.known().into_iter())
            .await
            .into_iter()
            .filter(|(_, outcome)| {
                outcome
                    .as_ref()
                    .is_err_and(|e| e.code() != tonic::Code::Unauthenticated)
            })
            .map(|(url, _)| {
                self.channels.forget(&url);
                url
            })
            .collect()
    }

    /// Counts a late answer of `url`; the late answers in a row before this one.
    fn missed(&self, url: &Url) -> u32 {
        let mut misses = self.misses.lock().expect("not poisoned");
        let n = misses.entry(url.clone()).or_insert(0);
        *n += 1;
        *n - 1
    }
}

/// `urls` as one comma-separated list.
fn listed(urls: &[Url]) -> String {
    urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ")
}

fn url_of(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}")).expect("an address makes a URL")
}

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        let live = self.live();
        if live.is_empty() {
            let refusing = self.refusing();
            if !refusing.is_empty() {
                return Err(unavailable(format!(
                    "the workers [{}] refuse this node's task passes: their cluster_secret is not this node's; give every node the same secret",
                    listed(&refusing)
                )));
            }
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

/// Connections to workers: one per worker, reused by queries and status
/// calls; a connection that cannot be made in [`CONNECT_TIMEOUT`], or that
/// stops answering HTTP/2 pings, fails the query naming the worker instead
/// of hanging it.
#[derive(Clone, Default)]
pub struct Channels {
    open: Arc<Mutex<HashMap<Url, Channel>>>,
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
        let channel = self.channel(url).await.map_err(|e| {
            unavailable(format!(
                "worker {url} is unavailable ({e}); it is left out of new queries until it answers again"
            ))
        })?;
        Ok(create_worker_client(BoxCloneSyncChannel::new(channel)))
    }
}

impl Channels {
    /// The connection to `url`: the open one, else a new one.
    pub async fn channel(&self, url: &Url) -> std::result::Result<Channel, String> {
        if let Some(c) = self.open.lock().expect("not poisoned").get(url) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("not a URL: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        self.open
            .lock()
            .expect("not poisoned")
            .insert(url.clone(), channel.clone());
        Ok(channel)
    }

    /// Forgets the connection to `url` (after it failed).
    pub fn forget(&self, url: &Url) {
        self.open.lock().expect("not poisoned").remove(url);
    }
}
