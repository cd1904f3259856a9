//! Output types normalized for Java readers: no view or dictionary types,
//! decimals as Decimal128, instants as Timestamp(µs, "UTC"); and the column
//! metadata the JDBC driver reads.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

/// The type a column is sent as.
pub fn wire_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::Dictionary(_, v) => wire_type(v),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => DataType::Decimal128(*p, *s),
        DataType::Decimal256(_, s) => DataType::Decimal128(38, (*s).min(38)),
        DataType::Timestamp(_, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Time32(_) | DataType::Time64(_) => DataType::Time64(TimeUnit::Microsecond),
        DataType::Date64 => DataType::Date32,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => DataType::List(Arc::new(wire_field(f))),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| Arc::new(wire_field(f))).collect())
        }
        DataType::Map(f, sorted) => DataType::Map(Arc::new(wire_field(f)), *sorted),
        other => other.clone(),
    }
}

fn wire_field(f: &FieldRef) -> Field {
    Field::new(f.name(), wire_type(f.data_type()), f.is_nullable())
        .with_metadata(f.metadata().clone())
}

/// The schema a result is sent with.
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| Arc::new(wire_field(f)))
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// `batch` converted to `schema` (from [`wire_schema`]).
pub fn to_wire(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// The SQL name of a wire type, as the JDBC driver shows it: tsql's SQL
/// type names, except that unsigned integers (which JDBC has not) are BIGINT.
pub fn sql_type_name(t: &DataType) -> String {
    match t {
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "BIGINT".into(),
        other => tsql_entity_tables::types::sql_type_name(other),
    }
}

/// `schema` with the Flight SQL column metadata (type name, precision, scale,
/// remarks, read-only, …) on every field, for `GetTables` and result schemas.
pub fn with_column_metadata(
    schema: &Schema,
    catalog: &str,
    db_schema: &str,
    table: &str,
) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = f.data_type();
            let (precision, scale) = match t {
                DataType::Decimal128(p, s) => (*p as i32, *s as i32),
                DataType::Int8 => (3, 0),
                DataType::Int16 => (5, 0),
                DataType::Int32 => (10, 0),
                DataType::Int64 => (19, 0),
                DataType::Float32 => (7, 0),
                DataType::Float64 => (15, 0),
                DataType::Timestamp(..) => (26, 6),
                DataType::Time64(_) => (15, 6),
                DataType::Date32 => (10, 0),
                _ => (0, 0),
            };
            let mut m: HashMap<String, String> = f.metadata().clone();
            let mut put = |k: &str, v: String| {
                m.insert(format!("ARROW:FLIGHT:SQL:{k}"), v);
            };
            put("TYPE_NAME", sql_type_name(t));
            put("PRECISION", precision.to_string());
            put("SCALE", scale.to_string());
            put("IS_AUTO_INCREMENT", "0".into());
            put(
                "IS_CASE_SENSITIVE",
                matches!(t, DataType::Utf8)
                    .then_some("1")
                    .unwrap_or("0")
                    .into(),
            );
            put("IS_READ_ONLY", "1".into());
            put("IS_SEARCHABLE", "1".into());
            put("REMARKS", String::new());
            if !table.is_empty() {
                put("CATALOG_NAME", catalog.into());
                put("SCHEMA_NAME", db_schema.into());
                put("TABLE_NAME", table.into());
            }
            Field::new(f.name(), t.clone(), f.is_nullable()).with_metadata(m)
        })
        .collect();
    Schema::new(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_dictionaries_and_instants_are_normalized() {
        assert_eq!(wire_type(&DataType::Utf8View), DataType::Utf8);
        assert_eq!(
            wire_type(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8)
            )),
            DataType::Utf8
        );
        assert_eq!(
            wire_type(&DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("+00:00".into())
            )),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            wire_type(&DataType::Decimal256(40, 2)),
            DataType::Decimal128(38, 2)
        );
    }
}
