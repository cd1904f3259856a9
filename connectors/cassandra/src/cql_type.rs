//! CQL column types, as `system_schema` spells them, and their Arrow types.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, IntervalUnit, TimeUnit};

/// A CQL type (frozen or not: both read the same).
#[derive(Debug, Clone, PartialEq)]
pub enum CqlType {
    /// ascii, text, varchar.
    Text,
    /// tinyint.
    TinyInt,
    /// smallint.
    SmallInt,
    /// int.
    Int,
    /// bigint.
    BigInt,
    /// counter.
    Counter,
    /// varint.
    Varint,
    /// decimal.
    Decimal,
    /// float.
    Float,
    /// double.
    Double,
    /// boolean.
    Boolean,
    /// uuid.
    Uuid,
    /// timeuuid.
    Timeuuid,
    /// timestamp (ms since the epoch).
    Timestamp,
    /// date.
    Date,
    /// time (ns since midnight).
    Time,
    /// duration.
    Duration,
    /// inet.
    Inet,
    /// blob.
    Blob,
    /// list<T>.
    List(Box<CqlType>),
    /// set<T>.
    Set(Box<CqlType>),
    /// map<K, V>.
    Map(Box<CqlType>, Box<CqlType>),
    /// tuple<A, B, …>.
    Tuple(Vec<CqlType>),
    /// A user-defined type: its name and fields.
    Udt(String, Vec<(String, CqlType)>),
    /// vector<T, n>.
    Vector(Box<CqlType>, usize),
}

/// How wide numbers without a fixed size are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WideNumbers {
    /// varint as DECIMAL(38,0), decimal as DECIMAL(38,18); a value that does
    /// not fit fails the query, naming the column.
    #[default]
    Decimal,
    /// varint and decimal as text with every digit.
    Text,
}

/// Fraction digits of a CQL `decimal` read as DECIMAL.
pub const DECIMAL_SCALE: i8 = 18;

impl CqlType {
    /// Parses a type as `system_schema.columns.type` spells it; user types
    /// are looked up with `udt`. `Err` names what cannot be read.
    pub fn parse(
        text: &str,
        udt: &dyn Fn(&str) -> Option<Vec<(String, String)>>,
    ) -> Result<CqlType, String> {
        let mut p = Parser { s: text, i: 0, udt };
        let t = p.ty(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected '{}'", &p.s[p.i..]));
        }
        Ok(t)
    }

    /// The Arrow type values of this type are read as.
    pub fn arrow(&self, wide: WideNumbers) -> DataType {
        match self {
            CqlType::Text | CqlType::Uuid | CqlType::Timeuuid | CqlType::Inet => DataType::Utf8,
            CqlType::TinyInt => DataType::Int8,
            CqlType::SmallInt => DataType::Int16,
            CqlType::Int => DataType::Int32,
            CqlType::BigInt | CqlType::Counter => DataType::Int64,
            CqlType::Varint => match wide {
                WideNumbers::Decimal => DataType::Decimal128(38, 0),
                WideNumbers::Text => DataType::Utf8,
            },
            CqlType::Decimal => match wide {
                WideNumbers::Decimal => DataType::Decimal128(38, DECIMAL_SCALE),
                WideNumbers::Text => DataType::Utf8,
            },
            CqlType::Float => DataType::Float32,
            CqlType::Double => DataType::Float64,
            CqlType::Boolean => DataType::Boolean,
            CqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            CqlType::Date => DataType::Date32,
            CqlType::Time => DataType::Time64(TimeUnit::Nanosecond),
            CqlType::Duration => DataType::Interval(IntervalUnit::MonthDayNano),
            CqlType::Blob => DataType::Binary,
            CqlType::List(t) | CqlType::Set(t) | CqlType::Vector(t, _) => {
                DataType::List(Arc::new(Field::new("item", t.arrow(wide), true)))
            }
            CqlType::Map(k, v) => DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", k.arrow(wide), false),
                        Field::new("value", v.arrow(wide), true),
                    ])),
                    false,
                )),
                false,
            ),
            CqlType::Tuple(ts) => DataType::Struct(
                ts.iter()
                    .enumerate()
                    .map(|(i, t)| Field::new(format!("field_{i}"), t.arrow(wide), true))
                    .collect(),
            ),
            CqlType::Udt(_, fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|(n, t)| Field::new(n, t.arrow(wide), true))
                    .collect(),
            ),
        }
    }

    /// Whether a value of this type can be compared in a key restriction
    /// pushed into CQL. Not floats: Cassandra compares their bytes, so
    /// `0.0` and `-0.0` differ there and not in SQL.
    pub fn pushable(&self) -> bool {
        matches!(
            self,
            CqlType::Text
                | CqlType::TinyInt
                | CqlType::SmallInt
                | CqlType::Int
                | CqlType::BigInt
                | CqlType::Boolean
                | CqlType::Uuid
                | CqlType::Timeuuid
                | CqlType::Timestamp
                | CqlType::Date
        )
    }
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    udt: &'a dyn Fn(&str) -> Option<Vec<(String, String)>>,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s[self.i..].starts_with(' ') {
            self.i += 1;
        }
    }

    fn word(&mut self) -> Result<String, String> {
        self.ws();
        let rest = &self.s[self.i..];
        if rest.starts_with('\'') {
            return Err(format!("custom type {rest}"));
        }
        let quoted = rest.starts_with('"');
        let end = if quoted {
            rest[1..].find('"').map(|j| j + 2).unwrap_or(rest.len())
        } else {
            rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())
        };
        if end == 0 {
            return Err(format!("a type name expected at '{rest}'"));
        }
        self.i += end;
        Ok(rest[..end].trim_matches('"').to_string())
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.ws();
        if self.s[self.i..].starts_with(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("'{c}' expected at '{}'", &self.s[self.i..]))
        }
    }

    fn args(&mut self, depth: usize) -> Result<Vec<CqlType>, String> {
        self.expect('<')?;
        let mut out = vec![self.ty(depth + 1)?];
        loop {
            self.ws();
            if self.s[self.i..].starts_with(',') {
                self.i += 1;
                out.push(self.ty(depth + 1)?);
            } else {
                self.expect('>')?;
                return Ok(out);
            }
        }
    }

    fn ty(&mut self, depth: usize) -> Result<CqlType, String> {
        if depth > 32 {
            return Err("types nested too deep".into());
        }
        let name = self.word()?;
        let t = match name.to_ascii_lowercase().as_str() {
            "ascii" | "text" | "varchar" => CqlType::Text,
            "tinyint" => CqlType::TinyInt,
            "smallint" => CqlType::SmallInt,
            "int" => CqlType::Int,
            "bigint" => CqlType::BigInt,
            "counter" => CqlType::Counter,
            "varint" => CqlType::Varint,
            "decimal" => CqlType::Decimal,
            "float" => CqlType::Float,
            "double" => CqlType::Double,
            "boolean" => CqlType::Boolean,
            "uuid" => CqlType::Uuid,
            "timeuuid" => CqlType::Timeuuid,
            "timestamp" => CqlType::Timestamp,
            "date" => CqlType::Date,
            "time" => CqlType::Time,
            "duration" => CqlType::Duration,
            "inet" => CqlType::Inet,
            "blob" => CqlType::Blob,
            "frozen" => {
                let mut a = self.args(depth)?;
                if a.len() != 1 {
                    return Err("frozen<> takes one type".into());
                }
                a.remove(0)
            }
            "list" | "set" => {
                let mut a = self.args(depth)?;
                if a.len() != 1 {
                    return Err(format!("{name}<> takes one type"));
                }
                let t = Box::new(a.remove(0));
                if name.eq_ignore_ascii_case("list") {
                    CqlType::List(t)
                } else {
                    CqlType::Set(t)
                }
            }
            "map" => {
                let mut a = self.args(depth)?;
                if a.len() != 2 {
                    return Err("map<> takes two types".into());
                }
                let v = a.remove(1);
                CqlType::Map(Box::new(a.remove(0)), Box::new(v))
            }
            "tuple" => CqlType::Tuple(self.args(depth)?),
            "vector" => {
                self.expect('<')?;
                let t = self.ty(depth + 1)?;
                self.expect(',')?;
                self.ws();
                let digits: String = self.s[self.i..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                self.i += digits.len();
                self.expect('>')?;
                let n = digits
                    .parse()
                    .map_err(|_| "vector<> needs a dimension".to_string())?;
                CqlType::Vector(Box::new(t), n)
            }
            _ => {
                let Some(fields) = (self.udt)(&name) else {
                    return Err(format!("unknown type {name}"));
                };
                let mut out = Vec::with_capacity(fields.len());
                for (field, text) in fields {
                    let mut inner = Parser {
                        s: &text,
                        i: 0,
                        udt: self.udt,
                    };
                    out.push((field, inner.ty(depth + 1)?));
                }
                CqlType::Udt(name, out)
            }
        };
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<CqlType, String> {
        CqlType::parse(s, &|name| {
            (name == "address").then(|| {
                vec![
                    ("street".to_string(), "text".to_string()),
                    ("zip".to_string(), "int".to_string()),
                ]
            })
        })
    }

    #[test]
    fn nested_and_frozen_types_parse() {
        assert_eq!(
            parse("frozen<list<frozen<map<text, int>>>>").unwrap(),
            CqlType::List(Box::new(CqlType::Map(
                Box::new(CqlType::Text),
                Box::new(CqlType::Int)
            )))
        );
        assert_eq!(
            parse("tuple<int, text>").unwrap(),
            CqlType::Tuple(vec![CqlType::Int, CqlType::Text])
        );
        assert_eq!(
            parse("vector<float, 3>").unwrap(),
            CqlType::Vector(Box::new(CqlType::Float), 3)
        );
        assert!(
            matches!(parse("frozen<address>").unwrap(), CqlType::Udt(n, f) if n == "address" && f.len() == 2)
        );
    }

    #[test]
    fn unknown_and_custom_types_are_named() {
        assert!(
            parse("'org.apache.cassandra.db.marshal.DynamicCompositeType'")
                .unwrap_err()
                .contains("custom type")
        );
        assert!(parse("nosuch").unwrap_err().contains("nosuch"));
        assert!(parse("list<int").is_err());
    }

    #[test]
    fn arrow_types_follow_the_mapping() {
        let w = WideNumbers::Decimal;
        assert_eq!(CqlType::Varint.arrow(w), DataType::Decimal128(38, 0));
        assert_eq!(CqlType::Varint.arrow(WideNumbers::Text), DataType::Utf8);
        assert_eq!(
            CqlType::Duration.arrow(w),
            DataType::Interval(IntervalUnit::MonthDayNano)
        );
        assert!(matches!(
            parse("map<text, int>").unwrap().arrow(w),
            DataType::Map(..)
        ));
    }
}
