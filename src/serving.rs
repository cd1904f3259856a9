//! What every protocol front end (Flight SQL, Trino) shares: one engine
//! showing one query view, one set of query threads, one admission queue and
//! one set of users — so limits and `system.runtime.queries` cover every
//! client, whatever protocol it speaks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::admission::{Admission, AdmissionSettings};
use crate::auth::Authenticator;
use crate::caller::Caller;
use crate::queries::QueryLog;
use crate::queries::QueryState;
use crate::shutdown::Shutdown;
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
    /// How to stop each running query, whichever front end runs it.
    pub stoppers: Arc<Stoppers>,
    /// Whether the server is shutting down, and what it waits for then.
    pub shutdown: Arc<Shutdown>,
}

impl Serving {
    /// The shared parts for `engine`, `auth` and the admission `settings`;
    /// on shutdown, running queries get `grace` to finish.
    pub fn new(
        engine: Engine,
        auth: Arc<Authenticator>,
        settings: AdmissionSettings,
        grace: std::time::Duration,
    ) -> Result<Serving, String> {
        let threads = crate::container::query_threads();
        let executor = QueryExecutor::new(threads)
            .map_err(|e| format!("cannot start the query threads: {e}"))?;
        let queries = Arc::new(QueryLog::default());
        let shutdown = Arc::new(Shutdown::new(grace));
        let log = queries.clone();
        shutdown.count_busy_with(Box::new(move || log.unfinished()));
        Ok(Serving {
            engine: engine.with_query_log(queries.clone()),
            executor,
            admission: Arc::new(Admission::new(settings)),
            queries,
            auth,
            stoppers: Arc::new(Stoppers::default()),
            shutdown,
        })
    }

    /// Cancels every running query, whichever protocol runs it, marking it
    /// cancelled for `why` in the query view (the end of a shutdown's grace period).
    pub fn cancel_all(&self, why: &str) {
        for id in self.stoppers.ids() {
            if let Some(entry) = self.queries.find(&id) {
                entry.end(QueryState::Cancelled, Some(why.to_string()));
            }
        }
        self.stoppers.stop_all();
    }

    /// `CALL system.runtime.kill_query('<id>')` from `caller`: stops the
    /// query (the caller's own, or anyone's for role `admin`) whichever
    /// protocol runs it, and marks it cancelled in the query view.
    pub fn kill(&self, caller: &Caller, id: &str) -> Result<(), String> {
        let entry = self
            .queries
            .find(id)
            .filter(|e| caller.sees_all || e.owner() == caller.owner)
            .ok_or_else(|| {
                format!("query '{id}' not found among yours: SELECT query_id, state FROM system.runtime.queries lists them")
            })?;
        entry.end(
            QueryState::Cancelled,
            Some(format!("killed by {}", caller.owner)),
        );
        self.stoppers.stop(id);
        Ok(())
    }
}

/// The query id in `CALL system.runtime.kill_query('<id>')` (or
/// `kill_query(query_id => '<id>', message => '…')`), if `sql` is that call.
pub fn kill_request(sql: &str) -> Option<String> {
    static CALL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = CALL.get_or_init(|| {
        regex::Regex::new(
            r"(?is)^\s*call\s+system\s*\.\s*runtime\s*\.\s*kill_query\s*\(\s*(?:query_id\s*=>\s*)?'((?:[^']|'')*)'\s*(?:,\s*(?:message\s*=>\s*)?'(?:[^']|'')*'\s*)?\)\s*;?\s*$",
        )
        .expect("a valid pattern")
    });
    re.captures(sql).map(|c| c[1].replace("''", "'"))
}

/// Ways to stop the running queries, by query id.
#[derive(Default)]
pub struct Stoppers {
    next: AtomicU64,
    by_query: Mutex<HashMap<String, Vec<(u64, Box<dyn Fn() + Send + Sync>)>>>,
}

/// A registered way to stop a query; dropping it forgets it.
pub struct StopperGuard {
    stoppers: Arc<Stoppers>,
    query: String,
    slot: u64,
}

impl Stoppers {
    /// Registers `stop` as a way to stop query `id` while the guard lives.
    pub fn register(
        self: &Arc<Self>,
        id: &str,
        stop: impl Fn() + Send + Sync + 'static,
    ) -> StopperGuard {
        let slot = self.next.fetch_add(1, Ordering::Relaxed);
        self.by_query
            .lock()
            .expect("not poisoned")
            .entry(id.to_string())
            .or_default()
            .push((slot, Box::new(stop)));
        StopperGuard {
            stoppers: self.clone(),
            query: id.to_string(),
            slot,
        }
    }

    /// The ids of the queries that can be stopped now.
    pub fn ids(&self) -> Vec<String> {
        let map = self.by_query.lock().expect("not poisoned");
        map.keys().cloned().collect()
    }

    /// Stops every registered query (the end of a shutdown's grace period).
    pub fn stop_all(&self) {
        let all = std::mem::take(&mut *self.by_query.lock().expect("not poisoned"));
        for (_, stop) in all.into_values().flatten() {
            stop();
        }
    }

    /// Stops query `id` every registered way; whether there was one.
    pub fn stop(&self, id: &str) -> bool {
        let stops = self.by_query.lock().expect("not poisoned").remove(id);
        let found = stops.is_some();
        for (_, stop) in stops.into_iter().flatten() {
            stop();
        }
        found
    }
}

impl Drop for StopperGuard {
    fn drop(&mut self) {
        let mut map = self.stoppers.by_query.lock().expect("not poisoned");
        if let Some(list) = map.get_mut(&self.query) {
            list.retain(|(slot, _)| *slot != self.slot);
            if list.is_empty() {
                map.remove(&self.query);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::kill_request;

    #[test]
    fn kill_calls_are_recognised() {
        assert_eq!(
            kill_request("CALL system.runtime.kill_query('ab12');").as_deref(),
            Some("ab12")
        );
        assert_eq!(
            kill_request("  call   system.runtime.kill_query ( 'x' ) ").as_deref(),
            Some("x")
        );
        assert_eq!(
            kill_request(
                "CALL system.runtime.kill_query(query_id => 'q''1', message => 'too slow')"
            )
            .as_deref(),
            Some("q'1")
        );
        assert_eq!(kill_request("SELECT kill_query('x')"), None);
        assert_eq!(kill_request("CALL system.runtime.kill_query(x)"), None);
    }
}
