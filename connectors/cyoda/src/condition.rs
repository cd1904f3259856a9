//! Pushed filters as Cyoda search conditions: `simple` on JSON paths,
//! `lifecycle` for the entity's state and dates, `group` for AND/OR.
//!
//! Only what selects at least every entity SQL would is sent (the engine
//! re-checks each row): see [`accepts`] for what was checked against the service.

use serde_json::{Value, json};
use tsql_entity_tables::temporal::format_micros_utc;
use tsql_entity_tables::{CompareOp, Field, Literal, Predicate, SqlType};

/// Whether the service evaluates `p` so that it keeps every entity SQL keeps.
pub fn accepts(p: &Predicate) -> bool {
    match p {
        Predicate::All(ps) | Predicate::Any(ps) => !ps.is_empty() && ps.iter().all(accepts),
        Predicate::Compare(field, op, value) => compare_accepted(field, *op, value),
        Predicate::IsNull(f) | Predicate::NotNull(f) => match f {
            // On an array path "null" is ambiguous (no element, or a null element).
            Field::Data {
                in_array, sql_type, ..
            } => !in_array && scalar(sql_type),
            _ => false,
        },
        Predicate::Like(f, _) | Predicate::StartsWith(f, _) => match f {
            Field::Data { sql_type, .. } => *sql_type == SqlType::Varchar,
            Field::State => true,
            _ => false,
        },
    }
}

fn scalar(t: &SqlType) -> bool {
    !matches!(t, SqlType::Array(_) | SqlType::Varbinary)
}

/// Checked against cyoda-go 0.8.3: strings compare case-sensitively in byte
/// order and NOT_EQUAL leaves out null and absent fields, as SQL does;
/// integers compare numerically with whole operands (a decimal operand never
/// EQUALS an INTEGER field, so none is sent); DOUBLE fields compare
/// numerically; zoned timestamps compare as instants; an array path matches
/// when any element does.
fn compare_accepted(field: &Field, op: CompareOp, value: &Literal) -> bool {
    let equality = matches!(op, CompareOp::Eq | CompareOp::NotEq);
    match field {
        Field::State => matches!(value, Literal::Text(_)) && equality,
        Field::CreationDate | Field::LastUpdateDate => {
            matches!(value, Literal::Instant(_)) && op != CompareOp::NotEq
        }
        Field::Data { sql_type, .. } => match (sql_type, value) {
            (SqlType::Varchar, Literal::Text(_)) => true,
            (SqlType::Boolean, Literal::Bool(_)) => equality,
            (
                SqlType::TinyInt | SqlType::SmallInt | SqlType::Integer | SqlType::BigInt,
                Literal::Int(_),
            ) => true,
            (SqlType::Real | SqlType::Double, Literal::Int(_) | Literal::Float(_)) => true,
            (SqlType::TimestampTz, Literal::Instant(_)) => op != CompareOp::NotEq,
            _ => false,
        },
    }
}

fn operator(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "EQUALS",
        CompareOp::NotEq => "NOT_EQUAL",
        CompareOp::Gt => "GREATER_THAN",
        CompareOp::GtEq => "GREATER_OR_EQUAL",
        CompareOp::Lt => "LESS_THAN",
        CompareOp::LtEq => "LESS_OR_EQUAL",
    }
}

fn value(v: &Literal) -> Value {
    match v {
        Literal::Text(s) => Value::String(s.clone()),
        Literal::Int(i) => json!(i),
        Literal::Float(f) => json!(f),
        Literal::Decimal(d) => d
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(d.clone())),
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Instant(t) => Value::String(format_micros_utc(*t)),
    }
}

fn leaf(field: &Field, operator_type: &str, v: Value) -> Value {
    match field {
        Field::Data { json_path, .. } => json!({
            "type": "simple",
            "jsonPath": json_path,
            "operatorType": operator_type,
            "value": v,
        }),
        Field::State => {
            json!({"type": "lifecycle", "field": "state", "operatorType": operator_type, "value": v})
        }
        Field::CreationDate => {
            json!({"type": "lifecycle", "field": "creationDate", "operatorType": operator_type, "value": v})
        }
        Field::LastUpdateDate => {
            json!({"type": "lifecycle", "field": "lastUpdateTime", "operatorType": operator_type, "value": v})
        }
    }
}

/// An instant comparison as the service must see it. The service keeps
/// instants to the nanosecond, tsql to the microsecond (a value is cut, not
/// rounded), so each comparison is widened to every instant whose microsecond
/// part compares so: `= t` is `>= t AND < t+1µs`, `> t` is `>= t+1µs`, `<= t` is `< t+1µs`.
fn instant_comparison(field: &Field, op: CompareOp, t: i64) -> Value {
    let at = |micros: i64, op: &str| leaf(field, op, Value::String(format_micros_utc(micros)));
    match op {
        CompareOp::Eq => json!({"type": "group", "operator": "AND", "conditions": [
            at(t, "GREATER_OR_EQUAL"), at(t + 1, "LESS_THAN")]}),
        CompareOp::Gt => at(t + 1, "GREATER_OR_EQUAL"),
        CompareOp::GtEq => at(t, "GREATER_OR_EQUAL"),
        CompareOp::Lt => at(t, "LESS_THAN"),
        CompareOp::LtEq => at(t + 1, "LESS_THAN"),
        CompareOp::NotEq => unreachable!("not accepted"),
    }
}

/// The condition JSON for `p` (which [`accepts`] took).
pub fn condition(p: &Predicate) -> Value {
    match p {
        Predicate::Compare(f, op, Literal::Instant(t)) => instant_comparison(f, *op, *t),
        Predicate::All(ps) => {
            json!({"type": "group", "operator": "AND", "conditions": ps.iter().map(condition).collect::<Vec<_>>()})
        }
        Predicate::Any(ps) => {
            json!({"type": "group", "operator": "OR", "conditions": ps.iter().map(condition).collect::<Vec<_>>()})
        }
        Predicate::Compare(f, op, v) => leaf(f, operator(*op), value(v)),
        Predicate::IsNull(f) => leaf(f, "IS_NULL", Value::Null),
        Predicate::NotNull(f) => leaf(f, "NOT_NULL", Value::Null),
        Predicate::Like(f, pattern) => leaf(f, "LIKE", Value::String(pattern.clone())),
        Predicate::StartsWith(f, prefix) => leaf(f, "STARTS_WITH", Value::String(prefix.clone())),
    }
}

/// A condition that every entity matches.
pub fn match_all() -> Value {
    json!({"type": "group", "operator": "AND", "conditions": []})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku() -> Field {
        Field::Data {
            json_path: "$.lines[*].sku".into(),
            sql_type: SqlType::Varchar,
            in_array: true,
        }
    }

    #[test]
    fn in_lists_become_or_groups_on_array_paths() {
        let p = Predicate::Any(vec![
            Predicate::Compare(sku(), CompareOp::Eq, Literal::Text("A".into())),
            Predicate::Compare(sku(), CompareOp::Eq, Literal::Text("B".into())),
        ]);
        assert!(accepts(&p));
        assert_eq!(
            condition(&p),
            json!({"type":"group","operator":"OR","conditions":[
                {"type":"simple","jsonPath":"$.lines[*].sku","operatorType":"EQUALS","value":"A"},
                {"type":"simple","jsonPath":"$.lines[*].sku","operatorType":"EQUALS","value":"B"}]})
        );
    }

    #[test]
    fn instants_widen_to_whole_microseconds() {
        let p = Predicate::Compare(
            Field::LastUpdateDate,
            CompareOp::Eq,
            Literal::Instant(1_000_000),
        );
        assert!(accepts(&p));
        assert_eq!(
            condition(&p),
            json!({"type":"group","operator":"AND","conditions":[
                {"type":"lifecycle","field":"lastUpdateTime","operatorType":"GREATER_OR_EQUAL","value":"1970-01-01T00:00:01Z"},
                {"type":"lifecycle","field":"lastUpdateTime","operatorType":"LESS_THAN","value":"1970-01-01T00:00:01.000001Z"}]})
        );
        let ne = Predicate::Compare(Field::CreationDate, CompareOp::NotEq, Literal::Instant(0));
        assert!(!accepts(&ne));
    }

    #[test]
    fn only_same_meaning_is_accepted() {
        assert!(!accepts(&Predicate::IsNull(sku())));
        assert!(!accepts(&Predicate::Compare(
            sku(),
            CompareOp::Gt,
            Literal::Int(3)
        )));
        let state = Predicate::Compare(Field::State, CompareOp::Eq, Literal::Text("NEW".into()));
        assert_eq!(condition(&state)["type"], "lifecycle");
        assert!(accepts(&state));
    }
}
