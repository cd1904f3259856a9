//! Table layout: which tables a model's shape makes, with which columns, and
//! where in the document each column's value comes from.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::naming::{NameAllocator, data_column_name, normalize};
use crate::shape::{ArrayShape, Category, ObjectShape, ValueShape};
use crate::types::{SqlType, UTC};

/// A model: its name and version, as stored upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId {
    /// Model name, e.g. `orders`.
    pub name: String,
    /// Model version, 1 or more.
    pub version: u32,
}

impl ModelId {
    /// The root table's name before collision handling: `name`, or `name_V` when V > 1.
    pub fn table_base(&self) -> String {
        let n = normalize(&self.name);
        if self.version > 1 {
            format!("{n}_{}", self.version)
        } else {
            n
        }
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

/// One step from the document root to the rows of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Go into the value of this key of the current object.
    Key(String),
    /// Make one row (or go one level deeper) per element of the current array.
    Each,
}

/// What one row of a table is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// An object node (root or array element): columns come from its fields.
    Object,
    /// An innermost primitive array of a 2-D/3-D array: columns are its elements.
    Elements,
    /// The whole document as JSON text (the `_json` table).
    Document,
}

/// Where a data column's value comes from, relative to the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The value at this key path, converted to the column type (JSON text for polymorphic VARCHAR).
    Value(Vec<String>),
    /// The 1-D array of primitives at this key path, as a list.
    List(Vec<String>),
    /// Element `position` of the 1-D array at this key path (a flattened array).
    Flat(Vec<String>, usize),
    /// Element `position` of the row's own array (detached tables).
    Element(usize),
    /// The whole document as JSON text.
    Document,
}

/// A data column of an entity table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataColumn {
    /// SQL name (lower-case, unique in its table).
    pub name: String,
    /// SQL type.
    pub sql_type: SqlType,
    /// Where its value comes from.
    pub source: Source,
    /// JSON path for messages, e.g. `$.lines[*].qty`.
    pub json_path: String,
}

/// One relational table made from a model.
#[derive(Debug, Clone, PartialEq)]
pub struct TableLayout {
    /// SQL name.
    pub name: String,
    /// The model it belongs to.
    pub model: ModelId,
    /// Steps from the document root to the rows.
    pub node: Vec<Step>,
    /// What a row is made from.
    pub row: RowKind,
    /// Number of `index_N` columns.
    pub index_depth: usize,
    /// Data columns in order.
    pub columns: Vec<DataColumn>,
    /// JSON path of the node, e.g. `$.lines[*]`.
    pub json_path: String,
}

/// What an upstream declares about a model's fields, by JSON path (see [`layout_model`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeclaredTypes {
    /// Column types: `$.a.b`, `$.lines[*].qty`, `$.tags[*]` (elements of a primitive array).
    pub types: std::collections::HashMap<String, SqlType>,
    /// 1-D primitive arrays (`$.tags`) to flatten into `tags_0 … tags_{w-1}` instead of a list.
    pub flattened: std::collections::HashSet<String>,
    /// Paths declared with several types (their column holds a common type
    /// or JSON text, so the upstream's typed comparisons mean something else there).
    pub polymorphic: std::collections::HashSet<String>,
}

impl DeclaredTypes {
    /// Nothing declared.
    pub fn new() -> Self {
        Self::default()
    }

    /// The declared type at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&SqlType> {
        self.types.get(path)
    }
}

/// The declared-type key of a column's JSON path: positions become `[*]`.
fn declared_key(json_path: &str) -> String {
    let mut out = String::with_capacity(json_path.len());
    let mut rest = json_path;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find(']').map_or(rest.len(), |j| i + j + 1);
        out.push_str("[*]");
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

/// Names of the meta columns, in order, every table starts with.
pub const META_COLUMNS: [&str; 5] = [
    "entity_id",
    "point_time",
    "creation_date",
    "last_update_date",
    "state",
];

fn instant() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
}

impl TableLayout {
    /// The full Arrow schema: meta columns, `index_N`, data columns.
    pub fn arrow_schema(&self) -> SchemaRef {
        let mut fields = vec![
            Field::new("entity_id", DataType::Utf8, false),
            Field::new("point_time", instant(), false),
            Field::new("creation_date", instant(), true),
            Field::new("last_update_date", instant(), true),
            Field::new("state", DataType::Utf8, true),
        ];
        for i in 0..self.index_depth {
            fields.push(Field::new(format!("index_{i}"), DataType::Int32, false));
        }
        for c in &self.columns {
            fields.push(Field::new(&c.name, c.sql_type.arrow_type(), true));
        }
        Arc::new(Schema::new(fields))
    }

    /// Every column with its SQL type, meta and index columns included.
    pub fn sql_columns(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = vec![
            ("entity_id".into(), "VARCHAR".into()),
            ("point_time".into(), "TIMESTAMP WITH TIME ZONE".into()),
            ("creation_date".into(), "TIMESTAMP WITH TIME ZONE".into()),
            ("last_update_date".into(), "TIMESTAMP WITH TIME ZONE".into()),
            ("state".into(), "VARCHAR".into()),
        ];
        out.extend((0..self.index_depth).map(|i| (format!("index_{i}"), "INTEGER".to_string())));
        out.extend(
            self.columns
                .iter()
                .map(|c| (c.name.clone(), c.sql_type.to_string())),
        );
        out
    }
}

/// Builds every table of a model from its shape. `tables` hands out table names
/// across the whole schema so that two models never produce the same name.
/// `declared` maps JSON paths (`$.a.b`, `$.lines[*].qty`, `$.tags[*]` for the
/// elements of a primitive array) to declared types that replace inferred ones.
pub fn layout_model(
    model: &ModelId,
    shape: &ObjectShape,
    declared: &DeclaredTypes,
    tables: &mut NameAllocator,
) -> Vec<TableLayout> {
    let mut out = Vec::new();
    let root_name = tables.allocate(&model.table_base());
    let mut builder = TableBuilder::new(
        model,
        declared,
        root_name.clone(),
        Vec::new(),
        RowKind::Object,
        0,
        "$".into(),
    );
    builder.object_columns(shape, &[], "", tables, &mut out);
    out.insert(0, builder.finish());
    out.push(TableLayout {
        name: tables.allocate(&format!("{root_name}_json")),
        model: model.clone(),
        node: Vec::new(),
        row: RowKind::Document,
        index_depth: 0,
        columns: vec![DataColumn {
            name: "entity".into(),
            sql_type: SqlType::Varchar,
            source: Source::Document,
            json_path: "$".into(),
        }],
        json_path: "$".into(),
    });
    out
}

struct TableBuilder<'m> {
    model: &'m ModelId,
    declared: &'m DeclaredTypes,
    name: String,
    node: Vec<Step>,
    row: RowKind,
    depth: usize,
    json_path: String,
    columns: Vec<DataColumn>,
    names: NameAllocator,
}

impl<'m> TableBuilder<'m> {
    fn new(
        model: &'m ModelId,
        declared: &'m DeclaredTypes,
        name: String,
        node: Vec<Step>,
        row: RowKind,
        depth: usize,
        json_path: String,
    ) -> Self {
        let mut reserved: Vec<String> = crate::naming::RESERVED
            .iter()
            .map(|s| s.to_string())
            .collect();
        reserved.extend((0..depth).map(|i| format!("index_{i}")));
        TableBuilder {
            model,
            declared,
            name,
            node,
            row,
            depth,
            json_path,
            columns: Vec::new(),
            names: NameAllocator::with_taken(reserved),
        }
    }

    fn finish(self) -> TableLayout {
        TableLayout {
            name: self.name,
            model: self.model.clone(),
            node: self.node,
            row: self.row,
            index_depth: self.depth,
            columns: self.columns,
            json_path: self.json_path,
        }
    }

    fn push(&mut self, base: &str, sql_type: SqlType, source: Source, json_path: String) {
        let sql_type = match (&source, sql_type) {
            (Source::List(_), SqlType::Array(inner)) => {
                let key = format!("{}[*]", declared_key(&json_path));
                SqlType::Array(Box::new(self.declared.get(&key).cloned().unwrap_or(*inner)))
            }
            (_, t) => self
                .declared
                .get(&declared_key(&json_path))
                .cloned()
                .unwrap_or(t),
        };
        let name = self.names.allocate(&data_column_name(base));
        self.columns.push(DataColumn {
            name,
            sql_type,
            source,
            json_path,
        });
    }

    fn child_path(&self, keys: &[String]) -> String {
        let mut p = self.json_path.clone();
        for k in keys {
            p.push('.');
            p.push_str(k);
        }
        p
    }

    /// Adds the columns of an object node (inlining plain nested objects) and
    /// creates child tables for its arrays.
    fn object_columns(
        &mut self,
        obj: &ObjectShape,
        keys: &[String],
        prefix: &str,
        tables: &mut NameAllocator,
        out: &mut Vec<TableLayout>,
    ) {
        for (key, value) in obj.fields() {
            let mut path = keys.to_vec();
            path.push(key.to_string());
            let name = format!("{prefix}{}", normalize(key));
            match value.category() {
                Category::Nothing | Category::Scalar | Category::Mixed => {
                    let jp = self.child_path(&path);
                    self.push(&name, scalar_type(value), Source::Value(path), jp);
                }
                Category::Object => {
                    let inner = value
                        .object
                        .as_deref()
                        .expect("object category has an object shape");
                    self.object_columns(inner, &path, &format!("{name}_"), tables, out);
                }
                Category::Array => {
                    let arr = value
                        .array
                        .as_deref()
                        .expect("array category has an array shape");
                    self.array_columns(arr, path, &name, tables, out);
                }
            }
        }
    }

    fn array_columns(
        &mut self,
        arr: &ArrayShape,
        path: Vec<String>,
        name: &str,
        tables: &mut NameAllocator,
        out: &mut Vec<TableLayout>,
    ) {
        let jp = self.child_path(&path);
        match arr.elem.category() {
            Category::Nothing => self.push(
                &format!("{name}_array"),
                SqlType::Array(Box::new(SqlType::Varchar)),
                Source::List(path),
                jp,
            ),
            Category::Scalar => {
                let declared = self.declared.get(&format!("{}[*]", declared_key(&jp)));
                let t = declared
                    .cloned()
                    .unwrap_or_else(|| arr.elem.scalar.sql_type());
                let mixed = declared.is_none() && arr.elem.scalar.is_mixed();
                let configured = self.declared.flattened.contains(&declared_key(&jp));
                if mixed || configured || t.prefers_flattening() {
                    self.flat_columns(arr, path, name, t, &jp);
                } else {
                    self.push(
                        &format!("{name}_array"),
                        SqlType::Array(Box::new(t)),
                        Source::List(path),
                        jp,
                    );
                }
            }
            Category::Mixed => self.flat_columns(arr, path, name, SqlType::Varchar, &jp),
            Category::Object => {
                let elem = arr
                    .elem
                    .object
                    .as_deref()
                    .expect("object category has an object shape");
                let mut node = self.node.clone();
                node.extend(path.iter().cloned().map(Step::Key));
                node.push(Step::Each);
                let table = tables.allocate(&format!("{}_{name}", self.name));
                let mut child = TableBuilder::new(
                    self.model,
                    self.declared,
                    table,
                    node,
                    RowKind::Object,
                    self.depth + 1,
                    format!("{jp}[*]"),
                );
                let mut grandchildren = Vec::new();
                child.object_columns(elem, &[], "", tables, &mut grandchildren);
                out.push(child.finish());
                out.extend(grandchildren);
            }
            Category::Array => self.nested_array_table(arr, path, name, tables, out),
        }
    }

    fn flat_columns(
        &mut self,
        arr: &ArrayShape,
        path: Vec<String>,
        name: &str,
        t: SqlType,
        jp: &str,
    ) {
        for i in 0..arr.max_len {
            self.push(
                &format!("{name}_{i}"),
                t.clone(),
                Source::Flat(path.clone(), i),
                format!("{jp}[{i}]"),
            );
        }
    }

    /// A 2-D (or deeper) array: every dimension beyond the first is a node.
    fn nested_array_table(
        &mut self,
        arr: &ArrayShape,
        path: Vec<String>,
        name: &str,
        tables: &mut NameAllocator,
        out: &mut Vec<TableLayout>,
    ) {
        let jp = self.child_path(&path);
        let mut node = self.node.clone();
        node.extend(path.iter().cloned().map(Step::Key));
        // `inner` is the array whose elements become columns or rows.
        let mut inner = arr;
        let mut dims = 1;
        let mut node_path = jp.clone();
        while inner.elem.category() == Category::Array {
            node.push(Step::Each);
            node_path.push_str("[*]");
            inner = inner
                .elem
                .array
                .as_deref()
                .expect("array category has an array shape");
            dims += 1;
        }
        match inner.elem.category() {
            Category::Object => {
                let elem = inner
                    .elem
                    .object
                    .as_deref()
                    .expect("object category has an object shape");
                node.push(Step::Each);
                node_path.push_str("[*]");
                let table = tables.allocate(&format!("{}_{name}", self.name));
                let mut child = TableBuilder::new(
                    self.model,
                    self.declared,
                    table,
                    node,
                    RowKind::Object,
                    self.depth + dims,
                    node_path,
                );
                let mut grandchildren = Vec::new();
                child.object_columns(elem, &[], "", tables, &mut grandchildren);
                out.push(child.finish());
                out.extend(grandchildren);
            }
            category => {
                let suffix = if dims == 2 {
                    "array".to_string()
                } else {
                    format!("{}d_array", dims - 1)
                };
                let table = tables.allocate(&format!("{}_{name}_{suffix}", self.name));
                let t = if category == Category::Scalar {
                    inner.elem.scalar.sql_type()
                } else {
                    SqlType::Varchar
                };
                let mut child = TableBuilder::new(
                    self.model,
                    self.declared,
                    table,
                    node,
                    RowKind::Elements,
                    self.depth + dims - 1,
                    node_path.clone(),
                );
                for i in 0..inner.max_len {
                    child.push(
                        &format!("element_{i}"),
                        t.clone(),
                        Source::Element(i),
                        format!("{node_path}[{i}]"),
                    );
                }
                out.push(child.finish());
            }
        }
    }
}

fn scalar_type(value: &ValueShape) -> SqlType {
    match value.category() {
        Category::Scalar => value.scalar.sql_type(),
        _ => SqlType::Varchar,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Cursor;

    const SPEC_EXAMPLE: &str = r#"{"orderId": "A-1", "customer": {"name": "Ada", "tier": "gold"},
 "placed": "2024-03-01T09:15:00Z", "tags": ["rush", "gift"],
 "lines": [{"sku": "X", "qty": 2, "price": 9.5},
           {"sku": "Y", "qty": 1, "price": 20, "discounts": [{"code": "D1", "pct": 10}]}],
 "grid": [[1, 2], [3, 4]]}"#;

    fn layout(docs: &[&str], name: &str, version: u32) -> Vec<TableLayout> {
        let mut shape = ObjectShape::default();
        for d in docs {
            shape.observe(&mut Cursor::new(d.as_bytes())).unwrap();
        }
        layout_model(
            &ModelId {
                name: name.into(),
                version,
            },
            &shape,
            &Default::default(),
            &mut NameAllocator::default(),
        )
    }

    fn describe(t: &TableLayout) -> String {
        let cols: Vec<String> = t
            .sql_columns()
            .into_iter()
            .skip(5)
            .map(|(n, ty)| format!("{n} {ty}"))
            .collect();
        format!("{}: {}", t.name, cols.join(", "))
    }

    #[test]
    fn spec_example_makes_the_spec_tables() {
        let tables: Vec<String> = layout(&[SPEC_EXAMPLE], "orders", 1)
            .iter()
            .map(describe)
            .collect();
        assert_eq!(
            tables,
            [
                "orders: orderid VARCHAR, customer_name VARCHAR, customer_tier VARCHAR, placed TIMESTAMP WITH TIME ZONE, tags_array ARRAY(VARCHAR)",
                "orders_lines: index_0 INTEGER, sku VARCHAR, qty BIGINT, price DOUBLE",
                "orders_lines_discounts: index_0 INTEGER, index_1 INTEGER, code VARCHAR, pct BIGINT",
                "orders_grid_array: index_0 INTEGER, element_0 BIGINT, element_1 BIGINT",
                "orders_json: entity VARCHAR",
            ]
        );
    }

    #[test]
    fn version_suffix_reserved_names_and_collisions() {
        let t = layout(
            &[r#"{"State": 1, "orderId": "a", "orderid": "b", "index_0": 2, "c": [[[1]]]}"#],
            "Orders",
            2,
        );
        assert_eq!(
            describe(&t[0]),
            "orders_2: _state BIGINT, orderid VARCHAR, orderid_2 VARCHAR, _index_0 BIGINT"
        );
        assert_eq!(
            describe(&t[1]),
            "orders_2_c_2d_array: index_0 INTEGER, index_1 INTEGER, element_0 BIGINT"
        );
    }

    #[test]
    fn mixed_and_zoned_arrays_are_flattened() {
        let t = layout(
            &[
                r#"{"m": [1, "a"], "z": ["2024-01-01T00:00:00Z"]}"#,
                r#"{"m": [true, 2, 3]}"#,
            ],
            "x",
            1,
        );
        assert_eq!(
            describe(&t[0]),
            "x: m_0 VARCHAR, m_1 VARCHAR, m_2 VARCHAR, z_0 TIMESTAMP WITH TIME ZONE"
        );
    }
}
