//! Decoding entity payloads into the record batches of one table, reading only
//! the projected columns and skipping everything else in the JSON.

use rustc_hash::FxHashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int32Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

use crate::builder::{ColumnBuilder, ValueErrorOrJson, compact_json};
use crate::json::{Cursor, Kind};
use crate::layout::{META_COLUMNS, RowKind, Source, Step, TableLayout};
use crate::types::UTC;

/// Metadata of the entity revision being decoded.
#[derive(Debug, Clone, Copy)]
pub struct RowMeta<'a> {
    /// Entity id.
    pub entity_id: &'a str,
    /// Creation instant (UTC µs).
    pub creation: Option<i64>,
    /// Instant of this revision (UTC µs).
    pub last_update: Option<i64>,
    /// Workflow state.
    pub state: &'a str,
}

/// Why one record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// JSON path of the offending value, e.g. `$.lines[*].qty`.
    pub json_path: String,
    /// What went wrong.
    pub message: String,
    /// Byte offset in the payload for syntax errors.
    pub offset: Option<usize>,
}

#[derive(Default)]
struct ObjectPlan {
    fields: FxHashMap<String, FieldPlan>,
}

#[derive(Default)]
struct FieldPlan {
    /// Position among its object's planned fields (for the early stop).
    ordinal: usize,
    value: Option<usize>,
    object: Option<ObjectPlan>,
    list: Option<usize>,
    flat: Vec<(usize, usize)>,
}

enum Output {
    EntityId(StringBuilder),
    PointTime(TimestampMicrosecondBuilder),
    Creation(TimestampMicrosecondBuilder),
    LastUpdate(TimestampMicrosecondBuilder),
    State(StringBuilder),
    Index(usize, Int32Builder),
    Data(usize),
}

/// Turns payloads into rows of one table for a projection of its columns.
pub struct TableDecoder {
    table: Arc<TableLayout>,
    schema: SchemaRef,
    outputs: Vec<Output>,
    data: Vec<ColumnBuilder>,
    data_paths: Vec<String>,
    plan: ObjectPlan,
    elements: Vec<Option<usize>>,
    document: Option<usize>,
    point_time: i64,
    rows: usize,
    bad_rows: Vec<(usize, usize)>,
}

impl TableDecoder {
    /// A decoder for `table` producing the columns at `projection` (indexes into
    /// [`TableLayout::arrow_schema`]; `None` means all), stamping `point_time`.
    pub fn new(table: Arc<TableLayout>, projection: Option<&[usize]>, point_time: i64) -> Self {
        let full = table.arrow_schema();
        let indices: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..full.fields().len()).collect(),
        };
        let schema = Arc::new(
            full.project(&indices)
                .expect("projection indexes come from this schema"),
        );
        let n_meta = META_COLUMNS.len();
        let mut outputs = Vec::new();
        let mut data = Vec::new();
        let mut data_paths = Vec::new();
        let mut plan = ObjectPlan::default();
        let mut elements = Vec::new();
        let mut document = None;
        for &i in &indices {
            let out = match i {
                0 => Output::EntityId(StringBuilder::new()),
                1 => Output::PointTime(TimestampMicrosecondBuilder::new()),
                2 => Output::Creation(TimestampMicrosecondBuilder::new()),
                3 => Output::LastUpdate(TimestampMicrosecondBuilder::new()),
                4 => Output::State(StringBuilder::new()),
                i if i < n_meta + table.index_depth => {
                    Output::Index(i - n_meta, Int32Builder::new())
                }
                i => {
                    let col = &table.columns[i - n_meta - table.index_depth];
                    let slot = data.len();
                    data.push(ColumnBuilder::new(&col.sql_type));
                    data_paths.push(col.json_path.clone());
                    match &col.source {
                        Source::Value(keys) => plan.field(keys).value = Some(slot),
                        Source::List(keys) => plan.field(keys).list = Some(slot),
                        Source::Flat(keys, pos) => plan.field(keys).flat.push((*pos, slot)),
                        Source::Element(pos) => {
                            if elements.len() <= *pos {
                                elements.resize(*pos + 1, None);
                            }
                            elements[*pos] = Some(slot);
                        }
                        Source::Document => document = Some(slot),
                    }
                    Output::Data(slot)
                }
            };
            outputs.push(out);
        }
        TableDecoder {
            table,
            schema,
            outputs,
            data,
            data_paths,
            plan,
            elements,
            document,
            point_time,
            rows: 0,
            bad_rows: Vec::new(),
        }
    }

    /// The schema of the batches produced.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows decoded since the last [`TableDecoder::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Decodes one revision's payload, adding its rows. On error the record's rows
    /// are dropped from the batch and the first problem is returned.
    pub fn decode(&mut self, payload: &[u8], meta: &RowMeta<'_>) -> Result<usize, DecodeError> {
        let start = self.rows;
        if self.table.node.is_empty()
            && self.table.row == RowKind::Object
            && self.plan.fields.is_empty()
        {
            // Only meta columns (or none, as for count(*)): the payload need not be read.
            self.end_row(&[], meta);
            return Ok(1);
        }
        let mut c = Cursor::new(payload);
        let mut indexes = Vec::with_capacity(self.table.index_depth);
        let mut first_error = None;
        let table = self.table.clone();
        let result = self.walk(&mut c, &table.node, &mut indexes, meta, &mut first_error);
        let error = match result {
            Err(e) => Some(DecodeError {
                json_path: self.table.json_path.clone(),
                message: e.message.clone(),
                offset: Some(e.offset),
            }),
            Ok(()) => first_error,
        };
        match error {
            Some(e) => {
                if self.rows > start {
                    self.bad_rows.push((start, self.rows));
                }
                Err(e)
            }
            None => Ok(self.rows - start),
        }
    }

    fn walk(
        &mut self,
        c: &mut Cursor<'_>,
        steps: &[Step],
        indexes: &mut Vec<i32>,
        meta: &RowMeta<'_>,
        err: &mut Option<DecodeError>,
    ) -> Result<(), crate::json::JsonError> {
        let Some((step, rest)) = steps.split_first() else {
            return self.row(c, indexes, meta, err);
        };
        match (step, c.peek_kind()?) {
            (Step::Key(k), Kind::Object) => {
                c.begin_object()?;
                let mut first = true;
                while let Some(key) = c.next_key(first)? {
                    first = false;
                    if key == k.as_str() {
                        self.walk(c, rest, indexes, meta, err)?;
                    } else {
                        c.skip_value()?;
                    }
                }
            }
            (Step::Each, Kind::Array) => {
                c.begin_array()?;
                let mut i = 0;
                while c.next_element(i == 0)? {
                    indexes.push(i);
                    self.walk(c, rest, indexes, meta, err)?;
                    indexes.pop();
                    i += 1;
                }
            }
            _ => {
                c.skip_value()?;
            }
        }
        Ok(())
    }

    fn row(
        &mut self,
        c: &mut Cursor<'_>,
        indexes: &[i32],
        meta: &RowMeta<'_>,
        err: &mut Option<DecodeError>,
    ) -> Result<(), crate::json::JsonError> {
        let kind = c.peek_kind()?;
        match (self.table.row, kind) {
            (RowKind::Document, _) => {
                let (s, e) = c.skip_value()?;
                if let Some(slot) = self.document {
                    let text = compact_json(&c.buf()[s..e]);
                    self.data[slot]
                        .append_str(&text)
                        .expect("VARCHAR takes any text");
                }
            }
            (RowKind::Object, Kind::Object) => {
                let plan = std::mem::take(&mut self.plan);
                let top = self.table.node.is_empty();
                let r = self.object(c, &plan, err, top);
                self.plan = plan;
                r?;
            }
            (RowKind::Elements, Kind::Array) => {
                c.begin_array()?;
                let mut i = 0;
                while c.next_element(i == 0)? {
                    match self.elements.get(i).copied().flatten() {
                        Some(slot) => self.value(c, slot, err)?,
                        None => {
                            c.skip_value()?;
                        }
                    }
                    i += 1;
                }
            }
            _ => {
                // Not a row of this node (e.g. a null array element).
                c.skip_value()?;
                return Ok(());
            }
        }
        self.end_row(indexes, meta);
        Ok(())
    }

    fn object(
        &mut self,
        c: &mut Cursor<'_>,
        plan: &ObjectPlan,
        err: &mut Option<DecodeError>,
        top: bool,
    ) -> Result<(), crate::json::JsonError> {
        c.begin_object()?;
        let mut first = true;
        // The row's own object may be left as soon as every planned field was
        // read (the document was validated when it was indexed); nested objects
        // are read to their end so that the parent can go on.
        let wanted = plan.fields.len();
        let mut seen: u64 = 0;
        while let Some(key) = c.next_key(first)? {
            first = false;
            let Some(fp) = plan.fields.get(key.as_ref()) else {
                c.skip_value()?;
                continue;
            };
            if top && fp.ordinal < 64 {
                seen |= 1 << fp.ordinal;
            }
            match c.peek_kind()? {
                Kind::Object if fp.object.is_some() => {
                    self.object(c, fp.object.as_ref().expect("checked"), err, false)?
                }
                Kind::Array if fp.list.is_some() => {
                    self.value(c, fp.list.expect("checked"), err)?
                }
                Kind::Array if !fp.flat.is_empty() => {
                    c.begin_array()?;
                    let mut i = 0;
                    while c.next_element(i == 0)? {
                        match fp.flat.iter().find(|(pos, _)| *pos == i) {
                            Some(&(_, slot)) => self.value(c, slot, err)?,
                            None => {
                                c.skip_value()?;
                            }
                        }
                        i += 1;
                    }
                }
                _ => match fp.value {
                    Some(slot) => self.value(c, slot, err)?,
                    None => {
                        c.skip_value()?;
                    }
                },
            }
            if top && wanted <= 64 && seen.count_ones() as usize == wanted {
                return Ok(());
            }
        }
        Ok(())
    }

    fn value(
        &mut self,
        c: &mut Cursor<'_>,
        slot: usize,
        err: &mut Option<DecodeError>,
    ) -> Result<(), crate::json::JsonError> {
        let b = &mut self.data[slot];
        if b.len() > self.rows {
            // A duplicate key: the first value wins.
            c.skip_value()?;
            return Ok(());
        }
        match b.append_json(c) {
            Ok(()) => Ok(()),
            Err(ValueErrorOrJson::Json(e)) => Err(e),
            Err(ValueErrorOrJson::Value(e)) => {
                if b.len() == self.rows {
                    b.append_null();
                }
                err.get_or_insert(DecodeError {
                    json_path: self.data_paths[slot].clone(),
                    message: e.0,
                    offset: None,
                });
                Ok(())
            }
        }
    }

    fn end_row(&mut self, indexes: &[i32], meta: &RowMeta<'_>) {
        self.rows += 1;
        for b in &mut self.data {
            if b.len() < self.rows {
                b.append_null();
            }
        }
        for out in &mut self.outputs {
            match out {
                Output::EntityId(b) => b.append_value(meta.entity_id),
                Output::PointTime(b) => b.append_value(self.point_time),
                Output::Creation(b) => b.append_option(meta.creation),
                Output::LastUpdate(b) => b.append_option(meta.last_update),
                Output::State(b) => b.append_value(meta.state),
                Output::Index(i, b) => b.append_value(indexes[*i]),
                Output::Data(_) => {}
            }
        }
    }

    /// Returns the rows decoded so far as one batch and starts a new one.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut data: Vec<Option<ArrayRef>> =
            self.data.iter_mut().map(|b| Some(b.finish())).collect();
        let columns: Vec<ArrayRef> = self
            .outputs
            .iter_mut()
            .map(|o| match o {
                Output::EntityId(b) | Output::State(b) => Arc::new(b.finish()) as ArrayRef,
                Output::PointTime(b) | Output::Creation(b) | Output::LastUpdate(b) => {
                    Arc::new(b.finish().with_timezone(UTC))
                }
                Output::Index(_, b) => Arc::new(b.finish()),
                Output::Data(slot) => data[*slot].take().expect("each data slot is output once"),
            })
            .collect();
        let rows = self.rows;
        self.rows = 0;
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        if self.bad_rows.is_empty() {
            return Ok(batch);
        }
        let mut keep = vec![true; rows];
        for (s, e) in self.bad_rows.drain(..) {
            keep[s..e].iter_mut().for_each(|k| *k = false);
        }
        filter_record_batch(&batch, &BooleanArray::from(keep))
    }
}

impl ObjectPlan {
    fn field(&mut self, keys: &[String]) -> &mut FieldPlan {
        let (last, parents) = keys
            .split_last()
            .expect("a value source has at least one key");
        let mut plan = self;
        for k in parents {
            let n = plan.fields.len();
            plan = plan
                .fields
                .entry(k.clone())
                .or_insert_with(|| FieldPlan {
                    ordinal: n,
                    ..Default::default()
                })
                .object
                .get_or_insert_with(ObjectPlan::default);
        }
        let n = plan.fields.len();
        plan.fields
            .entry(last.clone())
            .or_insert_with(|| FieldPlan {
                ordinal: n,
                ..Default::default()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{ModelId, layout_model};
    use crate::naming::NameAllocator;
    use crate::shape::ObjectShape;
    use arrow::util::pretty::pretty_format_batches;

    const DOC: &str = r#"{"orderId": "A-1", "customer": {"name": "Ada", "tier": "gold"},
 "placed": "2024-03-01T09:15:00Z", "tags": ["rush", "gift"],
 "lines": [{"sku": "X", "qty": 2, "price": 9.5},
           {"sku": "Y", "qty": 1, "price": 20, "discounts": [{"code": "D1", "pct": 10}]}],
 "grid": [[1, 2], [3, 4]]}"#;

    fn tables() -> Vec<Arc<TableLayout>> {
        let mut shape = ObjectShape::default();
        shape.observe(&mut Cursor::new(DOC.as_bytes())).unwrap();
        layout_model(
            &ModelId {
                name: "orders".into(),
                version: 1,
            },
            &shape,
            &Default::default(),
            &mut NameAllocator::default(),
        )
        .into_iter()
        .map(Arc::new)
        .collect()
    }

    fn decode(table: &Arc<TableLayout>, skip_meta: bool) -> String {
        let n = table.arrow_schema().fields().len();
        let proj: Vec<usize> = if skip_meta {
            (5..n).collect()
        } else {
            (0..n).collect()
        };
        let mut d = TableDecoder::new(table.clone(), Some(&proj), 0);
        let meta = RowMeta {
            entity_id: "e1",
            creation: Some(0),
            last_update: Some(0),
            state: "CREATED",
        };
        d.decode(DOC.as_bytes(), &meta).unwrap();
        pretty_format_batches(&[d.finish().unwrap()])
            .unwrap()
            .to_string()
    }

    #[test]
    fn decodes_every_table_of_the_spec_example() {
        let t = tables();
        let root = decode(&t[0], true);
        assert!(
            root.contains(
                "| A-1     | Ada           | gold          | 2024-03-01T09:15:00Z | [rush, gift] |"
            ),
            "{root}"
        );
        let lines = decode(&t[1], true);
        assert!(lines.contains("| 1       | Y   | 1   | 20.0  |"), "{lines}");
        let discounts = decode(&t[2], true);
        assert!(
            discounts.contains("| 1       | 0       | D1   | 10  |"),
            "{discounts}"
        );
        let grid = decode(&t[3], true);
        assert!(
            grid.contains("| 1       | 3         | 4         |"),
            "{grid}"
        );
        let json = decode(&t[4], false);
        assert!(json.contains(r#""orderId":"A-1""#), "{json}");
    }

    #[test]
    fn a_bad_value_drops_the_record_and_names_the_path() {
        let t = tables();
        let mut d = TableDecoder::new(t[1].clone(), None, 0);
        let meta = RowMeta {
            entity_id: "e1",
            creation: None,
            last_update: None,
            state: "S",
        };
        d.decode(br#"{"lines": [{"qty": 1}]}"#, &meta).unwrap();
        let e = d
            .decode(br#"{"lines": [{"qty": 3}, {"qty": "many"}]}"#, &meta)
            .unwrap_err();
        assert_eq!(e.json_path, "$.lines[*].qty");
        assert_eq!(d.finish().unwrap().num_rows(), 1);
    }
}
