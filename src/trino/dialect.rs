//! What Trino's clients see differently from the engine's own answers,
//! applied to each parsed statement of the Trino front end: unnamed
//! result columns are `_col0`, `_col1`, … and `information_schema` has
//! Trino's tables and columns (Trino's type names in `data_type`, positions
//! from 1, only the named catalog's tables).

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as Parsed;
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, SetExpr, Statement, TableAlias, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::jdbc::{TYPE_NAMES, empty_with};

/// Adapts `statement` for a Trino client whose session catalog is `catalog`.
pub fn adapt(statement: &mut Parsed, catalog: &str) {
    name_columns(statement);
    if let Parsed::Statement(s) = statement {
        // Trino's information_schema.columns has a hidden `comment` column:
        // there when a query names it (SQLAlchemy does), not in `SELECT *`.
        let comment = names_column(s, "comment");
        let _ = s.visit(&mut CaseInsensitiveNames);
        let _ = s.visit(&mut TrinoInformationSchema { catalog, comment });
    }
}

/// Names the unnamed result columns of a query as Trino does: `_col<i>`
/// for an expression at position i that is not a plain column (instead of
/// the engine's spelling of the expression, e.g. `Int64(1) + Int64(2)`).
fn name_columns(statement: &mut Parsed) {
    let query = match statement {
        Parsed::Statement(s) => match s.as_mut() {
            Statement::Query(q) => q,
            _ => return,
        },
        _ => return,
    };
    let mut body = query.body.as_mut();
    // A set operation's names are its first query's.
    while let SetExpr::SetOperation { left, .. } = body {
        body = left.as_mut();
    }
    let SetExpr::Select(select) = body else {
        return;
    };
    for (i, item) in select.projection.iter_mut().enumerate() {
        match item {
            datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(e) => {
                if !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                    *item = datafusion::sql::sqlparser::ast::SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::new(format!("_col{i}")),
                    };
                }
            }
            datafusion::sql::sqlparser::ast::SelectItem::ExprWithAlias { .. } => {}
            // After `*` the positions are not known from the text.
            _ => return,
        }
    }
}

/// Whether `statement` names a column `name` (as `name` or `x.name`).
fn names_column(statement: &Statement, name: &str) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(statement, |e| {
        found |= match e {
            Expr::Identifier(i) => i.value.eq_ignore_ascii_case(name),
            Expr::CompoundIdentifier(parts) => parts
                .last()
                .is_some_and(|i| i.value.eq_ignore_ascii_case(name)),
            _ => false,
        };
        ControlFlow::<()>::Continue(())
    });
    found
}

/// Trino resolves names without regard to case, quoted or not: quoted
/// table and column names are lower-cased as unquoted ones are (tsql's
/// names are lower-case). Aliases keep their case (they name result columns).
struct CaseInsensitiveNames;

impl VisitorMut for CaseInsensitiveNames {
    type Break = ();

    fn pre_visit_relation(
        &mut self,
        name: &mut datafusion::sql::sqlparser::ast::ObjectName,
    ) -> ControlFlow<()> {
        for part in name.0.iter_mut() {
            if let datafusion::sql::sqlparser::ast::ObjectNamePart::Identifier(ident) = part {
                lower(ident);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        match e {
            Expr::Identifier(i) => lower(i),
            Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(lower),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn lower(i: &mut Ident) {
    if i.quote_style == Some('"') {
        i.value = i.value.to_lowercase();
    }
}

/// Replaces `[catalog.]information_schema.<table>` by Trino's shape of it.
struct TrinoInformationSchema<'a> {
    catalog: &'a str,
    /// Whether `columns` has its hidden `comment` column.
    comment: bool,
}

impl VisitorMut for TrinoInformationSchema<'_> {
    type Break = ();

    // After the children: the sub-query put in is not visited again.
    fn post_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = t
        else {
            return ControlFlow::Continue(());
        };
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
            .collect();
        let (catalog, table) = match parts.as_slice() {
            [s, t] if s == "information_schema" => (self.catalog.to_string(), t.clone()),
            [c, s, t] if s == "information_schema" => (c.clone(), t.clone()),
            _ => return ControlFlow::Continue(()),
        };
        let Some(sql) = information_schema_sql(&catalog, &table, self.comment) else {
            return ControlFlow::Continue(());
        };
        let alias = alias.clone().unwrap_or(TableAlias {
            explicit: true,
            name: Ident::new(table),
            columns: vec![],
            at: None,
        });
        if let Ok(subquery) = Parser::new(&GenericDialect {})
            .try_with_sql(&sql)
            .and_then(|mut p| p.parse_query())
        {
            *t = TableFactor::Derived {
                lateral: false,
                subquery,
                alias: Some(alias),
                sample: None,
            };
        }
        ControlFlow::Continue(())
    }
}

/// Trino's information_schema tables, as tsql answers them.
const TABLES: &[&str] = &[
    "applicable_roles",
    "columns",
    "enabled_roles",
    "roles",
    "schemata",
    "table_privileges",
    "tables",
    "views",
];

/// The query of Trino's `<catalog>.information_schema.<table>` over the
/// engine's own information_schema (which lists every catalog).
fn information_schema_sql(catalog: &str, table: &str, comment: bool) -> Option<String> {
    let c = format!("'{}'", catalog.replace('\'', "''"));
    let own = "table_schema <> 'information_schema'";
    Some(match table {
        "tables" => format!(
            "SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables \
             WHERE table_catalog = {c} AND {own} \
             UNION ALL SELECT {c}, 'information_schema', t, 'BASE TABLE' FROM (VALUES {}) AS v(t)",
            TABLES
                .iter()
                .map(|t| format!("('{t}')"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "columns" => format!(
            "SELECT table_catalog, table_schema, table_name, column_name, \
             CAST(ordinal_position + 1 AS BIGINT) AS ordinal_position, column_default, is_nullable, \
             {TYPE_NAMES} AS data_type{} FROM information_schema.columns WHERE table_catalog = {c} AND {own}",
            if comment {
                ", CAST(NULL AS VARCHAR) AS comment"
            } else {
                ""
            }
        ),
        "schemata" => format!(
            "SELECT DISTINCT table_catalog AS catalog_name, table_schema AS schema_name \
             FROM information_schema.tables WHERE table_catalog = {c} AND {own} \
             UNION SELECT {c}, 'information_schema'"
        ),
        "views" => format!(
            "SELECT table_catalog, table_schema, table_name, definition AS view_definition \
             FROM information_schema.views WHERE table_catalog = {c} AND {own}"
        ),
        "applicable_roles" => empty_with(
            "grantee varchar, grantee_type varchar, role_name varchar, is_grantable varchar",
        ),
        "enabled_roles" | "roles" => empty_with("role_name varchar"),
        "table_privileges" => empty_with(
            "grantor varchar, grantor_type varchar, grantee varchar, grantee_type varchar, table_catalog varchar, \
             table_schema varchar, table_name varchar, privilege_type varchar, is_grantable varchar, with_hierarchy varchar",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapted(sql: &str) -> String {
        let mut s = Parsed::Statement(Box::new(
            Parser::parse_sql(&GenericDialect {}, sql)
                .unwrap()
                .remove(0),
        ));
        adapt(&mut s, "cyoda");
        s.to_string()
    }

    #[test]
    fn unnamed_columns_are_numbered() {
        assert_eq!(
            adapted("SELECT a, 1 + 2, t.b, count(*) AS n FROM t"),
            "SELECT a, 1 + 2 AS _col1, t.b, count(*) AS n FROM t"
        );
        assert_eq!(adapted("SELECT *, 1 FROM t"), "SELECT *, 1 FROM t");
    }

    #[test]
    fn information_schema_has_trinos_shape() {
        let q = adapted(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'x'",
        );
        assert!(
            q.contains("ordinal_position + 1")
                && q.contains("table_catalog = 'cyoda'")
                && q.contains(") AS columns"),
            "{q}"
        );
        let q = adapted("SELECT * FROM other.information_schema.tables t");
        assert!(
            q.contains("table_catalog = 'other'") && q.ends_with(") t"),
            "{q}"
        );
        assert_eq!(
            adapted("SELECT * FROM cyoda.entities.orders"),
            "SELECT * FROM cyoda.entities.orders"
        );
    }
}
