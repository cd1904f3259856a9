//! Catalog metadata and SqlInfo answers.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity,
    SqlSupportedTransaction, XdbcDataType,
};

use crate::Engine;

/// One table of the engine with its (wire) schema.
pub struct TableEntry {
    /// Catalog name.
    pub catalog: String,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Columns as sent.
    pub columns: SchemaRef,
}

/// Every table the engine knows, with its columns.
pub async fn list_tables(engine: &Engine) -> datafusion::error::Result<Vec<TableEntry>> {
    let mut out = Vec::new();
    for (c, s, schema) in engine.schemas() {
        let mut tables = schema.table_names();
        tables.sort();
        for t in tables {
            if let Some(table) = schema.table(&t).await? {
                out.push(TableEntry {
                    catalog: c.clone(),
                    schema: s.clone(),
                    table: t,
                    columns: super::types::wire_schema(&table.schema()),
                });
            }
        }
    }
    Ok(out)
}

/// Schemas per catalog.
pub fn list_schemas(engine: &Engine) -> Vec<(String, String)> {
    engine
        .schemas()
        .into_iter()
        .map(|(c, s, _)| (c, s))
        .collect()
}

/// What `GetSqlInfo` answers.
pub fn sql_info() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "tsql");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(SqlInfo::SqlKeywords, &["point_time", "entity_id"][..]);
    b.append(
        SqlInfo::SqlNumericFunctions,
        &[
            "abs", "ceil", "floor", "round", "power", "sqrt", "ln", "log10", "exp", "mod",
        ][..],
    );
    b.append(
        SqlInfo::SqlStringFunctions,
        &[
            "lower",
            "upper",
            "length",
            "substr",
            "trim",
            "concat",
            "replace",
            "strpos",
            "lpad",
            "rpad",
            "regexp_like",
        ][..],
    );
    b.append(
        SqlInfo::SqlSystemFunctions,
        &["arrow_typeof", "version"][..],
    );
    b.append(
        SqlInfo::SqlDatetimeFunctions,
        &[
            "now",
            "date_trunc",
            "date_part",
            "extract",
            "to_timestamp",
            "current_date",
        ][..],
    );
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlMaxColumnNameLength, 0i64);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.build().expect("static SqlInfo values are valid")
}

fn xdbc(
    name: &str,
    data_type: XdbcDataType,
    size: Option<i32>,
    prefix: Option<&str>,
) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: name.into(),
        data_type,
        column_size: size,
        literal_prefix: prefix.map(Into::into),
        literal_suffix: prefix.map(Into::into),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: data_type == XdbcDataType::XdbcVarchar,
        searchable: Searchable::Full,
        unsigned_attribute: Some(false),
        fixed_prec_scale: false,
        auto_increment: Some(false),
        local_type_name: Some(name.into()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: None,
        interval_precision: None,
    }
}

/// What `GetXdbcTypeInfo` answers: the SQL types entity tables use.
pub fn xdbc_types() -> XdbcTypeInfoData {
    let mut b = XdbcTypeInfoDataBuilder::new();
    b.append(xdbc("BOOLEAN", XdbcDataType::XdbcBit, Some(1), None));
    b.append(xdbc("TINYINT", XdbcDataType::XdbcTinyint, Some(3), None));
    b.append(xdbc("SMALLINT", XdbcDataType::XdbcSmallint, Some(5), None));
    b.append(xdbc("INTEGER", XdbcDataType::XdbcInteger, Some(10), None));
    b.append(xdbc("BIGINT", XdbcDataType::XdbcBigint, Some(19), None));
    b.append(xdbc("REAL", XdbcDataType::XdbcFloat, Some(7), None));
    b.append(xdbc("DOUBLE", XdbcDataType::XdbcDouble, Some(15), None));
    b.append(xdbc("DECIMAL", XdbcDataType::XdbcDecimal, Some(38), None));
    b.append(xdbc(
        "VARCHAR",
        XdbcDataType::XdbcVarchar,
        Some(i32::MAX),
        Some("'"),
    ));
    b.append(xdbc(
        "VARBINARY",
        XdbcDataType::XdbcVarbinary,
        Some(i32::MAX),
        None,
    ));
    b.append(xdbc("DATE", XdbcDataType::XdbcDate, Some(10), Some("'")));
    b.append(xdbc("TIME", XdbcDataType::XdbcTime, Some(15), Some("'")));
    b.append(xdbc(
        "TIMESTAMP",
        XdbcDataType::XdbcTimestamp,
        Some(26),
        Some("'"),
    ));
    b.build().expect("static type infos are valid")
}

/// Shared, built once.
pub fn shared_sql_info() -> Arc<SqlInfoData> {
    Arc::new(sql_info())
}
