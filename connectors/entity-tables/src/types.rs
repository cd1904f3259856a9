//! SQL types of entity-table columns: the declared Cyoda types, the families
//! inferred from data, widening of polymorphic fields, and the Arrow mapping.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};

/// The zone of every instant column: instants are stored in UTC.
pub const UTC: &str = "UTC";

/// A column's SQL type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// BOOLEAN
    Boolean,
    /// TINYINT (Cyoda BYTE)
    TinyInt,
    /// SMALLINT (Cyoda SHORT)
    SmallInt,
    /// INTEGER
    Integer,
    /// BIGINT (Cyoda LONG; inferred whole numbers)
    BigInt,
    /// REAL (Cyoda FLOAT)
    Real,
    /// DOUBLE
    Double,
    /// DECIMAL(38, scale): scale 0 for BIG_INTEGER, 18 for BIG_DECIMAL.
    Decimal(u8),
    /// VARCHAR
    Varchar,
    /// DATE
    Date,
    /// TIME (microseconds)
    Time,
    /// TIMESTAMP without zone (microseconds)
    Timestamp,
    /// TIMESTAMP WITH TIME ZONE, stored as UTC microseconds
    TimestampTz,
    /// VARBINARY (base64 in JSON)
    Varbinary,
    /// ARRAY(T): a 1-D array of primitives kept in its node
    Array(Box<SqlType>),
}

impl SqlType {
    /// The Arrow type of a column of this SQL type.
    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::Boolean => DataType::Boolean,
            SqlType::TinyInt => DataType::Int8,
            SqlType::SmallInt => DataType::Int16,
            SqlType::Integer => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Real => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Decimal(scale) => DataType::Decimal128(38, *scale as i8),
            SqlType::Varchar => DataType::Utf8,
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time64(TimeUnit::Microsecond),
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
            }
            SqlType::Varbinary => DataType::Binary,
            SqlType::Array(inner) => {
                DataType::List(Arc::new(Field::new_list_field(inner.arrow_type(), true)))
            }
        }
    }

    /// Parses a declared Cyoda type name (as in a model export), e.g. `LOCAL_DATE`.
    pub fn from_declared(name: &str) -> Option<SqlType> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "STRING" | "CHARACTER" | "UUID_TYPE" | "TIME_UUID_TYPE" => SqlType::Varchar,
            "UNBOUND_INTEGER" | "UNBOUND_DECIMAL" => SqlType::Varchar,
            "BYTE" => SqlType::TinyInt,
            "SHORT" => SqlType::SmallInt,
            "INTEGER" => SqlType::Integer,
            "LONG" => SqlType::BigInt,
            "BIG_INTEGER" => SqlType::Decimal(0),
            "FLOAT" => SqlType::Real,
            "DOUBLE" => SqlType::Double,
            "BIG_DECIMAL" => SqlType::Decimal(18),
            "BOOLEAN" => SqlType::Boolean,
            "LOCAL_DATE" | "YEAR_MONTH" | "YEAR" => SqlType::Date,
            "LOCAL_TIME" => SqlType::Time,
            "LOCAL_DATE_TIME" => SqlType::Timestamp,
            "ZONED_DATE_TIME" => SqlType::TimestampTz,
            "BYTE_ARRAY" => SqlType::Varbinary,
            _ => return None,
        })
    }

    /// True for types that must not stay a list column (they are flattened by default).
    pub fn prefers_flattening(&self) -> bool {
        matches!(self, SqlType::TimestampTz)
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&sql_type_name(&self.arrow_type()))
    }
}

/// Field metadata naming a column's SQL type where its Arrow type does not
/// tell it: a Cassandra column of a Java class type tsql cannot read is a
/// Utf8 field named `UNSUPPORTED(<class>)` here.
pub const SQL_TYPE_KEY: &str = "tsql.sql_type";

/// The SQL name of an Arrow type, as tsql shows column types (`tsql schema`,
/// `information_schema.columns` and `DESCRIBE` over Flight SQL and the CLI):
/// BOOLEAN, TINYINT … BIGINT, REAL, DOUBLE, DECIMAL(p,s), VARCHAR, VARBINARY,
/// DATE, TIME, TIMESTAMP, TIMESTAMP WITH TIME ZONE, INTERVAL, ARRAY(T),
/// MAP(K, V), ROW(name T, …). A type with no SQL name keeps Arrow's.
pub fn sql_type_name(t: &DataType) -> String {
    use DataType::*;
    match t {
        Null => "NULL".into(),
        Boolean => "BOOLEAN".into(),
        Int8 => "TINYINT".into(),
        Int16 => "SMALLINT".into(),
        Int32 => "INTEGER".into(),
        Int64 => "BIGINT".into(),
        UInt8 => "TINYINT UNSIGNED".into(),
        UInt16 => "SMALLINT UNSIGNED".into(),
        UInt32 => "INTEGER UNSIGNED".into(),
        UInt64 => "BIGINT UNSIGNED".into(),
        Float16 | Float32 => "REAL".into(),
        Float64 => "DOUBLE".into(),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => {
            format!("DECIMAL({p},{s})")
        }
        Utf8 | LargeUtf8 | Utf8View => "VARCHAR".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "VARBINARY".into(),
        Date32 | Date64 => "DATE".into(),
        Time32(_) | Time64(_) => "TIME".into(),
        Timestamp(_, None) => "TIMESTAMP".into(),
        Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        Interval(_) | Duration(_) => "INTERVAL".into(),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            format!("ARRAY({})", sql_type_name(f.data_type()))
        }
        Map(entries, _) => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => format!(
                "MAP({}, {})",
                sql_type_name(kv[0].data_type()),
                sql_type_name(kv[1].data_type())
            ),
            other => format!("MAP({})", sql_type_name(other)),
        },
        Struct(fields) => format!(
            "ROW({})",
            fields
                .iter()
                .map(|f| format!("{} {}", sql_field_name(f.name()), field_sql_type(f)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Dictionary(_, values) => sql_type_name(values),
        RunEndEncoded(_, values) => sql_type_name(values.data_type()),
        other => other.to_string(),
    }
}

/// The SQL type of a column: its [`SQL_TYPE_KEY`] metadata, else
/// [`sql_type_name`] of its Arrow type.
pub fn field_sql_type(f: &Field) -> String {
    match f.metadata().get(SQL_TYPE_KEY) {
        Some(name) => name.clone(),
        None => sql_type_name(f.data_type()),
    }
}

/// A ROW field's name, double-quoted unless it is a plain lower-case word.
fn sql_field_name(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// What the values seen at one path looked like, merged over every record.
/// The column type is derived from it by [`ScalarStats::sql_type`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScalarStats {
    /// Saw `true`/`false`.
    pub boolean: bool,
    /// Saw at least one number.
    pub number: bool,
    /// Saw a number with a fraction or exponent.
    pub fraction: bool,
    /// Every whole number fitted in a signed 64-bit integer.
    pub all_fit_i64: bool,
    /// Most digits before the decimal point (exponent applied).
    pub max_int_digits: u32,
    /// Most digits after the decimal point (exponent applied).
    pub max_frac_digits: u32,
    /// Most significant digits.
    pub max_sig_digits: u32,
    /// Saw a string of each form: plain, date, time, timestamp, timestamp with zone.
    pub plain_string: bool,
    /// `YYYY-MM-DD`
    pub date: bool,
    /// `HH:MM:SS[.f]`
    pub time: bool,
    /// `YYYY-MM-DDTHH:MM:SS[.f]`
    pub timestamp: bool,
    /// `YYYY-MM-DDTHH:MM:SS[.f](Z|±HH:MM)`
    pub timestamp_tz: bool,
}

/// Families of a value, used to tell polymorphic mixes from widenings.
impl ScalarStats {
    /// True when no non-null scalar was seen.
    pub fn is_empty(&self) -> bool {
        !(self.boolean || self.number || self.any_string())
    }

    fn any_string(&self) -> bool {
        self.plain_string || self.date || self.time || self.timestamp || self.timestamp_tz
    }

    fn any_temporal(&self) -> bool {
        self.date || self.time || self.timestamp || self.timestamp_tz
    }

    /// Records a boolean.
    pub fn observe_bool(&mut self) {
        self.boolean = true;
    }

    /// Records a number given as its JSON text.
    pub fn observe_number(&mut self, text: &str) {
        let n = NumberShape::of(text);
        if !self.number {
            self.all_fit_i64 = true;
        }
        self.number = true;
        if n.fraction {
            self.fraction = true;
        } else if n.int_digits >= 19 && text.parse::<i64>().is_err() {
            self.all_fit_i64 = false;
        }
        self.max_int_digits = self.max_int_digits.max(n.int_digits);
        self.max_frac_digits = self.max_frac_digits.max(n.frac_digits);
        self.max_sig_digits = self.max_sig_digits.max(n.sig_digits);
    }

    /// Records a string, sniffing ISO temporal forms.
    pub fn observe_string(&mut self, s: &str) {
        match sniff_temporal(s) {
            Some(TemporalForm::Date) => self.date = true,
            Some(TemporalForm::Time) => self.time = true,
            Some(TemporalForm::Timestamp) => self.timestamp = true,
            Some(TemporalForm::TimestampTz) => self.timestamp_tz = true,
            None => self.plain_string = true,
        }
    }

    /// Merges another path's observations into this one.
    pub fn merge(&mut self, o: &ScalarStats) {
        if o.number {
            self.all_fit_i64 = if self.number {
                self.all_fit_i64 && o.all_fit_i64
            } else {
                o.all_fit_i64
            };
        }
        self.boolean |= o.boolean;
        self.number |= o.number;
        self.fraction |= o.fraction;
        self.max_int_digits = self.max_int_digits.max(o.max_int_digits);
        self.max_frac_digits = self.max_frac_digits.max(o.max_frac_digits);
        self.max_sig_digits = self.max_sig_digits.max(o.max_sig_digits);
        self.plain_string |= o.plain_string;
        self.date |= o.date;
        self.time |= o.time;
        self.timestamp |= o.timestamp;
        self.timestamp_tz |= o.timestamp_tz;
    }

    /// True when the values mix families that only VARCHAR can hold
    /// (number and string, boolean and number, zoned and local instants, …).
    pub fn is_mixed(&self) -> bool {
        let families = self.boolean as u8 + self.number as u8 + self.any_string() as u8;
        if families > 1 {
            return true;
        }
        if self.any_temporal() && self.plain_string {
            return true;
        }
        self.timestamp_tz && (self.date || self.time || self.timestamp)
    }

    /// The common SQL type of every value seen (VARCHAR when nothing was seen).
    pub fn sql_type(&self) -> SqlType {
        if self.is_empty() || self.is_mixed() {
            return SqlType::Varchar;
        }
        if self.boolean {
            return SqlType::Boolean;
        }
        if self.number {
            if !self.fraction {
                return if self.all_fit_i64 {
                    SqlType::BigInt
                } else if self.max_int_digits <= 38 {
                    SqlType::Decimal(0)
                } else {
                    SqlType::Varchar
                };
            }
            if self.max_sig_digits <= 15 {
                return SqlType::Double;
            }
            return if self.max_int_digits <= 20 && self.max_frac_digits <= 18 {
                SqlType::Decimal(18)
            } else {
                SqlType::Varchar
            };
        }
        if self.plain_string {
            return SqlType::Varchar;
        }
        if self.timestamp_tz {
            return SqlType::TimestampTz;
        }
        if self.timestamp || (self.date && self.time) {
            return SqlType::Timestamp;
        }
        if self.date {
            return SqlType::Date;
        }
        SqlType::Time
    }
}

/// Digit counts of a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberShape {
    /// Has a fraction or an exponent.
    pub fraction: bool,
    /// Digits left of the point once the exponent is applied (at least 1).
    pub int_digits: u32,
    /// Digits right of the point once the exponent is applied.
    pub frac_digits: u32,
    /// Significant digits (leading and trailing zeros of the mantissa excluded).
    pub sig_digits: u32,
}

impl NumberShape {
    /// Measures a valid JSON number text.
    pub fn of(text: &str) -> NumberShape {
        let t = text.strip_prefix('-').unwrap_or(text);
        let (mantissa, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], t[i + 1..].parse::<i64>().unwrap_or(0)),
            None => (t, 0),
        };
        let (ip, fp) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        let fraction = text.contains(['.', 'e', 'E']);
        // The digits are `ip` followed by `fp`; count zeros at both ends without copying.
        let total = (ip.len() + fp.len()) as i64;
        let leading_zeros = ip
            .bytes()
            .chain(fp.bytes())
            .take_while(|&b| b == b'0')
            .count() as i64;
        let trailing_zeros = fp
            .bytes()
            .rev()
            .chain(ip.bytes().rev())
            .take_while(|&b| b == b'0')
            .count() as i64;
        let sig = if leading_zeros == total {
            0
        } else {
            (total - leading_zeros - trailing_zeros) as u32
        };
        // Position of the decimal point within the digits after the exponent.
        let point = ip.len() as i64 + exp;
        let int_digits = (point - leading_zeros).max(1) as u32;
        let frac_digits = (total - trailing_zeros - point).max(0) as u32;
        NumberShape {
            fraction,
            int_digits,
            frac_digits,
            sig_digits: sig.max(1),
        }
    }
}

/// The ISO forms strings are sniffed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalForm {
    /// `2024-01-15`
    Date,
    /// `10:30:00`
    Time,
    /// `2024-01-15T10:30:00`
    Timestamp,
    /// `2024-01-15T10:30:00Z`, `…+02:00`
    TimestampTz,
}

/// Recognizes the ISO temporal forms of the spec; anything else is `None`.
pub fn sniff_temporal(s: &str) -> Option<TemporalForm> {
    let b = s.as_bytes();
    if b.len() < 8 || b.len() > 40 {
        return None;
    }
    if b[2] == b':' {
        return crate::temporal::parse_time(s).map(|_| TemporalForm::Time);
    }
    if b.len() == 10 {
        return crate::temporal::parse_date(s).map(|_| TemporalForm::Date);
    }
    match crate::temporal::parse_timestamp(s) {
        Some((_, true)) => Some(TemporalForm::TimestampTz),
        Some((_, false)) => Some(TemporalForm::Timestamp),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[&str]) -> ScalarStats {
        let mut s = ScalarStats::default();
        for v in values {
            if *v == "true" || *v == "false" {
                s.observe_bool();
            } else if let Some(st) = v.strip_prefix('"') {
                s.observe_string(st.trim_end_matches('"'));
            } else {
                s.observe_number(v);
            }
        }
        s
    }

    #[test]
    fn arrow_types_have_sql_names() {
        use arrow::datatypes::{Fields, IntervalUnit};
        let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
        let cases = [
            (DataType::Int64, "BIGINT"),
            (DataType::Float64, "DOUBLE"),
            (DataType::Utf8View, "VARCHAR"),
            (DataType::Decimal128(38, 18), "DECIMAL(38,18)"),
            (DataType::Date32, "DATE"),
            (DataType::Time64(TimeUnit::Nanosecond), "TIME"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "TIMESTAMP",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
                "TIMESTAMP WITH TIME ZONE",
            ),
            (DataType::Interval(IntervalUnit::MonthDayNano), "INTERVAL"),
            (DataType::Binary, "VARBINARY"),
            (list(DataType::Int32), "ARRAY(INTEGER)"),
            (list(list(DataType::Utf8)), "ARRAY(ARRAY(VARCHAR))"),
            (
                DataType::Map(
                    Arc::new(Field::new(
                        "entries",
                        DataType::Struct(Fields::from(vec![
                            Field::new("key", DataType::Utf8, false),
                            Field::new("value", DataType::Int64, true),
                        ])),
                        false,
                    )),
                    false,
                ),
                "MAP(VARCHAR, BIGINT)",
            ),
            (
                DataType::Struct(Fields::from(vec![
                    Field::new("street", DataType::Utf8, true),
                    Field::new("Zip Code", DataType::Int32, true),
                ])),
                "ROW(street VARCHAR, \"Zip Code\" INTEGER)",
            ),
            (
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                "VARCHAR",
            ),
        ];
        for (t, name) in cases {
            assert_eq!(sql_type_name(&t), name, "{t}");
        }
        // The SQL types of entity tables print as their Arrow types' names.
        assert_eq!(
            SqlType::Array(Box::new(SqlType::TimestampTz)).to_string(),
            "ARRAY(TIMESTAMP WITH TIME ZONE)"
        );
        assert_eq!(SqlType::Decimal(0).to_string(), "DECIMAL(38,0)");
        let odd = Field::new("odd", DataType::Utf8, true)
            .with_metadata([(SQL_TYPE_KEY.to_string(), "UNSUPPORTED(x.Y)".to_string())].into());
        assert_eq!(field_sql_type(&odd), "UNSUPPORTED(x.Y)");
    }

    #[test]
    fn whole_numbers_widen_bigint_decimal_varchar() {
        assert_eq!(stats(&["1", "-20"]).sql_type(), SqlType::BigInt);
        assert_eq!(
            stats(&["1", "123456789012345678901234"]).sql_type(),
            SqlType::Decimal(0)
        );
        assert_eq!(stats(&["1", &"9".repeat(39)]).sql_type(), SqlType::Varchar);
    }

    #[test]
    fn fractions_widen_double_decimal_varchar() {
        assert_eq!(stats(&["9.5", "20"]).sql_type(), SqlType::Double);
        assert_eq!(stats(&["1.5e3"]).sql_type(), SqlType::Double);
        assert_eq!(
            stats(&["0.123456789012345678"]).sql_type(),
            SqlType::Decimal(18)
        );
        assert_eq!(
            stats(&["1.5", "12345678901234567890"]).sql_type(),
            SqlType::Decimal(18)
        );
        assert_eq!(
            stats(&["1.5", "123456789012345678901234"]).sql_type(),
            SqlType::Varchar
        );
    }

    #[test]
    fn temporal_sniffing_and_widening() {
        assert_eq!(stats(&["\"2024-01-15\""]).sql_type(), SqlType::Date);
        assert_eq!(stats(&["\"10:30:00\""]).sql_type(), SqlType::Time);
        assert_eq!(
            stats(&["\"2024-01-15T10:30:00\""]).sql_type(),
            SqlType::Timestamp
        );
        assert_eq!(
            stats(&["\"2024-01-15T10:30:00+02:00\""]).sql_type(),
            SqlType::TimestampTz
        );
        assert_eq!(
            stats(&["\"2024-01-15\"", "\"2024-01-15T10:30:00\""]).sql_type(),
            SqlType::Timestamp
        );
        assert_eq!(
            stats(&["\"10:30:00\"", "\"2024-01-15T10:30:00\""]).sql_type(),
            SqlType::Timestamp
        );
        assert_eq!(
            stats(&["\"2024-01-15T10:30:00Z\"", "\"2024-01-15T10:30:00\""]).sql_type(),
            SqlType::Varchar
        );
        assert_eq!(stats(&["\"2024-13-45\""]).sql_type(), SqlType::Varchar);
    }

    #[test]
    fn mixes_become_varchar() {
        assert_eq!(stats(&["1", "\"a\""]).sql_type(), SqlType::Varchar);
        assert_eq!(stats(&["true", "1"]).sql_type(), SqlType::Varchar);
        assert_eq!(stats(&["true"]).sql_type(), SqlType::Boolean);
        assert_eq!(ScalarStats::default().sql_type(), SqlType::Varchar);
    }

    #[test]
    fn number_shapes() {
        assert_eq!(NumberShape::of("12.50").frac_digits, 1);
        assert_eq!(NumberShape::of("1e3").int_digits, 4);
        assert_eq!(NumberShape::of("0.001").int_digits, 1);
        assert_eq!(NumberShape::of("-0.001").sig_digits, 1);
    }

    #[test]
    fn declared_types_map_exactly() {
        assert_eq!(
            SqlType::from_declared("BIG_DECIMAL"),
            Some(SqlType::Decimal(18))
        );
        assert_eq!(SqlType::from_declared("YEAR_MONTH"), Some(SqlType::Date));
        assert_eq!(
            SqlType::from_declared("BYTE_ARRAY"),
            Some(SqlType::Varbinary)
        );
        assert_eq!(SqlType::from_declared("nope"), None);
    }
}
