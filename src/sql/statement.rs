//! Statement classes for restricted roles: which top-level statements pass, which are
//! rewritten, which are refused, and why.
//!
//! Restricted roles are read-only: SELECT/VALUES/read-only WITH, SHOW, SET of listed safe
//! settings, transaction control, cursors, PREPARE/EXECUTE/DEALLOCATE, `COPY ... TO STDOUT`,
//! UNLISTEN and EXPLAIN (without ANALYZE) of statements that read no protected relation.
//! Everything else is refused.
//!
//! Invariant: a statement kind not matched here is refused (fail closed).
use pg_query::protobuf::{self, a_const, node::Node as N, Node};

use super::walk::{node_name, unsupported, Analyzer};
use super::{Refusal, StatementKind};

type R<T> = Result<T, Refusal>;

pub(crate) fn write_refusal(what: &str) -> Refusal {
    Refusal::new(
        "42501",
        format!("permission denied: {what} is not allowed, pgveil gives restricted roles read-only access"),
        Some("restricted roles may run SELECT, SHOW, safe SET, transaction control, cursors, PREPARE/EXECUTE and COPY ... TO STDOUT".into()),
    )
}

/// The first words of a statement's text, upper-cased, for messages (`CREATE TABLE`).
fn command_words(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .take(2)
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
                .to_uppercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        [first, second]
            if matches!(
                first.as_str(),
                "CREATE"
                    | "ALTER"
                    | "DROP"
                    | "GRANT"
                    | "REVOKE"
                    | "COMMENT"
                    | "REFRESH"
                    | "SECURITY"
                    | "IMPORT"
                    | "REASSIGN"
            ) =>
        {
            format!("{first} {second}")
        }
        [first, ..] => first.clone(),
        [] => "this statement".into(),
    }
}

/// Analyse one top-level statement, rewriting it in place when needed.
pub(crate) fn analyze_stmt(an: &mut Analyzer, n: &mut Node, text: &str) -> R<StatementKind> {
    let Some(node) = &mut n.node else {
        return Err(unsupported("an empty statement"));
    };
    match node {
        N::SelectStmt(s) => {
            an.keyed_ok = true;
            an.select(s, true)?;
            Ok(StatementKind::Select)
        }
        N::CopyStmt(c) => copy(an, c).map(|_| StatementKind::Copy),
        N::ExplainStmt(e) => explain(an, e).map(|_| StatementKind::Explain),
        N::VariableShowStmt(s) => show(&s.name).map(|_| StatementKind::Show),
        N::VariableSetStmt(s) => {
            super::settings::check_set(&an.ctx().plan.limits, s).map(|_| StatementKind::Set)
        }
        N::TransactionStmt(t) => transaction(t).map(|_| StatementKind::Transaction),
        N::DeclareCursorStmt(d) => match d.query.as_deref_mut() {
            Some(q) => an.query_node(q, false).map(|_| StatementKind::Cursor),
            None => Err(unsupported("DECLARE without a query")),
        },
        N::FetchStmt(_) | N::ClosePortalStmt(_) => Ok(StatementKind::Cursor),
        N::PrepareStmt(p) => {
            let Some(q) = p.query.as_deref_mut() else {
                return Err(unsupported("PREPARE without a statement"));
            };
            match &mut q.node {
                Some(N::SelectStmt(s)) => an.select(s, false).map(|_| StatementKind::Prepare),
                Some(other) => Err(write_or_unsupported(other)),
                None => Err(unsupported("PREPARE without a statement")),
            }
        }
        N::ExecuteStmt(e) => {
            // Parameters are expressions and may hold subqueries.
            for p in e.params.iter_mut() {
                an.expr(p, super::walk::Pos::Other)?;
            }
            Ok(StatementKind::Execute)
        }
        N::DeallocateStmt(_) => Ok(StatementKind::Deallocate),
        N::UnlistenStmt(_) => Ok(StatementKind::Other),
        N::ListenStmt(_) => Err(Refusal::new(
            "42501",
            "permission denied: LISTEN is not allowed for restricted roles",
            Some("notification payloads are application data pgveil cannot mask".into()),
        )),
        N::DiscardStmt(_) => Err(Refusal::new(
            "42501",
            "permission denied: DISCARD is not allowed for restricted roles",
            Some("pgveil tracks session state (prepared statements, settings) and needs it kept".into()),
        )),
        other => Err(write_or_generic(other, text)),
    }
}

/// The prepared statement or cursor a statement names, if any.
pub(crate) fn target_name(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        N::PrepareStmt(p) => Some(p.name.clone()),
        N::ExecuteStmt(e) => Some(e.name.clone()),
        N::DeallocateStmt(d) if !d.isall => Some(d.name.clone()),
        N::DeclareCursorStmt(d) => Some(d.portalname.clone()),
        N::FetchStmt(f) => Some(f.portalname.clone()),
        N::ClosePortalStmt(c) if !c.portalname.is_empty() => Some(c.portalname.clone()),
        _ => None,
    }
}

fn write_or_unsupported(n: &N) -> Refusal {
    match n {
        N::InsertStmt(_) => write_refusal("INSERT"),
        N::UpdateStmt(_) => write_refusal("UPDATE"),
        N::DeleteStmt(_) => write_refusal("DELETE"),
        N::MergeStmt(_) => write_refusal("MERGE"),
        other => unsupported(&node_name(other)),
    }
}

fn write_or_generic(n: &N, text: &str) -> Refusal {
    match n {
        N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_) => write_or_unsupported(n),
        N::CreateTableAsStmt(_) => write_refusal("CREATE ... AS"),
        N::DoStmt(_) => write_refusal("DO"),
        N::CallStmt(_) => write_refusal("CALL"),
        _ => write_refusal(&command_words(text)),
    }
}

fn copy(an: &mut Analyzer, c: &mut protobuf::CopyStmt) -> R<()> {
    if c.is_from {
        return Err(write_refusal("COPY FROM"));
    }
    if c.is_program || !c.filename.is_empty() {
        return Err(Refusal::new(
            "42501",
            "permission denied: COPY TO a server file or program is not allowed for restricted roles",
            Some("use COPY ... TO STDOUT (psql: \\copy)".into()),
        ));
    }
    // In COPY's default text format pgveil can mask the rows it relays (one row per
    // CopyData, fields split at tabs: `session::copy_rows`), so the query's output columns
    // may be keyed or proxy-masked as in a plain SELECT. Any option (FORMAT csv or binary,
    // DELIMITER, NULL...) keeps every mask in SQL.
    let top = c.options.is_empty();
    an.keyed_ok = top;
    if let Some(q) = c.query.as_deref_mut() {
        return an.query_node(q, top).map(|_| ());
    }
    let Some(rel) = c.relation.take() else {
        return Err(unsupported("COPY without a relation or query"));
    };
    // Analyse `SELECT cols FROM rel` and keep the rewrite only when something changed, so
    // COPY of unprotected tables stays as the client wrote it.
    let cols: Vec<String> = c
        .attlist
        .iter()
        .filter_map(|n| match &n.node {
            Some(N::String(s)) => Some(super::masking::quote_ident(&s.sval)),
            _ => None,
        })
        .collect();
    let target = if cols.is_empty() {
        "*".to_string()
    } else {
        cols.join(", ")
    };
    let mut from = String::new();
    if !rel.schemaname.is_empty() {
        from.push_str(&super::masking::quote_ident(&rel.schemaname));
        from.push('.');
    }
    from.push_str(&super::masking::quote_ident(&rel.relname));
    let only = if rel.inh { "" } else { "ONLY " };
    let sql = format!("SELECT {target} FROM {only}{from}");
    let parsed = pg_query::parse(&sql, pg_query::ParserOptions::DEFAULT)
        .map_err(|e| unsupported(&format!("COPY of this relation ({e})")))?;
    let mut stmts = parsed.protobuf.stmts;
    let Some(mut q) = stmts.pop().and_then(|s| s.stmt) else {
        return Err(unsupported("COPY of this relation"));
    };
    let before = an.rewrote;
    let splices_before = an.splices.len();
    an.rewrote = false;
    let r = an.query_node(&mut q, top);
    let changed = an.rewrote || an.splices[splices_before..].iter().any(|s| s.used);
    an.rewrote = before || changed;
    r?;
    if changed {
        c.query = Some(q);
        c.attlist.clear();
    } else {
        // The generated query is dropped: its placeholders (unused guards) are never printed.
        for s in &mut an.splices[splices_before..] {
            s.live = false;
        }
        c.relation = Some(rel);
    }
    Ok(())
}

fn option_true(arg: &Option<Box<Node>>) -> bool {
    match arg.as_deref().and_then(|n| n.node.as_ref()) {
        None => true,
        Some(N::AConst(c)) => match &c.val {
            Some(a_const::Val::Boolval(b)) => b.boolval,
            Some(a_const::Val::Ival(i)) => i.ival != 0,
            Some(a_const::Val::Sval(s)) => {
                !matches!(s.sval.to_lowercase().as_str(), "false" | "off" | "0" | "no")
            }
            _ => true,
        },
        Some(N::String(s)) => !matches!(s.sval.to_lowercase().as_str(), "false" | "off" | "0" | "no"),
        Some(N::Boolean(b)) => b.boolval,
        Some(_) => true,
    }
}

fn explain(an: &mut Analyzer, e: &mut protobuf::ExplainStmt) -> R<()> {
    for o in &e.options {
        if let Some(N::DefElem(d)) = &o.node {
            if d.defname == "analyze" && option_true(&d.arg) {
                return Err(Refusal::new(
                    "42501",
                    "permission denied: EXPLAIN ANALYZE is not allowed for restricted roles",
                    Some("EXPLAIN ANALYZE runs the statement and reports row counts and timings of hidden data; use EXPLAIN".into()),
                ));
            }
        }
    }
    let Some(q) = e.query.as_deref_mut() else {
        return Err(unsupported("EXPLAIN without a statement"));
    };
    match &mut q.node {
        Some(N::SelectStmt(s)) => {
            an.select(s, false)?;
        }
        Some(N::DeclareCursorStmt(d)) => match d.query.as_deref_mut() {
            Some(q) => {
                an.query_node(q, false)?;
            }
            None => return Err(unsupported("DECLARE without a query")),
        },
        Some(N::ExecuteStmt(_)) => {
            return Err(Refusal::new(
                "0A000",
                "EXPLAIN EXECUTE is not supported for restricted roles",
                Some("EXPLAIN the statement itself".into()),
            ))
        }
        Some(other) => return Err(write_or_unsupported(other)),
        None => return Err(unsupported("EXPLAIN without a statement")),
    }
    if an.touched_protected || an.needs_rewrite() {
        return Err(Refusal::new(
            "0A000",
            format!(
                "EXPLAIN of a statement reading protected relations ({}) is not supported",
                an.tables.join(", ")
            ),
            Some("plans and row estimates come from statistics of unmasked data".into()),
        ));
    }
    Ok(())
}

fn show(name: &str) -> R<()> {
    let lower = name.to_lowercase();
    if lower == "all" || lower.contains('.') {
        let name = if lower == "all" { "ALL" } else { name };
        return Err(Refusal::new(
            "42501",
            format!("permission denied: SHOW {name} is not allowed for restricted roles"),
            Some(
                "custom (dotted) settings can hold application secrets; SHOW a built-in setting by name"
                    .into(),
            ),
        ));
    }
    Ok(())
}

fn transaction(t: &protobuf::TransactionStmt) -> R<()> {
    use protobuf::TransactionStmtKind as K;
    let k = t.kind;
    if k == K::TransStmtPrepare as i32
        || k == K::TransStmtCommitPrepared as i32
        || k == K::TransStmtRollbackPrepared as i32
    {
        return Err(write_refusal(
            "two-phase commit (PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED)",
        ));
    }
    Ok(())
}
