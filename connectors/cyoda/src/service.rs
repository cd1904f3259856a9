//! A configured Cyoda service: its address, how tsql authenticates to it, and
//! per query the schema of tables the query's identity may read.

use std::sync::Arc;
use std::time::Duration;

use tsql_entity_tables::{LiveSchema, ScanOptions, UpstreamError, UpstreamErrorKind};

use crate::http::Http;
use crate::identity::{Identity, TokenVerifier};
use crate::models::ModelCache;
use crate::reader::{CyodaReader, ReadOptions};

/// How tsql authenticates to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CyodaAuth {
    /// No credentials (a service in mock mode); one tenant.
    None,
    /// Each SQL user's own Cyoda identity: a client id/secret exchanged for a
    /// token, or a token given as the password. Many tenants.
    Passthrough,
    /// One technical identity for every query (single-tenant).
    Client {
        /// Client id.
        id: String,
        /// Client secret.
        secret: String,
    },
}

/// Settings of a Cyoda source.
#[derive(Debug, Clone)]
pub struct CyodaOptions {
    /// Base URL of the API, e.g. `http://cpm.internal:8080/api`.
    pub url: String,
    /// How tsql authenticates.
    pub auth: CyodaAuth,
    /// How long one request may take before the query fails with DEADLINE_EXCEEDED.
    pub timeout: Duration,
    /// How long the model list is trusted before it is read again.
    pub metadata_ttl: Duration,
    /// Entities per page.
    pub page_size: usize,
    /// Pages requested ahead, per partition.
    pub pages_in_flight: usize,
    /// The issuer (`iss`) every token must name; none: the issuer of the
    /// tokens the service issues to tsql (until it has issued one, cyoda-go's
    /// default `cyoda`).
    pub issuer: Option<String>,
}

impl CyodaOptions {
    /// Defaults for `url` and `auth`.
    pub fn new(url: &str, auth: CyodaAuth) -> Self {
        CyodaOptions {
            url: url.to_string(),
            auth,
            timeout: Duration::from_secs(30),
            metadata_ttl: Duration::from_secs(2),
            page_size: 10_000,
            pages_in_flight: 2,
            issuer: None,
        }
    }
}

/// A Cyoda service as a source of live entity tables.
#[derive(Debug)]
pub struct CyodaService {
    http: Http,
    options: CyodaOptions,
    verifier: TokenVerifier,
    cache: ModelCache,
    technical: tokio::sync::Mutex<Option<Identity>>,
}

/// The tenant of a service without credentials.
const MOCK_TENANT: &str = "(no credentials)";

impl CyodaService {
    /// A source for the service described by `options`.
    pub fn new(options: CyodaOptions) -> Result<CyodaService, UpstreamError> {
        let http = Http::new(&options.url, options.timeout)?;
        Ok(CyodaService {
            verifier: TokenVerifier::new(http.clone(), options.issuer.clone()),
            http,
            options,
            cache: ModelCache::default(),
            technical: tokio::sync::Mutex::new(None),
        })
    }

    /// The settings.
    pub fn options(&self) -> &CyodaOptions {
        &self.options
    }

    /// True when each SQL user reads with their own identity.
    pub fn passthrough(&self) -> bool {
        self.options.auth == CyodaAuth::Passthrough
    }

    /// Whether the service answers its health check (`GET /health`).
    pub async fn check_reachable(&self) -> Result<(), UpstreamError> {
        self.http
            .call(
                reqwest::Method::GET,
                "/health",
                &[],
                crate::http::Credentials::None,
                None,
            )
            .await
            .map(|_| ())
    }

    /// Checks a token a client presented (signature and algorithm, expiry,
    /// issuer, tenant).
    pub async fn verify_token(&self, token: &str) -> Result<Identity, UpstreamError> {
        self.verifier.verify(token).await
    }

    /// Logs in with a client id and secret: a fresh token, verified; its
    /// issuer becomes the one every token must name (unless configured).
    pub async fn login(&self, client_id: &str, secret: &str) -> Result<Identity, UpstreamError> {
        let token = self.verifier.client_token(client_id, secret).await?;
        self.verifier.verify_issued(&token).await
    }

    /// The identity queries read with: the caller's own in passthrough mode,
    /// else the configured one.
    pub async fn identity(&self, caller: Option<&Identity>) -> Result<Identity, UpstreamError> {
        match &self.options.auth {
            CyodaAuth::None => Ok(Identity {
                token: None,
                tenant: MOCK_TENANT.into(),
                subject: String::new(),
                expires: None,
            }),
            CyodaAuth::Passthrough => caller.cloned().ok_or_else(|| {
                UpstreamError::new(
                    UpstreamErrorKind::Unauthenticated,
                    format!(
                        "this catalog reads {} with each user's own Cyoda identity: log in with a Cyoda client id and secret, or give a Cyoda access token as the password",
                        self.options.url
                    ),
                )
            }),
            CyodaAuth::Client { id, secret } => {
                let mut technical = self.technical.lock().await;
                let now = chrono::Utc::now().timestamp();
                if let Some(t) = technical.as_ref() {
                    if t.expires.is_none_or(|exp| exp - 60 > now) {
                        return Ok(t.clone());
                    }
                }
                let fresh = self.login(id, secret).await?;
                *technical = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// The tables `identity` can read, as a schema for one query.
    pub async fn schema(
        &self,
        identity: Identity,
        scan: ScanOptions,
    ) -> Result<Arc<LiveSchema>, UpstreamError> {
        let tables = self
            .cache
            .tables(&self.http, &identity, self.options.metadata_ttl)
            .await?;
        let reader = CyodaReader {
            http: self.http.clone(),
            identity,
            options: ReadOptions {
                page_size: self.options.page_size,
                pages_in_flight: self.options.pages_in_flight,
            },
        };
        Ok(Arc::new(LiveSchema::new(Arc::new(reader), tables, scan)))
    }
}
