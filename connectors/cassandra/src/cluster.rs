//! One connection to a cluster: the driver session (opened on first use and
//! again after it failed), prepared statements, and table metadata read from
//! `system_schema` (so schema changes show up within `metadata_ttl`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::datatypes::DataType;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;
use tsql_entity_tables::{UpstreamError, UpstreamErrorKind, upstream::record_upstream};

use crate::cql_type::CqlType;
use crate::options::CassandraOptions;
use crate::pages::Pages;
use crate::routing::{ReadRetries, SlowNodes};

/// What a column is in its table's primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColumnKind {
    /// Part of the partition key.
    PartitionKey,
    /// A clustering column.
    Clustering,
    /// A static column.
    Static,
    /// A regular column.
    Regular,
}

/// One column of a table.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    /// Its name.
    pub name: String,
    /// Its type as the schema spells it.
    pub type_text: String,
    /// Its type, or why tsql cannot read it.
    pub cql: Result<CqlType, String>,
    /// Its role in the primary key.
    pub kind: ColumnKind,
    /// Position within the partition or clustering key.
    pub position: i32,
}

/// One table: its columns in `SELECT *` order (partition key, clustering
/// columns, then the others by name).
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Keyspace.
    pub keyspace: String,
    /// Table name.
    pub name: String,
    /// Columns.
    pub columns: Vec<ColumnInfo>,
}

impl TableInfo {
    /// `"keyspace"."table"`, quoted for CQL.
    pub fn cql_name(&self) -> String {
        format!("{}.{}", quote(&self.keyspace), quote(&self.name))
    }

    /// `token("k1", "k2")`: the token of a row's partition, for range conditions.
    pub fn token_expr(&self) -> String {
        let key: Vec<String> = self
            .partition_key()
            .iter()
            .map(|c| quote(&self.columns[*c].name))
            .collect();
        format!("token({})", key.join(", "))
    }

    /// Indexes of the partition key columns, in key order.
    pub fn partition_key(&self) -> Vec<usize> {
        self.of_kind(ColumnKind::PartitionKey)
    }

    /// Indexes of the clustering columns, in key order.
    pub fn clustering_key(&self) -> Vec<usize> {
        self.of_kind(ColumnKind::Clustering)
    }

    fn of_kind(&self, kind: ColumnKind) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|i| self.columns[*i].kind == kind)
            .collect()
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A CQL identifier, quoted.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The tables of one keyspace, as read at one moment.
pub type KeyspaceTables = BTreeMap<String, Arc<TableInfo>>;

/// A connection to one cluster, shared by every query.
pub struct Cluster {
    options: CassandraOptions,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    prepared: Mutex<HashMap<String, PreparedStatement>>,
    metadata: Mutex<HashMap<String, (Instant, Arc<KeyspaceTables>)>>,
    slow: Arc<SlowNodes>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("contact_points", &self.options.contact_points)
            .finish()
    }
}

impl Cluster {
    /// A cluster reached with `options`; nothing is connected yet.
    pub fn new(options: CassandraOptions) -> Self {
        Cluster {
            options,
            session: tokio::sync::Mutex::new(None),
            prepared: Mutex::new(HashMap::new()),
            metadata: Mutex::new(HashMap::new()),
            slow: Arc::new(SlowNodes::default()),
        }
    }

    /// How the cluster is read.
    pub fn options(&self) -> &CassandraOptions {
        &self.options
    }

    /// The driver session, connecting first when there is none yet.
    pub async fn session(&self) -> Result<Arc<Session>, UpstreamError> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let started = Instant::now();
        let o = &self.options;
        let profile = ExecutionProfile::builder()
            .consistency(o.consistency)
            .request_timeout(Some(o.request_timeout))
            .retry_policy(Arc::new(ReadRetries::new(o.retries)))
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&o.contact_points)
            .connection_timeout(o.connect_timeout)
            .keyspaces_to_fetch(o.keyspaces.clone())
            .default_execution_profile_handle(profile.into_handle());
        if let Some((user, password)) = &o.credentials {
            builder = builder.user(user, password);
        }
        if let Some(ca) = &o.tls_ca {
            builder = builder.tls_context(Some(tls_config(ca)?));
        }
        let session = tokio::time::timeout(o.connect_timeout * 2, builder.build())
            .await
            .map_err(|_| {
                UpstreamError::new(
                    UpstreamErrorKind::Unavailable,
                    format!(
                        "Cassandra at {} did not answer within {:?}; check that it runs and `contact_points` is right",
                        o.contact_points.join(", "),
                        o.connect_timeout * 2
                    ),
                )
            })?
            .map_err(|e| {
                let e = classify(&e, "connecting");
                record_upstream("cassandra", started.elapsed().as_secs_f64(), Some(e.kind));
                UpstreamError::new(
                    e.kind,
                    format!(
                        "cannot connect to Cassandra at {}: {}; check that it runs and `contact_points`, credentials and TLS settings are right",
                        o.contact_points.join(", "),
                        e.message
                    ),
                )
            })?;
        let session = Arc::new(session);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// `cql` prepared (once per text), with this source's consistency and
    /// page size. Preparing waits for every node, up to `request_timeout`.
    pub async fn prepare(&self, cql: &str) -> Result<PreparedStatement, UpstreamError> {
        if let Some(p) = self.prepared.lock().expect("not poisoned").get(cql) {
            return Ok(p.clone());
        }
        let session = self.session().await?;
        // The driver prepares on every node and waits for all of them, with
        // no deadline of its own: a frozen node would hold the query forever.
        let what = format!("preparing {cql}");
        let mut p = tokio::time::timeout(self.options.request_timeout, session.prepare(cql))
            .await
            .map_err(|_| crate::pages::timed_out(&what, 1, self.options.request_timeout, &[]))?
            .map_err(|e| classify(&e, &what))?;
        p.set_page_size(self.options.page_size);
        p.set_is_idempotent(true);
        self.prepared
            .lock()
            .expect("not poisoned")
            .insert(cql.to_string(), p.clone());
        Ok(p)
    }

    /// Reads `cql` with `values` page by page: each attempt at a page may
    /// take `request_timeout`, and one that goes unanswered is made again on
    /// another node (up to `retries` retries a page); nodes that did not
    /// answer lately are tried last. `what` names the read in errors
    /// ("reading ks.table").
    pub async fn pages(
        &self,
        cql: &str,
        values: Vec<CqlValue>,
        what: &str,
    ) -> Result<Pages, UpstreamError> {
        let statement = self.prepare(cql).await?;
        self.pages_of(statement, values, what).await
    }

    /// Like [`Cluster::pages`], for a statement already prepared (with a
    /// load balancing policy of its own, say).
    pub async fn pages_of(
        &self,
        statement: PreparedStatement,
        values: Vec<CqlValue>,
        what: &str,
    ) -> Result<Pages, UpstreamError> {
        let session = self.session().await?;
        Ok(Pages::start(
            session,
            statement,
            values,
            (self.options.request_timeout, self.options.retries),
            self.slow.clone(),
            what.to_string(),
        ))
    }

    /// The tables of `keyspace` (read again after `metadata_ttl`).
    pub async fn tables(&self, keyspace: &str) -> Result<Arc<KeyspaceTables>, UpstreamError> {
        if let Some((at, t)) = self.metadata.lock().expect("not poisoned").get(keyspace)
            && at.elapsed() < self.options.metadata_ttl
        {
            return Ok(t.clone());
        }
        let started = Instant::now();
        let result = self.read_tables(keyspace).await;
        record_upstream(
            "cassandra",
            started.elapsed().as_secs_f64(),
            result.as_ref().err().map(|e| e.kind),
        );
        let tables = Arc::new(result.map_err(|e| self.named(e))?);
        self.metadata
            .lock()
            .expect("not poisoned")
            .insert(keyspace.to_string(), (Instant::now(), tables.clone()));
        Ok(tables)
    }

    async fn read_tables(&self, keyspace: &str) -> Result<KeyspaceTables, UpstreamError> {
        let what = format!("reading the schema of keyspace {keyspace}");
        let key = || vec![CqlValue::Text(keyspace.to_string())];
        let mut udts: HashMap<String, Vec<(String, String)>> = HashMap::new();
        let mut types = self
            .pages(
                "SELECT type_name, field_names, field_types FROM system_schema.types WHERE keyspace_name = ?",
                key(),
                &what,
            )
            .await?;
        while let Some(page) = types.next_page().await? {
            for row in page
                .rows::<(String, Vec<String>, Vec<String>)>()
                .map_err(|e| classify(&e, &what))?
            {
                let (name, names, texts) = row.map_err(|e| classify(&e, &what))?;
                udts.insert(name, names.into_iter().zip(texts).collect());
            }
        }
        let mut by_table: BTreeMap<String, Vec<ColumnInfo>> = BTreeMap::new();
        let lookup = |name: &str| udts.get(name).cloned();
        let mut columns = self
            .pages(
                "SELECT table_name, column_name, kind, position, type FROM system_schema.columns WHERE keyspace_name = ?",
                key(),
                &what,
            )
            .await?;
        while let Some(page) = columns.next_page().await? {
            for row in page
                .rows::<(String, String, String, i32, String)>()
                .map_err(|e| classify(&e, &what))?
            {
                let (table, name, kind, position, text) = row.map_err(|e| classify(&e, &what))?;
                let kind = match kind.as_str() {
                    "partition_key" => ColumnKind::PartitionKey,
                    "clustering" => ColumnKind::Clustering,
                    "static" => ColumnKind::Static,
                    _ => ColumnKind::Regular,
                };
                by_table.entry(table).or_default().push(ColumnInfo {
                    name,
                    cql: CqlType::parse(&text, &lookup),
                    type_text: text,
                    kind,
                    position,
                });
            }
        }
        Ok(by_table
            .into_iter()
            .map(|(name, mut columns)| {
                columns.sort_by(|a, b| {
                    (a.kind, a.position, &a.name).cmp(&(b.kind, b.position, &b.name))
                });
                for c in &columns {
                    if let Err(why) = &c.cql {
                        tracing::warn!(
                            "cassandra: {keyspace}.{name}.{}: type {} cannot be read by tsql ({why}); the column fails when selected",
                            c.name,
                            c.type_text
                        );
                    }
                }
                let info = TableInfo {
                    keyspace: keyspace.to_string(),
                    name: name.clone(),
                    columns,
                };
                (name, Arc::new(info))
            })
            .collect())
    }

    /// `e`, naming the contact points when Cassandra cannot be reached.
    pub fn named(&self, e: UpstreamError) -> UpstreamError {
        let points = self.options.contact_points.join(", ");
        if e.kind == UpstreamErrorKind::Unavailable && !e.message.contains(&points) {
            UpstreamError::new(e.kind, format!("{} [contact points: {points}]", e.message))
        } else {
            e
        }
    }

    /// The Arrow type of `column` (Utf8 for a type that cannot be read: it
    /// fails when selected).
    pub fn arrow_type(&self, column: &ColumnInfo) -> DataType {
        match &column.cql {
            Ok(t) => t.arrow(self.options.wide_numbers),
            Err(_) => DataType::Utf8,
        }
    }

    /// Whether the cluster answers now, or why not.
    pub async fn check_reachable(&self) -> Result<(), UpstreamError> {
        let session = self.session().await?;
        session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .map_err(|e| classify(&e, "checking the connection"))?;
        Ok(())
    }
}

fn tls_config(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, UpstreamError> {
    let bad = |m: String| UpstreamError::new(UpstreamErrorKind::Unavailable, m);
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(format!("cannot read tls_ca {} as PEM: {e}", ca.display())))?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| bad(format!("tls_ca {}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A driver error as an upstream failure the user can act on.
pub fn classify(e: &(impl fmt::Debug + fmt::Display), what: &str) -> UpstreamError {
    let debug = format!("{e:?}");
    let text = e.to_string();
    let (kind, advice) = if debug.contains("Unavailable") {
        (
            UpstreamErrorKind::Unavailable,
            "too few replicas are up for the configured consistency; wait until the nodes are back, or lower `consistency` in the [[source]]",
        )
    } else if debug.contains("Timeout") || debug.contains("timed out") || debug.contains("Elapsed")
    {
        (
            UpstreamErrorKind::Timeout,
            "Cassandra did not answer in time; try again, narrow the query, or raise `request_timeout_seconds`",
        )
    } else if debug.contains("AuthenticationError") || debug.contains("Unauthorized") {
        (
            UpstreamErrorKind::Unavailable,
            "Cassandra refused tsql's credentials; check `username`/`password` of the [[source]]",
        )
    } else if debug.contains("ConnectionPool")
        || debug.contains("BrokenConnection")
        || debug.contains("Connection refused")
        || debug.contains("ConnectionSetup")
        || debug.contains("EmptyPlan")
        || debug.contains("Io")
    {
        (
            UpstreamErrorKind::Unavailable,
            "Cassandra cannot be reached; check that the nodes run",
        )
    } else {
        (UpstreamErrorKind::BadAnswer, "")
    };
    let mut message = format!("Cassandra failed {what}: {text}");
    if kind == UpstreamErrorKind::Unavailable && debug.contains("Unavailable") {
        message = format!("Cassandra is unavailable {what}: {text}");
    }
    if !advice.is_empty() {
        message.push_str(&format!(" ({advice})"));
    }
    UpstreamError::new(kind, message)
}
