//! Column builders that take JSON values straight from the parser and convert
//! them to their column's SQL type, or say why they cannot.

use std::sync::Arc;

use arrow::array::builder::{ArrayBuilder, NullBufferBuilder};
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, ListArray,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::Field;

use crate::json::{Cursor, Kind};
use crate::temporal;
use crate::types::{SqlType, UTC};

/// Why a value could not take its column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

/// Builds one Arrow column of a given SQL type from JSON values.
pub enum ColumnBuilder {
    /// BOOLEAN
    Boolean(BooleanBuilder),
    /// TINYINT
    Int8(Int8Builder),
    /// SMALLINT
    Int16(Int16Builder),
    /// INTEGER
    Int32(Int32Builder),
    /// BIGINT
    Int64(Int64Builder),
    /// REAL
    Float32(Float32Builder),
    /// DOUBLE
    Float64(Float64Builder),
    /// DECIMAL(38, scale)
    Decimal(Decimal128Builder, u8),
    /// VARCHAR
    Utf8(StringBuilder),
    /// DATE
    Date(Date32Builder),
    /// TIME
    Time(Time64MicrosecondBuilder),
    /// TIMESTAMP (zoned or not)
    Timestamp(TimestampMicrosecondBuilder, bool),
    /// VARBINARY
    Binary(BinaryBuilder),
    /// ARRAY(T)
    List {
        /// Element values.
        values: Box<ColumnBuilder>,
        /// End offset of every list so far.
        offsets: Vec<i32>,
        /// Which lists are non-null.
        validity: NullBufferBuilder,
        /// Element type.
        element: SqlType,
    },
}

impl ColumnBuilder {
    /// An empty builder for `t`.
    pub fn new(t: &SqlType) -> ColumnBuilder {
        match t {
            SqlType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            SqlType::TinyInt => ColumnBuilder::Int8(Int8Builder::new()),
            SqlType::SmallInt => ColumnBuilder::Int16(Int16Builder::new()),
            SqlType::Integer => ColumnBuilder::Int32(Int32Builder::new()),
            SqlType::BigInt => ColumnBuilder::Int64(Int64Builder::new()),
            SqlType::Real => ColumnBuilder::Float32(Float32Builder::new()),
            SqlType::Double => ColumnBuilder::Float64(Float64Builder::new()),
            SqlType::Decimal(s) => ColumnBuilder::Decimal(Decimal128Builder::new(), *s),
            SqlType::Varchar => ColumnBuilder::Utf8(StringBuilder::new()),
            SqlType::Date => ColumnBuilder::Date(Date32Builder::new()),
            SqlType::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::new()),
            SqlType::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new(), false)
            }
            SqlType::TimestampTz => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new(), true)
            }
            SqlType::Varbinary => ColumnBuilder::Binary(BinaryBuilder::new()),
            SqlType::Array(e) => ColumnBuilder::List {
                values: Box::new(ColumnBuilder::new(e)),
                offsets: vec![0],
                validity: NullBufferBuilder::new(0),
                element: (**e).clone(),
            },
        }
    }

    /// Number of values appended.
    pub fn len(&self) -> usize {
        match self {
            ColumnBuilder::Boolean(b) => b.len(),
            ColumnBuilder::Int8(b) => b.len(),
            ColumnBuilder::Int16(b) => b.len(),
            ColumnBuilder::Int32(b) => b.len(),
            ColumnBuilder::Int64(b) => b.len(),
            ColumnBuilder::Float32(b) => b.len(),
            ColumnBuilder::Float64(b) => b.len(),
            ColumnBuilder::Decimal(b, _) => b.len(),
            ColumnBuilder::Utf8(b) => b.len(),
            ColumnBuilder::Date(b) => b.len(),
            ColumnBuilder::Time(b) => b.len(),
            ColumnBuilder::Timestamp(b, _) => b.len(),
            ColumnBuilder::Binary(b) => b.len(),
            ColumnBuilder::List { offsets, .. } => offsets.len() - 1,
        }
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a NULL.
    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Int8(b) => b.append_null(),
            ColumnBuilder::Int16(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Decimal(b, _) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::Timestamp(b, _) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
            ColumnBuilder::List {
                offsets, validity, ..
            } => {
                offsets.push(*offsets.last().expect("offsets start with 0"));
                validity.append_null();
            }
        }
    }

    /// Reads the value at the cursor and appends it converted. On error the cursor
    /// has still moved past the value and nothing was appended.
    pub fn append_json(&mut self, c: &mut Cursor<'_>) -> Result<(), ValueErrorOrJson> {
        let kind = c.peek_kind()?;
        if kind == Kind::Null {
            c.read_null()?;
            self.append_null();
            return Ok(());
        }
        if let ColumnBuilder::Utf8(b) = self {
            match kind {
                Kind::String => b.append_value(c.read_str()?),
                _ => {
                    let (s, e) = c.skip_value()?;
                    b.append_value(compact_json(&c.buf()[s..e]));
                }
            }
            return Ok(());
        }
        if let ColumnBuilder::List {
            values,
            offsets,
            validity,
            ..
        } = self
        {
            if kind != Kind::Array {
                let (s, e) = c.skip_value()?;
                return Err(ValueError(format!(
                    "expected an array, found {}",
                    show(&c.buf()[s..e])
                ))
                .into());
            }
            c.begin_array()?;
            let mut first = true;
            let mut n = 0;
            let mut failure = None;
            while c.next_element(first)? {
                first = false;
                match values.append_json(c) {
                    Ok(()) => n += 1,
                    Err(ValueErrorOrJson::Value(e)) => {
                        values.append_null();
                        n += 1;
                        failure.get_or_insert(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            let last = *offsets.last().expect("offsets start with 0");
            offsets.push(last + n);
            validity.append_non_null();
            return match failure {
                Some(e) => Err(e.into()),
                None => Ok(()),
            };
        }
        // Scalars: take the value's text (numbers raw, strings unescaped).
        let (text, is_string) = match kind {
            Kind::Number => (std::borrow::Cow::Borrowed(c.read_number()?), false),
            Kind::String => (c.read_str()?, true),
            Kind::Bool => {
                let v = c.read_bool()?;
                if let ColumnBuilder::Boolean(b) = self {
                    b.append_value(v);
                    return Ok(());
                }
                return Err(ValueError(format!("{v} is not a valid {}", self.type_name())).into());
            }
            _ => {
                let (s, e) = c.skip_value()?;
                return Err(ValueError(format!(
                    "{} is not a valid {}",
                    show(&c.buf()[s..e]),
                    self.type_name()
                ))
                .into());
            }
        };
        self.append_text(&text, is_string).map_err(Into::into)
    }

    fn type_name(&self) -> String {
        match self {
            ColumnBuilder::Boolean(_) => "BOOLEAN".into(),
            ColumnBuilder::Int8(_) => "TINYINT".into(),
            ColumnBuilder::Int16(_) => "SMALLINT".into(),
            ColumnBuilder::Int32(_) => "INTEGER".into(),
            ColumnBuilder::Int64(_) => "BIGINT".into(),
            ColumnBuilder::Float32(_) => "REAL".into(),
            ColumnBuilder::Float64(_) => "DOUBLE".into(),
            ColumnBuilder::Decimal(_, s) => format!("DECIMAL(38,{s})"),
            ColumnBuilder::Utf8(_) => "VARCHAR".into(),
            ColumnBuilder::Date(_) => "DATE".into(),
            ColumnBuilder::Time(_) => "TIME".into(),
            ColumnBuilder::Timestamp(_, false) => "TIMESTAMP".into(),
            ColumnBuilder::Timestamp(_, true) => "TIMESTAMP WITH TIME ZONE".into(),
            ColumnBuilder::Binary(_) => "VARBINARY".into(),
            ColumnBuilder::List { element, .. } => format!("ARRAY({element})"),
        }
    }

    /// Appends a scalar given as text (a JSON number's digits or a string's contents).
    fn append_text(&mut self, text: &str, is_string: bool) -> Result<(), ValueError> {
        let bad = |this: &Self| {
            let shown = if is_string {
                format!("\"{text}\"")
            } else {
                text.to_string()
            };
            ValueError(format!("{shown} is not a valid {}", this.type_name()))
        };
        match self {
            ColumnBuilder::Boolean(b) => match text {
                "true" if is_string => b.append_value(true),
                "false" if is_string => b.append_value(false),
                _ => return Err(bad(self)),
            },
            ColumnBuilder::Int8(b) => b.append_value(
                text.parse()
                    .map_err(|_| bad_ref(text, is_string, "TINYINT"))?,
            ),
            ColumnBuilder::Int16(b) => b.append_value(
                text.parse()
                    .map_err(|_| bad_ref(text, is_string, "SMALLINT"))?,
            ),
            ColumnBuilder::Int32(b) => b.append_value(
                text.parse()
                    .map_err(|_| bad_ref(text, is_string, "INTEGER"))?,
            ),
            ColumnBuilder::Int64(b) => b.append_value(
                text.parse()
                    .map_err(|_| bad_ref(text, is_string, "BIGINT"))?,
            ),
            ColumnBuilder::Float32(b) => b.append_value(
                parse_float(text).ok_or_else(|| bad_ref(text, is_string, "REAL"))? as f32,
            ),
            ColumnBuilder::Float64(b) => {
                b.append_value(parse_float(text).ok_or_else(|| bad_ref(text, is_string, "DOUBLE"))?)
            }
            ColumnBuilder::Decimal(b, scale) => {
                let v = parse_decimal(text, *scale)
                    .ok_or_else(|| bad_ref(text, is_string, &format!("DECIMAL(38,{scale})")))?;
                b.append_value(v)
            }
            ColumnBuilder::Utf8(b) => b.append_value(text),
            ColumnBuilder::Date(b) => {
                let d = if is_string {
                    temporal::parse_date(text).or_else(|| temporal::parse_year_or_month(text))
                } else {
                    temporal::parse_year_or_month(text)
                };
                b.append_value(d.ok_or_else(|| bad_ref(text, is_string, "DATE"))?)
            }
            ColumnBuilder::Time(b) => b.append_value(
                temporal::parse_time(text)
                    .filter(|_| is_string)
                    .ok_or_else(|| bad_ref(text, is_string, "TIME"))?,
            ),
            ColumnBuilder::Timestamp(b, zoned) => {
                let v = if !is_string {
                    None
                } else if *zoned {
                    temporal::parse_timestamp(text)
                        .filter(|(_, z)| *z)
                        .map(|(v, _)| v)
                } else {
                    temporal::parse_timestamp(text)
                        .filter(|(_, z)| !*z)
                        .map(|(v, _)| v)
                        .or_else(|| temporal::parse_date(text).map(temporal::date_to_micros))
                        .or_else(|| {
                            temporal::parse_year_or_month(text).map(temporal::date_to_micros)
                        })
                        .or_else(|| temporal::parse_time(text))
                };
                let name = if *zoned {
                    "TIMESTAMP WITH TIME ZONE"
                } else {
                    "TIMESTAMP"
                };
                b.append_value(v.ok_or_else(|| bad_ref(text, is_string, name))?)
            }
            ColumnBuilder::Binary(b) => b.append_value(
                decode_base64(text)
                    .ok_or_else(|| bad_ref(text, is_string, "VARBINARY (base64)"))?,
            ),
            ColumnBuilder::List { .. } => return Err(bad(self)),
        }
        Ok(())
    }

    /// Appends a string value (used for element columns and meta data).
    pub fn append_str(&mut self, s: &str) -> Result<(), ValueError> {
        self.append_text(s, true)
    }

    /// Finishes the column.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Int8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(38, *s as i8)
                    .expect("38 digits fit"),
            ),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b, true) => Arc::new(b.finish().with_timezone(UTC)),
            ColumnBuilder::Timestamp(b, false) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::List {
                values,
                offsets,
                validity,
                element,
            } => {
                let child = values.finish();
                let offs =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let field = Arc::new(Field::new_list_field(element.arrow_type(), true));
                Arc::new(ListArray::new(field, offs, child, validity.finish()))
            }
        }
    }
}

fn bad_ref(text: &str, is_string: bool, type_name: &str) -> ValueError {
    let shown = if is_string {
        format!("\"{text}\"")
    } else {
        text.to_string()
    };
    ValueError(format!("{shown} is not a valid {type_name}"))
}

/// Either a conversion failure (the document is fine) or a syntax error.
#[derive(Debug)]
pub enum ValueErrorOrJson {
    /// The value does not fit the column.
    Value(ValueError),
    /// The document is malformed.
    Json(crate::json::JsonError),
}

impl From<ValueError> for ValueErrorOrJson {
    fn from(e: ValueError) -> Self {
        ValueErrorOrJson::Value(e)
    }
}

impl From<crate::json::JsonError> for ValueErrorOrJson {
    fn from(e: crate::json::JsonError) -> Self {
        ValueErrorOrJson::Json(e)
    }
}

fn show(raw: &[u8]) -> String {
    let s = compact_json(raw);
    if s.len() > 60 {
        format!("{}…", &s[..s.floor_char_boundary(60)])
    } else {
        s
    }
}

fn parse_float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses a decimal number into an i128 scaled by `scale`, rounding half away from zero.
pub fn parse_decimal(text: &str, scale: u8) -> Option<i128> {
    let (neg, t) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (ip, fp) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if ip.is_empty() && fp.is_empty() {
        return None;
    }
    let mut digits: Vec<u8> = Vec::with_capacity(ip.len() + fp.len());
    for b in ip.bytes().chain(fp.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        digits.push(b - b'0');
    }
    // value = digits × 10^(exp - fp.len()); we want value × 10^scale.
    let shift = exp as i64 - fp.len() as i64 + scale as i64;
    let mut v: i128 = 0;
    let keep = if shift >= 0 {
        digits.len()
    } else {
        (digits.len() as i64 + shift).max(0) as usize
    };
    for &d in &digits[..keep] {
        v = v.checked_mul(10)?.checked_add(d as i128)?;
    }
    if shift > 0 {
        for _ in 0..shift {
            v = v.checked_mul(10)?;
        }
    } else if keep < digits.len() && digits[keep] >= 5 {
        v = v.checked_add(1)?;
    }
    if v >= 10i128.pow(38) {
        return None;
    }
    Some(if neg { -v } else { v })
}

/// Removes white space outside strings from JSON text.
pub fn compact_json(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if !b.is_ascii_whitespace() {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let t = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in t.as_bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    fn column(t: SqlType, values: &[&str]) -> (ArrayRef, Vec<String>) {
        let mut b = ColumnBuilder::new(&t);
        let mut errors = Vec::new();
        for v in values {
            if let Err(ValueErrorOrJson::Value(e)) = b.append_json(&mut Cursor::new(v.as_bytes())) {
                errors.push(e.0);
            }
        }
        (b.finish(), errors)
    }

    #[test]
    fn varchar_keeps_strings_and_writes_other_values_as_json() {
        let (a, _) = column(
            SqlType::Varchar,
            &["\"s\"", "11", "true", "2.5", r#"{ "a" : 1 }"#, "null"],
        );
        let a = a.as_string::<i32>();
        let got: Vec<_> = (0..5).map(|i| a.value(i)).collect();
        assert_eq!(got, ["s", "11", "true", "2.5", r#"{"a":1}"#]);
        assert!(a.is_null(5));
    }

    #[test]
    fn conversion_failures_are_reported() {
        let (a, errors) = column(SqlType::BigInt, &["1", "\"x\"", "2.5"]);
        assert_eq!(a.len(), 1);
        assert_eq!(a.as_primitive::<Int64Type>().value(0), 1);
        assert_eq!(
            errors,
            ["\"x\" is not a valid BIGINT", "2.5 is not a valid BIGINT"]
        );
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("12.5", 2), Some(1250));
        assert_eq!(parse_decimal("-0.125", 2), Some(-13));
        assert_eq!(parse_decimal("1e2", 0), Some(100));
        assert_eq!(
            parse_decimal("123456789012345678901234567890", 0),
            Some(123456789012345678901234567890)
        );
        assert_eq!(parse_decimal(&"9".repeat(39), 0), None);
    }

    #[test]
    fn lists_hold_converted_elements() {
        let (a, _) = column(
            SqlType::Array(Box::new(SqlType::BigInt)),
            &["[1,2]", "[]", "null"],
        );
        let l = a.as_list::<i32>();
        assert_eq!(l.value_length(0), 2);
        assert_eq!(l.value_length(1), 0);
        assert!(l.is_null(2));
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
    }
}
