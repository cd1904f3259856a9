//! JSON as text, in Trino's spelling: `json_parse(s)` and `json_format(j)`
//! (the text, checked and made compact), `json_extract(j, path)` (the JSON at
//! the path), `json_extract_scalar(j, path)` (a scalar at the path as
//! text), `json_size(j, path)` and `json_array_length(j)` (BIGINT).
//! Paths: `$`, `.key`, `["key"]`, `[index]`.

use std::sync::Arc;

use arrow::array::{Array, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

use super::udf;

pub(super) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf(Json::new("json_parse", 1, Kind::Parse)),
        udf(Json::new("json_format", 1, Kind::Parse)),
        udf(Json::new("json_extract", 2, Kind::Extract)),
        udf(Json::new("json_extract_scalar", 2, Kind::Scalar)),
        udf(Json::new("json_size", 2, Kind::Size)),
        udf(Json::new("json_array_length", 1, Kind::Size)),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Parse,
    Extract,
    Scalar,
    /// The number of elements of the array or object (0 for a scalar).
    Size,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Json {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl Json {
    fn new(name: &'static str, args: usize, kind: Kind) -> Self {
        Json {
            name,
            kind,
            signature: Signature::string(args, Volatility::Immutable),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `$.a["b"][0]` as steps.
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let bad = |why: &str| format!("JSON path '{path}': {why}");
    let rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| bad("must start with $"))?;
    let b = rest.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let end = rest[i + 1..]
                    .find(['.', '['])
                    .map_or(rest.len(), |j| i + 1 + j);
                if end == i + 1 {
                    return Err(bad("empty key after '.'"));
                }
                steps.push(Step::Key(rest[i + 1..end].to_string()));
                i = end;
            }
            b'[' => {
                let end = rest[i..]
                    .find(']')
                    .map(|j| i + j)
                    .ok_or_else(|| bad("'[' without ']'"))?;
                let inner = rest[i + 1..end].trim();
                if let Some(q) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    steps.push(Step::Key(q.to_string()));
                } else {
                    steps.push(Step::Index(
                        inner
                            .parse()
                            .map_err(|_| bad("an index must be a number or a quoted key"))?,
                    ));
                }
                i = end + 1;
            }
            _ => return Err(bad("expected '.' or '['")),
        }
    }
    Ok(steps)
}

fn walk<'a>(mut v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    for s in steps {
        v = match (s, v) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

impl ScalarUDFImpl for Json {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Size => DataType::Int64,
            _ => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let texts = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let paths = match args.args.get(1) {
            Some(p) => Some(cast(&p.to_array(args.number_rows)?, &DataType::Utf8)?),
            None => None,
        };
        let mut cached: Option<(String, Vec<Step>)> = None;
        let mut out = Vec::with_capacity(texts.len());
        for i in 0..texts.len() {
            if texts.is_null(i) {
                out.push(None);
                continue;
            }
            let text = texts.value(i);
            let value: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) if self.kind == Kind::Parse => {
                    return Err(DataFusionError::Execution(format!(
                        "{}: not JSON ({e}): {}",
                        self.name,
                        &text[..text.len().min(100)]
                    )));
                }
                // Trino's extract functions answer NULL for text that is not JSON.
                Err(_) => {
                    out.push(None);
                    continue;
                }
            };
            let found = match &paths {
                None => Some(&value),
                Some(p) => {
                    let p = p.as_string::<i32>();
                    if p.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let path = p.value(i);
                    if cached.as_ref().is_none_or(|(c, _)| c != path) {
                        let steps = parse_path(path).map_err(|e| {
                            DataFusionError::Execution(format!("{}: {e}", self.name))
                        })?;
                        cached = Some((path.to_string(), steps));
                    }
                    walk(&value, &cached.as_ref().expect("set above").1)
                }
            };
            out.push(match (self.kind, found) {
                (_, None) => None,
                (Kind::Size, Some(Value::Array(a))) => Some(a.len().to_string()),
                // json_array_length of anything but an array is NULL; json_size
                // of an object its keys, of a scalar 0.
                (Kind::Size, Some(_)) if self.name == "json_array_length" => None,
                (Kind::Size, Some(Value::Object(m))) => Some(m.len().to_string()),
                (Kind::Size, Some(_)) => Some("0".into()),
                (Kind::Scalar, Some(Value::String(s))) => Some(s.clone()),
                (Kind::Scalar, Some(Value::Number(n))) => Some(n.to_string()),
                (Kind::Scalar, Some(Value::Bool(b))) => Some(b.to_string()),
                (Kind::Scalar, Some(_)) => None,
                (_, Some(v)) => Some(v.to_string()),
            });
        }
        let out = Arc::new(StringArray::from(out));
        Ok(ColumnarValue::Array(match self.kind {
            Kind::Size => cast(&(out as arrow::array::ArrayRef), &DataType::Int64)?,
            _ => out,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_walk_objects_and_arrays() {
        let v: Value = serde_json::from_str(r#"{"a":{"b c":[10,{"d":true}]}}"#).unwrap();
        let p = parse_path(r#"$.a["b c"][1].d"#).unwrap();
        assert_eq!(walk(&v, &p), Some(&Value::Bool(true)));
        assert_eq!(walk(&v, &parse_path("$.a.x").unwrap()), None);
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$.a[").is_err());
    }
}
