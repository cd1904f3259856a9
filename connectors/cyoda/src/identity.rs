//! Who a query runs as upstream: a Cyoda access token (a JWT) and the tenant
//! it belongs to (its `caas_org_id` claim). Tokens are verified against the
//! service's JWKS before tsql forwards them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::Value;
use tsql_entity_tables::{UpstreamError, UpstreamErrorKind};

use crate::http::{Credentials, Http};

/// The identity a query reads with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Access token sent upstream, if any (none for a service in mock mode).
    pub token: Option<String>,
    /// Tenant (`caas_org_id`); every cache is keyed by it.
    pub tenant: String,
    /// Who, for logs and query ownership (`sub`).
    pub subject: String,
    /// When the token expires (Unix seconds), if it does.
    pub expires: Option<i64>,
}

/// Verifies Cyoda access tokens (RS256/384/512) against the service's JWKS,
/// cached and refreshed when a token names an unknown key.
#[derive(Debug)]
pub struct TokenVerifier {
    http: Http,
    keys: Mutex<HashMap<String, (Vec<u8>, Vec<u8>)>>,
    refreshed: Mutex<Option<Instant>>,
    /// Key ids the JWKS did not have, and when that was seen.
    missed: Mutex<HashMap<String, Instant>>,
}

/// A key id the JWKS did not have is not looked up again for this long.
const MISSED_KID_FOR: Duration = Duration::from_secs(10);

/// At most one JWKS download per this long (tokens naming ever new key ids
/// cannot make tsql hammer the service).
const JWKS_REFRESH_GAP: Duration = Duration::from_millis(250);

fn unauthenticated(msg: impl Into<String>) -> UpstreamError {
    UpstreamError::new(UpstreamErrorKind::Unauthenticated, msg)
}

fn b64url(part: &str) -> Result<Vec<u8>, UpstreamError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| unauthenticated("the token is not a JWT (a part is not base64url)"))
}

impl TokenVerifier {
    /// A verifier for the service behind `http`.
    pub fn new(http: Http) -> Self {
        TokenVerifier {
            http,
            keys: Mutex::new(HashMap::new()),
            refreshed: Mutex::new(None),
            missed: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the JWKS again; false when it was read moments ago and was not read now.
    async fn refresh(&self) -> Result<bool, UpstreamError> {
        {
            let mut last = self.refreshed.lock().expect("not poisoned");
            if last.is_some_and(|t| t.elapsed() < JWKS_REFRESH_GAP) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        let body = self
            .http
            .call(
                Method::GET,
                "/.well-known/jwks.json",
                &[],
                Credentials::None,
                None,
            )
            .await?;
        let bad = |why: &str| {
            UpstreamError::new(
                UpstreamErrorKind::BadAnswer,
                format!(
                    "the Cyoda service's JWKS ({}) {why}",
                    self.http.url("/.well-known/jwks.json")
                ),
            )
        };
        let doc: Value = serde_json::from_slice(&body).map_err(|_| bad("is not JSON"))?;
        let keys = doc["keys"]
            .as_array()
            .ok_or_else(|| bad("has no \"keys\" array"))?;
        let mut found = HashMap::new();
        for k in keys {
            if k["kty"] != "RSA" {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) =
                (k["kid"].as_str(), k["n"].as_str(), k["e"].as_str())
            else {
                continue;
            };
            found.insert(kid.to_string(), (b64url(n)?, b64url(e)?));
        }
        *self.keys.lock().expect("not poisoned") = found;
        Ok(true)
    }

    fn key(&self, kid: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        self.keys.lock().expect("not poisoned").get(kid).cloned()
    }

    /// Checks `token`'s signature, expiry and tenant claim.
    pub async fn verify(&self, token: &str) -> Result<Identity, UpstreamError> {
        let parts: Vec<&str> = token.trim().split('.').collect();
        let [header, payload, signature] = parts[..] else {
            return Err(unauthenticated(
                "the token is not a JWT (it needs three dot-separated parts)",
            ));
        };
        let head: Value = serde_json::from_slice(&b64url(header)?)
            .map_err(|_| unauthenticated("the token's header is not JSON"))?;
        let algorithm: &'static ring::signature::RsaParameters = match head["alg"].as_str() {
            Some("RS256") => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            Some("RS384") => &ring::signature::RSA_PKCS1_2048_8192_SHA384,
            Some("RS512") => &ring::signature::RSA_PKCS1_2048_8192_SHA512,
            other => {
                return Err(unauthenticated(format!(
                    "the token's algorithm {} is not accepted (RS256, RS384 or RS512)",
                    other.unwrap_or("(none)")
                )));
            }
        };
        let kid = head["kid"].as_str().unwrap_or("");
        let unknown = || {
            unauthenticated(format!(
                "the token was signed with key '{kid}', which the Cyoda service does not publish: it is forged or from another service"
            ))
        };
        let key = match self.key(kid) {
            Some(k) => k,
            None => {
                let recently_missed = self
                    .missed
                    .lock()
                    .expect("not poisoned")
                    .get(kid)
                    .is_some_and(|t| t.elapsed() < MISSED_KID_FOR);
                if recently_missed {
                    return Err(unknown());
                }
                // A key the service may have started signing with since.
                let fetched = self.refresh().await?;
                match self.key(kid) {
                    Some(k) => k,
                    None if !fetched => return Err(unknown()),
                    None => {
                        let mut missed = self.missed.lock().expect("not poisoned");
                        if missed.len() > 1000 {
                            missed.retain(|_, t| t.elapsed() < MISSED_KID_FOR);
                        }
                        missed.insert(kid.to_string(), Instant::now());
                        return Err(unknown());
                    }
                }
            }
        };
        let signed = &token.trim().as_bytes()[..header.len() + 1 + payload.len()];
        let (n, e) = key;
        ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(algorithm, signed, &b64url(signature)?)
            .map_err(|_| {
                unauthenticated("the token's signature is not valid: it is forged or altered")
            })?;
        let claims: Value = serde_json::from_slice(&b64url(payload)?)
            .map_err(|_| unauthenticated("the token's claims are not JSON"))?;
        let now = chrono::Utc::now().timestamp();
        let expires = claims["exp"].as_i64();
        if expires.is_some_and(|exp| exp <= now) {
            return Err(unauthenticated(
                "the token has expired: log in again (a client id and secret get a fresh one)",
            ));
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + 60) {
            return Err(unauthenticated("the token is not valid yet"));
        }
        let tenant = claims["caas_org_id"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
            unauthenticated("the token has no caas_org_id (tenant) claim; use a token issued by the Cyoda service")
        })?;
        Ok(Identity {
            token: Some(token.trim().to_string()),
            tenant: tenant.to_string(),
            subject: claims["sub"].as_str().unwrap_or("").to_string(),
            expires,
        })
    }

    /// Exchanges a client id and secret for an access token (client credentials grant).
    pub async fn client_token(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<String, UpstreamError> {
        let body = self
            .http
            .call(
                Method::POST,
                "/oauth/token",
                &[],
                Credentials::Basic(client_id, secret),
                Some((
                    "application/x-www-form-urlencoded",
                    b"grant_type=client_credentials".to_vec(),
                )),
            )
            .await
            .map_err(|e| match e.kind {
                UpstreamErrorKind::Unauthenticated | UpstreamErrorKind::BadAnswer | UpstreamErrorKind::NotFound => {
                    unauthenticated(format!(
                        "the Cyoda service refused client '{client_id}': wrong client id or secret ({})",
                        e.message
                    ))
                }
                _ => e,
            })?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            UpstreamError::new(
                UpstreamErrorKind::BadAnswer,
                "the Cyoda token endpoint did not answer JSON",
            )
        })?;
        answer["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                UpstreamError::new(
                    UpstreamErrorKind::BadAnswer,
                    "the Cyoda token endpoint's answer has no access_token",
                )
            })
    }
}
