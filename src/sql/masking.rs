//! Masking subqueries: the relation a restricted role reads in place of a protected one.
//!
//! `(SELECT "id", <mask("name")> AS "name", ... FROM [ONLY] "schema"."table"
//!   [WHERE (<row filter>) OFFSET 0]) AS alias`
//!
//! Columns come in catalog order under their own names, so `*`, whole-row references,
//! NATURAL joins and USING see the same shape as the table minus denied columns. The
//! subquery is generated as SQL text and parsed with the same parser, so quoting and
//! precedence are PostgreSQL's own.
//!
//! Invariants:
//! - Every identifier is double-quoted ([`quote_ident`]): names are used exactly as stored.
//! - With a row filter, `OFFSET 0` keeps the planner from pushing the user's predicates below
//!   the filter: they never run on hidden rows, so their errors cannot reveal them.
//! - A masked column whose mask has no SQL form and is not keyed is refused, never passed raw.
use pg_query::protobuf::Node;

use super::scope::{ColInfo, ColState};
use super::Refusal;
use crate::catalog::Relation;
use crate::policy::{ColumnAction, TablePlan};

/// `"name"` with inner quotes doubled.
pub fn quote_ident(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// A built masking subquery and the columns it exposes (denied ones included, marked, so
/// references to them are refused with the rule that denies them).
pub(crate) struct Built {
    pub node: Node,
    pub cols: Vec<ColInfo>,
}

fn parse_select(sql: &str, what: &str) -> Result<Node, Refusal> {
    let internal = |detail: String| {
        Refusal::new(
            "XX000",
            format!("pgveil could not build the masking query for {what}: {detail}"),
            Some("check the rule's mask and row filter (pgveil check --rules)".into()),
        )
    };
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| internal(e.to_string()))?;
    let mut stmts = parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Err(internal(format!("expected one statement, got {}", stmts.len())));
    }
    let node = stmts.pop().and_then(|s| s.stmt).map(|b| *b);
    match node {
        Some(n @ Node { node: Some(pg_query::NodeEnum::SelectStmt(_)) }) => Ok(n),
        _ => Err(internal("expected a SELECT".into())),
    }
}

fn from_clause(rel: &Relation, inh: bool) -> String {
    format!(
        "{}{}.{}",
        if inh { "" } else { "ONLY " },
        quote_ident(&rel.schema),
        quote_ident(&rel.name)
    )
}

/// The SQL text of a protected table's masking subquery (exposed for tests and the audit).
pub(crate) fn table_sql(rel: &Relation, tp: &TablePlan, inh: bool) -> Result<(String, Vec<ColInfo>), Refusal> {
    let mut items = Vec::with_capacity(rel.columns.len());
    let mut cols = Vec::with_capacity(rel.columns.len());
    for col in &rel.columns {
        let origin = format!("{}.{}.{}", rel.schema, rel.name, col.name);
        let q = quote_ident(&col.name);
        let plan = tp.column(&col.name);
        let state = match plan.map(|p| &p.action) {
            // Invariant of the policy module: a column without a plan is denied.
            None => ColState::Denied(None),
            Some(ColumnAction::Deny) => ColState::Denied(plan.and_then(|p| p.rule.clone())),
            Some(ColumnAction::Clear) => {
                items.push(q);
                ColState::Plain
            }
            Some(ColumnAction::Mask(m)) if m.is_keyed() => {
                items.push(q);
                ColState::Keyed(m.clone(), plan.and_then(|p| p.rule.clone()))
            }
            Some(ColumnAction::Mask(m)) => match m.sql(&q, &col.type_name) {
                Some(expr) => {
                    items.push(format!("{expr} AS {q}"));
                    ColState::Masked
                }
                None => {
                    return Err(Refusal::new(
                        "0A000",
                        format!("the mask of column {origin} has no SQL form"),
                        Some(format!(
                            "pgveil cannot compute it in the database; {}",
                            plan.and_then(|p| p.rule.as_ref())
                                .map(|r| format!("pgveil rule: {r}"))
                                .unwrap_or_default()
                        )),
                    ))
                }
            },
        };
        cols.push(ColInfo { name: col.name.clone(), state, origin: Some(origin) });
    }
    let mut sql = format!("SELECT {} FROM {}", items.join(", "), from_clause(rel, inh));
    if let Some((filter, _)) = &tp.row_filter {
        sql.push_str(&format!(" WHERE ({filter}) OFFSET 0"));
    }
    Ok((sql, cols))
}

pub(crate) fn table_subquery(rel: &Relation, tp: &TablePlan, inh: bool) -> Result<Built, Refusal> {
    let (sql, cols) = table_sql(rel, tp, inh)?;
    let node = parse_select(&sql, &rel.qualified_name())?;
    Ok(Built { node, cols })
}

/// A guarded catalog relation: listed columns read as constants, optional row filter.
pub(crate) fn guard_subquery(
    rel: &Relation,
    constants: &[(&str, &str)],
    row_filter: Option<&str>,
    inh: bool,
) -> Result<Node, Refusal> {
    let items: Vec<String> = rel
        .columns
        .iter()
        .map(|c| {
            let q = quote_ident(&c.name);
            match constants.iter().find(|(n, _)| *n == c.name) {
                Some((_, expr)) => format!("{expr} AS {q}"),
                None => q,
            }
        })
        .collect();
    let mut sql = format!("SELECT {} FROM {}", items.join(", "), from_clause(rel, inh));
    if let Some(f) = row_filter {
        sql.push_str(&format!(" WHERE ({f}) OFFSET 0"));
    }
    parse_select(&sql, &rel.qualified_name())
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("salary"), "\"salary\"");
        assert_eq!(quote_ident("We\"ird"), "\"We\"\"ird\"");
        assert_eq!(quote_ident("Mixed Case"), "\"Mixed Case\"");
    }
}
