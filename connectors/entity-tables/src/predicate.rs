//! Filters a source can evaluate itself, stated over entity fields instead of
//! table columns: a column becomes the JSON path it is read from (`$.lines[*].sku`
//! in a child table) or an entity's metadata. A source turns a [`Predicate`]
//! into its own language (Cyoda conditions, CQL, …).
//!
//! A predicate selects *entities*; a row of a child table comes from an entity
//! that matches when any element matches. So a pushed predicate selects a
//! superset of the rows SQL asks for, and the engine re-checks every pushed
//! filter (`Inexact`).

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator};

use crate::layout::{Source, TableLayout};
use crate::types::SqlType;

/// What a predicate tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A data value at a JSON path (`$.customer.name`, `$.lines[*].sku`).
    Data {
        /// Path from the document root; `[*]` for every element of an array.
        json_path: String,
        /// The column's SQL type.
        sql_type: SqlType,
        /// True when the path goes through an array (any element may match).
        in_array: bool,
    },
    /// The entity's workflow state.
    State,
    /// When the entity was created.
    CreationDate,
    /// When the entity's current revision was written.
    LastUpdateDate,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
}

impl CompareOp {
    fn of(op: Operator) -> Option<CompareOp> {
        Some(match op {
            Operator::Eq => CompareOp::Eq,
            Operator::NotEq => CompareOp::NotEq,
            Operator::Gt => CompareOp::Gt,
            Operator::GtEq => CompareOp::GtEq,
            Operator::Lt => CompareOp::Lt,
            Operator::LtEq => CompareOp::LtEq,
            _ => return None,
        })
    }

    /// The same comparison with its sides swapped (`5 < x` is `x > 5`).
    fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::GtEq => CompareOp::LtEq,
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::LtEq => CompareOp::GtEq,
            other => other,
        }
    }
}

/// A literal value in a predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// An exact decimal, as its digits (`12.50`).
    Decimal(String),
    /// A boolean.
    Bool(bool),
    /// An instant, UTC microseconds.
    Instant(i64),
}

/// A filter over entity fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// Every one holds.
    All(Vec<Predicate>),
    /// At least one holds.
    Any(Vec<Predicate>),
    /// `field op value`.
    Compare(Field, CompareOp, Literal),
    /// The field is null or absent.
    IsNull(Field),
    /// The field has a value.
    NotNull(Field),
    /// SQL `LIKE` with `%` and `_` (case-sensitive, no escape character).
    Like(Field, String),
    /// The text starts with this prefix (a `LIKE 'abc%'`).
    StartsWith(Field, String),
}

impl Predicate {
    /// Every field the predicate tests.
    pub fn fields(&self) -> Vec<&Field> {
        match self {
            Predicate::All(ps) | Predicate::Any(ps) => ps.iter().flat_map(|p| p.fields()).collect(),
            Predicate::Compare(f, _, _)
            | Predicate::IsNull(f)
            | Predicate::NotNull(f)
            | Predicate::Like(f, _)
            | Predicate::StartsWith(f, _) => vec![f],
        }
    }
}

/// The field a column of `layout` is read from, when it is a single value.
pub fn column_field(layout: &TableLayout, name: &str) -> Option<Field> {
    match name {
        "state" => return Some(Field::State),
        "creation_date" => return Some(Field::CreationDate),
        "last_update_date" => return Some(Field::LastUpdateDate),
        _ => {}
    }
    let column = layout.columns.iter().find(|c| c.name == name)?;
    match (&column.source, &column.sql_type) {
        (Source::Value(_), SqlType::Array(_)) | (Source::Value(_), SqlType::Varbinary) => None,
        (Source::Value(_), t) => Some(Field::Data {
            json_path: column.json_path.clone(),
            sql_type: t.clone(),
            in_array: column.json_path.contains("[*]"),
        }),
        _ => None,
    }
}

fn literal_of(v: &ScalarValue) -> Option<Literal> {
    Some(match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Literal::Text(s.clone()),
        ScalarValue::Boolean(Some(b)) => Literal::Bool(*b),
        ScalarValue::Int8(Some(x)) => Literal::Int(*x as i64),
        ScalarValue::Int16(Some(x)) => Literal::Int(*x as i64),
        ScalarValue::Int32(Some(x)) => Literal::Int(*x as i64),
        ScalarValue::Int64(Some(x)) => Literal::Int(*x),
        ScalarValue::UInt8(Some(x)) => Literal::Int(*x as i64),
        ScalarValue::UInt16(Some(x)) => Literal::Int(*x as i64),
        ScalarValue::UInt32(Some(x)) => Literal::Int(*x as i64),
        ScalarValue::Float32(Some(x)) if x.is_finite() => Literal::Float(*x as f64),
        ScalarValue::Float64(Some(x)) if x.is_finite() => Literal::Float(*x),
        ScalarValue::Decimal128(Some(x), _, scale) => Literal::Decimal(
            <arrow::datatypes::Decimal128Type as arrow::datatypes::DecimalType>::format_decimal(
                *x, 38, *scale,
            ),
        ),
        ScalarValue::TimestampSecond(Some(x), _) => Literal::Instant(x.checked_mul(1_000_000)?),
        ScalarValue::TimestampMillisecond(Some(x), _) => Literal::Instant(x.checked_mul(1_000)?),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Literal::Instant(*x),
        ScalarValue::TimestampNanosecond(Some(x), _) => {
            if x % 1_000 != 0 {
                return None;
            }
            Literal::Instant(x / 1_000)
        }
        _ => return None,
    })
}

fn bare_column(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn bare_literal(e: &Expr) -> Option<Literal> {
    match e {
        Expr::Literal(v, _) => literal_of(v),
        _ => None,
    }
}

/// `expr` over the columns of `layout` as a predicate over entity fields, or
/// `None` when it (or, under OR, any part of it) cannot be stated so. Under
/// AND, parts that cannot be stated are left out: the result still selects
/// every entity the expression could select.
pub fn translate(expr: &Expr, layout: &TableLayout) -> Option<Predicate> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let parts: Vec<Predicate> = [left, right]
                .into_iter()
                .filter_map(|e| translate(e, layout))
                .collect();
            match parts.len() {
                0 => None,
                1 => parts.into_iter().next(),
                _ => Some(Predicate::All(flatten(parts, true))),
            }
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let l = translate(left, layout)?;
            let r = translate(right, layout)?;
            Some(Predicate::Any(flatten(vec![l, r], false)))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = CompareOp::of(*op)?;
            if let (Some(c), Some(v)) = (bare_column(left), bare_literal(right)) {
                return Some(Predicate::Compare(column_field(layout, c)?, op, v));
            }
            if let (Some(c), Some(v)) = (bare_column(right), bare_literal(left)) {
                return Some(Predicate::Compare(
                    column_field(layout, c)?,
                    op.flipped(),
                    v,
                ));
            }
            None
        }
        // A boolean column by itself: `WHERE express`, `WHERE NOT express`.
        Expr::Column(c) => boolean(layout, &c.name, true),
        Expr::Not(e) => boolean(layout, bare_column(e)?, false),
        Expr::IsNull(e) => Some(Predicate::IsNull(column_field(layout, bare_column(e)?)?)),
        Expr::IsNotNull(e) => Some(Predicate::NotNull(column_field(layout, bare_column(e)?)?)),
        Expr::InList(list) if !list.negated && !list.list.is_empty() => {
            let field = column_field(layout, bare_column(&list.expr)?)?;
            let parts = list
                .list
                .iter()
                .map(|v| {
                    Some(Predicate::Compare(
                        field.clone(),
                        CompareOp::Eq,
                        bare_literal(v)?,
                    ))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Predicate::Any(parts))
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let field = column_field(layout, bare_column(expr)?)?;
            Some(Predicate::All(vec![
                Predicate::Compare(field.clone(), CompareOp::GtEq, bare_literal(low)?),
                Predicate::Compare(field, CompareOp::LtEq, bare_literal(high)?),
            ]))
        }
        Expr::Like(Like {
            negated: false,
            expr,
            pattern,
            escape_char,
            case_insensitive: false,
        }) => {
            let field = column_field(layout, bare_column(expr)?)?;
            let Some(Literal::Text(p)) = bare_literal(pattern) else {
                return None;
            };
            // An escape character (or a backslash, DataFusion's default one)
            // changes what `%` and `_` mean: not pushed.
            if escape_char.is_some() || p.contains('\\') {
                return None;
            }
            let prefix = p.strip_suffix('%').filter(|s| !s.contains(['%', '_']));
            Some(match prefix {
                Some(prefix) => Predicate::StartsWith(field, prefix.to_string()),
                None => Predicate::Like(field, p),
            })
        }
        _ => None,
    }
}

fn boolean(layout: &TableLayout, column: &str, value: bool) -> Option<Predicate> {
    let field = column_field(layout, column)?;
    match &field {
        Field::Data {
            sql_type: SqlType::Boolean,
            ..
        } => Some(Predicate::Compare(
            field,
            CompareOp::Eq,
            Literal::Bool(value),
        )),
        _ => None,
    }
}

fn flatten(parts: Vec<Predicate>, and: bool) -> Vec<Predicate> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Predicate::All(inner) if and => out.extend(inner),
            Predicate::Any(inner) if !and => out.extend(inner),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::ModelId;
    use crate::layout::{DataColumn, RowKind};
    use datafusion::prelude::{col, lit};

    fn layout() -> TableLayout {
        let column = |name: &str, t: SqlType, path: &str| DataColumn {
            name: name.into(),
            sql_type: t,
            source: Source::Value(vec![name.into()]),
            json_path: path.into(),
        };
        TableLayout {
            name: "orders_lines".into(),
            model: ModelId {
                name: "orders".into(),
                version: 1,
            },
            node: Vec::new(),
            row: RowKind::Object,
            index_depth: 1,
            columns: vec![
                column("sku", SqlType::Varchar, "$.lines[*].sku"),
                column("qty", SqlType::Integer, "$.lines[*].qty"),
            ],
            json_path: "$.lines[*]".into(),
        }
    }

    #[test]
    fn comparisons_become_array_paths() {
        let p = translate(&lit(5).lt(col("qty")), &layout()).unwrap();
        let Predicate::Compare(
            Field::Data {
                json_path,
                in_array,
                ..
            },
            op,
            v,
        ) = p
        else {
            panic!("{p:?}")
        };
        assert_eq!(
            (json_path.as_str(), in_array, op, v),
            ("$.lines[*].qty", true, CompareOp::Gt, Literal::Int(5))
        );
    }

    #[test]
    fn or_needs_both_sides_and_and_keeps_what_it_can() {
        let l = layout();
        let unknown = col("sku").eq(col("qty"));
        assert_eq!(
            translate(&col("sku").eq(lit("a")).or(unknown.clone()), &l),
            None
        );
        let kept = translate(&col("sku").eq(lit("a")).and(unknown), &l).unwrap();
        assert!(matches!(
            kept,
            Predicate::Compare(Field::Data { .. }, CompareOp::Eq, _)
        ));
        let in_list =
            translate(&col("state").in_list(vec![lit("A"), lit("B")], false), &l).unwrap();
        assert!(matches!(in_list, Predicate::Any(ref v) if v.len() == 2));
        assert_eq!(
            translate(&col("state").in_list(vec![lit("A")], true), &l),
            None
        );
    }

    #[test]
    fn like_prefixes_become_starts_with_and_escapes_stay_home() {
        let l = layout();
        assert_eq!(
            translate(&col("sku").like(lit("ab%")), &l),
            Some(Predicate::StartsWith(
                column_field(&l, "sku").unwrap(),
                "ab".into()
            ))
        );
        assert!(matches!(
            translate(&col("sku").like(lit("a_c%")), &l),
            Some(Predicate::Like(..))
        ));
        assert_eq!(translate(&col("sku").like(lit("a\\%")), &l), None);
        assert_eq!(translate(&col("sku").ilike(lit("a%")), &l), None);
    }
}
