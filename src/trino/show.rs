//! Trino's `SHOW CATALOGS`, `SHOW SCHEMAS`, `SHOW TABLES`, `SHOW COLUMNS` and
//! `DESCRIBE` as queries of the caller's `information_schema` (in Trino's
//! shape: `super::dialect`), answering in
//! Trino's columns (`Catalog`, `Schema`, `Table`; `Column`, `Type`, `Extra`,
//! `Comment`).

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `[[catalog.]schema.]table` with the session's catalog and schema for
/// what it leaves out.
fn qualified(target: &str, catalog: &str, schema: &str) -> Option<(String, String, String)> {
    let parts: Vec<String> = target.trim().split('.').map(name).collect();
    Some(match parts.as_slice() {
        [t] => (catalog.to_string(), schema.to_string(), t.clone()),
        [s, t] => (catalog.to_string(), s.clone(), t.clone()),
        [c, s, t] => (c.clone(), s.clone(), t.clone()),
        _ => return None,
    })
}

/// An identifier in double quotes.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn name(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_ascii_lowercase(),
    }
}

/// `… LIKE 'p' [ESCAPE 'e']` as a condition on `column`, and the text before it.
fn like<'a>(rest: &'a str, column: &str) -> (&'a str, Option<String>) {
    let upper = rest.to_ascii_uppercase();
    match upper
        .find(" LIKE ")
        .or_else(|| upper.starts_with("LIKE ").then_some(0))
    {
        Some(at) => {
            let pattern = rest[at..].trim_start()[4..].trim();
            (&rest[..at], Some(format!("{column} LIKE {pattern}")))
        }
        None => (rest, None),
    }
}

/// A `SHOW`/`DESCRIBE` statement as a query.
#[derive(Debug)]
pub struct Shown {
    /// The query it stands for.
    pub sql: String,
    /// The catalog and schema it names, which must exist.
    pub schema: Option<(String, String)>,
    /// The table it names in that schema, which must exist.
    pub table: Option<String>,
}

/// The query a `SHOW`/`DESCRIBE` statement stands for, under the session's
/// catalog and schema; `None` when `sql` is none of them.
pub fn rewrite(sql: &str, catalog: &str, schema: &str) -> Option<Shown> {
    let mut named = None;
    let mut table = None;
    let sql = query_of(sql, catalog, schema, &mut named, &mut table)?;
    Some(Shown {
        sql,
        schema: named,
        table,
    })
}

fn query_of(
    sql: &str,
    catalog: &str,
    schema: &str,
    named: &mut Option<(String, String)>,
    named_table: &mut Option<String>,
) -> Option<String> {
    let text = sql.trim().trim_end_matches(';').trim();
    let upper = text.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let after = |n: usize| -> &str {
        let mut rest = text;
        for _ in 0..n {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            rest = rest[end..].trim_start();
        }
        rest
    };
    let from = |rest: &str| -> Option<String> {
        let r = rest.trim();
        let u = r.to_ascii_uppercase();
        (u.starts_with("FROM ") || u.starts_with("IN "))
            .then(|| r[r.find(' ').unwrap_or(0)..].trim().to_string())
    };
    let filter = |conds: Vec<String>| -> String {
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    };
    match words.as_slice() {
        ["SHOW", "CATALOGS", ..] => {
            let (_, l) = like(after(2), "catalog_name");
            Some(format!(
                "SELECT catalog_name AS \"Catalog\" FROM system.metadata.catalogs{} ORDER BY 1",
                filter(l.into_iter().collect())
            ))
        }
        ["SHOW", "FUNCTIONS", ..] => {
            let (_, l) = like(after(2), "routine_name");
            Some(format!(
                "SELECT routine_name AS \"Function\", coalesce(tsql_trino_type(data_type), '') AS \"Return Type\", \
                 '' AS \"Argument Types\", lower(function_type) AS \"Function Type\", \
                 is_deterministic AS \"Deterministic\", trim(coalesce(description, '')) AS \"Description\" \
                 FROM information_schema.routines{} ORDER BY 1, 2",
                filter(l.into_iter().collect())
            ))
        }
        ["SHOW", "SESSION", ..] => Some(
            // tsql has no session properties yet: Trino's columns, no rows.
            "SELECT CAST(NULL AS VARCHAR) AS \"Name\", CAST(NULL AS VARCHAR) AS \"Value\", \
             CAST(NULL AS VARCHAR) AS \"Default\", CAST(NULL AS VARCHAR) AS \"Type\", \
             CAST(NULL AS VARCHAR) AS \"Description\" WHERE false"
                .into(),
        ),
        ["SHOW", "CREATE", "TABLE", ..] | ["SHOW", "CREATE", "VIEW", ..] => {
            let (c, s, t) = qualified(after(3), catalog, schema)?;
            *named = Some((c.clone(), s.clone()));
            *named_table = Some(t.clone());
            Some(format!(
                "SELECT 'CREATE TABLE ' || {} || ' (' || chr(10) || \
                 string_agg('   ' || column_name || ' ' || data_type, ',' || chr(10) ORDER BY ordinal_position) || \
                 chr(10) || ')' AS \"Create Table\" \
                 FROM {}.information_schema.columns WHERE table_schema = {} AND table_name = {} \
                 HAVING count(*) > 0",
                literal(&format!("{c}.{s}.{t}")),
                quoted(&c),
                literal(&s),
                literal(&t)
            ))
        }
        ["SHOW", "SCHEMAS", ..] => {
            let (rest, l) = like(after(2), "schema_name");
            let c = from(rest)
                .map(|c| name(&c))
                .unwrap_or_else(|| catalog.to_string());
            Some(format!(
                "SELECT schema_name AS \"Schema\" FROM {}.information_schema.schemata{} ORDER BY 1",
                quoted(&c),
                filter(l.into_iter().collect())
            ))
        }
        ["SHOW", "TABLES", ..] => {
            let (rest, l) = like(after(2), "table_name");
            let (c, s) = match from(rest) {
                Some(target) => match target.split_once('.') {
                    Some((c, s)) => (name(c), name(s)),
                    None => (catalog.to_string(), name(&target)),
                },
                None => (catalog.to_string(), schema.to_string()),
            };
            *named = Some((c.clone(), s.clone()));
            let mut conds = vec![format!("table_schema = {}", literal(&s))];
            conds.extend(l);
            Some(format!(
                "SELECT table_name AS \"Table\" FROM {}.information_schema.tables{} ORDER BY 1",
                quoted(&c),
                filter(conds)
            ))
        }
        ["SHOW", "COLUMNS", ..] | ["DESCRIBE", ..] | ["DESC", ..] => {
            // DESCRIBE INPUT/OUTPUT are about prepared statements.
            if words[0] != "SHOW" && matches!(words.get(1), Some(&"INPUT") | Some(&"OUTPUT")) {
                return None;
            }
            let (rest, l) = if words[0] == "SHOW" {
                like(after(2), "column_name")
            } else {
                (after(1), None)
            };
            let target = if words[0] == "SHOW" {
                from(rest)?
            } else {
                rest.to_string()
            };
            let (c, s, t) = qualified(&target, catalog, schema)?;
            *named = Some((c.clone(), s.clone()));
            *named_table = Some(t.clone());
            let mut conds = vec![
                format!("table_schema = {}", literal(&s)),
                format!("table_name = {}", literal(&t)),
            ];
            conds.extend(l);
            Some(format!(
                "SELECT column_name AS \"Column\", data_type AS \"Type\", '' AS \"Extra\", '' AS \"Comment\" \
                 FROM {}.information_schema.columns{} ORDER BY ordinal_position",
                quoted(&c),
                filter(conds)
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_statements_become_queries() {
        let shown = rewrite("SHOW TABLES FROM cyoda.entities LIKE 'ord%'", "x", "y").unwrap();
        assert_eq!(shown.schema, Some(("cyoda".into(), "entities".into())));
        let q = shown.sql;
        assert!(
            q.contains("\"cyoda\".information_schema.tables")
                && q.contains("table_schema = 'entities'")
        );
        assert!(q.contains("table_name LIKE 'ord%'"));
        let q = rewrite("DESCRIBE orders", "cyoda", "entities").unwrap().sql;
        assert!(q.contains("table_name = 'orders'") && q.contains("\"Type\""));
        assert!(rewrite("SELECT 1", "c", "s").is_none());
        assert!(rewrite("DESCRIBE OUTPUT q", "c", "s").is_none());
    }
}
