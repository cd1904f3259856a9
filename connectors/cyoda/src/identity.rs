//! Who a query runs as upstream: a Cyoda access token (a JWT) and the tenant
//! it belongs to (its `caas_org_id` claim). Tokens are verified against the
//! service's JWKS before tsql forwards them.
//!
//! A token is accepted only when all of this holds:
//! - it is signed with a key of the service's JWKS (`kid`), with the one
//!   algorithm the JWKS publishes for that key (its `alg`; RS256 when the key
//!   names none) — never `none`, HMAC (`HS*`) or another RSA hash;
//! - `exp` is present and an integer (Unix seconds) in the future; `nbf`, if
//!   present, is an integer and not more than a minute ahead;
//! - `iss` is the service's issuer: the configured `issuer`, else the `iss` of
//!   the latest token the service issued to tsql at `/oauth/token`, else
//!   [`DEFAULT_ISSUER`] (what cyoda-go puts in its tokens unless told otherwise);
//! - `caas_org_id` (the tenant) is a non-empty string.

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
    /// When the token expires (Unix seconds); always set for a verified token,
    /// none for a service in mock mode.
    pub expires: Option<i64>,
}

/// The issuer expected before the service has issued tsql a token and when
/// the source names none: cyoda-go's default `CYODA_JWT_ISSUER`.
pub const DEFAULT_ISSUER: &str = "cyoda";

/// A signing key from the service's JWKS.
#[derive(Debug, Clone)]
struct Key {
    n: Vec<u8>,
    e: Vec<u8>,
    /// The one algorithm tokens signed with this key may name.
    alg: &'static str,
}

/// Verifies Cyoda access tokens against the service's JWKS (cached and read
/// again when a token names an unknown key): signature and algorithm, expiry,
/// issuer and tenant (see the module documentation for the exact rules).
#[derive(Debug)]
pub struct TokenVerifier {
    http: Http,
    keys: Mutex<HashMap<String, Key>>,
    refreshed: Mutex<Option<Instant>>,
    /// Key ids the JWKS did not have, and when that was seen.
    missed: Mutex<HashMap<String, Instant>>,
    /// The issuer from the configuration, if it names one.
    configured_issuer: Option<String>,
    /// The `iss` of the latest token the service issued to tsql.
    learned_issuer: Mutex<Option<String>>,
}

/// A key id the JWKS did not have is not looked up again for this long.
const MISSED_KID_FOR: Duration = Duration::from_secs(10);

/// At most one JWKS download per this long (tokens naming ever new key ids
/// cannot make tsql hammer the service).
const JWKS_REFRESH_GAP: Duration = Duration::from_millis(250);

/// A token whose `nbf` is at most this far ahead is accepted (clock skew).
const NOT_BEFORE_SKEW_SECONDS: i64 = 60;

fn unauthenticated(msg: impl Into<String>) -> UpstreamError {
    UpstreamError::new(UpstreamErrorKind::Unauthenticated, msg)
}

fn b64url(part: &str) -> Result<Vec<u8>, UpstreamError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| unauthenticated("the token is not a JWT (a part is not base64url)"))
}

/// The RSA verification parameters of a JWS algorithm name, for the
/// algorithms a Cyoda service may publish (RSASSA-PKCS1-v1_5).
fn rsa_algorithm(alg: &str) -> Option<&'static ring::signature::RsaParameters> {
    match alg {
        "RS256" => Some(&ring::signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Some(&ring::signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Some(&ring::signature::RSA_PKCS1_2048_8192_SHA512),
        _ => None,
    }
}

/// The signing keys of a JWKS document by key id. Keys that are not RSA, are
/// not for signatures (`use` other than `sig`) or publish an algorithm tsql
/// cannot verify are left out.
fn parse_jwks(doc: &Value) -> Result<HashMap<String, Key>, String> {
    let keys = doc["keys"]
        .as_array()
        .ok_or_else(|| "has no \"keys\" array".to_string())?;
    let mut found = HashMap::new();
    for k in keys {
        if k["kty"] != "RSA" || !(k["use"].is_null() || k["use"] == "sig") {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (k["kid"].as_str(), k["n"].as_str(), k["e"].as_str())
        else {
            continue;
        };
        let alg = match &k["alg"] {
            Value::Null => "RS256",
            Value::String(a) => match a.as_str() {
                "RS256" => "RS256",
                "RS384" => "RS384",
                "RS512" => "RS512",
                _ => continue,
            },
            _ => continue,
        };
        let part = |s: &str| {
            b64url(s).map_err(|_| format!("has key '{kid}' whose n or e is not base64url"))
        };
        found.insert(
            kid.to_string(),
            Key {
                n: part(n)?,
                e: part(e)?,
                alg,
            },
        );
    }
    Ok(found)
}

/// A NumericDate claim (RFC 7519): none when absent (or null), its seconds
/// when an integer, else what is wrong with it.
fn numeric_date(claims: &Value, name: &str) -> Result<Option<i64>, String> {
    match &claims[name] {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("is {n}, not a whole number of seconds")),
        Value::String(_) => Err("is a string, not a number".into()),
        _ => Err("is not a number".into()),
    }
}

/// What a token says once its signature, algorithm and dates are checked:
/// the identity, and the issuer it names (checked by the caller).
struct Checked {
    identity: Identity,
    issuer: String,
}

impl TokenVerifier {
    /// A verifier for the service behind `http`; `issuer` is the configured
    /// issuer, if any (else the service's own tokens teach it, see the module
    /// documentation).
    pub fn new(http: Http, issuer: Option<String>) -> Self {
        TokenVerifier {
            http,
            keys: Mutex::new(HashMap::new()),
            refreshed: Mutex::new(None),
            missed: Mutex::new(HashMap::new()),
            configured_issuer: issuer,
            learned_issuer: Mutex::new(None),
        }
    }

    /// The issuer tokens must name now, and where that rule comes from.
    pub fn issuer(&self) -> (String, &'static str) {
        if let Some(i) = &self.configured_issuer {
            return (i.clone(), "the `issuer` of the cyoda [[source]]");
        }
        match self.learned_issuer.lock().expect("not poisoned").as_ref() {
            Some(i) => (i.clone(), "the issuer of the tokens the service issues"),
            None => (
                DEFAULT_ISSUER.to_string(),
                "cyoda-go's default; if the service issues tokens with another `iss`, set `issuer` in the cyoda [[source]]",
            ),
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
        let found = parse_jwks(&doc).map_err(|why| bad(&why))?;
        *self.keys.lock().expect("not poisoned") = found;
        Ok(true)
    }

    /// [`Self::refresh`] for a client's token: the detail (which names the
    /// service's URL) goes to the log, the client gets what to do.
    async fn refresh_for_client(&self) -> Result<bool, UpstreamError> {
        self.refresh().await.map_err(|e| {
            tracing::warn!(
                "cannot read the Cyoda service's signing keys to check a token: {}",
                e.message
            );
            UpstreamError::new(
                e.kind,
                "cannot read the Cyoda service's signing keys (its JWKS) to check the token; try again later (the tsql server's log says why)",
            )
        })
    }

    fn key(&self, kid: &str) -> Option<Key> {
        self.keys.lock().expect("not poisoned").get(kid).cloned()
    }

    /// The published key `kid`, read from the JWKS again when it is not known yet.
    async fn find_key(&self, kid: &str) -> Result<Key, UpstreamError> {
        let unknown = || {
            unauthenticated(format!(
                "the token was signed with key '{kid}', which the Cyoda service does not publish: it is forged or from another service"
            ))
        };
        if let Some(k) = self.key(kid) {
            return Ok(k);
        }
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
        let fetched = self.refresh_for_client().await?;
        match self.key(kid) {
            Some(k) => Ok(k),
            None if !fetched => Err(unknown()),
            None => {
                let mut missed = self.missed.lock().expect("not poisoned");
                if missed.len() > 1000 {
                    missed.retain(|_, t| t.elapsed() < MISSED_KID_FOR);
                }
                missed.insert(kid.to_string(), Instant::now());
                Err(unknown())
            }
        }
    }

    /// Checks everything but the issuer: form, algorithm, signature, dates, tenant.
    async fn check(&self, token: &str) -> Result<Checked, UpstreamError> {
        let token = token.trim();
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts[..] else {
            return Err(unauthenticated(
                "the token is not a JWT (it needs three dot-separated parts)",
            ));
        };
        let head: Value = serde_json::from_slice(&b64url(header)?)
            .map_err(|_| unauthenticated("the token's header is not JSON"))?;
        let alg = head["alg"].as_str().unwrap_or("");
        let Some(parameters) = rsa_algorithm(alg) else {
            return Err(unauthenticated(match alg {
                "" => "the token's header names no algorithm (alg): use a token the Cyoda service issued".to_string(),
                "none" => "the token is not signed (alg none): tsql accepts only tokens the Cyoda service signed".to_string(),
                other => format!(
                    "the token is signed with {other}, which tsql does not accept: only the RSA algorithm the Cyoda service publishes for its key (RS256 for cyoda-go) is; use a token the service issued"
                ),
            }));
        };
        let kid = head["kid"].as_str().unwrap_or("");
        let key = self.find_key(kid).await?;
        if key.alg != alg {
            return Err(unauthenticated(format!(
                "the token is signed with {alg}, but the Cyoda service publishes its key '{kid}' for {}: tsql accepts only that; use a token the service issued",
                key.alg
            )));
        }
        let signed = &token.as_bytes()[..header.len() + 1 + payload.len()];
        ring::signature::RsaPublicKeyComponents {
            n: &key.n,
            e: &key.e,
        }
        .verify(parameters, signed, &b64url(signature)?)
        .map_err(|_| {
            unauthenticated("the token's signature is not valid: it is forged or altered")
        })?;
        let claims: Value = serde_json::from_slice(&b64url(payload)?)
            .map_err(|_| unauthenticated("the token's claims are not JSON"))?;
        if !claims.is_object() {
            return Err(unauthenticated(
                "the token's claims are not a JSON object: use a token the Cyoda service issued",
            ));
        }
        let now = chrono::Utc::now().timestamp();
        let expires = numeric_date(&claims, "exp")
            .map_err(|why| {
                unauthenticated(format!(
                    "the token's expiry (exp) {why}: tsql accepts only an integer number of seconds; use a token the Cyoda service issued"
                ))
            })?
            .ok_or_else(|| {
                unauthenticated(
                    "the token has no expiry (exp): tsql accepts only tokens that expire; use a token the Cyoda service issued (a client id and secret get one)",
                )
            })?;
        if expires <= now {
            return Err(unauthenticated(
                "the token has expired: log in again (a client id and secret get a fresh one)",
            ));
        }
        let not_before = numeric_date(&claims, "nbf").map_err(|why| {
            unauthenticated(format!(
                "the token's not-before time (nbf) {why}: use a token the Cyoda service issued"
            ))
        })?;
        if not_before.is_some_and(|nbf| nbf > now + NOT_BEFORE_SKEW_SECONDS) {
            return Err(unauthenticated(
                "the token is not valid yet (nbf is in the future)",
            ));
        }
        let issuer = claims["iss"]
            .as_str()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                unauthenticated(
                    "the token names no issuer (iss): use a token the Cyoda service issued",
                )
            })?;
        let tenant = claims["caas_org_id"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
            unauthenticated("the token has no caas_org_id (tenant) claim; use a token issued by the Cyoda service")
        })?;
        Ok(Checked {
            identity: Identity {
                token: Some(token.to_string()),
                tenant: tenant.to_string(),
                subject: claims["sub"].as_str().unwrap_or("").to_string(),
                expires: Some(expires),
            },
            issuer: issuer.to_string(),
        })
    }

    /// Checks a token a client presented: signature, algorithm, expiry,
    /// issuer and tenant claim.
    pub async fn verify(&self, token: &str) -> Result<Identity, UpstreamError> {
        let checked = self.check(token).await?;
        let (expected, rule) = self.issuer();
        if checked.issuer != expected {
            return Err(unauthenticated(format!(
                "the token was issued by '{}', not by this Cyoda service ('{expected}': {rule}); use a token the service issued",
                checked.issuer
            )));
        }
        Ok(checked.identity)
    }

    /// Checks a token the service has just issued to tsql at `/oauth/token`
    /// like [`Self::verify`], except that its `iss` becomes the issuer every
    /// token must name (unless the configuration names one, which it must match).
    pub async fn verify_issued(&self, token: &str) -> Result<Identity, UpstreamError> {
        let checked = self.check(token).await?;
        if let Some(configured) = &self.configured_issuer {
            if &checked.issuer != configured {
                tracing::warn!(
                    "the Cyoda service issues tokens with issuer '{}', but the cyoda [[source]] says issuer = '{configured}'",
                    checked.issuer
                );
                return Err(unauthenticated(format!(
                    "the Cyoda service issued a token with issuer '{}', but tsql is configured to accept only issuer '{configured}': the operator should correct `issuer` in the cyoda [[source]] (or leave it out to take the service's)",
                    checked.issuer
                )));
            }
            return Ok(checked.identity);
        }
        let mut learned = self.learned_issuer.lock().expect("not poisoned");
        if learned.as_deref() != Some(checked.issuer.as_str()) {
            tracing::info!(
                "the Cyoda service issues tokens with issuer '{}'; tsql now accepts only that issuer (before: '{}')",
                checked.issuer,
                learned.as_deref().unwrap_or(DEFAULT_ISSUER)
            );
            *learned = Some(checked.issuer.clone());
        }
        Ok(checked.identity)
    }

    /// Exchanges a client id and secret for an access token (client
    /// credentials grant). A refusal or failure names neither the service's
    /// URL nor its answer (both go to the log); the token is not verified here.
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
            .map_err(|e| {
                tracing::warn!("login of Cyoda client '{client_id}' failed: {}", e.message);
                login_error(client_id, e.kind)
            })?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            tracing::warn!(
                "login of Cyoda client '{client_id}': the token endpoint {} did not answer JSON",
                self.http.url("/oauth/token")
            );
            UpstreamError::new(
                UpstreamErrorKind::BadAnswer,
                "the Cyoda token endpoint did not answer JSON; the operator should check the cyoda [[source]] `url` (the tsql server's log has the details)",
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

/// What a client is told when its login at the token endpoint failed with
/// `kind`: the same kind, and no URL or upstream message.
fn login_error(client_id: &str, kind: UpstreamErrorKind) -> UpstreamError {
    match kind {
        UpstreamErrorKind::Unauthenticated
        | UpstreamErrorKind::PermissionDenied
        | UpstreamErrorKind::BadAnswer
        | UpstreamErrorKind::NotFound => unauthenticated(format!(
            "the Cyoda service refused client '{client_id}': wrong client id or secret"
        )),
        UpstreamErrorKind::Timeout => UpstreamError::new(
            kind,
            format!(
                "the Cyoda service did not answer the login of client '{client_id}' in time; try again later"
            ),
        ),
        UpstreamErrorKind::Unavailable => UpstreamError::new(
            kind,
            format!(
                "cannot reach the Cyoda service to log in client '{client_id}'; try again later (the tsql server's log says why)"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    //! Tokens signed with fixed throwaway RSA keys (`testdata/`): `token-key`
    //! is the service's published key, `other-key` a forger's.

    use super::*;
    use ring::signature::{RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RsaEncoding, RsaKeyPair};
    use serde_json::json;

    const SERVICE_KEY: &str = include_str!("testdata/token-key.pem");
    const OTHER_KEY: &str = include_str!("testdata/other-key.pem");
    const SERVICE_JWK: &str = include_str!("testdata/token-key.jwk.json");
    const KID: &str = "test-key";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn key_pair(pem: &str) -> RsaKeyPair {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("PEM body");
        RsaKeyPair::from_pkcs8(&der).expect("a PKCS#8 RSA key")
    }

    /// A JWT with `header` and `claims`, signed by `pem` with `padding`.
    fn sign(header: Value, claims: Value, pem: &str, padding: &'static dyn RsaEncoding) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let pair = key_pair(pem);
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            padding,
            &ring::rand::SystemRandom::new(),
            signed.as_bytes(),
            &mut signature,
        )
        .expect("signed");
        format!("{signed}.{}", b64(&signature))
    }

    fn claims() -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": "cyoda", "sub": "svc", "caas_org_id": "tenant-a", "iat": now, "exp": now + 600})
    }

    /// The service's RS256 token with `change` applied to its claims.
    fn token(change: impl FnOnce(&mut Value)) -> String {
        let mut c = claims();
        change(&mut c);
        sign(
            json!({"alg": "RS256", "kid": KID, "typ": "JWT"}),
            c,
            SERVICE_KEY,
            &RSA_PKCS1_SHA256,
        )
    }

    /// A verifier whose JWKS holds the service key, published for `alg`
    /// (none: the JWKS names no algorithm); nothing is fetched.
    fn verifier(issuer: Option<&str>, alg: Option<&str>) -> TokenVerifier {
        let mut jwk: Value = serde_json::from_str(SERVICE_JWK).expect("JWK");
        jwk["kid"] = json!(KID);
        jwk["use"] = json!("sig");
        if let Some(a) = alg {
            jwk["alg"] = json!(a);
        }
        let http = Http::new("http://127.0.0.1:9/api", Duration::from_secs(1)).expect("client");
        let v = TokenVerifier::new(http, issuer.map(str::to_string));
        *v.keys.lock().unwrap() = parse_jwks(&json!({ "keys": [jwk] })).expect("JWKS");
        *v.refreshed.lock().unwrap() = Some(Instant::now());
        v
    }

    async fn refused(v: &TokenVerifier, token: &str) -> String {
        let e = v.verify(token).await.expect_err("refused");
        assert_eq!(e.kind, UpstreamErrorKind::Unauthenticated, "{}", e.message);
        e.message
    }

    #[tokio::test]
    async fn a_token_the_service_signed_is_accepted() {
        let v = verifier(None, Some("RS256"));
        let id = v.verify(&token(|_| {})).await.expect("accepted");
        assert_eq!(id.tenant, "tenant-a");
        assert_eq!(id.subject, "svc");
        assert_eq!(id.expires, claims()["exp"].as_i64());
    }

    #[tokio::test]
    async fn exp_is_required_and_an_integer() {
        let v = verifier(None, None);
        let m = refused(&v, &token(|c| c["exp"] = Value::Null)).await;
        assert!(m.contains("no expiry"), "{m}");
        let m = refused(
            &v,
            &token(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        )
        .await;
        assert!(m.contains("no expiry"), "{m}");
        let later = claims()["exp"].as_i64().unwrap();
        let m = refused(&v, &token(|c| c["exp"] = json!(later.to_string()))).await;
        assert!(m.contains("(exp) is a string"), "{m}");
        let m = refused(&v, &token(|c| c["exp"] = json!(later as f64 + 0.5))).await;
        assert!(m.contains("not a whole number"), "{m}");
        let m = refused(&v, &token(|c| c["exp"] = json!(true))).await;
        assert!(m.contains("(exp) is not a number"), "{m}");
        let m = refused(
            &v,
            &token(|c| c["exp"] = json!(chrono::Utc::now().timestamp() - 1)),
        )
        .await;
        assert!(m.contains("expired"), "{m}");
        let m = refused(&v, &token(|c| c["nbf"] = json!("0"))).await;
        assert!(m.contains("(nbf) is a string"), "{m}");
        let m = refused(&v, &token(|c| c["nbf"] = json!(later))).await;
        assert!(m.contains("not valid yet"), "{m}");
    }

    #[tokio::test]
    async fn the_issuer_is_cyodas_default_until_the_service_issues_tsql_a_token() {
        let v = verifier(None, None);
        assert_eq!(v.issuer().0, DEFAULT_ISSUER);
        let m = refused(&v, &token(|c| c["iss"] = json!("elsewhere"))).await;
        assert!(
            m.contains("issued by 'elsewhere'") && m.contains("'cyoda'"),
            "{m}"
        );
        let m = refused(&v, &token(|c| c["iss"] = Value::Null)).await;
        assert!(m.contains("no issuer"), "{m}");
        let m = refused(&v, &token(|c| c["iss"] = json!(""))).await;
        assert!(m.contains("no issuer"), "{m}");
        // The service turns out to issue tokens as https://auth.example.
        let issued = token(|c| c["iss"] = json!("https://auth.example"));
        v.verify_issued(&issued)
            .await
            .expect("the service's own token");
        assert_eq!(v.issuer().0, "https://auth.example");
        v.verify(&issued).await.expect("accepted");
        let m = refused(&v, &token(|_| {})).await;
        assert!(m.contains("issued by 'cyoda'"), "{m}");
    }

    #[tokio::test]
    async fn a_configured_issuer_is_the_only_one() {
        let v = verifier(Some("https://auth.example"), None);
        v.verify(&token(|c| c["iss"] = json!("https://auth.example")))
            .await
            .expect("accepted");
        let m = refused(&v, &token(|_| {})).await;
        assert!(m.contains("issued by 'cyoda'"), "{m}");
        // A service token naming another issuer is not learned: the config is wrong.
        let e = v.verify_issued(&token(|_| {})).await.expect_err("refused");
        assert!(e.message.contains("correct `issuer`"), "{}", e.message);
        assert_eq!(v.issuer().0, "https://auth.example");
    }

    #[tokio::test]
    async fn only_the_published_algorithm_is_accepted() {
        let header = |alg: &str| json!({"alg": alg, "kid": KID});
        let rs384 = sign(header("RS384"), claims(), SERVICE_KEY, &RSA_PKCS1_SHA384);
        for published in [None, Some("RS256")] {
            let v = verifier(None, published);
            let m = refused(&v, &rs384).await;
            assert!(
                m.contains("signed with RS384") && m.contains("for RS256"),
                "{m}"
            );
        }
        let v = verifier(None, Some("RS384"));
        v.verify(&rs384)
            .await
            .expect("RS384 when the JWKS publishes it");
        let m = refused(&v, &token(|_| {})).await;
        assert!(
            m.contains("signed with RS256") && m.contains("for RS384"),
            "{m}"
        );

        let v = verifier(None, None);
        let unsigned = format!(
            "{}.{}.",
            b64(header("none").to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        let m = refused(&v, &unsigned).await;
        assert!(m.contains("not signed"), "{m}");
        // HS256 with the public modulus as the secret (the classic confusion).
        let (jwk, signed): (Value, String) = (
            serde_json::from_str(SERVICE_JWK).unwrap(),
            format!(
                "{}.{}",
                b64(header("HS256").to_string().as_bytes()),
                b64(claims().to_string().as_bytes())
            ),
        );
        let secret = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            jwk["n"].as_str().unwrap().as_bytes(),
        );
        let mac = ring::hmac::sign(&secret, signed.as_bytes());
        let m = refused(&v, &format!("{signed}.{}", b64(mac.as_ref()))).await;
        assert!(m.contains("signed with HS256"), "{m}");
        let m = refused(&v, &format!("{}.{}.x", b64(b"{}"), b64(b"{}"))).await;
        assert!(m.contains("names no algorithm"), "{m}");
    }

    #[tokio::test]
    async fn a_forged_or_altered_token_is_refused() {
        let v = verifier(None, None);
        let forged = sign(
            json!({"alg": "RS256", "kid": KID}),
            claims(),
            OTHER_KEY,
            &RSA_PKCS1_SHA256,
        );
        assert!(refused(&v, &forged).await.contains("not valid"));
        let good = token(|_| {});
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut more = claims();
        more["caas_org_id"] = json!("tenant-b");
        let altered = b64(more.to_string().as_bytes());
        parts[1] = &altered;
        assert!(refused(&v, &parts.join(".")).await.contains("not valid"));
    }

    #[test]
    fn jwks_keys_for_other_uses_or_algorithms_are_left_out() {
        let jwk: Value = serde_json::from_str(SERVICE_JWK).unwrap();
        let with = |extra: Value| {
            let mut k = jwk.clone();
            k.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            k
        };
        let doc = json!({"keys": [
            with(json!({"kid": "a"})),
            with(json!({"kid": "b", "alg": "RS512"})),
            with(json!({"kid": "c", "use": "enc"})),
            with(json!({"kid": "d", "alg": "PS256"})),
            with(json!({"kid": "e", "alg": "HS256"})),
            {"kty": "oct", "kid": "f", "k": "c2VjcmV0"},
        ]});
        let keys = parse_jwks(&doc).unwrap();
        let mut kids: Vec<_> = keys.iter().map(|(k, v)| (k.as_str(), v.alg)).collect();
        kids.sort();
        assert_eq!(kids, [("a", "RS256"), ("b", "RS512")]);
    }

    /// A one-shot HTTP server on 127.0.0.1 answering `status` with `body`; its base URL.
    fn answer_once(status: &str, body: &'static str) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/api", listener.local_addr().unwrap());
        let status = status.to_string();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        });
        base
    }

    #[tokio::test]
    async fn refused_logins_name_no_url() {
        let base = answer_once(
            "401 Unauthorized",
            r#"{"error":"invalid_client","error_description":"bad secret"}"#,
        );
        let http = Http::new(&base, Duration::from_secs(5)).unwrap();
        let e = TokenVerifier::new(http, None)
            .client_token("boot", "wrong")
            .await
            .expect_err("refused");
        assert_eq!(e.kind, UpstreamErrorKind::Unauthenticated);
        assert_eq!(
            e.message,
            "the Cyoda service refused client 'boot': wrong client id or secret"
        );
        // Nothing listens on a port just freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = Http::new(
            &format!("http://127.0.0.1:{port}/api"),
            Duration::from_secs(5),
        )
        .unwrap();
        let e = TokenVerifier::new(http, None)
            .client_token("boot", "bootsecret")
            .await
            .expect_err("unreachable");
        assert_eq!(e.kind, UpstreamErrorKind::Unavailable);
        assert!(
            !e.message.contains("127.0.0.1") && !e.message.contains("http"),
            "{}",
            e.message
        );
    }
}
