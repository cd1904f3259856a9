//! Authentication, shared by every front end: HTTP Basic credentials (in a
//! Flight `Handshake`, on any call, or on a Trino request) become a bearer
//! token, accepted on every later call; every caller is an [`Owner`].
//!
//! With a Cyoda source in passthrough mode, callers may also be Cyoda
//! identities: a client id and secret (exchanged at the service for an
//! access token), or an access token given as the password with an empty
//! user name. The access token itself is then the bearer token; it is
//! verified against the service's JWKS and forwarded upstream.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tsql_cyoda::{CyodaService, Identity};
use tsql_entity_tables::{UpstreamError, UpstreamErrorKind};

use crate::caller::Caller;
use crate::config::User;
use crate::seal::Sealer;

/// Tokens unused this long expire; the client logs in again.
const TOKEN_IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// A verified Cyoda token is trusted this long before it is checked again.
const VERIFIED_FOR: Duration = Duration::from_secs(60);

/// At most this many verified tokens and logins are remembered.
const MAX_REMEMBERED: usize = 10_000;

/// The window failed logins are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// What guards logins and handles.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// Seals Flight tickets.
    pub sealer: Arc<Sealer>,
    /// How long a Cyoda client-secret login is reused before the service is asked again.
    pub login_cache: Duration,
    /// Failed logins allowed per client id, and per peer address, per minute.
    pub login_failures_per_minute: u32,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            sealer: Arc::new(Sealer::random()),
            login_cache: Duration::from_secs(60),
            login_failures_per_minute: 10,
        }
    }
}

/// Checks credentials and hands out bearer tokens.
#[derive(Debug)]
pub struct Authenticator {
    users: Vec<User>,
    settings: SecuritySettings,
    /// Token → (user, last use).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// The Cyoda service that vouches for callers' own identities.
    upstream: Option<Arc<CyodaService>>,
    /// Cyoda token → (identity, when verified).
    verified: Mutex<HashMap<String, (Identity, Instant)>>,
    /// Digest of client id and secret → (identity, when the service last confirmed it).
    logins: Mutex<HashMap<Vec<u8>, (Identity, Instant)>>,
    /// Recent failed logins by client id or user name, and by peer address.
    failures: Mutex<HashMap<FailureKey, (Instant, u32)>>,
}

/// What failed logins are counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FailureKey {
    User(String),
    Peer(IpAddr),
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
    pub fn new(
        users: Vec<User>,
        upstream: Option<Arc<CyodaService>>,
        settings: SecuritySettings,
    ) -> Self {
        Authenticator {
            users,
            settings,
            tokens: Mutex::new(HashMap::new()),
            upstream,
            verified: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// What seals this server's handles.
    pub fn sealer(&self) -> &Sealer {
        &self.settings.sealer
    }

    /// Refuses, without checking anything, a login whose user or peer
    /// failed `login_failures_per_minute` times within the last minute.
    fn throttled(&self, user: &str, peer: Option<IpAddr>) -> Result<(), Status> {
        let limit = self.settings.login_failures_per_minute;
        let failures = self.failures.lock().expect("not poisoned");
        let over = |key: &FailureKey| {
            failures
                .get(key)
                .is_some_and(|(since, n)| since.elapsed() < FAILURE_WINDOW && *n >= limit)
        };
        let keys = [
            Some(FailureKey::User(user.to_string())),
            peer.map(FailureKey::Peer),
        ];
        if keys.iter().flatten().any(over) {
            crate::metrics::metrics().logins_throttled.inc();
            return Err(Status::resource_exhausted(format!(
                "too many failed logins for this user or from this address: wait a minute and log in again (at most {limit} failures a minute)"
            )));
        }
        Ok(())
    }

    /// Counts a failed login of `user` from `peer`.
    fn failed(&self, user: &str, peer: Option<IpAddr>) {
        let mut failures = self.failures.lock().expect("not poisoned");
        if failures.len() > MAX_REMEMBERED {
            failures.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
        }
        let keys = [
            Some(FailureKey::User(user.to_string())),
            peer.map(FailureKey::Peer),
        ];
        for key in keys.into_iter().flatten() {
            let entry = failures.entry(key).or_insert((Instant::now(), 0));
            if entry.0.elapsed() >= FAILURE_WINDOW {
                *entry = (Instant::now(), 0);
            }
            entry.1 += 1;
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
        let reuse = self.settings.login_cache;
        let fresh =
            |(identity, at): &(Identity, Instant)| at.elapsed() < reuse && not_expired(identity);
        if let Some(known) = self.logins.lock().expect("not poisoned").get(&key) {
            if fresh(known) {
                return Ok(known.0.clone());
            }
        }
        // Asked again at least every `login_cache_seconds`: a rotated or
        // revoked secret stops working within that time.
        let identity = match service.login(id, secret).await {
            Ok(identity) => identity,
            Err(e) => {
                self.logins.lock().expect("not poisoned").remove(&key);
                return Err(upstream_status(&e));
            }
        };
        remember(
            &mut self.logins.lock().expect("not poisoned"),
            key,
            (identity.clone(), Instant::now()),
            fresh,
        );
        Ok(identity)
    }

    /// The caller behind `user`/`password` from `peer`: a configured user
    /// (or one of its tokens), else a Cyoda identity when passthrough is on.
    /// Failed logins are counted per user and per peer; past
    /// `login_failures_per_minute` they are refused without being checked.
    pub async fn basic_caller(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<Caller, Status> {
        self.throttled(user, peer)?;
        let checked = self.check_basic(user, password).await;
        if let Err(status) = &checked {
            if status.code() == tonic::Code::Unauthenticated {
                self.failed(user, peer);
            }
        }
        checked
    }

    async fn check_basic(&self, user: &str, password: &str) -> Result<Caller, Status> {
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
        Ok(Caller::of_identity(identity))
    }

    /// Checks `user`/`password` (a password that is a valid token is accepted
    /// too) and returns a bearer token: a new one for a configured user, the
    /// Cyoda access token for a Cyoda identity.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<String, Status> {
        let caller = self.basic_caller(user, password, peer).await?;
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

    /// Logs in with the `authorization: Basic …` header of a handshake from `peer`.
    pub async fn handshake(
        &self,
        metadata: &MetadataMap,
        peer: Option<IpAddr>,
    ) -> Result<String, Status> {
        let header = authorization(metadata)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            self.bearer(token.trim()).await?;
            return Ok(token.trim().to_string());
        }
        let (user, password) = basic(header)?;
        self.login(&user, &password, peer).await
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
                Ok(Caller::of_identity(self.cyoda_token(service, token).await?))
            }
            _ => Err(Status::unauthenticated(
                "the bearer token is unknown or expired: log in again with user and password",
            )),
        }
    }

    /// The caller behind a call's `authorization` header (bearer token or
    /// basic credentials) from `peer`.
    pub async fn check(
        &self,
        metadata: &MetadataMap,
        peer: Option<IpAddr>,
    ) -> Result<Caller, Status> {
        let header = authorization(metadata)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self.bearer(token.trim()).await;
        }
        let (user, password) = basic(header)?;
        self.basic_caller(&user, &password, peer).await
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
