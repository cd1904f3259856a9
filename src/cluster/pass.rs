//! The task pass: who a plan fragment runs for, sealed with the cluster
//! secret. Every request to a worker carries one; a worker runs nothing
//! without a pass it can open, and reads upstream as the caller named in it.
//! The pass is encrypted and authenticated (ChaCha20-Poly1305 under a key
//! derived from `cluster_secret`), so the caller's Cyoda token inside it is
//! never readable on the wire, and nobody without the secret can make one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tsql_cyoda::Identity;

use crate::caller::{Caller, Owner};
use crate::seal::Sealer;

/// The request header that carries the pass.
pub const PASS_HEADER: &str = "x-tsql-task-pass";

/// What a pass is sealed for (a ticket never opens as a pass).
const PURPOSE: &str = "cluster task pass";

/// How long a pass is good for. Workers seal a fresh one for each hop, so
/// this bounds a pass copied off the wire, not a query's length.
pub const PASS_LIFETIME_SECONDS: i64 = 15 * 60;

/// Seals and opens passes with the cluster's key.
#[derive(Debug)]
pub struct PassKey {
    sealer: Sealer,
}

impl PassKey {
    /// The key of `cluster_secret` (at least 32 characters, the same on every node).
    pub fn from_secret(secret: &str) -> Result<PassKey, String> {
        Ok(PassKey {
            sealer: Sealer::from_secret_for("tsql cluster key v1", "cluster_secret", secret)?,
        })
    }

    /// A pass for `caller`, issued now.
    pub fn issue(&self, caller: &Caller) -> String {
        let upstream = caller.upstream.as_ref().map(|i| {
            json!({"token": i.token, "tenant": i.tenant, "subject": i.subject, "expires": i.expires})
        });
        let body = json!({
            "tenant": caller.owner.tenant,
            "subject": caller.owner.subject,
            "sees_all": caller.sees_all,
            "upstream": upstream,
            "issued": chrono::Utc::now().timestamp(),
        });
        URL_SAFE_NO_PAD.encode(self.sealer.seal(PURPOSE, body.to_string().as_bytes()))
    }

    /// Request headers carrying a fresh pass for `caller` (what every
    /// fragment sent on `caller`'s behalf is sent with).
    pub fn headers(&self, caller: &Caller) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        let pass = self
            .issue(caller)
            .parse()
            .expect("a pass is URL-safe base64, a valid header value");
        headers.insert(PASS_HEADER, pass);
        headers
    }

    /// The caller named by the pass in a request's [`PASS_HEADER`] (its
    /// text, when the header is there and is text).
    pub fn open_header(&self, value: Option<&str>) -> Result<Caller, String> {
        match value {
            Some(pass) => self.open(pass),
            None => Err("this is a tsql worker port: it runs plan fragments of its own cluster only (requests need a task pass sealed with the cluster_secret)".into()),
        }
    }

    /// The caller a pass names, if this key sealed it and it has not expired.
    pub fn open(&self, pass: &str) -> Result<Caller, String> {
        let refused = "the request carries no valid task pass of this cluster: every node must have the same `cluster_secret`";
        let sealed = URL_SAFE_NO_PAD.decode(pass.trim()).map_err(|_| refused)?;
        let plain = self.sealer.open(PURPOSE, &sealed).ok_or(refused)?;
        let v: Value = serde_json::from_slice(&plain).map_err(|_| refused)?;
        let issued = v["issued"].as_i64().ok_or(refused)?;
        let age = chrono::Utc::now().timestamp() - issued;
        if !(-60..=PASS_LIFETIME_SECONDS).contains(&age) {
            return Err(format!(
                "the task pass was issued {age} s ago and is good for {PASS_LIFETIME_SECONDS} s: check that the nodes' clocks agree"
            ));
        }
        let text = |k: &str| v[k].as_str().map(str::to_string);
        let upstream = match &v["upstream"] {
            Value::Object(u) => Some(Identity {
                token: u.get("token").and_then(Value::as_str).map(str::to_string),
                tenant: u
                    .get("tenant")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                subject: u
                    .get("subject")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                expires: u.get("expires").and_then(Value::as_i64),
            }),
            _ => None,
        };
        Ok(Caller {
            owner: Owner {
                tenant: text("tenant"),
                subject: text("subject").ok_or(refused)?,
            },
            upstream,
            sees_all: v["sees_all"].as_bool().unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_opens_only_with_the_same_secret_and_names_the_caller() {
        let key = PassKey::from_secret(&"s".repeat(40)).unwrap();
        let caller = Caller::of_identity(Identity {
            token: Some("tok.en.sig".into()),
            tenant: "t1".into(),
            subject: "ann".into(),
            expires: Some(1),
        });
        let pass = key.issue(&caller);
        assert!(
            !pass.contains("tok"),
            "the token is not readable in the pass"
        );
        assert_eq!(key.open(&pass).unwrap(), caller);
        let other = PassKey::from_secret(&"o".repeat(40)).unwrap();
        assert!(other.open(&pass).is_err());
        assert!(key.open("garbage").is_err());
        assert!(PassKey::from_secret("short").is_err());
        let named = Caller::named("bob");
        assert_eq!(key.open(&key.issue(&named)).unwrap(), named);
    }
}
