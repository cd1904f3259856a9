//! Aggregates in Trino's spelling, as the DataFusion aggregates that compute
//! them: `count_if(c)`, `max_by(x, y)`, `min_by(x, y)`, `arbitrary(x)`,
//! `approx_percentile(x, p)`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::functions_aggregate::approx_percentile_cont::approx_percentile_cont_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::first_last::first_value_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::function::{AccumulatorArgs, AggregateFunctionSimplification};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, Signature, Volatility, lit, when,
};

pub(super) fn functions() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(Rewritten::new("count_if", 1, Target::CountIf)),
        AggregateUDF::new_from_impl(Rewritten::new("max_by", 2, Target::By { max: true })),
        AggregateUDF::new_from_impl(Rewritten::new("min_by", 2, Target::By { max: false })),
        first_value_udaf()
            .as_ref()
            .clone()
            .with_aliases(["arbitrary"]),
        approx_percentile_cont_udaf()
            .as_ref()
            .clone()
            .with_aliases(["approx_percentile"]),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    /// `count(CASE WHEN c THEN 1 END)`.
    CountIf,
    /// `first_value(x ORDER BY y DESC|ASC) FILTER (WHERE y IS NOT NULL)`.
    By { max: bool },
}

/// An aggregate that the optimizer replaces by the aggregate computing it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Rewritten {
    name: &'static str,
    target: Target,
    signature: Signature,
}

impl Rewritten {
    fn new(name: &'static str, args: usize, target: Target) -> Self {
        Rewritten {
            name,
            target,
            signature: Signature::any(args, Volatility::Immutable),
        }
    }
}

fn and(filter: Option<Box<Expr>>, more: Expr) -> Option<Box<Expr>> {
    Some(Box::new(match filter {
        Some(f) => f.and(more),
        None => more,
    }))
}

impl AggregateUDFImpl for Rewritten {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match self.target {
            Target::CountIf if args[0] == DataType::Boolean || args[0] == DataType::Null => {
                Ok(DataType::Int64)
            }
            Target::CountIf => Err(DataFusionError::Plan(format!(
                "count_if takes a boolean condition, not {}",
                args[0]
            ))),
            Target::By { .. } => Ok(args[0].clone()),
        }
    }
    fn is_nullable(&self) -> bool {
        self.target != Target::CountIf
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Err(DataFusionError::Internal(format!(
            "{} runs as the aggregate it is rewritten to",
            self.name
        )))
    }
    fn state_fields(
        &self,
        _args: datafusion::logical_expr::function::StateFieldsArgs,
    ) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(self.name, DataType::Null, true))])
    }
    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        let target = self.target;
        Some(Box::new(move |f: AggregateFunction, _| {
            let AggregateFunctionParams {
                mut args,
                distinct,
                filter,
                order_by: _,
                null_treatment,
            } = f.params;
            Ok(match target {
                Target::CountIf => Expr::AggregateFunction(AggregateFunction::new_udf(
                    count_udaf(),
                    vec![when(args.remove(0), lit(1i64)).end()?],
                    distinct,
                    filter,
                    vec![],
                    null_treatment,
                )),
                Target::By { max } => {
                    let by = args.remove(1);
                    let x = args.remove(0);
                    Expr::AggregateFunction(AggregateFunction::new_udf(
                        first_value_udaf(),
                        vec![x],
                        false,
                        and(filter, by.clone().is_not_null()),
                        vec![by.sort(!max, false)],
                        null_treatment,
                    ))
                }
            })
        }))
    }
}
