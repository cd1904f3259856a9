//! How a Cassandra or ScyllaDB cluster is reached and read.

use std::path::PathBuf;
use std::time::Duration;

use scylla::statement::Consistency;

use crate::cql_type::WideNumbers;

/// A configured Cassandra source.
#[derive(Debug, Clone)]
pub struct CassandraOptions {
    /// `host:port` of nodes to connect to first (the rest are discovered).
    pub contact_points: Vec<String>,
    /// Keyspaces whose tables are exposed.
    pub keyspaces: Vec<String>,
    /// Consistency of every read (default QUORUM).
    pub consistency: Consistency,
    /// Time one CQL request may take (default 10 s).
    pub request_timeout: Duration,
    /// Time to open a connection (default 5 s).
    pub connect_timeout: Duration,
    /// Password authentication, when set.
    pub credentials: Option<(String, String)>,
    /// TLS to the nodes, trusting the CA in this PEM file.
    pub tls_ca: Option<PathBuf>,
    /// Allow filters on non-key columns to be sent with `ALLOW FILTERING`.
    pub allow_filtering: bool,
    /// How long table metadata is reused before it is read again (default 2 s).
    pub metadata_ttl: Duration,
    /// Rows per page (default 5000).
    pub page_size: i32,
    /// Bytes one token-range split should hold, from `system.size_estimates` (default 64 MiB).
    pub split_bytes: u64,
    /// How varint and decimal are read.
    pub wide_numbers: WideNumbers,
    /// How many times a failed read attempt is retried on another node (default 2).
    pub retries: usize,
    /// Tables whose rows are entity revisions.
    pub entity_tables: Vec<EntityTableOptions>,
}

impl CassandraOptions {
    /// Options with defaults for `contact_points` and `keyspaces`.
    pub fn new(contact_points: Vec<String>, keyspaces: Vec<String>) -> Self {
        CassandraOptions {
            contact_points,
            keyspaces,
            consistency: Consistency::Quorum,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            credentials: None,
            tls_ca: None,
            allow_filtering: false,
            metadata_ttl: Duration::from_secs(2),
            page_size: 5000,
            split_bytes: 64 << 20,
            wide_numbers: WideNumbers::Decimal,
            retries: 2,
            entity_tables: Vec::new(),
        }
    }
}

/// A table whose rows are entity revisions, and which columns hold what.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityTableOptions {
    /// Keyspace of the table.
    pub keyspace: String,
    /// The table.
    pub table: String,
    /// Schema its entity tables appear in (default `<keyspace>_entities`).
    pub schema: String,
    /// Column with the model name.
    pub model: String,
    /// Column with the model version (an integer or text).
    pub version: String,
    /// Column with the entity id.
    pub id: String,
    /// Column with the revision's time (a timestamp).
    pub updated: String,
    /// Column with the entity's creation time, if any (else its first revision's time).
    pub created: Option<String>,
    /// Column with the workflow state.
    pub state: String,
    /// Column with the JSON document.
    pub document: String,
    /// Column marking a revision that deletes the entity (a boolean), if any.
    pub deleted: Option<String>,
    /// How long the inferred shapes are reused before the table is read again for them (default 5 s).
    pub shape_ttl: Duration,
}

/// A consistency level from its CQL name (`QUORUM`, `local_quorum`, …).
pub fn parse_consistency(name: &str) -> Result<Consistency, String> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        _ => {
            return Err(format!(
                "unknown consistency '{name}': use ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM or LOCAL_ONE"
            ));
        }
    })
}
