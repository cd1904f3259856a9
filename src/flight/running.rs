//! Running query executions, so `CancelFlightInfo` can stop them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;
use tonic::Status;

/// How many cancelled execution ids are remembered, so a `DoGet` that
/// arrives after its cancellation is refused.
const REMEMBERED: usize = 4096;

/// The executions running now, by execution id.
#[derive(Default)]
pub struct RunningQueries {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    running: HashMap<String, Vec<(u64, AbortHandle)>>,
    cancelled: HashSet<String>,
    cancelled_order: VecDeque<String>,
}

/// A registered execution; unregisters itself when dropped.
pub struct Registration {
    queries: Arc<RunningQueries>,
    execution: String,
    slot: u64,
}

impl RunningQueries {
    /// Registers a running execution; refused when it was cancelled already.
    pub fn register(
        self: &Arc<Self>,
        execution: &str,
        abort: AbortHandle,
    ) -> Result<Registration, Status> {
        let mut state = self.state.lock().expect("not poisoned");
        if state.cancelled.contains(execution) {
            abort.abort();
            return Err(cancelled_status());
        }
        state.next += 1;
        let slot = state.next;
        state
            .running
            .entry(execution.to_string())
            .or_default()
            .push((slot, abort));
        Ok(Registration {
            queries: self.clone(),
            execution: execution.to_string(),
            slot,
        })
    }

    /// Refuses an execution that was cancelled before it started.
    pub fn check(&self, execution: &str) -> Result<(), Status> {
        if self
            .state
            .lock()
            .expect("not poisoned")
            .cancelled
            .contains(execution)
        {
            Err(cancelled_status())
        } else {
            Ok(())
        }
    }

    /// Cancels an execution: stops it if it runs and refuses it later.
    pub fn cancel(&self, execution: &str) {
        let mut state = self.state.lock().expect("not poisoned");
        if let Some(runs) = state.running.remove(execution) {
            for (_, abort) in runs {
                abort.abort();
            }
        }
        if state.cancelled.insert(execution.to_string()) {
            state.cancelled_order.push_back(execution.to_string());
            if state.cancelled_order.len() > REMEMBERED
                && let Some(old) = state.cancelled_order.pop_front()
            {
                state.cancelled.remove(&old);
            }
        }
    }

    /// How many executions run now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .expect("not poisoned")
            .running
            .values()
            .map(Vec::len)
            .sum()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.queries.state.lock().expect("not poisoned");
        if let Some(runs) = state.running.get_mut(&self.execution) {
            runs.retain(|(slot, _)| *slot != self.slot);
            if runs.is_empty() {
                state.running.remove(&self.execution);
            }
        }
    }
}

/// How long a ticket issued but not yet redeemed (`GetFlightInfo` answered,
/// its `DoGet` still to come) keeps a shutdown's drain waiting.
pub const REDEEM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Tickets issued in the last [`REDEEM_WAIT`] and not yet redeemed: a
/// client that planned a query just before SIGTERM still gets to run it.
#[derive(Default)]
pub struct Unredeemed {
    issued: Mutex<HashMap<String, std::time::Instant>>,
}

impl Unredeemed {
    /// A ticket for `execution` was issued now.
    pub fn issue(&self, execution: &str) {
        let mut issued = self.issued.lock().expect("not poisoned");
        issued.retain(|_, at| at.elapsed() < REDEEM_WAIT);
        issued.insert(execution.to_string(), std::time::Instant::now());
    }

    /// The ticket for `execution` is being redeemed.
    pub fn redeem(&self, execution: &str) {
        self.issued.lock().expect("not poisoned").remove(execution);
    }

    /// Tickets issued in the last [`REDEEM_WAIT`] and not redeemed yet.
    pub fn waiting(&self) -> usize {
        let mut issued = self.issued.lock().expect("not poisoned");
        issued.retain(|_, at| at.elapsed() < REDEEM_WAIT);
        issued.len()
    }
}

fn cancelled_status() -> Status {
    Status::cancelled("query cancelled: the client cancelled this execution")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancel_stops_running_and_refuses_later_runs() {
        let queries = Arc::new(RunningQueries::default());
        let task = tokio::spawn(std::future::pending::<()>());
        let reg = queries.register("e1", task.abort_handle()).unwrap();
        assert_eq!(queries.len(), 1);
        queries.cancel("e1");
        assert!(task.await.unwrap_err().is_cancelled());
        drop(reg);
        assert_eq!(queries.len(), 0);
        let again = tokio::spawn(std::future::pending::<()>());
        assert!(queries.register("e1", again.abort_handle()).is_err());
        assert!(queries.check("e1").is_err());
        assert!(queries.check("e2").is_ok());
    }
}
