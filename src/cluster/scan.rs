//! Scans that can travel: a [`ClusterScanExec`] wraps a source's own scan
//! with what it was asked (table, columns, filters, limit, instant, split
//! count), so a worker can plan the very same scan as the caller and run
//! its share of the splits. Identity never travels in the plan: the worker
//! resolves the table in the caller's own catalogs (see [`WorkerTables`]).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ResolvedTableReference, TableReference};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SessionState, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use datafusion::prelude::SessionContext;
use datafusion_distributed::DistributedTaskContext;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

/// A source's table, planned so that its scan can run on workers.
#[derive(Debug)]
pub struct ClusterTable {
    inner: Arc<dyn TableProvider>,
    table: ResolvedTableReference,
    /// Splits the scan asks for: this many times the node's partitions.
    widen: usize,
}

impl ClusterTable {
    /// `inner`, known as `table`, with scans split `widen` times finer than
    /// one node would (so every worker gets splits of its own).
    pub fn new(inner: Arc<dyn TableProvider>, table: ResolvedTableReference, widen: usize) -> Self {
        ClusterTable {
            inner,
            table,
            widen: widen.max(1),
        }
    }

    /// Whether scans of `provider` can run on workers: the entity tables of
    /// local files, Cyoda services and Cassandra, whose scans every node
    /// can plan again from the same request.
    pub fn can_wrap(provider: &Arc<dyn TableProvider>) -> bool {
        let any: &dyn Any = provider.as_ref();
        any.is::<tsql_entity_tables::EntityTable>()
            || any.is::<tsql_entity_tables::live::LiveTable>()
            || any.is::<tsql_cassandra::scan::CassandraTable>()
    }
}

#[async_trait]
impl TableProvider for ClusterTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return self.inner.scan(state, projection, filters, limit).await;
        };
        let mut state = state.clone();
        let target = state.config().target_partitions() * self.widen;
        state.config_mut().options_mut().execution.target_partitions = target;
        let start = state
            .execution_props()
            .query_execution_start_time
            .unwrap_or_else(chrono::Utc::now);
        state.execution_props_mut().query_execution_start_time = Some(start);
        let inner = self.inner.scan(&state, projection, filters, limit).await?;
        Ok(Arc::new(ClusterScanExec::new(
            ScanRequest {
                table: self.table.clone(),
                projection: projection.cloned(),
                filters: filters.to_vec(),
                limit,
                start_micros: start.timestamp_micros(),
                target_partitions: target,
                splits: inner.output_partitioning().partition_count(),
                schema: inner.schema(),
            },
            Some(inner),
            1,
        )))
    }
}

/// What a scan was asked: enough for any node to plan it again.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// The table, fully qualified.
    pub table: ResolvedTableReference,
    /// Columns read, by index; all when `None`.
    pub projection: Option<Vec<usize>>,
    /// Filters handed to the source.
    pub filters: Vec<Expr>,
    /// Rows wanted at most.
    pub limit: Option<usize>,
    /// The query's start (UTC µs): the instant read unless `point_time` says otherwise.
    pub start_micros: i64,
    /// The partitions the scan was planned for.
    pub target_partitions: usize,
    /// The splits (partitions) the source made.
    pub splits: usize,
    /// The scan's output schema.
    pub schema: SchemaRef,
}

/// The caller's catalogs on a worker: where a [`ClusterScanExec`] that
/// arrived in a plan fragment finds its table again.
pub struct WorkerTables(pub SessionContext);

impl fmt::Debug for WorkerTables {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WorkerTables({})", self.0.session_id())
    }
}

/// A source's scan, split into `splits` partitions, of which each of
/// `tasks` tasks runs every `tasks`-th one.
#[derive(Debug)]
pub struct ClusterScanExec {
    request: Arc<ScanRequest>,
    /// The source's own scan: planned here, or on first use on a worker.
    inner: Arc<OnceCell<Arc<dyn ExecutionPlan>>>,
    tasks: usize,
    properties: Arc<PlanProperties>,
}

impl ClusterScanExec {
    /// A scan of `request` over `tasks` tasks; `inner` is the source's
    /// scan when it is already planned (on the coordinator).
    pub fn new(request: ScanRequest, inner: Option<Arc<dyn ExecutionPlan>>, tasks: usize) -> Self {
        let tasks = tasks.max(1);
        let per_task = request.splits.max(1).div_ceil(tasks);
        let properties = match &inner {
            Some(p) => p
                .properties()
                .as_ref()
                .clone()
                .with_partitioning(Partitioning::UnknownPartitioning(per_task)),
            None => PlanProperties::new(
                datafusion::physical_expr::EquivalenceProperties::new(request.schema.clone()),
                Partitioning::UnknownPartitioning(per_task),
                datafusion::physical_plan::execution_plan::EmissionType::Incremental,
                datafusion::physical_plan::execution_plan::Boundedness::Bounded,
            ),
        };
        let cell = match inner {
            Some(p) => OnceCell::new_with(Some(p)),
            None => OnceCell::new(),
        };
        ClusterScanExec {
            request: Arc::new(request),
            inner: Arc::new(cell),
            tasks,
            properties: Arc::new(properties),
        }
    }

    /// What the scan was asked.
    pub fn request(&self) -> &ScanRequest {
        &self.request
    }

    /// The tasks the splits are shared by.
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// The same scan shared by `tasks` tasks.
    pub fn with_tasks(&self, tasks: usize) -> ClusterScanExec {
        ClusterScanExec::new(
            self.request.as_ref().clone(),
            self.inner.get().cloned(),
            tasks,
        )
    }
}

impl DisplayAs for ClusterScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ClusterScanExec: table={}, splits={}, tasks={}",
            self.request.table, self.request.splits, self.tasks
        )?;
        if let Some(inner) = self.inner.get() {
            write!(f, ", scan=")?;
            inner.fmt_as(t, f)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ClusterScanExec {
    fn name(&self) -> &str {
        "ClusterScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let task = DistributedTaskContext::from_ctx(&context);
        let (index, count) = if task.task_count == self.tasks {
            (task.task_index, task.task_count)
        } else {
            (0, 1)
        };
        let split = partition * count + index;
        let schema = self.request.schema.clone();
        if split >= self.request.splits {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        }
        let cell = self.inner.clone();
        let request = self.request.clone();
        let stream = futures::stream::once(async move {
            let inner = cell
                .get_or_try_init(|| plan_again(request, context.clone()))
                .await?;
            inner.execute(split, context)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.boxed(),
        )))
    }
}

/// Plans `request` on this node as its caller: the same table from the
/// caller's catalogs, the same columns, filters, limit, instant and splits.
async fn plan_again(
    request: Arc<ScanRequest>,
    context: Arc<TaskContext>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(tables) = context.session_config().get_extension::<WorkerTables>() else {
        return Err(DataFusionError::Internal(
            "a cluster scan reached a node without the caller's catalogs".into(),
        ));
    };
    let reference = TableReference::full(
        request.table.catalog.clone(),
        request.table.schema.clone(),
        request.table.table.clone(),
    );
    let provider = tables.0.table_provider(reference).await?;
    let mut state = tables.0.state();
    state.config_mut().options_mut().execution.target_partitions = request.target_partitions;
    state.execution_props_mut().query_execution_start_time =
        chrono::DateTime::from_timestamp_micros(request.start_micros);
    let plan = provider
        .scan(
            &state,
            request.projection.as_ref(),
            &request.filters,
            request.limit,
        )
        .await?;
    let splits = plan.output_partitioning().partition_count();
    if splits != request.splits || plan.schema().fields() != request.schema.fields() {
        return Err(DataFusionError::Execution(format!(
            "table {} changed while the query ran (the coordinator planned {} splits, this worker {}, or its columns differ): run the query again",
            request.table, request.splits, splits
        )));
    }
    Ok(plan)
}
