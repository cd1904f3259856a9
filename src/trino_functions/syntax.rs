//! Trino SQL that the engine's parser reads but its planner does not, turned
//! into equivalent SQL before planning (for every front end):
//!
//! - `FETCH FIRST|NEXT n ROW[S] ONLY` → `LIMIT n` (at any query level);
//! - `LIKE p ESCAPE 'c'` with a literal pattern → the same pattern escaped
//!   with the engine's backslash;
//! - `TIMESTAMP '…'`/`TIME '…'` typed with the precision they are written
//!   with, and `TIMESTAMP '… UTC'` (a zone or offset after the time) → a
//!   `timestamp(p) with time zone` at that instant;
//! - `try(x)` → `x` with its divisions and modulos by zero and its casts
//!   giving NULL (the errors `try` exists for in practice);
//! - `UNNEST(a, …) [WITH ORDINALITY] AS t(x, …, n)`, alone or after
//!   `CROSS JOIN` / a comma (reading columns of the table before it) → the
//!   engine's `unnest()` in a sub-query that keeps that table's columns.

use datafusion::sql::parser::Statement as Parsed;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    Ident, JoinOperator, LimitClause, Query, SetExpr, Statement, TableFactor, TableWithJoins,
    TimezoneInfo, Value, VisitMut, VisitorMut, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Rewrites the Trino-only syntax in `statement` (and in an `EXPLAIN`'s
/// statement) into SQL the engine plans.
pub fn rewrite(statement: &mut Parsed) {
    match statement {
        Parsed::Statement(s) => rewrite_statement(s),
        Parsed::Explain(e) => rewrite(&mut e.statement),
        _ => {}
    }
}

fn rewrite_statement(statement: &mut Statement) {
    let _ = statement.visit(&mut Queries);
    let _ = visit_expressions_mut(statement, |e| {
        rewrite_expr(e);
        ControlFlow::<()>::Continue(())
    });
}

/// Visits every query (sub-queries included) after its parts.
struct Queries;

impl VisitorMut for Queries {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        fetch_as_limit(query);
        unnest_in(query);
        ControlFlow::Continue(())
    }
}

fn fetch_as_limit(query: &mut Query) {
    let Some(fetch) = &query.fetch else { return };
    if fetch.with_ties || fetch.percent {
        return;
    }
    // FETCH FIRST ROW ONLY: one row.
    let n = fetch
        .quantity
        .clone()
        .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)));
    match &mut query.limit_clause {
        None => {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(n),
                offset: None,
                limit_by: vec![],
            })
        }
        Some(LimitClause::LimitOffset {
            limit: limit @ None,
            ..
        }) => *limit = Some(n),
        Some(_) => return,
    }
    query.fetch = None;
}

fn rewrite_expr(e: &mut Expr) {
    match e {
        Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        } => {
            // Trino has no escape character unless ESCAPE names one; the
            // engine's is the backslash: the pattern is written for it.
            let escape = escape_char.as_ref().map(|v| v.value.clone());
            if let Some(escaped) = backslash_escaped(pattern, escape.as_ref()) {
                **pattern = escaped;
                *escape_char = None;
            }
        }
        Expr::TypedString(t) => {
            if let Some(typed) = t
                .value
                .value
                .clone()
                .into_string()
                .and_then(|text| literal_with_precision(&t.data_type, &text))
            {
                *e = typed;
            }
        }
        // CAST(x AS TIMESTAMP(p) WITH TIME ZONE) keeps the zone (UTC) and p.
        Expr::Cast {
            kind: CastKind::Cast,
            expr,
            data_type: DataType::Timestamp(p, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz),
            ..
        } => {
            let unit = match p.unwrap_or(6) {
                0 => "Second",
                1..=3 => "Millisecond",
                4..=6 => "Microsecond",
                _ => "Nanosecond",
            };
            if let Some(cast) = parse_expr(&format!(
                "arrow_cast({expr}, 'Timestamp({unit}, Some(\"UTC\"))')"
            )) {
                *e = cast;
            }
        }
        // EXTRACT(DOW/DOY FROM x) as Trino means them (ISO: Monday = 1);
        // other fields stay the engine's date_part.
        Expr::Extract { field, expr, .. } => {
            use datafusion::sql::sqlparser::ast::DateTimeField as F;
            let name = match field {
                F::DayOfWeek | F::Dow | F::Isodow => "day_of_week",
                F::DayOfYear | F::Doy => "day_of_year",
                F::Custom(c) if c.value.eq_ignore_ascii_case("day_of_week") => "day_of_week",
                F::Custom(c) if c.value.eq_ignore_ascii_case("day_of_year") => "day_of_year",
                _ => return,
            };
            if let Some(call) = parse_expr(&format!("{name}({expr})")) {
                *e = call;
            }
        }
        // CAST(x AS VARCHAR[(n)]): timestamps and times as Trino writes them
        // (the length is not enforced: a filter on CAST(id AS VARCHAR(36))
        // is still pushed down to the source).
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon | CastKind::TryCast,
            expr,
            data_type:
                DataType::Varchar(_)
                | DataType::CharacterVarying(_)
                | DataType::Text
                | DataType::String(None),
            ..
        } => {
            if let Some(call) = parse_expr(&format!("{}({expr})", super::planned::TO_VARCHAR)) {
                *e = call;
            }
        }
        // now() and current_timestamp are TIMESTAMP(3) WITH TIME ZONE, as in Trino.
        Expr::Function(f)
            if ["now", "current_timestamp"]
                .iter()
                .any(|n| f.name.to_string().eq_ignore_ascii_case(n))
                && matches!(&f.args, FunctionArguments::None)
                    | matches!(&f.args, FunctionArguments::List(l) if l.args.is_empty()) =>
        {
            if let Some(now) =
                parse_expr("arrow_cast(now(), 'Timestamp(Millisecond, Some(\"UTC\"))')")
            {
                *e = now;
            }
        }
        // `current_user` (no parentheses, as Trino writes it) is a call.
        Expr::Function(f)
            if f.name.to_string().eq_ignore_ascii_case("current_user")
                && matches!(f.args, FunctionArguments::None) =>
        {
            f.args =
                FunctionArguments::List(datafusion::sql::sqlparser::ast::FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![],
                    clauses: vec![],
                });
        }
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("try") => {
            if let FunctionArguments::List(list) = &f.args {
                if let [FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))] = list.args.as_slice() {
                    let mut inner = inner.clone();
                    let _ = visit_expressions_mut(&mut inner, |x| {
                        null_instead_of_error(x);
                        ControlFlow::<()>::Continue(())
                    });
                    *e = Expr::Nested(Box::new(inner));
                }
            }
        }
        _ => {}
    }
}

/// A `TIMESTAMP '…'` or `TIME '…'` literal typed as Trino types it: with
/// as many fraction digits as it is written with (0, 3, 6 or 9 — Arrow's
/// units), a zone or offset after the time making it `… WITH TIME ZONE`
/// (the instant, in UTC). `None` for other literals.
fn literal_with_precision(t: &DataType, text: &str) -> Option<Expr> {
    let unit = |digits: usize| match digits {
        0 => "Second",
        1..=3 => "Millisecond",
        4..=6 => "Microsecond",
        _ => "Nanosecond",
    };
    let fraction = |s: &str| {
        s.split_once('.').map_or(0, |(_, f)| {
            f.chars().take_while(char::is_ascii_digit).count()
        })
    };
    let quoted = text.replace('\'', "''");
    let target = match t {
        DataType::Timestamp(None, TimezoneInfo::None) => {
            let zone = has_zone(text)
                .then_some(", Some(\"UTC\")")
                .unwrap_or(", None");
            format!("Timestamp({}{zone})", unit(fraction(text)))
        }
        // Microseconds at least: the engine compares times only of one unit,
        // and entity tables' TIME columns are microseconds.
        DataType::Time(None, TimezoneInfo::None) => match fraction(text) {
            0..=6 => "Time64(Microsecond)".to_string(),
            _ => "Time64(Nanosecond)".to_string(),
        },
        // DECIMAL '1.50' has the precision and scale it is written with: DECIMAL(3,2).
        DataType::Decimal(_) | DataType::Numeric(_) | DataType::Dec(_)
            if text.trim().parse::<f64>().is_ok() && !text.contains(['e', 'E']) =>
        {
            let digits = text.trim().trim_start_matches(['-', '+']);
            let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
            let whole = whole.trim_start_matches('0');
            let scale = fraction.len();
            let precision = (whole.len() + scale).max(1);
            return parse_expr(&format!(
                "CAST('{quoted}' AS DECIMAL({precision}, {scale}))"
            ));
        }
        _ => return None,
    };
    parse_expr(&format!("arrow_cast('{quoted}', '{target}')"))
}

/// The pattern with `escape` replaced by the backslash the engine uses;
/// `None` when nothing is to change or the pattern is not a literal.
fn backslash_escaped(pattern: &Expr, escape: Option<&Value>) -> Option<Expr> {
    let escape = match escape {
        Some(Value::SingleQuotedString(s)) => s.chars().collect::<Vec<_>>(),
        Some(_) => return None,
        None => vec![],
    };
    let escape = match escape.as_slice() {
        [c] => Some(*c),
        [] => None,
        _ => return None,
    };
    let Expr::Value(v) = pattern else { return None };
    let Value::SingleQuotedString(p) = &v.value else {
        return None;
    };
    let mut out = String::with_capacity(p.len() + 4);
    let mut chars = p.chars();
    if escape.is_none() && !p.contains('\\') {
        return None;
    }
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            out.push('\\');
            out.extend(chars.next());
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Some(Expr::value(Value::SingleQuotedString(out)))
}

/// Whether a timestamp literal's text ends in a zone name or offset.
fn has_zone(text: &str) -> bool {
    static ZONE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    ZONE.get_or_init(|| {
        regex::Regex::new(
            r"(?i)\d:\d\d(:\d\d(\.\d+)?)?(\s*(Z|[+-]\d{1,2}(:?\d{2})?)|\s+[A-Z][A-Z0-9_/+-]*)$",
        )
        .expect("a valid pattern")
    })
    .is_match(text.trim())
}

/// Inside `try(…)`: division and modulo by zero give NULL, casts give NULL
/// for values that do not convert.
fn null_instead_of_error(e: &mut Expr) {
    match e {
        Expr::BinaryOp {
            op: BinaryOperator::Divide | BinaryOperator::Modulo,
            right,
            ..
        } => {
            if let Some(guarded) = parse_expr(&format!("nullif({right}, 0)")) {
                **right = guarded;
            }
        }
        Expr::Cast { kind, .. } if matches!(kind, CastKind::Cast | CastKind::DoubleColon) => {
            *kind = CastKind::TryCast;
        }
        _ => {}
    }
}

/// Rewrites the `UNNEST` relations of the query's `SELECT`s; `t.x` of an
/// UNNEST's alias becomes the new sub-query's column in that `SELECT` (and
/// in the query's ORDER BY when the query is that one `SELECT`), not in
/// sub-queries or other branches of a UNION, which have names of their own.
fn unnest_in(query: &mut Query) {
    let mut renames = Vec::new();
    unnest_selects(&mut query.body, &mut renames);
    if !renames.is_empty() && matches!(query.body.as_ref(), SetExpr::Select(_)) {
        if let Some(order_by) = &mut query.order_by {
            let _ = order_by.visit(&mut Renamer {
                renames: &renames,
                depth: 0,
            });
        }
    }
}

/// Renames qualifiers of this query level's expressions (not inside sub-queries).
struct Renamer<'a> {
    renames: &'a [(Ident, Ident)],
    depth: usize,
}

impl VisitorMut for Renamer<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            if let Expr::CompoundIdentifier(parts) = e {
                if let [q, _] = parts.as_mut_slice() {
                    if let Some((_, to)) = self.renames.iter().find(|(from, _)| ident_eq(from, q)) {
                        *q = to.clone();
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

fn unnest_selects(body: &mut SetExpr, renames: &mut Vec<(Ident, Ident)>) {
    match body {
        SetExpr::Select(select) => {
            let mut own = Vec::new();
            // `FROM a, UNNEST(a.x) AS t(y)`: one relation with a join.
            let mut i = 1;
            while i < select.from.len() {
                if is_unnest(&select.from[i].relation)
                    && select.from[i].joins.is_empty()
                    && select.from[i - 1].joins.is_empty()
                {
                    let right = select.from.remove(i);
                    let left = &mut select.from[i - 1];
                    left.joins.push(datafusion::sql::sqlparser::ast::Join {
                        relation: right.relation,
                        global: false,
                        join_operator: JoinOperator::CrossJoin(
                            datafusion::sql::sqlparser::ast::JoinConstraint::None,
                        ),
                    });
                } else {
                    i += 1;
                }
            }
            for from in &mut select.from {
                lateral_unnests(from, &mut own);
                if from.joins.is_empty() && is_unnest(&from.relation) {
                    if let Some(table) = standalone_unnest(&from.relation) {
                        from.relation = table;
                    }
                }
            }
            if !own.is_empty() {
                let _ = select.visit(&mut Renamer {
                    renames: &own,
                    depth: 0,
                });
                renames.extend(own);
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            // Each branch renames only its own references.
            unnest_selects(left, &mut Vec::new());
            unnest_selects(right, &mut Vec::new());
        }
        _ => {}
    }
}

fn ident_eq(a: &Ident, b: &Ident) -> bool {
    a.value.eq_ignore_ascii_case(&b.value)
}

fn is_unnest(t: &TableFactor) -> bool {
    matches!(t, TableFactor::UNNEST { .. })
}

/// `R CROSS JOIN UNNEST(e…) AS t(c…)` (or `JOIN … ON TRUE`) at the start of
/// `from` → `(SELECT r.*, unnest(e) AS c, … FROM R AS r) AS r`, noting that
/// `t.c` is now `r.c`.
fn lateral_unnests(from: &mut TableWithJoins, renames: &mut Vec<(Ident, Ident)>) {
    hoist_unnests(from);
    while let Some(join) = from.joins.first() {
        if !is_cross_unnest(join) {
            return;
        }
        let Some(outer) = relation_name(&from.relation) else {
            return;
        };
        let TableFactor::UNNEST {
            alias,
            array_exprs,
            with_ordinality,
            ..
        } = &join.relation
        else {
            return;
        };
        let columns = unnest_columns(array_exprs, *with_ordinality, alias.as_ref());
        let mut relation = from.relation.clone();
        set_alias(&mut relation, &outer);
        let sql = format!("(SELECT {outer}.*, {columns} FROM {relation}) AS {outer}");
        let Some(table) = parse_table(&sql) else {
            return;
        };
        if let Some(a) = alias {
            renames.push((a.name.clone(), outer.clone()));
        }
        from.relation = table;
        from.joins.remove(0);
    }
}

/// `CROSS JOIN UNNEST(…)` or `JOIN UNNEST(…) ON TRUE`.
fn is_cross_unnest(join: &datafusion::sql::sqlparser::ast::Join) -> bool {
    let cross = match &join.join_operator {
        JoinOperator::CrossJoin(_) => true,
        JoinOperator::Join(c) | JoinOperator::Inner(c) => matches!(
            c,
            datafusion::sql::sqlparser::ast::JoinConstraint::On(Expr::Value(v))
                if v.value == Value::Boolean(true)
        ),
        _ => false,
    };
    cross && is_unnest(&join.relation)
}

/// `R a JOIN S … CROSS JOIN UNNEST(a.x)` → `R a CROSS JOIN UNNEST(a.x) JOIN S …`
/// when the UNNEST reads only the first table's columns (named `a.…`) and
/// the joins before it keep every row of R (inner, cross or left): the same
/// rows, in an order the engine plans.
fn hoist_unnests(from: &mut TableWithJoins) {
    let Some(outer) = relation_name(&from.relation) else {
        return;
    };
    let mut k = 1;
    while k < from.joins.len() {
        let keeps_outer_rows = from.joins[..k].iter().all(|j| {
            matches!(
                j.join_operator,
                JoinOperator::Join(_)
                    | JoinOperator::Inner(_)
                    | JoinOperator::CrossJoin(_)
                    | JoinOperator::Left(_)
                    | JoinOperator::LeftOuter(_)
            )
        });
        if keeps_outer_rows
            && is_cross_unnest(&from.joins[k])
            && reads_only(&from.joins[k].relation, &outer)
        {
            let unnest = from.joins.remove(k);
            // After the UNNESTs already hoisted.
            let at = from.joins.iter().take_while(|j| is_cross_unnest(j)).count();
            from.joins.insert(at, unnest);
        }
        k += 1;
    }
}

/// Whether every column an UNNEST reads is qualified by `outer`.
fn reads_only(t: &TableFactor, outer: &Ident) -> bool {
    let TableFactor::UNNEST { array_exprs, .. } = t else {
        return false;
    };
    let mut only = true;
    for e in array_exprs {
        let mut e = e.clone();
        let _ = visit_expressions_mut(&mut e, |x| {
            match x {
                Expr::Identifier(_) => only = false,
                Expr::CompoundIdentifier(parts) => {
                    only &= parts.len() == 2 && ident_eq(&parts[0], outer);
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
    }
    only
}

/// `UNNEST(e…) WITH ORDINALITY AS t(c…, n)` on its own → a sub-query.
fn standalone_unnest(t: &TableFactor) -> Option<TableFactor> {
    let TableFactor::UNNEST {
        alias,
        array_exprs,
        with_ordinality: true,
        ..
    } = t
    else {
        return None;
    };
    let name = alias
        .as_ref()
        .map(|a| a.name.to_string())
        .unwrap_or_else(|| "unnest".into());
    let columns = unnest_columns(array_exprs, true, alias.as_ref());
    parse_table(&format!("(SELECT {columns}) AS {name}"))
}

/// `unnest(e1) AS c1, …[, unnest(range(1, n + 1)) AS ordinality]`: names
/// from the alias's column list, else `t`/`unnest` for a single array and
/// `t_1`… for several.
fn unnest_columns(
    arrays: &[Expr],
    ordinality: bool,
    alias: Option<&datafusion::sql::sqlparser::ast::TableAlias>,
) -> String {
    let base = alias
        .map(|a| a.name.value.clone())
        .unwrap_or_else(|| "unnest".into());
    let named = |i: usize| -> String {
        match alias.and_then(|a| a.columns.get(i)) {
            Some(c) => c.name.to_string(),
            None if arrays.len() == 1 && i == 0 => Ident::new(base.clone()).to_string(),
            None if i == arrays.len() => Ident::new("ordinality").to_string(),
            None => Ident::new(format!("{base}_{}", i + 1)).to_string(),
        }
    };
    let mut out: Vec<String> = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| format!("unnest({a}) AS {}", named(i)))
        .collect();
    if ordinality {
        let longest = match arrays {
            [one] => format!("CAST(cardinality({one}) AS BIGINT)"),
            many => format!(
                "greatest({})",
                many.iter()
                    .map(|a| format!("coalesce(CAST(cardinality({a}) AS BIGINT), 0)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push(format!(
            "unnest(range(1, {longest} + 1)) AS {}",
            named(arrays.len())
        ));
    }
    out.join(", ")
}

/// The name a relation's columns are qualified with: its alias, else the
/// table's own (last) name.
fn relation_name(t: &TableFactor) -> Option<Ident> {
    match t {
        TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => {
            Some(a.name.clone())
        }
        TableFactor::Table {
            name, alias: None, ..
        } => name.0.last().and_then(|p| p.as_ident()).cloned(),
        _ => None,
    }
}

fn set_alias(t: &mut TableFactor, name: &Ident) {
    if let TableFactor::Table { alias, .. } | TableFactor::Derived { alias, .. } = t {
        if alias.is_none() {
            *alias = Some(datafusion::sql::sqlparser::ast::TableAlias {
                explicit: true,
                name: name.clone(),
                columns: vec![],
                at: None,
            });
        }
    }
}

/// `sql` (built here from parts of a parsed statement) as an expression;
/// `None` when it does not parse (e.g. nested too deeply), and the
/// expression is then left as it was.
fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

fn parse_table(sql: &str) -> Option<TableFactor> {
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_table_factor())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut s = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite_statement(&mut s);
        s.to_string()
    }

    #[test]
    fn unnest_after_a_join_reads_the_first_table() {
        let q = rewritten(
            "SELECT c.name, t.tag FROM orders o JOIN customers c ON o.cid = c.id CROSS JOIN UNNEST(o.tags) AS t(tag)",
        );
        assert_eq!(
            q,
            "SELECT c.name, o.tag FROM (SELECT o.*, unnest(o.tags) AS tag FROM orders o) AS o JOIN customers c ON o.cid = c.id"
        );
        // Reading the joined table: left as it is.
        let q = rewritten(
            "SELECT 1 FROM orders o JOIN customers c ON true CROSS JOIN UNNEST(c.tags) AS t(tag)",
        );
        assert!(q.contains("UNNEST(c.tags)"), "{q}");
    }

    #[test]
    fn unnest_alias_renames_stay_in_their_query() {
        let q = rewritten(
            "SELECT t.tag FROM orders o CROSS JOIN UNNEST(o.tags) AS t(tag) WHERE EXISTS (SELECT 1 FROM customers t WHERE t.state = 'A') \
             UNION ALL SELECT t.state FROM customers t",
        );
        assert!(q.starts_with("SELECT o.tag FROM"), "{q}");
        assert!(
            q.contains("WHERE t.state = 'A'") && q.ends_with("SELECT t.state FROM customers t"),
            "{q}"
        );
    }

    #[test]
    fn unnest_alias_columns_work_in_order_by() {
        assert!(rewritten("SELECT t.tag FROM orders CROSS JOIN UNNEST(tags) AS t(tag) GROUP BY t.tag ORDER BY t.tag")
            .ends_with("GROUP BY orders.tag ORDER BY orders.tag"));
        assert!(rewritten("SELECT a FROM t FETCH FIRST ROW ONLY").ends_with("LIMIT 1"));
    }

    #[test]
    fn fetch_first_becomes_limit_at_every_level() {
        assert_eq!(
            rewritten(
                "SELECT * FROM (SELECT a FROM t FETCH FIRST 2 ROWS ONLY) x FETCH NEXT 1 ROW ONLY"
            ),
            "SELECT * FROM (SELECT a FROM t LIMIT 2) x LIMIT 1"
        );
        assert_eq!(
            rewritten("SELECT a FROM t OFFSET 3 ROWS FETCH FIRST 2 ROWS ONLY"),
            "SELECT a FROM t LIMIT 2 OFFSET 3 ROWS"
        );
    }

    #[test]
    fn like_without_escape_matches_backslashes_literally() {
        assert_eq!(rewritten(r"SELECT a LIKE 'x\y%'"), r"SELECT a LIKE 'x\\y%'");
        assert_eq!(rewritten("SELECT a LIKE 'x%'"), "SELECT a LIKE 'x%'");
    }

    #[test]
    fn like_escape_becomes_backslash() {
        assert_eq!(
            rewritten(r"SELECT a LIKE 'x!%\y' ESCAPE '!'"),
            r"SELECT a LIKE 'x\%\\y'"
        );
    }

    #[test]
    fn datetime_literals_get_their_written_precision() {
        assert_eq!(
            rewritten("SELECT TIMESTAMP '2024-01-02 03:04:05 UTC'"),
            "SELECT arrow_cast('2024-01-02 03:04:05 UTC', 'Timestamp(Second, Some(\"UTC\"))')"
        );
        assert_eq!(
            rewritten("SELECT TIMESTAMP '2024-01-02 03:04:05'"),
            "SELECT arrow_cast('2024-01-02 03:04:05', 'Timestamp(Second, None)')"
        );
        assert!(
            rewritten("SELECT TIMESTAMP '2024-01-02 03:04:05.5+02:00'")
                .contains("Timestamp(Millisecond, Some")
        );
        assert!(
            rewritten("SELECT TIMESTAMP '2024-01-02 03:04:05.123456'")
                .contains("'Timestamp(Microsecond, None)'")
        );
        assert!(rewritten("SELECT TIME '01:02:03.1234567'").contains("'Time64(Nanosecond)'"));
        assert_eq!(
            rewritten("SELECT DECIMAL '-12345.6789'"),
            "SELECT CAST('-12345.6789' AS DECIMAL(9,4))"
        );
        assert_eq!(
            rewritten("SELECT current_user, CURRENT_USER"),
            "SELECT current_user(), CURRENT_USER()"
        );
        assert_eq!(
            rewritten("SELECT DATE '2024-01-02'"),
            "SELECT DATE '2024-01-02'"
        );
    }

    #[test]
    fn try_nulls_division_by_zero_and_casts() {
        assert_eq!(
            rewritten("SELECT try(a / b + CAST(c AS INT))"),
            "SELECT (a / nullif(b, 0) + TRY_CAST(c AS INT))"
        );
    }

    #[test]
    fn lateral_unnest_keeps_the_outer_columns() {
        assert_eq!(
            rewritten(
                "SELECT o.id, t.tag, t.n FROM orders o CROSS JOIN UNNEST(o.tags) WITH ORDINALITY AS t(tag, n)"
            ),
            "SELECT o.id, o.tag, o.n FROM (SELECT o.*, unnest(o.tags) AS tag, unnest(range(1, CAST(cardinality(o.tags) AS BIGINT) + 1)) AS n FROM orders o) AS o"
        );
        assert_eq!(
            rewritten("SELECT tag FROM orders, UNNEST(tags) AS t(tag)"),
            "SELECT tag FROM (SELECT orders.*, unnest(tags) AS tag FROM orders AS orders) AS orders"
        );
    }
}
