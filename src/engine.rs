//! The query engine: a DataFusion session whose catalog `cyoda`, schema
//! `entities` holds the entity tables of one source.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use tsql_entity_tables::{
    BadRecordPolicy, BadRecords, CATALOG, EntitySchema, EntitySource, SCHEMA, ScanOptions,
};
use tsql_local_files::LocalStore;

use crate::cooperative::CooperativeJoins;
use tsql_local_files::demo::demo_dir;

/// Where entities come from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// A folder of entity files.
    Folder(std::path::PathBuf),
    /// The generated demo dataset.
    Demo,
}

/// How the engine treats its data.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// What to do with records that cannot be read.
    pub on_bad_record: BadRecordPolicy,
    /// Schema name (default `entities`).
    pub schema: Option<String>,
}

/// A query engine over one entity source.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    schema: Arc<EntitySchema>,
    bad_records: Arc<BadRecords>,
}

impl Engine {
    /// An engine over `source`.
    pub fn open(source: &DataSource, options: EngineOptions) -> Result<Engine> {
        let bad_records = Arc::new(BadRecords::default());
        let dir = match source {
            DataSource::Folder(d) => d.clone(),
            DataSource::Demo => demo_dir().map_err(|e| {
                DataFusionError::Execution(format!(
                    "cannot write the demo data to the temporary folder: {e}"
                ))
            })?,
        };
        let store: Arc<dyn EntitySource> = Arc::new(LocalStore::new(
            dir,
            options.on_bad_record,
            bad_records.clone(),
        )?);
        Ok(Self::over(store, options, bad_records))
    }

    /// An engine over any entity source.
    pub fn over(
        source: Arc<dyn EntitySource>,
        options: EngineOptions,
        bad_records: Arc<BadRecords>,
    ) -> Engine {
        let schema_name = options.schema.clone().unwrap_or_else(|| SCHEMA.to_string());
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, &schema_name)
            .with_create_default_catalog_and_schema(false);
        // `CAST(x AS VARCHAR)` gives plain strings, the type results are sent
        // in, instead of string views that must be converted for clients.
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(CooperativeJoins))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let scan = ScanOptions {
            on_bad_record: options.on_bad_record,
            bad_records: bad_records.clone(),
        };
        let schema = Arc::new(EntitySchema::new(source, scan));
        let catalog = MemoryCatalogProvider::new();
        catalog
            .register_schema(&schema_name, schema.clone())
            .expect("a memory catalog accepts schemas");
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        Engine {
            ctx,
            schema,
            bad_records,
        }
    }

    /// The default catalog and schema of unqualified table names.
    pub fn defaults(&self) -> (String, String) {
        let state = self.ctx.state_ref();
        let state = state.read();
        let options = &state.config().options().catalog;
        (
            options.default_catalog.clone(),
            options.default_schema.clone(),
        )
    }

    /// Checks that `catalog` and `schema` exist, so they can be the defaults.
    pub fn check_defaults(&self, catalog: &str, schema: &str) -> Result<()> {
        let Some(found) = self.ctx.catalog(catalog) else {
            let mut known = self.ctx.catalog_names();
            known.sort();
            return Err(DataFusionError::Plan(format!(
                "catalog '{catalog}' not found; the catalogs are: {}",
                known.join(", ")
            )));
        };
        let information_schema = schema == "information_schema"
            && self
                .ctx
                .state_ref()
                .read()
                .config()
                .options()
                .catalog
                .information_schema;
        if found.schema(schema).is_none() && !information_schema {
            let mut known = found.schema_names();
            known.sort();
            return Err(DataFusionError::Plan(format!(
                "schema '{schema}' not found in catalog '{catalog}'; its schemas are: {}",
                known.join(", ")
            )));
        }
        Ok(())
    }

    /// This engine with other defaults for unqualified table names; both must exist.
    pub fn with_defaults(&self, catalog: &str, schema: &str) -> Result<Engine> {
        if self.defaults() == (catalog.to_string(), schema.to_string()) {
            return Ok(self.clone());
        }
        self.check_defaults(catalog, schema)?;
        let mut state = self.ctx.state();
        let options = state.config_mut().options_mut();
        options.catalog.default_catalog = catalog.to_string();
        options.catalog.default_schema = schema.to_string();
        Ok(Engine {
            ctx: SessionContext::new_with_state(state),
            schema: self.schema.clone(),
            bad_records: self.bad_records.clone(),
        })
    }

    /// The DataFusion session.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The entity schema.
    pub fn entity_schema(&self) -> &Arc<EntitySchema> {
        &self.schema
    }

    /// Records skipped so far under `--on-bad-record skip`, and the first reason.
    pub fn skipped_records(&self) -> (usize, Option<String>) {
        self.bad_records.summary()
    }

    /// Plans `sql`. tsql is read-only: DDL, DML and `SET` statements are refused.
    pub async fn plan(&self, sql: &str) -> Result<DataFrame> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let sql = number_placeholders(sql);
        self.ctx.sql_with_options(&sql, options).await.map_err(|e| {
            let msg = e.to_string();
            if msg.contains("not supported") && (msg.contains("DDL") || msg.contains("DML") || msg.contains("Statement")) {
                DataFusionError::Plan(format!("{msg}\nhint: tsql is read-only; it answers queries (SELECT, SHOW, DESCRIBE, EXPLAIN)"))
            } else {
                explain(e)
            }
        })
    }

    /// Plans and starts `sql`, returning a stream of its result.
    pub async fn execute(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        let df = self.plan(sql).await?;
        df.execute_stream().await.map_err(explain)
    }
}

/// Turns JDBC/ODBC-style `?` parameters into DataFusion's `$1`, `$2`, … (outside
/// string literals, quoted identifiers and comments).
pub fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                let mut prev = ' ';
                for d in chars.by_ref() {
                    out.push(d);
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '?' => {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            c => out.push(c),
        }
    }
    out
}

/// Adds what to do next to common planning errors.
pub fn explain(e: DataFusionError) -> DataFusionError {
    let msg = e.to_string();
    let hint = if msg.contains("table") && msg.contains("not found") {
        Some("run `tsql schema` (or SHOW TABLES) to list the tables; names are lower-case")
    } else if msg.contains("No field named") || msg.contains("Schema error") {
        Some("run `tsql schema` (or DESCRIBE <table>) to list the columns; names are lower-case")
    } else {
        None
    };
    match hint {
        Some(h) => DataFusionError::Plan(format!(
            "{}\nhint: {h}",
            msg.trim_start_matches("Error during planning: ")
        )),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::number_placeholders;

    #[test]
    fn question_marks_become_numbered_parameters() {
        assert_eq!(
            number_placeholders("SELECT ? , x FROM t WHERE a = ?"),
            "SELECT $1 , x FROM t WHERE a = $2"
        );
        assert_eq!(
            number_placeholders("SELECT '?', \"?\" -- ?\n, /* ? */ ?"),
            "SELECT '?', \"?\" -- ?\n, /* ? */ $1"
        );
        assert_eq!(
            number_placeholders("SELECT 'it''s ?', ?"),
            "SELECT 'it''s ?', $1"
        );
    }
}
