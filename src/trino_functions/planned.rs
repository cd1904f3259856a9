//! Functions where Trino's meaning differs from DataFusion's, planned as
//! DataFusion's own: `concat` (NULL when any argument is NULL; arrays are
//! concatenated), `regexp_replace` (every match; `$n` groups; the
//! two-argument form removes), `strpos` and `length` (BIGINT), `date_trunc`
//! (a date stays a date), and Trino's names for what DataFusion has under
//! others: `mod`, `sign`, `truncate`, `replace(s, x)`, `slice`,
//! `from_iso8601_date`, `to_iso8601`, `last_day_of_month`.

use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility, cast, lit,
};

use super::udf;

pub(super) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf(Planned::new("concat", Kind::Concat)),
        udf(Planned::new("regexp_replace", Kind::RegexpReplace)),
        udf(Planned::new("strpos", Kind::Strpos)),
        udf(Planned::new("length", Kind::Length)),
        udf(Planned::new("date_trunc", Kind::DateTrunc)),
        udf(Planned::new("mod", Kind::Mod)),
        udf(Planned::new("sign", Kind::Sign)),
        udf(Planned::new("truncate", Kind::Truncate)),
        udf(Planned::new("replace", Kind::Replace)),
        udf(Planned::new("slice", Kind::Slice)),
        udf(Planned::new("from_iso8601_date", Kind::FromIso8601Date)),
        udf(Planned::new("to_iso8601", Kind::ToIso8601)),
        udf(Planned::new("last_day_of_month", Kind::LastDayOfMonth)),
        udf(Planned::new(TO_VARCHAR, Kind::ToVarchar)),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Concat,
    RegexpReplace,
    Strpos,
    Length,
    DateTrunc,
    Mod,
    Sign,
    Truncate,
    Replace,
    Slice,
    FromIso8601Date,
    ToIso8601,
    LastDayOfMonth,
    ToVarchar,
}

/// What `CAST(x AS VARCHAR)` is planned as (`super::syntax`): timestamps and
/// times written as Trino writes them (`2024-01-02 03:04:05.123456 UTC`),
/// everything else as the engine casts it.
pub const TO_VARCHAR: &str = "tsql_varchar";

fn micros() -> DataType {
    DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None)
}

/// A Trino function planned as other expressions (see the module's text).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Planned {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl Planned {
    fn new(name: &'static str, kind: Kind) -> Self {
        Planned {
            name,
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn is_list(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    )
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

impl ScalarUDFImpl for Planned {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let arity = match self.kind {
            Kind::Concat => 1..=usize::MAX,
            Kind::RegexpReplace => 2..=3,
            Kind::Strpos => 2..=2,
            Kind::Length => 1..=1,
            Kind::DateTrunc | Kind::Mod => 2..=2,
            Kind::Sign
            | Kind::Truncate
            | Kind::FromIso8601Date
            | Kind::ToIso8601
            | Kind::LastDayOfMonth
            | Kind::ToVarchar => 1..=1,
            Kind::Replace => 2..=3,
            Kind::Slice => 3..=3,
        };
        if !arity.contains(&args.len()) {
            return Err(DataFusionError::Plan(format!(
                "{} does not take {} arguments",
                self.name,
                args.len()
            )));
        }
        let numeric = |t: &DataType| t.is_numeric() || t.is_null();
        let bad = || {
            DataFusionError::Plan(format!(
                "{} does not take ({})",
                self.name,
                args.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        };
        Ok(match self.kind {
            Kind::Concat if args.iter().any(is_list) => args.to_vec(),
            Kind::Mod if args.iter().all(numeric) => {
                let common =
                    datafusion::logical_expr::type_coercion::binary::type_union_resolution(args)
                        .ok_or_else(bad)?;
                vec![common.clone(), common]
            }
            Kind::Sign if numeric(&args[0]) => vec![args[0].clone()],
            Kind::Truncate if numeric(&args[0]) => vec![DataType::Float64],
            Kind::Mod | Kind::Sign | Kind::Truncate => return Err(bad()),
            Kind::Slice if is_list(&args[0]) => {
                vec![args[0].clone(), DataType::Int64, DataType::Int64]
            }
            Kind::Slice => return Err(bad()),
            Kind::ToVarchar => args.to_vec(),
            Kind::ToIso8601 | Kind::LastDayOfMonth => match &args[0] {
                t @ (DataType::Date32 | DataType::Timestamp(..)) => vec![t.clone()],
                DataType::Date64 => vec![DataType::Date32],
                _ => return Err(bad()),
            },
            Kind::DateTrunc => vec![
                DataType::Utf8,
                match &args[1] {
                    t @ (DataType::Date32 | DataType::Timestamp(..)) => t.clone(),
                    DataType::Date64 => DataType::Date32,
                    _ => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                },
            ],
            _ => args
                .iter()
                .map(|t| {
                    if is_text(t) {
                        t.clone()
                    } else {
                        DataType::Utf8
                    }
                })
                .collect(),
        })
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Concat if args.iter().any(is_list) => {
                args.iter().find(|t| is_list(t)).cloned().expect("a list")
            }
            Kind::Concat | Kind::RegexpReplace => DataType::Utf8,
            Kind::Strpos | Kind::Length => DataType::Int64,
            Kind::DateTrunc => args[1].clone(),
            Kind::Mod | Kind::Sign | Kind::Slice => args[0].clone(),
            Kind::Truncate => DataType::Float64,
            Kind::Replace | Kind::ToIso8601 | Kind::ToVarchar => DataType::Utf8,
            Kind::FromIso8601Date | Kind::LastDayOfMonth => DataType::Date32,
        })
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        use datafusion::functions::expr_fn as f;
        Ok(ExprSimplifyResult::Simplified(match self.kind {
            Kind::Concat => {
                let mut lists = false;
                for a in &args {
                    lists |= is_list(&info.get_data_type(a)?);
                }
                if lists {
                    datafusion::functions_nested::expr_fn::array_concat(args)
                } else {
                    let mut args = args.into_iter();
                    let first = args.next().expect("one argument at least");
                    let text = cast(first, DataType::Utf8);
                    args.fold(text, |acc, a| {
                        Expr::BinaryExpr(BinaryExpr::new(
                            Box::new(acc),
                            Operator::StringConcat,
                            Box::new(cast(a, DataType::Utf8)),
                        ))
                    })
                }
            }
            Kind::RegexpReplace => {
                let mut args = args.into_iter();
                let (s, p) = (args.next().expect("two"), args.next().expect("two"));
                let r = match args.next() {
                    Some(Expr::Literal(
                        ScalarValue::Utf8(Some(r)) | ScalarValue::Utf8View(Some(r)),
                        _,
                    )) => lit(braced_groups(&r)),
                    Some(other) => other,
                    None => lit(""),
                };
                f::regexp_replace(s, p, r, Some(lit("g")))
            }
            Kind::Strpos => {
                let mut args = args.into_iter();
                let (s, part) = (args.next().expect("two"), args.next().expect("two"));
                cast(f::strpos(s, part), DataType::Int64)
            }
            Kind::DateTrunc => {
                let mut args = args.into_iter();
                let (unit, t) = (args.next().expect("two"), args.next().expect("two"));
                let date = info.get_data_type(&t)? == DataType::Date32;
                if date {
                    let t = cast(
                        t,
                        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                    );
                    cast(f::date_trunc(unit, t), DataType::Date32)
                } else {
                    f::date_trunc(unit, t)
                }
            }
            Kind::Mod => {
                let mut args = args.into_iter();
                let (a, b) = (args.next().expect("two"), args.next().expect("two"));
                Expr::BinaryExpr(BinaryExpr::new(Box::new(a), Operator::Modulo, Box::new(b)))
            }
            Kind::Sign => {
                let x = args.into_iter().next().expect("one");
                let t = info.get_data_type(&x)?;
                cast(f::signum(cast(x, DataType::Float64)), t)
            }
            Kind::Truncate => f::trunc(args),
            Kind::Replace => {
                let mut args = args.into_iter();
                let (s, x) = (args.next().expect("two"), args.next().expect("two"));
                f::replace(s, x, args.next().unwrap_or_else(|| lit("")))
            }
            Kind::Slice => {
                // Trino's slice(a, start, length): elements start … start + length - 1.
                let mut args = args.into_iter();
                let (a, start, length) = (
                    args.next().expect("three"),
                    args.next().expect("three"),
                    args.next().expect("three"),
                );
                let end = start.clone() + length - lit(1i64);
                datafusion::functions_nested::expr_fn::array_slice(a, start, end, None)
            }
            Kind::FromIso8601Date => cast(args.into_iter().next().expect("one"), DataType::Date32),
            Kind::ToIso8601 => {
                let x = args.into_iter().next().expect("one");
                let format = match info.get_data_type(&x)? {
                    DataType::Timestamp(u, zone) => {
                        let fraction = match u {
                            arrow::datatypes::TimeUnit::Second => "",
                            arrow::datatypes::TimeUnit::Millisecond => "%.3f",
                            arrow::datatypes::TimeUnit::Microsecond => "%.6f",
                            arrow::datatypes::TimeUnit::Nanosecond => "%.9f",
                        };
                        format!(
                            "%Y-%m-%dT%H:%M:%S{fraction}{}",
                            if zone.is_some() { "Z" } else { "" }
                        )
                    }
                    _ => "%Y-%m-%d".to_string(),
                };
                f::to_char(x, lit(format))
            }
            Kind::ToVarchar => {
                let x = args.into_iter().next().expect("one");
                let fraction = |u: &arrow::datatypes::TimeUnit| match u {
                    arrow::datatypes::TimeUnit::Second => "",
                    arrow::datatypes::TimeUnit::Millisecond => "%.3f",
                    arrow::datatypes::TimeUnit::Microsecond => "%.6f",
                    arrow::datatypes::TimeUnit::Nanosecond => "%.9f",
                };
                match info.get_data_type(&x)? {
                    // An instant is written in UTC, whatever zone its column shows.
                    DataType::Timestamp(u, Some(_)) => f::to_char(
                        cast(x, DataType::Timestamp(u, Some("UTC".into()))),
                        lit(format!("%Y-%m-%d %H:%M:%S{} UTC", fraction(&u))),
                    ),
                    DataType::Timestamp(u, None) => {
                        f::to_char(x, lit(format!("%Y-%m-%d %H:%M:%S{}", fraction(&u))))
                    }
                    DataType::Time32(u) | DataType::Time64(u) => {
                        f::to_char(x, lit(format!("%H:%M:%S{}", fraction(&u))))
                    }
                    _ => cast(x, DataType::Utf8),
                }
            }
            Kind::LastDayOfMonth => {
                let x = cast(args.into_iter().next().expect("one"), micros());
                let month = f::date_trunc(lit("month"), x);
                let next = month + lit(ScalarValue::IntervalYearMonth(Some(1)));
                cast(
                    next - lit(ScalarValue::IntervalDayTime(Some(
                        arrow::datatypes::IntervalDayTime::new(1, 0),
                    ))),
                    DataType::Date32,
                )
            }
            Kind::Length => cast(
                f::character_length(args.into_iter().next().expect("one")),
                DataType::Int64,
            ),
        }))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Internal(format!(
            "{} is planned as other functions and is not run itself",
            self.name
        )))
    }
}

/// Trino's `$1` group references as `${1}` (so `$1b` stays group 1, then `b`).
fn braced_groups(r: &str) -> String {
    let mut out = String::with_capacity(r.len() + 4);
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push_str("${");
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                out.push(d);
                chars.next();
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_references_are_braced() {
        assert_eq!(super::braced_groups("<$1>$2b$$"), "<${1}>${2}b$$");
    }
}
