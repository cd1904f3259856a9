//! Authentication: HTTP Basic credentials in `Handshake` (or on any call)
//! become a bearer token, accepted on every later call.
//!
//! With a Cyoda source in passthrough mode, callers may also be Cyoda
//! identities: a client id and secret (exchanged at the service for an
//! access token), or an access token given as the password with an empty
//! user name. The access token itself is then the bearer token; it is
//! verified against the service's JWKS and forwarded upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tsql_cyoda::{CyodaService, Identity};
use tsql_entity_tables::{UpstreamError, UpstreamErrorKind};

use crate::config::User;
use crate::engine::Caller;

/// Tokens unused this long expire; the client logs in again.
const TOKEN_IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// A verified Cyoda token is trusted this long before it is checked again.
const VERIFIED_FOR: Duration = Duration::from_secs(60);

/// At most this many verified tokens and logins are remembered.
const MAX_REMEMBERED: usize = 10_000;

/// Checks credentials and hands out bearer tokens.
#[derive(Debug)]
pub struct Authenticator {
    users: Vec<User>,
    /// Token → (user, last use).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// The Cyoda service that vouches for callers' own identities.
    upstream: Option<Arc<CyodaService>>,
    /// Cyoda token → (identity, when verified).
    verified: Mutex<HashMap<String, (Identity, Instant)>>,
    /// Digest of client id and secret → identity (until its token is near expiry).
    logins: Mutex<HashMap<Vec<u8>, Identity>>,
}

/// An upstream failure as the status a client gets.
pub fn upstream_status(e: &UpstreamError) -> Status {
    match e.kind {
        UpstreamErrorKind::Unauthenticated => Status::unauthenticated(e.message.clone()),
        UpstreamErrorKind::PermissionDenied => Status::permission_denied(e.message.clone()),
        UpstreamErrorKind::Timeout => Status::deadline_exceeded(e.message.clone()),
        UpstreamErrorKind::NotFound => Status::not_found(e.message.clone()),
        UpstreamErrorKind::Unavailable | UpstreamErrorKind::BadAnswer => {
            Status::unavailable(e.message.clone())
        }
    }
}

fn remember<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, V>,
    key: K,
    value: V,
    keep: impl Fn(&V) -> bool,
) {
    if map.len() >= MAX_REMEMBERED {
        map.retain(|_, v| keep(v));
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
    }
    map.insert(key, value);
}

fn not_expired(identity: &Identity) -> bool {
    let now = chrono::Utc::now().timestamp();
    identity.expires.is_none_or(|exp| exp - 30 > now)
}

impl Authenticator {
    /// Accepts the given users, and Cyoda identities when `upstream` is set.
    pub fn new(users: Vec<User>, upstream: Option<Arc<CyodaService>>) -> Self {
        Authenticator {
            users,
            tokens: Mutex::new(HashMap::new()),
            upstream,
            verified: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
        }
    }

    fn token_user(&self, token: &str) -> Option<String> {
        let mut tokens = self.tokens.lock().expect("not poisoned");
        let now = Instant::now();
        match tokens.get_mut(token) {
            Some((user, used)) if now.duration_since(*used) < TOKEN_IDLE_LIMIT => {
                *used = now;
                Some(user.clone())
            }
            Some(_) => {
                tokens.remove(token);
                None
            }
            None => None,
        }
    }

    /// True when `user`/`password` is a configured user, or a valid token of the same user.
    fn local(&self, user: &str, password: &str) -> bool {
        self.users
            .iter()
            .any(|u| u.name == user && u.verify(password))
            || self
                .token_user(password)
                .is_some_and(|u| u == user || user.is_empty())
    }

    fn refused(user: &str) -> Status {
        Status::unauthenticated(format!(
            "wrong user name or password for user '{user}': check the credentials configured on the server"
        ))
    }

    /// A Cyoda access token, verified (and remembered for a minute).
    async fn cyoda_token(&self, service: &CyodaService, token: &str) -> Result<Identity, Status> {
        if let Some((identity, at)) = self.verified.lock().expect("not poisoned").get(token) {
            if at.elapsed() < VERIFIED_FOR && not_expired(identity) {
                return Ok(identity.clone());
            }
        }
        let identity = service
            .verify_token(token)
            .await
            .map_err(|e| upstream_status(&e))?;
        let mut verified = self.verified.lock().expect("not poisoned");
        remember(
            &mut verified,
            token.to_string(),
            (identity.clone(), Instant::now()),
            |(i, at)| at.elapsed() < VERIFIED_FOR && not_expired(i),
        );
        Ok(identity)
    }

    /// A Cyoda client id and secret, logged in at the service (remembered until near expiry).
    async fn cyoda_login(
        &self,
        service: &CyodaService,
        id: &str,
        secret: &str,
    ) -> Result<Identity, Status> {
        let key = ring::digest::digest(&ring::digest::SHA256, format!("{id}\0{secret}").as_bytes())
            .as_ref()
            .to_vec();
        if let Some(identity) = self.logins.lock().expect("not poisoned").get(&key) {
            if not_expired(identity) {
                return Ok(identity.clone());
            }
        }
        let identity = service
            .login(id, secret)
            .await
            .map_err(|e| upstream_status(&e))?;
        remember(
            &mut self.logins.lock().expect("not poisoned"),
            key,
            identity.clone(),
            not_expired,
        );
        Ok(identity)
    }

    fn cyoda_caller(identity: Identity) -> Caller {
        Caller {
            name: format!("{}@{}", identity.subject, identity.tenant),
            upstream: Some(identity),
            sees_all: false,
        }
    }

    /// The caller behind `user`/`password`: a configured user (or one of its
    /// tokens), else a Cyoda identity when passthrough is on.
    pub async fn basic_caller(&self, user: &str, password: &str) -> Result<Caller, Status> {
        if self.local(user, password) {
            return Ok(self.caller_named(user));
        }
        let Some(service) = &self.upstream else {
            return Err(Self::refused(user));
        };
        let identity = if user.is_empty() {
            self.cyoda_token(service, password).await?
        } else {
            self.cyoda_login(service, user, password).await?
        };
        Ok(Self::cyoda_caller(identity))
    }

    /// Checks `user`/`password` (a password that is a valid token is accepted
    /// too) and returns a bearer token: a new one for a configured user, the
    /// Cyoda access token for a Cyoda identity.
    pub async fn login(&self, user: &str, password: &str) -> Result<String, Status> {
        let caller = self.basic_caller(user, password).await?;
        if let Some(identity) = caller.upstream {
            return identity
                .token
                .ok_or_else(|| Status::internal("a Cyoda identity without a token"));
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let now = Instant::now();
        let mut tokens = self.tokens.lock().expect("not poisoned");
        tokens.retain(|_, (_, used)| now.duration_since(*used) < TOKEN_IDLE_LIMIT);
        tokens.insert(token.clone(), (user.to_string(), now));
        Ok(token)
    }

    /// Logs in with the `authorization: Basic …` header of a handshake.
    pub async fn handshake(&self, metadata: &MetadataMap) -> Result<String, Status> {
        let header = authorization(metadata)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            self.bearer(token.trim()).await?;
            return Ok(token.trim().to_string());
        }
        let (user, password) = basic(header)?;
        self.login(&user, &password).await
    }

    /// A configured user (or, where no password is asked, anyone named) as
    /// a caller; role `admin` sees everyone's queries.
    pub fn caller_named(&self, user: &str) -> Caller {
        let sees_all = self
            .users
            .iter()
            .any(|u| u.name == user && u.roles.iter().any(|r| r == "admin"));
        Caller {
            sees_all,
            ..Caller::named(user)
        }
    }

    /// The caller behind a bearer token: one tsql issued at a login, or a
    /// Cyoda JWT when passthrough is on.
    pub async fn bearer(&self, token: &str) -> Result<Caller, Status> {
        if let Some(user) = self.token_user(token) {
            return Ok(self.caller_named(&user));
        }
        match &self.upstream {
            Some(service) if token.matches('.').count() == 2 => {
                Ok(Self::cyoda_caller(self.cyoda_token(service, token).await?))
            }
            _ => Err(Status::unauthenticated(
                "the bearer token is unknown or expired: log in again with user and password",
            )),
        }
    }

    /// The caller behind a call's `authorization` header (bearer token or basic credentials).
    pub async fn check(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let header = authorization(metadata)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self.bearer(token.trim()).await;
        }
        let (user, password) = basic(header)?;
        self.basic_caller(&user, &password).await
    }
}

fn authorization(metadata: &MetadataMap) -> Result<&str, Status> {
    metadata
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated("no credentials: connect with a user and password (e.g. user=…&password=… in the JDBC URL)"))?
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not readable text"))
}

fn basic(header: &str) -> Result<(String, String), Status> {
    let encoded = header.strip_prefix("Basic ").ok_or_else(|| {
        Status::unauthenticated(
            "unsupported authorization scheme: use Basic (user and password) or a Bearer token",
        )
    })?;
    // Clients differ on padding (the Go Flight client sends none).
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine
        .decode(encoded.trim())
        .map_err(|_| Status::unauthenticated("the Basic credentials are not valid base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Status::unauthenticated("the Basic credentials are not UTF-8"))?;
    let (user, password) = text.split_once(':').ok_or_else(|| {
        Status::unauthenticated("the Basic credentials need the form user:password")
    })?;
    Ok((user.to_string(), password.to_string()))
}
