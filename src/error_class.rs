//! What kind of failure an engine error is, judged by what the user can do
//! about it. Each protocol front end turns a class into its own answer (a
//! gRPC status, a Trino error name).

use datafusion::error::DataFusionError;

/// What kind of failure an engine error is, by what the user can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The SQL text does not parse.
    Syntax,
    /// A name the query uses does not exist.
    NotFound,
    /// The query is wrong for its data: types, division by zero, a bad cast or parameter.
    Invalid,
    /// The query was stopped by a client or an operator.
    Cancelled,
    /// Stored data cannot be read.
    BadData,
    /// A limit was reached (memory).
    Exhausted,
    /// A fault of the server.
    Internal,
}

/// Whether `e` is a spill limit (or a full spill disk) being reached,
/// rather than memory: its message then names the setting to change, and
/// the front ends add no memory hint of their own.
pub fn is_spill_limit(e: &DataFusionError) -> bool {
    matches!(e.find_root(), DataFusionError::ResourcesExhausted(m)
        if m.contains("spill_limit") || m.contains("spill_dir"))
}

/// The class of `e`, judged by its innermost cause.
pub fn class(e: &DataFusionError) -> ErrorClass {
    use arrow::error::ArrowError;
    let mut outer = e;
    // Context and diagnostics wrap the error that says what went wrong.
    while let DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) = outer {
        outer = inner.as_ref();
    }
    match outer {
        DataFusionError::SQL(..) => return ErrorClass::Syntax,
        DataFusionError::Plan(m) if m.contains("not found") => return ErrorClass::NotFound,
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => return ErrorClass::Invalid,
        _ => {}
    }
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => ErrorClass::Exhausted,
        DataFusionError::ArrowError(a, _) => match a.as_ref() {
            ArrowError::DivideByZero
            | ArrowError::CastError(_)
            | ArrowError::ParseError(_)
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::ComputeError(_) => ErrorClass::Invalid,
            _ => ErrorClass::Internal,
        },
        DataFusionError::Execution(m) if m.contains("query cancelled") => ErrorClass::Cancelled,
        DataFusionError::Execution(m) if m.contains("--on-bad-record") => ErrorClass::BadData,
        DataFusionError::Execution(m)
            if m.contains("Cannot cast")
                || m.contains("cannot be cast")
                || m.contains("Divide by zero") =>
        {
            ErrorClass::Invalid
        }
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => ErrorClass::Invalid,
        _ => ErrorClass::Internal,
    }
}
