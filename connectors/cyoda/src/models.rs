//! The models of a tenant as the service describes them: `GET /model/` lists
//! them, `GET /model/export/SIMPLE_VIEW/{name}/{version}` declares each one's
//! tree with a type per JSON path. Both are cached per tenant: the list for
//! a short time, each export until the model's `modelUpdateDate` changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::Value;
use tsql_entity_tables::{
    DeclaredTypes, LiveModel, ModelId, SqlType, TableLayout, UpstreamError, UpstreamErrorKind,
    live_tables, shape_of_paths,
};

use crate::http::Http;
use crate::identity::Identity;

/// One entry of `GET /model/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// Name and version.
    pub model: ModelId,
    /// `currentState` (LOCKED / UNLOCKED).
    pub state: String,
    /// `modelUpdateDate`: changes whenever the model's schema does.
    pub updated: String,
}

/// Every table of a tenant's models, by name.
pub type Tables = BTreeMap<String, (Arc<LiveModel>, Arc<TableLayout>)>;

fn bad_answer(what: &str, why: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::new(
        UpstreamErrorKind::BadAnswer,
        format!("the Cyoda service's answer to {what} cannot be used: {why}"),
    )
}

/// Reads the answer of `GET /model/`.
pub fn parse_model_list(body: &[u8]) -> Result<Vec<ModelEntry>, UpstreamError> {
    let what = "GET /model/";
    let doc: Value = serde_json::from_slice(body).map_err(|e| bad_answer(what, e))?;
    let list = doc
        .as_array()
        .ok_or_else(|| bad_answer(what, "it is not a JSON array"))?;
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let name = m["modelName"]
            .as_str()
            .ok_or_else(|| bad_answer(what, format!("an entry has no modelName: {m}")))?;
        let version = match &m["modelVersion"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| bad_answer(what, format!("model {name} has no numeric modelVersion")))?;
        out.push(ModelEntry {
            model: ModelId {
                name: name.to_string(),
                version,
            },
            state: m["currentState"].as_str().unwrap_or("").to_string(),
            updated: m["modelUpdateDate"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(out)
}

/// One SQL type for a declared type name, or for a list of them
/// (`[INTEGER, STRING]`: a polymorphic field) by the spec's widening rules.
pub fn declared_type(text: &str) -> SqlType {
    let names: Vec<&str> = text
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "NULL")
        .collect();
    let types: Vec<SqlType> = names
        .iter()
        .filter_map(|n| SqlType::from_declared(n))
        .collect();
    if types.is_empty() || types.len() != names.len() {
        return SqlType::Varchar;
    }
    types
        .into_iter()
        .reduce(|a, b| widen(&a, &b))
        .unwrap_or(SqlType::Varchar)
}

fn integer_rank(t: &SqlType) -> Option<u8> {
    Some(match t {
        SqlType::TinyInt => 1,
        SqlType::SmallInt => 2,
        SqlType::Integer => 3,
        SqlType::BigInt => 4,
        SqlType::Decimal(0) => 5,
        _ => return None,
    })
}

fn temporal_rank(t: &SqlType) -> Option<u8> {
    Some(match t {
        SqlType::Date => 1,
        SqlType::Timestamp => 2,
        _ => return None,
    })
}

/// The common type of two declared types (spec: integers widen, temporal
/// types widen along DATE → TIMESTAMP and TIME → TIMESTAMP, any other mix is VARCHAR).
fn widen(a: &SqlType, b: &SqlType) -> SqlType {
    if a == b {
        return a.clone();
    }
    if let (Some(x), Some(y)) = (integer_rank(a), integer_rank(b)) {
        return if x >= y { a.clone() } else { b.clone() };
    }
    let numeric = |t: &SqlType| {
        integer_rank(t).is_some()
            || matches!(t, SqlType::Real | SqlType::Double | SqlType::Decimal(_))
    };
    if numeric(a) && numeric(b) {
        let exact = |t: &SqlType| matches!(t, SqlType::Decimal(_));
        return if exact(a) || exact(b) {
            SqlType::Decimal(18)
        } else {
            SqlType::Double
        };
    }
    if let (Some(x), Some(y)) = (temporal_rank(a), temporal_rank(b)) {
        return if x >= y { a.clone() } else { b.clone() };
    }
    if matches!(
        (a, b),
        (SqlType::Time, SqlType::Timestamp) | (SqlType::Timestamp, SqlType::Time)
    ) {
        return SqlType::Timestamp;
    }
    SqlType::Varchar
}

/// Reads a `SIMPLE_VIEW` export: `{"model": {"$": {".a": "STRING", "#.o": "OBJECT",
/// ".tags[*]": "STRING"}, "$.lines[*]": {"#": "ARRAY_ELEMENT", ".sku": "STRING"}, …}}`.
/// A nested array of arrays is declared `NULL` there; it becomes one column of JSON text.
pub fn parse_export(model: &ModelId, body: &[u8]) -> Result<LiveModel, UpstreamError> {
    let what = format!(
        "GET /model/export/SIMPLE_VIEW/{}/{}",
        model.name, model.version
    );
    let doc: Value = serde_json::from_slice(body).map_err(|e| bad_answer(&what, e))?;
    let nodes = doc["model"]
        .as_object()
        .ok_or_else(|| bad_answer(&what, "it has no \"model\" object"))?;
    let mut walk = ExportWalk {
        nodes,
        what: &what,
        paths: Vec::new(),
        declared: DeclaredTypes::new(),
        visited: Vec::new(),
    };
    // Fields in name order (the export sorts them), nested objects in place.
    walk.node("$")?;
    let mut rest: Vec<&String> = nodes.keys().filter(|n| !walk.visited.contains(n)).collect();
    rest.sort();
    for n in rest {
        walk.node(n)?;
    }
    let ExportWalk {
        paths, declared, ..
    } = walk;
    Ok(LiveModel {
        model: model.clone(),
        shape: shape_of_paths(paths.iter().map(String::as_str)),
        declared,
    })
}

struct ExportWalk<'a> {
    nodes: &'a serde_json::Map<String, Value>,
    what: &'a str,
    paths: Vec<String>,
    declared: DeclaredTypes,
    visited: Vec<&'a String>,
}

impl<'a> ExportWalk<'a> {
    fn node(&mut self, node: &str) -> Result<(), UpstreamError> {
        let Some((key, fields)) = self.nodes.get_key_value(node) else {
            return Ok(());
        };
        if self.visited.contains(&key) {
            return Ok(());
        }
        self.visited.push(key);
        let Some(fields) = fields.as_object() else {
            return Err(bad_answer(
                self.what,
                format!("node {node} is not an object"),
            ));
        };
        let mut entries: Vec<(&str, &String, &Value)> = fields
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("#.").or_else(|| k.strip_prefix('.'))?;
                Some((name, k, v))
            })
            .collect();
        entries.sort_by_key(|(name, _, _)| *name);
        for (name, key, t) in entries {
            if key.starts_with('#') {
                // A nested object, or an array of objects, declared as its own node.
                let base = format!("{node}.{name}");
                let child = [base.clone(), format!("{base}[*]"), format!("{base}[*][*]")]
                    .into_iter()
                    .find(|c| self.nodes.contains_key(c));
                if let Some(child) = child {
                    self.node(&child)?;
                }
                continue;
            }
            let t = t.as_str().ok_or_else(|| {
                bad_answer(self.what, format!("the type of {node}{key} is not text"))
            })?;
            let path = format!("{node}.{name}");
            if t.trim() == "NULL" && path.ends_with("[*]") {
                // An array of arrays (or of nulls): its elements are not declared.
                let whole = path.trim_end_matches("[*]").to_string();
                self.declared.types.insert(whole.clone(), SqlType::Varchar);
                self.paths.push(whole);
                continue;
            }
            if t.contains(',') {
                self.declared.polymorphic.insert(path.clone());
            }
            self.declared.types.insert(path.clone(), declared_type(t));
            self.paths.push(path);
        }
        Ok(())
    }
}

struct TenantModels {
    listed: Instant,
    exports: HashMap<ModelId, Export>,
    tables: Arc<Tables>,
}

/// A model's export as last read.
#[derive(Clone)]
struct Export {
    /// The model's `modelUpdateDate` then.
    updated: String,
    fetched: Instant,
    model: Arc<LiveModel>,
}

/// Exports are read again after this many model-list lifetimes.
const EXPORT_TTL_FACTOR: u32 = 5;

/// Models and tables per tenant.
#[derive(Default)]
pub struct ModelCache {
    tenants: Mutex<HashMap<String, TenantModels>>,
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelCache")
    }
}

impl ModelCache {
    /// The tables of `identity`'s tenant: cached for `ttl`, then the model list
    /// is read again and models whose `modelUpdateDate` changed are exported again.
    pub async fn tables(
        &self,
        http: &Http,
        identity: &Identity,
        ttl: Duration,
    ) -> Result<Arc<Tables>, UpstreamError> {
        let known: HashMap<ModelId, Export> = {
            let tenants = self.tenants.lock().expect("not poisoned");
            match tenants.get(&identity.tenant) {
                Some(t) if t.listed.elapsed() < ttl => return Ok(t.tables.clone()),
                Some(t) => t.exports.clone(),
                None => HashMap::new(),
            }
        };
        let credentials = crate::credentials(identity);
        let listed = Instant::now();
        let body = http
            .call(Method::GET, "/model/", &[], credentials, None)
            .await?;
        let entries = parse_model_list(&body)?;
        let known = &known;
        let exports: Vec<(ModelId, Export)> = futures::stream::iter(entries)
            .map(|entry| {
                // The update date does not change when a locked model's schema
                // is extended by new entities, so exports also expire.
                let cached = known
                    .get(&entry.model)
                    .filter(|e| {
                        e.updated == entry.updated && e.fetched.elapsed() < ttl * EXPORT_TTL_FACTOR
                    })
                    .cloned();
                async move {
                    if let Some(hit) = cached {
                        return Ok::<_, UpstreamError>((entry.model, hit));
                    }
                    let path = format!(
                        "/model/export/SIMPLE_VIEW/{}/{}",
                        encode(&entry.model.name),
                        entry.model.version
                    );
                    let body = http
                        .call(Method::GET, &path, &[], credentials, None)
                        .await?;
                    let mut model = Arc::new(parse_export(&entry.model, &body)?);
                    // An unchanged export keeps its tables.
                    if let Some(old) = known.get(&entry.model).filter(|e| *e.model == *model) {
                        model = old.model.clone();
                    }
                    let export = Export {
                        updated: entry.updated,
                        fetched: Instant::now(),
                        model,
                    };
                    Ok::<_, UpstreamError>((entry.model, export))
                }
            })
            .buffered(4)
            .try_collect()
            .await?;
        let mut tenants = self.tenants.lock().expect("not poisoned");
        let unchanged = tenants.get(&identity.tenant).is_some_and(|t| {
            t.exports.len() == exports.len()
                && exports.iter().all(|(id, e)| {
                    t.exports
                        .get(id)
                        .is_some_and(|old| Arc::ptr_eq(&old.model, &e.model))
                })
        });
        let tables = match tenants.get(&identity.tenant) {
            Some(t) if unchanged => t.tables.clone(),
            _ => {
                let models: Vec<Arc<LiveModel>> =
                    exports.iter().map(|(_, e)| e.model.clone()).collect();
                Arc::new(live_tables(&models))
            }
        };
        tenants.insert(
            identity.tenant.clone(),
            TenantModels {
                listed,
                exports: exports.into_iter().collect(),
                tables: tables.clone(),
            },
        );
        Ok(tables)
    }
}

/// `s` for one URL path segment.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_declare_tables_and_types() {
        let body = br##"{"currentState":"LOCKED","model":{"$":{"#.customer":"OBJECT","#.lines":"OBJECT",".m[*]":"NULL",".orderId":"STRING",".qty":"[INTEGER, LONG]",".tags[*]":"STRING",".x":"[INTEGER, STRING]"},"$.customer":{".name":"STRING"},"$.lines[*]":{"#":"ARRAY_ELEMENT",".price":"DOUBLE",".sku":"STRING"}}}"##;
        let id = ModelId {
            name: "orders".into(),
            version: 1,
        };
        let m = parse_export(&id, body).unwrap();
        let tables = live_tables(&[Arc::new(m)]);
        let names: Vec<&String> = tables.keys().collect();
        assert_eq!(names, ["orders", "orders_json", "orders_lines"]);
        let root = &tables["orders"].1;
        let cols: Vec<(String, String)> = root
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.sql_type.to_string()))
            .collect();
        assert_eq!(
            cols,
            [
                ("customer_name".to_string(), "VARCHAR".to_string()),
                ("m".into(), "VARCHAR".into()),
                ("orderid".into(), "VARCHAR".into()),
                ("qty".into(), "BIGINT".into()),
                ("tags_array".into(), "ARRAY(VARCHAR)".into()),
                ("x".into(), "VARCHAR".into()),
            ]
        );
        assert_eq!(
            tables["orders_lines"].1.columns[1].json_path,
            "$.lines[*].sku"
        );
        assert_eq!(tables["orders_lines"].1.columns[0].name, "price");
    }

    #[test]
    fn model_lists_are_read() {
        let l = parse_model_list(br#"[{"currentState":"LOCKED","id":"x","modelName":"orders","modelUpdateDate":"2026-01-01T00:00:00Z","modelVersion":2}]"#).unwrap();
        assert_eq!(
            l[0].model,
            ModelId {
                name: "orders".into(),
                version: 2
            }
        );
        assert!(
            parse_model_list(b"{}")
                .unwrap_err()
                .message
                .contains("not a JSON array")
        );
    }

    #[test]
    fn polymorphic_types_widen() {
        assert_eq!(declared_type("[INTEGER, LONG]"), SqlType::BigInt);
        assert_eq!(declared_type("[INTEGER, DOUBLE]"), SqlType::Double);
        assert_eq!(
            declared_type("[LOCAL_DATE, LOCAL_DATE_TIME]"),
            SqlType::Timestamp
        );
        assert_eq!(declared_type("[BOOLEAN, INTEGER]"), SqlType::Varchar);
        assert_eq!(declared_type("NULL"), SqlType::Varchar);
        assert_eq!(declared_type("ZONED_DATE_TIME"), SqlType::TimestampTz);
    }
}
