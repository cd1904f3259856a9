//! Engine errors as gRPC statuses a person can act on.

use datafusion::error::DataFusionError;
use tonic::Status;

use crate::error_class::{ErrorClass, class, is_spill_limit};

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
        return crate::auth::upstream_status(upstream);
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
        // A spill limit's message says itself what to change.
        ErrorClass::Exhausted if is_spill_limit(&e) => Status::resource_exhausted(message),
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
