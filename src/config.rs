//! Server configuration: a TOML file, overridden by `TSQL_*` environment
//! variables, overridden by command-line flags.
//!
//! ```toml
//! listen = "127.0.0.1:32010"
//! data = "/var/lib/tsql/entities"     # or: demo = true
//! on_bad_record = "fail"              # or "skip"
//! tls_cert = "/etc/tsql/cert.pem"     # both or neither
//! tls_key = "/etc/tsql/key.pem"
//!
//! [[users]]
//! name = "analyst"
//! password_hash = "$argon2id$v=19$…"  # `tsql hash-password` prints one
//! roles = ["reader"]
//!
//! memory_limit = "8GB"                # limits: see the README
//! max_running_queries = 8
//! metrics_listen = "127.0.0.1:9464"
//!
//! [[source]]                          # more sources, each its own catalog
//! kind = "cyoda"
//! catalog = "cyoda"
//! url = "http://cpm.internal:8080/api"
//! auth = "passthrough"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use serde::Deserialize;

/// The contents of a `tsql.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Folder of entity files.
    pub data: Option<PathBuf>,
    /// Serve the demo dataset.
    pub demo: Option<bool>,
    /// `fail` or `skip`.
    pub on_bad_record: Option<String>,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// Who may connect.
    #[serde(default)]
    pub users: Vec<User>,
    /// Bytes all running queries together may hold (`4GB`, `512MB`, …);
    /// default: half the machine's memory.
    pub memory_limit: Option<String>,
    /// Bytes one query may hold; default: half of `memory_limit`.
    pub query_memory_limit: Option<String>,
    /// Where queries spill to disk; default: the system's temporary folder.
    pub spill_dir: Option<PathBuf>,
    /// `text` (default) or `json`: one JSON object per log line.
    pub log_format: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served
    /// (default 127.0.0.1:9464; "" for nowhere).
    pub metrics_listen: Option<String>,
    /// Where Trino clients connect over HTTP (default 127.0.0.1:8080; "" for nowhere).
    pub trino_listen: Option<String>,
    /// Trino clients may connect without a password, named by X-Trino-User
    /// (default false; true on the demo data).
    pub trino_allow_insecure: Option<bool>,
    /// Queries running at once (default: 4 per core).
    pub max_running_queries: Option<usize>,
    /// Queries waiting at once; more are refused with RESOURCE_EXHAUSTED (default 256).
    pub max_queued_queries: Option<usize>,
    /// Queries of one user running at once (default: 2 per core).
    pub max_queries_per_user: Option<usize>,
    /// Seconds a query may take, queueing included (default 3600; 0: no limit).
    pub query_timeout_seconds: Option<f64>,
    /// Sources besides (or instead of) `data`/`demo`, each its own catalog.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
}

/// One `[[source]]` of the config file.
///
/// ```toml
/// [[source]]
/// kind = "cyoda"                     # a Cyoda entity service
/// catalog = "cyoda"                  # tables appear as cyoda.entities.<table>
/// url = "http://cpm.internal:8080/api"
/// auth = "passthrough"               # or client_id/client_secret; neither: no credentials
/// timeout_seconds = 30
///
/// [[source]]
/// kind = "cassandra"                 # a Cassandra or ScyllaDB cluster
/// catalog = "cassandra"
/// contact_points = ["10.0.0.1:9042"]
/// keyspaces = ["client_a"]
///
/// [[source]]
/// kind = "files"                     # local entity files
/// catalog = "files"
/// data = "/var/lib/tsql/entities"    # or: demo = true
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `cyoda` or `files`.
    pub kind: String,
    /// Catalog name of its tables.
    pub catalog: String,
    /// Schema name (default `entities`).
    pub schema: Option<String>,
    /// Cyoda: base URL of the API.
    pub url: Option<String>,
    /// Cyoda: `passthrough` (each user's own Cyoda identity).
    pub auth: Option<String>,
    /// Cyoda: technical client id (one identity for all, single-tenant).
    pub client_id: Option<String>,
    /// Cyoda: its secret.
    pub client_secret: Option<String>,
    /// Cyoda: seconds one request may take (default 30).
    pub timeout_seconds: Option<f64>,
    /// Cyoda: seconds the model list is cached (default 2).
    pub metadata_ttl_seconds: Option<f64>,
    /// Cyoda: entities per page (default 10000, the service's maximum).
    pub page_size: Option<usize>,
    /// Cyoda: pages requested ahead per partition (default 2).
    pub pages_in_flight: Option<usize>,
    /// Files: the folder.
    pub data: Option<PathBuf>,
    /// Files: the demo dataset.
    pub demo: Option<bool>,
    /// Cassandra: `host:port` of the nodes to contact first.
    pub contact_points: Option<Vec<String>>,
    /// Cassandra: the keyspaces whose tables are exposed.
    pub keyspaces: Option<Vec<String>>,
    /// Cassandra: consistency of every read (default QUORUM).
    pub consistency: Option<String>,
    /// Cassandra: seconds one CQL request may take (default 10).
    pub request_timeout_seconds: Option<f64>,
    /// Cassandra: seconds to open a connection (default 5).
    pub connect_timeout_seconds: Option<f64>,
    /// Cassandra: user name for password authentication.
    pub username: Option<String>,
    /// Cassandra: its password.
    pub password: Option<String>,
    /// Cassandra: PEM file of the CA that signed the nodes' certificates (turns TLS on).
    pub tls_ca: Option<PathBuf>,
    /// Cassandra: send filters on non-key columns with ALLOW FILTERING (default false).
    pub allow_filtering: Option<bool>,
    /// Cassandra: megabytes one token-range split should hold (default 64).
    pub split_size_mb: Option<u64>,
    /// Cassandra: `decimal` (default: varint as DECIMAL(38,0), decimal as DECIMAL(38,18)) or `text`.
    pub wide_numbers: Option<String>,
    /// Cassandra: retries of a failed read attempt on another node (default 2).
    pub retries: Option<usize>,
    /// Cassandra: user name -> the keyspaces that user may see (default: every user sees every keyspace).
    pub tenants: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// Cassandra: tables whose rows are entity revisions.
    #[serde(default)]
    pub entity_table: Vec<EntityTableConfig>,
}

/// One `[[source.entity_table]]`: a Cassandra table of entity revisions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityTableConfig {
    /// `keyspace.table`.
    pub table: String,
    /// Column with the model name.
    pub model: String,
    /// Column with the model version.
    pub version: String,
    /// Column with the entity id.
    pub id: String,
    /// Column with the revision's time.
    pub updated: String,
    /// Column with the creation time (default: the first revision's time).
    pub created: Option<String>,
    /// Column with the workflow state.
    pub state: String,
    /// Column with the JSON document.
    pub document: String,
    /// Boolean column marking deleting revisions.
    pub deleted: Option<String>,
    /// Schema of its entity tables (default `<keyspace>_entities`).
    pub schema: Option<String>,
    /// Seconds inferred shapes are reused before the table is read for them again (default 5).
    pub shape_ttl_seconds: Option<f64>,
}

impl SourceConfig {
    /// The engine source this entry describes, or what is wrong with it.
    pub fn to_source(&self) -> Result<crate::Source, String> {
        let at = format!("[[source]] catalog = \"{}\"", self.catalog);
        let schema = self
            .schema
            .clone()
            .unwrap_or_else(|| tsql_entity_tables::SCHEMA.to_string());
        if self.catalog.is_empty() {
            return Err("a [[source]] needs `catalog`, the name its tables appear under".into());
        }
        match self.kind.as_str() {
            "files" => {
                let data = match (&self.data, self.demo.unwrap_or(false)) {
                    (Some(d), false) => crate::DataSource::Folder(d.clone()),
                    (None, true) => crate::DataSource::Demo,
                    _ => {
                        return Err(format!(
                            "{at}: a files source needs either `data` (a folder) or `demo = true`"
                        ));
                    }
                };
                Ok(crate::Source::Files {
                    catalog: self.catalog.clone(),
                    schema,
                    data,
                })
            }
            "cyoda" => {
                let url = self.url.clone().ok_or_else(|| {
                    format!(
                        "{at}: a cyoda source needs `url`, e.g. \"http://cpm.internal:8080/api\""
                    )
                })?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "{at}: url \"{url}\" must start with http:// or https://"
                    ));
                }
                let auth = match (self.auth.as_deref(), &self.client_id, &self.client_secret) {
                    (Some("passthrough"), None, None) => tsql_cyoda::CyodaAuth::Passthrough,
                    (None, Some(id), Some(secret)) => tsql_cyoda::CyodaAuth::Client {
                        id: id.clone(),
                        secret: secret.clone(),
                    },
                    (None, None, None) => tsql_cyoda::CyodaAuth::None,
                    (Some(other), None, None) => {
                        return Err(format!(
                            "{at}: auth must be \"passthrough\" (or leave it out and give client_id and client_secret), not \"{other}\""
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "{at}: give either auth = \"passthrough\" or both client_id and client_secret"
                        ));
                    }
                };
                let mut options = tsql_cyoda::CyodaOptions::new(&url, auth);
                let seconds = |v: Option<f64>, name: &str, default: std::time::Duration| match v {
                    None => Ok(default),
                    Some(s) if s > 0.0 && s.is_finite() => {
                        Ok(std::time::Duration::from_secs_f64(s))
                    }
                    Some(s) => Err(format!(
                        "{at}: {name} must be a positive number of seconds, not {s}"
                    )),
                };
                options.timeout =
                    seconds(self.timeout_seconds, "timeout_seconds", options.timeout)?;
                options.metadata_ttl = seconds(
                    self.metadata_ttl_seconds,
                    "metadata_ttl_seconds",
                    options.metadata_ttl,
                )?;
                if let Some(p) = self.page_size {
                    if !(1..=10_000).contains(&p) {
                        return Err(format!(
                            "{at}: page_size must be between 1 and 10000 (the service's maximum), not {p}"
                        ));
                    }
                    options.page_size = p;
                }
                if let Some(n) = self.pages_in_flight {
                    options.pages_in_flight = n.max(1);
                }
                Ok(crate::Source::Cyoda {
                    catalog: self.catalog.clone(),
                    schema,
                    options,
                })
            }
            "cassandra" => self.cassandra(&at),
            other => Err(format!(
                "{at}: kind must be \"cyoda\", \"cassandra\" or \"files\", not \"{other}\""
            )),
        }
    }
}

fn seconds(at: &str, v: Option<f64>, name: &str, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) if s >= 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(format!("{at}: {name} must be a number of seconds, not {s}")),
    }
}

impl SourceConfig {
    fn cassandra(&self, at: &str) -> Result<crate::Source, String> {
        let contact_points = self.contact_points.clone().unwrap_or_default();
        if contact_points.is_empty() {
            return Err(format!(
                "{at}: a cassandra source needs `contact_points`, e.g. [\"10.0.0.1:9042\"]"
            ));
        }
        let keyspaces = self.keyspaces.clone().unwrap_or_default();
        if keyspaces.is_empty() {
            return Err(format!(
                "{at}: a cassandra source needs `keyspaces`, the keyspaces whose tables it exposes"
            ));
        }
        let mut o = tsql_cassandra::CassandraOptions::new(contact_points, keyspaces.clone());
        if let Some(c) = &self.consistency {
            o.consistency =
                tsql_cassandra::parse_consistency(c).map_err(|e| format!("{at}: {e}"))?;
        }
        o.request_timeout = seconds(
            at,
            self.request_timeout_seconds,
            "request_timeout_seconds",
            o.request_timeout,
        )?;
        o.connect_timeout = seconds(
            at,
            self.connect_timeout_seconds,
            "connect_timeout_seconds",
            o.connect_timeout,
        )?;
        o.metadata_ttl = seconds(
            at,
            self.metadata_ttl_seconds,
            "metadata_ttl_seconds",
            o.metadata_ttl,
        )?;
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => o.credentials = Some((u.clone(), p.clone())),
            (None, None) => {}
            _ => {
                return Err(format!(
                    "{at}: give both `username` and `password`, or neither"
                ));
            }
        }
        o.tls_ca = self.tls_ca.clone();
        o.allow_filtering = self.allow_filtering.unwrap_or(false);
        if let Some(p) = self.page_size {
            o.page_size = i32::try_from(p.clamp(1, 1_000_000)).expect("clamped");
        }
        if let Some(mb) = self.split_size_mb {
            o.split_bytes = mb.max(1) << 20;
        }
        if let Some(r) = self.retries {
            o.retries = r;
        }
        o.wide_numbers = match self.wide_numbers.as_deref() {
            None | Some("decimal") => tsql_cassandra::WideNumbers::Decimal,
            Some("text") => tsql_cassandra::WideNumbers::Text,
            Some(other) => {
                return Err(format!(
                    "{at}: wide_numbers must be \"decimal\" or \"text\", not \"{other}\""
                ));
            }
        };
        for e in &self.entity_table {
            let Some((ks, table)) = e.table.split_once('.') else {
                return Err(format!(
                    "{at}: entity_table table \"{}\" must be keyspace.table",
                    e.table
                ));
            };
            if !keyspaces.iter().any(|k| k == ks) {
                return Err(format!(
                    "{at}: entity_table {} is in keyspace {ks}, which is not in `keyspaces`",
                    e.table
                ));
            }
            o.entity_tables.push(tsql_cassandra::EntityTableOptions {
                keyspace: ks.to_string(),
                table: table.to_string(),
                schema: e.schema.clone().unwrap_or_else(|| format!("{ks}_entities")),
                model: e.model.clone(),
                version: e.version.clone(),
                id: e.id.clone(),
                updated: e.updated.clone(),
                created: e.created.clone(),
                state: e.state.clone(),
                document: e.document.clone(),
                deleted: e.deleted.clone(),
                shape_ttl: seconds(
                    at,
                    e.shape_ttl_seconds,
                    "shape_ttl_seconds",
                    Duration::from_secs(5),
                )?,
            });
        }
        if let Some(t) = &self.tenants {
            for (user, spaces) in t {
                if let Some(bad) = spaces.iter().find(|k| !keyspaces.contains(k)) {
                    return Err(format!(
                        "{at}: tenants.{user} names keyspace {bad}, which is not in `keyspaces`"
                    ));
                }
            }
        }
        Ok(crate::Source::Cassandra {
            catalog: self.catalog.clone(),
            options: o,
            tenants: self.tenants.clone(),
        })
    }
}

/// A user allowed to connect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Argon2 PHC string (`$argon2id$…`, as printed by `tsql hash-password`)
    /// or bcrypt hash (`$2b$…`, `$2a$…`, `$2y$…`).
    pub password_hash: String,
    /// Roles (kept for authorization rules to come).
    #[serde(default)]
    pub roles: Vec<String>,
}

impl FileConfig {
    /// The memory settings: as configured; else, when `serving`, from the
    /// machine; else none (a one-off query may use what it needs).
    pub fn memory(&self, serving: bool) -> Result<Option<crate::memory::MemorySettings>, String> {
        let size = |v: &Option<String>, key: &str| -> Result<Option<usize>, String> {
            v.as_deref()
                .map(|t| {
                    crate::memory::parse_size(t).ok_or_else(|| {
                        format!("{key} = \"{t}\" is not a size: write e.g. \"4GB\" or \"512MB\"")
                    })
                })
                .transpose()
        };
        let limit = size(&self.memory_limit, "memory_limit")?;
        let per_query = size(&self.query_memory_limit, "query_memory_limit")?;
        if limit.is_none() && per_query.is_none() && self.spill_dir.is_none() && !serving {
            return Ok(None);
        }
        let mut m = crate::memory::MemorySettings::from_machine();
        if let Some(l) = limit {
            m.limit = l;
            m.per_query = l / 2;
        }
        if let Some(q) = per_query {
            m.per_query = q.min(m.limit);
        }
        m.spill_dir = self.spill_dir.clone();
        Ok(Some(m))
    }

    /// The admission limits: as configured, else the defaults.
    pub fn admission(&self) -> Result<crate::admission::AdmissionSettings, String> {
        let mut a = crate::admission::AdmissionSettings::default();
        let positive = |v: Option<usize>, key: &str, default: usize| match v {
            Some(0) => Err(format!("{key} must be at least 1")),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        a.max_running = positive(
            self.max_running_queries,
            "max_running_queries",
            a.max_running,
        )?;
        a.max_queued = self.max_queued_queries.unwrap_or(a.max_queued);
        a.per_user = positive(
            self.max_queries_per_user,
            "max_queries_per_user",
            a.per_user,
        )?;
        match self.query_timeout_seconds {
            Some(t) if t == 0.0 => a.timeout = None,
            Some(t) if t > 0.0 && t.is_finite() => {
                a.timeout = Some(std::time::Duration::from_secs_f64(t))
            }
            Some(t) => {
                return Err(format!(
                    "query_timeout_seconds must be a positive number (0: no limit), not {t}"
                ));
            }
            None => {}
        }
        Ok(a)
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let config: FileConfig =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        config
            .memory(false)
            .and_then(|_| config.admission())
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        for source in &config.sources {
            source
                .to_source()
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
        }
        for u in &config.users {
            u.check_hash().map_err(|e| {
                format!(
                    "config file {}: user {}: password_hash is neither an argon2 PHC string nor a bcrypt hash ({e}); make one with `tsql hash-password`",
                    path.display(),
                    u.name
                )
            })?;
        }
        Ok(config)
    }
}

impl User {
    fn is_bcrypt(&self) -> bool {
        self.password_hash.starts_with("$2")
    }

    /// Whether the password hash can be read (argon2 PHC or bcrypt).
    fn check_hash(&self) -> Result<(), String> {
        if self.is_bcrypt() {
            self.password_hash
                .parse::<bcrypt::HashParts>()
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            PasswordHash::new(&self.password_hash)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }

    /// True when `password` matches this user's hash.
    pub fn verify(&self, password: &str) -> bool {
        if self.is_bcrypt() {
            return bcrypt::verify(password, &self.password_hash).unwrap_or(false);
        }
        PasswordHash::new(&self.password_hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

/// An argon2id PHC string for `password`, with a fresh salt.
pub fn hash_password(password: &str) -> String {
    let mut salt_bytes = [0u8; 16];
    salt_bytes.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..]);
    let salt = argon2::password_hash::SaltString::encode_b64(&salt_bytes)
        .expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password")
        .to_string()
}

/// The user `--demo` runs with when no users are configured.
pub const DEMO_USER: (&str, &str) = ("admin", "admin");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify() {
        let u = User {
            name: "a".into(),
            password_hash: hash_password("s3cret"),
            roles: vec![],
        };
        assert!(u.verify("s3cret"));
        assert!(!u.verify("S3cret"));
    }

    #[test]
    fn bcrypt_hashes_verify() {
        let hash = bcrypt::hash_with_salt("s3cret", 4, *b"0123456789abcdef")
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        let u = User {
            name: "b".into(),
            password_hash: hash,
            roles: vec![],
        };
        assert!(u.check_hash().is_ok());
        assert!(u.verify("s3cret"));
        assert!(!u.verify("s3cret "));
        let broken = User {
            password_hash: "$2b$04$short".into(),
            ..u
        };
        assert!(broken.check_hash().is_err());
        assert!(!broken.verify("s3cret"));
    }

    #[test]
    fn config_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tsql.toml");
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:1\"\n[[users]]\nname = \"x\"\npassword_hash = \"plain\"\n",
        )
        .unwrap();
        assert!(
            FileConfig::load(&p)
                .unwrap_err()
                .contains("tsql hash-password")
        );
        std::fs::write(&p, "lisen = 1\n").unwrap();
        assert!(FileConfig::load(&p).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn cassandra_sources_are_checked() {
        let source = |extra: &str| -> Result<crate::Source, String> {
            let text = format!(
                "[[source]]\nkind = \"cassandra\"\ncatalog = \"c\"\ncontact_points = [\"127.0.0.1:9042\"]\nkeyspaces = [\"a\", \"b\"]\n{extra}"
            );
            let config: FileConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
            config.sources[0].to_source()
        };
        let Ok(crate::Source::Cassandra {
            options, tenants, ..
        }) = source(
            "consistency = \"local_quorum\"\n[source.tenants]\nalice = [\"a\"]\n[[source.entity_table]]\ntable = \"a.revs\"\nmodel = \"m\"\nversion = \"v\"\nid = \"i\"\nupdated = \"u\"\nstate = \"s\"\ndocument = \"d\"\n",
        )
        else {
            panic!("a valid cassandra source")
        };
        assert_eq!(
            options.consistency,
            tsql_cassandra::parse_consistency("LOCAL_QUORUM").unwrap()
        );
        assert_eq!(options.entity_tables[0].schema, "a_entities");
        assert_eq!(tenants.unwrap()["alice"], vec!["a".to_string()]);
        assert!(
            source("consistency = \"most\"")
                .unwrap_err()
                .contains("unknown consistency")
        );
        assert!(
            source("[source.tenants]\nbob = [\"z\"]")
                .unwrap_err()
                .contains("not in `keyspaces`")
        );
        assert!(source("username = \"u\"").unwrap_err().contains("both"));
        assert!(
            source("[[source.entity_table]]\ntable = \"revs\"\nmodel = \"m\"\nversion = \"v\"\nid = \"i\"\nupdated = \"u\"\nstate = \"s\"\ndocument = \"d\"\n")
                .unwrap_err()
                .contains("keyspace.table")
        );
    }
}
