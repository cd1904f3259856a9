//! Arrow types and values as Trino's client protocol sends them: a column's
//! `type` text and `typeSignature`, and each value as the JSON Trino uses
//! (bigint a number, double a number or "NaN"/"Infinity", decimal a
//! scale-padded string, varchar a string, date/time/timestamp text with
//! exactly p fraction digits, varbinary base64, array/row JSON arrays, map a
//! JSON object).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::trino_functions::misc::trino_type_name;

/// Fraction digits of a time unit.
fn precision(u: &TimeUnit) -> u32 {
    match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// The `typeSignature` of a column of type `t`.
pub fn signature(t: &DataType) -> Value {
    let long = |v: i64| json!({"kind": "LONG", "value": v});
    let ty = |t: &DataType| json!({"kind": "TYPE", "value": signature(t)});
    let (raw, args): (&str, Vec<Value>) = match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            ("varchar", vec![long(2147483647)])
        }
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => ("decimal", vec![long(*p as i64), long(*s as i64)]),
        DataType::Timestamp(u, None) => ("timestamp", vec![long(precision(u) as i64)]),
        DataType::Timestamp(u, Some(_)) => {
            ("timestamp with time zone", vec![long(precision(u) as i64)])
        }
        DataType::Time32(u) | DataType::Time64(u) => ("time", vec![long(precision(u) as i64)]),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::FixedSizeList(f, _) => ("array", vec![ty(f.data_type())]),
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                ("map", vec![ty(kv[0].data_type()), ty(kv[1].data_type())])
            }
            _ => ("varchar", vec![long(2147483647)]),
        },
        DataType::Struct(fields) => (
            "row",
            fields
                .iter()
                .map(|f| {
                    json!({"kind": "NAMED_TYPE", "value": {
                        "fieldName": {"name": f.name()},
                        "typeSignature": signature(f.data_type())}})
                })
                .collect(),
        ),
        other => {
            let name = trino_type_name(other);
            return json!({"rawType": name, "arguments": []});
        }
    };
    json!({"rawType": raw, "arguments": args})
}

/// A column description: `name`, `type` and `typeSignature`.
pub fn column(name: &str, t: &DataType) -> Value {
    json!({"name": name, "type": trino_type_name(t), "typeSignature": signature(t)})
}

/// The values of `array` as Trino sends them, one per row.
pub fn values(array: &ArrayRef) -> Vec<Value> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    match array.data_type() {
        DataType::Null => out.resize(n, Value::Null),
        DataType::Boolean => out.extend(
            array
                .as_boolean()
                .iter()
                .map(|v| v.map_or(Value::Null, Value::Bool)),
        ),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let wide = arrow::compute::cast(array, &DataType::Int64).ok();
            match wide {
                Some(w) => out.extend(
                    w.as_primitive::<arrow::datatypes::Int64Type>()
                        .iter()
                        .map(|v| v.map_or(Value::Null, |x| json!(x))),
                ),
                None => out.extend(text_values(array)),
            }
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            // A real goes out in its own shortest digits (0.33333334, not
            // the 0.3333333432674408 of its double).
            let wide = match array.data_type() {
                DataType::Float32 => Arc::new(
                    array
                        .as_primitive::<arrow::datatypes::Float32Type>()
                        .iter()
                        .map(|v| v.map(|x| x.to_string().parse::<f64>().unwrap_or(x as f64)))
                        .collect::<arrow::array::Float64Array>(),
                ) as ArrayRef,
                _ => arrow::compute::cast(array, &DataType::Float64).expect("floats widen"),
            };
            out.extend(
                wide.as_primitive::<arrow::datatypes::Float64Type>()
                    .iter()
                    .map(|v| match v {
                        None => Value::Null,
                        Some(x) if x.is_nan() => json!("NaN"),
                        Some(x) if x == f64::INFINITY => json!("Infinity"),
                        Some(x) if x == f64::NEG_INFINITY => json!("-Infinity"),
                        Some(x) => json!(x),
                    }),
            )
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let b = arrow::compute::cast(array, &DataType::Binary).expect("binary widens");
            out.extend(b.as_binary::<i32>().iter().map(|v| {
                v.map_or(Value::Null, |x| {
                    json!(base64::engine::general_purpose::STANDARD.encode(x))
                })
            }))
        }
        DataType::Timestamp(u, tz) => {
            let p = precision(u) as usize;
            let micros_or_nanos =
                arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, None));
            match micros_or_nanos {
                Ok(ns) => {
                    let ns = ns.as_primitive::<arrow::datatypes::TimestampNanosecondType>();
                    out.extend(ns.iter().map(|v| {
                        v.map_or(Value::Null, |x| {
                            let d = chrono::DateTime::from_timestamp_nanos(x);
                            let mut s = d.format("%Y-%m-%d %H:%M:%S").to_string();
                            if p > 0 {
                                let frac = format!("{:09}", d.timestamp_subsec_nanos());
                                s.push('.');
                                s.push_str(&frac[..p]);
                            }
                            if tz.is_some() {
                                s.push_str(" UTC");
                            }
                            json!(s)
                        })
                    }))
                }
                Err(_) => out.extend(text_values(array)),
            }
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let list = arrow::compute::cast(
                array,
                &DataType::List(match array.data_type() {
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                        f.clone()
                    }
                    _ => unreachable!(),
                }),
            )
            .expect("lists cast to lists");
            let list = list.as_list::<i32>();
            for i in 0..n {
                if list.is_null(i) {
                    out.push(Value::Null);
                } else {
                    out.push(Value::Array(values(&list.value(i))));
                }
            }
        }
        DataType::Map(..) => {
            let map = array.as_map();
            for i in 0..n {
                if map.is_null(i) {
                    out.push(Value::Null);
                    continue;
                }
                let entries = map.value(i);
                let keys = text_values(entries.column(0));
                let vals = values(entries.column(1));
                let mut m = Map::new();
                for (k, v) in keys.into_iter().zip(vals) {
                    let k = match k {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    m.insert(k, v);
                }
                out.push(Value::Object(m));
            }
        }
        DataType::Struct(_) => {
            let s = array.as_struct();
            let fields: Vec<Vec<Value>> = s.columns().iter().map(values).collect();
            for i in 0..n {
                if s.is_null(i) {
                    out.push(Value::Null);
                } else {
                    out.push(Value::Array(fields.iter().map(|f| f[i].clone()).collect()));
                }
            }
        }
        DataType::Interval(arrow::datatypes::IntervalUnit::YearMonth) => out.extend(
            array
                .as_primitive::<arrow::datatypes::IntervalYearMonthType>()
                .iter()
                .map(|v| v.map_or(Value::Null, |m| json!(year_to_month(m as i64)))),
        ),
        DataType::Interval(_) | DataType::Duration(_) => out.extend(day_to_second(array)),
        _ => out.extend(text_values(array)),
    }
    out
}

/// `Y-M`, Trino's text of an interval year to month.
fn year_to_month(months: i64) -> String {
    let sign = if months < 0 { "-" } else { "" };
    format!("{sign}{}-{}", months.abs() / 12, months.abs() % 12)
}

/// `D HH:MM:SS.mmm`, Trino's text of an interval day to second, for
/// intervals and durations; an interval with months (which a day count
/// cannot hold) goes out as its own text, which clients refuse rather than
/// misread.
fn day_to_second(array: &ArrayRef) -> Vec<Value> {
    let text = |millis: i64| {
        let sign = if millis < 0 { "-" } else { "" };
        let m = millis.unsigned_abs();
        let (days, rest) = (m / 86_400_000, m % 86_400_000);
        format!(
            "{sign}{days} {:02}:{:02}:{:02}.{:03}",
            rest / 3_600_000,
            rest / 60_000 % 60,
            rest / 1000 % 60,
            rest % 1000
        )
    };
    let fallback = text_values(array);
    let millis: Vec<Option<i64>> = match array.data_type() {
        DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano) => array
            .as_primitive::<arrow::datatypes::IntervalMonthDayNanoType>()
            .iter()
            .map(|v| {
                v.and_then(|v| {
                    (v.months == 0).then(|| v.days as i64 * 86_400_000 + v.nanoseconds / 1_000_000)
                })
            })
            .collect(),
        DataType::Interval(arrow::datatypes::IntervalUnit::DayTime) => array
            .as_primitive::<arrow::datatypes::IntervalDayTimeType>()
            .iter()
            .map(|v| v.map(|v| v.days as i64 * 86_400_000 + v.milliseconds as i64))
            .collect(),
        DataType::Duration(_) => {
            match arrow::compute::cast(array, &DataType::Duration(TimeUnit::Millisecond)) {
                Ok(d) => d
                    .as_primitive::<arrow::datatypes::DurationMillisecondType>()
                    .iter()
                    .collect(),
                Err(_) => return fallback,
            }
        }
        _ => return fallback,
    };
    millis
        .into_iter()
        .zip(fallback)
        .map(|(m, text_value)| match m {
            Some(m) => json!(text(m)),
            None => text_value,
        })
        .collect()
}

/// Values as their text (decimals scale-padded, dates ISO, strings as is).
fn text_values(array: &ArrayRef) -> Vec<Value> {
    let options = FormatOptions::default()
        .with_null("")
        .with_time_format(Some("%H:%M:%S%.6f"));
    let Ok(f) = ArrayFormatter::try_new(array.as_ref(), &options) else {
        return vec![Value::Null; array.len()];
    };
    (0..array.len())
        .map(|i| {
            if array.is_null(i) {
                Value::Null
            } else {
                Value::String(f.value(i).to_string())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Float64Array, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc;

    #[test]
    fn values_look_like_trino() {
        let d: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(12345), None])
                .with_precision_and_scale(10, 3)
                .unwrap(),
        );
        assert_eq!(values(&d), vec![json!("12.345"), Value::Null]);
        let f: ArrayRef = Arc::new(Float64Array::from(vec![1.5, f64::NAN, f64::INFINITY]));
        assert_eq!(
            values(&f),
            vec![json!(1.5), json!("NaN"), json!("Infinity")]
        );
        let t: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![1_700_000_000_123_456]).with_timezone("UTC"),
        );
        assert_eq!(values(&t), vec![json!("2023-11-14 22:13:20.123456 UTC")]);
        let s: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        assert_eq!(values(&s), vec![json!("x")]);
        assert_eq!(
            signature(&DataType::Utf8),
            json!({"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]})
        );
        assert_eq!(column("a", &DataType::Int64)["type"], json!("bigint"));
    }
}
