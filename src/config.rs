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
    /// default: half the machine's memory, or half the container's memory
    /// limit (cgroup) when that is smaller.
    pub memory_limit: Option<String>,
    /// Bytes one query may hold; default: half of `memory_limit`.
    pub query_memory_limit: Option<String>,
    /// Where queries spill to disk; default: the system's temporary folder.
    pub spill_dir: Option<PathBuf>,
    /// Bytes all running queries together may hold in spill files; default:
    /// half the spill folder's free space at startup, at most 100 GiB.
    pub spill_limit: Option<String>,
    /// Bytes one query may hold in spill files; default: half of `spill_limit`.
    pub query_spill_limit: Option<String>,
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
    /// Queries running at once (default: 4 per core; cores as the
    /// container's CPU quota allows).
    pub max_running_queries: Option<usize>,
    /// Queries waiting at once; more are refused with RESOURCE_EXHAUSTED (default 256).
    pub max_queued_queries: Option<usize>,
    /// Queries of one user running at once (default: 2 per core).
    pub max_queries_per_user: Option<usize>,
    /// Seconds a query may take, queueing included (default 1800; 0: no
    /// limit); a `[[users]]` entry may set its own.
    pub query_timeout_seconds: Option<f64>,
    /// Secret that seals Flight tickets (at least 32 characters); replicas
    /// behind one load balancer share it. Default: a random key per process.
    /// Also `TSQL_TICKET_KEY`.
    pub ticket_key: Option<String>,
    /// `ticket_key` read from this file (a mounted Kubernetes Secret).
    pub ticket_key_file: Option<PathBuf>,
    /// `ticket_key` read from this environment variable.
    pub ticket_key_env: Option<String>,
    /// Seconds a Cyoda client-secret login is reused before the service is
    /// asked again (default 60).
    pub login_cache_seconds: Option<f64>,
    /// Failed logins allowed per client id, and per peer address, per minute;
    /// beyond, logins are refused without asking upstream (default 10).
    pub login_failures_per_minute: Option<u32>,
    /// Seconds running queries may go on after SIGTERM (new ones are refused
    /// at once); then they are cancelled and the process exits (default 30).
    pub shutdown_grace_seconds: Option<f64>,
    /// The cluster's workers: `host:port` entries; a name stands for all its
    /// addresses (a Kubernetes headless Service), resolved again every few
    /// seconds. Unset: this node runs every query itself.
    pub workers: Option<Vec<String>>,
    /// Where this node serves plan fragments to the cluster (host:port;
    /// default 0.0.0.0:32020 when `workers` or `cluster_secret` is set).
    pub worker_listen: Option<String>,
    /// The URL other nodes reach this node's `worker_listen` at (default
    /// `http://<worker_listen>`; for 0.0.0.0, the address this host reaches
    /// its first worker from — a pod's IP — else the host's name).
    pub worker_url: Option<String>,
    /// The secret every node of one cluster shares (32+ characters): passes
    /// of plan fragments are sealed with it, and a worker runs nothing
    /// without one.
    pub cluster_secret: Option<String>,
    /// `cluster_secret` read from this file (a mounted Kubernetes Secret).
    pub cluster_secret_file: Option<PathBuf>,
    /// `cluster_secret` read from this environment variable.
    pub cluster_secret_env: Option<String>,
    /// Whether queries run over the workers: `auto` (default), `on` or `off`;
    /// a session changes it with `SET SESSION distributed = '...'`.
    pub distributed: Option<String>,
    /// Under `auto`, a query runs over the workers when its scans have at
    /// least this many splits (default: twice this node's query threads).
    pub distribute_min_splits: Option<usize>,
    /// Queries the whole cluster runs at once, counted over every
    /// coordinator (default: this node's `max_running_queries`).
    pub cluster_max_running_queries: Option<usize>,
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
    /// Cyoda: `client_secret` read from this file.
    pub client_secret_file: Option<PathBuf>,
    /// Cyoda: `client_secret` read from this environment variable.
    pub client_secret_env: Option<String>,
    /// Cyoda: seconds one request may take (default 30).
    pub timeout_seconds: Option<f64>,
    /// Cyoda: seconds the model list is cached (default 2).
    pub metadata_ttl_seconds: Option<f64>,
    /// Cyoda: entities per page (default 10000, the service's maximum).
    pub page_size: Option<usize>,
    /// Cyoda: pages requested ahead per partition (default 2).
    pub pages_in_flight: Option<usize>,
    /// Cyoda: the issuer (`iss`) every token must name (default: the service's own).
    pub issuer: Option<String>,
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
    /// Cassandra: `password` read from this file.
    pub password_file: Option<PathBuf>,
    /// Cassandra: `password` read from this environment variable.
    pub password_env: Option<String>,
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
                        "{at}: key `url`: expected an address starting with http:// or https://, got \"{url}\""
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
                        "{at}: key `{name}`: expected a positive number of seconds, got {s}"
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
                            "{at}: key `page_size`: expected 1 to 10000 (the service's maximum), got {p}"
                        ));
                    }
                    options.page_size = p;
                }
                if let Some(n) = self.pages_in_flight {
                    options.pages_in_flight = n.max(1);
                }
                options.issuer = self.issuer.clone().filter(|i| !i.is_empty());
                Ok(crate::Source::Cyoda {
                    catalog: self.catalog.clone(),
                    schema,
                    options,
                })
            }
            "cassandra" => self.cassandra(&at),
            other => Err(format!(
                "{at}: key `kind`: expected \"cyoda\", \"cassandra\" or \"files\", got \"{other}\""
            )),
        }
    }
}

fn seconds(at: &str, v: Option<f64>, name: &str, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) if s >= 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(format!(
            "{at}: key `{name}`: expected a number of seconds (0 or more), got {s}"
        )),
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
            o.consistency = tsql_cassandra::parse_consistency(c)
                .map_err(|e| format!("{at}: key `consistency`: {e}"))?;
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
                    "{at}: key `wide_numbers`: expected \"decimal\" or \"text\", got \"{other}\""
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

/// What a TOML syntax or type error says, with the line and the key it is
/// at, e.g. `, line 3: key `memory_limit`: expected a string, got integer `8``.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    // Shown without its input, the error names the key it was found under.
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let mut key = shown
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .map(str::to_string);
    let message = e.message().trim_end();
    let what = if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        key = Some(match key {
            Some(k) => format!("{k}.{name}"),
            None => name.to_string(),
        });
        let known = expected
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ");
        format!("tsql has no such setting here (check the spelling); the settings here are {known}")
    } else if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    {
        match rest.rsplit_once(", expected ") {
            Some((got, expected)) => format!("expected {}, got {got}", expected_text(expected)),
            None => rest.to_string(),
        }
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        format!("`{}` is missing: add it", rest.trim_end_matches('`'))
    } else {
        message.to_string()
    };
    let mut out = String::new();
    if let Some(l) = line {
        out.push_str(&format!(", line {l}"));
    }
    out.push_str(": ");
    if let Some(k) = key {
        out.push_str(&format!("key `{k}`: "));
    }
    out.push_str(&what);
    out
}

/// A value serde expected, in words.
fn expected_text(expected: &str) -> &str {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" | "i64" | "i32" => "a whole number",
        "f64" | "f32" => "a number",
        "a boolean" => "true or false",
        "a string" => "a string in quotes",
        "a sequence" => "a list such as [\"a\", \"b\"]",
        other => other,
    }
}

/// A user allowed to connect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Argon2 PHC string (`$argon2id$…`, as printed by `tsql hash-password`)
    /// or bcrypt hash (`$2b$…`, `$2a$…`, `$2y$…`). Given here, or read
    /// from `password_hash_file` or `password_hash_env` when the file is loaded.
    #[serde(default)]
    pub password_hash: String,
    /// `password_hash` read from this file (a mounted Kubernetes Secret).
    pub password_hash_file: Option<PathBuf>,
    /// `password_hash` read from this environment variable.
    pub password_hash_env: Option<String>,
    /// Roles (kept for authorization rules to come).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Seconds this user's queries may take, queueing included (0: no
    /// limit); the server's `query_timeout_seconds` when unset.
    pub query_timeout_seconds: Option<f64>,
}

/// A secret given one of three ways: `<key> = "…"` in the file (`value`),
/// `<key>_file = "/path"` (the file's text, without its trailing newline) or
/// `<key>_env = "VAR"` (the variable's value). Returns the secret, if any
/// form was given; more than one form, an unreadable file or an unset
/// variable is an error naming the key and where it looked.
pub fn secret(
    key: &str,
    value: Option<&str>,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<String>, String> {
    let given = [value.is_some(), file.is_some(), env.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(format!(
            "give only one of `{key}`, `{key}_file` and `{key}_env`"
        ));
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "key `{key}_file`: cannot read {}: {e}; mount the secret there or fix the path",
                path.display()
            )
        })?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(format!(
                "key `{key}_file`: {} is empty; it should hold the {key}",
                path.display()
            ));
        }
        return Ok(Some(text.to_string()));
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            Ok(_) => Err(format!(
                "key `{key}_env`: environment variable {var} is empty; set it to the {key}"
            )),
            Err(_) => Err(format!(
                "key `{key}_env`: environment variable {var} is not set; set it to the {key} (or give `{key}` or `{key}_file`)"
            )),
        };
    }
    Ok(value.map(str::to_string))
}

impl FileConfig {
    /// Fills in every secret given as `<key>_file` or `<key>_env`:
    /// `ticket_key`, the users' `password_hash`, the sources'
    /// `client_secret` and `password`. Afterwards each `<key>` holds the
    /// secret itself (and its `_file`/`_env` are cleared), so the rest of
    /// tsql sees one form only.
    pub fn resolve_secrets(&mut self) -> Result<(), String> {
        self.ticket_key = secret(
            "ticket_key",
            self.ticket_key.as_deref(),
            self.ticket_key_file.take().as_deref(),
            self.ticket_key_env.take().as_deref(),
        )?;
        self.cluster_secret = secret(
            "cluster_secret",
            self.cluster_secret.as_deref(),
            self.cluster_secret_file.take().as_deref(),
            self.cluster_secret_env.take().as_deref(),
        )?;
        for u in &mut self.users {
            let given = (!u.password_hash.is_empty()).then_some(u.password_hash.as_str());
            let hash = secret(
                "password_hash",
                given,
                u.password_hash_file.take().as_deref(),
                u.password_hash_env.take().as_deref(),
            )
            .map_err(|e| format!("user {}: {e}", u.name))?;
            u.password_hash = hash.ok_or_else(|| {
                format!(
                    "user {}: `password_hash` is missing: give password_hash (from `tsql hash-password`), password_hash_file or password_hash_env",
                    u.name
                )
            })?;
        }
        for s in &mut self.sources {
            let at = format!("[[source]] catalog = \"{}\"", s.catalog);
            s.client_secret = secret(
                "client_secret",
                s.client_secret.as_deref(),
                s.client_secret_file.take().as_deref(),
                s.client_secret_env.take().as_deref(),
            )
            .map_err(|e| format!("{at}: {e}"))?;
            s.password = secret(
                "password",
                s.password.as_deref(),
                s.password_file.take().as_deref(),
                s.password_env.take().as_deref(),
            )
            .map_err(|e| format!("{at}: {e}"))?;
        }
        Ok(())
    }

    /// The memory settings: as configured; else, when `serving`, from the
    /// machine; else none (a one-off query may use what it needs).
    pub fn memory(&self, serving: bool) -> Result<Option<crate::memory::MemorySettings>, String> {
        let size = |v: &Option<String>, key: &str| -> Result<Option<usize>, String> {
            v.as_deref()
                .map(|t| {
                    crate::memory::parse_size(t).ok_or_else(|| {
                        format!(
                            "key `{key}`: expected a size like \"8GB\" or \"512MB\", got \"{t}\""
                        )
                    })
                })
                .transpose()
        };
        let limit = size(&self.memory_limit, "memory_limit")?;
        let per_query = size(&self.query_memory_limit, "query_memory_limit")?;
        let spill_limit = size(&self.spill_limit, "spill_limit")?;
        let query_spill_limit = size(&self.query_spill_limit, "query_spill_limit")?;
        if limit.is_none()
            && per_query.is_none()
            && self.spill_dir.is_none()
            && spill_limit.is_none()
            && query_spill_limit.is_none()
            && !serving
        {
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
        m.spill_limit = spill_limit.map(|b| b as u64);
        m.query_spill_limit = query_spill_limit.map(|b| b as u64);
        Ok(Some(m))
    }

    /// The admission limits: as configured, else the defaults.
    pub fn admission(&self) -> Result<crate::admission::AdmissionSettings, String> {
        let mut a = crate::admission::AdmissionSettings::default();
        let positive = |v: Option<usize>, key: &str, default: usize| match v {
            Some(0) => Err(format!("key `{key}`: must be at least 1, got 0")),
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
        if let Some(t) = timeout(self.query_timeout_seconds, "query_timeout_seconds")? {
            a.timeout = t;
        }
        for u in &self.users {
            let key = format!("user {}: query_timeout_seconds", u.name);
            if let Some(t) = timeout(u.query_timeout_seconds, &key)? {
                a.user_timeouts.insert(u.name.clone(), t);
            }
        }
        Ok(a)
    }

    /// The cluster settings, when this node is part of a cluster (it has
    /// `workers`, or serves fragments: `cluster_secret`).
    pub fn cluster(&self) -> Result<Option<crate::cluster::ClusterSettings>, String> {
        crate::cluster::ClusterSettings::from_config(self)
    }

    /// The security settings: the key that seals tickets (`ticket_key`, else
    /// `TSQL_TICKET_KEY`, else random), how long a Cyoda login is reused and
    /// how many failed logins are allowed.
    pub fn security(&self) -> Result<crate::auth::SecuritySettings, String> {
        let from_env = std::env::var("TSQL_TICKET_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        let sealer = match self.ticket_key.clone().or(from_env) {
            Some(secret) => crate::seal::Sealer::from_secret(&secret)?,
            None => crate::seal::Sealer::random(),
        };
        let mut settings = crate::auth::SecuritySettings {
            sealer: std::sync::Arc::new(sealer),
            ..Default::default()
        };
        match self.login_cache_seconds {
            Some(t) if t >= 0.0 && t.is_finite() => {
                settings.login_cache = std::time::Duration::from_secs_f64(t)
            }
            Some(t) => {
                return Err(format!(
                    "login_cache_seconds must be 0 or more seconds (0: ask the service at every login), not {t}"
                ));
            }
            None => {}
        }
        match self.login_failures_per_minute {
            Some(0) => {
                return Err("login_failures_per_minute must be at least 1".into());
            }
            Some(n) => settings.login_failures_per_minute = n,
            None => {}
        }
        if let Some(u) = self
            .users
            .iter()
            .find(|u| u.name.contains(':') || u.name.is_empty())
        {
            return Err(format!(
                "user '{}': a user name may not be empty or hold a ':' (Basic credentials are user:password)",
                u.name
            ));
        }
        Ok(settings)
    }

    /// How long running queries may go on after SIGTERM (`shutdown_grace_seconds`).
    pub fn shutdown_grace(&self) -> Result<Duration, String> {
        match self.shutdown_grace_seconds {
            None => Ok(crate::shutdown::DEFAULT_GRACE),
            Some(s) if s >= 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
            Some(s) => Err(format!(
                "key `shutdown_grace_seconds`: expected a number of seconds (0 or more), got {s}"
            )),
        }
    }

    /// Checks the keys that take one of a few words.
    fn choices(&self) -> Result<(), String> {
        let one_of = |v: &Option<String>, key: &str, words: &[&str]| match v.as_deref() {
            Some(w) if !words.contains(&w) => Err(format!(
                "key `{key}`: expected {}, got \"{w}\"",
                words
                    .iter()
                    .map(|w| format!("\"{w}\""))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
            _ => Ok(()),
        };
        one_of(&self.on_bad_record, "on_bad_record", &["fail", "skip"])?;
        one_of(&self.log_format, "log_format", &["text", "json"])
    }

    /// Reads and checks a config file. An error names the file, and the
    /// key (and line) where it can.
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read config file {}: {e}; check the path given to --config",
                path.display()
            )
        })?;
        let mut config: FileConfig = toml::from_str(&text)
            .map_err(|e| format!("config file {}{}", path.display(), toml_error(&text, &e)))?;
        config
            .resolve_secrets()
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        config
            .memory(false)
            .and_then(|_| config.admission())
            .and_then(|_| config.security().map(|_| ()))
            .and_then(|_| config.choices())
            .and_then(|_| config.shutdown_grace().map(|_| ()))
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        for (i, source) in config.sources.iter().enumerate() {
            source
                .to_source()
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
            if config.sources[..i]
                .iter()
                .any(|o| o.catalog == source.catalog)
            {
                return Err(format!(
                    "config file {}: [[source]] catalog = \"{}\": key `catalog`: another [[source]] uses it too; give each its own",
                    path.display(),
                    source.catalog
                ));
            }
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

/// A configured timeout: `None` when not configured, `Some(None)` for 0 (no
/// limit), else the duration; `key` names it in the error.
fn timeout(seconds: Option<f64>, key: &str) -> Result<Option<Option<Duration>>, String> {
    match seconds {
        None => Ok(None),
        Some(0.0) => Ok(Some(None)),
        Some(t) if t > 0.0 && t.is_finite() => Ok(Some(Some(Duration::from_secs_f64(t)))),
        Some(t) => Err(format!(
            "{key} must be a positive number of seconds (0: no limit), not {t}"
        )),
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
            ..Default::default()
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
            ..Default::default()
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
        assert!(
            FileConfig::load(&p)
                .unwrap_err()
                .contains("key `lisen`: tsql has no such setting")
        );
    }

    /// The error of loading a config file with `text`, with the file's path
    /// shown as FILE.
    fn load_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tsql.toml");
        std::fs::write(&p, text).unwrap();
        FileConfig::load(&p)
            .unwrap_err()
            .replace(&p.display().to_string(), "FILE")
    }

    #[test]
    fn config_errors_name_the_file_the_line_and_the_key() {
        let cases = [
            (
                "listen = \"x\"\nmemory_limit = \"8 apples\"\n",
                "config file FILE: key `memory_limit`: expected a size like \"8GB\" or \"512MB\", got \"8 apples\"",
            ),
            (
                "listen = \"x\"\nmax_running_queries = \"8\"\n",
                "config file FILE, line 2: key `max_running_queries`: expected a whole number, got string \"8\"",
            ),
            (
                "max_running_queries = 0\n",
                "config file FILE: key `max_running_queries`: must be at least 1, got 0",
            ),
            (
                "on_bad_record = \"ignore\"\n",
                "config file FILE: key `on_bad_record`: expected \"fail\" or \"skip\", got \"ignore\"",
            ),
            (
                "[[source]]\nkind = \"cassandra\"\ncatalog = \"c\"\ncontact_points = [\"h:9042\"]\nkeyspaces = [\"a\"]\nrequest_timeout_seconds = -1\n",
                "config file FILE: [[source]] catalog = \"c\": key `request_timeout_seconds`: expected a number of seconds (0 or more), got -1",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(load_error(text), want, "{text}");
        }
        let unknown = load_error("listen = \"x\"\n\nmemory_limt = \"8GB\"\n");
        assert!(
            unknown.starts_with(
                "config file FILE, line 3: key `memory_limt`: tsql has no such setting here"
            ),
            "{unknown}"
        );
        assert!(unknown.contains("`memory_limit`"), "{unknown}");
        let nested =
            load_error("[[source]]\nkind = \"files\"\ncatalog = \"f\"\ndemo = true\ntimeout = 3\n");
        assert!(nested.contains("line 5: key `source"), "{nested}");
        assert!(
            nested.contains("timeout`: tsql has no such setting"),
            "{nested}"
        );
        let typed = load_error("[[source]]\nkind = \"files\"\ncatalog = \"f\"\ndemo = \"yes\"\n");
        assert!(typed.contains("line 4: key `source"), "{typed}");
        assert!(
            typed.contains("demo`: expected true or false, got string \"yes\""),
            "{typed}"
        );
        let syntax = load_error("listen = \n");
        assert!(syntax.starts_with("config file FILE, line 1: "), "{syntax}");
        assert!(!syntax.contains("planning"), "{syntax}");
    }

    #[test]
    fn spill_limits_and_user_timeouts_are_read() {
        let config: FileConfig = toml::from_str(
            "spill_limit = \"200MB\"\nquery_spill_limit = \"64MB\"\nquery_timeout_seconds = 600\n\
             [[users]]\nname = \"batch\"\npassword_hash = \"x\"\nquery_timeout_seconds = 7200\n\
             [[users]]\nname = \"ann\"\npassword_hash = \"x\"\n",
        )
        .unwrap();
        let m = config
            .memory(false)
            .unwrap()
            .expect("spill limits need memory settings");
        assert_eq!(m.spill_limit, Some(200 << 20));
        assert_eq!(m.query_spill_limit, Some(64 << 20));
        let a = config.admission().unwrap();
        assert_eq!(
            a.timeout_of(&crate::caller::Owner::local("batch")),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            a.timeout_of(&crate::caller::Owner::local("ann")),
            Some(Duration::from_secs(600))
        );
        let bad: FileConfig = toml::from_str("spill_limit = \"lots\"").unwrap();
        assert!(bad.memory(true).unwrap_err().contains("spill_limit"));
        let bad: FileConfig = toml::from_str(
            "[[users]]\nname = \"b\"\npassword_hash = \"x\"\nquery_timeout_seconds = -1\n",
        )
        .unwrap();
        assert!(
            bad.admission()
                .unwrap_err()
                .contains("user b: query_timeout_seconds")
        );
        // Unset: the defaults (decided from the spill folder's free space at startup).
        let none: FileConfig = toml::from_str("").unwrap();
        let m = none.memory(true).unwrap().unwrap();
        assert_eq!((m.spill_limit, m.query_spill_limit), (None, None));
        assert_eq!(
            none.admission().unwrap().timeout,
            Some(crate::admission::DEFAULT_QUERY_TIMEOUT)
        );
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

    #[test]
    fn secrets_come_from_files_and_environment_variables() {
        let dir = tempfile::tempdir().unwrap();
        let hash = hash_password("pw");
        let hash_file = dir.path().join("hash");
        std::fs::write(&hash_file, format!("{hash}\n")).unwrap();
        let key_file = dir.path().join("ticket");
        std::fs::write(&key_file, "k".repeat(40) + "\r\n").unwrap();
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("TSQL_TEST_CYODA_SECRET_42", "from-env") };
        let p = dir.path().join("tsql.toml");
        std::fs::write(
            &p,
            format!(
                "ticket_key_file = \"{}\"\n[[users]]\nname = \"ann\"\npassword_hash_file = \"{}\"\n\
                 [[source]]\nkind = \"cyoda\"\ncatalog = \"c\"\nurl = \"http://h/api\"\nclient_id = \"id\"\n\
                 client_secret_env = \"TSQL_TEST_CYODA_SECRET_42\"\n",
                key_file.display(),
                hash_file.display()
            ),
        )
        .unwrap();
        let c = FileConfig::load(&p).unwrap();
        assert_eq!(c.ticket_key.as_deref(), Some("k".repeat(40).as_str()));
        assert_eq!(c.users[0].password_hash, hash);
        assert!(c.users[0].verify("pw"));
        assert_eq!(c.sources[0].client_secret.as_deref(), Some("from-env"));
        assert!(c.sources[0].client_secret_env.is_none());
    }

    #[test]
    fn secret_errors_name_the_key_and_where_it_looked() {
        let cases = [
            (
                "ticket_key_file = \"/nonexistent/tsql-key\"\n",
                "config file FILE: key `ticket_key_file`: cannot read /nonexistent/tsql-key: No such file or directory (os error 2); mount the secret there or fix the path",
            ),
            (
                "ticket_key_env = \"TSQL_TEST_UNSET_VARIABLE_9\"\n",
                "config file FILE: key `ticket_key_env`: environment variable TSQL_TEST_UNSET_VARIABLE_9 is not set; set it to the ticket_key (or give `ticket_key` or `ticket_key_file`)",
            ),
            (
                "ticket_key = \"0123456789012345678901234567890123\"\nticket_key_env = \"X\"\n",
                "config file FILE: give only one of `ticket_key`, `ticket_key_file` and `ticket_key_env`",
            ),
            (
                "[[users]]\nname = \"ann\"\n",
                "config file FILE: user ann: `password_hash` is missing: give password_hash (from `tsql hash-password`), password_hash_file or password_hash_env",
            ),
            (
                "[[users]]\nname = \"ann\"\npassword_hash = \"x\"\npassword_hash_file = \"/f\"\n",
                "config file FILE: user ann: give only one of `password_hash`, `password_hash_file` and `password_hash_env`",
            ),
            (
                "[[source]]\nkind = \"cassandra\"\ncatalog = \"cs\"\ncontact_points = [\"h:9042\"]\nkeyspaces = [\"a\"]\nusername = \"u\"\npassword_env = \"TSQL_TEST_UNSET_VARIABLE_9\"\n",
                "config file FILE: [[source]] catalog = \"cs\": key `password_env`: environment variable TSQL_TEST_UNSET_VARIABLE_9 is not set; set it to the password (or give `password` or `password_file`)",
            ),
            (
                "[[source]]\nkind = \"cyoda\"\ncatalog = \"cy\"\nurl = \"http://h\"\nclient_id = \"i\"\nclient_secret_file = \"/nonexistent/s\"\n",
                "config file FILE: [[source]] catalog = \"cy\": key `client_secret_file`: cannot read /nonexistent/s: No such file or directory (os error 2); mount the secret there or fix the path",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(load_error(text), want, "{text}");
        }
    }
}
