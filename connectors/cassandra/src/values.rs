//! Rows of CQL values as Arrow columns.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, ListArray, MapArray, StringBuilder, StructArray,
    Time64NanosecondBuilder, TimestampMicrosecondBuilder, new_null_array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNano};
use scylla::value::CqlValue;

use crate::cql_type::{CqlType, DECIMAL_SCALE, WideNumbers};

/// A value that cannot be represented in its column's Arrow type.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueError(pub String);

type Col<'a> = [Option<&'a CqlValue>];

/// The Arrow array of `values` (one per row, `None` for NULL) of CQL type
/// `cql` read as `dt` (from [`CqlType::arrow`]).
pub fn to_array(
    values: &Col<'_>,
    cql: &CqlType,
    dt: &DataType,
    wide: WideNumbers,
) -> Result<ArrayRef, ValueError> {
    macro_rules! prim {
        ($builder:ty, $($pat:pat => $v:expr),+) => {{
            let mut b = <$builder>::with_capacity(values.len());
            for v in values {
                match v {
                    $(Some($pat) => b.append_value($v),)+
                    None | Some(CqlValue::Empty) => b.append_null(),
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match (cql, dt) {
        (CqlType::Text, _) => {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match v {
                    Some(CqlValue::Text(s)) | Some(CqlValue::Ascii(s)) => b.append_value(s),
                    None | Some(CqlValue::Empty) => b.append_null(),
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            Arc::new(b.finish())
        }
        (CqlType::Uuid | CqlType::Timeuuid | CqlType::Inet, _) => {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 36);
            for v in values {
                match v {
                    Some(CqlValue::Uuid(u)) => b.append_value(u.to_string()),
                    Some(CqlValue::Timeuuid(u)) => b.append_value(u.to_string()),
                    Some(CqlValue::Inet(a)) => b.append_value(a.to_string()),
                    None | Some(CqlValue::Empty) => b.append_null(),
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            Arc::new(b.finish())
        }
        (CqlType::TinyInt, _) => prim!(Int8Builder, CqlValue::TinyInt(x) => *x),
        (CqlType::SmallInt, _) => prim!(Int16Builder, CqlValue::SmallInt(x) => *x),
        (CqlType::Int, _) => prim!(Int32Builder, CqlValue::Int(x) => *x),
        (CqlType::BigInt | CqlType::Counter, _) => {
            prim!(Int64Builder, CqlValue::BigInt(x) => *x, CqlValue::Counter(c) => c.0)
        }
        (CqlType::Float, _) => prim!(Float32Builder, CqlValue::Float(x) => *x),
        (CqlType::Double, _) => prim!(Float64Builder, CqlValue::Double(x) => *x),
        (CqlType::Boolean, _) => prim!(BooleanBuilder, CqlValue::Boolean(x) => *x),
        (CqlType::Timestamp, _) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(values.len());
            for v in values {
                match v {
                    Some(CqlValue::Timestamp(t)) => {
                        b.append_value(t.0.checked_mul(1000).ok_or_else(|| {
                            ValueError(format!("timestamp {} ms is out of range", t.0))
                        })?)
                    }
                    None | Some(CqlValue::Empty) => b.append_null(),
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            Arc::new(b.finish().with_timezone("UTC"))
        }
        (CqlType::Date, _) => {
            prim!(Date32Builder, CqlValue::Date(d) => (d.0 as i64 - (1i64 << 31)) as i32)
        }
        (CqlType::Time, _) => prim!(Time64NanosecondBuilder, CqlValue::Time(t) => t.0),
        (CqlType::Duration, _) => prim!(IntervalMonthDayNanoBuilder,
            CqlValue::Duration(d) => IntervalMonthDayNano::new(d.months, d.days, d.nanoseconds)),
        (CqlType::Blob, _) => {
            let mut b = BinaryBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match v {
                    Some(CqlValue::Blob(x)) => b.append_value(x),
                    None | Some(CqlValue::Empty) => b.append_null(),
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            Arc::new(b.finish())
        }
        (CqlType::Varint | CqlType::Decimal, DataType::Utf8) => {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match v {
                    Some(CqlValue::Varint(x)) => {
                        b.append_value(digits_of(x.as_signed_bytes_be_slice()))
                    }
                    Some(CqlValue::Decimal(d)) => {
                        let (bytes, scale) = d.as_signed_be_bytes_slice_and_exponent();
                        b.append_value(place_point(&digits_of(bytes), scale))
                    }
                    None | Some(CqlValue::Empty) => b.append_null(),
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            Arc::new(b.finish())
        }
        (CqlType::Varint, _) => {
            let mut b = Decimal128Builder::with_capacity(values.len());
            for v in values {
                match v {
                    Some(CqlValue::Varint(x)) => {
                        b.append_value(decimal(x.as_signed_bytes_be_slice(), 0, 0)?)
                    }
                    None | Some(CqlValue::Empty) => b.append_null(),
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            Arc::new(b.finish().with_precision_and_scale(38, 0).expect("valid"))
        }
        (CqlType::Decimal, _) => {
            let mut b = Decimal128Builder::with_capacity(values.len());
            for v in values {
                match v {
                    Some(CqlValue::Decimal(d)) => {
                        let (bytes, scale) = d.as_signed_be_bytes_slice_and_exponent();
                        b.append_value(decimal(bytes, scale, DECIMAL_SCALE as i32)?)
                    }
                    None | Some(CqlValue::Empty) => b.append_null(),
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(38, DECIMAL_SCALE)
                    .expect("valid"),
            )
        }
        (
            CqlType::List(inner) | CqlType::Set(inner) | CqlType::Vector(inner, _),
            DataType::List(field),
        ) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut children: Vec<Option<&CqlValue>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    Some(CqlValue::List(xs))
                    | Some(CqlValue::Set(xs))
                    | Some(CqlValue::Vector(xs)) => {
                        children.extend(xs.iter().map(Some));
                        valid.push(true);
                    }
                    None | Some(CqlValue::Empty) => valid.push(false),
                    Some(other) => return Err(unexpected(other, cql)),
                }
                offsets.push(children.len() as i32);
            }
            let child = to_array(&children, inner, field.data_type(), wide)?;
            Arc::new(ListArray::new(
                field.clone(),
                OffsetBuffer::new(offsets.into()),
                child,
                nulls(valid),
            ))
        }
        (CqlType::Map(k, val), DataType::Map(entries, sorted)) => {
            let DataType::Struct(fields) = entries.data_type() else {
                unreachable!("map entries are a struct")
            };
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut keys: Vec<Option<&CqlValue>> = Vec::new();
            let mut vals: Vec<Option<&CqlValue>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    Some(CqlValue::Map(pairs)) => {
                        for (a, b) in pairs {
                            keys.push(Some(a));
                            vals.push(match b {
                                CqlValue::Empty => None,
                                b => Some(b),
                            });
                        }
                        valid.push(true);
                    }
                    None | Some(CqlValue::Empty) => valid.push(false),
                    Some(other) => return Err(unexpected(other, cql)),
                }
                offsets.push(keys.len() as i32);
            }
            let key_array = to_array(&keys, k, fields[0].data_type(), wide)?;
            let value_array = to_array(&vals, val, fields[1].data_type(), wide)?;
            let entries_array =
                StructArray::new(fields.clone(), vec![key_array, value_array], None);
            Arc::new(MapArray::new(
                entries.clone(),
                OffsetBuffer::new(offsets.into()),
                entries_array,
                nulls(valid),
                *sorted,
            ))
        }
        (CqlType::Tuple(types), DataType::Struct(fields)) => {
            let mut cols: Vec<Vec<Option<&CqlValue>>> =
                vec![Vec::with_capacity(values.len()); types.len()];
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    Some(CqlValue::Tuple(xs)) => {
                        for (i, col) in cols.iter_mut().enumerate() {
                            col.push(xs.get(i).and_then(|x| x.as_ref()));
                        }
                        valid.push(true);
                    }
                    None | Some(CqlValue::Empty) => {
                        cols.iter_mut().for_each(|c| c.push(None));
                        valid.push(false);
                    }
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            struct_array(fields, types.iter(), &cols, valid, wide)?
        }
        (CqlType::Udt(_, defs), DataType::Struct(fields)) => {
            let mut cols: Vec<Vec<Option<&CqlValue>>> =
                vec![Vec::with_capacity(values.len()); defs.len()];
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    Some(CqlValue::UserDefinedType { fields: got, .. }) => {
                        for (i, (name, _)) in defs.iter().enumerate() {
                            // Fields come in definition order; a UDT that grew
                            // later has the newer fields missing in old values.
                            let x = match got.get(i) {
                                Some((n, x)) if n == name => x.as_ref(),
                                _ => got
                                    .iter()
                                    .find(|(n, _)| n == name)
                                    .and_then(|(_, x)| x.as_ref()),
                            };
                            cols[i].push(x);
                        }
                        valid.push(true);
                    }
                    None | Some(CqlValue::Empty) => {
                        cols.iter_mut().for_each(|c| c.push(None));
                        valid.push(false);
                    }
                    Some(other) => return Err(unexpected(other, cql)),
                }
            }
            struct_array(fields, defs.iter().map(|(_, t)| t), &cols, valid, wide)?
        }
        (_, dt) => {
            if values.iter().all(|v| v.is_none()) {
                new_null_array(dt, values.len())
            } else {
                return Err(ValueError(format!(
                    "CQL type {cql:?} cannot be read as {dt}"
                )));
            }
        }
    })
}

fn struct_array<'t>(
    fields: &arrow::datatypes::Fields,
    types: impl Iterator<Item = &'t CqlType>,
    cols: &[Vec<Option<&CqlValue>>],
    valid: Vec<bool>,
    wide: WideNumbers,
) -> Result<ArrayRef, ValueError> {
    let mut arrays = Vec::with_capacity(cols.len());
    for ((field, t), col) in fields.iter().zip(types).zip(cols) {
        arrays.push(to_array(col, t, field.data_type(), wide)?);
    }
    let len = valid.len();
    let fields: Vec<FieldRef> = fields.iter().cloned().collect();
    if fields.is_empty() {
        return Ok(Arc::new(StructArray::new_empty_fields(len, nulls(valid))));
    }
    Ok(Arc::new(StructArray::new(
        fields.into(),
        arrays,
        nulls(valid),
    )))
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

fn unexpected(v: &CqlValue, cql: &CqlType) -> ValueError {
    ValueError(format!(
        "Cassandra sent a value {v:?} for a column of type {cql:?}"
    ))
}

/// A two's-complement big-endian integer as decimal digits (with a sign).
pub fn digits_of(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "0".into();
    }
    let negative = bytes[0] & 0x80 != 0;
    // Magnitude as big-endian bytes.
    let mut mag: Vec<u8> = if negative {
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        bytes.to_vec()
    };
    let mut digits = Vec::new();
    while mag.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | *b as u32;
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if negative {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ascii digits")
}

/// `digits` (an integer with an optional sign) divided by 10^scale, as text.
fn place_point(digits: &str, scale: i32) -> String {
    let (sign, d) = match digits.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", digits),
    };
    if scale <= 0 {
        let zeros = "0".repeat((-scale) as usize);
        return if d == "0" {
            "0".into()
        } else {
            format!("{sign}{d}{zeros}")
        };
    }
    let scale = scale as usize;
    let padded = if d.len() <= scale {
        format!("{}{d}", "0".repeat(scale - d.len() + 1))
    } else {
        d.to_string()
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// An unscaled integer (two's-complement big-endian) at `scale` as an i128
/// at `target` scale, when it fits 38 digits without losing a digit.
fn decimal(bytes: &[u8], scale: i32, target: i32) -> Result<i128, ValueError> {
    let too_wide = || {
        ValueError(format!(
            "{} does not fit DECIMAL(38,{target}); set `wide_numbers = \"text\"` in the [[source]] to read varint and decimal columns as text",
            place_point(&digits_of(bytes), scale)
        ))
    };
    if bytes.len() > 16 {
        return Err(too_wide());
    }
    let mut buf = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        [0xffu8; 16]
    } else {
        [0u8; 16]
    };
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    let mut v = i128::from_be_bytes(buf);
    if scale > target {
        let div = 10i128
            .checked_pow((scale - target) as u32)
            .ok_or_else(too_wide)?;
        if v % div != 0 {
            return Err(ValueError(format!(
                "{} has more than {target} fraction digits; set `wide_numbers = \"text\"` in the [[source]] to read decimal columns as text",
                place_point(&digits_of(bytes), scale)
            )));
        }
        v /= div;
    } else if scale < target {
        let mul = 10i128
            .checked_pow((target - scale) as u32)
            .ok_or_else(too_wide)?;
        v = v.checked_mul(mul).ok_or_else(too_wide)?;
    }
    if v.unsigned_abs() >= 10u128.pow(38) {
        return Err(too_wide());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers_print_every_digit() {
        assert_eq!(digits_of(&[0x01, 0x00]), "256");
        assert_eq!(digits_of(&[0xff]), "-1");
        assert_eq!(digits_of(&[0x80]), "-128");
        assert_eq!(digits_of(&[0x00]), "0");
        assert_eq!(place_point("-12345", 2), "-123.45");
        assert_eq!(place_point("5", 3), "0.005");
        assert_eq!(place_point("5", -2), "500");
    }

    #[test]
    fn decimals_rescale_exactly_or_fail() {
        assert_eq!(
            decimal(&[0x30, 0x39], 2, 18).unwrap(),
            12345 * 10i128.pow(16)
        );
        assert_eq!(decimal(&[0xff], 0, 0).unwrap(), -1);
        assert!(decimal(&[1; 17], 0, 0).is_err());
        assert!(
            decimal(&[0x01], 20, 18)
                .unwrap_err()
                .0
                .contains("fraction digits")
        );
    }
}
