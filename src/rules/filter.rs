//! Row filters: checking that a DBA's `row_filters:` expression is one boolean expression
//! over one table's own columns, with PostgreSQL's parser as the judge.
//!
//! The expression is parsed inside `SELECT 1 FROM <table> WHERE <expr>`; anything that turns
//! it into more than that (a second statement, `UNION`, `ORDER BY`, `LIMIT`, `FOR UPDATE`, a
//! trailing comment that would swallow what follows once spliced) is refused. The filter is
//! then stored as PostgreSQL prints it back, in parentheses, so what is spliced into a
//! rewritten statement is exactly the expression that was checked.
//!
//! Subqueries, whole-row references, `*` and parameters are refused: a filter can only be
//! validated (and its effect reasoned about) when it reads the filtered row alone.
use pg_query::protobuf::node::Node as N;
use serde_json::Value as J;

use super::TableName;

/// A checked row filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFilterCheck {
    /// `(expr)` as PostgreSQL's deparser prints it.
    pub canonical: String,
    /// Columns the expression reads, in order of first use.
    pub columns: Vec<String>,
}

/// PostgreSQL identifier quoting (always quoted: names are taken literally).
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Checks `expr` as a row filter of `table`. The error is a sentence for the DBA.
pub fn check_row_filter(table: &TableName, expr: &str) -> Result<RowFilterCheck, String> {
    if expr.trim().is_empty() {
        return Err("the row filter is empty".into());
    }
    let from = format!("{}.{}", quote_ident(&table.schema), quote_ident(&table.name));
    let sql = format!("SELECT 1 FROM {from} WHERE {expr}");
    let parsed =
        pg_query::parse(&sql, 0).map_err(|e| format!("not a valid SQL expression: {}", strip_pg(e)))?;
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Err("the row filter must be a single expression, not several statements".into());
    }
    let Some(N::SelectStmt(sel)) = stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref()) else {
        return Err("the row filter must be a single boolean expression".into());
    };
    let extra = !sel.distinct_clause.is_empty()
        || sel.into_clause.is_some()
        || sel.target_list.len() != 1
        || sel.from_clause.len() != 1
        || !sel.group_clause.is_empty()
        || sel.having_clause.is_some()
        || !sel.window_clause.is_empty()
        || !sel.values_lists.is_empty()
        || !sel.sort_clause.is_empty()
        || sel.limit_offset.is_some()
        || sel.limit_count.is_some()
        || !sel.locking_clause.is_empty()
        || sel.with_clause.is_some()
        || sel.op > 1
        || sel.larg.is_some()
        || sel.rarg.is_some();
    if extra {
        return Err(
            "the row filter must be a boolean expression only (no GROUP BY, ORDER BY, LIMIT, UNION, FOR ...)"
                .into(),
        );
    }
    let Some(where_clause) = sel.where_clause.as_ref() else {
        return Err("the row filter must be a boolean expression".into());
    };
    let tree = serde_json::to_value(where_clause.as_ref())
        .map_err(|e| format!("cannot inspect the row filter: {e}"))?;
    let mut columns = Vec::new();
    walk(&tree, table, &mut columns)?;

    // The canonical text: the deparsed statement minus the deparsed `SELECT 1 FROM t`.
    let full = parsed
        .deparse(Default::default())
        .map_err(|e| format!("cannot print the row filter back: {e}"))?;
    let base = pg_query::parse(&format!("SELECT 1 FROM {from}"), 0)
        .and_then(|p| p.deparse(Default::default()))
        .map_err(|e| format!("cannot print the table name back: {e}"))?;
    let prefix = format!("{base} WHERE ");
    let Some(body) = full.strip_prefix(&prefix) else {
        return Err("the row filter did not print back as a WHERE clause".into());
    };
    Ok(RowFilterCheck {
        canonical: format!("({body})"),
        columns,
    })
}

/// libpg_query messages are already sentences; drop the crate's wrapper.
fn strip_pg(e: pg_query::Error) -> String {
    match e {
        pg_query::Error::Parse(m) => m,
        other => other.to_string(),
    }
}

/// Walks the serialized expression tree: every column reference must be a plain column of
/// `table` (optionally qualified by its name); constructs that read other rows are refused.
fn walk(v: &J, table: &TableName, columns: &mut Vec<String>) -> Result<(), String> {
    match v {
        J::Object(map) => {
            for (k, child) in map {
                match k.as_str() {
                    "SubLink" => return Err("subqueries are not allowed in a row filter".into()),
                    "RangeVar" | "RangeSubselect" | "RangeFunction" => {
                        return Err("a row filter cannot name other tables".into())
                    }
                    "ParamRef" => return Err("parameters ($1) are not allowed in a row filter".into()),
                    "ColumnRef" => column_ref(child, table, columns)?,
                    _ => walk(child, table, columns)?,
                }
            }
            Ok(())
        }
        J::Array(items) => items.iter().try_for_each(|i| walk(i, table, columns)),
        _ => Ok(()),
    }
}

fn column_ref(v: &J, table: &TableName, columns: &mut Vec<String>) -> Result<(), String> {
    let fields = v.get("fields").and_then(J::as_array).cloned().unwrap_or_default();
    let mut names = Vec::new();
    for f in &fields {
        match f.get("node") {
            Some(J::Object(n)) if n.contains_key("String") => {
                let s = n["String"].get("sval").and_then(J::as_str).unwrap_or("");
                names.push(s.to_string());
            }
            _ => return Err("`*` is not allowed in a row filter".into()),
        }
    }
    let column = match names.as_slice() {
        [c] => c,
        [t, c] if *t == table.name => c,
        [s, t, c] if *s == table.schema && *t == table.name => c,
        _ => {
            return Err(format!(
                "a row filter of {table} can only read {table}'s own columns, not {}",
                names.join(".")
            ))
        }
    };
    if !columns.contains(column) {
        columns.push(column.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TableName {
        TableName::new("public", "customers")
    }

    #[test]
    fn simple_filter_is_canonical() {
        let c = check_row_filter(&t(), "consent_transfer -- a comment").unwrap();
        assert_eq!(c.canonical, "(consent_transfer)");
        assert_eq!(c.columns, vec!["consent_transfer"]);
        let c = check_row_filter(&t(), "customers.city = 'x' AND vip_level > 2").unwrap();
        assert_eq!(c.columns, vec!["city", "vip_level"]);
    }

    #[test]
    fn injections_are_refused() {
        for bad in [
            "true; DROP TABLE customers",
            "true UNION SELECT 1",
            "true ORDER BY 1",
            "true LIMIT 1",
            "true FOR UPDATE",
            "id IN (SELECT customer_id FROM orders)",
            "orders.id = 1",
            "true) OR (true",
            "id = $1",
            "",
        ] {
            assert!(check_row_filter(&t(), bad).is_err(), "accepted: {bad}");
        }
    }
}
