//! The scoped walk over a parsed query: resolves every relation and column reference as
//! PostgreSQL would, swaps protected relations for masking subqueries, and judges every
//! column, `*`, whole-row reference and function call.
//!
//! Invariants:
//! - Every node kind reachable from a query is either handled or refused (0A000): an
//!   unknown construct never passes unexamined.
//! - A spliced masking subquery is never walked (it is pgveil's own SQL, added as text).
//! - A keyed column is accepted only as a bare output column of the top-level SELECT of a
//!   plain SELECT statement (`keyed_ok`), and then recorded in `proxy_masks`.
use std::collections::HashMap;
use std::sync::Arc;

use pg_query::protobuf::{self, a_const, node::Node as N, Node, SelectStmt};

use super::functions;
use super::masking;
use super::scope::{
    find_cte, find_entry, find_qualified, resolve_column, ColInfo, ColState, Cols, Cte, Entry, Fd, Level,
};
use super::{Context, Refusal};
use crate::catalog::{RelKind, Relation};
use crate::mask::Mask;
use crate::policy::guards::{guard_for, Guard};
use crate::policy::RuleRef;

type R<T> = Result<T, Refusal>;

/// Where an expression sits: only a bare top-level output column may hold a keyed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pos {
    /// The i-th entry of the top-level target list.
    Output(usize),
    Other,
}

/// Every operator name PostgreSQL 15 defines (`SELECT DISTINCT oprname FROM pg_operator`).
const BUILTIN_OPERATORS: &[&str] = &[
    "!!", "!~", "!~*", "!~~", "!~~*", "##", "#", "#-", "#>", "#>>", "%", "&&", "&", "&<", "&<|", "&>", "*",
    "*<", "*<=", "*<>", "*=", "*>", "*>=", "+", "-", "->", "->>", "-|-", "/", "<", "<->", "<<", "<<=", "<<|",
    "<=", "<>", "<@", "<^", "=", ">", ">=", ">>", ">>=", ">^", "?#", "?&", "?", "?-", "?-|", "?|", "?||",
    "@", "@-@", "@>", "@?", "@@", "@@@", "^", "^@", "|&>", "|", "|/", "|>>", "||", "||/", "~", "~*", "~<=~",
    "~<~", "~=", "~>=~", "~>~", "~~", "~~*",
];

/// Views nest; a cycle or an absurd depth is refused rather than followed forever.
const MAX_VIEW_DEPTH: usize = 16;
/// Bound on expression nesting walked recursively (the parser limits it too).
const MAX_DEPTH: usize = 900;

pub(crate) struct Analyzer<'c, 'a> {
    ctx: &'c Context<'a>,
    levels: Vec<Level>,
    /// Keyed masks may be passed to the proxy by output position (plain top-level SELECT).
    pub keyed_ok: bool,
    /// Something in the statement was rewritten: the deparsed tree must be forwarded.
    pub rewrote: bool,
    /// A protected or guarded relation was read (EXPLAIN refuses those).
    pub touched_protected: bool,
    pub tables: Vec<String>,
    pub masked: Vec<String>,
    pub proxy_masks: Vec<(usize, Arc<Mask>)>,
    view_depth: usize,
    depth: usize,
    /// Memo of function verdicts within one statement.
    fn_memo: HashMap<(bool, Vec<String>), Result<(), Refusal>>,
    /// The top-level target list holds a `*`.
    top_star: bool,
    /// Subquery texts for the placeholders left in the tree, in placeholder order.
    pub splices: Vec<masking::Splice>,
    /// Placeholders of earlier statements of the same string come first.
    pub splice_base: usize,
    /// Inside a view definition: names resolve with `pg_catalog` only.
    view_path: bool,
    /// Set on the first attempt at a statement: masked columns of the top-level FROM whose
    /// mask pgveil computes exactly as PostgreSQL would ([`masking::proxy_exact`]) leave the
    /// masking subquery raw, like keyed ones, and pgveil masks them in the result. Any other
    /// use of them is refused by the keyed rules, and the statement is then analysed again
    /// without it (SQL masks everywhere): see `sql::analyze_statement`.
    ///
    /// It holds the statement's text (ASCII-lowercased) and the names its top-level target
    /// list selects as bare columns: a column whose name the text mentions more often than
    /// that is also used elsewhere (filtered, sorted, computed on...), so it is not even tried
    /// raw. A heuristic that only saves the second analysis; the keyed rules decide.
    pub proxy_masking: Option<(String, Vec<String>)>,
    /// A masked column was exposed raw under `proxy_masking`.
    pub proxied: bool,
}

fn str_of(n: &Node) -> Option<&str> {
    match &n.node {
        Some(N::String(s)) => Some(&s.sval),
        _ => None,
    }
}

fn names_of(list: &[Node]) -> Vec<String> {
    list.iter()
        .filter_map(|n| str_of(n).map(str::to_string))
        .collect()
}

pub(crate) fn node_name(n: &N) -> String {
    let d = format!("{n:?}");
    d.split('(').next().unwrap_or("node").to_string()
}

pub(crate) fn unsupported(what: &str) -> Refusal {
    Refusal::new(
        "0A000",
        format!("pgveil cannot analyse {what} for restricted roles"),
        Some("rewrite the statement without it, or ask the DBA for an unrestricted role".into()),
    )
}

fn rule_hint(rule: &Option<RuleRef>, default: &str) -> String {
    match rule {
        Some(r) => format!("pgveil rule: {r}"),
        None => default.to_string(),
    }
}

pub(crate) fn denied(origin: &str, rule: &Option<RuleRef>, extra: &str) -> Refusal {
    Refusal::new(
        "42501",
        format!("permission denied for column {origin}{extra}"),
        Some(rule_hint(
            rule,
            "pgveil rule: no rule lets this role read the column (denied by default)",
        )),
    )
}

pub(crate) fn keyed(origin: &str, rule: &Option<RuleRef>) -> Refusal {
    Refusal::new(
        "0A000",
        format!(
            "column {origin} has a keyed mask that pgveil applies to results only: it can only be \
             selected as a plain output column of a top-level SELECT"
        ),
        Some(format!(
            "select the column itself (no expression, WHERE, ORDER BY, GROUP BY, DISTINCT, join, \
             subquery, *, whole-row reference, COPY, cursor or PREPARE); {}",
            rule_hint(rule, "pgveil rule: keyed mask")
        )),
    )
}

impl<'c, 'a> Analyzer<'c, 'a> {
    pub fn new(ctx: &'c Context<'a>) -> Self {
        Analyzer {
            ctx,
            levels: Vec::new(),
            keyed_ok: false,
            rewrote: false,
            touched_protected: false,
            tables: Vec::new(),
            masked: Vec::new(),
            proxy_masks: Vec::new(),
            view_depth: 0,
            depth: 0,
            fn_memo: HashMap::new(),
            top_star: false,
            splices: Vec::new(),
            splice_base: 0,
            view_path: false,
            proxy_masking: None,
            proxied: false,
        }
    }

    pub fn ctx(&self) -> &'c Context<'a> {
        self.ctx
    }

    fn note_table(&mut self, t: String) {
        if !self.tables.contains(&t) {
            self.tables.push(t);
        }
    }

    fn note_masked(&mut self, c: &ColInfo) {
        if let (ColState::Masked, Some(o)) = (&c.state, &c.origin) {
            if !self.masked.contains(o) {
                self.masked.push(o.clone());
            }
        }
    }

    // ---------------------------------------------------------------- queries

    /// Analyse a query node that must be a read (SELECT/VALUES/set operation).
    pub fn query_node(&mut self, n: &mut Node, top: bool) -> R<Cols> {
        match &mut n.node {
            Some(N::SelectStmt(s)) => self.select(s, top),
            Some(N::InsertStmt(_)) => Err(super::statement::write_refusal("INSERT")),
            Some(N::UpdateStmt(_)) => Err(super::statement::write_refusal("UPDATE")),
            Some(N::DeleteStmt(_)) => Err(super::statement::write_refusal("DELETE")),
            Some(N::MergeStmt(_)) => Err(super::statement::write_refusal("MERGE")),
            Some(other) => Err(unsupported(&node_name(other))),
            None => Err(unsupported("an empty query")),
        }
    }

    pub fn select(&mut self, s: &mut SelectStmt, top: bool) -> R<Cols> {
        if s.into_clause.is_some() {
            return Err(super::statement::write_refusal("SELECT INTO"));
        }
        if !s.locking_clause.is_empty() {
            return Err(Refusal::new(
                "42501",
                "permission denied: SELECT ... FOR UPDATE/SHARE locks rows, restricted roles are read-only",
                Some("drop the locking clause".into()),
            ));
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(unsupported("a statement nested this deeply"));
        }
        self.levels.push(Level::default());
        let r = self.select_in_level(s, top);
        self.levels.pop();
        self.depth -= 1;
        r
    }

    fn cur(&mut self) -> &mut Level {
        // A level is pushed before anything calls this; an empty stack gets a fresh level
        // so the analyser never panics.
        if self.levels.is_empty() {
            self.levels.push(Level::default());
        }
        let i = self.levels.len() - 1;
        &mut self.levels[i]
    }

    fn select_in_level(&mut self, s: &mut SelectStmt, top: bool) -> R<Cols> {
        if let Some(w) = &mut s.with_clause {
            self.with_clause(w)?;
        }
        if s.op > protobuf::SetOperation::SetopNone as i32 {
            let left = match &mut s.larg {
                Some(l) => self.select(l, false)?,
                None => return Err(unsupported("a set operation without its left side")),
            };
            if let Some(r) = &mut s.rarg {
                self.select(r, false)?;
            }
            // ORDER BY of a set operation names result columns.
            self.cur().entries.push(Entry {
                refname: None,
                relation: None,
                cols: left.clone(),
                strip_schema: false,
                fd: None,
            });
            for n in s.sort_clause.iter_mut() {
                self.expr(n, Pos::Other)?;
            }
            self.opt_expr(&mut s.limit_offset)?;
            self.opt_expr(&mut s.limit_count)?;
            return Ok(left);
        }
        for item in s.from_clause.iter_mut() {
            self.range_item(item)?;
        }
        for row in s.values_lists.iter_mut() {
            self.expr(row, Pos::Other)?;
        }
        let keyed_here = top && self.keyed_ok;
        if keyed_here {
            self.expand_star(s);
        }
        for (i, t) in s.target_list.iter_mut().enumerate() {
            let Some(N::ResTarget(rt)) = &mut t.node else {
                return Err(unsupported("a target list entry"));
            };
            let Some(val) = rt.val.as_deref_mut() else {
                continue;
            };
            if top {
                if let Some(N::ColumnRef(cr)) = &val.node {
                    if matches!(cr.fields.last().and_then(|f| f.node.as_ref()), Some(N::AStar(_))) {
                        self.top_star = true;
                    }
                }
            }
            let pos = if keyed_here { Pos::Output(i) } else { Pos::Other };
            match &mut val.node {
                Some(N::ColumnRef(cr)) => {
                    let before = self.proxy_masks.len();
                    let shown = cr.fields.last().and_then(str_of).map(str::to_string);
                    self.column_ref(cr, pos)?;
                    // A keyed column now reads its internal name: keep the client's name.
                    if self.proxy_masks.len() > before && rt.name.is_empty() {
                        rt.name = shown.unwrap_or_default();
                    }
                }
                _ => self.expr(val, Pos::Other)?,
            }
        }
        self.opt_expr(&mut s.where_clause)?;
        for n in s.group_clause.iter_mut() {
            self.expr(n, Pos::Other)?;
        }
        self.opt_expr(&mut s.having_clause)?;
        for n in s.window_clause.iter_mut() {
            self.expr(n, Pos::Other)?;
        }
        for n in s.sort_clause.iter_mut() {
            self.expr(n, Pos::Other)?;
        }
        for n in s.distinct_clause.iter_mut() {
            if n.node.is_some() {
                self.expr(n, Pos::Other)?;
            }
        }
        self.opt_expr(&mut s.limit_offset)?;
        self.opt_expr(&mut s.limit_count)?;
        if keyed_here && !self.proxy_masks.is_empty() {
            self.check_keyed_outputs(s)?;
        }
        self.add_dependent_groups(s);
        Ok(self.output_cols(s))
    }

    /// PostgreSQL accepts `SELECT c.name ... GROUP BY c.id` when `c.id` is `c`'s primary key;
    /// once `c` is a masking subquery it has no key and the statement fails (42803). For each
    /// such entry of this level whose whole key is grouped by plain column references, add
    /// the entry's other referenced columns to the GROUP BY: they depend on the key, so the
    /// groups (and every result) stay those PostgreSQL computes on a masked copy. Grouping
    /// sets are left alone (PostgreSQL only uses keys common to all sets).
    fn add_dependent_groups(&mut self, s: &mut SelectStmt) {
        let Some(level) = self.levels.last() else { return };
        if s.group_clause.is_empty() || level.refs.is_empty() {
            return;
        }
        // A guard nothing read through keeps the catalog relation, key included.
        let replaced = |fd: &Fd| match fd.guard {
            None => true,
            Some(i) => i
                .checked_sub(self.splice_base)
                .and_then(|i| self.splices.get(i))
                .is_some_and(|sp| sp.used),
        };
        let with_key: Vec<(&str, &Fd)> = level
            .entries
            .iter()
            .filter_map(|e| Some((e.refname.as_deref()?, e.fd.as_deref()?)))
            .filter(|(_, fd)| replaced(fd))
            .collect();
        if with_key.is_empty() {
            return;
        }
        // (refname, column) of every plain column reference grouped by.
        let mut grouped: Vec<(String, String)> = Vec::new();
        let note = |cr: &protobuf::ColumnRef, grouped: &mut Vec<(String, String)>| {
            let names = names_of(&cr.fields);
            if names.len() != cr.fields.len() {
                return;
            }
            match names.as_slice() {
                [q, c] => grouped.push((q.clone(), c.clone())),
                [c] => {
                    let owners: Vec<&Entry> = level
                        .entries
                        .iter()
                        .filter(|e| !e.cols.find(c).is_empty())
                        .collect();
                    if let [e] = owners.as_slice() {
                        if let Some(r) = &e.refname {
                            grouped.push((r.clone(), c.clone()));
                        }
                    }
                }
                _ => {}
            }
        };
        for g in &s.group_clause {
            match &g.node {
                Some(N::GroupingSet(_)) => return,
                Some(N::ColumnRef(cr)) => note(cr, &mut grouped),
                Some(N::AConst(c)) => {
                    if let Some(a_const::Val::Ival(i)) = &c.val {
                        let target = usize::try_from(i.ival)
                            .ok()
                            .and_then(|i| i.checked_sub(1))
                            .and_then(|i| s.target_list.get(i));
                        if let Some(Some(N::ResTarget(rt))) = target.map(|t| &t.node) {
                            if let Some(Some(N::ColumnRef(cr))) = rt.val.as_ref().map(|v| &v.node) {
                                note(cr, &mut grouped);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let mut added: Vec<Node> = Vec::new();
        for (refname, fd) in with_key {
            let has =
                |c: &str, grouped: &[(String, String)]| grouped.iter().any(|(q, g)| q == refname && g == c);
            if !fd.key.iter().all(|k| has(k, &grouped)) {
                continue;
            }
            let refs: Vec<&Option<String>> = level
                .refs
                .iter()
                .filter(|(r, _)| r == refname)
                .map(|(_, c)| c)
                .collect();
            let whole = refs.iter().any(|c| c.is_none());
            for (shown, read) in &fd.cols {
                let used = whole
                    || refs
                        .iter()
                        .any(|c| c.as_deref() == Some(shown) || c.as_deref() == Some(read));
                if used && !has(shown, &grouped) && !has(read, &grouped) {
                    grouped.push((refname.to_string(), read.clone()));
                    added.push(column_ref_node(&[refname, read]));
                }
            }
        }
        if !added.is_empty() {
            s.group_clause.extend(added);
            self.rewrote = true;
        }
    }

    /// Record a reference to a column (`None`: all of them) of the entry a qualifier names,
    /// or of the entries an unqualified name resolves to, for [`Self::add_dependent_groups`].
    /// Only entries with a primary key are recorded.
    fn note_ref(&mut self, qual: Option<&str>, col: Option<&str>) {
        if !self
            .levels
            .iter()
            .any(|l| l.entries.iter().any(|e| e.fd.is_some()))
        {
            return;
        }
        let mut hits: Vec<(usize, String)> = Vec::new();
        match (qual, col) {
            (Some(q), _) => {
                let found = self.levels.iter().enumerate().rev().find_map(|(i, l)| {
                    l.entries
                        .iter()
                        .find(|e| e.refname.as_deref() == Some(q))
                        .map(|e| (i, e))
                });
                if let Some((i, e)) = found {
                    if e.fd.is_some() {
                        hits.push((i, q.to_string()));
                    }
                }
            }
            (None, Some(c)) => {
                for (i, l) in self.levels.iter().enumerate().rev() {
                    let owners: Vec<&Entry> =
                        l.entries.iter().filter(|e| !e.cols.find(c).is_empty()).collect();
                    if owners.is_empty() {
                        continue;
                    }
                    for e in owners {
                        if let (Some(r), Some(_)) = (&e.refname, &e.fd) {
                            hits.push((i, r.clone()));
                        }
                    }
                    break;
                }
            }
            (None, None) => {
                if let Some((i, l)) = self.levels.iter().enumerate().next_back() {
                    for e in &l.entries {
                        if let (Some(r), Some(_)) = (&e.refname, &e.fd) {
                            hits.push((i, r.clone()));
                        }
                    }
                }
            }
        }
        for (i, r) in hits {
            if let Some(l) = self.levels.get_mut(i) {
                let item = (r, col.map(str::to_string));
                if !l.refs.contains(&item) {
                    l.refs.push(item);
                }
            }
        }
    }

    /// `SELECT *` (or `t.*`) over one protected table with keyed columns: spell the columns
    /// out (`t.c1, t.c2, ...`, catalog order, exactly what `*` yields from the masking
    /// subquery), so every output position is certain and a keyed column can be masked by
    /// position. Only for a FROM clause of a single relation (no join, whose `*` order pgveil
    /// does not model) without denied columns (`*` over those is refused as before).
    fn expand_star(&mut self, s: &mut SelectStmt) {
        let single = matches!(s.from_clause.as_slice(), [n] if matches!(n.node, Some(N::RangeVar(_))));
        let Some(level) = self.levels.last() else { return };
        let ([entry], true) = (level.entries.as_slice(), single) else {
            return;
        };
        let (Some(refname), Cols::Known(cols)) = (&entry.refname, &entry.cols) else {
            return;
        };
        let keyed = cols.iter().any(|c| matches!(c.state, ColState::Keyed(..)));
        let denied = cols.iter().any(|c| matches!(c.state, ColState::Denied(_)));
        if !keyed || denied {
            return;
        }
        let is_star = |t: &Node| -> bool {
            let Some(N::ResTarget(rt)) = &t.node else {
                return false;
            };
            let Some(Some(N::ColumnRef(cr))) = rt.val.as_ref().map(|v| &v.node) else {
                return false;
            };
            let (Some(last), quals) = (cr.fields.last(), &cr.fields[..cr.fields.len().saturating_sub(1)])
            else {
                return false;
            };
            if !matches!(last.node, Some(N::AStar(_))) || !rt.name.is_empty() {
                return false;
            }
            let quals = names_of(quals);
            quals.is_empty() || quals == [refname.clone()]
        };
        if !s.target_list.iter().any(is_star) {
            return;
        }
        let mut expanded = Vec::with_capacity(s.target_list.len() + cols.len());
        for t in std::mem::take(&mut s.target_list) {
            if !is_star(&t) {
                expanded.push(t);
                continue;
            }
            for c in cols {
                expanded.push(Node {
                    node: Some(N::ResTarget(Box::new(protobuf::ResTarget {
                        name: String::new(),
                        indirection: Vec::new(),
                        val: Some(Box::new(column_ref_node(&[refname, &c.name]))),
                        location: -1,
                    }))),
                });
            }
        }
        s.target_list = expanded;
        self.rewrote = true;
    }

    /// With keyed outputs, nothing may order, group or deduplicate by them (through output
    /// names or positions), and output positions must be certain (no `*`).
    fn check_keyed_outputs(&self, s: &SelectStmt) -> R<()> {
        let refuse = |what: &str| {
            Refusal::new(
                "0A000",
                format!("a keyed-masked output column cannot be combined with {what}"),
                Some(
                    "pgveil masks keyed columns in the result, so the database only sees raw \
                     values; select them without DISTINCT, ORDER BY/GROUP BY on them, or *"
                        .into(),
                ),
            )
        };
        if !s.distinct_clause.is_empty() {
            return Err(refuse("DISTINCT"));
        }
        if self.top_star {
            return Err(refuse("* in the same target list"));
        }
        let mut keyed_names = Vec::new();
        for (pos, _) in &self.proxy_masks {
            if let Some(Some(N::ResTarget(rt))) = s.target_list.get(*pos).map(|n| &n.node) {
                if !rt.name.is_empty() {
                    keyed_names.push(rt.name.clone());
                }
                if let Some(Some(N::ColumnRef(cr))) = rt.val.as_ref().map(|v| &v.node) {
                    if let Some(n) = cr.fields.last().and_then(str_of) {
                        keyed_names.push(n.to_string());
                    }
                }
            }
        }
        let names_keyed = |n: &Node| -> bool {
            match &n.node {
                Some(N::ColumnRef(cr)) if cr.fields.len() == 1 => cr
                    .fields
                    .first()
                    .and_then(str_of)
                    .is_some_and(|x| keyed_names.iter().any(|k| k == x)),
                Some(N::AConst(c)) => match &c.val {
                    Some(a_const::Val::Ival(i)) => self
                        .proxy_masks
                        .iter()
                        .any(|(p, _)| (*p as i64) + 1 == i.ival as i64),
                    _ => false,
                },
                _ => false,
            }
        };
        for n in &s.sort_clause {
            if let Some(N::SortBy(sb)) = &n.node {
                if sb.node.as_deref().is_some_and(names_keyed) {
                    return Err(refuse("ORDER BY on it"));
                }
            }
        }
        let mut groups: Vec<&Node> = s.group_clause.iter().collect();
        while let Some(g) = groups.pop() {
            match &g.node {
                Some(N::GroupingSet(gs)) => groups.extend(gs.content.iter()),
                Some(N::List(l)) => groups.extend(l.items.iter()),
                _ if names_keyed(g) => return Err(refuse("GROUP BY on it")),
                _ => {}
            }
        }
        Ok(())
    }

    /// Output column names (PostgreSQL's FigureColname, approximately: names only serve
    /// shadowing, and every derived column is plain).
    fn output_cols(&self, s: &SelectStmt) -> Cols {
        if !s.values_lists.is_empty() {
            let n = match s.values_lists.first().map(|n| &n.node) {
                Some(Some(N::List(l))) => l.items.len(),
                _ => 0,
            };
            return Cols::Known((1..=n).map(|i| ColInfo::plain(format!("column{i}"))).collect());
        }
        let mut out = Vec::new();
        for t in &s.target_list {
            let Some(N::ResTarget(rt)) = &t.node else {
                return Cols::Unknown;
            };
            if !rt.name.is_empty() {
                out.push(ColInfo::plain(rt.name.clone()));
                continue;
            }
            let Some(val) = rt.val.as_deref() else {
                return Cols::Unknown;
            };
            match &val.node {
                Some(N::ColumnRef(cr)) => match cr.fields.last().map(|f| &f.node) {
                    Some(Some(N::String(s))) => out.push(ColInfo::plain(s.sval.clone())),
                    Some(Some(N::AStar(_))) => {
                        let entries = self.levels.last().map(|l| l.entries.as_slice()).unwrap_or(&[]);
                        let quals = names_of(&cr.fields[..cr.fields.len() - 1]);
                        let chosen: Vec<&Entry> = match quals.as_slice() {
                            [] => entries
                                .iter()
                                .filter(|e| e.refname.is_some() || e.relation.is_some())
                                .collect(),
                            [q] => entries
                                .iter()
                                .filter(|e| e.refname.as_deref() == Some(q))
                                .collect(),
                            _ => return Cols::Unknown,
                        };
                        for e in chosen {
                            match &e.cols {
                                Cols::Known(c) => {
                                    out.extend(c.iter().map(|c| ColInfo::plain(c.name.clone())))
                                }
                                Cols::Unknown => return Cols::Unknown,
                            }
                        }
                    }
                    _ => return Cols::Unknown,
                },
                Some(N::FuncCall(f)) => out.push(ColInfo::plain(
                    f.funcname.last().and_then(str_of).unwrap_or("?column?"),
                )),
                _ => out.push(ColInfo::plain("?column?")),
            }
        }
        Cols::Known(out)
    }

    fn with_clause(&mut self, w: &mut protobuf::WithClause) -> R<()> {
        if w.recursive {
            // Every CTE of WITH RECURSIVE is visible in every body, itself included.
            for c in &w.ctes {
                if let Some(N::CommonTableExpr(cte)) = &c.node {
                    let names = names_of(&cte.aliascolnames);
                    let cols = Cols::Unknown.renamed(&names);
                    self.cur().ctes.push(Cte {
                        name: cte.ctename.clone(),
                        cols,
                    });
                }
            }
        }
        for c in w.ctes.iter_mut() {
            let Some(N::CommonTableExpr(cte)) = &mut c.node else {
                return Err(unsupported("a WITH entry"));
            };
            let cols = match cte.ctequery.as_deref_mut() {
                Some(q) => self.query_node(q, false)?,
                None => return Err(unsupported("an empty WITH query")),
            };
            let cols = cols.renamed(&names_of(&cte.aliascolnames));
            if let Some(cc) = &mut cte.cycle_clause {
                self.opt_expr(&mut cc.cycle_mark_value)?;
                self.opt_expr(&mut cc.cycle_mark_default)?;
            }
            let level = self.cur();
            if let Some(existing) = level.ctes.iter_mut().find(|x| x.name == cte.ctename) {
                existing.cols = cols;
            } else {
                level.ctes.push(Cte {
                    name: cte.ctename.clone(),
                    cols,
                });
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- FROM

    fn push_entry(&mut self, e: Entry) {
        self.cur().entries.push(e);
    }

    fn range_item(&mut self, n: &mut Node) -> R<Cols> {
        match &mut n.node {
            Some(N::RangeVar(_)) => self.range_var(n),
            Some(N::RangeSubselect(rs)) => {
                let cols = match rs.subquery.as_deref_mut() {
                    Some(q) => self.query_node(q, false)?,
                    None => return Err(unsupported("an empty subquery")),
                };
                let (refname, names) = alias_parts(&rs.alias);
                let cols = cols.renamed(&names);
                self.push_entry(Entry {
                    refname,
                    relation: None,
                    cols: cols.clone(),
                    strip_schema: false,
                    fd: None,
                });
                Ok(cols)
            }
            Some(N::RangeFunction(rf)) => {
                let mut first_name = None;
                for f in rf.functions.iter_mut() {
                    match &mut f.node {
                        Some(N::List(l)) => {
                            if let Some(call) = l.items.first_mut() {
                                if first_name.is_none() {
                                    if let Some(N::FuncCall(fc)) = &call.node {
                                        first_name = fc.funcname.last().and_then(str_of).map(str::to_string);
                                    }
                                }
                                self.expr(call, Pos::Other)?;
                            }
                        }
                        Some(_) => self.expr(f, Pos::Other)?,
                        None => {}
                    }
                }
                let (alias, names) = alias_parts(&rf.alias);
                let refname = alias.or(if rf.functions.len() == 1 { first_name } else { None });
                let cols = Cols::Unknown.renamed(&names);
                self.push_entry(Entry {
                    refname,
                    relation: None,
                    cols: cols.clone(),
                    strip_schema: false,
                    fd: None,
                });
                Ok(cols)
            }
            Some(N::JoinExpr(j)) => {
                let left = match j.larg.as_deref_mut() {
                    Some(l) => self.range_item(l)?,
                    None => return Err(unsupported("a join without its left side")),
                };
                let right = match j.rarg.as_deref_mut() {
                    Some(r) => self.range_item(r)?,
                    None => return Err(unsupported("a join without its right side")),
                };
                if j.is_natural {
                    check_natural(&left, &right)?;
                }
                let using = names_of(&j.using_clause);
                for u in &using {
                    for c in left.find(u).into_iter().chain(right.find(u)) {
                        match &c.state {
                            ColState::Denied(r) => {
                                return Err(denied(c.origin.as_deref().unwrap_or(u), r, " (in JOIN USING)"))
                            }
                            ColState::Keyed(_, r, _) => {
                                return Err(keyed(c.origin.as_deref().unwrap_or(u), r))
                            }
                            _ => self.note_masked(&c),
                        }
                    }
                }
                self.opt_expr(&mut j.quals)?;
                let combined = Cols::concat(&left, &right);
                if let Some(a) = &j.join_using_alias {
                    self.push_entry(Entry {
                        refname: Some(a.aliasname.clone()),
                        relation: None,
                        cols: Cols::Known(using.iter().map(ColInfo::plain).collect()),
                        strip_schema: false,
                        fd: None,
                    });
                }
                if j.alias.is_some() {
                    let (refname, names) = alias_parts(&j.alias);
                    // PostgreSQL orders a join's columns as merged USING/NATURAL columns
                    // first; pgveil does not model that order, so an alias column list must
                    // not be able to rename a keyed or denied column under a wrong identity.
                    if !names.is_empty() {
                        let protected = |c: &Cols| matches!(c, Cols::Unknown) || c.guarded().next().is_some();
                        if protected(&left) || protected(&right) {
                            if let Some(c) = left.guarded().chain(right.guarded()).next().cloned() {
                                let origin = c.origin.clone().unwrap_or(c.name.clone());
                                return Err(match &c.state {
                                    ColState::Keyed(_, r, _) => keyed(&origin, r),
                                    ColState::Denied(r) => {
                                        denied(&origin, r, " (renamed by a join alias column list)")
                                    }
                                    _ => unsupported("a join alias column list here"),
                                });
                            }
                        }
                    }
                    let cols = combined.clone().renamed(&names);
                    self.push_entry(Entry {
                        refname,
                        relation: None,
                        cols,
                        strip_schema: false,
                        fd: None,
                    });
                }
                Ok(combined)
            }
            Some(N::RangeTableSample(ts)) => {
                for a in ts.args.iter_mut() {
                    self.expr(a, Pos::Other)?;
                }
                self.opt_expr(&mut ts.repeatable)?;
                let Some(rel) = ts.relation.as_deref_mut() else {
                    return Err(unsupported("TABLESAMPLE without a relation"));
                };
                let rewrote_before = std::mem::replace(&mut self.rewrote, false);
                let cols = self.range_var(rel)?;
                let sampled_protected = self.rewrote;
                self.rewrote |= rewrote_before;
                if sampled_protected {
                    return Err(Refusal::new(
                        "0A000",
                        "TABLESAMPLE is not supported on relations pgveil protects",
                        Some("sample with WHERE random() < 0.1 instead".into()),
                    ));
                }
                Ok(cols)
            }
            Some(N::RangeTableFunc(tf)) => {
                self.opt_expr(&mut tf.docexpr)?;
                self.opt_expr(&mut tf.rowexpr)?;
                for ns in tf.namespaces.iter_mut() {
                    self.expr(ns, Pos::Other)?;
                }
                let mut names = Vec::new();
                for c in tf.columns.iter_mut() {
                    if let Some(N::RangeTableFuncCol(col)) = &mut c.node {
                        names.push(col.colname.clone());
                        self.opt_expr(&mut col.colexpr)?;
                        self.opt_expr(&mut col.coldefexpr)?;
                    } else {
                        return Err(unsupported("an XMLTABLE column"));
                    }
                }
                let (refname, alias_names) = alias_parts(&tf.alias);
                let cols = Cols::Known(names.iter().map(ColInfo::plain).collect()).renamed(&alias_names);
                self.push_entry(Entry {
                    refname,
                    relation: None,
                    cols: cols.clone(),
                    strip_schema: false,
                    fd: None,
                });
                Ok(cols)
            }
            Some(other) => Err(unsupported(&node_name(other))),
            None => Err(unsupported("an empty FROM item")),
        }
    }

    /// A relation name in FROM: a CTE, a protected table (masking subquery), a guarded
    /// catalog, a view over protected data (inlined) or a plain relation.
    fn range_var(&mut self, n: &mut Node) -> R<Cols> {
        let Some(N::RangeVar(rv)) = &n.node else {
            return Err(unsupported("a relation reference"));
        };
        let rv = rv.clone();
        let (alias, alias_names) = alias_parts(&rv.alias);
        if rv.schemaname.is_empty() {
            if let Some(cte) = find_cte(&self.levels, &rv.relname) {
                let cols = cte.cols.clone().renamed(&alias_names);
                let refname = Some(alias.unwrap_or(rv.relname.clone()));
                self.push_entry(Entry {
                    refname,
                    relation: None,
                    cols: cols.clone(),
                    strip_schema: false,
                    fd: None,
                });
                return Ok(cols);
            }
        }
        let rel = self.resolve_relation(&rv)?;
        self.note_table(rel.qualified_name());
        let refname = alias.clone().unwrap_or(rel.name.clone());
        let relation = if alias.is_none() {
            Some((rel.schema.clone(), rel.name.clone()))
        } else {
            None
        };

        if let Some(g) = guard_for(&rel.schema, &rel.name) {
            match g {
                Guard::Refuse { reason } => {
                    return Err(Refusal::new(
                        "42501",
                        format!("permission denied for relation {}", rel.qualified_name()),
                        Some(format!("pgveil built-in guard: {reason}")),
                    ))
                }
                Guard::Rewrite { .. } | Guard::Nulls { .. } => {
                    let (owned, row_filter): (Vec<(String, String)>, Option<&str>) = match &g {
                        Guard::Rewrite {
                            constants,
                            row_filter,
                        } => (
                            constants
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                            *row_filter,
                        ),
                        Guard::Nulls { keep } => (
                            rel.columns
                                .iter()
                                .filter(|c| !keep.contains(&c.name.as_str()))
                                .map(|c| (c.name.clone(), format!("NULL::{}", c.type_name)))
                                .collect(),
                            None,
                        ),
                        Guard::Refuse { .. } => (Vec::new(), None),
                    };
                    let constants: Vec<(&str, &str)> =
                        owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let sub = masking::guard_subquery(rel, &constants, row_filter, rv.inh);
                    let original = format!(
                        "{}{}.{}",
                        if rv.inh { "" } else { "ONLY " },
                        masking::quote_ident(&rel.schema),
                        masking::quote_ident(&rel.name)
                    );
                    let index = self.splice(n, sub, &refname, &rv.alias, Some(original));
                    if row_filter.is_some() {
                        self.use_guard(index);
                    }
                    let cols = Cols::Known(
                        rel.columns
                            .iter()
                            .map(|c| ColInfo {
                                name: c.name.clone(),
                                state: if constants.iter().any(|(k, _)| *k == c.name) {
                                    ColState::Guarded(index)
                                } else {
                                    ColState::Plain
                                },
                                origin: None,
                            })
                            .collect(),
                    )
                    .renamed(&alias_names);
                    let fd = functional_key(rel, &cols, Some(index));
                    self.push_entry(Entry {
                        refname: Some(refname),
                        relation,
                        cols: cols.clone(),
                        strip_schema: alias.is_none(),
                        fd,
                    });
                    return Ok(cols);
                }
            }
        }

        // Plans are keyed by oid; a table dropped and re-created under a protected name has a
        // new oid. Until the plan is recompiled, refuse rather than read it unprotected.
        if !self.ctx.plan.tables.contains_key(&rel.oid)
            && self
                .ctx
                .plan
                .tables
                .values()
                .any(|t| t.schema == rel.schema && t.name == rel.name)
        {
            return Err(Refusal::new(
                "55000",
                format!(
                    "relation {} changed since pgveil compiled its rules",
                    rel.qualified_name()
                ),
                Some("pgveil refuses until its catalog and rules are reloaded; retry shortly".into()),
            ));
        }
        if !self.ctx.plan.tables.contains_key(&rel.oid) {
            self.check_inheritance(rel, rv.inh)?;
        }
        if let Some(tp) = self.ctx.plan.tables.get(&rel.oid) {
            // Only the top-level FROM of the statement's own SELECT may pass raw values.
            let top = self.keyed_ok && self.levels.len() == 1 && self.view_depth == 0;
            let hint = self.proxy_masking.as_ref().filter(|_| top);
            let only_selected = |column: &str| {
                hint.is_some_and(|(text, bare)| {
                    mentions(text, column) <= bare.iter().filter(|b| *b == column).count()
                })
            };
            let built = masking::table_subquery(rel, tp, rv.inh, &only_selected)?;
            self.proxied |= built.proxied;
            // An alias column list renames by position: it must stop before the first denied
            // column (absent from the subquery, so positions would shift) and before the first
            // keyed one (whose internal name must stay the only way to reach it).
            if let Some(first) = built
                .cols
                .iter()
                .position(|c| !matches!(c.state, ColState::Plain | ColState::Masked))
            {
                if alias_names.len() > first {
                    let c = &built.cols[first];
                    let o = c.origin.clone().unwrap_or_default();
                    return Err(match &c.state {
                        ColState::Keyed(_, r, _) => keyed(&o, r),
                        ColState::Denied(r) => denied(&o, r, " (reached by a column alias list)"),
                        _ => unsupported("this column alias list"),
                    });
                }
            }
            self.splice(n, built.sql, &refname, &rv.alias, None);
            self.touched_protected = true;
            let cols = Cols::Known(built.cols).renamed(&alias_names);
            let fd = functional_key(rel, &cols, None);
            self.push_entry(Entry {
                refname: Some(refname),
                relation,
                cols: cols.clone(),
                strip_schema: alias.is_none(),
                fd,
            });
            return Ok(cols);
        }

        if matches!(rel.kind, RelKind::View | RelKind::MaterializedView)
            && rel.schema != "pg_catalog"
            && rel.schema != "information_schema"
        {
            self.view(n, rel, &refname, &rv.alias)?;
        }
        let cols = Cols::Known(
            rel.columns
                .iter()
                .map(|c| ColInfo::plain(c.name.clone()))
                .collect(),
        )
        .renamed(&alias_names);
        let strip = matches!(n.node, Some(N::RangeSubselect(_))) && alias.is_none();
        self.push_entry(Entry {
            refname: Some(refname),
            relation,
            cols: cols.clone(),
            strip_schema: strip,
            fd: None,
        });
        Ok(cols)
    }

    /// A relation without a plan must not be a way to a protected one's rows: a partition or
    /// inheritance child of a protected relation holds some of its rows, and a parent read
    /// with its children (no `ONLY`) reads theirs. Both are refused (fail closed); the DBA can
    /// give the relation rules of its own.
    fn check_inheritance(&self, rel: &Relation, inh: bool) -> R<()> {
        let cat = self.ctx.catalog;
        let tables = &self.ctx.plan.tables;
        if cat.parents.is_empty() || tables.is_empty() {
            return Ok(());
        }
        let name_of = |oid: u32| {
            cat.by_oid(oid)
                .map(Relation::qualified_name)
                .unwrap_or_else(|| format!("oid {oid}"))
        };
        if let Some(p) = cat
            .ancestors(rel.oid)
            .into_iter()
            .find(|a| tables.contains_key(a))
        {
            let parent = name_of(p);
            return Err(Refusal::new(
                "42501",
                format!(
                    "permission denied for relation {}: it is a partition or inheritance child of \
                     protected relation {parent}",
                    rel.qualified_name()
                ),
                Some(format!(
                    "read the parent table {parent} instead (pgveil masks it there), or ask the DBA \
                     for rules on {}",
                    rel.qualified_name()
                )),
            ));
        }
        if inh {
            if let Some(c) = cat
                .descendants(rel.oid)
                .into_iter()
                .find(|d| tables.contains_key(d))
            {
                return Err(Refusal::new(
                    "42501",
                    format!(
                        "permission denied for relation {}: its partitions or inheritance children \
                         include protected relation {}",
                        rel.qualified_name(),
                        name_of(c)
                    ),
                    Some(format!(
                        "read ONLY {} or its other children, or ask the DBA for rules on it",
                        rel.qualified_name()
                    )),
                ));
            }
        }
        Ok(())
    }

    fn resolve_relation(&self, rv: &protobuf::RangeVar) -> R<&'c Relation> {
        let cat = self.ctx.catalog;
        let path: &[String] = if self.view_path { &[] } else { self.ctx.search_path };
        let found = if rv.schemaname.is_empty() {
            cat.resolve(path, &rv.relname)
        } else {
            cat.get(&rv.schemaname, &rv.relname)
        };
        found.ok_or_else(|| {
            let shown = if rv.schemaname.is_empty() {
                rv.relname.clone()
            } else {
                format!("{}.{}", rv.schemaname, rv.relname)
            };
            Refusal::new(
                "42P01",
                format!("relation \"{shown}\" does not exist"),
                Some("pgveil resolves names against its catalog snapshot; if the relation was just created, retry after the catalog refresh".into()),
            )
        })
    }

    /// Replace a relation reference by a placeholder that [`masking::substitute`] turns into
    /// `(subquery) AS alias` once the statement is printed, keeping the user's alias (column
    /// list included) or the relation's name. `guard_original` marks a catalog guard: its
    /// subquery is only used when a guarded column is read (else the relation stays).
    fn splice(
        &mut self,
        n: &mut Node,
        sub: String,
        refname: &str,
        user_alias: &Option<protobuf::Alias>,
        guard_original: Option<String>,
    ) -> usize {
        let colnames = user_alias
            .as_ref()
            .map(|a| a.colnames.clone())
            .unwrap_or_default();
        let index = self.splice_base + self.splices.len();
        let is_guard = guard_original.is_some();
        self.splices.push(masking::Splice {
            sql: sub,
            original: guard_original,
            used: !is_guard,
            live: true,
        });
        n.node = Some(N::RangeVar(protobuf::RangeVar {
            relname: masking::placeholder(index),
            inh: true,
            relpersistence: "p".into(),
            alias: Some(protobuf::Alias {
                aliasname: refname.to_string(),
                colnames,
            }),
            ..Default::default()
        }));
        if !is_guard {
            self.rewrote = true;
        }
        index
    }

    /// A guarded column (or the whole guarded relation) is read: its splice is needed.
    fn use_guard(&mut self, index: usize) {
        if let Some(s) = index
            .checked_sub(self.splice_base)
            .and_then(|i| self.splices.get_mut(i))
        {
            s.used = true;
        }
    }

    /// Something in the statement so far needs the rewritten text, or reads protected data.
    pub fn needs_rewrite(&self) -> bool {
        self.rewrote || self.splices.iter().any(|s| s.live && s.used)
    }

    /// A user view: analyse its definition; if it reads anything protected, inline it.
    fn view(
        &mut self,
        n: &mut Node,
        rel: &Relation,
        refname: &str,
        user_alias: &Option<protobuf::Alias>,
    ) -> R<()> {
        let name = rel.qualified_name();
        if self.view_depth >= MAX_VIEW_DEPTH {
            return Err(unsupported(&format!("view {name} (views nested too deeply)")));
        }
        let Some(def) = &rel.view_definition else {
            return Err(Refusal::new(
                "0A000",
                format!("pgveil does not know the definition of view {name}"),
                Some("the catalog snapshot lacks it; ask the DBA to check pgveil's catalog access".into()),
            ));
        };
        let parsed = pg_query::parse(def, pg_query::ParserOptions::DEFAULT).map_err(|e| {
            Refusal::new(
                "0A000",
                format!("cannot parse the definition of view {name}: {e}"),
                None,
            )
        })?;
        let mut stmts = parsed.protobuf.stmts;
        let Some(mut body) = stmts.pop().and_then(|s| s.stmt).filter(|_| stmts.is_empty()) else {
            return Err(unsupported(&format!("the definition of view {name}")));
        };
        let splices_before = self.splices.len();
        // The catalog stores definitions printed under `search_path = pg_catalog`, so every
        // other name in them is schema-qualified: resolve them with that path, never the
        // session's (which could make a name mean another table than the view's).
        let saved_path = std::mem::replace(&mut self.view_path, true);
        let saved_levels = std::mem::take(&mut self.levels);
        let saved_rewrote = std::mem::replace(&mut self.rewrote, false);
        let saved_keyed = std::mem::replace(&mut self.keyed_ok, false);
        self.view_depth += 1;
        let r = self.query_node(&mut body, false);
        self.view_depth -= 1;
        self.view_path = saved_path;
        self.levels = saved_levels;
        self.keyed_ok = saved_keyed;
        let inner_rewrote = std::mem::replace(&mut self.rewrote, saved_rewrote)
            || self.splices[splices_before..].iter().any(|s| s.used);
        if let Err(mut e) = r {
            e.message = format!("{} (in view {name})", e.message);
            return Err(e);
        }
        if !inner_rewrote {
            // The definition is dropped: its placeholders will never be printed.
            for s in &mut self.splices[splices_before..] {
                s.live = false;
            }
        }
        if inner_rewrote {
            let mut colnames: Vec<Node> = user_alias
                .as_ref()
                .map(|a| a.colnames.clone())
                .unwrap_or_default();
            for c in rel.columns.iter().skip(colnames.len()) {
                colnames.push(Node {
                    node: Some(N::String(protobuf::String { sval: c.name.clone() })),
                });
            }
            n.node = Some(N::RangeSubselect(Box::new(protobuf::RangeSubselect {
                lateral: false,
                subquery: Some(body),
                alias: Some(protobuf::Alias {
                    aliasname: refname.to_string(),
                    colnames,
                }),
            })));
            self.rewrote = true;
            self.touched_protected = true;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- expressions

    fn opt_expr(&mut self, n: &mut Option<Box<Node>>) -> R<()> {
        match n.as_deref_mut() {
            Some(n) => self.expr(n, Pos::Other),
            None => Ok(()),
        }
    }

    fn exprs(&mut self, list: &mut [Node]) -> R<()> {
        for n in list.iter_mut() {
            self.expr(n, Pos::Other)?;
        }
        Ok(())
    }

    /// Operators run functions: a qualified one must be `pg_catalog`'s, an unqualified one
    /// must carry a symbol PostgreSQL itself defines (a new symbol can only be a user
    /// operator, whose function pgveil cannot see into).
    fn check_operator(&self, name: &[Node]) -> R<()> {
        let parts = names_of(name);
        let ok = match parts.as_slice() {
            [] => true,
            [op] => BUILTIN_OPERATORS.contains(&op.as_str()),
            [schema, _] => schema == "pg_catalog",
            _ => false,
        };
        if ok {
            return Ok(());
        }
        Err(Refusal::new(
            "42501",
            format!("permission denied for operator {}", parts.join(".")),
            Some("user-defined operators run functions pgveil cannot see into".into()),
        ))
    }

    pub fn expr(&mut self, n: &mut Node, pos: Pos) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(unsupported("an expression nested this deeply"));
        }
        let r = self.expr_inner(n, pos);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, n: &mut Node, pos: Pos) -> R<()> {
        let Some(node) = &mut n.node else { return Ok(()) };
        match node {
            N::ColumnRef(cr) => self.column_ref(cr, pos),
            N::AConst(_)
            | N::ParamRef(_)
            | N::SqlvalueFunction(_)
            | N::String(_)
            | N::Integer(_)
            | N::Float(_)
            | N::Boolean(_)
            | N::BitString(_)
            | N::AStar(_) => Ok(()),
            N::AExpr(e) => {
                use protobuf::AExprKind as K;
                let keyword_named = [
                    K::AexprBetween,
                    K::AexprNotBetween,
                    K::AexprBetweenSym,
                    K::AexprNotBetweenSym,
                ]
                .iter()
                .any(|k| *k as i32 == e.kind);
                if !keyword_named {
                    self.check_operator(&e.name)?;
                }
                self.opt_expr(&mut e.lexpr)?;
                self.opt_expr(&mut e.rexpr)
            }
            N::BoolExpr(b) => self.exprs(&mut b.args),
            N::NullTest(t) => self.opt_expr(&mut t.arg),
            N::BooleanTest(t) => self.opt_expr(&mut t.arg),
            N::CaseExpr(c) => {
                self.opt_expr(&mut c.arg)?;
                self.exprs(&mut c.args)?;
                self.opt_expr(&mut c.defresult)
            }
            N::CaseWhen(w) => {
                self.opt_expr(&mut w.expr)?;
                self.opt_expr(&mut w.result)
            }
            N::CoalesceExpr(c) => self.exprs(&mut c.args),
            N::MinMaxExpr(m) => self.exprs(&mut m.args),
            N::RowExpr(r) => self.exprs(&mut r.args),
            N::AArrayExpr(a) => self.exprs(&mut a.elements),
            N::List(l) => self.exprs(&mut l.items),
            N::TypeCast(t) => {
                if let Some(tn) = &mut t.type_name {
                    self.exprs(&mut tn.typmods)?;
                }
                self.opt_expr(&mut t.arg)
            }
            N::CollateClause(c) => self.opt_expr(&mut c.arg),
            N::NamedArgExpr(a) => self.opt_expr(&mut a.arg),
            N::GroupingFunc(g) => self.exprs(&mut g.args),
            N::GroupingSet(g) => self.exprs(&mut g.content),
            N::SortBy(s) => {
                self.check_operator(&s.use_op)?;
                self.opt_expr(&mut s.node)
            }
            N::WindowDef(w) => self.window_def(w),
            N::ResTarget(r) => self.opt_expr(&mut r.val),
            N::XmlExpr(x) => {
                self.exprs(&mut x.named_args)?;
                self.exprs(&mut x.args)
            }
            N::XmlSerialize(x) => self.opt_expr(&mut x.expr),
            N::AIndirection(ind) => {
                self.opt_expr(&mut ind.arg)?;
                for i in ind.indirection.iter_mut() {
                    match &mut i.node {
                        Some(N::AIndices(ix)) => {
                            self.opt_expr(&mut ix.lidx)?;
                            self.opt_expr(&mut ix.uidx)?;
                        }
                        Some(N::String(_)) | Some(N::AStar(_)) => {}
                        Some(other) => return Err(unsupported(&node_name(other))),
                        None => {}
                    }
                }
                Ok(())
            }
            N::SubLink(sl) => {
                self.check_operator(&sl.oper_name)?;
                self.opt_expr(&mut sl.testexpr)?;
                match sl.subselect.as_deref_mut() {
                    Some(q) => self.query_node(q, false).map(|_| ()),
                    None => Ok(()),
                }
            }
            N::FuncCall(f) => self.func_call(f),
            other => Err(unsupported(&node_name(other))),
        }
    }

    fn window_def(&mut self, w: &mut protobuf::WindowDef) -> R<()> {
        self.exprs(&mut w.partition_clause)?;
        self.exprs(&mut w.order_clause)?;
        self.opt_expr(&mut w.start_offset)?;
        self.opt_expr(&mut w.end_offset)
    }

    fn func_call(&mut self, f: &mut protobuf::FuncCall) -> R<()> {
        let names = names_of(&f.funcname);
        if names.len() != f.funcname.len() {
            return Err(unsupported("a function name"));
        }
        let key = (self.view_path, names);
        let verdict = match self.fn_memo.get(&key) {
            Some(v) => v.clone(),
            None => {
                let path: &[String] = if self.view_path { &[] } else { self.ctx.search_path };
                let v = functions::check_call(self.ctx, path, &key.1);
                self.fn_memo.insert(key.clone(), v.clone());
                v
            }
        };
        let names = key.1;
        verdict?;
        if names.last().is_some_and(|n| n == "current_setting") && guard_current_setting(&mut f.args)? {
            self.rewrote = true;
        }
        self.exprs(&mut f.args)?;
        self.exprs(&mut f.agg_order)?;
        self.opt_expr(&mut f.agg_filter)?;
        if let Some(w) = f.over.as_deref_mut() {
            self.window_def(w)?;
        }
        Ok(())
    }

    /// Judge a column reference (and fix its qualifier when its relation became a subquery).
    fn column_ref(&mut self, cr: &mut protobuf::ColumnRef, pos: Pos) -> R<()> {
        let mut parts: Vec<Option<String>> = Vec::with_capacity(cr.fields.len());
        for f in &cr.fields {
            match &f.node {
                Some(N::String(s)) => parts.push(Some(s.sval.clone())),
                Some(N::AStar(_)) => parts.push(None),
                _ => return Err(unsupported("a column reference")),
            }
        }
        let Some(last) = parts.last() else {
            return Err(unsupported("an empty column reference"));
        };
        if last.is_none() {
            let quals: Vec<String> = parts[..parts.len() - 1].iter().flatten().cloned().collect();
            if quals.len() != parts.len() - 1 {
                return Err(unsupported("a misplaced *"));
            }
            let entries: Vec<Entry> = match quals.as_slice() {
                [] => {
                    self.note_ref(None, None);
                    self.levels.last().map(|l| l.entries.clone()).unwrap_or_default()
                }
                [q] => {
                    self.note_ref(Some(q), None);
                    find_entry(&self.levels, q).cloned().into_iter().collect()
                }
                [s, r] | [_, s, r] => {
                    let e = find_qualified(&self.levels, s, r).cloned();
                    if e.as_ref().is_some_and(|e| e.strip_schema) {
                        let drop = quals.len() - 1;
                        cr.fields.drain(0..drop);
                    }
                    if let Some(q) = e.as_ref().and_then(|e| e.refname.clone()) {
                        self.note_ref(Some(&q), None);
                    }
                    e.into_iter().collect()
                }
                _ => return Err(unsupported("a column reference with this many qualifiers")),
            };
            for e in &entries {
                self.whole_entry(e, " (selected by *)")?;
            }
            return Ok(());
        }
        let names: Vec<String> = parts.into_iter().flatten().collect();
        let internal = self.column_ref_names(cr, &names, pos)?;
        if let (Some(internal), Some(last)) = (internal, cr.fields.last_mut()) {
            last.node = Some(N::String(protobuf::String { sval: internal }));
        }
        Ok(())
    }

    fn column_ref_names(
        &mut self,
        cr: &mut protobuf::ColumnRef,
        names: &[String],
        pos: Pos,
    ) -> R<Option<String>> {
        match names {
            [c] => {
                let cands = resolve_column(&self.levels, c);
                if cands.is_empty() {
                    if let Some(e) = find_entry(&self.levels, c).cloned() {
                        self.whole_entry(&e, " (in a whole-row reference)")?;
                        self.note_ref(Some(c), None);
                    }
                    return Ok(None);
                }
                self.note_ref(None, Some(c));
                self.judge(&cands, pos)
            }
            [q, c] => {
                if let Some(e) = find_entry(&self.levels, q) {
                    let cands = e.cols.find(c);
                    self.note_ref(Some(q), Some(c));
                    return self.judge(&cands, pos);
                }
                // `q.c` where q is a (composite) column: c is a field of it.
                let cands = resolve_column(&self.levels, q);
                self.judge(&cands, Pos::Other).map(|_| None)
            }
            [s, r, c] | [_, s, r, c] => {
                if let Some(e) = find_qualified(&self.levels, s, r).cloned() {
                    if e.strip_schema {
                        let drop = names.len() - 2;
                        cr.fields.drain(0..drop);
                    }
                    let cands = e.cols.find(c);
                    if let Some(q) = &e.refname {
                        self.note_ref(Some(q), Some(c));
                    }
                    return self.judge(&cands, pos);
                }
                if names.len() == 3 {
                    if let Some(e) = find_entry(&self.levels, s) {
                        let cands = e.cols.find(r);
                        return self.judge(&cands, Pos::Other).map(|_| None);
                    }
                }
                Ok(None)
            }
            _ => Err(unsupported("a column reference with this many qualifiers")),
        }
    }

    /// A whole entry is read (`*`, `t.*`, whole-row reference).
    fn whole_entry(&mut self, e: &Entry, how: &str) -> R<()> {
        let first_denied = e.cols.guarded().find(|c| matches!(c.state, ColState::Denied(_)));
        if let Some(c) = first_denied.or_else(|| e.cols.guarded().next()) {
            let origin = c.origin.clone().unwrap_or(c.name.clone());
            return Err(match &c.state {
                ColState::Denied(r) => {
                    let mut d = denied(&origin, r, how);
                    d.hint = Some(format!(
                        "{}; list the columns you may read instead",
                        d.hint.unwrap_or_default()
                    ));
                    d
                }
                ColState::Keyed(_, r, _) => keyed(&origin, r),
                _ => unsupported("this reference"),
            });
        }
        for c in e.cols.all().to_vec() {
            self.note_masked(&c);
            if let ColState::Guarded(i) = c.state {
                self.use_guard(i);
            }
        }
        Ok(())
    }

    /// Judge the candidates of one reference. For an accepted keyed output, returns the
    /// internal name the reference must be rewritten to.
    fn judge(&mut self, cands: &[ColInfo], pos: Pos) -> R<Option<String>> {
        let mut keyed_out: Option<(Arc<Mask>, String)> = None;
        for c in cands {
            let origin = c.origin.clone().unwrap_or(c.name.clone());
            match &c.state {
                ColState::Denied(r) => return Err(denied(&origin, r, "")),
                ColState::Keyed(m, r, internal) => match (pos, &keyed_out) {
                    (Pos::Output(_), None) if self.keyed_ok => {
                        keyed_out = Some((m.clone(), internal.clone()))
                    }
                    (Pos::Output(_), Some((prev, name))) if Arc::ptr_eq(prev, m) && name == internal => {}
                    _ => return Err(keyed(&origin, r)),
                },
                ColState::Masked => self.note_masked(c),
                ColState::Guarded(i) => self.use_guard(*i),
                ColState::Plain => {}
            }
        }
        match (keyed_out, pos) {
            (Some((m, internal)), Pos::Output(i)) => {
                if let Some(o) = cands.iter().find_map(|c| c.origin.as_ref()) {
                    if !self.masked.contains(o) {
                        self.masked.push(o.clone());
                    }
                }
                self.proxy_masks.push((i, m));
                Ok(Some(internal))
            }
            _ => Ok(None),
        }
    }
}

fn alias_parts(a: &Option<protobuf::Alias>) -> (Option<String>, Vec<String>) {
    match a {
        Some(a) => (Some(a.aliasname.clone()), names_of(&a.colnames)),
        None => (None, Vec::new()),
    }
}

/// NATURAL joins on every common name: a denied or keyed column must not take part
/// (silently dropping it would change the join; joining on raw keyed values computes on them).
fn check_natural(left: &Cols, right: &Cols) -> R<()> {
    let offending = |side: &Cols, other: &Cols| -> Option<ColInfo> {
        side.guarded()
            .find(|c| matches!(other, Cols::Unknown) || !other.find(&c.name).is_empty())
            .cloned()
    };
    if let Some(c) = offending(left, right).or_else(|| offending(right, left)) {
        let origin = c.origin.clone().unwrap_or(c.name.clone());
        return Err(match &c.state {
            ColState::Denied(r) => denied(&origin, r, " (in a NATURAL join)"),
            ColState::Keyed(_, r, _) => keyed(&origin, r),
            _ => unsupported("this NATURAL join"),
        });
    }
    Ok(())
}

/// The setting name custom (dotted) names are turned into by [`guard_current_setting`]: no
/// such setting exists, so `current_setting` fails (or gives NULL with `missing_ok`).
pub(crate) const HIDDEN_SETTING: &str = "pgveil_custom_settings_are_hidden";

fn const_node(v: a_const::Val) -> Node {
    Node {
        node: Some(N::AConst(protobuf::AConst {
            isnull: false,
            val: Some(v),
            location: -1,
        })),
    }
}

fn string_const(s: &str) -> Node {
    const_node(a_const::Val::Sval(protobuf::String { sval: s.to_string() }))
}

/// `current_setting` reads session settings; custom (dotted) ones are where applications keep
/// secrets and tenant keys. A constant built-in name passes as written; a constant dotted name
/// is refused; any other argument (a parameter, as SQLAlchemy sends, or an expression) is
/// wrapped so that PostgreSQL turns a dotted name into [`HIDDEN_SETTING`]:
/// `pg_catalog.regexp_replace(ARG, '^.*[.].*$', 'pgveil_custom_settings_are_hidden')`. The
/// argument is evaluated once (a CASE testing it and then using it could see two different
/// values of a volatile expression). Returns whether the call was rewritten.
fn guard_current_setting(args: &mut [Node]) -> R<bool> {
    let refuse = || {
        Refusal::new(
            "42501",
            "permission denied for current_setting of a custom (dotted) setting name",
            Some("custom settings can hold application secrets; pgveil allows current_setting of built-in settings".into()),
        )
    };
    // The name is the first positional argument or the one named `setting_name`.
    let slot: Option<&mut Node> = match args.first().map(|a| &a.node) {
        Some(Some(N::NamedArgExpr(_))) => args.iter_mut().find_map(|a| match &mut a.node {
            Some(N::NamedArgExpr(na)) if na.name == "setting_name" => na.arg.as_deref_mut(),
            _ => None,
        }),
        _ => args.first_mut(),
    };
    let Some(slot) = slot else {
        return Err(refuse());
    };
    if let Some(N::AConst(c)) = &slot.node {
        if let Some(a_const::Val::Sval(s)) = &c.val {
            return if s.sval.contains('.') {
                Err(refuse())
            } else {
                Ok(false)
            };
        }
    }
    let original = std::mem::take(slot);
    *slot = Node {
        node: Some(N::FuncCall(Box::new(protobuf::FuncCall {
            funcname: vec![
                Node {
                    node: Some(N::String(protobuf::String {
                        sval: "pg_catalog".into(),
                    })),
                },
                Node {
                    node: Some(N::String(protobuf::String {
                        sval: "regexp_replace".into(),
                    })),
                },
            ],
            args: vec![original, string_const("^.*[.].*$"), string_const(HIDDEN_SETTING)],
            funcformat: protobuf::CoercionForm::CoerceExplicitCall as i32,
            location: -1,
            ..Default::default()
        }))),
    };
    Ok(true)
}

/// Types PostgreSQL cannot group by (no default equality operator): json, xml, the
/// geometric types and arrays of them, and catalog-internal types (pg_node_tree, anyarray,
/// snapshots, extended statistics). A column of such a type is never added to a GROUP BY.
fn groupable(type_oid: u32) -> bool {
    !matches!(
        type_oid,
        114 | 199
            | 142
            | 143
            | 600
            | 601
            | 602
            | 603
            | 604
            | 628
            | 629
            | 718
            | 719
            | 1017
            | 1018
            | 1019
            | 1020
            | 1027
    )
}

/// The functional-dependency facts of a relation replaced by a subquery, if it has a primary
/// key whose columns all read clear. `cols` are the entry's columns, in catalog order; `guard`
/// is the splice of a catalog guard (which only replaces the relation when a guarded column
/// is read).
fn functional_key(rel: &Relation, cols: &Cols, guard: Option<usize>) -> Option<Arc<Fd>> {
    if rel.primary_key.is_empty() {
        return None;
    }
    let shown = cols.all();
    if shown.len() != rel.columns.len() {
        return None;
    }
    let mut key = Vec::with_capacity(rel.primary_key.len());
    for k in &rel.primary_key {
        let i = rel.columns.iter().position(|c| &c.name == k)?;
        let c = &shown[i];
        if !matches!(c.state, ColState::Plain) {
            return None;
        }
        key.push(c.name.clone());
    }
    let cols = rel
        .columns
        .iter()
        .zip(shown)
        .filter(|(c, _)| groupable(c.type_oid))
        .filter_map(|(_, ci)| match &ci.state {
            ColState::Denied(_) => None,
            ColState::Keyed(_, _, internal) => Some((ci.name.clone(), internal.clone())),
            _ => Some((ci.name.clone(), ci.name.clone())),
        })
        .collect();
    Some(Arc::new(Fd { key, cols, guard }))
}

/// How often `name` occurs in `text` as a whole identifier word (ASCII case-insensitive;
/// bytes of non-ASCII characters count as identifier characters, as in PostgreSQL). `text`
/// must already be ASCII-lowercased (the hint keeps it so).
pub(crate) fn mentions(text: &str, name: &str) -> usize {
    if name.is_empty() {
        return 0;
    }
    let name = name.to_ascii_lowercase();
    let t = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    text.match_indices(name.as_str())
        .filter(|(i, _)| {
            let end = i + name.len();
            (*i == 0 || !ident(t[i - 1])) && t.get(end).is_none_or(|&b| !ident(b))
        })
        .count()
}

/// The names a statement's top-level target list selects as bare columns (`c`, `t.c`), and
/// for `COPY table (cols)` its column list; a `*` (or COPY without a list) adds nothing.
pub(crate) fn bare_output_names(stmt: &Node) -> Vec<String> {
    let targets: &[Node] = match &stmt.node {
        Some(N::SelectStmt(s)) => &s.target_list,
        Some(N::CopyStmt(c)) => match c.query.as_deref().and_then(|q| q.node.as_ref()) {
            Some(N::SelectStmt(s)) => &s.target_list,
            _ => return names_of(&c.attlist),
        },
        _ => return Vec::new(),
    };
    targets
        .iter()
        .filter_map(|t| match &t.node {
            Some(N::ResTarget(rt)) => match rt.val.as_deref().map(|v| &v.node) {
                Some(Some(N::ColumnRef(cr))) => cr.fields.last().and_then(str_of).map(str::to_string),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn column_ref_node(parts: &[&str]) -> Node {
    Node {
        node: Some(N::ColumnRef(protobuf::ColumnRef {
            fields: parts
                .iter()
                .map(|p| Node {
                    node: Some(N::String(protobuf::String { sval: p.to_string() })),
                })
                .collect(),
            location: -1,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_count_whole_identifier_words() {
        let sql = "SELECT c.phone, PHONE, \"phone\" FROM customers c WHERE phone_2 = 'x' AND telephone = 1 AND 电phone = 2"
            .to_ascii_lowercase();
        let sql = sql.as_str();
        assert_eq!(mentions(sql, "phone"), 3);
        assert_eq!(mentions(sql, "customers"), 1);
        assert_eq!(mentions(sql, "name"), 0);
        assert_eq!(mentions("phone", "phone"), 1);
        assert_eq!(mentions("ph", "phone"), 0);
        assert_eq!(mentions("x", ""), 0);
    }
}
