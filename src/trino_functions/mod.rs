//! SQL functions that analysts and BI tools write against Trino, for every
//! front end (Flight SQL now, the Trino protocol later): date and time parts
//! and arithmetic, ISO-8601 and Unix time, JSON text, `if`, `split`,
//! `regexp_extract`, `typeof`, and the aggregates `count_if`, `max_by`,
//! `min_by`, `arbitrary`, `approx_percentile`. DataFusion already has most of the rest
//! (`date_trunc`, `regexp_like`, `strpos`, `approx_distinct`, …).

mod aggregates;
mod json;
pub(crate) mod misc;
mod temporal;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

/// Registers every function of this module in `ctx`.
pub fn register(ctx: &SessionContext) {
    let udfs: Vec<ScalarUDF> = temporal::functions()
        .into_iter()
        .chain(json::functions())
        .chain(misc::functions())
        .collect();
    for f in udfs {
        ctx.register_udf(f);
    }
    for f in aggregates::functions() {
        ctx.register_udaf(f);
    }
}

/// A scalar function from its implementation.
fn udf(f: impl datafusion::logical_expr::ScalarUDFImpl + 'static) -> ScalarUDF {
    ScalarUDF::new_from_shared_impl(Arc::new(f))
}
