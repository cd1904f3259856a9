//! Entity tables from a Cassandra table whose rows are entity revisions
//! (model, version, id, revision time, state, JSON document, deletion
//! marker). The models and their shapes are inferred from the documents
//! (cached for `shape_ttl`); a scan resolves, per entity, the newest
//! revision not later than the instant read, leaves deleted entities out,
//! and hands envelopes to the same decoder as every other entity source.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use datafusion::common::{DataFusionError, Result};
use futures::StreamExt;
use scylla::value::{CqlValue, Row};
use tsql_entity_tables::json::{Cursor, write_json_string};
use tsql_entity_tables::{
    DeclaredTypes, EnvelopePages, LiveModel, LiveRead, LiveSource, ModelId, ObjectShape, Predicate,
    UpstreamError, UpstreamErrorKind,
};

use crate::cluster::{Cluster, ColumnKind, TableInfo, classify, quote};
use crate::options::EntityTableOptions;
use crate::ring::splits;

/// Bytes of envelopes per page handed to the decoder.
const PAGE_BYTES: usize = 1 << 20;

/// One configured revisions table.
pub struct RevisionTable {
    cluster: Arc<Cluster>,
    options: EntityTableOptions,
    shapes: tokio::sync::Mutex<Option<(Instant, Arc<Vec<Arc<LiveModel>>>)>>,
    problems: Mutex<Vec<String>>,
}

impl fmt::Debug for RevisionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RevisionTable({}.{})",
            self.options.keyspace, self.options.table
        )
    }
}

/// The table's columns that hold each part of a revision.
struct Columns {
    info: Arc<TableInfo>,
    /// Indexes into `info.columns` of the model and version columns.
    model: usize,
    version: usize,
    /// Whether all revisions of an entity share one partition that holds only that entity.
    id_in_partition_key: bool,
}

impl RevisionTable {
    /// The revisions table `options` describes, read through `cluster`.
    pub fn new(cluster: Arc<Cluster>, options: EntityTableOptions) -> Self {
        RevisionTable {
            cluster,
            options,
            shapes: tokio::sync::Mutex::new(None),
            problems: Mutex::new(Vec::new()),
        }
    }

    /// How the table is configured.
    pub fn options(&self) -> &EntityTableOptions {
        &self.options
    }

    async fn columns(&self) -> Result<Columns, UpstreamError> {
        let o = &self.options;
        let tables = self.cluster.tables(&o.keyspace).await?;
        let Some(info) = tables.get(&o.table).cloned() else {
            return Err(UpstreamError::new(
                UpstreamErrorKind::NotFound,
                format!(
                    "the entity table {}.{} does not exist in Cassandra; check `table` of the [[source.entity_table]]",
                    o.keyspace, o.table
                ),
            ));
        };
        let find =
            |role: &str, name: &str| {
                info.column(name).ok_or_else(|| {
                UpstreamError::new(
                    UpstreamErrorKind::NotFound,
                    format!(
                        "{}.{} has no column '{name}' (configured as `{role}`); its columns: {}",
                        o.keyspace,
                        o.table,
                        info.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })
            };
        let model = find("model", &o.model)?;
        let version = find("version", &o.version)?;
        let id = find("id", &o.id)?;
        let pk = info.partition_key();
        if pk.iter().any(|c| ![model, version, id].contains(c)) {
            return Err(UpstreamError::new(
                UpstreamErrorKind::BadAnswer,
                format!(
                    "{}.{}: the partition key may only hold the model, version and id columns, so that every revision of an entity is in one partition; it is ({})",
                    o.keyspace,
                    o.table,
                    pk.iter()
                        .map(|c| info.columns[*c].name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        find("updated", &o.updated)?;
        find("state", &o.state)?;
        find("document", &o.document)?;
        o.created
            .as_deref()
            .map(|c| find("created", c))
            .transpose()?;
        o.deleted
            .as_deref()
            .map(|c| find("deleted", c))
            .transpose()?;
        Ok(Columns {
            model,
            version,
            id_in_partition_key: pk.contains(&id),
            info,
        })
    }

    /// The models in the table, with shapes inferred from every document
    /// (read again after `shape_ttl`).
    pub async fn models(&self) -> Result<Arc<Vec<Arc<LiveModel>>>, UpstreamError> {
        let mut slot = self.shapes.lock().await;
        if let Some((at, models)) = slot.as_ref()
            && at.elapsed() < self.options.shape_ttl
        {
            return Ok(models.clone());
        }
        let cols = self.columns().await?;
        let cql = format!(
            "SELECT {}, {}, {} FROM {}",
            quote(&self.options.model),
            quote(&self.options.version),
            quote(&self.options.document),
            cols.info.cql_name()
        );
        let what = format!("reading {}.{}", self.options.keyspace, self.options.table);
        let mut pages = self.cluster.pages(&cql, Vec::new(), &what).await?;
        let mut shapes: HashMap<ModelId, ObjectShape> = HashMap::new();
        let mut problems = Vec::new();
        while let Some(page) = pages.next_page().await? {
            for row in page.rows::<Row>().map_err(|e| classify(&e, &what))? {
                let row = row.map_err(|e| classify(&e, &what))?;
                let (Some(model), Some(doc)) = (
                    model_of(row.columns[0].as_ref(), row.columns[1].as_ref()),
                    text_of(row.columns[2].as_ref()),
                ) else {
                    continue;
                };
                let shape = shapes.entry(model.clone()).or_default();
                if let Err(e) = shape.observe(&mut Cursor::new(doc.as_bytes())) {
                    if problems.len() < 10 {
                        problems.push(format!(
                            "model {model}: a document is not a JSON object: {e}"
                        ));
                    }
                }
            }
        }
        *self.problems.lock().expect("not poisoned") = problems;
        let mut models: Vec<Arc<LiveModel>> = shapes
            .into_iter()
            .map(|(model, shape)| {
                Arc::new(LiveModel {
                    model,
                    shape,
                    declared: DeclaredTypes::new(),
                })
            })
            .collect();
        models.sort_by(|a, b| a.model.cmp(&b.model));
        let models = Arc::new(models);
        *slot = Some((Instant::now(), models.clone()));
        Ok(models)
    }
}

/// A revisions table read as a live source of envelopes.
#[derive(Debug)]
pub struct RevisionReader {
    table: Arc<RevisionTable>,
}

impl RevisionReader {
    /// A reader of `table`.
    pub fn new(table: Arc<RevisionTable>) -> Self {
        RevisionReader { table }
    }
}

impl LiveSource for RevisionReader {
    fn accepts(&self, _predicate: &Predicate) -> bool {
        false
    }

    fn partitions(&self, read: &LiveRead, target: usize) -> usize {
        match &read.entity_ids {
            Some(ids) => ids.len().clamp(1, target),
            None => target,
        }
    }

    fn pages(
        self: Arc<Self>,
        read: Arc<LiveRead>,
        partition: usize,
        partitions: usize,
    ) -> EnvelopePages {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(2);
        let table = self.table.clone();
        tokio::spawn(async move {
            let mut job = Resolver {
                read: read.clone(),
                page: Vec::with_capacity(PAGE_BYTES + 4096),
                tx: tx.clone(),
                pending: HashMap::new(),
            };
            if let Err(e) = job.run(&table, partition, partitions).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
            .boxed()
    }

    fn describe(&self, read: &LiveRead) -> String {
        let o = self.table.options();
        match &read.entity_ids {
            Some(ids) => format!(
                "revisions of {} entities of {}.{}",
                ids.len(),
                o.keyspace,
                o.table
            ),
            None => format!(
                "every revision of {}.{} by token range",
                o.keyspace, o.table
            ),
        }
    }
}

/// The revision of one entity that is visible, and its first revision's time.
struct Best {
    updated: i64,
    state: String,
    document: String,
    created: Option<i64>,
    deleted: bool,
    first: i64,
}

struct Resolver {
    read: Arc<LiveRead>,
    page: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes>>,
    pending: HashMap<String, Best>,
}

impl Resolver {
    async fn run(&mut self, table: &RevisionTable, me: usize, of: usize) -> Result<()> {
        let cols = table.columns().await?;
        let o = table.options();
        let mut select: Vec<String> = vec![
            quote(&o.model),
            quote(&o.version),
            quote(&o.id),
            quote(&o.updated),
            quote(&o.state),
            quote(&o.document),
        ];
        for c in [&o.created, &o.deleted].into_iter().flatten() {
            select.push(quote(c));
        }
        let select = format!("SELECT {} FROM {}", select.join(", "), cols.info.cql_name());
        let what = format!("reading {}.{}", o.keyspace, o.table);
        let session = table.cluster.session().await?;
        let direct = cols.id_in_partition_key && self.read.entity_ids.is_some();
        let mut queries: Vec<(String, Vec<CqlValue>)> = Vec::new();
        if direct {
            let pk = cols.info.partition_key();
            let cond: Vec<String> = pk
                .iter()
                .map(|c| format!("{} = ?", quote(&cols.info.columns[*c].name)))
                .collect();
            let cql = format!("{select} WHERE {}", cond.join(" AND "));
            let ids = self.read.entity_ids.clone().unwrap_or_default();
            for id in ids.iter().skip(me).step_by(of) {
                let mut values = Vec::new();
                let mut ok = true;
                for c in &pk {
                    let v = if *c == cols.model {
                        Some(CqlValue::Text(self.read.model.name.clone()))
                    } else if *c == cols.version {
                        key_value(&cols.info, *c, &self.read.model.version.to_string())
                    } else {
                        key_value(&cols.info, *c, id)
                    };
                    match v {
                        Some(v) => values.push(v),
                        None => ok = false,
                    }
                }
                if ok {
                    queries.push((cql.clone(), values));
                }
            }
        } else {
            let token = cols.info.token_expr();
            for split in splits(&session, &o.keyspace, &o.table, of)
                .into_iter()
                .skip(me)
                .step_by(of)
            {
                for r in split.ranges {
                    let (cond, values) = r.conditions(&token);
                    let cql = if cond.is_empty() {
                        select.clone()
                    } else {
                        format!("{select} WHERE {}", cond.join(" AND "))
                    };
                    queries.push((cql, values));
                }
            }
        }
        let read = self.read.clone();
        let wanted_ids: Option<std::collections::HashSet<&str>> = read
            .entity_ids
            .as_ref()
            .map(|ids| ids.iter().map(|s| s.as_str()).collect());
        for (cql, values) in queries {
            let mut pages = table.cluster.pages(&cql, values, &what).await?;
            let mut last_id: Option<String> = None;
            while let Some(page) = pages.next_page().await? {
                for row in page.rows::<Row>().map_err(|e| classify(&e, &what))? {
                    let row = row.map_err(|e| classify(&e, &what))?;
                    let c = &row.columns;
                    let Some(model) = model_of(c[0].as_ref(), c[1].as_ref()) else {
                        continue;
                    };
                    if model != read.model {
                        continue;
                    }
                    let Some(id) = id_of(c[2].as_ref()) else {
                        continue;
                    };
                    if wanted_ids
                        .as_ref()
                        .is_some_and(|w| !w.contains(id.as_str()))
                    {
                        continue;
                    }
                    if cols.id_in_partition_key && last_id.as_deref().is_some_and(|l| l != id) {
                        // The previous entity's partition is complete.
                        let done = last_id.take().expect("checked");
                        self.emit(&done).await?;
                    }
                    let Some(updated) = millis_of(c[3].as_ref()) else {
                        continue;
                    };
                    let mut k = 6;
                    let created = if o.created.is_some() {
                        k += 1;
                        millis_of(c[k - 1].as_ref())
                    } else {
                        None
                    };
                    let deleted = o.deleted.is_some()
                        && matches!(
                            c.get(k).and_then(|v| v.as_ref()),
                            Some(CqlValue::Boolean(true))
                        );
                    self.observe(&id, updated, c[4].as_ref(), c[5].as_ref(), created, deleted);
                    last_id = Some(id);
                }
            }
            if let Some(done) = last_id {
                self.emit(&done).await?;
            }
            let rest: Vec<String> = self.pending.keys().cloned().collect();
            for id in rest {
                self.emit(&id).await?;
            }
        }
        if !self.page.is_empty() {
            let page = std::mem::take(&mut self.page);
            let _ = self.tx.send(Ok(Bytes::from(page))).await;
        }
        Ok(())
    }

    fn observe(
        &mut self,
        id: &str,
        updated: i64,
        state: Option<&CqlValue>,
        document: Option<&CqlValue>,
        created: Option<i64>,
        deleted: bool,
    ) {
        let at_ms = self.read.at.div_euclid(1000);
        let visible = updated <= at_ms;
        match self.pending.get_mut(id) {
            Some(b) => {
                b.first = b.first.min(updated);
                if visible && updated >= b.updated {
                    b.updated = updated;
                    b.state = text_of(state).unwrap_or_default().to_string();
                    b.document = text_of(document).unwrap_or("{}").to_string();
                    b.created = created.or(b.created);
                    b.deleted = deleted;
                }
            }
            None => {
                let b = if visible {
                    Best {
                        updated,
                        state: text_of(state).unwrap_or_default().to_string(),
                        document: text_of(document).unwrap_or("{}").to_string(),
                        created,
                        deleted,
                        first: updated,
                    }
                } else {
                    // Only later revisions so far: not visible unless an earlier one comes.
                    Best {
                        updated: i64::MIN,
                        state: String::new(),
                        document: String::new(),
                        created: None,
                        deleted: true,
                        first: updated,
                    }
                };
                self.pending.insert(id.to_string(), b);
            }
        }
    }

    async fn emit(&mut self, id: &str) -> Result<()> {
        let Some(b) = self.pending.remove(id) else {
            return Ok(());
        };
        if b.deleted || b.updated == i64::MIN {
            return Ok(());
        }
        let mut s = String::with_capacity(b.document.len() + 160);
        s.push_str("{\"meta\":{\"id\":");
        write_json_string(&mut s, id);
        s.push_str(",\"state\":");
        write_json_string(&mut s, &b.state);
        s.push_str(&format!(
            ",\"creationDate\":{},\"lastUpdateTime\":{}}},\"data\":",
            b.created.unwrap_or(b.first),
            b.updated
        ));
        s.push_str(&b.document);
        s.push_str("}\n");
        self.page.extend_from_slice(s.as_bytes());
        if self.page.len() >= PAGE_BYTES {
            let page = std::mem::replace(&mut self.page, Vec::with_capacity(PAGE_BYTES + 4096));
            if self.tx.send(Ok(Bytes::from(page))).await.is_err() {
                return Err(DataFusionError::Execution("query cancelled".into()));
            }
        }
        Ok(())
    }
}

/// A key column's value from its text (a UUID, a number or text).
fn key_value(info: &TableInfo, column: usize, text: &str) -> Option<CqlValue> {
    use crate::cql_type::CqlType;
    debug_assert!(info.columns[column].kind == ColumnKind::PartitionKey);
    Some(match info.columns[column].cql.as_ref().ok()? {
        CqlType::Text => CqlValue::Text(text.to_string()),
        CqlType::Uuid => CqlValue::Uuid(uuid::Uuid::parse_str(text).ok()?),
        CqlType::Timeuuid => CqlValue::Timeuuid(uuid::Uuid::parse_str(text).ok()?.into()),
        CqlType::Int => CqlValue::Int(text.parse().ok()?),
        CqlType::BigInt => CqlValue::BigInt(text.parse().ok()?),
        CqlType::SmallInt => CqlValue::SmallInt(text.parse().ok()?),
        CqlType::TinyInt => CqlValue::TinyInt(text.parse().ok()?),
        _ => return None,
    })
}

fn text_of(v: Option<&CqlValue>) -> Option<&str> {
    match v? {
        CqlValue::Text(s) | CqlValue::Ascii(s) => Some(s),
        _ => None,
    }
}

fn id_of(v: Option<&CqlValue>) -> Option<String> {
    match v? {
        CqlValue::Text(s) | CqlValue::Ascii(s) => Some(s.clone()),
        CqlValue::Uuid(u) => Some(u.to_string()),
        CqlValue::Timeuuid(u) => Some(u.to_string()),
        _ => None,
    }
}

fn millis_of(v: Option<&CqlValue>) -> Option<i64> {
    match v? {
        CqlValue::Timestamp(t) => Some(t.0),
        CqlValue::BigInt(x) => Some(*x),
        _ => None,
    }
}

fn model_of(name: Option<&CqlValue>, version: Option<&CqlValue>) -> Option<ModelId> {
    let name = text_of(name)?.to_string();
    let version: u32 = match version? {
        CqlValue::Int(v) => u32::try_from(*v).ok()?,
        CqlValue::BigInt(v) => u32::try_from(*v).ok()?,
        CqlValue::SmallInt(v) => u32::try_from(*v).ok()?,
        CqlValue::TinyInt(v) => u32::try_from(*v).ok()?,
        CqlValue::Text(s) | CqlValue::Ascii(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(ModelId { name, version })
}
