//! Rows of a result as the JSON text of Trino's `data` arrays, written
//! straight from the Arrow columns for the common types (integers, floats,
//! booleans, strings) and through [`super::types::values`] for the rest.

use std::fmt::Write as _;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::DataType;
use serde_json::Value;

use super::types::values;

/// One column, ready to write row by row.
enum Column {
    Int(Int64Array),
    Float(Float64Array),
    Bool(BooleanArray),
    Text(StringArray),
    /// Any other type: its values as Trino sends them.
    Values(Vec<Value>),
}

impl Column {
    fn of(array: &ArrayRef) -> Column {
        use DataType::*;
        let cast = |t: &DataType| arrow::compute::cast(array, t).ok();
        match array.data_type() {
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => {
                if let Some(a) = cast(&Int64) {
                    return Column::Int(a.as_primitive::<arrow::datatypes::Int64Type>().clone());
                }
            }
            Float64 => {
                return Column::Float(
                    array
                        .as_primitive::<arrow::datatypes::Float64Type>()
                        .clone(),
                );
            }
            Boolean => return Column::Bool(array.as_boolean().clone()),
            Utf8 | LargeUtf8 | Utf8View => {
                if let Some(a) = cast(&Utf8) {
                    return Column::Text(a.as_string::<i32>().clone());
                }
            }
            _ => {}
        }
        Column::Values(values(array))
    }

    fn write(&self, row: usize, out: &mut String) {
        match self {
            Column::Int(a) if a.is_valid(row) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Column::Float(a) if a.is_valid(row) => {
                let x = a.value(row);
                if x.is_nan() {
                    out.push_str("\"NaN\"");
                } else if x.is_infinite() {
                    out.push_str(if x > 0.0 {
                        "\"Infinity\""
                    } else {
                        "\"-Infinity\""
                    });
                } else {
                    // serde_json's own text of a double (shortest, 1e20 style).
                    out.push_str(
                        &serde_json::Number::from_f64(x)
                            .expect("a finite double")
                            .to_string(),
                    );
                }
            }
            Column::Bool(a) if a.is_valid(row) => {
                out.push_str(if a.value(row) { "true" } else { "false" })
            }
            Column::Text(a) if a.is_valid(row) => quote(a.value(row), out),
            Column::Values(v) => out.push_str(&v[row].to_string()),
            _ => out.push_str("null"),
        }
    }
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn quote(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The rows of a batch, written one at a time.
pub struct Rows {
    columns: Vec<Column>,
    len: usize,
}

impl Rows {
    /// The rows of `batch`.
    pub fn of(batch: &RecordBatch) -> Rows {
        Rows {
            columns: batch.columns().iter().map(Column::of).collect(),
            len: batch.num_rows(),
        }
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends row `row` as a JSON array.
    pub fn write(&self, row: usize, out: &mut String) {
        out.push('[');
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            c.write(row, out);
        }
        out.push(']');
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Float32Array, Int32Array};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn rows_are_written_as_the_values_would_be() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("d", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("r", DataType::Float32, true),
            Field::new("dt", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(-3), None, Some(7)])),
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    Some(f64::NAN),
                    Some(1e20),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("a\"b\\c\n\u{1}é"),
                    None,
                    Some(""),
                ])),
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
                Arc::new(Float32Array::from(vec![
                    Some(1.0f32 / 3.0),
                    None,
                    Some(f32::NEG_INFINITY),
                ])),
                Arc::new(Date32Array::from(vec![Some(19724), None, Some(0)])),
            ],
        )
        .unwrap();
        let rows = Rows::of(&batch);
        let columns: Vec<Vec<Value>> = batch.columns().iter().map(values).collect();
        for r in 0..rows.len() {
            let mut text = String::new();
            rows.write(r, &mut text);
            let expected = Value::Array(columns.iter().map(|c| c[r].clone()).collect());
            assert_eq!(text, expected.to_string(), "row {r}");
        }
    }
}
