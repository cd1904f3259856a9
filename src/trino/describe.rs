//! `DESCRIBE INPUT` and `DESCRIBE OUTPUT` of a prepared statement: its
//! parameters and its result columns, in Trino's columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use datafusion::dataframe::DataFrame;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::trino_functions::misc::trino_type_name;

/// The description of the planned statement `df`: its result columns
/// (`output`) or its parameters, as a result of its own.
pub fn description(df: &DataFrame, output: bool, ctx: &SessionContext) -> Result<DataFrame> {
    let batch = if output { outputs(df)? } else { inputs(df)? };
    ctx.read_batch(batch)
}

fn text(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

/// `Column Name`, `Catalog`, `Schema`, `Table`, `Type`, `Type Size`, `Aliased`.
fn outputs(df: &DataFrame) -> Result<RecordBatch> {
    let fields = df.schema().fields();
    let n = fields.len();
    let empty = || text(vec![String::new(); n]);
    let size = |t: &DataType| t.primitive_width().map_or(0, |w| w as i32);
    Ok(RecordBatch::try_from_iter(vec![
        (
            "Column Name",
            text(fields.iter().map(|f| f.name().clone()).collect()),
        ),
        ("Catalog", empty()),
        ("Schema", empty()),
        ("Table", empty()),
        (
            "Type",
            text(
                fields
                    .iter()
                    .map(|f| trino_type_name(f.data_type()))
                    .collect(),
            ),
        ),
        (
            "Type Size",
            Arc::new(Int32Array::from(
                fields
                    .iter()
                    .map(|f| size(f.data_type()))
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "Aliased",
            Arc::new(BooleanArray::from(vec![false; n])) as ArrayRef,
        ),
    ])?)
}

/// `Position` (from 0) and `Type` of each `?`; `unknown` where the
/// statement does not tell.
fn inputs(df: &DataFrame) -> Result<RecordBatch> {
    let types = df.logical_plan().get_parameter_types()?;
    let mut numbered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(name, t)| Some((name.trim_start_matches('$').parse::<usize>().ok()?, t)))
        .collect();
    numbered.sort_by_key(|(i, _)| *i);
    Ok(RecordBatch::try_from_iter(vec![
        (
            "Position",
            Arc::new(Int32Array::from(
                numbered
                    .iter()
                    .map(|(i, _)| *i as i32 - 1)
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "Type",
            text(
                numbered
                    .iter()
                    .map(|(_, t)| t.as_ref().map_or("unknown".into(), trino_type_name))
                    .collect(),
            ),
        ),
    ])?)
}
