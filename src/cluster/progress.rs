//! Per-stage progress of distributed queries.
//!
//! The coordinator marks the top of every stage's plan with a
//! [`StageProgressExec`] naming the query and the stage. Wherever a task of
//! the stage runs (a worker, or the coordinator itself for a stage of one
//! task), the marker counts the rows that pass and the partitions that
//! finish into this process's [`TaskBoard`]. Coordinators collect the
//! board's entries for their queries with every status call they make to
//! the workers (every [`super::workers::REFRESH`]), into the query's
//! [`StageBoard`]; the query view (`system.runtime.queries.stages`) shows it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::ResolvedTableReference;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties, RecordBatchStream, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use datafusion_distributed::{BroadcastExec, DistributedTaskContext, NetworkBoundaryExt, Stage};
use futures::Stream;

use super::scan::ClusterScanExec;

/// The id of this process among the cluster's nodes (random at start).
pub fn node_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Which stage of whose query a marker counts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StageKey {
    /// The coordinator's [`node_id`].
    pub node: String,
    /// The tsql query id (as in `system.runtime.queries`).
    pub query: String,
    /// The stage's number in the distributed plan.
    pub stage: u32,
}

/// How far one task of a stage is.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskProgress {
    /// The tsql query id.
    #[prost(string, tag = "1")]
    pub query: String,
    /// The stage number.
    #[prost(uint32, tag = "2")]
    pub stage: u32,
    /// The task's index in the stage.
    #[prost(uint32, tag = "3")]
    pub task: u32,
    /// The task's partitions.
    #[prost(uint32, tag = "4")]
    pub partitions: u32,
    /// Partitions that finished.
    #[prost(uint32, tag = "5")]
    pub partitions_done: u32,
    /// Rows the task produced so far.
    #[prost(uint64, tag = "6")]
    pub rows: u64,
    /// Whether a partition failed.
    #[prost(bool, tag = "7")]
    pub failed: bool,
}

/// The counters of one task.
#[derive(Debug)]
struct TaskCounter {
    partitions: u32,
    done: AtomicU64,
    rows: AtomicU64,
    failed: AtomicBool,
    touched: Mutex<Instant>,
}

impl TaskCounter {
    fn touch(&self) {
        *self.touched.lock().expect("not poisoned") = Instant::now();
    }

    fn finished(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
            || self.done.load(Ordering::Relaxed) >= u64::from(self.partitions)
    }

    /// Whether the board still keeps it at `now`: running, or ended within [`KEEP_ENDED`].
    fn kept(&self, now: Instant) -> bool {
        !self.finished()
            || now.duration_since(*self.touched.lock().expect("not poisoned")) < KEEP_ENDED
    }
}

/// Tasks whose last partition ended this long ago are forgotten.
const KEEP_ENDED: Duration = Duration::from_secs(30);

/// At most this many tasks are tracked by one process.
const MAX_TASKS: usize = 20_000;

/// The tasks this process runs or ran lately, for every coordinator.
#[derive(Debug, Default)]
pub struct TaskBoard {
    tasks: Mutex<HashMap<(StageKey, u32), Arc<TaskCounter>>>,
}

/// This process's task board.
pub fn task_board() -> &'static TaskBoard {
    static BOARD: OnceLock<TaskBoard> = OnceLock::new();
    BOARD.get_or_init(TaskBoard::default)
}

impl TaskBoard {
    fn counter(&self, key: &StageKey, task: u32, partitions: u32) -> Arc<TaskCounter> {
        let mut tasks = self.tasks.lock().expect("not poisoned");
        if tasks.len() >= MAX_TASKS {
            let now = Instant::now();
            tasks.retain(|_, c| c.kept(now));
        }
        tasks
            .entry((key.clone(), task))
            .or_insert_with(|| {
                Arc::new(TaskCounter {
                    partitions: partitions.max(1),
                    done: AtomicU64::new(0),
                    rows: AtomicU64::new(0),
                    failed: AtomicBool::new(false),
                    touched: Mutex::new(Instant::now()),
                })
            })
            .clone()
    }

    /// The tasks of `node`'s queries; ended tasks reported long enough ago are dropped.
    pub fn of_node(&self, node: &str) -> Vec<TaskProgress> {
        let mut tasks = self.tasks.lock().expect("not poisoned");
        let now = Instant::now();
        tasks.retain(|_, c| c.kept(now));
        tasks
            .iter()
            .filter(|((k, _), _)| k.node == node)
            .map(|((k, task), c)| TaskProgress {
                query: k.query.clone(),
                stage: k.stage,
                task: *task,
                partitions: c.partitions,
                partitions_done: c.done.load(Ordering::Relaxed) as u32,
                rows: c.rows.load(Ordering::Relaxed),
                failed: c.failed.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// Passes its input through, counting rows and finished partitions of the
/// task it runs in for [`TaskBoard`]. Sits at the top of a stage's plan
/// (below a repartition or broadcast head, which workers put back).
#[derive(Debug)]
pub struct StageProgressExec {
    input: Arc<dyn ExecutionPlan>,
    key: StageKey,
}

impl StageProgressExec {
    /// Counts `input`'s output for `key`.
    pub fn new(input: Arc<dyn ExecutionPlan>, key: StageKey) -> Self {
        StageProgressExec { input, key }
    }

    /// What it counts for.
    pub fn key(&self) -> &StageKey {
        &self.key
    }
}

impl DisplayAs for StageProgressExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StageProgressExec: stage={}", self.key.stage)
    }
}

impl ExecutionPlan for StageProgressExec {
    fn name(&self) -> &str {
        "StageProgressExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.into_iter().next().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("StageProgressExec needs one child".into())
        })?;
        Ok(Arc::new(StageProgressExec::new(input, self.key.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let task = DistributedTaskContext::from_ctx(&context).task_index as u32;
        let partitions = self.input.output_partitioning().partition_count() as u32;
        let counter = task_board().counter(&self.key, task, partitions);
        let inner = self.input.execute(partition, context)?;
        Ok(Box::pin(Counted {
            inner,
            counter,
            ended: false,
        }))
    }
}

/// A partition's stream, counted.
struct Counted {
    inner: SendableRecordBatchStream,
    counter: Arc<TaskCounter>,
    ended: bool,
}

impl Stream for Counted {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(b))) => {
                self.counter
                    .rows
                    .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                self.counter.touch();
            }
            Poll::Ready(Some(Err(_))) => {
                self.counter.failed.store(true, Ordering::Relaxed);
                self.counter.touch();
            }
            Poll::Ready(None) if !self.ended => {
                self.ended = true;
                self.counter.done.fetch_add(1, Ordering::Relaxed);
                self.counter.touch();
            }
            _ => {}
        }
        next
    }
}

impl RecordBatchStream for Counted {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// One stage of a distributed query, as the coordinator planned it.
#[derive(Debug, Clone, PartialEq)]
pub struct StageInfo {
    /// The stage number.
    pub num: u32,
    /// Its tasks.
    pub tasks: u32,
    /// What it does: the table it scans, else its top operator.
    pub label: String,
}

/// The stages of one distributed query and how far their tasks are.
#[derive(Debug, Default)]
pub struct StageBoard {
    stages: Vec<StageInfo>,
    tasks: Mutex<HashMap<(u32, u32), TaskProgress>>,
    /// The worker of each task, by stage, once the stage started.
    routes: Mutex<HashMap<u32, Vec<String>>>,
}

impl StageBoard {
    /// The stages, as planned.
    pub fn stages(&self) -> &[StageInfo] {
        &self.stages
    }

    fn update(&self, p: TaskProgress) {
        self.tasks
            .lock()
            .expect("not poisoned")
            .insert((p.stage, p.task), p);
    }

    /// Records where the tasks of `stage` run (task i on `workers[i]`).
    pub fn route(&self, stage: u32, workers: Vec<String>) {
        self.routes
            .lock()
            .expect("not poisoned")
            .insert(stage, workers);
    }

    /// One line per stage: `stage N (label) on [workers]: done/tasks tasks
    /// done, running, R rows`.
    pub fn describe(&self) -> String {
        let tasks = self.tasks.lock().expect("not poisoned");
        let routes = self.routes.lock().expect("not poisoned");
        self.stages
            .iter()
            .map(|s| {
                let mine: Vec<&TaskProgress> =
                    tasks.values().filter(|t| t.stage == s.num).collect();
                let done = mine
                    .iter()
                    .filter(|t| t.partitions_done >= t.partitions)
                    .count();
                let failed = mine.iter().filter(|t| t.failed).count();
                let rows: u64 = mine.iter().map(|t| t.rows).sum();
                let started = mine.len();
                let on = routes
                    .get(&s.num)
                    .map(|w| format!(" on [{}]", w.join(", ")))
                    .unwrap_or_default();
                let mut line = format!(
                    "stage {} ({}){on}: {done}/{} tasks done, {} running, {rows} rows",
                    s.num,
                    s.label,
                    s.tasks,
                    started.saturating_sub(done + failed)
                );
                if failed > 0 {
                    line.push_str(&format!(", {failed} failed"));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// How many distributed queries' boards a coordinator keeps.
const KEEP_BOARDS: usize = 1000;

/// The stage boards of this coordinator's distributed queries, newest last.
#[derive(Debug, Default)]
pub struct StageBoards {
    boards: Mutex<VecDeque<(String, Arc<StageBoard>)>>,
}

/// This process's stage boards.
pub fn stage_boards() -> &'static StageBoards {
    static BOARDS: OnceLock<StageBoards> = OnceLock::new();
    BOARDS.get_or_init(StageBoards::default)
}

impl StageBoards {
    /// Starts the board of `query` with its `stages`.
    pub fn open(&self, query: &str, stages: Vec<StageInfo>) {
        let mut boards = self.boards.lock().expect("not poisoned");
        boards.retain(|(q, _)| q != query);
        if boards.len() >= KEEP_BOARDS {
            boards.pop_front();
        }
        boards.push_back((
            query.to_string(),
            Arc::new(StageBoard {
                stages,
                ..StageBoard::default()
            }),
        ));
    }

    /// The board of `query`, if it ran distributed lately.
    pub fn get(&self, query: &str) -> Option<Arc<StageBoard>> {
        let boards = self.boards.lock().expect("not poisoned");
        boards
            .iter()
            .rev()
            .find(|(q, _)| q == query)
            .map(|(_, b)| b.clone())
    }

    /// Records what a worker (or this process) reported.
    pub fn update(&self, reports: Vec<TaskProgress>) {
        for p in reports {
            if let Some(board) = self.get(&p.query) {
                board.update(p);
            }
        }
    }

    /// Takes in the counts of the tasks this process runs itself (workers'
    /// come with the status calls); once before reading the boards.
    pub fn update_local(&self) {
        self.update(task_board().of_node(node_id()));
    }

    /// The stages of `query` and their progress, as last updated.
    pub fn describe(&self, query: &str) -> Option<String> {
        Some(self.get(query)?.describe())
    }
}

/// `plan` (a distributed plan) with every stage marked for `query`, and
/// the stages found.
pub fn mark_stages(
    plan: Arc<dyn ExecutionPlan>,
    query: &str,
) -> Result<(Arc<dyn ExecutionPlan>, Vec<StageInfo>)> {
    let mut stages = Vec::new();
    let marked = plan.transform_down(|node| {
        let Some(boundary) = node.as_network_boundary() else {
            return Ok(Transformed::no(node));
        };
        let Stage::Local(stage) = boundary.input_stage() else {
            return Ok(Transformed::no(node));
        };
        if marker_of(&stage.plan).is_some() {
            return Ok(Transformed::no(node));
        }
        let key = StageKey {
            node: node_id().to_string(),
            query: query.to_string(),
            stage: stage.num as u32,
        };
        stages.push(StageInfo {
            num: stage.num as u32,
            tasks: stage.tasks as u32,
            label: label_of(&stage.plan),
        });
        let mut marked_stage = stage.clone();
        marked_stage.plan = mark(stage.plan.clone(), key)?;
        let replaced: Arc<dyn ExecutionPlan> =
            boundary.with_input_stage(Stage::Local(marked_stage))?;
        Ok(Transformed::yes(replaced))
    })?;
    stages.sort_by_key(|s| s.num);
    Ok((marked.data, stages))
}

/// The stage key a stage's plan is marked with (at its top or below its head).
pub fn marker_of(plan: &Arc<dyn ExecutionPlan>) -> Option<StageKey> {
    let top = if is_head(plan) {
        plan.children().first().map(|c| Arc::clone(c))?
    } else {
        Arc::clone(plan)
    };
    top.downcast_ref::<StageProgressExec>()
        .map(|m| m.key.clone())
}

fn is_head(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<RepartitionExec>() || plan.is::<BroadcastExec>()
}

/// The marker on top of `plan`, below its repartition or broadcast head.
fn mark(plan: Arc<dyn ExecutionPlan>, key: StageKey) -> Result<Arc<dyn ExecutionPlan>> {
    if is_head(&plan)
        && let Some(child) = plan.children().first().map(|c| Arc::clone(c))
    {
        let marked: Arc<dyn ExecutionPlan> = Arc::new(StageProgressExec::new(child, key));
        return plan.replace_children(
            vec![marked],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        );
    }
    Ok(Arc::new(StageProgressExec::new(plan, key)))
}

/// What a stage does, in a few words: the table it scans (its own, not a
/// later stage's), else its top operator below the head.
fn label_of(plan: &Arc<dyn ExecutionPlan>) -> String {
    if let Some(table) = table_read_by(plan) {
        return format!("scan {table}");
    }
    let top = if is_head(plan) {
        plan.children().first().map(|c| c.name().to_string())
    } else {
        None
    };
    top.unwrap_or_else(|| plan.name().to_string())
}

/// The table the stage `plan` scans itself (not through another stage), if any.
pub fn table_read_by(plan: &Arc<dyn ExecutionPlan>) -> Option<ResolvedTableReference> {
    let mut table = None;
    let _ = plan.apply(|p| {
        if p.is_network_boundary() {
            return Ok(TreeNodeRecursion::Jump);
        }
        if let Some(scan) = p.downcast_ref::<ClusterScanExec>() {
            table = Some(scan.request().table.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_sums_its_tasks_per_stage() {
        let board = StageBoard {
            stages: vec![
                StageInfo {
                    num: 1,
                    tasks: 2,
                    label: "scan a.b.c".into(),
                },
                StageInfo {
                    num: 2,
                    tasks: 1,
                    label: "AggregateExec".into(),
                },
            ],
            ..StageBoard::default()
        };
        let task = |stage, task, done, rows| TaskProgress {
            query: "q".into(),
            stage,
            task,
            partitions: 2,
            partitions_done: done,
            rows,
            failed: false,
        };
        board.update(task(1, 0, 2, 10));
        board.update(task(1, 1, 1, 5));
        assert_eq!(
            board.describe(),
            "stage 1 (scan a.b.c): 1/2 tasks done, 1 running, 15 rows; stage 2 (AggregateExec): 0/1 tasks done, 0 running, 0 rows"
        );
        board.update(task(1, 1, 2, 7));
        assert!(
            board
                .describe()
                .starts_with("stage 1 (scan a.b.c): 2/2 tasks done, 0 running, 17 rows")
        );
    }
}
