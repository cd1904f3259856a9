//! Trino's `date_format(t, mysql_format)` and `format_datetime(t,
//! joda_pattern)`, planned as the engine's `to_char` with the format
//! translated (the format must be a constant).

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};

use super::udf;

pub(super) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf(Format {
            name: "date_format",
            style: Style::MySql,
            signature: sig(),
        }),
        udf(Format {
            name: "format_datetime",
            style: Style::Joda,
            signature: sig(),
        }),
    ]
}

fn sig() -> Signature {
    Signature::user_defined(Volatility::Immutable)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    name: &'static str,
    style: Style,
    signature: Signature,
}

/// Whose format letters a function reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Style {
    /// MySQL's `%` specifiers (`date_format`).
    MySql,
    /// Joda-Time pattern letters (`format_datetime`).
    Joda,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let bad = || {
            DataFusionError::Plan(format!(
                "{} takes (timestamp, format), not ({})",
                self.name,
                args.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        };
        match args {
            [t @ DataType::Timestamp(..), _] => Ok(vec![t.clone(), DataType::Utf8]),
            [
                DataType::Date32
                | DataType::Date64
                | DataType::Utf8
                | DataType::Utf8View
                | DataType::LargeUtf8,
                _,
            ] => Ok(vec![
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Utf8,
            ]),
            _ => Err(bad()),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn simplify(&self, mut args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let (Some(format), Some(t)) = (args.pop(), args.pop()) else {
            return Err(DataFusionError::Plan(format!(
                "{} takes two arguments",
                self.name
            )));
        };
        let text = match &format {
            Expr::Literal(ScalarValue::Utf8(Some(f)) | ScalarValue::Utf8View(Some(f)), _) => {
                f.clone()
            }
            Expr::Literal(v, _) if v.is_null() => {
                return Ok(ExprSimplifyResult::Simplified(lit(ScalarValue::Utf8(None))));
            }
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "{}: the format must be a constant string",
                    self.name
                )));
            }
        };
        let translated = match self.style {
            Style::MySql => mysql_format(&text),
            Style::Joda => joda_pattern(&text),
        };
        let chrono = translated
            .map_err(|why| DataFusionError::Plan(format!("{}('{text}'): {why}", self.name)))?;
        Ok(ExprSimplifyResult::Simplified(
            datafusion::functions::expr_fn::to_char(t, lit(chrono)),
        ))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Internal(format!(
            "{} is planned as to_char and is not run itself",
            self.name
        )))
    }
}

/// Text copied into a chrono format (`%` doubled).
fn literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// MySQL's `date_format` specifiers (as Trino reads them) → chrono's.
fn mysql_format(f: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal(&mut out, c);
            continue;
        }
        let Some(s) = chars.next() else {
            return Err("ends in a lone %".into());
        };
        out.push_str(match s {
            'a' => "%a",
            'b' => "%b",
            'c' => "%-m",
            'd' => "%d",
            'e' => "%-d",
            // Trino keeps milliseconds here: 13:45:30.123456 gives 123000.
            'f' => "%3f000",
            'H' => "%H",
            'h' | 'I' => "%I",
            'i' => "%M",
            'j' => "%j",
            'k' => "%-H",
            'l' => "%-I",
            'M' => "%B",
            'm' => "%m",
            'p' => "%p",
            'r' => "%I:%M:%S %p",
            'S' | 's' => "%S",
            'T' => "%H:%M:%S",
            'v' => "%V",
            'W' => "%A",
            'x' => "%G",
            'Y' => "%Y",
            'y' => "%y",
            '%' => "%%",
            other => return Err(format!("%{other} is not supported (supported: %a %b %c %d %e %f %H %h %I %i %j %k %l %M %m %p %r %S %s %T %v %W %x %Y %y %%)")),
        });
    }
    Ok(out)
}

/// A Joda-Time pattern (as `format_datetime` reads it) → chrono's format.
fn joda_pattern(p: &str) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // 'text', with '' for a quote.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        out.push('\'');
                        i += 2;
                        continue;
                    }
                    break;
                }
                literal(&mut out, chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        i += n;
        out.push_str(match (c, n) {
            ('y' | 'Y' | 'u', 2) => "%y",
            ('y' | 'Y' | 'u', _) => "%Y",
            ('x', 2) => "%g",
            ('x', _) => "%G",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', 1 | 2) => "%-j",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('k', 1) => "%-k",
            ('k', _) => "%k",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('e', _) => "%u",
            ('w', 1) => "%-V",
            ('w', _) => "%V",
            ('Z', 1) => "%z",
            ('Z', _) => "%:z",
            ('z', _) => "%Z",
            ('S', _) => return Err("fractions of a second: S is supported as SSS, SSSSSS or SSSSSSSSS".into()),
            (other, _) => {
                return Err(format!(
                    "the pattern letter {other} is not supported (supported: y Y u x M d D H k h m s S a E e w Z z and 'text')"
                ))
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_specifiers_translate() {
        assert_eq!(
            mysql_format("%Y-%m-%d %H:%i:%s").unwrap(),
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(mysql_format("100%% %W").unwrap(), "100%% %A");
        assert!(
            mysql_format("%Q")
                .unwrap_err()
                .contains("%Q is not supported")
        );
    }

    #[test]
    fn joda_patterns_translate() {
        assert_eq!(
            joda_pattern("yyyy-MM-dd HH:mm:ss.SSS").unwrap(),
            "%Y-%m-%d %H:%M:%S.%3f"
        );
        assert_eq!(
            joda_pattern("EEE, d MMM yy 'at' h a").unwrap(),
            "%a, %-d %b %y at %-I %p"
        );
        assert_eq!(joda_pattern("'it''s' 100%").unwrap(), "it's 100%%");
        assert!(joda_pattern("G").unwrap_err().contains("letter G"));
    }
}
