//! Engine errors as Trino's `error` object: `message`, `errorCode`,
//! `errorName`, `errorType` and, for syntax errors, `errorLocation`.

use datafusion::error::DataFusionError;
use serde_json::{Value, json};

use crate::error_class::{ErrorClass, class};

/// A Trino error: name, code and type (USER_ERROR, INTERNAL_ERROR,
/// INSUFFICIENT_RESOURCES, EXTERNAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// E.g. `SYNTAX_ERROR`.
    pub name: &'static str,
    /// Trino's numeric code for it.
    pub code: i64,
    /// Its type.
    pub kind: &'static str,
}

const fn kind(name: &'static str, code: i64, kind: &'static str) -> Kind {
    Kind { name, code, kind }
}

/// Trino's standard error codes used here.
pub mod codes {
    use super::{Kind, kind};
    /// The SQL does not parse.
    pub const SYNTAX_ERROR: Kind = kind("SYNTAX_ERROR", 1, "USER_ERROR");
    /// Something named does not exist (a prepared statement).
    pub const NOT_FOUND: Kind = kind("NOT_FOUND", 5, "USER_ERROR");
    /// Cancelled by the client.
    pub const USER_CANCELED: Kind = kind("USER_CANCELED", 3, "USER_ERROR");
    /// A function that does not exist.
    pub const FUNCTION_NOT_FOUND: Kind = kind("FUNCTION_NOT_FOUND", 6, "USER_ERROR");
    /// Division by zero.
    pub const DIVISION_BY_ZERO: Kind = kind("DIVISION_BY_ZERO", 8, "USER_ERROR");
    /// A function's argument it cannot work with (a bad pattern, text that is not JSON).
    pub const INVALID_FUNCTION_ARGUMENT: Kind = kind("INVALID_FUNCTION_ARGUMENT", 7, "USER_ERROR");
    /// A number too large for its type.
    pub const NUMERIC_VALUE_OUT_OF_RANGE: Kind =
        kind("NUMERIC_VALUE_OUT_OF_RANGE", 19, "USER_ERROR");
    /// A column neither grouped nor aggregated.
    pub const EXPRESSION_NOT_AGGREGATE: Kind = kind("EXPRESSION_NOT_AGGREGATE", 73, "USER_ERROR");
    /// A name that could mean more than one column.
    pub const AMBIGUOUS_NAME: Kind = kind("AMBIGUOUS_NAME", 62, "USER_ERROR");
    /// A value that cannot be cast.
    pub const INVALID_CAST_ARGUMENT: Kind = kind("INVALID_CAST_ARGUMENT", 9, "USER_ERROR");
    /// Too many queries.
    pub const QUERY_REJECTED: Kind = kind("QUERY_REJECTED", 31, "USER_ERROR");
    /// Unknown catalog.
    pub const CATALOG_NOT_FOUND: Kind = kind("CATALOG_NOT_FOUND", 44, "USER_ERROR");
    /// Unknown schema.
    pub const SCHEMA_NOT_FOUND: Kind = kind("SCHEMA_NOT_FOUND", 45, "USER_ERROR");
    /// Unknown table.
    pub const TABLE_NOT_FOUND: Kind = kind("TABLE_NOT_FOUND", 46, "USER_ERROR");
    /// Unknown column.
    pub const COLUMN_NOT_FOUND: Kind = kind("COLUMN_NOT_FOUND", 47, "USER_ERROR");
    /// Wrong types for an operation.
    pub const TYPE_MISMATCH: Kind = kind("TYPE_MISMATCH", 58, "USER_ERROR");
    /// Any other mistake in the query.
    pub const GENERIC_USER_ERROR: Kind = kind("GENERIC_USER_ERROR", 0, "USER_ERROR");
    /// A fault of the server.
    pub const GENERIC_INTERNAL_ERROR: Kind =
        kind("GENERIC_INTERNAL_ERROR", 65536, "INTERNAL_ERROR");
    /// The query ran out of time.
    pub const EXCEEDED_TIME_LIMIT: Kind =
        kind("EXCEEDED_TIME_LIMIT", 131075, "INSUFFICIENT_RESOURCES");
    /// The query needs more disk to spill to than it may use.
    pub const EXCEEDED_SPILL_LIMIT: Kind =
        kind("EXCEEDED_SPILL_LIMIT", 131078, "INSUFFICIENT_RESOURCES");
    /// The query needs more memory than it may use.
    pub const EXCEEDED_LOCAL_MEMORY_LIMIT: Kind = kind(
        "EXCEEDED_LOCAL_MEMORY_LIMIT",
        131079,
        "INSUFFICIENT_RESOURCES",
    );
    /// A source behind the server failed.
    pub const GENERIC_EXTERNAL: Kind = kind("GENERIC_EXTERNAL", 16777216, "EXTERNAL");
}

/// The Trino error `e` is.
pub fn kind_of(e: &DataFusionError) -> Kind {
    if tsql_entity_tables::UpstreamError::find(e).is_some() {
        return codes::GENERIC_EXTERNAL;
    }
    if let DataFusionError::External(inner) = e.find_root()
        && inner.is::<crate::admission::QueryTimeout>()
    {
        return codes::EXCEEDED_TIME_LIMIT;
    }
    let message = e.to_string();
    if crate::trino_functions::is_argument_error(&message) {
        return codes::INVALID_FUNCTION_ARGUMENT;
    }
    if message.contains("Arithmetic overflow") || message.contains("Overflow happened") {
        return codes::NUMERIC_VALUE_OUT_OF_RANGE;
    }
    match class(e) {
        ErrorClass::Syntax => codes::SYNTAX_ERROR,
        _ if message.contains("No SQL statements were provided") => codes::SYNTAX_ERROR,
        ErrorClass::NotFound if message.contains("chema '") => codes::SCHEMA_NOT_FOUND,
        ErrorClass::NotFound if message.contains("atalog") => codes::CATALOG_NOT_FOUND,
        ErrorClass::NotFound => codes::TABLE_NOT_FOUND,
        ErrorClass::Invalid if message.contains("No field named") => codes::COLUMN_NOT_FOUND,
        ErrorClass::Invalid if message.contains("Invalid function") => codes::FUNCTION_NOT_FOUND,
        ErrorClass::Invalid if message.contains("Divide by zero") => codes::DIVISION_BY_ZERO,
        ErrorClass::Invalid
            if message.contains("No function matches")
                || message.contains("Failed to coerce arguments")
                || message.contains("does not take") =>
        {
            codes::FUNCTION_NOT_FOUND
        }
        ErrorClass::Invalid if message.contains("GROUP BY") => codes::EXPRESSION_NOT_AGGREGATE,
        ErrorClass::Invalid if message.contains("Ambiguous reference") => codes::AMBIGUOUS_NAME,
        ErrorClass::Invalid if message.contains("non-boolean predicate") => codes::TYPE_MISMATCH,
        ErrorClass::Invalid if message.contains("ast") => codes::INVALID_CAST_ARGUMENT,
        ErrorClass::Invalid if message.contains("type") || message.contains("coerc") => {
            codes::TYPE_MISMATCH
        }
        ErrorClass::Invalid => codes::GENERIC_USER_ERROR,
        ErrorClass::Cancelled => codes::USER_CANCELED,
        ErrorClass::Exhausted if crate::error_class::is_spill_limit(e) => {
            codes::EXCEEDED_SPILL_LIMIT
        }
        ErrorClass::Exhausted => codes::EXCEEDED_LOCAL_MEMORY_LIMIT,
        ErrorClass::BadData => codes::GENERIC_EXTERNAL,
        ErrorClass::Internal => codes::GENERIC_INTERNAL_ERROR,
    }
}

/// The Trino error of a table that is not found, told apart when its
/// catalog or schema is what is missing (`engine` is the caller's).
pub fn refine_not_found(kind: Kind, message: &str, engine: &crate::Engine) -> Kind {
    if kind != codes::TABLE_NOT_FOUND {
        return kind;
    }
    let Some(name) = message
        .split("table '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
    else {
        return kind;
    };
    let parts: Vec<&str> = name.split('.').collect();
    let [catalog, schema, _] = parts.as_slice() else {
        return kind;
    };
    match engine.context().catalog(catalog) {
        None => codes::CATALOG_NOT_FOUND,
        Some(c) if c.schema(schema).is_none() => codes::SCHEMA_NOT_FOUND,
        Some(_) => kind,
    }
}

/// A syntax error's `message` with the place it points at when the parser
/// gave none: the end of `sql` for a statement that ends too early, the
/// start for an empty one (Trino's errorLocation).
pub fn with_place(message: String, sql: &str) -> String {
    if message.contains("Line: ") {
        return message;
    }
    let (line, column) = if message.contains("found: EOF") {
        let text = sql.trim_end();
        let line = text.lines().count().max(1);
        let column = text.lines().last().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    } else if message.contains("No SQL statements") {
        (1, 1)
    } else {
        return message;
    };
    format!("{message} at Line: {line}, Column: {column}")
}

/// `Line: L, Column: C` in a parser message, as Trino's `errorLocation`.
fn location(message: &str) -> Option<Value> {
    let at = message.find("Line: ")?;
    let rest = &message[at + 6..];
    let line: i64 = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let col_at = rest.find("Column: ")?;
    let column: i64 = rest[col_at + 8..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(json!({"lineNumber": line, "columnNumber": column}))
}

/// The `error` object of a failed query.
pub fn error_json(kind: Kind, message: &str) -> Value {
    let mut e = json!({
        "message": message,
        "errorCode": kind.code,
        "errorName": kind.name,
        "errorType": kind.kind,
        "failureInfo": {"type": "io.trino.spi.TrinoException", "message": message, "suppressed": [], "stack": []},
    });
    if let Some(l) = location(message) {
        e["errorLocation"] = l.clone();
        e["failureInfo"]["errorLocation"] = l;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_carry_their_place() {
        let e = error_json(
            codes::SYNTAX_ERROR,
            "Expected: an expression, found: FROM at Line: 1, Column: 8",
        );
        assert_eq!(
            e["errorLocation"],
            json!({"lineNumber": 1, "columnNumber": 8})
        );
        assert_eq!(e["errorName"], "SYNTAX_ERROR");
        let t = kind_of(&DataFusionError::Plan("table 'x.y.z' not found".into()));
        assert_eq!(t, codes::TABLE_NOT_FOUND);
    }
}
