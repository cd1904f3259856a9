//! Rows as the driver hands them over, cheaply: a column of a fixed-width or
//! text type keeps its serialized bytes (a shared slice of the response
//! frame, no copy), any other column is read into a `CqlValue`. Columns of
//! bytes are then decoded straight into Arrow builders.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder, Time64NanosecondBuilder,
    TimestampMicrosecondBuilder,
};
use bytes::Bytes;
use scylla::cluster::metadata::{ColumnType, NativeType};
use scylla::deserialize::row::{ColumnIterator, DeserializeRow};
use scylla::deserialize::value::DeserializeValue;
use scylla::deserialize::{DeserializationError, TypeCheckError};
use scylla::frame::response::result::ColumnSpec;
use scylla::value::CqlValue;

use crate::cql_type::CqlType;
use crate::values::ValueError;

/// One column's value in a [`RawRow`].
#[derive(Debug, Clone)]
pub enum Cell {
    /// NULL.
    Null,
    /// The serialized value (fixed-width and text types).
    Bytes(Bytes),
    /// The value read by the driver (every other type).
    Value(CqlValue),
}

/// A row of [`Cell`]s.
#[derive(Debug, Clone)]
pub struct RawRow(pub Vec<Cell>);

fn kept_as_bytes(t: &ColumnType) -> bool {
    use NativeType::*;
    matches!(
        t,
        ColumnType::Native(
            Ascii | Text | Boolean | TinyInt | SmallInt | Int | BigInt | Counter | Float
                | Double | Timestamp | Date | Time | Uuid | Timeuuid | Inet | Blob
        )
    )
}

impl<'frame, 'metadata> DeserializeRow<'frame, 'metadata> for RawRow {
    fn type_check(_specs: &[ColumnSpec]) -> Result<(), TypeCheckError> {
        Ok(())
    }

    fn deserialize(row: ColumnIterator<'frame, 'metadata>) -> Result<Self, DeserializationError> {
        let mut cells = Vec::with_capacity(row.size_hint().0);
        for column in row {
            let column = column?;
            let typ = column.spec.typ();
            cells.push(match column.slice {
                None => Cell::Null,
                Some(slice) if kept_as_bytes(typ) => Cell::Bytes(slice.to_bytes()),
                Some(slice) => match CqlValue::deserialize(typ, Some(slice))? {
                    CqlValue::Empty => Cell::Null,
                    v => Cell::Value(v),
                },
            });
        }
        Ok(RawRow(cells))
    }
}

/// The cells of column `i` of `rows` as an Arrow array, when the column's
/// type is one kept as bytes; `None` for the other types.
pub fn bytes_column(
    rows: &[RawRow],
    i: usize,
    cql: &CqlType,
) -> Option<Result<ArrayRef, ValueError>> {
    macro_rules! fixed {
        ($builder:ty, $n:literal, $conv:expr) => {{
            let mut b = <$builder>::with_capacity(rows.len());
            for r in rows {
                match &r.0[i] {
                    Cell::Bytes(x) if x.len() == $n => {
                        let a: [u8; $n] = x[..].try_into().expect("length checked");
                        b.append_value($conv(a));
                    }
                    Cell::Bytes(x) if x.is_empty() => b.append_null(),
                    Cell::Null => b.append_null(),
                    other => return Some(Err(odd(other, cql))),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let array: ArrayRef = match cql {
        CqlType::Text => {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
            for r in rows {
                match &r.0[i] {
                    Cell::Bytes(x) => match std::str::from_utf8(x) {
                        Ok(s) => b.append_value(s),
                        Err(_) => {
                            return Some(Err(ValueError(
                                "Cassandra sent text that is not UTF-8".into(),
                            )));
                        }
                    },
                    Cell::Null => b.append_null(),
                    other => return Some(Err(odd(other, cql))),
                }
            }
            Arc::new(b.finish())
        }
        CqlType::Blob => {
            let mut b = BinaryBuilder::with_capacity(rows.len(), rows.len() * 16);
            for r in rows {
                match &r.0[i] {
                    Cell::Bytes(x) => b.append_value(x),
                    Cell::Null => b.append_null(),
                    other => return Some(Err(odd(other, cql))),
                }
            }
            Arc::new(b.finish())
        }
        CqlType::TinyInt => fixed!(Int8Builder, 1, i8::from_be_bytes),
        CqlType::SmallInt => fixed!(Int16Builder, 2, i16::from_be_bytes),
        CqlType::Int => fixed!(Int32Builder, 4, i32::from_be_bytes),
        CqlType::BigInt | CqlType::Counter => fixed!(Int64Builder, 8, i64::from_be_bytes),
        CqlType::Float => fixed!(Float32Builder, 4, f32::from_be_bytes),
        CqlType::Double => fixed!(Float64Builder, 8, f64::from_be_bytes),
        CqlType::Boolean => fixed!(BooleanBuilder, 1, |a: [u8; 1]| a[0] != 0),
        CqlType::Time => fixed!(Time64NanosecondBuilder, 8, i64::from_be_bytes),
        CqlType::Date => fixed!(Date32Builder, 4, |a: [u8; 4]| {
            (u32::from_be_bytes(a) as i64 - (1i64 << 31)) as i32
        }),
        CqlType::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len());
            for r in rows {
                match &r.0[i] {
                    Cell::Bytes(x) if x.len() == 8 => {
                        let ms = i64::from_be_bytes(x[..].try_into().expect("length checked"));
                        match ms.checked_mul(1000) {
                            Some(us) => b.append_value(us),
                            None => {
                                return Some(Err(ValueError(format!(
                                    "timestamp {ms} ms is out of range"
                                ))));
                            }
                        }
                    }
                    Cell::Bytes(x) if x.is_empty() => b.append_null(),
                    Cell::Null => b.append_null(),
                    other => return Some(Err(odd(other, cql))),
                }
            }
            Arc::new(b.finish().with_timezone("UTC"))
        }
        CqlType::Uuid | CqlType::Timeuuid | CqlType::Inet => {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 36);
            for r in rows {
                match &r.0[i] {
                    Cell::Bytes(x) if x.len() == 16 && *cql != CqlType::Inet => {
                        let u = uuid::Uuid::from_bytes(x[..].try_into().expect("length checked"));
                        b.append_value(u.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()));
                    }
                    Cell::Bytes(x) if *cql == CqlType::Inet && x.len() == 4 => {
                        let a: [u8; 4] = x[..].try_into().expect("length checked");
                        b.append_value(std::net::Ipv4Addr::from(a).to_string());
                    }
                    Cell::Bytes(x) if *cql == CqlType::Inet && x.len() == 16 => {
                        let a: [u8; 16] = x[..].try_into().expect("length checked");
                        b.append_value(std::net::Ipv6Addr::from(a).to_string());
                    }
                    Cell::Bytes(x) if x.is_empty() => b.append_null(),
                    Cell::Null => b.append_null(),
                    other => return Some(Err(odd(other, cql))),
                }
            }
            Arc::new(b.finish())
        }
        _ => return None,
    };
    Some(Ok(array))
}

fn odd(cell: &Cell, cql: &CqlType) -> ValueError {
    ValueError(format!(
        "Cassandra sent {cell:?} for a column of type {cql:?}"
    ))
}
