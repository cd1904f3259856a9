//! A Cassandra table as a DataFusion table: the scan reads token-range
//! splits (or the partitions a filter names) in parallel partitions, pages
//! through the driver and streams Arrow batches with back-pressure.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use scylla::value::CqlValue;
use tsql_entity_tables::table::{BatchSender, producer_stream};
use tsql_entity_tables::types::SQL_TYPE_KEY;
use tsql_entity_tables::upstream::record_upstream;

use crate::cluster::{Cluster, TableInfo, classify, quote};
use crate::pushdown::{Pushdown, show};
use crate::ring::{Split, TokenRange, estimated_bytes, splits};
use crate::routing::ReplicasFirst;
use crate::rows::{RawRow, Read, bytes_column};
use crate::values::to_array;

/// Rows per Arrow batch.
const BATCH_ROWS: usize = 8192;

/// One table of a keyspace.
#[derive(Debug)]
pub struct CassandraTable {
    cluster: Arc<Cluster>,
    info: Arc<TableInfo>,
    schema: SchemaRef,
}

impl CassandraTable {
    /// The table `info` read through `cluster`.
    pub fn new(cluster: Arc<Cluster>, info: Arc<TableInfo>) -> Self {
        let fields: Vec<Field> = info
            .columns
            .iter()
            .map(|c| {
                let field = Field::new(&c.name, cluster.arrow_type(c), true);
                match &c.cql {
                    Ok(_) => field,
                    // Listed by its class (`information_schema`, `DESCRIBE`);
                    // selecting it fails with the reason.
                    Err(_) => field.with_metadata(
                        [(
                            SQL_TYPE_KEY.to_string(),
                            format!("UNSUPPORTED({})", c.type_text.trim_matches('\'')),
                        )]
                        .into(),
                    ),
                }
            })
            .collect();
        CassandraTable {
            cluster,
            info,
            schema: Arc::new(Schema::new(fields)),
        }
    }
}

#[async_trait]
impl TableProvider for CassandraTable {
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
        let plan = Pushdown::plan(&self.info, filters, self.cluster.options().allow_filtering);
        Ok(plan
            .used
            .iter()
            .map(|u| {
                if *u {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let refs: Vec<&Expr> = filters.iter().collect();
        let pushdown = Pushdown::plan(&self.info, &refs, self.cluster.options().allow_filtering);
        if pushdown.used.iter().any(|u| !u) {
            return Err(DataFusionError::Internal(
                "a filter Cassandra does not apply reached the scan".into(),
            ));
        }
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.info.columns.len()).collect(),
        };
        for c in &columns {
            let col = &self.info.columns[*c];
            if let Err(why) = &col.cql {
                return Err(DataFusionError::Plan(format!(
                    "column {} of {}.{} has the CQL type {} that tsql cannot read ({why}); leave it out of the query",
                    col.name, self.info.keyspace, self.info.name, col.type_text
                )));
            }
        }
        let schema = Arc::new(self.schema.project(&columns)?);
        // A count needs no values: read the first key column and count rows.
        let selected: Vec<usize> = if columns.is_empty() {
            vec![self.info.partition_key().first().copied().unwrap_or(0)]
        } else {
            columns.clone()
        };
        let select = selected
            .iter()
            .map(|c| quote(&self.info.columns[*c].name))
            .collect::<Vec<_>>()
            .join(", ");
        let (mut conditions, values) = pushdown.conditions(&self.info);
        let suffix = {
            let mut s = String::new();
            if let Some(l) = limit {
                s.push_str(&format!(" LIMIT {l}"));
            }
            if pushdown.allow_filtering {
                s.push_str(" ALLOW FILTERING");
            }
            s
        };
        let target = state.config().target_partitions().max(1);
        let reads = match pushdown.partition_keys() {
            Some(keys) => {
                let mut key_conditions: Vec<String> = self
                    .info
                    .partition_key()
                    .iter()
                    .map(|c| format!("{} = ?", quote(&self.info.columns[*c].name)))
                    .collect();
                key_conditions.append(&mut conditions);
                let cql = format!(
                    "SELECT {select} FROM {} WHERE {}{suffix}",
                    self.info.cql_name(),
                    key_conditions.join(" AND ")
                );
                Reads::Partitions { cql, keys }
            }
            None => {
                let session = self.cluster.session().await?;
                let wanted =
                    match estimated_bytes(&self.cluster, &self.info.keyspace, &self.info.name)
                        .await
                        .map_err(|e| self.cluster.named(e))?
                    {
                        Some(bytes) => (bytes.div_ceil(self.cluster.options().split_bytes)
                            as usize)
                            .clamp(target, 4096),
                        None => target,
                    };
                let splits = splits(&session, &self.info.keyspace, &self.info.name, wanted);
                let token = self.info.token_expr();
                Reads::Ranges {
                    select: format!("SELECT {select} FROM {}", self.info.cql_name()),
                    token,
                    conditions,
                    suffix,
                    splits,
                }
            }
        };
        let partitions = reads.len().clamp(1, target);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(CassandraScanExec {
            cluster: self.cluster.clone(),
            info: self.info.clone(),
            selected,
            schema,
            values,
            reads: Arc::new(reads),
            limit,
            partitions,
            properties,
        }))
    }
}

/// What a scan reads.
#[derive(Debug)]
enum Reads {
    /// Named partitions: one query per key.
    Partitions {
        cql: String,
        keys: Vec<Vec<CqlValue>>,
    },
    /// Token-range splits.
    Ranges {
        select: String,
        token: String,
        conditions: Vec<String>,
        suffix: String,
        splits: Vec<Split>,
    },
}

impl Reads {
    fn len(&self) -> usize {
        match self {
            Reads::Partitions { keys, .. } => keys.len(),
            Reads::Ranges { splits, .. } => splits.len(),
        }
    }

    /// The CQL of one token range, and its token values.
    fn range_cql(&self, range: &TokenRange) -> (String, Vec<CqlValue>) {
        let Reads::Ranges {
            select,
            token,
            conditions,
            suffix,
            ..
        } = self
        else {
            unreachable!("only range reads have ranges")
        };
        let (mut wh, values) = range.conditions(token);
        wh.extend(conditions.iter().cloned());
        let cql = if wh.is_empty() {
            format!("{select}{suffix}")
        } else {
            format!("{select} WHERE {}{suffix}", wh.join(" AND "))
        };
        (cql, values)
    }
}

/// Reads a Cassandra table: partition `p` of `P` reads every `P`-th split
/// (or named partition), one after another, page by page.
#[derive(Debug)]
pub struct CassandraScanExec {
    cluster: Arc<Cluster>,
    info: Arc<TableInfo>,
    selected: Vec<usize>,
    schema: SchemaRef,
    values: Vec<CqlValue>,
    reads: Arc<Reads>,
    limit: Option<usize>,
    partitions: usize,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for CassandraScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "CassandraScanExec: table={}.{}, ",
            self.info.keyspace, self.info.name
        )?;
        match self.reads.as_ref() {
            Reads::Partitions { cql, keys } => {
                let shown: Vec<String> = keys
                    .iter()
                    .take(8)
                    .map(|k| format!("({})", k.iter().map(show).collect::<Vec<_>>().join(", ")))
                    .collect();
                write!(
                    f,
                    "cql={cql}, partition_reads={} [{}{}]",
                    keys.len(),
                    shown.join(", "),
                    if keys.len() > 8 { ", …" } else { "" }
                )?;
            }
            Reads::Ranges { splits, .. } => {
                let (cql, _) = self.reads.range_cql(&TokenRange {
                    start: Some(0),
                    end: Some(0),
                });
                let ranges: usize = splits.iter().map(|s| s.ranges.len()).sum();
                write!(f, "cql={cql}, ranges={ranges}, splits={}", splits.len())?;
            }
        }
        if !self.values.is_empty() {
            write!(
                f,
                ", values=[{}]",
                self.values.iter().map(show).collect::<Vec<_>>().join(", ")
            )?;
        }
        write!(f, ", partitions={}", self.partitions)?;
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for CassandraScanExec {
    fn name(&self) -> &str {
        "CassandraScanExec"
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
        let (me, of) = (partition, self.partitions);
        Ok(producer_stream(self.schema.clone(), |tx| {
            let mut job = RangeReader {
                cluster: self.cluster.clone(),
                info: self.info.clone(),
                selected: self.selected.clone(),
                schema: self.schema.clone(),
                values: self.values.clone(),
                reads: self.reads.clone(),
                limit: self.limit,
                produced: 0,
                rows: Vec::with_capacity(BATCH_ROWS),
                tx,
            };
            async move { job.run(me, of).await }
        }))
    }
}

struct RangeReader {
    cluster: Arc<Cluster>,
    info: Arc<TableInfo>,
    selected: Vec<usize>,
    schema: SchemaRef,
    values: Vec<CqlValue>,
    reads: Arc<Reads>,
    limit: Option<usize>,
    produced: usize,
    rows: Vec<RawRow>,
    tx: BatchSender,
}

impl RangeReader {
    async fn run(&mut self, me: usize, of: usize) -> Result<()> {
        let reads = self.reads.clone();
        match reads.as_ref() {
            Reads::Partitions { cql, keys } => {
                for key in keys.iter().skip(me).step_by(of) {
                    let mut values = key.clone();
                    values.extend(self.values.iter().cloned());
                    if !self.read(cql, values, None).await? {
                        break;
                    }
                }
            }
            Reads::Ranges { splits, .. } => {
                'splits: for split in splits.iter().skip(me).step_by(of) {
                    for range in &split.ranges {
                        let (cql, mut values) = reads.range_cql(range);
                        values.extend(self.values.iter().cloned());
                        if !self.read(&cql, values, Some(split)).await? {
                            break 'splits;
                        }
                    }
                }
            }
        }
        self.flush().await
    }

    /// Reads one query's pages; false when the limit is reached.
    async fn read(
        &mut self,
        cql: &str,
        values: Vec<CqlValue>,
        split: Option<&Split>,
    ) -> Result<bool> {
        let started = Instant::now();
        let what = format!("reading {}.{}", self.info.keyspace, self.info.name);
        let outcome: Result<bool> = async {
            let mut statement = self.cluster.prepare(cql).await?;
            if let Some(split) = split.filter(|s| !s.replicas.is_empty()) {
                statement
                    .set_load_balancing_policy(Some(ReplicasFirst::new(split.replicas.clone())));
            }
            let mut pages = self.cluster.pages_of(statement, values, &what).await?;
            while let Some(page) = pages.next_page().await.map_err(|e| self.cluster.named(e))? {
                for row in page.rows::<RawRow>().map_err(|e| classify(&e, &what))? {
                    self.rows.push(row.map_err(|e| classify(&e, &what))?);
                    if self.rows.len() >= BATCH_ROWS
                        || self
                            .limit
                            .is_some_and(|l| self.produced + self.rows.len() >= l)
                    {
                        self.flush().await?;
                        if self.limit.is_some_and(|l| self.produced >= l) {
                            return Ok(false);
                        }
                    }
                }
            }
            Ok(true)
        }
        .await;
        record_upstream(
            "cassandra",
            started.elapsed().as_secs_f64(),
            outcome
                .as_ref()
                .err()
                .and_then(|e| tsql_entity_tables::UpstreamError::find(e).map(|u| u.kind)),
        );
        outcome
    }

    async fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let n = rows.len();
        let batch = if self.schema.fields().is_empty() {
            RecordBatch::try_new_with_options(
                self.schema.clone(),
                vec![],
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?
        } else {
            let mut arrays = Vec::with_capacity(self.selected.len());
            for (i, c) in self.selected.iter().enumerate() {
                let col = &self.info.columns[*c];
                let cql = col.cql.as_ref().expect("checked at planning");
                let array = match bytes_column(&rows, i, cql) {
                    Some(array) => array,
                    None => {
                        let values: Vec<Option<&CqlValue>> = rows
                            .iter()
                            .map(|r| match r.get(i) {
                                Read::Value(v) => Some(v),
                                _ => None,
                            })
                            .collect();
                        to_array(
                            &values,
                            cql,
                            self.schema.field(i).data_type(),
                            self.cluster.options().wide_numbers,
                        )
                    }
                }
                .map_err(|e| {
                    DataFusionError::Execution(format!(
                        "{}.{} column {}: {}",
                        self.info.keyspace, self.info.name, col.name, e.0
                    ))
                })?;
                arrays.push(array);
            }
            RecordBatch::try_new(self.schema.clone(), arrays)?
        };
        self.rows = rows;
        self.rows.clear();
        self.produced += n;
        if self.tx.send(Ok(batch)).await.is_err() {
            return Err(DataFusionError::Execution("query cancelled".into()));
        }
        Ok(())
    }
}
