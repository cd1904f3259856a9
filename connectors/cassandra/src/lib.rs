//! tsql's connector for Apache Cassandra and ScyllaDB, on the `scylla`
//! driver: every table of the configured keyspaces with every CQL type as
//! Arrow, token-range parallel scans sized from `system.size_estimates`,
//! key and `LIMIT` pushdown, entity tables from tables of revision rows, and
//! keyspaces per caller.

pub mod cluster;
pub mod cql_type;
pub mod options;
pub mod pages;
pub mod pushdown;
pub mod revisions;
pub mod ring;
pub mod routing;
pub mod rows;
pub mod scan;
pub mod source;
pub mod values;

pub use cql_type::{CqlType, WideNumbers};
pub use options::{CassandraOptions, EntityTableOptions, parse_consistency};
pub use source::CassandraSource;
