//! `tsql probe URL`: a plain HTTP GET for health checks, so a container
//! image without a shell or curl can still probe `/readyz` and `/healthz`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What an HTTP server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The body, as text (invalid UTF-8 replaced).
    pub body: String,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The host, port and path of an `http://` URL.
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "cannot probe '{url}': give an http:// URL such as http://127.0.0.1:9464/readyz (https is not supported; probe the plain-HTTP metrics port)"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("cannot probe '{url}': the port '{p}' is not a number"))?;
            (h, port)
        }
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("cannot probe '{url}': it names no host"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// GETs `url` (HTTP/1.0, so the answer is never chunked), all within `timeout`.
pub async fn get(url: &str, timeout: Duration) -> Result<Answer, String> {
    let (host, port, path) = parse_url(url)?;
    let work = async {
        let target = format!(
            "{}:{port}",
            host.trim_start_matches('[').trim_end_matches(']')
        );
        let mut stream = tokio::net::TcpStream::connect(&target)
            .await
            .map_err(|e| format!("cannot connect to {target}: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: tsql-probe\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send the request to {target}: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("cannot read the answer of {target}: {e}"))?;
        parse_answer(&raw).ok_or_else(|| format!("{target} did not answer with HTTP"))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer from {url} within {} s", timeout.as_secs_f64()))?
}

/// The status and body of a raw HTTP/1.x answer.
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(Answer {
        status,
        body: String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read() {
        assert_eq!(
            parse_url("http://127.0.0.1:9464/readyz").unwrap(),
            ("127.0.0.1".into(), 9464, "/readyz".into())
        );
        assert_eq!(
            parse_url("http://tsql.svc").unwrap(),
            ("tsql.svc".into(), 80, "/".into())
        );
        assert_eq!(
            parse_url("http://[::1]:8080/v1/info").unwrap(),
            ("[::1]".into(), 8080, "/v1/info".into())
        );
        assert!(
            parse_url("https://h/readyz")
                .unwrap_err()
                .contains("http://")
        );
        assert!(
            parse_url("http://h:x/")
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[tokio::test]
    async fn answers_are_read_and_judged() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for answer in [
                "HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nready\n",
                "HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready: shutting down\n",
            ] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let url = format!("http://{addr}/readyz");
        let ok = get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!((ok.status, ok.body.as_str()), (200, "ready\n"));
        assert!(ok.is_success());
        let down = get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(down.status, 503);
        assert!(!down.is_success());
        assert!(down.body.contains("shutting down"));
        // Nothing listens there any more.
        assert!(get(&url, Duration::from_secs(5)).await.is_err());
    }
}
