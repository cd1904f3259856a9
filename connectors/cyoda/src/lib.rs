//! The Cyoda connector: SQL over a live Cyoda entity service (CPM, cyoda-go).
//!
//! Models and their declared types come from the service's model export;
//! entities are read at one instant (`pointInTime`), filters are pushed as
//! Cyoda search conditions, and every call carries the identity of the query
//! (one tenant per identity).

mod condition;
mod http;
mod identity;
mod models;
mod reader;
mod service;

pub use condition::{accepts, condition};
pub use http::{Credentials, Http};
pub use identity::{DEFAULT_ISSUER, Identity, TokenVerifier};
pub use models::{ModelCache, ModelEntry, declared_type, parse_export, parse_model_list};
pub use reader::{CyodaReader, DIRECT_SEARCH_CAP, ReadOptions};
pub use service::{CyodaAuth, CyodaOptions, CyodaService};

/// The credentials a call made for `identity` carries.
pub(crate) fn credentials(identity: &Identity) -> Credentials<'_> {
    match &identity.token {
        Some(t) => Credentials::Bearer(t),
        None => Credentials::None,
    }
}
