//! Errors from the service behind a connector, by what the user can do about
//! them: the front ends map each kind to its protocol's status
//! (UNAVAILABLE, DEADLINE_EXCEEDED, UNAUTHENTICATED, …).

use datafusion::error::DataFusionError;

/// What kind of upstream failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The service cannot be reached, or failed (retry later).
    Unavailable,
    /// The service did not answer within the configured timeout.
    Timeout,
    /// The service refused the identity (missing, expired or forged token).
    Unauthenticated,
    /// The identity may not read this.
    PermissionDenied,
    /// The service does not know what was asked for.
    NotFound,
    /// The service's answer cannot be used (malformed or unexpected).
    BadAnswer,
}

/// A failure of the service behind a connector, with a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamError {
    /// What kind of failure.
    pub kind: UpstreamErrorKind,
    /// What happened and what to do next.
    pub message: String,
}

impl UpstreamError {
    /// A failure of `kind`.
    pub fn new(kind: UpstreamErrorKind, message: impl Into<String>) -> Self {
        UpstreamError {
            kind,
            message: message.into(),
        }
    }

    /// The upstream failure inside an engine error, if it is one (looking
    /// through the wrappers the engine adds).
    pub fn find(e: &DataFusionError) -> Option<&UpstreamError> {
        match e {
            DataFusionError::External(inner) => inner.downcast_ref::<UpstreamError>(),
            DataFusionError::Context(_, inner) => Self::find(inner),
            DataFusionError::Shared(inner) => Self::find(inner),
            DataFusionError::ArrowError(a, _) => match a.as_ref() {
                arrow::error::ArrowError::ExternalError(inner) => inner
                    .downcast_ref::<DataFusionError>()
                    .and_then(Self::find)
                    .or_else(|| inner.downcast_ref::<UpstreamError>()),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<UpstreamError> for DataFusionError {
    fn from(e: UpstreamError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// Receives every upstream call's duration and outcome (for metrics).
pub type UpstreamObserver = dyn Fn(&str, f64, Option<UpstreamErrorKind>) + Send + Sync;

static OBSERVER: std::sync::OnceLock<Box<UpstreamObserver>> = std::sync::OnceLock::new();

/// Sets the process's observer of upstream calls (once; later calls are ignored).
pub fn observe_upstream(observer: Box<UpstreamObserver>) {
    let _ = OBSERVER.set(observer);
}

/// Records one call to `source` that took `seconds` and failed with `error`, if it did.
pub fn record_upstream(source: &str, seconds: f64, error: Option<UpstreamErrorKind>) {
    if let Some(o) = OBSERVER.get() {
        o(source, seconds, error);
    }
}

impl UpstreamErrorKind {
    /// A short name for labels: `unavailable`, `timeout`, ….
    pub fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Unavailable => "unavailable",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Unauthenticated => "unauthenticated",
            UpstreamErrorKind::PermissionDenied => "permission_denied",
            UpstreamErrorKind::NotFound => "not_found",
            UpstreamErrorKind::BadAnswer => "bad_answer",
        }
    }
}
