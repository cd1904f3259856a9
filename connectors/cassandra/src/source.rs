//! A Cassandra source as the catalogs callers see: one schema per keyspace
//! they may read, plus the entity tables of the revision tables in those
//! keyspaces.

use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::Result;
use tsql_entity_tables::{LiveSchema, ScanOptions, UnavailableSchema, UpstreamError, live_tables};

use crate::cluster::Cluster;
use crate::options::CassandraOptions;
use crate::revisions::{RevisionReader, RevisionTable};
use crate::scan::CassandraTable;

/// A configured Cassandra or ScyllaDB cluster.
#[derive(Debug)]
pub struct CassandraSource {
    cluster: Arc<Cluster>,
    revisions: Vec<Arc<RevisionTable>>,
}

impl CassandraSource {
    /// A source reading with `options`; it connects on first use.
    pub fn new(options: CassandraOptions) -> Self {
        let entity_tables = options.entity_tables.clone();
        let cluster = Arc::new(Cluster::new(options));
        CassandraSource {
            revisions: entity_tables
                .into_iter()
                .map(|o| Arc::new(RevisionTable::new(cluster.clone(), o)))
                .collect(),
            cluster,
        }
    }

    /// The keyspaces this source exposes.
    pub fn keyspaces(&self) -> &[String] {
        &self.cluster.options().keyspaces
    }

    /// Whether the cluster answers now, or why not.
    pub async fn check_reachable(&self) -> Result<(), UpstreamError> {
        self.cluster.check_reachable().await
    }

    /// A catalog holding `keyspaces` (those of this source among them), as
    /// they are now. A keyspace that cannot be read lists no tables, and
    /// naming one of its tables gives the reason.
    pub async fn catalog(
        &self,
        keyspaces: &[String],
        scan: &ScanOptions,
    ) -> Arc<dyn CatalogProvider> {
        let catalog = MemoryCatalogProvider::new();
        for ks in self.keyspaces() {
            if !keyspaces.contains(ks) {
                continue;
            }
            let schema: Arc<dyn SchemaProvider> = match self.cluster.tables(ks).await {
                Ok(tables) => {
                    let schema = MemorySchemaProvider::new();
                    for (name, info) in tables.iter() {
                        let table = CassandraTable::new(self.cluster.clone(), info.clone());
                        schema
                            .register_table(name.clone(), Arc::new(table))
                            .expect("names are unique");
                    }
                    Arc::new(schema)
                }
                Err(e) => Arc::new(UnavailableSchema(e)),
            };
            catalog
                .register_schema(ks, schema)
                .expect("a memory catalog accepts schemas");
        }
        for r in &self.revisions {
            let o = r.options();
            if !keyspaces.contains(&o.keyspace) || !self.keyspaces().contains(&o.keyspace) {
                continue;
            }
            let schema: Arc<dyn SchemaProvider> = match r.models().await {
                Ok(models) => {
                    let tables = Arc::new(live_tables(&models));
                    Arc::new(LiveSchema::new(
                        Arc::new(RevisionReader::new(r.clone())),
                        tables,
                        scan.clone(),
                    ))
                }
                Err(e) => Arc::new(UnavailableSchema(e)),
            };
            catalog
                .register_schema(&o.schema, schema)
                .expect("a memory catalog accepts schemas");
        }
        Arc::new(catalog)
    }
}
