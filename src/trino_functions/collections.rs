//! Trino's `element_at(array, i)` / `element_at(map, key)` and
//! `contains(array, x)` (with DataFusion's `contains(string, part)` kept),
//! planned as the engine's own array and map functions.

use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};

use super::udf;

pub(super) fn functions() -> Vec<ScalarUDF> {
    vec![udf(ElementAt::new()), udf(Contains::new())]
}

fn element_type(t: &DataType) -> Option<&DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.data_type())
        }
        _ => None,
    }
}

/// The key and value types of a map.
fn map_types(t: &DataType) -> Option<(&DataType, &DataType)> {
    match t {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => Some((kv[0].data_type(), kv[1].data_type())),
            _ => None,
        },
        _ => None,
    }
}

fn rewritten_only(name: &str) -> DataFusionError {
    DataFusionError::Internal(format!(
        "{name} is planned as other functions and is not run itself"
    ))
}

/// `element_at(array, i)`: the i-th element (1-based; negative counts from
/// the end; NULL past either end). `element_at(map, key)`: the key's value
/// or NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ElementAt {
    signature: Signature,
}

impl ElementAt {
    fn new() -> Self {
        ElementAt {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ElementAt {
    fn name(&self) -> &str {
        "element_at"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [a, _] if element_type(a).is_some() => Ok(vec![a.clone(), DataType::Int64]),
            [m, _] if map_types(m).is_some() => {
                let (k, _) = map_types(m).expect("a map");
                Ok(vec![m.clone(), k.clone()])
            }
            _ => Err(DataFusionError::Plan(format!(
                "element_at takes (array, index) or (map, key), not ({})",
                args.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        element_type(&args[0])
            .or_else(|| map_types(&args[0]).map(|(_, v)| v))
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Plan(format!("element_at of {}: not an array or map", args[0]))
            })
    }
    fn simplify(&self, mut args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let (Some(key), Some(container)) = (args.pop(), args.pop()) else {
            return Err(DataFusionError::Plan(
                "element_at takes two arguments".into(),
            ));
        };
        let is_map = map_types(&info.get_data_type(&container)?).is_some();
        use datafusion::functions_nested::expr_fn::{array_element, map_extract};
        Ok(ExprSimplifyResult::Simplified(if is_map {
            array_element(map_extract(container, key), lit(1i64))
        } else {
            array_element(container, key)
        }))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(rewritten_only("element_at"))
    }
}

/// `contains(array, x)`: whether x is an element; `contains(string, part)`
/// as before.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Contains {
    signature: Signature,
}

impl Contains {
    fn new() -> Self {
        Contains {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Contains {
    fn name(&self) -> &str {
        "contains"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [a, _] => match element_type(a) {
                Some(e) => Ok(vec![a.clone(), e.clone()]),
                None => Ok(vec![DataType::Utf8, DataType::Utf8]),
            },
            _ => Err(DataFusionError::Plan(
                "contains takes (array, element) or (string, part)".into(),
            )),
        }
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn simplify(&self, mut args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let (Some(x), Some(container)) = (args.pop(), args.pop()) else {
            return Err(DataFusionError::Plan("contains takes two arguments".into()));
        };
        Ok(ExprSimplifyResult::Simplified(
            if element_type(&info.get_data_type(&container)?).is_some() {
                datafusion::functions_nested::expr_fn::array_has(container, x)
            } else {
                datafusion::functions::expr_fn::contains(container, x)
            },
        ))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(rewritten_only("contains"))
    }
}
