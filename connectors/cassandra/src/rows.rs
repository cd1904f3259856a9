//! Rows as the driver hands them over, cheaply: a column of a fixed-width or
//! text type is kept as the place of its serialized bytes in the response
//! frame (the row holds one reference to the frame, no copy), any other
//! column is read into a `CqlValue`. Columns of bytes are then decoded
//! straight into Arrow builders.

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
use smallvec::SmallVec;

use crate::cql_type::CqlType;
use crate::values::ValueError;

/// One column's value in a [`RawRow`].
#[derive(Debug, Clone)]
pub enum Cell {
    /// NULL.
    Null,
    /// Where the serialized value is in the row's frame: offset and length
    /// (fixed-width and text types).
    Bytes(u32, u32),
    /// The value read by the driver (every other type).
    Value(Box<CqlValue>),
}

/// A row of [`Cell`]s, with the response frame its bytes are in.
#[derive(Debug, Clone)]
pub struct RawRow {
    frame: Bytes,
    cells: SmallVec<[Cell; 8]>,
}

/// A column of a row as read.
pub enum Read<'a> {
    /// NULL.
    Null,
    /// Serialized bytes.
    Bytes(&'a [u8]),
    /// A value read by the driver.
    Value(&'a CqlValue),
}

impl RawRow {
    /// Column `i` of the row.
    pub fn get(&self, i: usize) -> Read<'_> {
        match &self.cells[i] {
            Cell::Null => Read::Null,
            Cell::Bytes(at, len) => Read::Bytes(&self.frame[*at as usize..(*at + *len) as usize]),
            Cell::Value(v) => Read::Value(v),
        }
    }
}

fn kept_as_bytes(t: &ColumnType) -> bool {
    use NativeType::*;
    matches!(
        t,
        ColumnType::Native(
            Ascii
                | Text
                | Boolean
                | TinyInt
                | SmallInt
                | Int
                | BigInt
                | Counter
                | Float
                | Double
                | Timestamp
                | Date
                | Time
                | Uuid
                | Timeuuid
                | Inet
                | Blob
        )
    )
}

impl<'frame, 'metadata> DeserializeRow<'frame, 'metadata> for RawRow {
    fn type_check(_specs: &[ColumnSpec]) -> Result<(), TypeCheckError> {
        Ok(())
    }

    fn deserialize(row: ColumnIterator<'frame, 'metadata>) -> Result<Self, DeserializationError> {
        let mut cells = SmallVec::new();
        let mut frame: Option<&Bytes> = None;
        for column in row {
            let column = column?;
            let typ = column.spec.typ();
            let cell = match column.slice {
                None => Cell::Null,
                Some(slice) if kept_as_bytes(typ) => {
                    let whole = slice.as_original_frame_bytes();
                    let bytes = slice.as_slice();
                    let at = (bytes.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
                    let same_frame = frame.is_none_or(|f| std::ptr::eq(f, whole));
                    if same_frame
                        && at + bytes.len() <= whole.len()
                        && whole.len() <= u32::MAX as usize
                    {
                        frame = Some(whole);
                        Cell::Bytes(at as u32, bytes.len() as u32)
                    } else {
                        match CqlValue::deserialize(typ, Some(slice))? {
                            CqlValue::Empty => Cell::Null,
                            v => Cell::Value(Box::new(v)),
                        }
                    }
                }
                Some(slice) => match CqlValue::deserialize(typ, Some(slice))? {
                    CqlValue::Empty => Cell::Null,
                    v => Cell::Value(Box::new(v)),
                },
            };
            cells.push(cell);
        }
        Ok(RawRow {
            frame: frame.cloned().unwrap_or_default(),
            cells,
        })
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
                match r.get(i) {
                    Read::Bytes(x) if x.len() == $n => {
                        let a: [u8; $n] = x[..].try_into().expect("length checked");
                        b.append_value($conv(a));
                    }
                    Read::Bytes(x) if x.is_empty() => b.append_null(),
                    Read::Null => b.append_null(),
                    Read::Value(v) => return Some(Err(odd(v, cql))),
                    Read::Bytes(x) => return Some(Err(width(x.len(), cql))),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let array: ArrayRef = match cql {
        CqlType::Text => {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
            for r in rows {
                match r.get(i) {
                    Read::Bytes(x) => match std::str::from_utf8(x) {
                        Ok(s) => b.append_value(s),
                        Err(_) => {
                            return Some(Err(ValueError(
                                "Cassandra sent text that is not UTF-8".into(),
                            )));
                        }
                    },
                    Read::Null => b.append_null(),
                    Read::Value(v) => return Some(Err(odd(v, cql))),
                }
            }
            Arc::new(b.finish())
        }
        CqlType::Blob => {
            let mut b = BinaryBuilder::with_capacity(rows.len(), rows.len() * 16);
            for r in rows {
                match r.get(i) {
                    Read::Bytes(x) => b.append_value(x),
                    Read::Null => b.append_null(),
                    Read::Value(v) => return Some(Err(odd(v, cql))),
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
                match r.get(i) {
                    Read::Bytes(x) if x.len() == 8 => {
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
                    Read::Bytes(x) if x.is_empty() => b.append_null(),
                    Read::Null => b.append_null(),
                    Read::Value(v) => return Some(Err(odd(v, cql))),
                    Read::Bytes(x) => return Some(Err(width(x.len(), cql))),
                }
            }
            Arc::new(b.finish().with_timezone("UTC"))
        }
        CqlType::Uuid | CqlType::Timeuuid | CqlType::Inet => {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 36);
            for r in rows {
                match r.get(i) {
                    Read::Bytes(x) if x.len() == 16 && *cql != CqlType::Inet => {
                        let u = uuid::Uuid::from_bytes(x[..].try_into().expect("length checked"));
                        b.append_value(
                            u.hyphenated()
                                .encode_lower(&mut uuid::Uuid::encode_buffer()),
                        );
                    }
                    Read::Bytes(x) if *cql == CqlType::Inet && x.len() == 4 => {
                        let a: [u8; 4] = x[..].try_into().expect("length checked");
                        b.append_value(std::net::Ipv4Addr::from(a).to_string());
                    }
                    Read::Bytes(x) if *cql == CqlType::Inet && x.len() == 16 => {
                        let a: [u8; 16] = x[..].try_into().expect("length checked");
                        b.append_value(std::net::Ipv6Addr::from(a).to_string());
                    }
                    Read::Bytes(x) if x.is_empty() => b.append_null(),
                    Read::Null => b.append_null(),
                    Read::Value(v) => return Some(Err(odd(v, cql))),
                    Read::Bytes(x) => return Some(Err(width(x.len(), cql))),
                }
            }
            Arc::new(b.finish())
        }
        _ => return None,
    };
    Some(Ok(array))
}

fn width(len: usize, cql: &CqlType) -> ValueError {
    ValueError(format!(
        "Cassandra sent a value of {len} bytes for a column of type {cql:?}"
    ))
}

fn odd(value: &CqlValue, cql: &CqlType) -> ValueError {
    ValueError(format!(
        "Cassandra sent {value:?} for a column of type {cql:?}"
    ))
}
