//! Date and time functions in Trino's spelling: `year(x)` … `second(x)`,
//! `day_of_week`, `day_of_year`, `quarter`, `date_add(unit, n, x)`,
//! `date_diff(unit, a, b)`, `from_iso8601_timestamp(s)`, `to_unixtime(x)`,
//! `from_unixtime(seconds)`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow::compute::kernels::temporal::{DatePart, date_part};
use arrow::compute::{cast, cast_with_options};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::udf;

pub(super) fn functions() -> Vec<ScalarUDF> {
    let parts = [
        ("year", DatePart::Year),
        ("quarter", DatePart::Quarter),
        ("month", DatePart::Month),
        ("week", DatePart::WeekISO),
        ("week_of_year", DatePart::WeekISO),
        ("day", DatePart::Day),
        ("day_of_month", DatePart::Day),
        ("day_of_week", DatePart::DayOfWeekMonday1),
        ("dow", DatePart::DayOfWeekMonday1),
        ("day_of_year", DatePart::DayOfYear),
        ("doy", DatePart::DayOfYear),
        ("hour", DatePart::Hour),
        ("minute", DatePart::Minute),
        ("second", DatePart::Second),
    ];
    let mut out: Vec<ScalarUDF> = parts
        .into_iter()
        .map(|(name, part)| udf(Part::new(name, part)))
        .collect();
    out.push(udf(DateAdd::new()));
    out.push(udf(DateDiff::new()));
    out.push(udf(FromIso8601::new()));
    out.push(udf(ToUnixtime::new()));
    out.push(udf(FromUnixtime::new()));
    out
}

fn temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    )
}

fn wrong(name: &str, what: &str, got: &[DataType]) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{name} takes {what}, not ({})",
        got.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `year(x)` and friends: one field of a date or timestamp, as BIGINT.
#[derive(Debug, PartialEq, Eq)]
struct Part {
    name: &'static str,
    part: DatePart,
    signature: Signature,
}

impl std::hash::Hash for Part {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl Part {
    fn new(name: &'static str, part: DatePart) -> Self {
        Part {
            name,
            part,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Part {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let time_part = matches!(
            self.part,
            DatePart::Hour | DatePart::Minute | DatePart::Second
        );
        let time = matches!(args[0], DataType::Time32(_) | DataType::Time64(_));
        if !(temporal(&args[0]) || time_part && time) {
            let what = if time_part {
                "a date, time or timestamp"
            } else {
                "a date or timestamp"
            };
            return Err(wrong(self.name, what, args));
        }
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let array = args.args[0].to_array(args.number_rows)?;
        let parts = date_part(&array, self.part)?;
        let out = cast(&parts, &DataType::Int64)?;
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

/// A date or timestamp array as UTC microseconds, and a function that turns
/// microseconds back into the input's type.
fn as_micros(a: &ArrayRef) -> Result<TimestampMicrosecondArray> {
    let t = cast_with_options(
        a,
        &DataType::Timestamp(TimeUnit::Microsecond, None),
        &Default::default(),
    )?;
    Ok(
        t.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .clone(),
    )
}

fn from_micros(values: Vec<Option<i64>>, like: &DataType) -> Result<ArrayRef> {
    let micros: ArrayRef = Arc::new(TimestampMicrosecondArray::from(values));
    Ok(cast(&micros, like)?)
}

fn unit_of(v: &ColumnarValue, name: &str) -> Result<String> {
    match v {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s)))
        | ColumnarValue::Scalar(ScalarValue::LargeUtf8(Some(s)))
        | ColumnarValue::Scalar(ScalarValue::Utf8View(Some(s))) => Ok(s.to_ascii_lowercase()),
        _ => Err(DataFusionError::Plan(format!(
            "{name}: the unit must be a text literal such as 'day'"
        ))),
    }
}

fn fixed_micros(unit: &str) -> Option<i64> {
    Some(match unit {
        "millisecond" => 1_000,
        "second" => 1_000_000,
        "minute" => 60_000_000,
        "hour" => 3_600_000_000,
        "day" => 86_400_000_000,
        "week" => 7 * 86_400_000_000,
        _ => return None,
    })
}

fn months_of(unit: &str) -> Option<i64> {
    Some(match unit {
        "month" => 1,
        "quarter" => 3,
        "year" => 12,
        _ => return None,
    })
}

fn bad_unit(name: &str, unit: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{name}: unknown unit '{unit}'; use millisecond, second, minute, hour, day, week, month, quarter or year"
    ))
}

fn datetime(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

/// `date_add(unit, n, x)`: x moved by n units (months clamp to the month's end).
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateAdd {
    signature: Signature,
}

impl DateAdd {
    fn new() -> Self {
        DateAdd {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateAdd {
    fn name(&self) -> &str {
        "date_add"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if !args[1].is_integer() || !temporal(&args[2]) {
            return Err(wrong(
                "date_add",
                "(unit, an integer, a date or timestamp)",
                args,
            ));
        }
        Ok(args[2].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let unit = unit_of(&args.args[0], "date_add")?;
        let n = args.args[1].to_array(args.number_rows)?;
        let n = cast(&n, &DataType::Int64)?;
        let n = n.as_primitive::<arrow::datatypes::Int64Type>();
        let x = args.args[2].to_array(args.number_rows)?;
        let ts = as_micros(&x)?;
        let fixed = fixed_micros(&unit);
        let months = months_of(&unit);
        if fixed.is_none() && months.is_none() {
            return Err(bad_unit("date_add", &unit));
        }
        let mut out = Vec::with_capacity(ts.len());
        for i in 0..ts.len() {
            if ts.is_null(i) || n.is_null(i) {
                out.push(None);
                continue;
            }
            let (t, k) = (ts.value(i), n.value(i));
            let moved = match (fixed, months) {
                (Some(f), _) => k.checked_mul(f).and_then(|d| t.checked_add(d)),
                (_, Some(m)) => datetime(t).and_then(|d| {
                    let total = k.checked_mul(m)?;
                    let shifted = if total >= 0 {
                        d.checked_add_months(Months::new(u32::try_from(total).ok()?))
                    } else {
                        d.checked_sub_months(Months::new(u32::try_from(-total).ok()?))
                    }?;
                    Some(shifted.timestamp_micros())
                }),
                _ => None,
            };
            out.push(Some(moved.ok_or_else(|| {
                DataFusionError::Execution(format!("date_add: {k} {unit} out of range"))
            })?));
        }
        Ok(ColumnarValue::Array(from_micros(out, x.data_type())?))
    }
}

/// `date_diff(unit, a, b)`: whole units from a to b.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateDiff {
    signature: Signature,
}

impl DateDiff {
    fn new() -> Self {
        DateDiff {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

fn month_diff(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    let months = (b.year() as i64 - a.year() as i64) * 12 + b.month() as i64 - a.month() as i64;
    // Whole months only, as Joda counts them: a moved by that many months
    // (clamped to the month's end, so Jan 31 + 1 month is Feb 29) must not
    // pass b.
    let moved = |n: i64| {
        let m = Months::new(n.unsigned_abs() as u32);
        if n >= 0 {
            a.checked_add_months(m)
        } else {
            a.checked_sub_months(m)
        }
    };
    match moved(months) {
        Some(t) if months > 0 && t > b => months - 1,
        Some(t) if months < 0 && t < b => months + 1,
        _ => months,
    }
}

impl ScalarUDFImpl for DateDiff {
    fn name(&self) -> &str {
        "date_diff"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if !temporal(&args[1]) || !temporal(&args[2]) {
            return Err(wrong(
                "date_diff",
                "(unit, a date or timestamp, another)",
                args,
            ));
        }
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let unit = unit_of(&args.args[0], "date_diff")?;
        let a = as_micros(&args.args[1].to_array(args.number_rows)?)?;
        let b = as_micros(&args.args[2].to_array(args.number_rows)?)?;
        let fixed = fixed_micros(&unit);
        let months = months_of(&unit);
        if fixed.is_none() && months.is_none() {
            return Err(bad_unit("date_diff", &unit));
        }
        let out: Int64Array = (0..a.len())
            .map(|i| {
                if a.is_null(i) || b.is_null(i) {
                    return None;
                }
                let (x, y) = (a.value(i), b.value(i));
                match (fixed, months) {
                    (Some(f), _) => Some((y - x) / f),
                    (_, Some(m)) => Some(month_diff(datetime(x)?, datetime(y)?) / m),
                    _ => None,
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `from_iso8601_timestamp(s)`: an ISO-8601 instant (a date alone is its
/// midnight; without an offset, UTC) as TIMESTAMP WITH TIME ZONE.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FromIso8601 {
    signature: Signature,
}

impl FromIso8601 {
    fn new() -> Self {
        FromIso8601 {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FromIso8601 {
    fn name(&self) -> &str {
        "from_iso8601_timestamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let s = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let s = s.as_string::<i32>();
        let mut out = Vec::with_capacity(s.len());
        for v in s.iter() {
            out.push(match v {
                None => None,
                Some(text) => {
                    let parsed = tsql_entity_tables::temporal::parse_timestamp(text)
                        .map(|(us, _)| us)
                        .or_else(|| {
                            NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|d| {
                                d.and_hms_opt(0, 0, 0)
                                    .expect("midnight exists")
                                    .and_utc()
                                    .timestamp_micros()
                            })
                        });
                    Some(parsed.ok_or_else(|| {
                        DataFusionError::Execution(format!(
                            "from_iso8601_timestamp: '{text}' is not an ISO-8601 timestamp like 2024-03-01T09:15:00Z"
                        ))
                    })?)
                }
            });
        }
        let array = TimestampMicrosecondArray::from(out).with_timezone("UTC");
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// `to_unixtime(x)`: seconds since 1970-01-01 UTC, as DOUBLE.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToUnixtime {
    signature: Signature,
}

impl ToUnixtime {
    fn new() -> Self {
        ToUnixtime {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToUnixtime {
    fn name(&self) -> &str {
        "to_unixtime"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if !temporal(&args[0]) {
            return Err(wrong("to_unixtime", "a date or timestamp", args));
        }
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ts = as_micros(&args.args[0].to_array(args.number_rows)?)?;
        let out: Float64Array = ts.iter().map(|v| v.map(|us| us as f64 / 1e6)).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `from_unixtime(seconds)`: the instant, as TIMESTAMP(3) WITH TIME ZONE
/// (fractions of a second kept to the millisecond).
#[derive(Debug, PartialEq, Eq, Hash)]
struct FromUnixtime {
    signature: Signature,
}

impl FromUnixtime {
    fn new() -> Self {
        FromUnixtime {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FromUnixtime {
    fn name(&self) -> &str {
        "from_unixtime"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [t] if t.is_numeric() || t.is_null() => Ok(vec![DataType::Float64]),
            _ => Err(wrong(
                "from_unixtime",
                "(seconds since 1970 as a number)",
                args,
            )),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into()),
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let seconds = args.args[0].to_array(args.number_rows)?;
        let out: TimestampMillisecondArray = seconds
            .as_primitive::<arrow::datatypes::Float64Type>()
            .iter()
            .map(|v| {
                v.filter(|s| s.is_finite())
                    .map(|s| (s * 1000.0).round() as i64)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out.with_timezone("UTC"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn whole_months_between() {
        assert_eq!(
            month_diff(at("2024-01-31T00:00:00Z"), at("2024-02-29T00:00:00Z")),
            1
        );
        assert_eq!(
            month_diff(at("2024-03-31T00:00:00Z"), at("2024-02-29T00:00:00Z")),
            -1
        );
        assert_eq!(
            month_diff(at("2024-01-31T00:00:01Z"), at("2024-02-29T00:00:00Z")),
            0
        );
        assert_eq!(
            month_diff(at("2024-01-15T00:00:00Z"), at("2024-03-15T00:00:00Z")),
            2
        );
        assert_eq!(
            month_diff(at("2024-03-15T00:00:00Z"), at("2024-01-15T00:00:01Z")),
            -1
        );
        assert_eq!(TimeDelta::days(1).num_microseconds(), fixed_micros("day"));
    }
}
