//! Calls to the Cyoda service over HTTP, with every failure turned into an
//! [`UpstreamError`] that says what happened and what to do.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use tsql_entity_tables::{UpstreamError, UpstreamErrorKind};

/// An HTTP client bound to one service base URL (e.g. `http://cpm:8080/api`).
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// No header (a service in mock mode).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Authorization: Basic` with client id and secret.
    Basic(&'a str, &'a str),
}

impl Http {
    /// A client for `base`, giving each request `timeout` to answer.
    pub fn new(base: &str, timeout: Duration) -> Result<Http, UpstreamError> {
        // One process-wide TLS provider (ring, already used by the Flight server).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| {
                UpstreamError::new(
                    UpstreamErrorKind::Unavailable,
                    format!("cannot set up the HTTP client for {base}: {e}"),
                )
            })?;
        Ok(Http {
            client,
            base: base.trim_end_matches('/').to_string(),
            timeout,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and returns the body of a 2xx answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        credentials: Credentials<'_>,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Bytes, UpstreamError> {
        let url = self.url(path);
        let mut request = self.client.request(method.clone(), &url);
        if !query.is_empty() {
            let mut u = reqwest::Url::parse(&url).map_err(|e| {
                UpstreamError::new(
                    UpstreamErrorKind::Unavailable,
                    format!("the Cyoda url {url} is not a URL: {e}; check `url` in the [[source]]"),
                )
            })?;
            u.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
            request = self.client.request(method.clone(), u);
        }
        request = match credentials {
            Credentials::None => request,
            Credentials::Bearer(t) => request.bearer_auth(t),
            Credentials::Basic(id, secret) => request.basic_auth(id, Some(secret)),
        };
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let what = format!("{method} {url}");
        let started = std::time::Instant::now();
        let result = async {
            let response = request.send().await.map_err(|e| self.transport(&what, e))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| self.transport(&what, e))?;
            if status.is_success() {
                return Ok(body);
            }
            Err(status_error(&what, status, &body))
        }
        .await;
        tsql_entity_tables::upstream::record_upstream(
            &self.base,
            started.elapsed().as_secs_f64(),
            result.as_ref().err().map(|e| e.kind),
        );
        result
    }

    fn transport(&self, what: &str, e: reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            UpstreamError::new(
                UpstreamErrorKind::Timeout,
                format!(
                    "the Cyoda service did not answer {what} within {} s; it may be overloaded or down (raise `timeout` in the [[source]] if it is just slow)",
                    self.timeout.as_secs_f64()
                ),
            )
        } else {
            let mut cause = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                cause = format!("{cause}: {s}");
                source = s.source();
            }
            UpstreamError::new(
                UpstreamErrorKind::Unavailable,
                format!(
                    "cannot reach the Cyoda service ({what}): {cause}; check that it runs and that `url` in the [[source]] is right"
                ),
            )
        }
    }
}

/// The error for a non-2xx answer.
fn status_error(what: &str, status: StatusCode, body: &[u8]) -> UpstreamError {
    let detail = service_message(body);
    let kind = match status {
        StatusCode::UNAUTHORIZED => UpstreamErrorKind::Unauthenticated,
        StatusCode::FORBIDDEN => UpstreamErrorKind::PermissionDenied,
        StatusCode::NOT_FOUND => UpstreamErrorKind::NotFound,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => UpstreamErrorKind::Timeout,
        s if s.is_server_error() => UpstreamErrorKind::Unavailable,
        _ => UpstreamErrorKind::BadAnswer,
    };
    let hint = match kind {
        UpstreamErrorKind::Unauthenticated => {
            "; log in again (the token may have expired) or check the client id and secret"
        }
        UpstreamErrorKind::PermissionDenied => "; the identity may not read this",
        UpstreamErrorKind::Unavailable => "; the service failed, try again later",
        _ => "",
    };
    UpstreamError::new(
        kind,
        format!("the Cyoda service answered {what} with {status}: {detail}{hint}"),
    )
}

/// The human part of an error body: its `detail`/`message`/`error` field, else its start.
fn service_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["detail", "message", "error_description", "error", "title"] {
            if let Some(serde_json::Value::String(s)) = o.get(key) {
                return s.clone();
            }
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    if text.trim().is_empty() {
        "(no message)".into()
    } else {
        text.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_give_their_message() {
        let e = status_error(
            "GET x",
            StatusCode::UNAUTHORIZED,
            br#"{"type":"about:blank","title":"Unauthorized","detail":"token expired"}"#,
        );
        assert_eq!(e.kind, UpstreamErrorKind::Unauthenticated);
        assert!(e.message.contains("token expired"), "{}", e.message);
        let e = status_error("GET x", StatusCode::BAD_GATEWAY, b"");
        assert_eq!(e.kind, UpstreamErrorKind::Unavailable);
        assert!(e.message.contains("no message"));
    }
}
