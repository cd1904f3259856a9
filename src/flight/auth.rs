//! Authentication: HTTP Basic credentials in `Handshake` (or on any call)
//! become a bearer token, accepted on every later call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::config::User;

/// Tokens unused this long expire; the client logs in again.
const TOKEN_IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// Checks credentials and hands out bearer tokens.
#[derive(Debug)]
pub struct Authenticator {
    users: Vec<User>,
    /// Token → (user, last use).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl Authenticator {
    /// Accepts the given users.
    pub fn new(users: Vec<User>) -> Self {
        Authenticator {
            users,
            tokens: Mutex::new(HashMap::new()),
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

    /// Checks `user`/`password`; a password that is a valid token of the
    /// same user is accepted too.
    fn verify(&self, user: &str, password: &str) -> Result<(), Status> {
        let ok = self
            .users
            .iter()
            .any(|u| u.name == user && u.verify(password))
            || self
                .token_user(password)
                .is_some_and(|u| u == user || user.is_empty());
        if ok {
            Ok(())
        } else {
            Err(Status::unauthenticated(format!(
                "wrong user name or password for user '{user}': check the credentials configured on the server"
            )))
        }
    }

    /// Checks `user`/`password` (a password that is a valid token is accepted too)
    /// and returns a new bearer token.
    pub fn login(&self, user: &str, password: &str) -> Result<String, Status> {
        self.verify(user, password)?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let now = Instant::now();
        let mut tokens = self.tokens.lock().expect("not poisoned");
        tokens.retain(|_, (_, used)| now.duration_since(*used) < TOKEN_IDLE_LIMIT);
        tokens.insert(token.clone(), (user.to_string(), now));
        Ok(token)
    }

    /// Logs in with the `authorization: Basic …` header of a handshake.
    pub fn handshake(&self, metadata: &MetadataMap) -> Result<String, Status> {
        let header = authorization(metadata)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            if self.token_user(token).is_some() {
                return Ok(token.to_string());
            }
            return Err(Status::unauthenticated(
                "the bearer token is unknown or expired: log in again with user and password",
            ));
        }
        let (user, password) = basic(header)?;
        self.login(&user, &password)
    }

    /// The user behind a call's `authorization` header (bearer token or basic credentials).
    pub fn check(&self, metadata: &MetadataMap) -> Result<String, Status> {
        let header = authorization(metadata)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self.token_user(token.trim()).ok_or_else(|| {
                Status::unauthenticated(
                    "the bearer token is unknown or expired: log in again with user and password",
                )
            });
        }
        let (user, password) = basic(header)?;
        self.verify(&user, &password).map(|_| user)
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
