//! Masking subqueries: the relation a restricted role reads in place of a protected one.
//!
//! `(SELECT "id", (<mask("name")>) AS "name", ... FROM [ONLY] "schema"."table"
//!   [WHERE (<row filter>) OFFSET 0]) AS alias`
//!
//! Columns come in catalog order under their own names, so `*`, whole-row references,
//! NATURAL joins and USING see the same shape as the table minus denied columns.
//!
//! The walker leaves a placeholder relation where the subquery goes; after the statement is
//! printed, [`substitute`] puts the subquery text in. Parsing and printing the (large) mask
//! expressions once per mask instead of once per statement is what keeps analysis cheap.
//!
//! Invariants:
//! - Every identifier is double-quoted ([`quote_ident`]): names are used exactly as stored.
//! - Every mask expression and row filter is spliced in the form the parser printed it,
//!   after checking it is exactly one expression, in parentheses: it cannot reach outside
//!   its slot.
//! - With a row filter, `OFFSET 0` keeps the planner from pushing the user's predicates below
//!   the filter: they never run on hidden rows, so their errors cannot reveal them.
//! - A masked column whose mask has no SQL form and is not keyed is refused, never passed raw.
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use pg_query::NodeEnum;

use super::scope::{ColInfo, ColState};
use super::Refusal;
use crate::catalog::Relation;
use crate::mask::Mask;
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

/// The name a keyed column's raw value carries inside its masking subquery: the column name
/// plus a tag drawn at random once per process, so no statement can name it by chance or by
/// guess (`keyed_alias("phone")` = `phone#pgveil_5f0c…`).
pub fn keyed_alias(column: &str) -> String {
    format!("{column}#pgveil_{}", process_tag(0))
}

/// A built masking subquery (SQL text of canonical pieces) and the columns it exposes
/// (denied ones included, marked, so references to them are refused with the rule that
/// denies them).
pub(crate) struct Built {
    pub sql: String,
    pub cols: Vec<ColInfo>,
    /// A masked column was left raw for pgveil to mask in the result (`proxy`).
    pub proxied: bool,
}

/// Whether pgveil's own form of a (non-keyed) mask gives, for every value, exactly the text
/// and binary output PostgreSQL gives for its SQL twin, whatever the session settings: so
/// that masking a plain output column in the result instead of in the database changes
/// nothing the client can see. `tests/mask_sql_agreement.rs` checks the twins agree; the
/// types left out print differently under session settings pgveil does not track
/// (DateStyle, TimeZone, IntervalStyle, extra_float_digits) or are not masked in Rust.
pub fn proxy_exact(m: &Mask) -> bool {
    use crate::mask::ColumnType as T;
    !m.is_keyed()
        && matches!(
            m.column_type(),
            T::Text { .. }
                | T::Int2
                | T::Int4
                | T::Int8
                | T::Numeric
                | T::NumericScaled { .. }
                | T::Bool
                | T::Uuid
        )
}

fn internal(what: &str, detail: String) -> Refusal {
    Refusal::new(
        "XX000",
        format!("pgveil could not build the masking query for {what}: {detail}"),
        Some("check the rule's mask and row filter (pgveil check --rules)".into()),
    )
}

/// `expr` re-printed by the parser, after checking it is exactly one expression: balanced,
/// without comments, nothing that could reach past it once spliced into a statement
/// (`true) OR (1=1` is refused, not obeyed).
fn canonical_expr(expr: &str, what: &str) -> Result<String, Refusal> {
    let bad = |d: &str| internal(what, format!("{d}: {expr}"));
    let parsed = pg_query::parse(&format!("SELECT {expr}"), pg_query::ParserOptions::DEFAULT)
        .map_err(|e| bad(&format!("not an SQL expression ({e})")))?;
    let one = match parsed.protobuf.stmts.as_slice() {
        [raw] => match raw.stmt.as_deref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::SelectStmt(sel)) => {
                let plain = sel.from_clause.is_empty()
                    && sel.where_clause.is_none()
                    && sel.group_clause.is_empty()
                    && sel.having_clause.is_none()
                    && sel.window_clause.is_empty()
                    && sel.sort_clause.is_empty()
                    && sel.distinct_clause.is_empty()
                    && sel.values_lists.is_empty()
                    && sel.limit_count.is_none()
                    && sel.limit_offset.is_none()
                    && sel.with_clause.is_none()
                    && sel.into_clause.is_none()
                    && sel.locking_clause.is_empty()
                    && sel.larg.is_none()
                    && sel.target_list.len() == 1;
                let unnamed = matches!(
                    sel.target_list.first().and_then(|t| t.node.as_ref()),
                    Some(NodeEnum::ResTarget(rt)) if rt.name.is_empty() && rt.val.is_some()
                );
                plain && unnamed
            }
            _ => false,
        },
        _ => false,
    };
    if !one {
        return Err(bad("not exactly one expression"));
    }
    let text = parsed
        .protobuf
        .deparse(pg_query::DeparseOptions::default())
        .map_err(|e| bad(&format!("cannot re-print it ({e})")))?;
    text.strip_prefix("SELECT ")
        .map(str::to_string)
        .ok_or_else(|| bad("unexpected re-print"))
}

/// Canonical SQL of masks and row filters, computed once per mask (the entry keeps the
/// `Arc<Mask>` alive, so its address cannot be reused by another mask) and per filter text.
/// Bounded: cleared when full.
struct PieceCache {
    masks: DashMap<(usize, String, String), (Arc<Mask>, String)>,
    filters: DashMap<String, String>,
}

const PIECE_CACHE_MAX: usize = 4096;

fn pieces() -> &'static PieceCache {
    static CACHE: OnceLock<PieceCache> = OnceLock::new();
    CACHE.get_or_init(|| PieceCache {
        masks: DashMap::new(),
        filters: DashMap::new(),
    })
}

fn mask_sql(m: &Arc<Mask>, column: &str, sql_type: &str, origin: &str) -> Result<Option<String>, Refusal> {
    let key = (Arc::as_ptr(m) as usize, column.to_string(), sql_type.to_string());
    let cache = pieces();
    if let Some(hit) = cache.masks.get(&key) {
        return Ok(Some(hit.1.clone()));
    }
    let Some(raw) = m.sql(&quote_ident(column), sql_type) else {
        return Ok(None);
    };
    let canon = canonical_expr(&raw, origin)?;
    if cache.masks.len() >= PIECE_CACHE_MAX {
        cache.masks.clear();
    }
    cache.masks.insert(key, (m.clone(), canon.clone()));
    Ok(Some(canon))
}

fn filter_sql(filter: &str, what: &str) -> Result<String, Refusal> {
    let cache = pieces();
    if let Some(hit) = cache.filters.get(filter) {
        return Ok(hit.clone());
    }
    let canon = canonical_expr(filter, what)?;
    if cache.filters.len() >= PIECE_CACHE_MAX {
        cache.filters.clear();
    }
    cache.filters.insert(filter.to_string(), canon.clone());
    Ok(canon)
}

fn from_clause(rel: &Relation, inh: bool) -> String {
    format!(
        "{}{}.{}",
        if inh { "" } else { "ONLY " },
        quote_ident(&rel.schema),
        quote_ident(&rel.name)
    )
}

/// The masking subquery of a protected table (without the surrounding parentheses).
///
/// Masked columns for which `proxy(column)` holds and whose mask is [`proxy_exact`] are
/// exposed raw under their internal name, exactly like keyed ones ([`ColState::Keyed`]): the
/// analyser then accepts them only as bare output columns and pgveil masks them in the result.
pub(crate) fn table_subquery(
    rel: &Relation,
    tp: &TablePlan,
    inh: bool,
    proxy: &dyn Fn(&str) -> bool,
) -> Result<Built, Refusal> {
    let mut items = Vec::with_capacity(rel.columns.len());
    let mut cols = Vec::with_capacity(rel.columns.len());
    let mut proxied = false;
    for col in &rel.columns {
        let origin = format!("{}.{}.{}", rel.schema, rel.name, col.name);
        let q = quote_ident(&col.name);
        let plan = tp.column(&col.name);
        let rule = || plan.and_then(|p| p.rule.clone());
        let state = match plan.map(|p| &p.action) {
            // Invariant of the policy module: a column without a plan is denied.
            None => ColState::Denied(None),
            Some(ColumnAction::Deny) => ColState::Denied(rule()),
            Some(ColumnAction::Clear) => {
                items.push(q);
                ColState::Plain
            }
            Some(ColumnAction::Mask(m)) if m.is_keyed() || (proxy_exact(m) && proxy(&col.name)) => {
                proxied |= !m.is_keyed();
                let internal = keyed_alias(&col.name);
                items.push(format!("{q} AS {}", quote_ident(&internal)));
                ColState::Keyed(m.clone(), rule(), internal)
            }
            Some(ColumnAction::Mask(m)) => match mask_sql(m, &col.name, &col.type_name, &origin)? {
                Some(expr) => {
                    items.push(format!("({expr}) AS {q}"));
                    ColState::Masked
                }
                None => {
                    return Err(Refusal::new(
                        "0A000",
                        format!("the mask of column {origin} has no SQL form"),
                        Some(format!(
                            "pgveil cannot compute it in the database; {}",
                            rule().map(|r| format!("pgveil rule: {r}")).unwrap_or_default()
                        )),
                    ))
                }
            },
        };
        cols.push(ColInfo {
            name: col.name.clone(),
            state,
            origin: Some(origin),
        });
    }
    let mut sql = format!("SELECT {} FROM {}", items.join(", "), from_clause(rel, inh));
    if let Some((filter, _)) = &tp.row_filter {
        let f = filter_sql(filter, &format!("the row filter of {}", rel.qualified_name()))?;
        sql.push_str(&format!(" WHERE ({f}) OFFSET 0"));
    }
    Ok(Built { sql, cols, proxied })
}

/// A guarded catalog relation: listed columns read as constants, optional row filter.
pub(crate) fn guard_subquery(
    rel: &Relation,
    constants: &[(&str, &str)],
    row_filter: Option<&str>,
    inh: bool,
) -> String {
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
    sql
}

/// The placeholder relation name standing for the n-th spliced subquery until the
/// statement is printed: random per process, so no statement can contain it by chance.
pub(crate) fn placeholder(n: usize) -> String {
    format!("pgveil_sub_{}_{n}", process_tag(1))
}

/// Random tags drawn once per process: one names keyed columns inside masking subqueries
/// (PostgreSQL may quote it back in a hint), the other the placeholders (never sent), so
/// learning the first tells nothing of the second.
fn process_tag(which: usize) -> &'static str {
    use std::hash::{BuildHasher, Hasher};
    static TAGS: OnceLock<[String; 2]> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let word = || {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        [
            format!("{:016x}{:016x}", word(), word()),
            format!("{:016x}{:016x}", word(), word()),
        ]
    });
    &tags[which % 2]
}

/// One placeholder's replacement.
#[derive(Debug, Clone)]
pub(crate) struct Splice {
    /// The subquery (without parentheses).
    pub sql: String,
    /// For a catalog guard: the relation as written, used when no guarded column is read.
    pub original: Option<String>,
    /// The subquery is needed (always, except for guards nothing reads through).
    pub used: bool,
    /// The placeholder is in the printed tree (false inside a view definition that was
    /// analysed but not inlined).
    pub live: bool,
}

/// Replace each live placeholder in the printed statement by its parenthesised subquery (or
/// by the relation itself for an unused guard). Each must occur exactly once, as a whole
/// word, else the statement is refused.
pub(crate) fn substitute(printed: &str, splices: &[Splice]) -> Result<String, Refusal> {
    let mut out = printed.to_string();
    for (i, splice) in splices.iter().enumerate().rev() {
        let name = placeholder(i);
        let hits: Vec<usize> = out
            .match_indices(&name)
            .map(|(at, _)| at)
            .filter(|at| {
                let after = out[at + name.len()..].chars().next();
                !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .collect();
        let expected = usize::from(splice.live);
        if hits.len() != expected {
            return Err(internal(
                "a statement",
                format!(
                    "placeholder {i} printed {} times, expected {expected}",
                    hits.len()
                ),
            ));
        }
        if let [at] = hits.as_slice() {
            let text = match (&splice.original, splice.used) {
                (Some(original), false) => original.clone(),
                _ => format!("({})", splice.sql),
            };
            out.replace_range(*at..*at + name.len(), &text);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splice(sql: &str, original: Option<&str>, used: bool, live: bool) -> Splice {
        Splice {
            sql: sql.into(),
            original: original.map(str::to_string),
            used,
            live,
        }
    }

    #[test]
    fn substitutes_each_placeholder_exactly_once() {
        let p0 = placeholder(0);
        let p1 = placeholder(1);
        let printed = format!("SELECT * FROM {p0} c JOIN {p1} k ON true");
        let subs = [
            splice("SELECT 1 AS x", None, true, true),
            splice("SELECT 2", Some("pg_catalog.pg_class"), false, true),
        ];
        assert_eq!(
            substitute(&printed, &subs).expect("substitutes"),
            "SELECT * FROM (SELECT 1 AS x) c JOIN pg_catalog.pg_class k ON true"
        );
        // A placeholder printed twice (e.g. also inside a literal) is refused, never guessed.
        let twice = format!("SELECT '{p0}' FROM {p0} c");
        assert!(substitute(&twice, &subs[..1]).is_err());
        // One that must not be printed (a dropped view body) must be absent.
        assert!(substitute("SELECT 1", &[splice("SELECT 1", None, true, false)]).is_ok());
        assert!(substitute(
            &format!("SELECT 1 FROM {p0}"),
            &[splice("SELECT 1", None, true, false)]
        )
        .is_err());
        // A longer name that merely starts with the placeholder is not it.
        assert!(substitute(&format!("SELECT 1 FROM {p0}9"), &subs[..1]).is_err());
    }

    #[test]
    fn canonical_expressions_cannot_escape_their_slot() {
        assert_eq!(canonical_expr("upper(x)", "t").expect("expression"), "upper(x)");
        // Comments are dropped by the re-print, so they cannot swallow what follows the slot.
        assert_eq!(canonical_expr("1 -- comment", "t").expect("expression"), "1");
        for bad in [
            "true) OR (1=1",
            "x FROM t",
            "1, 2",
            "a AS b",
            "1; DROP TABLE t",
            "",
            "1 /* open",
        ] {
            assert!(canonical_expr(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("salary"), "\"salary\"");
        assert_eq!(quote_ident("We\"ird"), "\"We\"\"ird\"");
        assert_eq!(quote_ident("Mixed Case"), "\"Mixed Case\"");
    }
}
