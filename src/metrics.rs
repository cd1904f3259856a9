//! Prometheus metrics and health: `GET /metrics` (the Prometheus text
//! format, written by the `prometheus` crate), `GET /healthz` (the process
//! lives) and `GET /readyz` (it listens and its live sources answer).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every metric tsql exports.
pub struct Metrics {
    registry: Registry,
    /// Queries that ended, by outcome (finished, failed, cancelled, gone).
    pub queries: IntCounterVec,
    /// How long queries took, seconds.
    pub latency: Histogram,
    /// Queries running now.
    pub running: IntGauge,
    /// Queries waiting for their turn now.
    pub queued: IntGauge,
    /// Queries refused by admission (queue full).
    pub refused: IntCounter,
    /// Rows sent to clients.
    pub rows: IntCounter,
    /// Bytes of results sent to clients (in memory, before encoding).
    pub bytes: IntCounter,
    /// Failed logins and calls with bad credentials.
    pub auth_failures: IntCounter,
    /// Logins refused without checking them, because their client id or
    /// peer address failed too often (`login_failures_per_minute`).
    pub logins_throttled: IntCounter,
    /// Bytes the memory pool holds now.
    pub memory_reserved: IntGauge,
    /// The memory pool's limit, bytes.
    pub memory_limit: IntGauge,
    /// Bytes spilled to disk and still held by running queries.
    pub spill_bytes: IntGauge,
    /// Spill files running queries hold.
    pub spill_files: IntGauge,
    /// Bytes all running queries together may hold in spill files (`spill_limit`).
    pub spill_limit: IntGauge,
    /// Queries stopped because they could not spill: over `query_spill_limit`
    /// or `spill_limit`, or the spill disk was full.
    pub spill_exhausted: IntCounter,
    /// Workers of the cluster that answered the last health check.
    pub cluster_workers: IntGauge,
    /// Queries the other coordinators of the cluster run, as the workers last said.
    pub cluster_running_elsewhere: IntGauge,
    /// Queries this node planned over the cluster's workers.
    pub cluster_queries: IntCounter,
    /// Plan fragments this node ran as a worker.
    pub cluster_fragments: IntCounter,
    /// Requests to the worker port refused for want of a valid task pass.
    pub cluster_refused: IntCounter,
    /// Calls to upstream services (Cyoda, …), by source, and how long they took.
    pub upstream_latency: HistogramVec,
    /// Failed calls to upstream services, by source and kind.
    pub upstream_errors: IntCounterVec,
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let queries = IntCounterVec::new(
            Opts::new("tsql_queries_total", "Queries that ended, by outcome"),
            &["outcome"],
        )
        .expect("a valid metric");
        let latency = Histogram::with_opts(
            HistogramOpts::new("tsql_query_duration_seconds", "How long queries took").buckets(
                vec![
                    0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                ],
            ),
        )
        .expect("a valid metric");
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new(
                "tsql_upstream_request_duration_seconds",
                "Calls to upstream services by source, and how long they took",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["source"],
        )
        .expect("a valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "tsql_upstream_errors_total",
                "Failed calls to upstream services, by source and kind",
            ),
            &["source", "kind"],
        )
        .expect("a valid metric");
        let gauge = |n: &str, h: &str| IntGauge::new(n, h).expect("a valid metric");
        let counter = |n: &str, h: &str| IntCounter::new(n, h).expect("a valid metric");
        let m = Metrics {
            queries,
            latency,
            running: gauge("tsql_queries_running", "Queries running now"),
            queued: gauge("tsql_queries_queued", "Queries waiting for their turn now"),
            refused: counter(
                "tsql_queries_refused_total",
                "Queries refused because the queue was full",
            ),
            rows: counter("tsql_rows_sent_total", "Rows sent to clients"),
            bytes: counter("tsql_bytes_sent_total", "Bytes of results sent to clients"),
            auth_failures: counter(
                "tsql_auth_failures_total",
                "Logins and calls refused for their credentials",
            ),
            logins_throttled: counter(
                "tsql_logins_throttled_total",
                "Logins refused unchecked: their client id or address failed too often",
            ),
            memory_reserved: gauge(
                "tsql_memory_pool_reserved_bytes",
                "Bytes the query memory pool holds now",
            ),
            memory_limit: gauge(
                "tsql_memory_pool_limit_bytes",
                "The query memory pool's limit",
            ),
            spill_bytes: gauge(
                "tsql_spill_bytes",
                "Bytes spilled to disk and still held by running queries",
            ),
            spill_files: gauge("tsql_spill_files", "Spill files running queries hold"),
            spill_limit: gauge(
                "tsql_spill_limit_bytes",
                "Bytes all running queries together may hold in spill files (spill_limit)",
            ),
            spill_exhausted: counter(
                "tsql_spill_exhausted_total",
                "Queries stopped because they could not spill: over query_spill_limit or spill_limit, or the disk was full",
            ),
            cluster_workers: gauge(
                "tsql_cluster_workers",
                "Workers of the cluster that answered the last health check",
            ),
            cluster_running_elsewhere: gauge(
                "tsql_cluster_running_elsewhere",
                "Queries the other coordinators of the cluster run, as the workers last reported (counted by cluster_max_running_queries)",
            ),
            cluster_queries: counter(
                "tsql_cluster_distributed_queries_total",
                "Queries this node planned over the cluster's workers",
            ),
            cluster_fragments: counter(
                "tsql_cluster_fragments_total",
                "Plan fragments this node ran as a worker",
            ),
            cluster_refused: counter(
                "tsql_cluster_refused_total",
                "Requests to the worker port refused for want of a valid task pass",
            ),
            upstream_latency,
            upstream_errors,
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.upstream_latency.clone()))
            .expect("registers once");
        r.register(Box::new(m.upstream_errors.clone()))
            .expect("registers once");
        r.register(Box::new(m.queries.clone()))
            .expect("registers once");
        r.register(Box::new(m.latency.clone()))
            .expect("registers once");
        for g in [
            &m.running,
            &m.queued,
            &m.memory_reserved,
            &m.memory_limit,
            &m.spill_bytes,
            &m.spill_files,
            &m.spill_limit,
            &m.cluster_workers,
            &m.cluster_running_elsewhere,
        ] {
            r.register(Box::new(g.clone())).expect("registers once");
        }
        for c in [
            &m.refused,
            &m.rows,
            &m.bytes,
            &m.auth_failures,
            &m.logins_throttled,
            &m.spill_exhausted,
            &m.cluster_queries,
            &m.cluster_fragments,
            &m.cluster_refused,
        ] {
            r.register(Box::new(c.clone())).expect("registers once");
        }
        m
    }

    /// The Prometheus text of every metric.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("the text encoder writes to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// The process's metrics (the first call also starts counting upstream calls).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        tsql_entity_tables::upstream::observe_upstream(Box::new(|source, seconds, error| {
            let m = metrics();
            m.upstream_latency
                .with_label_values(&[source])
                .observe(seconds);
            if let Some(kind) = error {
                m.upstream_errors
                    .with_label_values(&[source, kind.label()])
                    .inc();
            }
        }));
        Metrics::new()
    })
}

/// Whether the server is ready: its live sources answer.
pub type ReadyCheck =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Serves `/metrics`, `/healthz` and `/readyz` on `listen` until the process ends.
/// `refresh` updates the gauges read at scrape time (memory).
pub async fn serve_metrics(
    listen: SocketAddr,
    ready: ReadyCheck,
    refresh: Arc<dyn Fn() + Send + Sync>,
) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        format!("cannot listen for metrics on {listen}: {e} (set metrics_listen, or \"\" for none)")
    })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (ready, refresh) = (ready.clone(), refresh.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (ready, refresh) = (ready.clone(), refresh.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                answer(req.uri().path(), ready, refresh).await,
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

async fn answer(
    path: &str,
    ready: ReadyCheck,
    refresh: Arc<dyn Fn() + Send + Sync>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    match path {
        "/metrics" => {
            refresh();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                metrics().text(),
            )
        }
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => match ready().await {
            Ok(()) => reply(StatusCode::OK, "text/plain", "ready\n".into()),
            Err(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}
