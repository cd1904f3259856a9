//! What every protocol front end (Flight SQL, Trino) shares: one engine
//! showing one query view, one set of query threads, one admission queue and
//! one set of users — so limits and `system.runtime.queries` cover every
//! client, whatever protocol it speaks.

use std::sync::Arc;

use crate::admission::{Admission, AdmissionSettings};
use crate::flight::Authenticator;
use crate::queries::QueryLog;
use crate::{Engine, QueryExecutor};

/// The shared parts of a serving process.
#[derive(Clone)]
pub struct Serving {
    /// The engine (its `system.runtime.queries` shows `queries`).
    pub engine: Engine,
    /// The threads queries are planned and run on.
    pub executor: QueryExecutor,
    /// Who may run now, who waits.
    pub admission: Arc<Admission>,
    /// Every query, running and recently ended.
    pub queries: Arc<QueryLog>,
    /// Who may connect.
    pub auth: Arc<Authenticator>,
}

impl Serving {
    /// The shared parts for `engine`, `auth` and the admission `settings`.
    pub fn new(
        engine: Engine,
        auth: Arc<Authenticator>,
        settings: AdmissionSettings,
    ) -> Result<Serving, String> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let executor = QueryExecutor::new(threads)
            .map_err(|e| format!("cannot start the query threads: {e}"))?;
        let queries = Arc::new(QueryLog::default());
        Ok(Serving {
            engine: engine.with_query_log(queries.clone()),
            executor,
            admission: Arc::new(Admission::new(settings)),
            queries,
            auth,
        })
    }
}
