//! `system.jdbc.*`: the tables the Trino JDBC driver reads its
//! `DatabaseMetaData` from (catalogs, schemas, tables, columns, table
//! types), as views over the caller's own `information_schema` — so they
//! list exactly what the caller may see.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider, view::ViewTable};
use datafusion::error::Result;
use datafusion::execution::SessionState;

use crate::Engine;

/// `java.sql.Types` code and Trino type name of DataFusion's type text.
const TYPE_CASES: &str = "
    CASE
      WHEN data_type = 'Int8' THEN -6 WHEN data_type = 'Int16' THEN 5 WHEN data_type = 'Int32' THEN 4
      WHEN data_type = 'Int64' THEN -5 WHEN data_type = 'Float32' THEN 7 WHEN data_type = 'Float64' THEN 8
      WHEN data_type IN ('Utf8', 'LargeUtf8', 'Utf8View') THEN 12 WHEN data_type = 'Boolean' THEN 16
      WHEN data_type = 'Date32' THEN 91 WHEN data_type LIKE 'Decimal%' THEN 3
      WHEN data_type LIKE 'Timestamp(%,%' THEN 2014 WHEN data_type LIKE 'Timestamp(%' THEN 93
      WHEN data_type LIKE 'Time%' THEN 92 WHEN data_type LIKE '%Binary%' THEN -3
      WHEN data_type LIKE '%List(%' THEN 2003 ELSE 2000 END";

/// Trino's type name of DataFusion's type text (`information_schema`'s `data_type`).
pub(super) const TYPE_NAMES: &str = "
    CASE
      WHEN data_type = 'Int8' THEN 'tinyint' WHEN data_type = 'Int16' THEN 'smallint'
      WHEN data_type = 'Int32' THEN 'integer' WHEN data_type = 'Int64' THEN 'bigint'
      WHEN data_type = 'Float32' THEN 'real' WHEN data_type = 'Float64' THEN 'double'
      WHEN data_type IN ('Utf8', 'LargeUtf8', 'Utf8View') THEN 'varchar' WHEN data_type = 'Boolean' THEN 'boolean'
      WHEN data_type = 'Date32' THEN 'date'
      WHEN data_type LIKE 'Decimal%' THEN 'decimal(' || CAST(numeric_precision AS VARCHAR) || ',' || CAST(numeric_scale AS VARCHAR) || ')'
      WHEN data_type LIKE 'Timestamp(%,%' THEN 'timestamp(6) with time zone' WHEN data_type LIKE 'Timestamp(%' THEN 'timestamp(6)'
      WHEN data_type LIKE 'Time%' THEN 'time(6)' WHEN data_type LIKE '%Binary%' THEN 'varbinary'
      WHEN data_type LIKE '%List(%' THEN 'array' ELSE lower(data_type) END";

fn view_sql(name: &str) -> Option<String> {
    let null = "CAST(NULL AS VARCHAR)";
    Some(match name {
        "catalogs" => "SELECT DISTINCT table_catalog AS table_cat FROM information_schema.tables".into(),
        "schemas" => "SELECT DISTINCT table_schema AS table_schem, table_catalog FROM information_schema.tables".into(),
        "tables" => format!(
            "SELECT table_catalog AS table_cat, table_schema AS table_schem, table_name, \
             CASE table_type WHEN 'BASE TABLE' THEN 'TABLE' ELSE table_type END AS table_type, \
             {null} AS remarks, {null} AS type_cat, {null} AS type_schem, {null} AS type_name, \
             {null} AS self_referencing_col_name, {null} AS ref_generation \
             FROM information_schema.tables"
        ),
        "columns" => format!(
            "SELECT table_catalog AS table_cat, table_schema AS table_schem, table_name, column_name, \
             {TYPE_CASES} AS data_type, {TYPE_NAMES} AS type_name, \
             CAST(COALESCE(numeric_precision, character_maximum_length) AS BIGINT) AS column_size, \
             CAST(NULL AS BIGINT) AS buffer_length, CAST(numeric_scale AS BIGINT) AS decimal_digits, \
             CAST(numeric_precision_radix AS BIGINT) AS num_prec_radix, \
             CASE is_nullable WHEN 'YES' THEN 1 ELSE 0 END AS nullable, {null} AS remarks, \
             column_default AS column_def, CAST(NULL AS BIGINT) AS sql_data_type, \
             CAST(NULL AS BIGINT) AS sql_datetime_sub, CAST(character_octet_length AS BIGINT) AS char_octet_length, \
             CAST(ordinal_position + 1 AS BIGINT) AS ordinal_position, is_nullable, \
             {null} AS scope_catalog, {null} AS scope_schema, {null} AS scope_table, \
             CAST(NULL AS BIGINT) AS source_data_type, 'NO' AS is_autoincrement, 'NO' AS is_generatedcolumn \
             FROM information_schema.columns"
        ),
        "table_types" => "SELECT * FROM (VALUES ('TABLE'), ('VIEW')) AS t(table_type)".into(),
        _ => return None,
    })
}

/// The `jdbc` schema of catalog `system`, planning its views against the
/// session it belongs to.
struct JdbcSchema {
    /// The session now, while it lives (no reference cycle: the session holds this schema).
    state: Box<dyn Fn() -> Option<SessionState> + Send + Sync>,
}

impl std::fmt::Debug for JdbcSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JdbcSchema")
    }
}

#[async_trait]
impl SchemaProvider for JdbcSchema {
    fn table_names(&self) -> Vec<String> {
        ["catalogs", "schemas", "tables", "columns", "table_types"]
            .map(String::from)
            .to_vec()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let (Some(sql), Some(state)) = (view_sql(name), (self.state)()) else {
            return Ok(None);
        };
        let plan = state.create_logical_plan(&sql).await?;
        Ok(Some(Arc::new(ViewTable::new(plan, Some(sql)))))
    }

    fn table_exist(&self, name: &str) -> bool {
        view_sql(name).is_some()
    }
}

/// Adds `system.jdbc` to `engine` (an engine of one caller and query).
pub fn register(engine: &Engine) {
    let ctx = engine.context();
    if let Some(system) = ctx.catalog("system") {
        let weak = ctx.state_weak_ref();
        let schema = JdbcSchema {
            state: Box::new(move || weak.upgrade().map(|s| s.read().clone())),
        };
        let _ = system.register_schema("jdbc", Arc::new(schema));
    }
}
