//! Column types by their SQL names (`TIMESTAMP WITH TIME ZONE`,
//! `ARRAY(INTEGER)`) instead of Arrow's (`Timestamp(µs, "UTC")`,
//! `List(Int32)`) in `information_schema.columns`, `SHOW COLUMNS` and
//! `DESCRIBE`, for queries over Flight SQL and the CLI
//! ([`crate::Engine::plan`]). The names come from one function,
//! [`tsql_entity_tables::types::field_sql_type`], which `tsql schema` uses
//! too. (The Trino front end keeps the engine's Arrow names in its own
//! queries: it maps them to Trino's names itself.)

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder, UInt64Array};
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{CatalogProviderList, Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::datasource::{MemTable, provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, TableScan, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, execute_stream};
use datafusion::prelude::Expr;
use futures::StreamExt;
use tsql_entity_tables::types::field_sql_type;

/// `plan` with every scan of the engine's `information_schema.columns`
/// answering SQL type names in `data_type`, and every `DESCRIBE` too.
pub fn with_sql_type_names(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::TableScan(scan) if is_columns_table(&scan) => {
            let inner = source_as_provider(&scan.source)?;
            Ok(Transformed::yes(LogicalPlan::TableScan(TableScan {
                source: provider_as_source(Arc::new(SqlNamedColumns { inner })),
                ..scan
            })))
        }
        LogicalPlan::DescribeTable(d) if !d.schema.fields().is_empty() => {
            let mut names = StringBuilder::new();
            let mut types = StringBuilder::new();
            let mut nullable = StringBuilder::new();
            for f in d.schema.fields() {
                names.append_value(f.name());
                types.append_value(field_sql_type(f));
                nullable.append_value(if f.is_nullable() { "YES" } else { "NO" });
            }
            let schema = Arc::new(d.output_schema.as_arrow().clone());
            let columns: Vec<ArrayRef> = vec![
                Arc::new(names.finish()),
                Arc::new(types.finish()),
                Arc::new(nullable.finish()),
            ];
            let batch = RecordBatch::try_new(schema.clone(), columns)?;
            let table = MemTable::try_new(schema, vec![vec![batch]])?;
            let plan =
                LogicalPlanBuilder::scan("describe", provider_as_source(Arc::new(table)), None)?
                    .build()?;
            Ok(Transformed::yes(plan))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// The columns of DataFusion's `information_schema.columns` this reads.
const CATALOG: &str = "table_catalog";
const SCHEMA: &str = "table_schema";
const TABLE: &str = "table_name";
const POSITION: &str = "ordinal_position";
const DATA_TYPE: &str = "data_type";

/// Whether `scan` reads DataFusion's own `information_schema.columns` (a
/// streaming table of that shape; no other table is one).
fn is_columns_table(scan: &TableScan) -> bool {
    if !scan.table_name.table().eq_ignore_ascii_case("columns") {
        return false;
    }
    let Ok(provider) = source_as_provider(&scan.source) else {
        return false;
    };
    let schema = provider.schema();
    provider.is::<StreamingTable>()
        && [CATALOG, SCHEMA, TABLE, POSITION, DATA_TYPE]
            .iter()
            .all(|c| schema.index_of(c).is_ok())
}

/// DataFusion's `information_schema.columns` with SQL type names.
#[derive(Debug)]
struct SqlNamedColumns {
    inner: Arc<dyn TableProvider>,
}

#[async_trait]
impl TableProvider for SqlNamedColumns {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(session) = state.as_any().downcast_ref::<SessionState>() else {
            return Err(DataFusionError::Internal(
                "information_schema.columns was read outside a DataFusion session".into(),
            ));
        };
        // Every column, so each row's table and position are at hand.
        let all = self.inner.scan(state, None, &[], None).await?;
        let renamed = Arc::new(Renamed {
            schema: self.schema(),
            plan: all,
            catalogs: session.catalog_list().clone(),
        });
        StreamingTable::try_new(self.schema(), vec![renamed])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// The rows of `plan` with `data_type` renamed.
#[derive(Debug)]
struct Renamed {
    schema: SchemaRef,
    plan: Arc<dyn ExecutionPlan>,
    catalogs: Arc<dyn CatalogProviderList>,
}

impl PartitionStream for Renamed {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let catalogs = self.catalogs.clone();
        let stream = match execute_stream(self.plan.clone(), ctx) {
            Ok(s) => s,
            Err(e) => {
                return Box::pin(RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    futures::stream::once(async move { Err(e) }),
                ));
            }
        };
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream.then(move |batch| {
                let catalogs = catalogs.clone();
                async move { rename(batch?, catalogs.as_ref()).await }
            }),
        ))
    }
}

/// `batch` with each row's `data_type` the SQL type of the field it names.
async fn rename(batch: RecordBatch, catalogs: &dyn CatalogProviderList) -> Result<RecordBatch> {
    // Table schemas by (catalog, schema, table), as looked up.
    let mut known: HashMap<(String, String, String), Option<Arc<Schema>>> = HashMap::new();
    let text = |name: &str| -> Result<StringArray> {
        let i = batch.schema().index_of(name)?;
        batch
            .column(i)
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("{name} is not text")))
    };
    let (catalog, schema, table, old) = (
        text(CATALOG)?,
        text(SCHEMA)?,
        text(TABLE)?,
        text(DATA_TYPE)?,
    );
    let position = batch
        .column(batch.schema().index_of(POSITION)?)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("ordinal_position is not a number".into()))?;
    let mut names = StringBuilder::new();
    for row in 0..batch.num_rows() {
        let key = (
            catalog.value(row).to_string(),
            schema.value(row).to_string(),
            table.value(row).to_string(),
        );
        if !known.contains_key(&key) {
            let found = match catalogs.catalog(&key.0).and_then(|c| c.schema(&key.1)) {
                Some(s) => s.table(&key.2).await.ok().flatten().map(|t| t.schema()),
                None => None,
            };
            known.insert(key.clone(), found);
        }
        let field = known[&key]
            .as_ref()
            .filter(|_| !position.is_null(row))
            .and_then(|s| s.fields().get(position.value(row) as usize).cloned());
        match field {
            Some(f) => names.append_value(field_sql_type(&f)),
            None if old.is_null(row) => names.append_null(),
            None => names.append_value(old.value(row)),
        }
    }
    let at = batch.schema().index_of(DATA_TYPE)?;
    let mut columns = batch.columns().to_vec();
    columns[at] = Arc::new(names.finish());
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
