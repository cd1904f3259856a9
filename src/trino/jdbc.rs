//! `system.jdbc.*`: the tables the Trino JDBC driver reads its
//! `DatabaseMetaData` from (catalogs, schemas, tables, columns, table
//! types, types, and the ones tsql has nothing for: procedures, UDTs, …),
//! and `system.metadata.table_comments`/`catalogs` (SQLAlchemy, BI tools),
//! as views over the caller's own `information_schema` — so they list
//! exactly what the caller may see.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider, view::ViewTable};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use crate::Engine;
use crate::trino_functions::misc::trino_type_name;

/// Trino's type name of the engine's type text (`information_schema`'s
/// `data_type`), by the function [`type_functions`] adds.
pub(super) const TYPE_NAMES: &str = "tsql_trino_type(data_type)";

/// A column's JDBC facts (`code`, `size`, `digits`, `radix`) by the type's text.
fn jdbc(fact: &str) -> String {
    format!("tsql_jdbc_fact(data_type, '{fact}')")
}

/// The engine's type of its text, e.g. `Timestamp(µs, "UTC")`.
fn parsed(text: &str) -> Option<DataType> {
    text.parse().ok()
}

/// A JDBC fact of a type, as Trino's `system.jdbc.columns` gives it.
fn jdbc_fact(t: &DataType, fact: &str) -> Option<i64> {
    use DataType::*;
    let precision = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    let fraction = |p: i64| if p > 0 { p + 1 } else { 0 };
    match fact {
        "code" => Some(match t {
            Int8 | UInt8 => -6,
            Int16 | UInt16 => 5,
            Int32 | UInt32 => 4,
            Int64 | UInt64 => -5,
            Float16 | Float32 => 7,
            Float64 => 8,
            Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => 3,
            Utf8 | LargeUtf8 | Utf8View => 12,
            Boolean => 16,
            Date32 | Date64 => 91,
            Time32(_) | Time64(_) => 92,
            Timestamp(_, None) => 93,
            Timestamp(_, Some(_)) => 2014,
            Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => -3,
            List(_) | LargeList(_) | FixedSizeList(..) | ListView(_) | LargeListView(_) => 2003,
            _ => 2000,
        }),
        "size" => match t {
            Int8 | UInt8 => Some(3),
            Int16 | UInt16 => Some(5),
            Int32 | UInt32 => Some(10),
            Int64 | UInt64 => Some(19),
            Float16 | Float32 => Some(24),
            Float64 => Some(53),
            Decimal32(p, _) | Decimal64(p, _) | Decimal128(p, _) | Decimal256(p, _) => {
                Some(*p as i64)
            }
            Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView => Some(2147483647),
            Date32 | Date64 => Some(14),
            Time32(u) | Time64(u) => Some(8 + fraction(precision(u))),
            Timestamp(u, None) => Some(19 + fraction(precision(u))),
            Timestamp(u, Some(_)) => Some(56 + precision(u)),
            _ => None,
        },
        "digits" => match t {
            Decimal32(_, s) | Decimal64(_, s) | Decimal128(_, s) | Decimal256(_, s) => {
                Some(*s as i64)
            }
            Time32(u) | Time64(u) | Timestamp(u, _) => Some(precision(u)),
            _ => None,
        },
        "radix" => match t {
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Some(10),
            Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => Some(10),
            Float16 | Float32 | Float64 => Some(2),
            _ => None,
        },
        _ => None,
    }
}

/// `tsql_trino_type(text)` and `tsql_jdbc_fact(text, fact)`: what the
/// metadata views say of a column from its type's text.
fn type_functions() -> Vec<ScalarUDF> {
    let trino_type = create_udf(
        "tsql_trino_type",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let texts = args[0].to_array(1)?;
            let out: StringArray = texts
                .as_string::<i32>()
                .iter()
                .map(|t| {
                    t.map(|t| {
                        parsed(t).map_or_else(|| t.to_ascii_lowercase(), |d| trino_type_name(&d))
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    );
    let fact = create_udf(
        "tsql_jdbc_fact",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let n = match (&args[0], &args[1]) {
                (ColumnarValue::Array(a), _) | (_, ColumnarValue::Array(a)) => a.len(),
                _ => 1,
            };
            let (texts, facts) = (args[0].to_array(n)?, args[1].to_array(n)?);
            let (texts, facts) = (texts.as_string::<i32>(), facts.as_string::<i32>());
            let out: Int64Array = (0..n)
                .map(|i| {
                    (!texts.is_null(i) && !facts.is_null(i))
                        .then(|| parsed(texts.value(i)).and_then(|d| jdbc_fact(&d, facts.value(i))))
                        .flatten()
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    );
    vec![trino_type, fact]
}

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
             {code} AS data_type, {TYPE_NAMES} AS type_name, {size} AS column_size, \
             CAST(0 AS BIGINT) AS buffer_length, {digits} AS decimal_digits, {radix} AS num_prec_radix, \
             CASE is_nullable WHEN 'YES' THEN 1 ELSE 0 END AS nullable, {null} AS remarks, \
             column_default AS column_def, CAST(NULL AS BIGINT) AS sql_data_type, \
             CAST(NULL AS BIGINT) AS sql_datetime_sub, CAST(character_octet_length AS BIGINT) AS char_octet_length, \
             CAST(ordinal_position + 1 AS BIGINT) AS ordinal_position, is_nullable, \
             {null} AS scope_catalog, {null} AS scope_schema, {null} AS scope_table, \
             CAST(NULL AS BIGINT) AS source_data_type, 'NO' AS is_autoincrement, 'NO' AS is_generatedcolumn \
             FROM information_schema.columns",
            code = jdbc("code"),
            size = jdbc("size"),
            digits = jdbc("digits"),
            radix = jdbc("radix"),
        ),
        "table_types" => "SELECT * FROM (VALUES ('TABLE'), ('VIEW')) AS t(table_type)".into(),
        "types" => types_sql(),
        other => empty_sql(other)?,
    })
}

/// Tables tsql has no rows for, with the columns the driver reads:
/// (name, its columns as `name type`).
const EMPTY: &[(&str, &str)] = &[
    (
        "attributes",
        "type_cat varchar, type_schem varchar, type_name varchar, attr_name varchar, data_type bigint, attr_type_name varchar, attr_size bigint, decimal_digits bigint, num_prec_radix bigint, nullable bigint, remarks varchar, attr_def varchar, sql_data_type bigint, sql_datetime_sub bigint, char_octet_length bigint, ordinal_position bigint, is_nullable varchar, scope_catalog varchar, scope_schema varchar, scope_table varchar, source_data_type bigint",
    ),
    (
        "procedure_columns",
        "procedure_cat varchar, procedure_schem varchar, procedure_name varchar, column_name varchar, column_type bigint, data_type bigint, type_name varchar, precision bigint, length bigint, scale bigint, radix bigint, nullable bigint, remarks varchar, column_def varchar, sql_data_type bigint, sql_datetime_sub bigint, char_octet_length bigint, ordinal_position bigint, is_nullable varchar, specific_name varchar",
    ),
    (
        "procedures",
        "procedure_cat varchar, procedure_schem varchar, procedure_name varchar, remarks varchar, procedure_type bigint, specific_name varchar",
    ),
    (
        "pseudo_columns",
        "table_cat varchar, table_schem varchar, table_name varchar, column_name varchar, data_type bigint, column_size bigint, decimal_digits bigint, num_prec_radix bigint, column_usage varchar, remarks varchar, char_octet_length bigint, is_nullable bigint",
    ),
    (
        "super_tables",
        "table_cat varchar, table_schem varchar, table_name varchar, supertable_name varchar",
    ),
    (
        "super_types",
        "type_cat varchar, type_schem varchar, type_name varchar, supertype_cat varchar, supertype_schem varchar, supertype_name varchar",
    ),
    (
        "udts",
        "type_cat varchar, type_schem varchar, type_name varchar, class_name varchar, data_type varchar, remarks varchar, base_type varchar",
    ),
];

/// `SELECT CAST(NULL AS t) AS c, … WHERE false` for a table of `EMPTY`.
fn empty_sql(name: &str) -> Option<String> {
    let (_, columns) = EMPTY.iter().find(|(n, _)| *n == name)?;
    Some(empty_with(columns))
}

/// A query of no rows with `columns` (`name type, …`).
pub(super) fn empty_with(columns: &str) -> String {
    let list: Vec<String> = columns
        .split(", ")
        .map(|c| {
            let (name, ty) = c.split_once(' ').expect("name and type");
            format!("CAST(NULL AS {}) AS {name}", ty.to_ascii_uppercase())
        })
        .collect();
    format!("SELECT {} WHERE false", list.join(", "))
}

/// `system.jdbc.types`: the types tsql sends, as Trino lists them
/// (name, java.sql type code, precision, radix).
fn types_sql() -> String {
    let rows: Vec<String> = [
        ("bigint", -5, Some(19), Some(10)),
        ("integer", 4, Some(10), Some(10)),
        ("smallint", 5, Some(5), Some(10)),
        ("tinyint", -6, Some(3), Some(10)),
        ("double", 8, Some(53), Some(2)),
        ("real", 7, Some(24), Some(2)),
        // Trino lists its parametric types as JAVA_OBJECT (2000) here, though
        // a column of one has its own code in system.jdbc.columns.
        ("decimal", 2000, None, None),
        ("boolean", 16, None, None),
        ("varchar", 2000, None, None),
        ("varbinary", -3, Some(2147483647), None),
        ("date", 91, Some(14), None),
        ("time", 2000, None, None),
        ("timestamp", 2000, None, None),
        ("timestamp with time zone", 2000, None, None),
        ("interval day to second", 2000, None, None),
        ("array", 2003, None, None),
        ("map", 2000, None, None),
        ("row", 2000, None, None),
        ("json", 2000, None, None),
        ("unknown", 2000, None, None),
    ]
    .iter()
    .map(|(name, code, precision, radix)| {
        let num = |v: &Option<i64>| v.map_or("CAST(NULL AS BIGINT)".to_string(), |v| format!("CAST({v} AS BIGINT)"));
        format!(
            "('{name}', CAST({code} AS BIGINT), {}, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), \
             CAST(1 AS BIGINT), false, CAST(3 AS BIGINT), CAST(NULL AS BOOLEAN), false, CAST(NULL AS BOOLEAN), \
             CAST(NULL AS VARCHAR), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), {})",
            num(precision),
            num(radix)
        )
    })
    .collect();
    format!(
        "SELECT * FROM (VALUES {}) AS t(type_name, data_type, precision, literal_prefix, literal_suffix, \
         create_params, nullable, case_sensitive, searchable, unsigned_attribute, fixed_prec_scale, \
         auto_increment, local_type_name, minimum_scale, maximum_scale, sql_data_type, sql_datetime_sub, \
         num_prec_radix)",
        rows.join(", ")
    )
}

/// `system.metadata.*`: table comments (none in tsql) and catalogs.
fn metadata_sql(name: &str) -> Option<String> {
    Some(match name {
        "table_comments" => {
            "SELECT table_catalog AS catalog_name, table_schema AS schema_name, table_name, \
             CAST(NULL AS VARCHAR) AS comment FROM information_schema.tables"
                .into()
        }
        "catalogs" => {
            "SELECT DISTINCT table_catalog AS catalog_name, table_catalog AS connector_id, \
             table_catalog AS connector_name FROM information_schema.tables"
                .into()
        }
        _ => return None,
    })
}

/// A schema of views (`system.jdbc`, `system.metadata`), planned against
/// the session it belongs to.
struct ViewSchema {
    /// Its tables.
    names: Vec<String>,
    /// Each table's query.
    sql: fn(&str) -> Option<String>,
    /// The session now, while it lives (no reference cycle: the session holds this schema).
    state: Box<dyn Fn() -> Option<SessionState> + Send + Sync>,
}

impl std::fmt::Debug for ViewSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewSchema({:?})", self.names)
    }
}

#[async_trait]
impl SchemaProvider for ViewSchema {
    fn table_names(&self) -> Vec<String> {
        self.names.clone()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let (Some(sql), Some(state)) = ((self.sql)(name), (self.state)()) else {
            return Ok(None);
        };
        let plan = state.create_logical_plan(&sql).await?;
        Ok(Some(Arc::new(ViewTable::new(plan, Some(sql)))))
    }

    fn table_exist(&self, name: &str) -> bool {
        (self.sql)(name).is_some()
    }
}

/// Adds `system.jdbc` and `system.metadata` to `engine` (an engine of one
/// caller and query).
pub fn register(engine: &Engine) {
    let ctx = engine.context();
    for f in type_functions() {
        ctx.register_udf(f);
    }
    let Some(system) = ctx.catalog("system") else {
        return;
    };
    let jdbc: Vec<String> = [
        "catalogs",
        "schemas",
        "tables",
        "columns",
        "table_types",
        "types",
    ]
    .into_iter()
    .chain(EMPTY.iter().map(|(n, _)| *n))
    .map(String::from)
    .collect();
    let metadata = vec!["table_comments".to_string(), "catalogs".to_string()];
    for (name, names, sql) in [
        ("jdbc", jdbc, view_sql as fn(&str) -> Option<String>),
        ("metadata", metadata, metadata_sql),
    ] {
        let weak = ctx.state_weak_ref();
        let schema = ViewSchema {
            names,
            sql,
            state: Box::new(move || weak.upgrade().map(|s| s.read().clone())),
        };
        let _ = system.register_schema(name, Arc::new(schema));
    }
}
