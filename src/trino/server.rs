//! The Trino client protocol over HTTP: `POST /v1/statement`, its
//! `nextUri` pages (`GET`) and cancellation (`DELETE`), `GET /v1/info`.
//! While the server shuts down, new statements get 503 (Trino clients
//! retry it) and the pages of running queries are still served.
//! Callers log in with HTTP Basic (checked like Flight SQL logins); without
//! a password only when `trino_allow_insecure` is set (or on the demo
//! data), trusting `X-Trino-User`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::errors::{codes, error_json};
use super::headers::{ClientCapabilities, session_properties};
use super::query::{PageError, TrinoQuery};
use super::statements::{Statement, interpret, prepared_header};
use crate::Caller;
use crate::serving::Serving;

/// How the Trino front end serves.
#[derive(Debug, Clone)]
pub struct TrinoOptions {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Accept callers named only by `X-Trino-User`, without a password.
    pub allow_insecure: bool,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A TLS acceptor for the PEM certificate chain and key.
fn acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| format!("cannot read TLS certificate {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read TLS key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup failed: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("cannot use the TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Checks that `cert` and `key` can be read and make a TLS identity (the
/// check `serve` makes before it starts; `check-config` makes it too).
pub fn check_tls(cert: &std::path::Path, key: &std::path::Path) -> Result<(), String> {
    acceptor(cert, key).map(|_| ())
}

/// A query nobody asked about for this long is cancelled and forgotten.
const ABANDONED_AFTER: Duration = Duration::from_secs(300);
/// An ended query is forgotten this long after its last page was asked for.
const ENDED_KEPT: Duration = Duration::from_secs(60);

struct FrontEnd {
    serving: Serving,
    options: TrinoOptions,
    queries: Mutex<HashMap<String, Arc<TrinoQuery>>>,
}

/// The address a request came from (failed logins are counted per address).
#[derive(Debug, Clone, Copy)]
struct Peer(std::net::IpAddr);

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

fn text(status: StatusCode, message: &str) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(format!("{message}\n"))))
        .expect("a valid response")
}

/// Starts the Trino front end on `options.listen`; returns the address bound.
pub async fn serve_trino(serving: Serving, options: TrinoOptions) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen for Trino clients on {}: {e} (set trino_listen, or \"\" for none)",
                options.listen
            )
        })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = match &options.tls {
        Some((cert, key)) => Some(acceptor(cert, key)?),
        None => None,
    };
    let front = Arc::new(FrontEnd {
        serving,
        options,
        queries: Mutex::new(HashMap::new()),
    });
    let counted = Arc::downgrade(&front);
    front.serving.shutdown.count_busy_with(Box::new(move || {
        counted.upgrade().map_or(0, |f| f.not_started())
    }));
    let reaper = front.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reaper.forget_idle();
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let front = front.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(Peer(peer.ip()));
                        let front = front.clone();
                        async move { Ok::<_, std::convert::Infallible>(front.answer(req).await) }
                    });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(tls) => {
                        // A client that fails the handshake just goes away.
                        if let Ok(stream) = tls.accept(stream).await {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    Ok(local)
}

/// The scheme a proxy in front (nginx-ingress ending TLS) says the client
/// used, from `X-Forwarded-Proto` (its first value; only `http` or `https`),
/// so that `nextUri` points where the client can reach.
fn forwarded_scheme(value: Option<&str>) -> Option<&'static str> {
    match value?
        .split(',')
        .next()?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "https" => Some("https"),
        "http" => Some("http"),
        _ => None,
    }
}

fn header<'a>(req: &'a Request<hyper::body::Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Every value of header `name` (a client may send it more than once), joined by commas.
fn header_values(req: &Request<hyper::body::Incoming>, name: &str) -> String {
    let values: Vec<&str> = req
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.join(",")
}

/// Reads the session properties (`X-Trino-Session`) and capabilities
/// (`X-Trino-Client-Capabilities`) a client sends with every statement.
/// tsql acts on one session property, `distributed` (returned); it answers
/// every client in one shape, so — as Trino clients expect of a server
/// that accepted their `SET SESSION` — no other property fails the
/// statement; they are logged at debug level.
fn client_state(req: &Request<hyper::body::Incoming>) -> Option<String> {
    let properties = session_properties(&header_values(req, "x-trino-session"));
    let capabilities =
        ClientCapabilities::parse(&header_values(req, "x-trino-client-capabilities"));
    if !properties.is_empty() || capabilities != ClientCapabilities::default() {
        let names: Vec<&str> = properties.iter().map(|(n, _)| n.as_str()).collect();
        tracing::debug!(
            ?names,
            ?capabilities,
            "Trino session properties and client capabilities (tsql acts on `distributed` only)"
        );
    }
    properties
        .into_iter()
        .find(|(n, _)| n == "distributed")
        .map(|(_, v)| v)
}

impl FrontEnd {
    /// Queries submitted whose first page was not asked for yet (a
    /// shutdown waits for them; started ones are in the query log).
    fn not_started(&self) -> usize {
        let queries = self.queries.lock().expect("not poisoned");
        queries.values().filter(|q| q.not_started()).count()
    }

    fn forget_idle(&self) {
        let mut queries = self.queries.lock().expect("not poisoned");
        queries.retain(|_, q| {
            let idle = q.idle();
            let keep = if q.ended() {
                idle < ENDED_KEPT
            } else {
                idle < ABANDONED_AFTER
            };
            if !keep {
                q.cancel();
            }
            keep
        });
    }

    async fn caller(&self, req: &Request<hyper::body::Incoming>) -> Result<Caller, Reply> {
        let user = header(req, "x-trino-user").unwrap_or("").to_string();
        let peer = req.extensions().get::<Peer>().map(|p| p.0);
        match header(req, "authorization") {
            Some(auth) if auth.starts_with("Basic ") => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth[6..].trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                let Some((name, password)) = decoded.as_deref().and_then(|t| t.split_once(':'))
                else {
                    return Err(unauthorized(
                        "the Basic credentials are not user:password in base64",
                    ));
                };
                self.serving
                    .auth
                    .basic_caller(name, password, peer)
                    .await
                    .map_err(|s| refused(&s))
            }
            Some(auth) if auth.starts_with("Bearer ") => self
                .serving
                .auth
                .bearer(auth[7..].trim())
                .await
                .map_err(|s| refused(&s)),
            Some(_) => Err(unauthorized(
                "unsupported authorization scheme: use Basic (user and password) or Bearer (a Cyoda token)",
            )),
            None if self.options.allow_insecure && !user.is_empty() => {
                Ok(self.serving.auth.caller_named(&user))
            }
            None => Err(unauthorized(
                "no credentials: connect with a user and password (Trino clients send them only over HTTPS: give the server tls_cert and tls_key), or set trino_allow_insecure = true to trust X-Trino-User",
            )),
        }
    }

    fn base(&self, req: &Request<hyper::body::Incoming>) -> String {
        let host = header(req, "host")
            .map(str::to_string)
            .unwrap_or_else(|| self.options.listen.to_string());
        let own = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!(
            "{}://{host}",
            forwarded_scheme(header(req, "x-forwarded-proto")).unwrap_or(own)
        )
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Reply {
        let path = req.uri().path().to_string();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method().clone(), parts.as_slice()) {
            (Method::GET, ["v1", "info"]) => reply(
                StatusCode::OK,
                &json!({
                    "nodeVersion": {"version": crate::trino_functions::server_version()},
                    "environment": "tsql",
                    "coordinator": true,
                    "starting": false,
                    "uptime": "0.00s",
                }),
            ),
            (Method::POST, ["v1", "statement"]) => self.submit(req).await,
            (method, ["v1", "statement", "executing" | "queued", id, slug, token]) => {
                // Every page and cancel is authenticated, and only the
                // query's owner gets it: anyone else's is "not known", as
                // one that never existed.
                let caller = match self.caller(&req).await {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let query = self.queries.lock().expect("not poisoned").get(*id).cloned();
                let Some(query) =
                    query.filter(|q| q.slug == *slug && q.caller.owner == caller.owner)
                else {
                    return text(
                        StatusCode::NOT_FOUND,
                        &format!("query {id} is not known (it ended or was abandoned)"),
                    );
                };
                if method == Method::DELETE {
                    query.cancel();
                    return Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                        .expect("a valid response");
                }
                let Ok(token) = token.parse::<u64>() else {
                    return text(StatusCode::NOT_FOUND, "the page token is not a number");
                };
                let base = self.base(&req);
                match query.page(&self.serving, &base, token).await {
                    Ok(page) => Response::builder()
                        .status(StatusCode::OK)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(page.as_str().to_owned())))
                        .expect("a valid response"),
                    Err(PageError::Gone) => text(
                        StatusCode::GONE,
                        &format!("page {token} of query {id} is gone: pages are read in order"),
                    ),
                }
            }
            _ => text(StatusCode::NOT_FOUND, &format!("no such resource: {path}")),
        }
    }

    async fn submit(&self, req: Request<hyper::body::Incoming>) -> Reply {
        let caller = match self.caller(&req).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        if self.serving.shutdown.is_draining() {
            // Trino clients retry a 503 (behind a load balancer: on another replica).
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::shutdown::SHUTTING_DOWN,
            );
            r.headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
            return r;
        }
        let (default_catalog, default_schema) = self.serving.engine.defaults_for(&caller.owner);
        let catalog = header(&req, "x-trino-catalog").map_or(default_catalog, str::to_string);
        let schema = header(&req, "x-trino-schema").map_or(default_schema, str::to_string);
        let base = self.base(&req);
        let prepared = header(&req, "x-trino-prepared-statement")
            .map(prepared_header)
            .unwrap_or_default();
        let distributed = client_state(&req);
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the statement: {e}"),
                );
            }
        };
        let Ok(sql) = String::from_utf8(body.to_vec()) else {
            return text(StatusCode::BAD_REQUEST, "the statement is not UTF-8 text");
        };
        if sql.trim().is_empty() {
            return text(StatusCode::BAD_REQUEST, "SQL statement is empty");
        }
        let id = crate::queries::new_trino_query_id();
        let interpreted = match crate::serving::kill_request(&sql) {
            Some(target) => self
                .serving
                .kill(&caller, &target)
                .map(|()| Statement::Session {
                    update_type: "CALL",
                    headers: vec![],
                }),
            None => interpret(&sql, &prepared),
        }
        .map_err(|message| {
            let kind = if message.contains("not found") {
                codes::NOT_FOUND
            } else {
                codes::GENERIC_USER_ERROR
            };
            (kind, message)
        });
        let interpreted = match interpreted {
            Ok(statement) => {
                self.named_exist(&caller, statement, &catalog, &schema)
                    .await
            }
            Err(e) => Err(e),
        };
        let mut describe = None;
        let sql = match interpreted {
            Ok(Statement::Query(sql)) => sql,
            Ok(Statement::Describe { output, sql }) => {
                describe = Some(output);
                sql
            }
            Ok(Statement::Session {
                update_type,
                headers,
            }) => {
                let mut r = reply(
                    StatusCode::OK,
                    &json!({
                        "id": id, "infoUri": format!("{base}/ui/query.html?{id}"),
                        "columns": [], "updateType": update_type,
                        "stats": super::query::stats_json("FINISHED", 0, 0),
                        "warnings": [],
                    }),
                );
                for (name, value) in headers {
                    if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
                        r.headers_mut().append(name, v);
                    }
                }
                return r;
            }
            Err((kind, message)) => {
                return reply(
                    StatusCode::OK,
                    &json!({
                        "id": id, "infoUri": format!("{base}/ui/query.html?{id}"),
                        "stats": super::query::stats_json("FAILED", 0, 0),
                        "error": error_json(kind, &message),
                        "warnings": [],
                    }),
                );
            }
        };
        let mut query =
            TrinoQuery::new(id.clone(), caller, catalog, schema, sql).distributed(distributed);
        if let Some(output) = describe {
            query = query.describing(output);
        }
        let query = Arc::new(query);
        let weak = Arc::downgrade(&query);
        query.stop_with(self.serving.stoppers.register(&id, move || {
            if let Some(q) = weak.upgrade() {
                q.cancel();
            }
        }));
        let page = query.queued_page(&base);
        self.queries.lock().expect("not poisoned").insert(id, query);
        reply(StatusCode::OK, &page)
    }
}

impl FrontEnd {
    /// `statement` with SHOW/DESCRIBE as the query they stand for, once the
    /// catalog and schema it uses or shows are known to exist for `caller`
    /// (Trino's CATALOG_NOT_FOUND / SCHEMA_NOT_FOUND otherwise).
    async fn named_exist(
        &self,
        caller: &Caller,
        statement: Statement,
        catalog: &str,
        schema: &str,
    ) -> Result<Statement, (super::errors::Kind, String)> {
        let mut table = None;
        let (statement, target) = match statement {
            Statement::Query(sql) => match super::show::rewrite(&sql, catalog, schema) {
                Some(shown) => {
                    table = shown.table;
                    (Statement::Query(shown.sql), shown.schema)
                }
                None => (Statement::Query(sql), None),
            },
            Statement::Session {
                update_type: "USE",
                headers,
            } => {
                let set = |name: &str, current: &str| {
                    headers
                        .iter()
                        .find(|(h, _)| *h == name)
                        .map_or(current.to_string(), |(_, v)| v.clone())
                };
                let target = (
                    set("X-Trino-Set-Catalog", catalog),
                    set("X-Trino-Set-Schema", schema),
                );
                (
                    Statement::Session {
                        update_type: "USE",
                        headers,
                    },
                    Some(target),
                )
            }
            other => (other, None),
        };
        if let Some((c, s)) = target {
            let engine = self
                .serving
                .engine
                .for_caller_reading(caller, Some(&[c.clone()]))
                .await;
            if let Err(e) = engine.check_defaults(&c, &s) {
                return Err((super::errors::kind_of(&e), e.to_string()));
            }
            if let Some(t) = table {
                let reference =
                    datafusion::common::TableReference::full(c.as_str(), s.as_str(), t.as_str());
                if !engine.context().table_exist(reference).unwrap_or(false) {
                    return Err((
                        super::errors::codes::TABLE_NOT_FOUND,
                        format!("Table '{c}.{s}.{t}' does not exist: SHOW TABLES lists the tables"),
                    ));
                }
            }
        }
        Ok(statement)
    }
}

/// A refused login as its HTTP answer: 429 when logins from there are
/// throttled, else 401.
fn refused(status: &tonic::Status) -> Reply {
    if status.code() == tonic::Code::ResourceExhausted {
        crate::metrics::metrics().auth_failures.inc();
        return Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header("retry-after", "60")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(format!("{}\n", status.message()))))
            .expect("a valid response");
    }
    unauthorized(status.message())
}

fn unauthorized(message: &str) -> Reply {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header("www-authenticate", "Basic realm=\"tsql\"")
        .header("www-authenticate", "Bearer realm=\"tsql\"")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(format!("{message}\n"))))
        .expect("a valid response")
}
