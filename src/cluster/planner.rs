//! Planning over the cluster: every scan of an entity table becomes a
//! [`ClusterScanExec`] split finer (one share per worker), and when the
//! session's `distributed` setting says so the plan is cut into stages
//! whose tasks datafusion-distributed runs on the workers.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, ScaleUpLeafNodeEvent,
    ScaleUpLeafNodeEventResponse, SessionStateBuilderExt,
};

use super::mode::{ClusterSessionOptions, Mode};
use super::progress::{mark_stages, stage_boards};
use super::routing::TaskRouter;
use super::scan::{ClusterScanExec, ClusterTable};
use super::workers::{Workers, unavailable};
use datafusion_distributed::{NetworkBoundaryExt, Stage, WorkerResolver};

/// Plans queries of a coordinator.
#[derive(Debug)]
pub struct ClusterPlanner {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
    workers: Workers,
    min_splits: usize,
    router: TaskRouter,
}

impl ClusterPlanner {
    /// A planner over `workers` that distributes, under `auto`, plans whose
    /// scans have at least `min_splits` splits; `router` places the tasks.
    pub fn new(workers: Workers, min_splits: usize, router: TaskRouter) -> ClusterPlanner {
        let distributed = SessionStateBuilder::new()
            .with_query_planner(Arc::new(Planned))
            .with_distributed_planner()
            .build()
            .query_planner()
            .clone();
        ClusterPlanner {
            distributed,
            workers,
            min_splits: min_splits.max(1),
            router,
        }
    }
}

tokio::task_local! {
    /// The plan [`Planned`] hands over: the one made for the query at hand.
    static PLANNED: Arc<dyn ExecutionPlan>;
}

/// The planner datafusion-distributed starts from: it hands over the plan
/// already made for the query (in [`PLANNED`]), so a distributed query's
/// scans are not planned, and their sources asked (Cassandra's size
/// estimates), a second time.
#[derive(Debug)]
struct Planned;

#[async_trait]
impl QueryPlanner for Planned {
    async fn create_physical_plan(
        &self,
        _logical_plan: &LogicalPlan,
        _session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        PLANNED.try_with(Arc::clone).map_err(|_| {
            datafusion::error::DataFusionError::Internal(
                "the distributed planner ran outside the cluster planner".into(),
            )
        })
    }
}

/// The tsql query id the session plans for (empty when none is set).
fn query_of(session: &dyn Session) -> String {
    session
        .config()
        .options()
        .extensions
        .get::<ClusterSessionOptions>()
        .map(|o| o.query_id.clone())
        .unwrap_or_default()
}

/// The session's `distributed` mode.
pub fn mode_of(session: &dyn Session) -> Mode {
    session
        .config()
        .options()
        .extensions
        .get::<ClusterSessionOptions>()
        .map(ClusterSessionOptions::mode)
        .unwrap_or(Mode::Off)
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let LogicalPlan::Explain(e) = logical_plan
            && let Some(explained) = self.explain_distributed(e, session).await?
        {
            return Ok(explained);
        }
        let mut plan = self.plan(logical_plan, session).await?;
        if plan.is::<datafusion_distributed::DistributedExec>() {
            crate::metrics::metrics().cluster_queries.inc();
            // Stages report their progress under the query's id.
            let query = query_of(session);
            if !query.is_empty() {
                let (marked, stages) = mark_stages(plan, &query)?;
                stage_boards().open(&query, stages);
                plan = marked;
            }
            return Ok(Arc::new(super::faults::WorkerFaultsExec::new(
                plan,
                self.workers.clone(),
            )));
        }
        Ok(plan)
    }
}

impl ClusterPlanner {
    /// The plan of `logical_plan`: over the workers when the session's
    /// mode and the scans' splits say so, else on this node.
    async fn plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let local = DefaultPhysicalPlanner::default();
        let mode = mode_of(session);
        let workers = self.workers.live().len();
        if mode == Mode::Off || (workers == 0 && mode == Mode::Auto) {
            return local.create_physical_plan(logical_plan, session).await;
        }
        if workers == 0 {
            let why = match self.workers.get_urls() {
                Err(e) => e.to_string(),
                Ok(_) => "no worker of the cluster answers".into(),
            };
            return Err(unavailable(format!(
                "distributed = 'on', but {why}; or SET SESSION distributed = 'auto'"
            )));
        }
        let wrapped = wrap_scans(logical_plan, session, workers)?;
        let plan = local.create_physical_plan(&wrapped, session).await?;
        let splits = splits_of(&plan);
        if splits == 0 || (mode == Mode::Auto && splits < self.min_splits) {
            return Ok(plan);
        }
        PLANNED
            .scope(
                plan,
                self.distributed.create_physical_plan(&wrapped, session),
            )
            .await
    }
}

impl ClusterPlanner {
    /// `EXPLAIN` of a query that runs over the workers: its stages and
    /// tasks, and the workers they go to; `None` when it runs locally.
    async fn explain_distributed(
        &self,
        e: &datafusion::logical_expr::Explain,
        session: &dyn Session,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        use datafusion::logical_expr::{PlanType, StringifiedPlan};
        let inner = self.plan(&e.plan, session).await?;
        if !inner.is::<datafusion_distributed::DistributedExec>() {
            return Ok(None);
        }
        let text = format!(
            "{}\n{}",
            datafusion_distributed::display_plan_ascii(inner.as_ref(), false).trim_end(),
            self.routes_of(&inner)
        );
        let mut plans: Vec<StringifiedPlan> = e
            .stringified_plans
            .iter()
            .filter(|p| e.verbose || matches!(p.plan_type, PlanType::FinalLogicalPlan))
            .cloned()
            .collect();
        plans.push(StringifiedPlan::new(PlanType::FinalPhysicalPlan, text));
        Ok(Some(Arc::new(
            datafusion::physical_plan::explain::ExplainExec::new(
                Arc::clone(e.schema.inner()),
                plans,
                e.verbose,
            ),
        )))
    }
}

impl ClusterPlanner {
    /// Which worker each task of each stage of `plan` goes to, while the
    /// workers answering now still answer.
    fn routes_of(&self, plan: &Arc<dyn ExecutionPlan>) -> String {
        let mut stages = Vec::new();
        let _ = plan.apply(|node| {
            if let Some(boundary) = node.as_network_boundary()
                && let Stage::Local(stage) = boundary.input_stage()
            {
                stages.push((stage.num, stage.tasks, Arc::clone(&stage.plan)));
            }
            Ok(TreeNodeRecursion::Continue)
        });
        stages.sort_by_key(|s| s.0);
        stages.dedup_by_key(|s| s.0);
        let mut lines = vec![
            "tasks go to (while the workers answering now answer; a merge of one task runs on this coordinator):".to_string(),
        ];
        for (num, tasks, stage_plan) in stages {
            let routes = self.router.routes(num, tasks, &stage_plan);
            let each: Vec<String> = routes
                .iter()
                .enumerate()
                .map(|(i, u)| format!("task {i} → {u}"))
                .collect();
            lines.push(format!("  Stage {num}: {}", each.join(", ")));
        }
        lines.join("\n")
    }
}

/// `plan` with every scan of an entity table read through a [`ClusterTable`].
fn wrap_scans(plan: &LogicalPlan, session: &dyn Session, widen: usize) -> Result<LogicalPlan> {
    let defaults = &session.config().options().catalog;
    plan.clone()
        .transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(mut scan) = node else {
                return Ok(Transformed::no(node));
            };
            let provider = match source_as_provider(&scan.source) {
                Ok(p) if ClusterTable::can_wrap(&p) => p,
                _ => return Ok(Transformed::no(LogicalPlan::TableScan(scan))),
            };
            let table = scan
                .table_name
                .clone()
                .resolve(&defaults.default_catalog, &defaults.default_schema);
            scan.source = provider_as_source(Arc::new(ClusterTable::new(provider, table, widen)));
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })
        .map(|t| t.data)
}

/// The splits of every cluster scan in `plan`.
fn splits_of(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut n = 0;
    let _ = plan.apply(|p| {
        if let Some(s) = p.downcast_ref::<ClusterScanExec>() {
            n += s.request().splits;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    n
}

/// How many tasks a stage that reads a cluster scan wants: one per split
/// (the planner caps it at the workers).
pub fn desired_tasks(ev: DesiredTaskCountEvent) -> Option<Result<DesiredTaskCountEventResponse>> {
    let scan = ev.plan.downcast_ref::<ClusterScanExec>()?;
    Some(Ok(DesiredTaskCountEventResponse::desired(
        scan.request().splits.max(1),
    )))
}

/// A cluster scan shared by the tasks of its stage.
pub fn share_scan(ev: ScaleUpLeafNodeEvent) -> Option<Result<ScaleUpLeafNodeEventResponse>> {
    let scan = ev.plan.downcast_ref::<ClusterScanExec>()?;
    Some(Ok(ScaleUpLeafNodeEventResponse::new(Arc::new(
        scan.with_tasks(ev.task_count),
    ))))
}
