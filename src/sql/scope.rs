//! Name scopes of one statement, as PostgreSQL's parse analysis builds them: a stack of query
//! levels, each with its CTEs and FROM entries, so that every column reference can be judged
//! against what it may resolve to.
//!
//! Resolution here is *conservative*: where PostgreSQL picks exactly one target, these
//! functions may return several candidates (an entry whose columns are unknown never stops the
//! search outward). The analyser refuses when any candidate is denied or keyed, so an
//! imprecision can only refuse more, never let a protected column through.
//!
//! Invariant: only entries for protected relations (and join aliases over them) carry
//! [`ColState::Denied`] or [`ColState::Keyed`]; every derived entry (subquery, CTE, view,
//! function) is [`ColState::Plain`], because any denied or keyed reference inside it has been
//! refused already.
use std::sync::Arc;

use crate::mask::Mask;
use crate::policy::RuleRef;

/// What a reference to a column yields for the role.
#[derive(Debug, Clone)]
pub(crate) enum ColState {
    /// The stored value or a value already computed from masked values.
    Plain,
    /// A masked value computed in SQL by the masking subquery.
    Masked,
    /// The raw value, masked by pgveil in the result (keyed mask): usable only as a bare
    /// output column of a top-level SELECT. The masking subquery exposes it under the
    /// internal name (third field, see `masking::keyed_alias`) only, and pgveil rewrites the
    /// references it accepted to that name: a reference it did not see cannot reach it.
    Keyed(Arc<Mask>, Option<RuleRef>, String),
    /// Not visible: any reference is refused.
    Denied(Option<RuleRef>),
    /// A catalog column a guard replaces by a constant: reading it (by name, `*` or whole
    /// row) makes the guard's subquery necessary (index of the splice).
    Guarded(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct ColInfo {
    pub name: String,
    pub state: ColState,
    /// `schema.table.column` of the protected column behind it (for messages and the audit).
    pub origin: Option<String>,
}

impl ColInfo {
    pub fn plain(name: impl Into<String>) -> ColInfo {
        ColInfo {
            name: name.into(),
            state: ColState::Plain,
            origin: None,
        }
    }
}

/// The columns of a FROM entry, when known.
#[derive(Debug, Clone)]
pub(crate) enum Cols {
    Known(Vec<ColInfo>),
    /// A function or anything whose columns pgveil does not compute: its columns are plain
    /// values, but a name may resolve to it.
    Unknown,
}

impl Cols {
    /// Apply an alias column list (`AS t(a, b)`): the first names replace the first columns.
    /// Denied columns are absent from masking subqueries, so they take no name (positions
    /// match what PostgreSQL sees).
    pub fn renamed(self, names: &[String]) -> Cols {
        match self {
            Cols::Known(mut cols) => {
                let visible = cols
                    .iter_mut()
                    .filter(|c| !matches!(c.state, ColState::Denied(_)));
                for (c, n) in visible.zip(names) {
                    c.name = n.clone();
                }
                Cols::Known(cols)
            }
            Cols::Unknown if !names.is_empty() => Cols::Known(names.iter().map(ColInfo::plain).collect()),
            Cols::Unknown => Cols::Unknown,
        }
    }

    pub fn concat(a: &Cols, b: &Cols) -> Cols {
        match (a, b) {
            (Cols::Known(x), Cols::Known(y)) => Cols::Known(x.iter().chain(y).cloned().collect()),
            _ => Cols::Unknown,
        }
    }

    pub fn find(&self, name: &str) -> Vec<ColInfo> {
        match self {
            Cols::Known(cols) => cols
                .iter()
                .filter(|c| c.name == name || matches!(&c.state, ColState::Keyed(_, _, i) if i == name))
                .cloned()
                .collect(),
            Cols::Unknown => Vec::new(),
        }
    }

    /// Columns that carry a protection (denied or keyed), for `*`, whole-row and NATURAL.
    pub fn guarded(&self) -> impl Iterator<Item = &ColInfo> {
        let cols: &[ColInfo] = match self {
            Cols::Known(c) => c,
            Cols::Unknown => &[],
        };
        cols.iter()
            .filter(|c| matches!(c.state, ColState::Denied(_) | ColState::Keyed(..)))
    }

    pub fn all(&self) -> &[ColInfo] {
        match self {
            Cols::Known(c) => c,
            Cols::Unknown => &[],
        }
    }
}

/// One FROM entry (range table entry).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The name references qualify columns with: the alias, else the relation or function
    /// name. `None` for an unaliased join or the result of a set operation.
    pub refname: Option<String>,
    /// `(schema, relation)` for an unaliased relation, so `schema.rel.col` matches.
    pub relation: Option<(String, String)>,
    pub cols: Cols,
    /// The entry was turned into a masking subquery named after the relation: references
    /// qualified with the schema must lose the schema (a subquery has none).
    pub strip_schema: bool,
    /// The relation's primary key, when it was replaced by a subquery (which has none).
    pub fd: Option<Arc<Fd>>,
}

/// What PostgreSQL's functional-dependency rule needs of a relation pgveil replaced by a
/// masking subquery: grouping by the whole primary key lets a query read every other column
/// ungrouped. The subquery has no key, so the analyser adds the columns the query reads to
/// its GROUP BY; they depend on the key, so the groups stay the same.
#[derive(Debug, Clone)]
pub(crate) struct Fd {
    /// The key columns, by the names the entry shows (all clear: a masked key is no key).
    pub key: Vec<String>,
    /// Columns that may be added to a GROUP BY: (name the entry shows, name the rewritten
    /// statement reads: the internal one for a keyed column). Denied columns and types
    /// without an equality operator are absent.
    pub cols: Vec<(String, String)>,
    /// For a catalog guard, its splice: the relation is only replaced (and loses its key)
    /// when the splice is used.
    pub guard: Option<usize>,
}

/// A CTE visible at one level.
#[derive(Debug, Clone)]
pub(crate) struct Cte {
    pub name: String,
    pub cols: Cols,
}

/// One query level (a SELECT and its FROM).
#[derive(Debug, Default)]
pub(crate) struct Level {
    pub ctes: Vec<Cte>,
    pub entries: Vec<Entry>,
    /// References to entries carrying an [`Fd`] made anywhere in the statement to this
    /// level's entries: (refname, column; `None` for `*` or a whole-row reference).
    pub refs: Vec<(String, Option<String>)>,
}

/// Candidates for an unqualified column name: the innermost level with a known column of
/// that name, plus nothing else; levels holding only unknown entries do not stop the search.
pub(crate) fn resolve_column(levels: &[Level], name: &str) -> Vec<ColInfo> {
    for level in levels.iter().rev() {
        let found: Vec<ColInfo> = level.entries.iter().flat_map(|e| e.cols.find(name)).collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// The entry a one-part qualifier names, innermost level first.
pub(crate) fn find_entry<'l>(levels: &'l [Level], refname: &str) -> Option<&'l Entry> {
    levels
        .iter()
        .rev()
        .find_map(|l| l.entries.iter().find(|e| e.refname.as_deref() == Some(refname)))
}

/// The unaliased relation entry a `schema.rel` qualifier names.
pub(crate) fn find_qualified<'l>(levels: &'l [Level], schema: &str, rel: &str) -> Option<&'l Entry> {
    levels.iter().rev().find_map(|l| {
        l.entries
            .iter()
            .find(|e| e.relation.as_ref().is_some_and(|(s, r)| s == schema && r == rel))
    })
}

/// A CTE visible under `name`, innermost level first.
pub(crate) fn find_cte<'l>(levels: &'l [Level], name: &str) -> Option<&'l Cte> {
    levels
        .iter()
        .rev()
        .find_map(|l| l.ctes.iter().rev().find(|c| c.name == name))
}
