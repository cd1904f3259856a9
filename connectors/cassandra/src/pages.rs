//! A read page by page, each page one request with its own attempts
//! ([`crate::routing::attempts`]: a deadline per attempt, an unanswered
//! attempt made again on another node). The next page is asked for while the
//! caller works on the current one.

use std::sync::Arc;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::response::query_result::QueryRowsResult;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;
use tokio::task::JoinHandle;
use tsql_entity_tables::{UpstreamError, UpstreamErrorKind};

use crate::cluster::classify;
use crate::routing::{Failed, ReadRetries, RetryBudget, SlowNodes, Untried, attempts};

/// What every page of one read is asked with.
struct Request {
    session: Arc<Session>,
    statement: PreparedStatement,
    values: Vec<CqlValue>,
    deadline: Duration,
    retries: usize,
    slow: Arc<SlowNodes>,
    what: String,
}

type Page = (QueryRowsResult, PagingStateResponse);

/// The pages of one statement, read in order.
pub struct Pages {
    request: Arc<Request>,
    next: Option<JoinHandle<Result<Page, UpstreamError>>>,
}

impl Pages {
    /// Starts reading `statement` with `values` (asking for the first page
    /// at once): each attempt at a page may take `deadline`, and a page gets
    /// up to `retries` retries; nodes in `slow` are tried last, and nodes
    /// that leave an attempt unanswered are added to it. `what` names the
    /// read in errors ("reading ks.table").
    pub fn start(
        session: Arc<Session>,
        statement: PreparedStatement,
        values: Vec<CqlValue>,
        (deadline, retries): (Duration, usize),
        slow: Arc<SlowNodes>,
        what: String,
    ) -> Self {
        let request = Arc::new(Request {
            session,
            statement,
            values,
            deadline,
            retries,
            slow,
            what,
        });
        let first = tokio::spawn(page(request.clone(), PagingState::start()));
        Pages {
            request,
            next: Some(first),
        }
    }

    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<QueryRowsResult>, UpstreamError> {
        let Some(pending) = self.next.take() else {
            return Ok(None);
        };
        let (rows, more) = pending.await.map_err(|e| {
            UpstreamError::new(
                UpstreamErrorKind::BadAnswer,
                format!("{} stopped: {e}", self.request.what),
            )
        })??;
        if let PagingStateResponse::HasMorePages { state } = more {
            self.next = Some(tokio::spawn(page(self.request.clone(), state)));
        }
        Ok(Some(rows))
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        if let Some(pending) = &self.next {
            pending.abort();
        }
    }
}

/// One page, from `state` on.
async fn page(request: Arc<Request>, state: PagingState) -> Result<Page, UpstreamError> {
    let budget = RetryBudget::new(request.retries);
    let r = &request;
    let answer = attempts(
        r.deadline,
        &budget,
        |e: &ExecutionError| matches!(e, ExecutionError::RequestTimeout(_)),
        |tried| {
            let mut statement = r.statement.clone();
            statement.set_retry_policy(Some(Arc::new(ReadRetries::sharing(budget.clone()))));
            statement.set_history_listener(tried.clone());
            let unanswered = tried.nodes();
            if !unanswered.is_empty() {
                // Every attempt before this one went unanswered.
                r.slow.mark(&unanswered);
            }
            let mut avoid = r.slow.current();
            for n in unanswered {
                if !avoid.contains(&n) {
                    avoid.push(n);
                }
            }
            if !avoid.is_empty() {
                let inner = match r.statement.get_load_balancing_policy() {
                    Some(p) => p.clone(),
                    None => r
                        .session
                        .get_default_execution_profile_handle()
                        .to_profile()
                        .get_load_balancing_policy()
                        .clone(),
                };
                statement.set_load_balancing_policy(Some(Untried::new(inner, avoid)));
            }
            let state = state.clone();
            async move {
                r.session
                    .execute_single_page(&statement, &r.values, state)
                    .await
            }
        },
    )
    .await;
    match answer {
        Ok((result, more)) => {
            let rows = result
                .into_rows_result()
                .map_err(|e| classify(&e, &r.what))?;
            Ok((rows, more))
        }
        Err(Failed::Error(e)) => Err(classify(&e, &r.what)),
        Err(Failed::TimedOut { attempts, tried }) => {
            r.slow.mark(&tried);
            Err(timed_out(&r.what, attempts, r.deadline, &tried))
        }
    }
}

/// The error of a request none of whose `attempts` was answered within `deadline`.
pub fn timed_out(
    what: &str,
    attempts: usize,
    deadline: Duration,
    tried: &[std::net::IpAddr],
) -> UpstreamError {
    let nodes = if tried.is_empty() {
        String::new()
    } else {
        format!(
            " (sent to {})",
            tried
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let tries = if attempts == 1 {
        "1 attempt".to_string()
    } else {
        format!("{attempts} attempts")
    };
    UpstreamError::new(
        UpstreamErrorKind::Timeout,
        format!(
            "Cassandra did not answer {what}: {tries} of {}s each went unanswered{nodes}; check that the nodes are responsive, then try again, narrow the query, or raise `request_timeout_seconds` or `retries`",
            deadline.as_secs_f64()
        ),
    )
}
