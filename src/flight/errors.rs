//! Engine errors as gRPC statuses a person can act on.

use datafusion::error::DataFusionError;
use tonic::Status;

/// Maps an engine error to a status: a failing upstream service →
/// Unavailable / DeadlineExceeded / Unauthenticated (by what happened),
/// syntax → InvalidArgument, unknown table → NotFound, planning, types,
/// division by zero, bad casts → InvalidArgument, unreadable data →
/// FailedPrecondition, memory → ResourceExhausted, anything else → Internal
/// (logged with a query id).
pub fn to_status(e: DataFusionError) -> Status {
    status_of(e, None)
}

/// Like [`to_status`], for an error of the query `query_id` (its id in
/// `system.runtime.queries`), which an internal error then names.
pub fn to_status_for(e: DataFusionError, query_id: &str) -> Status {
    status_of(e, Some(query_id))
}

fn status_of(e: DataFusionError, query_id: Option<&str>) -> Status {
    if let Some(upstream) = tsql_entity_tables::UpstreamError::find(&e) {
        return super::auth::upstream_status(upstream);
    }
    let message = e.to_string();
    if let DataFusionError::External(inner) = e.find_root() {
        if inner.is::<crate::admission::QueryTimeout>() {
            return Status::deadline_exceeded(message);
        }
    }
    match class(&e) {
        ErrorClass::Syntax | ErrorClass::Invalid => Status::invalid_argument(message),
        ErrorClass::NotFound => Status::not_found(message),
        ErrorClass::Cancelled => Status::cancelled(message),
        ErrorClass::BadData => Status::failed_precondition(message),
        ErrorClass::Exhausted => Status::resource_exhausted(format!(
            "{message}\nhint: the query needs more memory than it may use; narrow it (filters, fewer columns, a LIMIT), or raise `memory_limit` in the server config"
        )),
        ErrorClass::Internal => {
            let id = query_id
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            tracing::error!(query_id = %id, "query {id} failed: {message}");
            Status::internal(format!("{message} (query id {id}; the server log has it)"))
        }
    }
}

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
