//! SQL functions and syntax that analysts and BI tools write against Trino,
//! for every front end (Flight SQL and the Trino protocol): date and time
//! parts, arithmetic and formats, ISO-8601 and Unix time, JSON text, `if`,
//! `split`, `regexp_extract`, `typeof`, `version`, `element_at`, `contains`,
//! the aggregates `count_if`, `max_by`, `min_by`, `arbitrary`,
//! `approx_percentile`, and [`rewrite`] for `try`, `UNNEST … WITH
//! ORDINALITY`, `LIKE … ESCAPE`, zoned timestamp literals and `FETCH FIRST`.
//! DataFusion already has most of the rest (`date_trunc`, `regexp_like`,
//! `strpos`, `approx_distinct`, …).

mod aggregates;
mod collections;
mod formats;
mod json;
pub(crate) mod misc;
mod syntax;
mod temporal;

pub use misc::server_version;
pub use syntax::rewrite;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

/// Registers every function of this module in `ctx`.
pub fn register(ctx: &SessionContext) {
    let udfs: Vec<ScalarUDF> = temporal::functions()
        .into_iter()
        .chain(json::functions())
        .chain(misc::functions())
        .chain(collections::functions())
        .chain(formats::functions())
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
