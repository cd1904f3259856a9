//! The `entities` schema: every table of every model of a source, with names
//! handed out across the whole schema, refreshed whenever the source changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::Result;

use crate::layout::{TableLayout, layout_model};
use crate::naming::NameAllocator;
use crate::source::{EntitySource, ModelSnapshot};
use crate::table::{EntityTable, ScanOptions};

/// The schema of a source that cannot be read now: it lists no tables, and
/// naming one of its tables gives the reason.
#[derive(Debug)]
pub struct UnavailableSchema(pub crate::upstream::UpstreamError);

#[async_trait]
impl SchemaProvider for UnavailableSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, _name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Err(self.0.clone().into())
    }

    fn table_exist(&self, _name: &str) -> bool {
        false
    }
}

/// Default catalog name.
pub const CATALOG: &str = "cyoda";
/// Default schema name.
pub const SCHEMA: &str = "entities";

/// One table of the schema with the snapshot it reads.
#[derive(Debug, Clone)]
pub struct CatalogTable {
    /// The model snapshot.
    pub snapshot: Arc<ModelSnapshot>,
    /// The table.
    pub layout: Arc<TableLayout>,
}

type TableMap = Arc<BTreeMap<String, CatalogTable>>;

/// A DataFusion schema over an [`EntitySource`].
#[derive(Debug)]
pub struct EntitySchema {
    source: Arc<dyn EntitySource>,
    options: ScanOptions,
    cache: Mutex<Option<(Vec<Arc<ModelSnapshot>>, TableMap)>>,
}

impl EntitySchema {
    /// A schema over `source`.
    pub fn new(source: Arc<dyn EntitySource>, options: ScanOptions) -> Self {
        EntitySchema {
            source,
            options,
            cache: Mutex::new(None),
        }
    }

    /// Every table, by name, as of now (models re-read if their data changed).
    pub fn tables(&self) -> Result<TableMap> {
        let mut models = self.source.models()?;
        models.sort();
        let snapshots = models
            .iter()
            .map(|m| self.source.snapshot(m))
            .collect::<Result<Vec<_>>>()?;
        let mut cache = self.cache.lock().expect("not poisoned");
        if let Some((old, map)) = cache.as_ref() {
            if old.len() == snapshots.len()
                && old.iter().zip(&snapshots).all(|(a, b)| Arc::ptr_eq(a, b))
            {
                return Ok(map.clone());
            }
        }
        let mut names = NameAllocator::default();
        let mut map = BTreeMap::new();
        for snap in &snapshots {
            for layout in layout_model(&snap.model, &snap.shape, &snap.declared, &mut names) {
                map.insert(
                    layout.name.clone(),
                    CatalogTable {
                        snapshot: snap.clone(),
                        layout: Arc::new(layout),
                    },
                );
            }
        }
        let map = Arc::new(map);
        *cache = Some((snapshots, map.clone()));
        Ok(map)
    }
}

#[async_trait]
impl SchemaProvider for EntitySchema {
    fn table_names(&self) -> Vec<String> {
        match self.tables() {
            Ok(t) => t.keys().cloned().collect(),
            Err(e) => {
                tracing::warn!("cannot list entity tables: {e}");
                Vec::new()
            }
        }
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let tables = self.tables()?;
        Ok(tables.get(name).map(|t| {
            Arc::new(EntityTable::new(
                t.snapshot.clone(),
                t.layout.clone(),
                self.options.clone(),
            )) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables().map(|t| t.contains_key(name)).unwrap_or(false)
    }
}
