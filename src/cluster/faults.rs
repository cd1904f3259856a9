//! A worker that dies mid-query: the query fails at once with UNAVAILABLE
//! naming the worker (datafusion-distributed does not retry tasks
//! elsewhere), and the worker is left out of new plans until it answers
//! health checks again (see [`super::workers`]).

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use super::workers::{Workers, unavailable};

/// Runs a distributed plan, turning a lost worker into a clear error.
#[derive(Debug)]
pub struct WorkerFaultsExec {
    input: Arc<dyn ExecutionPlan>,
    workers: Workers,
}

impl WorkerFaultsExec {
    /// `input` (a distributed plan over `workers`).
    pub fn new(input: Arc<dyn ExecutionPlan>, workers: Workers) -> Self {
        WorkerFaultsExec { input, workers }
    }
}

impl DisplayAs for WorkerFaultsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WorkerFaultsExec")
    }
}

/// Whether `e` is the network failing rather than the query.
fn is_transport(e: &DataFusionError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    [
        "h2 protocol error",
        "transport error",
        "broken pipe",
        "connection reset",
        "connection refused",
        "tcp connect error",
        "error connecting to distributed datafusion worker",
        "stream closed",
        "operation was canceled",
        "keep-alive timed out",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// The workers that do not answer now, by URL.
async fn down(workers: &Workers) -> Vec<String> {
    workers
        .not_answering()
        .await
        .iter()
        .map(ToString::to_string)
        .collect()
}

impl ExecutionPlan for WorkerFaultsExec {
    fn name(&self) -> &str {
        "WorkerFaultsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(WorkerFaultsExec::new(
            children.remove(0),
            self.workers.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.input.schema();
        let workers = self.workers.clone();
        let stream = self.input.execute(partition, context)?.then(move |item| {
            let workers = workers.clone();
            async move {
                match item {
                    Err(e) if is_transport(&e) => {
                        let dead = down(&workers).await;
                        let who = if dead.is_empty() {
                            "a worker of the cluster".to_string()
                        } else {
                            format!("worker {}", dead.join(", "))
                        };
                        Err(unavailable(format!(
                            "{who} stopped answering during the query ({e}); it is left out of new queries until it answers health checks again: run the query again"
                        )))
                    }
                    other => other,
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
