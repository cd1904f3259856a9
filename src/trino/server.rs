//! The Trino client protocol over HTTP: `POST /v1/statement`, its
//! `nextUri` pages (`GET`) and cancellation (`DELETE`), `GET /v1/info`.
//! Callers log in with HTTP Basic (checked like Flight SQL logins); without
//! a password only when `trino_allow_insecure` is set (or on the demo
//! data), trusting `X-Trino-User`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::errors::{codes, error_json};
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

/// A query nobody asked about for this long is cancelled and forgotten.
const ABANDONED_AFTER: Duration = Duration::from_secs(300);
/// An ended query is forgotten this long after its last page was asked for.
const ENDED_KEPT: Duration = Duration::from_secs(60);

struct FrontEnd {
    serving: Serving,
    options: TrinoOptions,
    queries: Mutex<HashMap<String, Arc<TrinoQuery>>>,
    sequence: AtomicU64,
}

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
        sequence: AtomicU64::new(0),
    });
    let reaper = front.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reaper.forget_idle();
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let front = front.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
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

fn header<'a>(req: &'a Request<hyper::body::Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl FrontEnd {
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
                    .basic_caller(name, password)
                    .await
                    .map_err(|s| unauthorized(s.message()))
            }
            Some(auth) if auth.starts_with("Bearer ") => self
                .serving
                .auth
                .bearer(auth[7..].trim())
                .await
                .map_err(|s| unauthorized(s.message())),
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
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}")
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
                let query = self.queries.lock().expect("not poisoned").get(*id).cloned();
                let Some(query) = query.filter(|q| q.slug == *slug) else {
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
        let (default_catalog, default_schema) = self.serving.engine.defaults_for(&caller.name);
        let catalog = header(&req, "x-trino-catalog").map_or(default_catalog, str::to_string);
        let schema = header(&req, "x-trino-schema").map_or(default_schema, str::to_string);
        let base = self.base(&req);
        let prepared = header(&req, "x-trino-prepared-statement")
            .map(prepared_header)
            .unwrap_or_default();
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
        let n = self.sequence.fetch_add(1, Ordering::Relaxed) % 100_000;
        let id = format!(
            "{}_{n:05}_tsql0",
            chrono::Utc::now().format("%Y%m%d_%H%M%S")
        );
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
        let mut query = TrinoQuery::new(id.clone(), caller, catalog, schema, sql);
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

fn unauthorized(message: &str) -> Reply {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header("www-authenticate", "Basic realm=\"tsql\"")
        .header("www-authenticate", "Bearer realm=\"tsql\"")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(format!("{message}\n"))))
        .expect("a valid response")
}
