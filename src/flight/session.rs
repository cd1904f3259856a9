//! Client sessions: the default catalog and schema a connection chose with
//! `SetSessionOptions`.
//!
//! A session is named by the `arrow_flight_session_id` cookie the server
//! sets (the JDBC driver sends cookies back); a client without cookie
//! support keeps its session through its credentials (its bearer token).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::Status;

use crate::caller::Owner;
use tonic::metadata::MetadataMap;

/// Name of the session cookie.
pub const COOKIE: &str = "arrow_flight_session_id";

/// Sessions idle this long are forgotten.
const IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// At most this many sessions are kept; beyond, the least recently used goes.
const MAX_SESSIONS: usize = 100_000;

/// What a session chose.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionSettings {
    /// Default catalog, when set.
    pub catalog: Option<String>,
    /// Default schema, when set.
    pub schema: Option<String>,
    /// `distributed` (`on`, `off`, `auto`), when set.
    pub distributed: Option<String>,
}

/// What a session's queries are planned under: the effective default
/// catalog and schema, and the `distributed` setting if the session chose one.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryDefaults {
    /// Default catalog.
    pub catalog: String,
    /// Default schema.
    pub schema: String,
    /// `on`, `off` or `auto`; `None` leaves the server's `distributed`.
    pub distributed: Option<String>,
}

#[derive(Debug)]
struct Session {
    owner: Owner,
    settings: SessionSettings,
    last_used: Instant,
}

/// All open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

/// How a call names its session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionKey {
    key: String,
    /// Whether the client sent the session cookie.
    pub from_cookie: bool,
}

impl SessionKey {
    /// The session a call belongs to: its cookie, else its credentials.
    pub fn of(metadata: &MetadataMap) -> Option<SessionKey> {
        if let Some(id) = cookie(metadata) {
            return Some(SessionKey {
                key: format!("cookie:{id}"),
                from_cookie: true,
            });
        }
        let auth = metadata.get("authorization")?.to_str().ok()?;
        Some(SessionKey {
            key: format!("auth:{auth}"),
            from_cookie: false,
        })
    }

    /// A fresh cookie-named session, and the cookie value naming it.
    pub fn fresh() -> (SessionKey, String) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        (
            SessionKey {
                key: format!("cookie:{id}"),
                from_cookie: true,
            },
            id,
        )
    }
}

impl Sessions {
    /// The settings of `key`'s session for `owner` (defaults when there is none).
    pub fn settings(&self, key: Option<&SessionKey>, owner: &Owner) -> SessionSettings {
        let Some(key) = key else {
            return SessionSettings::default();
        };
        let mut open = self.open.lock().expect("not poisoned");
        match open.get_mut(&key.key) {
            Some(s) if s.owner == *owner => {
                s.last_used = Instant::now();
                s.settings.clone()
            }
            _ => SessionSettings::default(),
        }
    }

    /// Stores `settings` as `key`'s session for `owner`, opening it if needed.
    pub fn store(
        &self,
        key: &SessionKey,
        owner: &Owner,
        settings: SessionSettings,
    ) -> Result<(), Status> {
        let mut open = self.open.lock().expect("not poisoned");
        let now = Instant::now();
        open.retain(|_, s| now.duration_since(s.last_used) < IDLE_LIMIT);
        if open.len() >= MAX_SESSIONS && !open.contains_key(&key.key) {
            let oldest = open
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                open.remove(&k);
            }
        }
        match open.get(&key.key) {
            Some(s) if s.owner != *owner => Err(Status::permission_denied(
                "this session cannot be used: connect again to start your own",
            )),
            _ => {
                open.insert(
                    key.key.clone(),
                    Session {
                        owner: owner.clone(),
                        settings,
                        last_used: now,
                    },
                );
                Ok(())
            }
        }
    }

    /// Closes `key`'s session; NotFound when it is not open.
    pub fn close(&self, key: Option<&SessionKey>, owner: &Owner) -> Result<(), Status> {
        let mut open = self.open.lock().expect("not poisoned");
        match key.and_then(|k| open.get(&k.key).map(|s| (k, s))) {
            Some((k, s)) if s.owner == *owner => {
                let k = k.key.clone();
                open.remove(&k);
                Ok(())
            }
            _ => Err(Status::not_found(
                "no open session to close: the session cookie is missing, unknown or expired",
            )),
        }
    }
}

fn cookie(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn cookie_names_the_session_else_credentials() {
        let m = metadata(&[
            ("cookie", "a=1; arrow_flight_session_id=abc"),
            ("authorization", "Bearer t"),
        ]);
        let k = SessionKey::of(&m).unwrap();
        assert!(k.from_cookie);
        let m = metadata(&[("authorization", "Bearer t")]);
        assert!(!SessionKey::of(&m).unwrap().from_cookie);
        assert!(SessionKey::of(&metadata(&[])).is_none());
    }

    #[test]
    fn sessions_belong_to_their_user() {
        let sessions = Sessions::default();
        let (ann, bob) = (Owner::local("ann"), Owner::of_tenant("t", "ann"));
        let (key, _) = SessionKey::fresh();
        let chosen = SessionSettings {
            catalog: Some("cyoda".into()),
            schema: Some("information_schema".into()),
            distributed: Some("off".into()),
        };
        sessions.store(&key, &ann, chosen.clone()).unwrap();
        assert_eq!(sessions.settings(Some(&key), &ann), chosen);
        assert_eq!(
            sessions.settings(Some(&key), &bob),
            SessionSettings::default()
        );
        assert!(sessions.store(&key, &bob, chosen).is_err());
        assert!(sessions.close(Some(&key), &bob).is_err());
        sessions.close(Some(&key), &ann).unwrap();
        assert_eq!(
            sessions.settings(Some(&key), &ann),
            SessionSettings::default()
        );
        assert!(sessions.close(Some(&key), &ann).is_err());
    }
}
