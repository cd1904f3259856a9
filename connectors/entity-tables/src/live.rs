//! Live sources: services that resolve revisions themselves (a Cyoda entity
//! service, …). Per query such a source streams the envelopes of a model as
//! they were at one instant, with pushed filters and a limit, and declares the
//! model's shape instead of having it inferred. The same layouts and the same
//! decoder as for stored revisions turn those envelopes into Arrow.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
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
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::decode::{RowMeta, TableDecoder};
use crate::envelope::read_envelope;
use crate::json::{Cursor, JsonError, Kind};
use crate::layout::{DeclaredTypes, ModelId, TableLayout, layout_model};
use crate::naming::NameAllocator;
use crate::predicate::{Field, Predicate, translate};
use crate::shape::ObjectShape;
use crate::table::{
    BATCH_ROWS, BatchSender, ScanOptions, bad_record, classify, producer_stream, query_start,
    selection_of,
};

/// A model as a live source declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveModel {
    /// The model.
    pub model: ModelId,
    /// Its fields (only their structure matters: types come from `declared`).
    pub shape: ObjectShape,
    /// Declared types by JSON path.
    pub declared: DeclaredTypes,
}

/// What one scan asks of a live source.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRead {
    /// The model read.
    pub model: ModelId,
    /// The instant read (UTC µs): `point_time`, else the query's start.
    pub at: i64,
    /// Only these entities, when set (an `entity_id = '…'` filter).
    pub entity_ids: Option<Vec<String>>,
    /// Entities must match this (the engine re-checks every row).
    pub filter: Option<Predicate>,
    /// At most this many rows are wanted.
    pub limit: Option<usize>,
    /// True when the table has one row per entity (root and `_json` tables),
    /// so a row limit is an entity limit.
    pub rows_are_entities: bool,
}

/// Pages of envelopes: each item is the text of one JSON array of entity
/// envelopes, or of envelopes one after another (NDJSON).
pub type EnvelopePages = BoxStream<'static, Result<bytes::Bytes>>;

/// A service that answers "the entities of this model at that instant",
/// as one identity. Its models and their tables come with it, in a [`LiveSchema`].
pub trait LiveSource: Send + Sync + fmt::Debug {
    /// Whether `predicate` can be sent upstream: it must select at least every
    /// entity SQL would.
    fn accepts(&self, predicate: &Predicate) -> bool;
    /// How many partitions read `read` in parallel.
    fn partitions(&self, read: &LiveRead, target: usize) -> usize;
    /// The envelopes partition `partition` of `partitions` reads.
    fn pages(
        self: Arc<Self>,
        read: Arc<LiveRead>,
        partition: usize,
        partitions: usize,
    ) -> EnvelopePages;
    /// What `pages` will ask the service, for `EXPLAIN`.
    fn describe(&self, read: &LiveRead) -> String;
}

/// The tables of a set of live models, named across the whole set.
pub fn live_tables(
    models: &[Arc<LiveModel>],
) -> BTreeMap<String, (Arc<LiveModel>, Arc<TableLayout>)> {
    let mut sorted: Vec<&Arc<LiveModel>> = models.iter().collect();
    sorted.sort_by(|a, b| a.model.cmp(&b.model));
    let mut names = NameAllocator::default();
    let mut out = BTreeMap::new();
    for m in sorted {
        for layout in layout_model(&m.model, &m.shape, &m.declared, &mut names) {
            out.insert(layout.name.clone(), (m.clone(), Arc::new(layout)));
        }
    }
    out
}

/// One schema of live tables, fixed for the query that loaded it.
#[derive(Debug)]
pub struct LiveSchema {
    source: Arc<dyn LiveSource>,
    tables: Arc<BTreeMap<String, (Arc<LiveModel>, Arc<TableLayout>)>>,
    options: ScanOptions,
}

impl LiveSchema {
    /// A schema of `tables` (from [`live_tables`]) read from `source`.
    pub fn new(
        source: Arc<dyn LiveSource>,
        tables: Arc<BTreeMap<String, (Arc<LiveModel>, Arc<TableLayout>)>>,
        options: ScanOptions,
    ) -> Self {
        LiveSchema {
            source,
            tables,
            options,
        }
    }
}

impl LiveSchema {
    /// Every table with its layout, by name.
    pub fn layouts(&self) -> Vec<(String, Arc<TableLayout>)> {
        self.tables
            .iter()
            .map(|(name, (_, layout))| (name.clone(), layout.clone()))
            .collect()
    }
}

#[async_trait]
impl SchemaProvider for LiveSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.tables.get(name).map(|(_, layout)| {
            Arc::new(LiveTable {
                source: self.source.clone(),
                model: self.tables[name].0.clone(),
                schema: layout.arrow_schema(),
                layout: layout.clone(),
                options: self.options.clone(),
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}

/// One entity table over a live source.
#[derive(Debug)]
pub struct LiveTable {
    source: Arc<dyn LiveSource>,
    model: Arc<LiveModel>,
    layout: Arc<TableLayout>,
    schema: SchemaRef,
    options: ScanOptions,
}

impl LiveTable {
    fn pushed(&self, filter: &Expr) -> Option<Predicate> {
        let polymorphic = &self.model.declared.polymorphic;
        translate(filter, &self.layout).filter(|p| {
            p.fields().iter().all(|f| match f {
                Field::Data { json_path, .. } => !polymorphic.contains(json_path),
                _ => true,
            }) && self.source.accepts(p)
        })
    }
}

#[async_trait]
impl TableProvider for LiveTable {
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
                Ok(if classify(f)?.is_some() {
                    TableProviderFilterPushDown::Exact
                } else if self.pushed(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
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
        let mut pushed = Vec::new();
        for f in filters {
            if classify(f)?.is_none() {
                pushed.extend(self.pushed(f));
            }
        }
        let filter = match pushed.len() {
            0 => None,
            1 => pushed.pop(),
            _ => Some(Predicate::All(pushed)),
        };
        let read = LiveRead {
            model: self.layout.model.clone(),
            at: sel.point_time.unwrap_or_else(|| query_start(state)),
            entity_ids: sel.entity_ids,
            filter,
            limit,
            rows_are_entities: self.layout.index_depth == 0,
        };
        let partitions = self
            .source
            .partitions(&read, state.config().target_partitions().max(1))
            .max(1);
        let projection = projection.cloned();
        let schema = match &projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(LiveScanExec {
            request: self.source.describe(&read),
            source: self.source.clone(),
            layout: self.layout.clone(),
            projection,
            schema,
            read: Arc::new(read),
            partitions,
            options: self.options.clone(),
            properties,
        }))
    }
}

/// Scans one live table: each partition decodes its pages of envelopes as they
/// arrive and streams batches; dropping the stream stops the reads.
#[derive(Debug)]
pub struct LiveScanExec {
    source: Arc<dyn LiveSource>,
    layout: Arc<TableLayout>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    read: Arc<LiveRead>,
    partitions: usize,
    request: String,
    options: ScanOptions,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for LiveScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LiveScanExec: table={}, model={}, partitions={}, request={}",
            self.layout.name, self.read.model, self.partitions, self.request
        )?;
        if let Some(l) = self.read.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for LiveScanExec {
    fn name(&self) -> &str {
        "LiveScanExec"
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
        let pages = self
            .source
            .clone()
            .pages(self.read.clone(), partition, self.partitions);
        let mut job = PageDecoder {
            decoder: TableDecoder::new(
                self.layout.clone(),
                self.projection.as_deref(),
                self.read.at,
            ),
            model: self.read.model.clone(),
            table: self.layout.name.clone(),
            options: self.options.clone(),
            limit: self.read.limit,
            produced: 0,
        };
        Ok(producer_stream(self.schema.clone(), move |tx| async move {
            job.run(pages, &tx).await
        }))
    }
}

struct PageDecoder {
    decoder: TableDecoder,
    model: ModelId,
    table: String,
    options: ScanOptions,
    limit: Option<usize>,
    produced: usize,
}

impl PageDecoder {
    fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.produced >= l)
    }

    async fn run(&mut self, mut pages: EnvelopePages, tx: &BatchSender) -> Result<()> {
        while let Some(page) = pages.next().await {
            let page = page?;
            let mut cursor = Cursor::new(&page);
            let model = self.model.clone();
            let malformed = |e: JsonError| {
                DataFusionError::Execution(format!(
                    "model {model}: the service answered with malformed JSON ({e}); the answer was not entity envelopes"
                ))
            };
            if cursor.at_end() {
                continue;
            }
            // A JSON array of envelopes, or envelopes one after another (NDJSON).
            let array = cursor.peek_kind().map_err(&malformed)? == Kind::Array;
            if array {
                cursor.begin_array().map_err(&malformed)?;
            }
            let mut first = true;
            loop {
                let more = if array {
                    cursor.next_element(first).map_err(&malformed)?
                } else {
                    !cursor.at_end()
                };
                if !more {
                    break;
                }
                first = false;
                cursor.skip_ws();
                let (s, e) = cursor.skip_value().map_err(&malformed)?;
                self.entity(&page[s..e])?;
                if self.decoder.rows() >= BATCH_ROWS
                    || self
                        .limit
                        .is_some_and(|l| self.produced + self.decoder.rows() >= l)
                {
                    self.flush(tx).await?;
                    if self.done() {
                        return Ok(());
                    }
                }
            }
        }
        if self.decoder.rows() > 0 {
            self.flush(tx).await?;
        }
        Ok(())
    }

    /// Decodes one envelope into rows.
    fn entity(&mut self, text: &[u8]) -> Result<()> {
        let env = read_envelope(text, None).map_err(|e| {
            DataFusionError::Execution(format!(
                "model {}: the service sent an entity that cannot be read: {e}: {}",
                self.model,
                snippet(text)
            ))
        })?;
        let (Some(id), Some((ds, de))) = (env.id.as_deref(), env.data) else {
            return Err(DataFusionError::Execution(format!(
                "model {}: the service sent an entity without meta.id or a data object: {}",
                self.model,
                snippet(text)
            )));
        };
        let meta = RowMeta {
            entity_id: id,
            creation: env.creation,
            last_update: env.last_update.or(env.creation),
            state: env.state.as_deref().unwrap_or(""),
        };
        if let Err(e) = self.decoder.decode(&text[ds..de], &meta) {
            let msg = format!(
                "model {}: entity {id} at {}: {}",
                self.model, e.json_path, e.message
            );
            bad_record(&self.options, &self.table, msg)?;
        }
        Ok(())
    }

    async fn flush(&mut self, tx: &BatchSender) -> Result<()> {
        let batch = self.decoder.finish()?;
        let n = batch.num_rows();
        if n > 0 && tx.send(Ok(batch)).await.is_err() {
            return Err(DataFusionError::Execution("query cancelled".into()));
        }
        self.produced += n;
        Ok(())
    }
}

/// The start of `text`, for messages.
fn snippet(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(&text[..text.len().min(200)]);
    if text.len() > 200 {
        format!("{s}…")
    } else {
        s.into_owned()
    }
}

/// The structure of documents that have a value at each of `paths`
/// (`$.a.b`, `$.lines[*].sku`, `$.tags[*]`, `$.m[*][*]`), in the order given:
/// what a model export declares, as a shape the layouts can be built from.
/// Leaves are recorded as scalars; their types come from the declared types.
pub fn shape_of_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> ObjectShape {
    #[derive(Default)]
    struct Node {
        leaf: bool,
        fields: Vec<(String, Node)>,
        elements: Option<Box<Node>>,
    }
    impl Node {
        fn insert(&mut self, steps: &[PathStep]) {
            let Some((step, rest)) = steps.split_first() else {
                self.leaf = true;
                return;
            };
            let next = match step {
                PathStep::Key(k) => {
                    let i = match self.fields.iter().position(|(name, _)| name == k) {
                        Some(i) => i,
                        None => {
                            self.fields.push((k.clone(), Node::default()));
                            self.fields.len() - 1
                        }
                    };
                    &mut self.fields[i].1
                }
                PathStep::Each => self.elements.get_or_insert_with(Default::default),
            };
            next.insert(rest);
        }
        /// One JSON value with this structure; a node that is several things
        /// at once keeps its structure (object, else array, else scalar).
        fn write(&self, out: &mut String) {
            if !self.fields.is_empty() {
                out.push('{');
                for (i, (k, v)) in self.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    crate::json::write_json_string(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            } else if let Some(e) = &self.elements {
                out.push('[');
                e.write(out);
                out.push(']');
            } else {
                out.push('0');
            }
        }
    }
    let mut root = Node::default();
    for p in paths {
        root.insert(&path_steps(p));
    }
    let mut text = String::new();
    if root.fields.is_empty() {
        text.push_str("{}");
    } else {
        root.write(&mut text);
    }
    let mut shape = ObjectShape::default();
    shape
        .observe(&mut Cursor::new(text.as_bytes()))
        .expect("the text written above is a JSON object");
    shape
}

#[derive(Debug, Clone, PartialEq)]
enum PathStep {
    Key(String),
    Each,
}

/// `$.a.b[*].c` as steps; `['odd key']` and `["odd key"]` are keys too.
fn path_steps(path: &str) -> Vec<PathStep> {
    let mut out = Vec::new();
    let rest = path.strip_prefix('$').unwrap_or(path);
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let end = rest[i + 1..]
                    .find(['.', '['])
                    .map_or(rest.len(), |j| i + 1 + j);
                if end > i + 1 {
                    out.push(PathStep::Key(rest[i + 1..end].to_string()));
                }
                i = end;
            }
            b'[' => {
                let end = rest[i..].find(']').map_or(rest.len(), |j| i + j);
                let inner = rest[i + 1..end].trim();
                if inner == "*" {
                    out.push(PathStep::Each);
                } else {
                    out.push(PathStep::Key(inner.trim_matches(['\'', '"']).to_string()));
                }
                i = end + 1;
            }
            _ => {
                let end = rest[i..].find(['.', '[']).map_or(rest.len(), |j| i + j);
                out.push(PathStep::Key(rest[i..end].to_string()));
                i = end;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Category;

    #[test]
    fn declared_paths_make_the_structure() {
        let shape = shape_of_paths([
            "$.id",
            "$.customer.name",
            "$.lines[*].sku",
            "$.lines[*].qty",
            "$.tags[*]",
            "$.m[*][*]",
            "$['odd key']",
        ]);
        let fields: Vec<_> = shape.fields().map(|(k, v)| (k, v.category())).collect();
        assert_eq!(
            fields,
            [
                ("id", Category::Scalar),
                ("customer", Category::Object),
                ("lines", Category::Array),
                ("tags", Category::Array),
                ("m", Category::Array),
                ("odd key", Category::Scalar),
            ]
        );
        let lines = shape.fields().nth(2).unwrap().1.array.as_ref().unwrap();
        assert_eq!(lines.elem.object.as_ref().unwrap().fields().count(), 2);
    }
}
