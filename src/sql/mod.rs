//! Statement analysis for restricted roles, with PostgreSQL's own parser (pg_query).
//!
//! [`analyze`] parses a Simple Query string or a Parse text with libpg_query (the server's
//! own grammar, so `U&"..."` identifiers, case folding and string syntax read exactly as
//! PostgreSQL reads them), resolves every relation as the session would, and rewrites each
//! reference to a protected relation into a masking subquery, so the database computes on
//! masked values everywhere (WHERE, joins, ORDER BY, aggregates, whole-row references...).
//!
//! Layout: [`statement`] decides which statement classes pass; [`walk`] is the scoped walk
//! over queries; [`scope`] resolves names; [`masking`] builds masking subqueries;
//! [`functions`] and [`settings`] judge calls and `SET`; [`cache`] memoises results.
//!
//! Decisions (each refusal names the construct and a way forward):
//! - Views in user schemas are analysed; one that reads protected data is inlined as a
//!   subquery of its (rewritten) definition, so it cannot unmask. Catalog views are trusted,
//!   except the guarded ones (`policy::guards`: statistics, activity, credentials, pg_class
//!   sizes; per-table activity views read their counters as NULL).
//! - EXPLAIN (without ANALYZE) passes only for statements reading no protected or guarded
//!   relation: plans and row estimates come from statistics of unmasked data.
//! - Keyed masks (token, noise) keep their key out of the database: the raw value leaves
//!   the masking subquery under a random internal name, only for a bare output column of a
//!   top-level SELECT, and the session masks it by position. Any other use is refused.
//! - `current_setting` and `SHOW` of built-in settings pass; custom (dotted) ones, `SHOW ALL`
//!   and `LISTEN` do not (application secrets and payloads live there). A `current_setting`
//!   whose name is not a constant (SQLAlchemy binds it) is rewritten so that PostgreSQL maps
//!   any dotted name to a setting that does not exist (`walk::guard_current_setting`).
//! - GROUP BY the whole primary key of a protected table lets PostgreSQL read its other
//!   columns ungrouped; the masking subquery has no key, so the columns the query level reads
//!   are added to the GROUP BY (functionally dependent: same groups). Only for a clear key.
//! - A relation without a plan that is a partition or inheritance child of a protected one
//!   (or a parent read with a protected child, without `ONLY`) is refused (42501).
//! - Connection-pool resets pass: `RESET ALL` (pgveil's settings are fixed at session start),
//!   `CLOSE ALL`, `UNLISTEN *`, `pg_advisory_unlock_all()`. `DISCARD` stays refused.
//! - The analyser assumes `standard_conforming_strings = on` upstream (refused in `SET`);
//!   the session must keep it so for restricted roles.
//!
//! Invariants:
//! - Fail closed: anything pgveil cannot parse, resolve or classify is refused.
//! - `Analysis.sql` is the original text byte for byte when nothing was rewritten.
//! - A keyed mask's raw value reaches the client only at a position listed in
//!   `StatementInfo::proxy_masks`, where the session masks it.
//! - No panics: a panic inside the parser binding is caught and becomes a refusal.
use std::fmt;
use std::sync::Arc;

mod cache;
mod functions;
pub mod masking;
mod scope;
mod settings;
mod statement;
mod walk;

pub use cache::AnalysisCache;

use crate::catalog::Catalog;
use crate::mask::Mask;
use crate::policy::RolePlan;

/// A statement pgveil will not forward, with what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// SQLSTATE, e.g. `42501` (insufficient privilege), `0A000` (feature not supported),
    /// `42601` (syntax error).
    pub sqlstate: &'static str,
    pub message: String,
    /// Names the rule (file:line) or the construct, and what to do instead.
    pub hint: Option<String>,
}

impl Refusal {
    pub fn new(sqlstate: &'static str, message: impl Into<String>, hint: Option<String>) -> Refusal {
        Refusal {
            sqlstate,
            message: message.into(),
            hint,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.sqlstate, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

/// What the analyser needs besides the text.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub plan: &'a RolePlan,
    /// The session's effective search_path, `$user` already substituted.
    pub search_path: &'a [String],
}

/// The broad kind of a statement, for the session and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Select,
    Copy,
    Explain,
    Show,
    Set,
    Transaction,
    Cursor,
    Prepare,
    Execute,
    Deallocate,
    Other,
}

/// One analysed statement.
#[derive(Debug, Clone)]
pub struct StatementInfo {
    pub kind: StatementKind,
    /// Masks pgveil itself applies to result columns (by output position), for keyed masks
    /// whose key must never reach the database.
    pub proxy_masks: Vec<(usize, Arc<Mask>)>,
    /// `schema.table` of every relation read.
    pub tables: Vec<String>,
    /// `schema.table.column` of every masked column referenced.
    pub masked_columns: Vec<String>,
    /// The prepared statement (PREPARE/EXECUTE/DEALLOCATE) or cursor (DECLARE/FETCH/MOVE/
    /// CLOSE) the statement names. SQL `EXECUTE` and `FETCH` can reach statements and portals
    /// made with the extended protocol, whose keyed outputs need their `proxy_masks`: the
    /// session looks them up by this name (or refuses).
    pub target: Option<String>,
}

/// The result of analysing one Query string or one Parse.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The text to forward upstream: the original when nothing needed rewriting.
    pub sql: String,
    pub statements: Vec<StatementInfo>,
}

/// Analyse (and rewrite) one Simple Query string (may hold several statements) or one Parse
/// text. `Err` is the refusal to answer as an ErrorResponse; nothing of the text may be
/// forwarded then.
///
/// Runs with at least [`ANALYSIS_RED_ZONE`] bytes of stack: decoding libpg_query's protobuf
/// tree of a deeply nested statement takes more than a tokio worker's 2 MiB, and a stack
/// overflow would abort the whole proxy. When less remains, `stacker` switches to a fresh
/// [`ANALYSIS_STACK`]-byte segment on the same thread (a new thread would cost libpg_query's
/// per-thread set-up, some 300 µs).
pub fn analyze(sql: &str, ctx: &Context) -> Result<Analysis, Refusal> {
    let run = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| analyze_inner(sql, ctx)));
    match stacker::maybe_grow(ANALYSIS_RED_ZONE, ANALYSIS_STACK, run) {
        Ok(result) => result,
        Err(_) => Err(Refusal::new(
            "XX000",
            "pgveil's statement analyser failed on this statement",
            Some("the statement was not forwarded; please report it".into()),
        )),
    }
}

/// Stack one analysis may need: the protobuf decoder's 100-level limit bounds the depth,
/// which takes about 2 MiB unoptimised.
pub const ANALYSIS_RED_ZONE: usize = 4 << 20;
/// Size of the stack segment switched to when less than the red zone remains.
pub const ANALYSIS_STACK: usize = 16 << 20;

fn analyze_inner(sql: &str, ctx: &Context) -> Result<Analysis, Refusal> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| match e {
        pg_query::Error::Parse(m) if m.contains("stack depth limit exceeded") => Refusal::new(
            "54001",
            "statement too complex: nested too deeply for PostgreSQL's parser",
            Some("split the expression (e.g. use a CTE) or flatten long chains of operators".into()),
        ),
        pg_query::Error::Parse(m) => Refusal::new("42601", m, None),
        // The parse tree crosses from C as protobuf, whose decoder stops at 100 nested
        // messages to bound stack use (about 45 levels of nested expressions).
        pg_query::Error::Decode(_) => Refusal::new(
            "54001",
            "statement too complex: expressions are nested too deeply for pgveil's analyser",
            Some("split the expression (e.g. use a CTE) or flatten long chains of operators".into()),
        ),
        other => Refusal::new("42601", other.to_string(), None),
    })?;
    let mut tree = parsed.protobuf;
    let mut statements = Vec::with_capacity(tree.stmts.len());
    let mut rewrote = false;
    let mut splices = Vec::new();
    for (index, raw) in tree.stmts.iter_mut().enumerate() {
        let text = statement_text(sql, raw.stmt_location, raw.stmt_len);
        let Some(stmt) = raw.stmt.as_deref_mut() else {
            return Err(walk::unsupported("an empty statement"));
        };
        let (mut an, kind) = analyze_statement(sql, index, stmt, text, ctx, splices.len())?;
        rewrote |= an.needs_rewrite();
        splices.append(&mut an.splices);
        let target = statement::target_name(stmt);
        statements.push(StatementInfo {
            target,
            kind,
            proxy_masks: an.proxy_masks,
            tables: an.tables,
            masked_columns: an.masked,
        });
    }
    let sql = if rewrote {
        let printed = pg_query::deparse(&tree, Default::default()).map_err(|e| {
            Refusal::new(
                "XX000",
                format!("pgveil could not write the rewritten statement: {e}"),
                Some("the statement was not forwarded; please report it".into()),
            )
        })?;
        masking::substitute(&printed, &splices)?
    } else {
        sql.to_string()
    };
    Ok(Analysis { sql, statements })
}

/// Analyse one statement of `sql` (the `index`-th), first letting pgveil mask plain output
/// columns in the result ([`walk::Analyzer::proxy_masking`]: PostgreSQL then reads the raw
/// column instead of computing its mask for every row). If that attempt exposed a masked
/// column raw and was refused (the column is also filtered, sorted, grouped, joined or
/// computed on), the statement is parsed again and analysed with SQL masks only, and that
/// answer stands: the first attempt never decides a refusal.
fn analyze_statement<'c, 'a>(
    sql: &str,
    index: usize,
    stmt: &mut pg_query::protobuf::Node,
    text: &str,
    ctx: &'c Context<'a>,
    splice_base: usize,
) -> Result<(walk::Analyzer<'c, 'a>, StatementKind), Refusal> {
    let mut first = walk::Analyzer::new(ctx);
    first.splice_base = splice_base;
    first.proxy_masking = Some((text.to_ascii_lowercase(), walk::bare_output_names(stmt)));
    let refusal = match statement::analyze_stmt(&mut first, stmt, text) {
        Ok(kind) => return Ok((first, kind)),
        Err(r) if !first.proxied => return Err(r),
        Err(r) => r,
    };
    // The walk rewrote parts of `stmt` in place: start again from a fresh parse.
    let fresh = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT)
        .ok()
        .and_then(|p| p.protobuf.stmts.into_iter().nth(index))
        .and_then(|raw| raw.stmt);
    let Some(fresh) = fresh else {
        return Err(refusal);
    };
    *stmt = *fresh;
    let mut an = walk::Analyzer::new(ctx);
    an.splice_base = splice_base;
    let kind = statement::analyze_stmt(&mut an, stmt, text)?;
    Ok((an, kind))
}

/// The slice of `sql` one statement spans (`len == 0`: to the end).
fn statement_text(sql: &str, location: i32, len: i32) -> &str {
    let start = usize::try_from(location).unwrap_or(0).min(sql.len());
    let end = if len <= 0 {
        sql.len()
    } else {
        start
            .saturating_add(usize::try_from(len).unwrap_or(0))
            .min(sql.len())
    };
    sql.get(start..end).unwrap_or(sql)
}
