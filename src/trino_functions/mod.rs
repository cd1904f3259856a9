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
pub(crate) mod planned;
mod syntax;
mod temporal;

pub use misc::{current_user, server_version};
pub use syntax::rewrite;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

/// Every scalar function of this module.
fn scalar_functions() -> Vec<ScalarUDF> {
    temporal::functions()
        .into_iter()
        .chain(json::functions())
        .chain(misc::functions())
        .chain(collections::functions())
        .chain(formats::functions())
        .chain(planned::functions())
        .collect()
}

/// Registers every function of this module in `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in scalar_functions() {
        ctx.register_udf(f);
    }
    for f in aggregates::functions() {
        ctx.register_udaf(f);
    }
}

/// Whether `message` is an error one of these functions raised about its
/// arguments (a bad pattern, format or text: Trino's INVALID_FUNCTION_ARGUMENT),
/// or a regular expression that does not compile.
pub fn is_argument_error(message: &str) -> bool {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        scalar_functions()
            .iter()
            .map(|f| f.name().to_string())
            .chain(aggregates::functions().iter().map(|f| f.name().to_string()))
            .collect()
    });
    if message.contains("regex parse error") || message.contains("Invalid regex") {
        return true;
    }
    // "…Execution error: json_parse: …", "…planning: date_format('%U'): …"
    let tail = message.rsplit("error: ").next().unwrap_or(message);
    let tail = tail.rsplit("planning: ").next().unwrap_or(tail);
    let name: String = tail
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let rest = &tail[name.len()..];
    names.contains(&name) && (rest.starts_with(": ") || rest.starts_with("('"))
}

/// A scalar function from its implementation.
fn udf(f: impl datafusion::logical_expr::ScalarUDFImpl + 'static) -> ScalarUDF {
    ScalarUDF::new_from_shared_impl(Arc::new(f))
}
