//! Functions where Trino's meaning differs from DataFusion's, planned as
//! DataFusion's own: `concat` (NULL when any argument is NULL; arrays are
//! concatenated), `regexp_replace` (every match; `$n` groups; the
//! two-argument form removes), `strpos` and `length` (BIGINT), `date_trunc`
//! (a date stays a date).

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
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Concat,
    RegexpReplace,
    Strpos,
    Length,
    DateTrunc,
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
            Kind::DateTrunc => 2..=2,
        };
        if !arity.contains(&args.len()) {
            return Err(DataFusionError::Plan(format!(
                "{} does not take {} arguments",
                self.name,
                args.len()
            )));
        }
        Ok(match self.kind {
            Kind::Concat if args.iter().any(is_list) => args.to_vec(),
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
