//! Which filters become CQL: partition-key equality and `IN` (direct
//! partition reads), clustering-key equality and ranges after them, and —
//! only with `allow_filtering` — the same on other columns. Everything
//! pushed is applied by Cassandra exactly as SQL would; the rest stays with
//! DataFusion.

use datafusion::logical_expr::{Expr, Operator};
use datafusion::scalar::ScalarValue;
use scylla::value::{CqlDate, CqlTimestamp, CqlTimeuuid, CqlValue};

use crate::cluster::{ColumnKind, TableInfo, quote};
use crate::cql_type::CqlType;

/// More partitions than this are read by scanning instead.
pub const MAX_PARTITION_READS: usize = 256;

/// A comparison sent to Cassandra.
#[derive(Debug, Clone, PartialEq)]
pub enum Restriction {
    /// `column = value` or `column IN (values)`.
    In(usize, Vec<CqlValue>),
    /// `column <op> value` with `op` one of `<`, `<=`, `>`, `>=`.
    Range(usize, &'static str, CqlValue),
}

/// What a scan sends to Cassandra, and which of its filters that covers.
#[derive(Debug, Clone, Default)]
pub struct Pushdown {
    /// Every partition-key column's values, when the key is fully given.
    pub partitions: Option<Vec<Vec<CqlValue>>>,
    /// Other restrictions, in key order.
    pub restrictions: Vec<Restriction>,
    /// Whether `ALLOW FILTERING` is needed.
    pub allow_filtering: bool,
    /// Per filter: whether Cassandra applies it.
    pub used: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Atom {
    filter: usize,
    column: usize,
    op: &'static str,
    values: Vec<CqlValue>,
}

impl Pushdown {
    /// The pushdown of `filters` on `info`.
    pub fn plan(info: &TableInfo, filters: &[&Expr], allow_filtering: bool) -> Pushdown {
        let atoms: Vec<Atom> = filters
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                atom(info, f).map(|mut a| {
                    a.filter = i;
                    a
                })
            })
            .collect();
        let mut out = Pushdown {
            used: vec![false; filters.len()],
            ..Default::default()
        };
        let eq_on = |col: usize| atoms.iter().find(|a| a.column == col && a.op == "=");
        // Partition key: every column given by = or IN.
        let pk = info.partition_key();
        let given: Option<Vec<&Atom>> = pk.iter().map(|c| eq_on(*c)).collect();
        let mut combos = 1usize;
        let full_key = match given {
            Some(atoms_pk) => {
                for a in &atoms_pk {
                    combos = combos.saturating_mul(a.values.len());
                }
                if combos <= MAX_PARTITION_READS && combos > 0 {
                    out.partitions = Some(atoms_pk.iter().map(|a| a.values.clone()).collect());
                    for a in &atoms_pk {
                        out.used[a.filter] = true;
                    }
                    true
                } else {
                    false
                }
            }
            None => false,
        };
        if !full_key && !allow_filtering {
            return out;
        }
        // Clustering columns: equalities (one value) in key order, then one range.
        for c in info.clustering_key() {
            if let Some(a) = eq_on(c).filter(|a| a.values.len() == 1) {
                out.restrictions.push(Restriction::In(c, a.values.clone()));
                out.used[a.filter] = true;
                continue;
            }
            let ranges: Vec<&Atom> = atoms
                .iter()
                .filter(|a| a.column == c && a.op != "=" && range_type(info, c))
                .collect();
            let lower = ranges.iter().find(|a| a.op.starts_with('>'));
            let upper = ranges.iter().find(|a| a.op.starts_with('<'));
            for a in lower.into_iter().chain(upper) {
                out.restrictions
                    .push(Restriction::Range(c, a.op, a.values[0].clone()));
                out.used[a.filter] = true;
            }
            break;
        }
        if !full_key && out.restrictions.iter().any(|_| true) {
            out.allow_filtering = true;
        }
        if allow_filtering {
            // Other columns: single-value equality.
            for a in &atoms {
                let kind = info.columns[a.column].kind;
                if matches!(kind, ColumnKind::Regular | ColumnKind::Static)
                    && a.op == "="
                    && a.values.len() == 1
                    && !out.used[a.filter]
                {
                    out.restrictions
                        .push(Restriction::In(a.column, a.values.clone()));
                    out.used[a.filter] = true;
                    out.allow_filtering = true;
                }
            }
        }
        out
    }

    /// The WHERE conditions after the partition key or token range, with
    /// their values in bind order.
    pub fn conditions(&self, info: &TableInfo) -> (Vec<String>, Vec<CqlValue>) {
        let mut text = Vec::new();
        let mut values = Vec::new();
        for r in &self.restrictions {
            match r {
                Restriction::In(c, vs) => {
                    text.push(format!("{} = ?", quote(&info.columns[*c].name)));
                    values.push(vs[0].clone());
                }
                Restriction::Range(c, op, v) => {
                    text.push(format!("{} {op} ?", quote(&info.columns[*c].name)));
                    values.push(v.clone());
                }
            }
        }
        (text, values)
    }

    /// Every partition key to read (one value per key column), when the key is given.
    pub fn partition_keys(&self) -> Option<Vec<Vec<CqlValue>>> {
        let per_column = self.partitions.as_ref()?;
        let mut keys: Vec<Vec<CqlValue>> = vec![Vec::new()];
        for values in per_column {
            let mut next = Vec::with_capacity(keys.len() * values.len());
            for k in &keys {
                for v in values {
                    let mut k = k.clone();
                    k.push(v.clone());
                    next.push(k);
                }
            }
            keys = next;
        }
        keys.dedup();
        Some(keys)
    }
}

fn range_type(info: &TableInfo, column: usize) -> bool {
    matches!(
        info.columns[column].cql,
        Ok(CqlType::Text
            | CqlType::TinyInt
            | CqlType::SmallInt
            | CqlType::Int
            | CqlType::BigInt
            | CqlType::Timestamp
            | CqlType::Date)
    )
}

/// `column op literal`, `literal op column` or `column IN (literals)` on a
/// column of a pushable type, with values Cassandra compares as SQL does.
fn atom(info: &TableInfo, e: &Expr) -> Option<Atom> {
    let column_of = |e: &Expr| match e {
        Expr::Column(c) => info.column(&c.name),
        _ => None,
    };
    match e {
        Expr::BinaryExpr(b) if b.op != Operator::Or => {
            let (col, lit, op) =
                match (column_of(&b.left), &*b.right, column_of(&b.right), &*b.left) {
                    (Some(c), Expr::Literal(v, _), _, _) => (c, v, b.op),
                    (_, _, Some(c), Expr::Literal(v, _)) => (c, v, b.op.swap()?),
                    _ => return None,
                };
            let op = match op {
                Operator::Eq => "=",
                Operator::Lt => "<",
                Operator::LtEq => "<=",
                Operator::Gt => ">",
                Operator::GtEq => ">=",
                _ => return None,
            };
            let value = to_cql(info, col, lit)?;
            Some(Atom {
                filter: 0,
                column: col,
                op,
                values: vec![value],
            })
        }
        // `a = 1 OR a = 2` (how short IN lists arrive) is `a IN (1, 2)`.
        Expr::BinaryExpr(b) if b.op == Operator::Or => {
            let (l, r) = (atom(info, &b.left)?, atom(info, &b.right)?);
            if l.column != r.column || l.op != "=" || r.op != "=" {
                return None;
            }
            let mut values = l.values;
            for v in r.values {
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            Some(Atom {
                filter: 0,
                column: l.column,
                op: "=",
                values,
            })
        }
        Expr::InList(l) if !l.negated => {
            let col = column_of(&l.expr)?;
            let mut values = Vec::new();
            for item in &l.list {
                let Expr::Literal(v, _) = item else {
                    return None;
                };
                let v = to_cql(info, col, v)?;
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            Some(Atom {
                filter: 0,
                column: col,
                op: "=",
                values,
            })
        }
        _ => None,
    }
}

/// A SQL literal as the CQL value of `column`'s type, when Cassandra would
/// compare it exactly as SQL compares the column's Arrow value.
fn to_cql(info: &TableInfo, column: usize, v: &ScalarValue) -> Option<CqlValue> {
    let t = info.columns[column].cql.as_ref().ok()?;
    if !t.pushable() || v.is_null() {
        return None;
    }
    let int = || -> Option<i64> {
        match v {
            ScalarValue::Int8(Some(x)) => Some(*x as i64),
            ScalarValue::Int16(Some(x)) => Some(*x as i64),
            ScalarValue::Int32(Some(x)) => Some(*x as i64),
            ScalarValue::Int64(Some(x)) => Some(*x),
            ScalarValue::UInt8(Some(x)) => Some(*x as i64),
            ScalarValue::UInt16(Some(x)) => Some(*x as i64),
            ScalarValue::UInt32(Some(x)) => Some(*x as i64),
            ScalarValue::UInt64(Some(x)) => i64::try_from(*x).ok(),
            _ => None,
        }
    };
    let text = || -> Option<&str> {
        match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Some(s.as_str()),
            _ => None,
        }
    };
    Some(match t {
        CqlType::Text => CqlValue::Text(text()?.to_string()),
        CqlType::TinyInt => CqlValue::TinyInt(int()?.try_into().ok()?),
        CqlType::SmallInt => CqlValue::SmallInt(int()?.try_into().ok()?),
        CqlType::Int => CqlValue::Int(int()?.try_into().ok()?),
        CqlType::BigInt => CqlValue::BigInt(int()?),
        CqlType::Boolean => match v {
            ScalarValue::Boolean(Some(b)) => CqlValue::Boolean(*b),
            _ => return None,
        },
        CqlType::Uuid | CqlType::Timeuuid => {
            let s = text()?;
            let u = uuid::Uuid::parse_str(s).ok()?;
            // The column holds the canonical text; only that text compares equal in SQL.
            if u.hyphenated().to_string() != s {
                return None;
            }
            if *t == CqlType::Uuid {
                CqlValue::Uuid(u)
            } else {
                CqlValue::Timeuuid(CqlTimeuuid::from(u))
            }
        }
        CqlType::Timestamp => {
            let ms = match v {
                ScalarValue::TimestampMillisecond(Some(x), _) => *x,
                ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1000)?,
                ScalarValue::TimestampMicrosecond(Some(x), _) if x % 1000 == 0 => x / 1000,
                ScalarValue::TimestampNanosecond(Some(x), _) if x % 1_000_000 == 0 => x / 1_000_000,
                _ => return None,
            };
            CqlValue::Timestamp(CqlTimestamp(ms))
        }
        CqlType::Date => match v {
            ScalarValue::Date32(Some(d)) => {
                CqlValue::Date(CqlDate((*d as i64 + (1i64 << 31)) as u32))
            }
            _ => return None,
        },
        _ => return None,
    })
}

/// A CQL value as a literal, for `EXPLAIN`.
pub fn show(v: &CqlValue) -> String {
    match v {
        CqlValue::Text(s) | CqlValue::Ascii(s) => format!("'{}'", s.replace('\'', "''")),
        CqlValue::Timestamp(t) => chrono::DateTime::from_timestamp_millis(t.0)
            .map(|d| format!("'{}'", d.format("%Y-%m-%dT%H:%M:%S%.3fZ")))
            .unwrap_or_else(|| t.0.to_string()),
        CqlValue::Date(d) => chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|e| e.checked_add_signed(chrono::Duration::days(d.0 as i64 - (1i64 << 31))))
            .map(|d| format!("'{d}'"))
            .unwrap_or_else(|| d.0.to_string()),
        CqlValue::Uuid(u) => u.to_string(),
        CqlValue::Timeuuid(u) => u.to_string(),
        CqlValue::Int(x) => x.to_string(),
        CqlValue::BigInt(x) => x.to_string(),
        CqlValue::SmallInt(x) => x.to_string(),
        CqlValue::TinyInt(x) => x.to_string(),
        CqlValue::Boolean(x) => x.to_string(),
        CqlValue::Double(x) => x.to_string(),
        CqlValue::Float(x) => x.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ColumnInfo;
    use datafusion::prelude::{col, lit};

    /// `events (tenant text, day date, seq int, kind text, PRIMARY KEY ((tenant, day), seq))`.
    fn events() -> TableInfo {
        let c = |name: &str, cql: CqlType, kind, position| ColumnInfo {
            name: name.into(),
            type_text: String::new(),
            cql: Ok(cql),
            kind,
            position,
        };
        TableInfo {
            keyspace: "ks".into(),
            name: "events".into(),
            columns: vec![
                c("tenant", CqlType::Text, ColumnKind::PartitionKey, 0),
                c("day", CqlType::Date, ColumnKind::PartitionKey, 1),
                c("seq", CqlType::Int, ColumnKind::Clustering, 0),
                c("kind", CqlType::Text, ColumnKind::Regular, -1),
            ],
        }
    }

    fn day(d: i32) -> Expr {
        lit(ScalarValue::Date32(Some(d)))
    }

    #[test]
    fn a_full_partition_key_reads_partitions_and_pushes_clustering_ranges() {
        let info = events();
        let f = [
            col("tenant").in_list(vec![lit("a"), lit("b")], false),
            col("day").eq(day(3)),
            col("seq").gt_eq(lit(10i32)),
            col("seq").lt(lit(20i64)),
            col("kind").eq(lit("x")),
        ];
        let refs: Vec<&Expr> = f.iter().collect();
        let p = Pushdown::plan(&info, &refs, false);
        assert_eq!(p.used, vec![true, true, true, true, false]);
        assert_eq!(p.partition_keys().unwrap().len(), 2);
        assert_eq!(p.conditions(&info).0, vec!["\"seq\" >= ?", "\"seq\" < ?"]);
        assert!(!p.allow_filtering);
    }

    #[test]
    fn or_of_equalities_is_an_in_list() {
        let info = events();
        let f = [
            col("tenant").eq(lit("a")).or(col("tenant").eq(lit("b"))),
            col("day").eq(day(1)),
        ];
        let refs: Vec<&Expr> = f.iter().collect();
        let p = Pushdown::plan(&info, &refs, false);
        assert_eq!(p.used, vec![true, true]);
        assert_eq!(p.partition_keys().unwrap().len(), 2);
    }

    #[test]
    fn without_the_whole_partition_key_nothing_is_pushed_unless_filtering_is_allowed() {
        let info = events();
        let f = [
            col("tenant").eq(lit("a")),
            col("seq").gt(lit(5i32)),
            col("kind").eq(lit("x")),
        ];
        let refs: Vec<&Expr> = f.iter().collect();
        let p = Pushdown::plan(&info, &refs, false);
        assert_eq!(p.used, vec![false, false, false]);
        let p = Pushdown::plan(&info, &refs, true);
        assert!(p.partitions.is_none());
        assert_eq!(p.used, vec![false, true, true]);
        assert!(p.allow_filtering);
    }

    #[test]
    fn values_that_sql_compares_differently_stay_behind() {
        let info = events();
        // 2^40 does not fit an int column; NULL never matches.
        let f = [
            col("tenant").eq(lit("a")),
            col("day").eq(day(1)),
            col("seq").gt(lit(1i64 << 40)),
            col("kind").eq(lit(ScalarValue::Utf8(None))),
        ];
        let refs: Vec<&Expr> = f.iter().collect();
        let p = Pushdown::plan(&info, &refs, false);
        assert_eq!(p.used, vec![true, true, false, false]);
    }
}
