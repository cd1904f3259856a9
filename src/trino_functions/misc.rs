//! `if(c, a[, b])`, `split(s, d)`, `regexp_extract(s, pattern[, group])`
//! and `typeof(x)` (Trino's type names).

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, ListBuilder, StringArray, StringBuilder, new_null_array,
};
use arrow::compute::cast;
use arrow::compute::kernels::zip::zip;
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::type_coercion::binary::type_union_resolution;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::udf;

pub(super) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf(Constant::new("current_timezone", ScalarValue::from("UTC"))),
        udf(Constant::new(
            "version",
            ScalarValue::from(server_version()),
        )),
        udf(Constant::new("nan", ScalarValue::Float64(Some(f64::NAN)))),
        // Until a caller's engine says who asks (`tsql sql`: the local user).
        current_user(&std::env::var("USER").unwrap_or_else(|_| "tsql".into())),
        udf(Constant::new(
            "infinity",
            ScalarValue::Float64(Some(f64::INFINITY)),
        )),
        udf(If::new()),
        udf(Split::new()),
        udf(RegexpExtract::new()),
        udf(TypeOf::new()),
    ]
}

/// `if(c, a[, b])`: a where c is true, else b (or NULL).
#[derive(Debug, PartialEq, Eq, Hash)]
struct If {
    signature: Signature,
}

impl If {
    fn new() -> Self {
        If {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for If {
    fn name(&self) -> &str {
        "if"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if !(2..=3).contains(&args.len()) {
            return Err(DataFusionError::Plan(
                "if takes (condition, value) or (condition, value, otherwise)".into(),
            ));
        }
        let value = type_union_resolution(&args[1..]).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "if: the values {} and {} have no common type",
                args[1],
                args.get(2).unwrap_or(&args[1])
            ))
        })?;
        let mut out = vec![DataType::Boolean];
        out.extend(std::iter::repeat_n(value, args.len() - 1));
        Ok(out)
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[1].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let c = args.args[0].to_array(n)?;
        let c = c.as_boolean();
        // NULL conditions are false.
        let mask: BooleanArray = c.iter().map(|v| Some(v.unwrap_or(false))).collect();
        let a = args.args[1].to_array(n)?;
        let b = match args.args.get(2) {
            Some(b) => b.to_array(n)?,
            None => new_null_array(a.data_type(), n),
        };
        Ok(ColumnarValue::Array(zip(&mask, &a, &b)?))
    }
}

/// `split(s, delimiter)`: the parts of s, as ARRAY(VARCHAR).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Split {
    signature: Signature,
}

impl Split {
    fn new() -> Self {
        Split {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Split {
    fn name(&self) -> &str {
        "split"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Utf8, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let s = cast(&args.args[0].to_array(n)?, &DataType::Utf8)?;
        let d = cast(&args.args[1].to_array(n)?, &DataType::Utf8)?;
        let (s, d) = (s.as_string::<i32>(), d.as_string::<i32>());
        let mut out = ListBuilder::new(StringBuilder::new());
        for i in 0..n {
            if s.is_null(i) || d.is_null(i) {
                out.append_null();
                continue;
            }
            let (text, delim) = (s.value(i), d.value(i));
            if delim.is_empty() {
                return Err(DataFusionError::Execution(
                    "split: the delimiter is empty".into(),
                ));
            }
            for part in text.split(delim) {
                out.values().append_value(part);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `regexp_extract(s, pattern[, group])`: the first match (or its group), else NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    fn new() -> Self {
        RegexpExtract {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args.len() {
            2 => Ok(vec![DataType::Utf8, DataType::Utf8]),
            3 => Ok(vec![DataType::Utf8, DataType::Utf8, DataType::Int64]),
            _ => Err(DataFusionError::Plan(
                "regexp_extract takes (string, pattern) or (string, pattern, group)".into(),
            )),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let s = args.args[0].to_array(n)?;
        let p = args.args[1].to_array(n)?;
        let g = match args.args.get(2) {
            Some(g) => Some(g.to_array(n)?),
            None => None,
        };
        let (s, p) = (s.as_string::<i32>(), p.as_string::<i32>());
        let mut cached: Option<(String, regex::Regex)> = None;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            if s.is_null(i) || p.is_null(i) {
                out.push(None);
                continue;
            }
            let pattern = p.value(i);
            if cached.as_ref().is_none_or(|(c, _)| c != pattern) {
                let re = regex::Regex::new(pattern).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "regexp_extract: bad pattern '{pattern}': {e}"
                    ))
                })?;
                cached = Some((pattern.to_string(), re));
            }
            let re = &cached.as_ref().expect("set above").1;
            let group = match &g {
                Some(g) => {
                    let g = g.as_primitive::<arrow::datatypes::Int64Type>();
                    if g.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    g.value(i)
                }
                None => 0,
            };
            if group < 0 || group as usize >= re.captures_len() {
                return Err(DataFusionError::Execution(format!(
                    "regexp_extract: pattern '{pattern}' has no group {group}"
                )));
            }
            out.push(
                re.captures(s.value(i))
                    .and_then(|c| c.get(group as usize))
                    .map(|m| m.as_str().to_string()),
            );
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `typeof(x)`: the SQL type of x as Trino names it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TypeOf {
    signature: Signature,
}

impl TypeOf {
    fn new() -> Self {
        TypeOf {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// Trino's name of an Arrow type.
pub fn trino_type_name(t: &DataType) -> String {
    use arrow::datatypes::TimeUnit;
    let precision = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    match t {
        DataType::Null => "unknown".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::UInt8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt16 => "smallint".into(),
        DataType::Int32 | DataType::UInt32 => "integer".into(),
        DataType::Int64 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "varbinary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(u) | DataType::Time64(u) => format!("time({})", precision(u)),
        DataType::Timestamp(u, None) => format!("timestamp({})", precision(u)),
        DataType::Timestamp(u, Some(_)) => format!("timestamp({}) with time zone", precision(u)),
        DataType::Interval(arrow::datatypes::IntervalUnit::YearMonth) => {
            "interval year to month".into()
        }
        DataType::Interval(_) | DataType::Duration(_) => "interval day to second".into(),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => format!("array({})", trino_type_name(f.data_type())),
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map({}, {})",
                trino_type_name(kv[0].data_type()),
                trino_type_name(kv[1].data_type())
            ),
            other => format!("map({})", trino_type_name(other)),
        },
        DataType::Struct(fields) => format!(
            "row({})",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), trino_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Dictionary(_, v) => trino_type_name(v),
        other => other.to_string().to_lowercase(),
    }
}

impl ScalarUDFImpl for TypeOf {
    fn name(&self) -> &str {
        "typeof"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // typeof shows decimals as Trino's type display does: decimal(2,1).
        static DECIMAL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let decimal = DECIMAL.get_or_init(|| {
            regex::Regex::new(r"decimal\((\d+), (\d+)\)").expect("a valid pattern")
        });
        let name = trino_type_name(&args.args[0].data_type());
        let name = decimal.replace_all(&name, "decimal($1,$2)").into_owned();
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// `current_user()` (Trino's `current_user`): `name`, the caller's.
pub fn current_user(name: &str) -> ScalarUDF {
    udf(Constant::new("current_user", ScalarValue::from(name)))
}

/// The version tsql reports to clients (`version()`, Trino's `/v1/info`):
/// the Trino release whose protocol it speaks, then its own version, so
/// clients that read a leading number see a Trino they know.
pub fn server_version() -> String {
    format!("476-tsql-{}", env!("CARGO_PKG_VERSION"))
}

/// A function of no arguments with a fixed value: `current_timezone()` is
/// always `UTC` in tsql (instants are UTC; `X-Trino-Time-Zone` is not
/// applied yet), `version()` is [`server_version`], `nan()`, `infinity()`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: &'static str,
    value: ScalarValue,
    signature: Signature,
}

impl Constant {
    fn new(name: &'static str, value: ScalarValue) -> Self {
        Constant {
            name,
            value,
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}
