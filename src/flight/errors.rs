//! Engine errors as gRPC statuses a person can act on.

use datafusion::error::DataFusionError;
use tonic::Status;

/// Maps an engine error to a status: a failing upstream service →
/// Unavailable / DeadlineExceeded / Unauthenticated (by what happened),
/// syntax → InvalidArgument, unknown table → NotFound, planning →
/// InvalidArgument, data problems → FailedPrecondition, anything else →
/// Internal (logged with a query id).
pub fn to_status(e: DataFusionError) -> Status {
    if let Some(upstream) = tsql_entity_tables::UpstreamError::find(&e) {
        return super::auth::upstream_status(upstream);
    }
    let inner = match &e {
        DataFusionError::Context(_, inner) => inner.as_ref(),
        other => other,
    };
    let message = e.to_string();
    match inner {
        DataFusionError::SQL(..) => Status::invalid_argument(message),
        DataFusionError::Plan(m) if m.contains("not found") => Status::not_found(message),
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => Status::invalid_argument(message),
        DataFusionError::Execution(m) if m.contains("query cancelled") => {
            Status::cancelled(message)
        }
        DataFusionError::Execution(m) if m.contains("--on-bad-record") => {
            Status::failed_precondition(message)
        }
        _ => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            eprintln!("tsql: query {id} failed: {message}");
            Status::internal(format!("{message} (query id {id}; the server log has it)"))
        }
    }
}
