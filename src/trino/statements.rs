//! Statements a Trino client sends that change its session rather than ask
//! the engine: `USE`, `SET/RESET SESSION`, `START TRANSACTION`/`COMMIT`/
//! `ROLLBACK` (read-only, accepted), `PREPARE`/`DEALLOCATE PREPARE` — their
//! effect goes back in `X-Trino-*` headers — and `EXECUTE … USING` /
//! `EXECUTE IMMEDIATE`, which become the query they name with the values
//! in place of its `?` (the prepared text comes from the client's
//! `X-Trino-Prepared-Statement` header, not from server memory).

use std::collections::HashMap;

/// What a statement is to the front end.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// A query for the engine (perhaps rewritten from EXECUTE).
    Query(String),
    /// `DESCRIBE INPUT name` (`output` false: the parameters) or `DESCRIBE
    /// OUTPUT name` (the result columns) of the prepared statement `sql`.
    Describe {
        /// Whether the result columns are asked for.
        output: bool,
        /// The prepared statement's text.
        sql: String,
    },
    /// A session change: the `updateType` and the response headers carrying it.
    Session {
        /// Trino's `updateType`, e.g. `USE`.
        update_type: &'static str,
        /// Headers for the client.
        headers: Vec<(&'static str, String)>,
    },
}

/// `name1=sql1,name2=sql2` (values form-encoded) as a map.
pub fn prepared_header(value: &str) -> HashMap<String, String> {
    value
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), decode(v.trim())))
        .collect()
}

/// Form-decoding (`+` is a space, `%XX` with two hex digits a byte; any
/// other `%` stays as it is).
pub(crate) fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            // Byte by byte: the two digits may not be characters of their own.
            b'%' => match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Form-encoding: everything but letters, digits and `-_.~` as `%XX`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// The words of `sql` up to `n`, upper-cased.
fn words(sql: &str, n: usize) -> Vec<String> {
    sql.split_whitespace()
        .take(n)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect()
}

/// `sql` with the text after its first `n` words.
fn after_words(sql: &str, n: usize) -> &str {
    let mut rest = sql.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.trim_end().trim_end_matches(';').trim_end()
}

fn unquote_identifier(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_ascii_lowercase(),
    }
}

/// What `sql` is, with the prepared statements the client holds.
pub fn interpret(sql: &str, prepared: &HashMap<String, String>) -> Result<Statement, String> {
    let w = words(sql, 3);
    let first = w.first().map(String::as_str).unwrap_or("");
    let session = |update_type: &'static str, headers: Vec<(&'static str, String)>| {
        Ok(Statement::Session {
            update_type,
            headers,
        })
    };
    match first {
        "USE" => {
            let target = after_words(sql, 1);
            let parts: Vec<String> = target.split('.').map(unquote_identifier).collect();
            match parts.as_slice() {
                [schema] => session("USE", vec![("X-Trino-Set-Schema", schema.clone())]),
                [catalog, schema] => session(
                    "USE",
                    vec![
                        ("X-Trino-Set-Catalog", catalog.clone()),
                        ("X-Trino-Set-Schema", schema.clone()),
                    ],
                ),
                _ => Err(format!(
                    "USE takes schema or catalog.schema, not '{target}'"
                )),
            }
        }
        "SET" if w.get(1).map(String::as_str) == Some("SESSION") => {
            let rest = after_words(sql, 2);
            let (name, value) = rest
                .split_once('=')
                .ok_or("SET SESSION takes name = value")?;
            let value = value.trim();
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .map(|v| v.replace("''", "'"))
                .unwrap_or_else(|| value.to_string());
            session(
                "SET SESSION",
                vec![(
                    "X-Trino-Set-Session",
                    format!("{}={}", name.trim(), encode(&value)),
                )],
            )
        }
        "RESET" if w.get(1).map(String::as_str) == Some("SESSION") => session(
            "RESET SESSION",
            vec![("X-Trino-Clear-Session", after_words(sql, 2).to_string())],
        ),
        "START" if w.get(1).map(String::as_str) == Some("TRANSACTION") => session(
            "START TRANSACTION",
            vec![(
                "X-Trino-Started-Transaction-Id",
                uuid::Uuid::new_v4().to_string(),
            )],
        ),
        "COMMIT" | "ROLLBACK" => session(
            if first == "COMMIT" {
                "COMMIT"
            } else {
                "ROLLBACK"
            },
            vec![("X-Trino-Clear-Transaction-Id", "true".into())],
        ),
        "PREPARE" => {
            let rest = after_words(sql, 1);
            let (name, body) = rest
                .split_once(char::is_whitespace)
                .ok_or("PREPARE takes: PREPARE name FROM statement")?;
            let body = body.trim_start();
            let body = body
                .get(..4)
                .filter(|f| f.eq_ignore_ascii_case("FROM"))
                .map(|_| body[4..].trim())
                .ok_or("PREPARE takes: PREPARE name FROM statement")?;
            session(
                "PREPARE",
                vec![("X-Trino-Added-Prepare", format!("{name}={}", encode(body)))],
            )
        }
        "DEALLOCATE" if w.get(1).map(String::as_str) == Some("PREPARE") => session(
            "DEALLOCATE",
            vec![(
                "X-Trino-Deallocated-Prepare",
                after_words(sql, 2).to_string(),
            )],
        ),
        "EXECUTE" if w.get(1).map(String::as_str) == Some("IMMEDIATE") => {
            let rest = after_words(sql, 2);
            let (text, rest) = quoted(rest).ok_or("EXECUTE IMMEDIATE takes a quoted statement")?;
            Ok(Statement::Query(bind(&text, using(rest)?)?))
        }
        "DESCRIBE" if matches!(w.get(1).map(String::as_str), Some("INPUT" | "OUTPUT")) => {
            let name = after_words(sql, 2).trim().trim_end_matches(';').trim();
            let text = prepared.get(name).ok_or_else(|| {
                format!("Prepared statement not found: {name} (the client sends its prepared statements in X-Trino-Prepared-Statement)")
            })?;
            Ok(Statement::Describe {
                output: w[1] == "OUTPUT",
                sql: text.clone(),
            })
        }
        "EXECUTE" => {
            let rest = after_words(sql, 1);
            let (name, rest) = match rest.split_once(char::is_whitespace) {
                Some((n, r)) => (n, r),
                None => (rest, ""),
            };
            let text = prepared.get(name).ok_or_else(|| {
                format!("Prepared statement not found: {name} (the client sends its prepared statements in X-Trino-Prepared-Statement)")
            })?;
            Ok(Statement::Query(bind(text, using(rest)?)?))
        }
        _ => Ok(Statement::Query(sql.to_string())),
    }
}

/// A leading `'…'` string literal and the text after it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    let body = s.strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|(_, n)| *n) == Some('\'') {
                out.push('\'');
                chars.next();
            } else {
                return Some((out, &body[i + 1..]));
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// The values after `USING`, split at top-level commas.
fn using(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let values = rest
        .get(..5)
        .filter(|u| u.eq_ignore_ascii_case("USING"))
        .map(|_| &rest[5..])
        .ok_or_else(|| format!("expected USING, found '{rest}'"))?;
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, false, 0);
    let b = values.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\'' => quote = !quote,
            b'(' | b'[' if !quote => depth += 1,
            b')' | b']' if !quote => depth -= 1,
            b',' if !quote && depth == 0 => {
                out.push(values[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(values[start..].trim().to_string());
    Ok(out)
}

/// `sql` with each `?` outside string literals and quoted names replaced by
/// the next value.
fn bind(sql: &str, values: Vec<String>) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut next = values.into_iter();
    let mut quote: Option<char> = None;
    let mut used = 0;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (None, '?') => {
                let v = next.next().ok_or_else(|| {
                    format!("the statement has more parameters than the {used} values given")
                })?;
                out.push_str(&v);
                used += 1;
            }
            _ => out.push(c),
        }
    }
    if next.next().is_some() {
        return Err(format!(
            "the statement has {used} parameters but more values were given"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_statements_become_headers() {
        let none = HashMap::new();
        assert_eq!(
            interpret("USE cyoda.entities", &none).unwrap(),
            Statement::Session {
                update_type: "USE",
                headers: vec![
                    ("X-Trino-Set-Catalog", "cyoda".into()),
                    ("X-Trino-Set-Schema", "entities".into())
                ]
            }
        );
        let Statement::Session { headers, .. } =
            interpret("PREPARE q1 FROM SELECT * FROM t WHERE a = ?", &none).unwrap()
        else {
            panic!()
        };
        let map = prepared_header(&headers[0].1);
        assert_eq!(map["q1"], "SELECT * FROM t WHERE a = ?");
    }

    #[test]
    fn execute_binds_values_in_order() {
        let mut prepared = HashMap::new();
        prepared.insert("q".to_string(), "SELECT ?, '?', ? + 1".to_string());
        assert_eq!(
            interpret("EXECUTE q USING 'a,b', ARRAY[1,2]", &prepared).unwrap(),
            Statement::Query("SELECT 'a,b', '?', ARRAY[1,2] + 1".into())
        );
        assert_eq!(
            interpret(
                "EXECUTE IMMEDIATE 'SELECT ''x'', ?' USING DATE '2024-01-01'",
                &prepared
            )
            .unwrap(),
            Statement::Query("SELECT 'x', DATE '2024-01-01'".into())
        );
        assert!(
            interpret("EXECUTE nope", &prepared)
                .unwrap_err()
                .contains("not found")
        );
        assert!(interpret("EXECUTE q USING 1", &prepared).is_err());
        assert_eq!(decode("a+b%27c"), "a b'c");
    }

    #[test]
    fn decoding_never_splits_a_character() {
        // `%` followed by a letter and a multi-byte character: the two
        // "hex digits" end inside the character (this panicked).
        assert_eq!(decode("%aé"), "%aé");
        assert_eq!(decode("%é1"), "%é1");
        assert_eq!(decode("%e2%82%ac%4"), "€%4");
        assert_eq!(decode("%+1%-1"), "% 1%-1");
        assert_eq!(prepared_header("q=%aé")["q"], "%aé");
    }
}
