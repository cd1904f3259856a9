//! The DataFusion table of one entity table: exact pushdown of `entity_id = '…'`
//! and `point_time = TIMESTAMP '…'`, projection and limit pushdown, and a
//! streaming, partitioned scan that decodes payloads straight into batches.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

use crate::decode::{RowMeta, TableDecoder};
use crate::layout::TableLayout;
use crate::source::{BadRecordPolicy, BadRecords, ModelSnapshot};
use crate::temporal;

/// Rows per batch produced by a scan.
pub const BATCH_ROWS: usize = 8192;
/// The most payload bytes read at once from one part.
const MAX_SPAN_BYTES: u64 = 8 << 20;

/// Options shared by every table of a schema.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// What to do with a record that cannot be decoded.
    pub on_bad_record: BadRecordPolicy,
    /// Where skipped records are counted.
    pub bad_records: Arc<BadRecords>,
}

/// One entity table over a model snapshot.
#[derive(Debug)]
pub struct EntityTable {
    snapshot: Arc<ModelSnapshot>,
    layout: Arc<TableLayout>,
    schema: SchemaRef,
    options: ScanOptions,
}

impl EntityTable {
    /// The table `layout` over `snapshot`.
    pub fn new(
        snapshot: Arc<ModelSnapshot>,
        layout: Arc<TableLayout>,
        options: ScanOptions,
    ) -> Self {
        let schema = layout.arrow_schema();
        EntityTable {
            snapshot,
            layout,
            schema,
            options,
        }
    }
}

/// What the pushed-down filters select.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Selection {
    pub(crate) point_time: Option<i64>,
    pub(crate) entity_ids: Option<Vec<String>>,
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        Expr::Cast(c) => literal(&c.expr),
        Expr::TryCast(c) => literal(&c.expr),
        _ => None,
    }
}

/// Splits `a = b` into (column name, literal), in either order.
fn column_equals_literal(e: &Expr) -> Option<(&str, &ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = e
    else {
        return None;
    };
    match (
        column_name(left),
        literal(right),
        column_name(right),
        literal(left),
    ) {
        (Some(c), Some(v), _, _) | (_, _, Some(c), Some(v)) => Some((c, v)),
        _ => None,
    }
}

/// A literal instant as UTC microseconds; a value without a zone means UTC.
fn instant_micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampSecond(Some(x), _) => Some(x * 1_000_000),
        ScalarValue::TimestampMillisecond(Some(x), _) => Some(x * 1_000),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1_000)),
        ScalarValue::Date32(Some(d)) => Some(temporal::date_to_micros(*d)),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => {
            let s = s.trim().replace(' ', "T");
            temporal::parse_timestamp(&s)
                .map(|(v, _)| v)
                .or_else(|| temporal::parse_date(&s).map(temporal::date_to_micros))
        }
        _ => None,
    }
}

fn string_literal(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

fn mentions_point_time(e: &Expr) -> bool {
    e.column_refs().iter().any(|c| c.name == "point_time")
}

const POINT_TIME_HELP: &str = "point_time supports only equality with a timestamp literal, e.g. \
     WHERE point_time = TIMESTAMP '2024-06-01 12:00:00' (a literal without a zone means UTC); \
     leave it out to read the current state";

/// How a filter is pushed down: `Ok(Some(..))` exact, `Ok(None)` not at all, or
/// an error for predicates on `point_time` other than equality with a literal.
pub(crate) fn classify(e: &Expr) -> Result<Option<Selection>> {
    if let Some((col, v)) = column_equals_literal(e) {
        if col == "point_time" {
            return match instant_micros(v) {
                Some(t) => Ok(Some(Selection {
                    point_time: Some(t),
                    entity_ids: None,
                })),
                None => plan_err!("cannot read {v} as an instant: {POINT_TIME_HELP}"),
            };
        }
        if col == "entity_id" && !mentions_point_time(e) {
            if let Some(id) = string_literal(v) {
                return Ok(Some(Selection {
                    point_time: None,
                    entity_ids: Some(vec![id]),
                }));
            }
        }
    }
    if mentions_point_time(e) {
        return plan_err!("unsupported predicate `{e}`: {POINT_TIME_HELP}");
    }
    Ok(None)
}

pub(crate) fn selection_of(filters: &[Expr]) -> Result<Selection> {
    let mut sel = Selection::default();
    for f in filters {
        let Some(s) = classify(f)? else { continue };
        if let Some(t) = s.point_time {
            if sel.point_time.is_some_and(|old| old != t) {
                return plan_err!(
                    "two different point_time values in one table's filter: a table reads one instant"
                );
            }
            sel.point_time = Some(t);
        }
        if let Some(ids) = s.entity_ids {
            let merged = match sel.entity_ids.take() {
                None => ids,
                Some(old) => old.into_iter().filter(|i| ids.contains(i)).collect(),
            };
            sel.entity_ids = Some(merged);
        }
    }
    Ok(sel)
}

#[async_trait]
impl TableProvider for EntityTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        filters
            .iter()
            .map(|f| {
                Ok(match classify(f)? {
                    Some(_) => TableProviderFilterPushDown::Exact,
                    None => TableProviderFilterPushDown::Unsupported,
                })
            })
            .collect()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let sel = selection_of(filters)?;
        if let Some(first) = self.snapshot.unreadable.first() {
            let more = match self.snapshot.unreadable.len() {
                1 => String::new(),
                n => format!(
                    " ({} unreadable records in model {})",
                    n, self.snapshot.model
                ),
            };
            return Err(DataFusionError::Execution(format!(
                "{first}{more}. Fix the record, or run with --on-bad-record skip to leave bad records out"
            )));
        }
        let now = query_start(state);
        let revisions: Arc<Vec<u32>> = match &sel.entity_ids {
            Some(ids) => {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                Arc::new(self.snapshot.visible_for(&ids, sel.point_time))
            }
            None => self.snapshot.visible(sel.point_time),
        };
        let target = state.config().target_partitions().max(1);
        let partitions = split(&self.snapshot, &revisions, target);
        let projection = projection.cloned();
        let schema = match &projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(EntityScanExec {
            snapshot: self.snapshot.clone(),
            layout: self.layout.clone(),
            projection,
            schema,
            revisions,
            partitions,
            point_time: sel.point_time.unwrap_or(now),
            limit,
            options: self.options.clone(),
            properties,
        }))
    }
}

/// When the query started (UTC µs): the instant of the current state.
pub(crate) fn query_start(state: &dyn Session) -> i64 {
    state
        .execution_props()
        .query_execution_start_time
        .map(|t| t.timestamp_micros())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros())
}

/// A record of `table` that cannot be decoded: skipped and counted, or the
/// error that ends the scan, as the policy says.
pub(crate) fn bad_record(options: &ScanOptions, table: &str, msg: String) -> Result<()> {
    match options.on_bad_record {
        BadRecordPolicy::Skip => {
            options.bad_records.skip(|| msg);
            Ok(())
        }
        BadRecordPolicy::Fail => Err(DataFusionError::Execution(format!(
            "table {table}: {msg}. Fix the record, or run with --on-bad-record skip to leave such records out"
        ))),
    }
}

/// Splits the visible revisions into about `target` contiguous ranges of similar payload size.
fn split(snapshot: &ModelSnapshot, visible: &[u32], target: usize) -> Vec<(usize, usize)> {
    if visible.is_empty() {
        return Vec::new();
    }
    let bytes = |i: u32| {
        let l = snapshot.revisions[i as usize].location;
        l.end - l.start
    };
    let total: u64 = visible.iter().map(|&i| bytes(i)).sum();
    let per = (total / target as u64).max(1);
    let mut out = Vec::new();
    let (mut start, mut acc) = (0, 0);
    for (k, &i) in visible.iter().enumerate() {
        acc += bytes(i);
        if acc >= per && out.len() + 1 < target {
            out.push((start, k + 1));
            start = k + 1;
            acc = 0;
        }
    }
    if start < visible.len() {
        out.push((start, visible.len()));
    }
    out
}

/// Scans one entity table: each partition decodes a contiguous range of the
/// visible revisions on a blocking thread and streams batches as they fill.
#[derive(Debug)]
pub struct EntityScanExec {
    snapshot: Arc<ModelSnapshot>,
    layout: Arc<TableLayout>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    revisions: Arc<Vec<u32>>,
    partitions: Vec<(usize, usize)>,
    point_time: i64,
    limit: Option<usize>,
    options: ScanOptions,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for EntityScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "EntityScanExec: table={}, model={}, revisions={}, partitions={}",
            self.layout.name,
            self.snapshot.model,
            self.revisions.len(),
            self.partitions.len()
        )?;
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for EntityScanExec {
    fn name(&self) -> &str {
        "EntityScanExec"
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
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<arrow::array::RecordBatch>>(2);
        let range = self.partitions.get(partition).copied().unwrap_or((0, 0));
        let job = PartitionJob {
            snapshot: self.snapshot.clone(),
            revisions: self.revisions.clone(),
            range,
            decoder: TableDecoder::new(
                self.layout.clone(),
                self.projection.as_deref(),
                self.point_time,
            ),
            limit: self.limit,
            options: self.options.clone(),
            table: self.layout.name.clone(),
        };
        let task = tokio::task::spawn_blocking(move || job.run(&tx));
        Ok(task_stream(self.schema.clone(), rx, task))
    }
}

/// Where a producer task sends its batches.
pub type BatchSender = tokio::sync::mpsc::Sender<Result<arrow::array::RecordBatch>>;

/// Runs the future `produce` makes from a sender as a task, and streams
/// what it sends (two batches ahead, as [`task_stream`]): an error it
/// returns is the stream's last item, and when the consumer goes away the
/// task stops at its next await (dropping the reads it has in flight).
pub fn producer_stream<F, Fut>(schema: SchemaRef, produce: F) -> SendableRecordBatchStream
where
    F: FnOnce(BatchSender) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let work = produce(tx.clone());
    let task = tokio::spawn(async move {
        let closed = tx.clone();
        tokio::select! {
            result = work => {
                if let Err(e) = result {
                    let _ = tx.send(Err(e)).await;
                }
            }
            _ = closed.closed() => {}
        }
    });
    task_stream(schema, rx, task)
}

/// The batches a producer task sends on `rx`, as a stream that ends with an
/// error, not silently, when the task dies (a panic) before it finished: a
/// cut-short scan is never presented as complete.
pub fn task_stream(
    schema: SchemaRef,
    rx: tokio::sync::mpsc::Receiver<Result<arrow::array::RecordBatch>>,
    task: tokio::task::JoinHandle<()>,
) -> SendableRecordBatchStream {
    let stream = futures::stream::unfold((rx, Some(task)), |(mut rx, mut task)| async move {
        if let Some(b) = rx.recv().await {
            return Some((b, (rx, task)));
        }
        match task.take()?.await {
            Ok(()) => None,
            Err(e) => {
                let why = match e.try_into_panic() {
                    Ok(p) => p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into()),
                    Err(e) => e.to_string(),
                };
                Some((
                    Err(DataFusionError::Execution(format!(
                        "the scan stopped before its end ({why}); the result would be incomplete"
                    ))),
                    (rx, None),
                ))
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

struct PartitionJob {
    snapshot: Arc<ModelSnapshot>,
    revisions: Arc<Vec<u32>>,
    range: (usize, usize),
    decoder: TableDecoder,
    limit: Option<usize>,
    options: ScanOptions,
    table: String,
}

impl PartitionJob {
    fn run(mut self, tx: &tokio::sync::mpsc::Sender<Result<arrow::array::RecordBatch>>) {
        if let Err(e) = self.decode_all(tx) {
            let _ = tx.blocking_send(Err(e));
        }
    }

    fn decode_all(
        &mut self,
        tx: &tokio::sync::mpsc::Sender<Result<arrow::array::RecordBatch>>,
    ) -> Result<()> {
        let revisions = self.revisions.clone();
        let ids = &revisions[self.range.0..self.range.1];
        let mut produced = 0usize;
        let mut k = 0;
        while k < ids.len() {
            // One read covers consecutive payloads of the same part.
            let first = self.snapshot.revisions[ids[k] as usize].location;
            let mut end = k + 1;
            while end < ids.len() {
                let l = self.snapshot.revisions[ids[end] as usize].location;
                if l.part != first.part
                    || l.start < first.start
                    || l.end - first.start > MAX_SPAN_BYTES
                {
                    break;
                }
                end += 1;
            }
            let span_end = self.snapshot.revisions[ids[end - 1] as usize].location.end;
            let buf = self
                .snapshot
                .store
                .read(first.part, first.start, span_end)?;
            for &i in &ids[k..end] {
                let r = &self.snapshot.revisions[i as usize];
                let payload = &buf[(r.location.start - first.start) as usize
                    ..(r.location.end - first.start) as usize];
                let meta = RowMeta {
                    entity_id: &r.entity_id,
                    creation: r.creation,
                    last_update: Some(r.last_update),
                    state: &r.state,
                };
                if let Err(e) = self.decoder.decode(payload, &meta) {
                    let place = self.snapshot.store.describe(&r.location);
                    let msg = format!(
                        "{place}: entity {} at {}: {}{}",
                        r.entity_id,
                        e.json_path,
                        e.message,
                        e.offset
                            .map(|o| format!(" (byte {o} of the payload)"))
                            .unwrap_or_default()
                    );
                    bad_record(&self.options, &self.table, msg)?;
                }
                if self.decoder.rows() >= BATCH_ROWS
                    || self
                        .limit
                        .is_some_and(|l| produced + self.decoder.rows() >= l)
                {
                    produced += self.flush(tx)?;
                    if self.limit.is_some_and(|l| produced >= l) {
                        return Ok(());
                    }
                }
            }
            k = end;
        }
        if self.decoder.rows() > 0 {
            self.flush(tx)?;
        }
        Ok(())
    }

    /// Sends the current batch; fails quietly (the query was dropped) when nobody listens.
    fn flush(
        &mut self,
        tx: &tokio::sync::mpsc::Sender<Result<arrow::array::RecordBatch>>,
    ) -> Result<usize> {
        let batch = self.decoder.finish()?;
        let n = batch.num_rows();
        if n > 0 && tx.blocking_send(Ok(batch)).is_err() {
            return Err(DataFusionError::Execution("query cancelled".into()));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn point_time_needs_equality() {
        let eq = col("point_time").eq(lit(ScalarValue::TimestampNanosecond(Some(2_000), None)));
        assert_eq!(classify(&eq).unwrap().unwrap().point_time, Some(2));
        let gt = col("point_time").gt(lit(ScalarValue::TimestampNanosecond(Some(2_000), None)));
        assert!(
            classify(&gt)
                .unwrap_err()
                .to_string()
                .contains("only equality")
        );
    }

    #[test]
    fn entity_id_equality_is_exact() {
        let f = lit("abc").eq(col("entity_id"));
        assert_eq!(
            classify(&f).unwrap().unwrap().entity_ids,
            Some(vec!["abc".to_string()])
        );
        assert_eq!(classify(&col("state").eq(lit("x"))).unwrap(), None);
    }
}
