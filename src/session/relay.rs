//! The relay between an authenticated client and its upstream connection.
//!
//! Two pumps run side by side in the session's task:
//! - the front pump reads client messages and forwards them upstream;
//! - the back pump reads upstream messages and forwards them to the client.
//!
//! Unrestricted roles: frames pass as they are (the back pump copies them, only counting
//! rows for the role's `max_rows`).
//!
//! Restricted roles: every Query and Parse is analysed before it leaves. A statement the
//! analyser refuses is replaced upstream by one that fails to parse, so that the refusal
//! arrives exactly where PostgreSQL's own error would: it aborts a transaction block like
//! any error, and the extended protocol's skip-until-Sync rule holds unchanged. The back
//! pump swaps that error for pgveil's refusal. A queue of [`Expect`]s, pushed by the front
//! pump in the order messages go upstream, tells the back pump what each reply answers.
//!
//! Running during a deal (issue 5): at every Query or Parse (and Execute, for restricted
//! roles), the login is
//! looked up in the policy in force; a revoked or expired login ends the session with a
//! FATAL 28000. Restricted roles' statements are audited before they leave (the front pump
//! awaits the audit writer's acknowledgement for each batch) and their results are counted
//! against the role's `max_rows` (exceeding it ends the statement with 54000 and cancels it
//! upstream). Unrestricted roles' Query/Parse are audited without waiting, and DDL among
//! them triggers a debounced policy reload. A prepared statement judged under older rules
//! is judged again at its next Bind (see [`Judged`]).
//!
//! Invariants (restricted roles):
//! - no Query or Parse text reaches the upstream without having been analysed;
//! - a RowDescription field that points straight at a masked or denied column ends the
//!   session, unless pgveil itself masks that output position (keyed masks);
//! - both pumps move whole messages and write each batch before reading more, so a slow
//!   reader slows its writer (back-pressure) and memory stays bounded.
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::{SessionError, Shared};
use crate::audit::{SessionMeta, Verdict, UNAVAILABLE_MESSAGE, UNAVAILABLE_SQLSTATE};
use crate::mask::{Format, Mask, Masked};
use crate::metrics::Decision;
use crate::net::Stream;
use crate::policy::{ColumnAction, RolePlan};
use crate::sql::{Analysis, Context, Refusal, StatementKind};
use crate::upstream::Upstream;
use crate::wire::backend::{self, Severity};
use crate::wire::{copy, frontend};
use crate::wire::{BodyWriter, Frame, FrameReader, WireError};

type ClientReader = FrameReader<ReadHalf<Stream>>;
type ClientWriter = WriteHalf<Stream>;

/// Who is on the session, for decisions and logs.
pub(super) struct SessionInfo {
    pub user: String,
    pub plan: Arc<RolePlan>,
    pub search_path: Vec<String>,
    pub peer: SocketAddr,
    /// The session as the audit trail names it (id, user, role, agreement, client).
    pub meta: SessionMeta,
}

/// A statement text that PostgreSQL rejects with a syntax error: stands in for a refused
/// statement so the refusal takes the place of the server's error.
const REFUSED_PLACEHOLDER: &str = "pgveil_refused";

/// What a client that hit its role's `max_rows` is told to do.
const ROW_LIMIT_HINT: &str =
    "fetch fewer rows (add WHERE or LIMIT); the limit is set by the data owner's rules";

/// Reads `current_schemas(false)` on a fresh upstream connection: the search path the
/// session's statements will resolve names with.
pub(super) async fn fetch_search_path(up: &mut Upstream) -> Result<Vec<String>, String> {
    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, "SELECT pg_catalog.current_schemas(false)::text");
    up.writer.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut value = None;
    loop {
        let f = up
            .reader
            .next()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("upstream closed")?;
        match f.tag {
            backend::DATA_ROW => {
                let mut ranges = Vec::new();
                backend::data_row_ranges(f.body(), &mut ranges).map_err(|e| e.to_string())?;
                if let Some(Some((a, b))) = ranges.first() {
                    value = Some(String::from_utf8_lossy(&f.body()[*a..*b]).into_owned());
                }
            }
            backend::ERROR_RESPONSE => {
                let e = backend::decode_error(&f).map_err(|e| e.to_string())?;
                return Err(e.message().to_string());
            }
            backend::READY_FOR_QUERY => break,
            _ => {}
        }
    }
    Ok(parse_text_array(&value.ok_or("no search path returned")?))
}

/// Parses a one-dimensional PostgreSQL text array literal (`{public,"my schema"}`).
fn parse_text_array(s: &str) -> Vec<String> {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() || !out.is_empty() {
        out.push(cur);
    }
    out
}

/// Unrestricted roles: every message passes unchanged in both directions. Query and Parse
/// are only looked at for the login check, the audit record and the DDL heuristic.
pub(super) async fn unrestricted(
    mut reader: ClientReader,
    mut w: ClientWriter,
    up: Upstream,
    shared: &Arc<Shared>,
    info: &SessionInfo,
) -> Result<(), SessionError> {
    let Upstream {
        reader: mut up_reader,
        writer: mut up_w,
        backend_key,
        ..
    } = up;
    // The role's max_rows as of the latest statement (0: none), read by the back pump.
    let max_rows = std::sync::atomic::AtomicU64::new(info.plan.limits.max_rows.unwrap_or(0));
    let max_rows = &max_rows;
    let front = async {
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut records = Vec::new();
        let mut stmt = 0u64;
        loop {
            let Some(f) = reader.next().await.map_err(SessionError::Client)? else {
                return Ok(());
            };
            let mut next = Some(f);
            let mut terminate = false;
            while let Some(f) = next.take() {
                terminate = f.tag == frontend::TERMINATE;
                if f.tag == frontend::QUERY || f.tag == frontend::PARSE {
                    max_rows.store(check_login(shared, info)?.unwrap_or(0), Relaxed);
                    let sql = if f.tag == frontend::QUERY {
                        frontend::decode_query(&f).map_err(SessionError::Client)?
                    } else {
                        frontend::decode_parse(&f).map_err(SessionError::Client)?.sql
                    };
                    shared.metrics.statement(Decision::Unrestricted);
                    if crate::reload::looks_like_ddl(sql) {
                        crate::reload::request(shared);
                    }
                    if shared.audit.enabled() {
                        stmt += 1;
                        records.push(shared.audit.statement_record(
                            &info.meta,
                            stmt,
                            sql,
                            Verdict::Unrestricted,
                            &[],
                            &[],
                        ));
                    }
                }
                out.extend_from_slice(&f.bytes);
                if terminate {
                    break;
                }
                next = reader.try_next().map_err(SessionError::Client)?;
            }
            // The seller's own staff keep working when the trail is down; the writer logs
            // and counts every failure.
            shared.audit.send(std::mem::take(&mut records));
            up_w.write_all(&out)
                .await
                .map_err(|e| SessionError::Upstream(e.into()))?;
            out.clear();
            if terminate {
                return Ok(());
            }
        }
    };
    let back = async {
        let mut out = BytesMut::with_capacity(64 * 1024);
        // Row limit state: rows of the current result, whether replies are being dropped
        // until ReadyForQuery, and the cancel request to wait for before that.
        let mut current = 0u64;
        let mut swallow = false;
        let mut cancel: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let Some(f) = up_reader.next().await.map_err(SessionError::Upstream)? else {
                return Ok(false);
            };
            let mut rows = 0u64;
            let mut next = Some(f);
            while let Some(f) = next.take() {
                match f.tag {
                    backend::DATA_ROW | backend::COPY_DATA if !swallow && copy::is_row(&f) => {
                        let limit = max_rows.load(Relaxed);
                        if limit > 0 && current >= limit {
                            let msg = format!(
                                "row limit of {limit} rows per statement exceeded for role {}",
                                info.plan.role
                            );
                            backend::encode_error(
                                &mut out,
                                Severity::Error,
                                "54000",
                                &msg,
                                Some(ROW_LIMIT_HINT),
                            );
                            swallow = true;
                            cancel = Some(cancel_upstream(shared, backend_key));
                            shared.metrics.row_limit_hits.fetch_add(1, Relaxed);
                            shared.metrics.refusal_code("54000");
                        } else {
                            current += 1;
                            rows += 1;
                            out.extend_from_slice(&f.bytes);
                        }
                    }
                    backend::READY_FOR_QUERY => {
                        if let Some(h) = cancel.take() {
                            let _ = h.await;
                        }
                        swallow = false;
                        current = 0;
                        out.extend_from_slice(&f.bytes);
                    }
                    _ if swallow => {}
                    tag => {
                        if matches!(
                            tag,
                            backend::COMMAND_COMPLETE
                                | backend::EMPTY_QUERY
                                | backend::PORTAL_SUSPENDED
                                | backend::ERROR_RESPONSE
                        ) {
                            current = 0;
                        }
                        out.extend_from_slice(&f.bytes);
                    }
                }
                if out.len() >= 64 * 1024 {
                    break;
                }
                next = up_reader.try_next().map_err(SessionError::Upstream)?;
            }
            w.write_all(&out)
                .await
                .map_err(|e| SessionError::Client(e.into()))?;
            shared.metrics.rows_out.fetch_add(rows, Relaxed);
            shared.metrics.bytes_out.fetch_add(out.len() as u64, Relaxed);
            out.clear();
        }
    };
    let res = tokio::select! {
        r = front => r.map(|_| true),
        r = back => r,
    };
    finish(&mut w, res, shared).await
}

/// Looks the session's login up in the policy in force: a login revoked, moved to another
/// role or past its validity window ends the session. Returns the role's current `max_rows`.
fn check_login(shared: &Shared, info: &SessionInfo) -> Result<Option<u64>, SessionError> {
    let policy = shared.policy.load();
    let message = match policy.rules.logins.get(&info.user) {
        Some(l) if l.role == info.plan.role => match l.check_window(chrono::Utc::now()) {
            Ok(()) => {
                let plan = policy.plans.get(&info.plan.role).unwrap_or(&info.plan);
                return Ok(plan.limits.max_rows);
            }
            Err(e) => format!("{e}; the session is closed"),
        },
        Some(_) => format!(
            "login {} now belongs to another role; the session is closed, reconnect",
            info.user
        ),
        None => format!("login {} has been revoked; the session is closed", info.user),
    };
    shared.metrics.sessions_revoked.fetch_add(1, Relaxed);
    tracing::warn!(peer = %info.peer, session = info.meta.session, user = %info.user, reason = %message, "session ended by the policy");
    Err(SessionError::Ended {
        sqlstate: "28000",
        message,
    })
}

/// After the pumps: tells the client when the upstream vanished.
async fn finish(
    w: &mut ClientWriter,
    res: Result<bool, SessionError>,
    shared: &Shared,
) -> Result<(), SessionError> {
    if matches!(res, Ok(false) | Err(SessionError::Upstream(_))) {
        shared.metrics.upstream_errors.fetch_add(1, Relaxed);
    }
    match res {
        Ok(true) => Ok(()),
        Err(SessionError::Ended { sqlstate, message }) => {
            let mut out = BytesMut::new();
            backend::encode_error(&mut out, Severity::Fatal, sqlstate, &message, None);
            let _ = w.write_all(&out).await;
            let _ = w.shutdown().await;
            Err(SessionError::Ended { sqlstate, message })
        }
        Ok(false) => {
            let mut out = BytesMut::new();
            backend::encode_error(
                &mut out,
                Severity::Fatal,
                "08006",
                "the upstream database closed the connection",
                None,
            );
            let _ = w.write_all(&out).await;
            let _ = w.shutdown().await;
            Ok(())
        }
        Err(e @ (SessionError::Upstream(_) | SessionError::Desync(_) | SessionError::Leak(_))) => {
            let mut out = BytesMut::new();
            let (code, msg) = match &e {
                SessionError::Leak(_) => (
                    "42501",
                    "pgveil stopped a result that would reveal a protected column",
                ),
                SessionError::Desync(_) => {
                    ("08P01", "pgveil lost track of the protocol and ended the session")
                }
                _ => ("08006", "the connection to the upstream database failed"),
            };
            backend::encode_error(&mut out, Severity::Fatal, code, msg, None);
            let _ = w.write_all(&out).await;
            let _ = w.shutdown().await;
            Err(e)
        }
        Err(e) => {
            if let SessionError::Client(
                WireError::Malformed { .. } | WireError::TooLarge { .. } | WireError::BadLength { .. },
            ) = &e
            {
                let mut out = BytesMut::new();
                backend::encode_error(
                    &mut out,
                    Severity::Fatal,
                    "08P01",
                    &format!("invalid message: {e}"),
                    None,
                );
                let _ = w.write_all(&out).await;
                let _ = w.shutdown().await;
            }
            Err(e)
        }
    }
}

/// One execution, tracked for the audit trail, the metrics and the role's row limit.
#[derive(Debug)]
struct Exec {
    /// The audited statement it executes (0: refused, nothing to record at its end).
    stmt: u64,
    start: Instant,
    rows: u64,
    bytes: u64,
    /// The role's `max_rows` when the statement left.
    max_rows: Option<u64>,
    /// SQLSTATE of the error that ended it.
    error: Option<String>,
}

impl Exec {
    fn new(stmt: u64, max_rows: Option<u64>) -> Exec {
        Exec {
            stmt,
            start: Instant::now(),
            rows: 0,
            bytes: 0,
            max_rows,
            error: None,
        }
    }
}

/// What a reply from upstream answers, in the order requests went upstream.
#[derive(Debug)]
enum Expect {
    /// A Simple Query (or a refused FunctionCall): replies until ReadyForQuery.
    Query {
        refusal: Option<Refusal>,
        analysis: Option<Arc<Judged>>,
        statement: usize,
        exec: Exec,
    },
    Parse {
        refusal: Option<Refusal>,
    },
    /// A refusal when pgveil replaced the Bind (a stale prepared statement).
    Bind {
        refusal: Option<Refusal>,
    },
    Close,
    Describe {
        analysis: Option<Arc<Judged>>,
        formats: Vec<i16>,
        /// Injected by pgveil (not asked by the client): its reply is checked, not forwarded.
        hidden: bool,
    },
    Execute {
        analysis: Option<Arc<Judged>>,
        formats: Vec<i16>,
        exec: Exec,
    },
    Sync,
}

/// An analysis with the plan it was made under. Replies are checked against that same plan:
/// after a reload, a statement prepared under the old rules is still checked consistently
/// with how it was rewritten.
///
/// A prepared statement judged under older rules (`version` is not the catalog version in
/// force) is judged again at its next Bind: if its rewrite is unchanged it continues under
/// the new plan and masks; otherwise the Bind is refused (the client prepares it again), so
/// a tightened rule reaches prepared statements too.
#[derive(Debug)]
struct Judged {
    a: Arc<Analysis>,
    plan: Arc<RolePlan>,
    /// The catalog version (bumped by every policy load) the judgement was made under.
    version: u64,
}

/// A portal as the front pump knows it: its statement's analysis and result formats.
struct Portal {
    analysis: Option<Arc<Judged>>,
    formats: Vec<i16>,
    /// The audited statement (Parse) it was bound from.
    stmt: u64,
}

/// The front pump's state for one restricted session.
#[derive(Default)]
struct Front {
    /// Named (and unnamed, "") prepared statements: analysis and audited statement number.
    statements: HashMap<String, (Arc<Judged>, u64, Arc<str>)>,
    portals: HashMap<String, Portal>,
    /// Statement numbers of this session (audit `stmt`).
    stmt: u64,
    /// Audit records of the batch being read.
    records: Vec<String>,
    /// Whether the batch forwards a statement: its records must be written before it leaves.
    must_log: bool,
    /// The role's `max_rows`, as of the latest login check.
    max_rows: Option<u64>,
    /// Replies pgveil itself asked for, to queue before the message being handled.
    injected: Vec<Expect>,
}

/// The back pump's state: row-limit handling and counters flushed once per batch.
#[derive(Default)]
struct Back {
    /// After a row limit was hit: drop replies until ReadyForQuery.
    swallow: bool,
    /// The cancel request sent upstream after a row limit; awaited before ReadyForQuery
    /// goes to the client, so it cannot land on the client's next statement (PostgreSQL
    /// ignores a cancel that arrives while the backend waits for a command).
    cancel: Option<tokio::task::JoinHandle<()>>,
    ends: Vec<String>,
    rows: u64,
    masked: u64,
    /// The COPY out in progress (from its CopyOutResponse to its CopyDone).
    copy_out: Option<copy::CopyOut>,
    /// Field ranges and the decoded field of the COPY row being masked.
    copy_fields: Vec<(usize, usize)>,
    copy_value: Vec<u8>,
}

/// Restricted roles: analyse, rewrite or refuse on the way up; check and mask on the way back.
pub(super) async fn restricted(
    mut reader: ClientReader,
    mut w: ClientWriter,
    up: Upstream,
    shared: &Arc<Shared>,
    info: &SessionInfo,
) -> Result<(), SessionError> {
    let Upstream {
        reader: mut up_reader,
        writer: mut up_w,
        backend_key,
        ..
    } = up;
    let queue: Mutex<VecDeque<Expect>> = Mutex::new(VecDeque::new());
    let queue = &queue;
    let front = async {
        let mut st = Front::default();
        let mut out = BytesMut::with_capacity(16 * 1024);
        loop {
            let Some(f) = reader.next().await.map_err(SessionError::Client)? else {
                return Ok(());
            };
            let mut next = Some(f);
            let mut terminate = false;
            while let Some(f) = next.take() {
                if f.tag == frontend::TERMINATE {
                    out.extend_from_slice(&f.bytes);
                    terminate = true;
                    break;
                }
                let expect = front_message(&f, &mut out, shared, info, &mut st)?;
                if expect.is_some() || !st.injected.is_empty() {
                    let mut q = lock(queue);
                    q.extend(st.injected.drain(..));
                    q.extend(expect);
                }
                next = reader.try_next().map_err(SessionError::Client)?;
            }
            // Nothing runs unlogged: the batch leaves only once its records are written.
            if !st.records.is_empty() {
                let must = std::mem::take(&mut st.must_log);
                if let Err(e) = shared.audit.commit(std::mem::take(&mut st.records)).await {
                    if must {
                        tracing::error!(peer = %info.peer, session = info.meta.session, error = %e, "statement not forwarded: the audit trail failed");
                        shared.metrics.refusal_code(UNAVAILABLE_SQLSTATE);
                        return Err(SessionError::Ended {
                            sqlstate: UNAVAILABLE_SQLSTATE,
                            message: UNAVAILABLE_MESSAGE.to_string(),
                        });
                    }
                }
            }
            up_w.write_all(&out)
                .await
                .map_err(|e| SessionError::Upstream(e.into()))?;
            out.clear();
            if terminate {
                return Ok(());
            }
        }
    };
    let back = async {
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut ranges = Vec::new();
        let mut scratch = Vec::new();
        let mut bs = Back::default();
        loop {
            let Some(f) = up_reader.next().await.map_err(SessionError::Upstream)? else {
                return Ok(false);
            };
            let mut next = Some(f);
            while let Some(f) = next.take() {
                if f.tag == backend::READY_FOR_QUERY {
                    if let Some(h) = bs.cancel.take() {
                        let _ = h.await;
                    }
                }
                let swallowing = bs.swallow;
                let mark = out.len();
                back_message(
                    &f,
                    &mut out,
                    queue,
                    shared,
                    info,
                    backend_key,
                    &mut bs,
                    &mut ranges,
                    &mut scratch,
                )?;
                if f.tag == backend::READY_FOR_QUERY {
                    bs.swallow = false;
                } else if swallowing {
                    out.truncate(mark);
                }
                if out.len() >= 64 * 1024 {
                    break;
                }
                next = up_reader.try_next().map_err(SessionError::Upstream)?;
            }
            w.write_all(&out)
                .await
                .map_err(|e| SessionError::Client(e.into()))?;
            let m = &shared.metrics;
            m.bytes_out.fetch_add(out.len() as u64, Relaxed);
            m.rows_out.fetch_add(std::mem::take(&mut bs.rows), Relaxed);
            m.masked_values.fetch_add(std::mem::take(&mut bs.masked), Relaxed);
            shared.audit.send(std::mem::take(&mut bs.ends));
            out.clear();
        }
    };
    let res = tokio::select! {
        r = front => r.map(|_| true),
        r = back => r,
    };
    finish(&mut w, res, shared).await
}

fn lock(q: &Mutex<VecDeque<Expect>>) -> std::sync::MutexGuard<'_, VecDeque<Expect>> {
    // A poisoned lock means a pump panicked; the queue itself is still consistent data.
    q.lock().unwrap_or_else(|p| p.into_inner())
}

/// Judges one statement text for the session's role (the login was checked just before).
fn judge(sql: &str, shared: &Shared, info: &SessionInfo) -> Result<Arc<Judged>, Refusal> {
    if !shared.audit.healthy() {
        return Err(Refusal::new(
            UNAVAILABLE_SQLSTATE,
            UNAVAILABLE_MESSAGE,
            Some("the pgveil operator must restore the audit log (disk full or read-only?)".into()),
        ));
    }
    let policy = shared.policy.load();
    let plan = policy
        .plans
        .get(&info.plan.role)
        .cloned()
        .unwrap_or_else(|| info.plan.clone());
    let ctx = Context {
        catalog: &policy.catalog,
        plan: &plan,
        search_path: &info.search_path,
    };
    let a = shared.analysis.analyze(sql, &ctx)?;
    Ok(Arc::new(Judged {
        a,
        plan,
        version: policy.catalog.version,
    }))
}

/// Judges a prepared statement again when the policy changed since it was prepared. Keeps
/// it (under the new plan) when its rewrite is unchanged; refuses it otherwise.
fn refresh_statement(name: &str, shared: &Shared, info: &SessionInfo, st: &mut Front) -> Result<(), Refusal> {
    let Some((old, n, sql)) = st.statements.get(name) else {
        return Ok(());
    };
    if old.version == shared.policy.load().catalog.version {
        return Ok(());
    }
    let (n, sql) = (*n, sql.clone());
    let stale = || {
        Refusal::new(
            "0A000",
            "the rules changed since this statement was prepared; prepare it again",
            Some("pgveil re-checks prepared statements after a rules reload".into()),
        )
    };
    match judge(&sql, shared, info) {
        Ok(new) if new.a.sql == old.a.sql => {
            st.statements.insert(name.to_string(), (new, n, sql));
            Ok(())
        }
        Ok(_) => {
            st.statements.remove(name);
            Err(stale())
        }
        Err(r) => {
            st.statements.remove(name);
            Err(r)
        }
    }
}

/// Counts and audits one judged statement.
fn note(
    shared: &Shared,
    info: &SessionInfo,
    st: &mut Front,
    stmt: u64,
    sql: &str,
    result: Result<&Analysis, &Refusal>,
) {
    match result {
        Ok(a) => {
            let rewritten = a.sql != sql;
            let masked = rewritten || a.statements.iter().any(|s| !s.proxy_masks.is_empty());
            shared.metrics.statement(if masked {
                Decision::Masked
            } else {
                Decision::Passed
            });
            if rewritten {
                shared.metrics.statements_rewritten.fetch_add(1, Relaxed);
            }
            if shared.audit.enabled() {
                let mut tables: Vec<String> = Vec::new();
                let mut columns: Vec<String> = Vec::new();
                for s in &a.statements {
                    for t in &s.tables {
                        if !tables.contains(t) {
                            tables.push(t.clone());
                        }
                    }
                    for c in &s.masked_columns {
                        if !columns.contains(c) {
                            columns.push(c.clone());
                        }
                    }
                }
                let verdict = if masked { Verdict::Masked } else { Verdict::Passed };
                st.records.push(
                    shared
                        .audit
                        .statement_record(&info.meta, stmt, sql, verdict, &tables, &columns),
                );
                st.must_log = true;
            }
        }
        Err(r) => {
            shared.metrics.refusal(r.sqlstate);
            log_refusal(info, r);
            if shared.audit.enabled() {
                let verdict = Verdict::Refused {
                    sqlstate: r.sqlstate,
                    reason: &r.message,
                };
                st.records.push(
                    shared
                        .audit
                        .statement_record(&info.meta, stmt, sql, verdict, &[], &[]),
                );
            }
        }
    }
}

/// Handles one client message: forwards it (possibly rewritten) into `out` and says what
/// reply to expect.
fn front_message(
    f: &Frame,
    out: &mut BytesMut,
    shared: &Shared,
    info: &SessionInfo,
    st: &mut Front,
) -> Result<Option<Expect>, SessionError> {
    let e = match f.tag {
        frontend::QUERY => {
            let sql = frontend::decode_query(f).map_err(SessionError::Client)?;
            st.max_rows = check_login(shared, info)?;
            st.stmt += 1;
            let stmt = st.stmt;
            match judge(sql, shared, info) {
                Ok(a) => {
                    note(shared, info, st, stmt, sql, Ok(&a.a));
                    if a.a.sql == sql {
                        out.extend_from_slice(&f.bytes);
                    } else {
                        frontend::encode_query(out, &a.a.sql);
                    }
                    Expect::Query {
                        refusal: None,
                        analysis: Some(a),
                        statement: 0,
                        exec: Exec::new(stmt, st.max_rows),
                    }
                }
                Err(r) => {
                    note(shared, info, st, stmt, sql, Err(&r));
                    frontend::encode_query(out, REFUSED_PLACEHOLDER);
                    Expect::Query {
                        refusal: Some(r),
                        analysis: None,
                        statement: 0,
                        exec: Exec::new(0, None),
                    }
                }
            }
        }
        frontend::PARSE => {
            let p = frontend::decode_parse(f).map_err(SessionError::Client)?;
            st.max_rows = check_login(shared, info)?;
            st.stmt += 1;
            let stmt = st.stmt;
            match judge(p.sql, shared, info) {
                Ok(a) => {
                    note(shared, info, st, stmt, p.sql, Ok(&a.a));
                    if a.a.sql == p.sql {
                        out.extend_from_slice(&f.bytes);
                    } else {
                        frontend::encode_parse(out, p.name, &a.a.sql, p.param_types);
                    }
                    st.statements
                        .insert(p.name.to_string(), (a, stmt, Arc::from(p.sql)));
                    Expect::Parse { refusal: None }
                }
                Err(r) => {
                    note(shared, info, st, stmt, p.sql, Err(&r));
                    st.statements.remove(p.name);
                    frontend::encode_parse(out, p.name, REFUSED_PLACEHOLDER, p.param_types);
                    Expect::Parse { refusal: Some(r) }
                }
            }
        }
        frontend::BIND => {
            let b = frontend::decode_bind(f).map_err(SessionError::Client)?;
            if let Err(r) = refresh_statement(b.statement, shared, info, st) {
                log_refusal(info, &r);
                shared.metrics.refusal_code(r.sqlstate);
                st.portals.remove(b.portal);
                // A Bind of a statement that does not exist fails upstream exactly where
                // this Bind would have, so the skip-until-Sync rule holds.
                let mut m = BodyWriter::new(out, frontend::BIND);
                m.cstr(b.portal).cstr(REFUSED_PLACEHOLDER).i16(0).i16(0).i16(0);
                m.finish();
                return Ok(Some(Expect::Bind { refusal: Some(r) }));
            }
            let (analysis, stmt) = match st.statements.get(b.statement) {
                Some((a, n, _)) => (Some(a.clone()), *n),
                None => (None, 0),
            };
            st.portals.insert(
                b.portal.to_string(),
                Portal {
                    analysis,
                    formats: b.result_formats,
                    stmt,
                },
            );
            out.extend_from_slice(&f.bytes);
            Expect::Bind { refusal: None }
        }
        frontend::DESCRIBE => {
            let t = frontend::decode_target(f).map_err(SessionError::Client)?;
            let (analysis, formats) = if t.kind == b'S' {
                (st.statements.get(t.name).map(|(a, ..)| a.clone()), Vec::new())
            } else {
                st.portals
                    .get(t.name)
                    .map(|p| (p.analysis.clone(), p.formats.clone()))
                    .unwrap_or((None, Vec::new()))
            };
            out.extend_from_slice(&f.bytes);
            Expect::Describe {
                analysis,
                formats,
                hidden: false,
            }
        }
        frontend::EXECUTE => {
            let (portal, _max_rows) = frontend::decode_execute(f).map_err(SessionError::Client)?;
            // A prepared statement run again is a statement too: the login is checked again.
            st.max_rows = check_login(shared, info)?;
            let (analysis, formats, stmt) = st
                .portals
                .get(portal)
                .map(|p| (p.analysis.clone(), p.formats.clone(), p.stmt))
                .unwrap_or((None, Vec::new(), 0));
            // SQL-level EXECUTE and FETCH return rows whose origin the analysis of their own
            // text does not know (the prepared statement or cursor may come from elsewhere).
            // A client may Execute without ever asking for a RowDescription, so pgveil asks
            // itself and checks the reply before any row of it can leave.
            let indirect = analysis.as_ref().is_none_or(|j| {
                j.a.statements
                    .iter()
                    .any(|s| matches!(s.kind, StatementKind::Execute | StatementKind::Cursor))
            });
            if indirect {
                frontend::encode_describe(out, b'P', portal);
                st.injected.push(Expect::Describe {
                    analysis: analysis.clone(),
                    formats: formats.clone(),
                    hidden: true,
                });
            }
            out.extend_from_slice(&f.bytes);
            Expect::Execute {
                analysis,
                formats,
                exec: Exec::new(stmt, st.max_rows),
            }
        }
        frontend::CLOSE => {
            let t = frontend::decode_target(f).map_err(SessionError::Client)?;
            if t.kind == b'S' {
                st.statements.remove(t.name);
            } else {
                st.portals.remove(t.name);
            }
            out.extend_from_slice(&f.bytes);
            Expect::Close
        }
        frontend::SYNC => {
            frontend::check_empty(f, "Sync").map_err(SessionError::Client)?;
            // The unnamed portal does not survive the end of the transaction's unit of work.
            out.extend_from_slice(&f.bytes);
            Expect::Sync
        }
        frontend::FUNCTION_CALL => {
            check_login(shared, info)?;
            // The fast-path interface calls a function by oid: nothing to analyse.
            let r = Refusal {
                sqlstate: "42501",
                message: "the function-call interface is not available to restricted roles".into(),
                hint: Some("call functions in a SELECT".into()),
            };
            st.stmt += 1;
            let stmt = st.stmt;
            note(shared, info, st, stmt, "<function call message>", Err(&r));
            frontend::encode_query(out, REFUSED_PLACEHOLDER);
            Expect::Query {
                refusal: Some(r),
                analysis: None,
                statement: 0,
                exec: Exec::new(0, None),
            }
        }
        _ => {
            // Flush, CopyData/CopyDone/CopyFail and anything else: forwarded as they are;
            // they produce no reply of their own that pgveil must track.
            out.extend_from_slice(&f.bytes);
            return Ok(None);
        }
    };
    Ok(Some(e))
}

/// Statement texts (and refusal reasons, which may quote them) go to the audit trail, not
/// to the logs: a restricted role's literals may be personal data.
fn log_refusal(info: &SessionInfo, r: &Refusal) {
    tracing::info!(peer = %info.peer, session = info.meta.session, user = %info.user, role = %info.plan.role, sqlstate = r.sqlstate, "statement refused");
    tracing::debug!(session = info.meta.session, reason = %r.message, "statement refused: reason");
}

fn refusal_frame(out: &mut BytesMut, r: &Refusal) {
    backend::encode_error(out, Severity::Error, r.sqlstate, &r.message, r.hint.as_deref());
}

/// The proxy-side masks and formats for the result currently streaming.
fn current_masks(e: Option<&Expect>) -> (Option<&Arc<Judged>>, usize, &[i16]) {
    match e {
        Some(Expect::Query {
            analysis, statement, ..
        }) => (analysis.as_ref(), *statement, &[]),
        Some(Expect::Execute {
            analysis, formats, ..
        }) => (analysis.as_ref(), 0, formats),
        Some(Expect::Describe {
            analysis, formats, ..
        }) => (analysis.as_ref(), 0, formats),
        _ => (None, 0, &[]),
    }
}

fn format_of(formats: &[i16], i: usize) -> Format {
    let code = match formats.len() {
        0 => 0,
        1 => formats[0],
        _ => formats.get(i).copied().unwrap_or(0),
    };
    if code == 1 {
        Format::Binary
    } else {
        Format::Text
    }
}

/// Ends one execution: latency metric and `statement_end` record.
fn end_exec(shared: &Shared, info: &SessionInfo, bs: &mut Back, exec: &Exec, error: Option<&str>) {
    if exec.stmt == 0 {
        return;
    }
    let elapsed = exec.start.elapsed();
    shared.metrics.observe_latency(elapsed);
    if shared.audit.enabled() {
        let error = exec.error.as_deref().or(error);
        bs.ends.push(
            shared
                .audit
                .end_record(&info.meta, exec.stmt, exec.rows, exec.bytes, elapsed, error),
        );
    }
}

/// Sends a CancelRequest for the session's upstream backend and waits until the postmaster
/// has handled it (it closes the connection then), at most 2 s.
fn cancel_upstream(shared: &Shared, key: (i32, i32)) -> tokio::task::JoinHandle<()> {
    let cfg = shared.upstream.clone();
    tokio::spawn(async move {
        let attempt = async {
            let mut s = cfg.open().await.map_err(|e| e.to_string())?;
            let mut out = BytesMut::new();
            crate::wire::startup::encode_cancel(&mut out, key.0, key.1);
            s.write_all(&out).await.map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            let _ = s.read(&mut b).await;
            Ok::<(), String>(())
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cancelling a statement over its row limit failed"),
            Err(_) => tracing::warn!("cancelling a statement over its row limit timed out"),
        }
    })
}

/// Handles one upstream message: checks it, masks it, swaps refusals, tracks the queue.
#[allow(clippy::too_many_arguments)]
fn back_message(
    f: &Frame,
    out: &mut BytesMut,
    queue: &Mutex<VecDeque<Expect>>,
    shared: &Shared,
    info: &SessionInfo,
    backend_key: (i32, i32),
    bs: &mut Back,
    ranges: &mut Vec<Option<(usize, usize)>>,
    scratch: &mut Vec<u8>,
) -> Result<(), SessionError> {
    let mut q = lock(queue);
    match f.tag {
        // The rows of a COPY out count against the role's row limit like DataRows.
        backend::DATA_ROW | backend::COPY_DATA if copy::is_row(f) => {
            // The role's row limit: the statement ends with an error, never a silent cut.
            let limit_hit = match q.front_mut() {
                Some(Expect::Query { exec, .. } | Expect::Execute { exec, .. }) if exec.error.is_none() => {
                    if exec.max_rows.is_some_and(|m| exec.rows >= m) {
                        exec.error = Some("54000".into());
                        exec.max_rows
                    } else {
                        exec.rows += 1;
                        exec.bytes += f.bytes.len() as u64;
                        None
                    }
                }
                _ => None,
            };
            if let Some(max) = limit_hit {
                let msg = format!(
                    "row limit of {max} rows per statement exceeded for role {}",
                    info.plan.role
                );
                backend::encode_error(out, Severity::Error, "54000", &msg, Some(ROW_LIMIT_HINT));
                bs.swallow = true;
                bs.cancel = Some(cancel_upstream(shared, backend_key));
                shared.metrics.row_limit_hits.fetch_add(1, Relaxed);
                shared.metrics.refusal_code("54000");
                tracing::info!(peer = %info.peer, session = info.meta.session, role = %info.plan.role, max, "row limit reached; statement cancelled");
                return Ok(());
            }
            if bs.swallow {
                // Dropped until ReadyForQuery: no need to mask what nobody will see.
                return Ok(());
            }
            bs.rows += 1;
            let (analysis, stmt, formats) = current_masks(q.front());
            let masks = analysis
                .and_then(|j| j.a.statements.get(stmt))
                .map(|s| s.proxy_masks.as_slice())
                .unwrap_or(&[]);
            if masks.is_empty() {
                out.extend_from_slice(&f.bytes);
            } else if f.tag == backend::DATA_ROW {
                bs.masked += mask_row(f.body(), masks, formats, out, ranges, scratch)
                    .map_err(SessionError::Upstream)?;
            } else {
                // The analyser only lets pgveil mask a COPY written without options: text.
                let columns = match bs.copy_out {
                    Some(c) if c.format == 0 => c.columns,
                    _ => {
                        return Err(SessionError::Leak(
                            "COPY data in a format pgveil cannot mask".into(),
                        ))
                    }
                };
                bs.masked += mask_copy_row(
                    f.body(),
                    columns,
                    masks,
                    out,
                    &mut bs.copy_fields,
                    &mut bs.copy_value,
                    scratch,
                )
                .map_err(SessionError::Upstream)?;
            }
        }
        backend::COPY_OUT => {
            bs.copy_out = Some(copy::decode_copy_out_response(f).map_err(SessionError::Upstream)?);
            out.extend_from_slice(&f.bytes);
        }
        backend::COPY_DONE => {
            bs.copy_out = None;
            out.extend_from_slice(&f.bytes);
        }
        backend::ROW_DESCRIPTION => {
            let (analysis, stmt, _) = current_masks(q.front());
            let masks = analysis
                .and_then(|j| j.a.statements.get(stmt))
                .map(|s| s.proxy_masks.as_slice())
                .unwrap_or(&[]);
            let fields = backend::decode_row_description(f).map_err(SessionError::Upstream)?;
            match analysis {
                Some(j) => check_fields(&fields, masks, &j.plan)?,
                // No analysis known (a statement pgveil did not see prepared): the plan in force.
                None => {
                    let policy = shared.policy.load();
                    check_fields(
                        &fields,
                        masks,
                        policy.plans.get(&info.plan.role).unwrap_or(&info.plan),
                    )?
                }
            }
            match q.front() {
                Some(Expect::Describe { hidden: true, .. }) => {
                    q.pop_front();
                }
                Some(Expect::Describe { .. }) => {
                    q.pop_front();
                    out.extend_from_slice(&f.bytes);
                }
                _ => out.extend_from_slice(&f.bytes),
            }
        }
        backend::COMMAND_COMPLETE | backend::EMPTY_QUERY => {
            bs.copy_out = None;
            match q.front_mut() {
                Some(Expect::Query { statement, .. }) => *statement += 1,
                Some(Expect::Execute { .. }) => {
                    if let Some(Expect::Execute { exec, .. }) = q.pop_front() {
                        end_exec(shared, info, bs, &exec, None);
                    }
                }
                other => {
                    let other = other.map(|e| &*e);
                    return Err(desync(f, other));
                }
            }
            out.extend_from_slice(&f.bytes);
        }
        backend::PORTAL_SUSPENDED => {
            if let Some(Expect::Execute { exec, .. }) = q.front() {
                end_exec(shared, info, bs, exec, None);
            }
            expect_pop(&mut q, f, |e| matches!(e, Expect::Execute { .. }))?;
            out.extend_from_slice(&f.bytes);
        }
        backend::PARSE_COMPLETE => {
            expect_pop(&mut q, f, |e| matches!(e, Expect::Parse { .. }))?;
            out.extend_from_slice(&f.bytes);
        }
        backend::BIND_COMPLETE => {
            expect_pop(&mut q, f, |e| matches!(e, Expect::Bind { .. }))?;
            out.extend_from_slice(&f.bytes);
        }
        backend::CLOSE_COMPLETE => {
            expect_pop(&mut q, f, |e| matches!(e, Expect::Close))?;
            out.extend_from_slice(&f.bytes);
        }
        backend::NO_DATA => {
            let hidden = matches!(q.front(), Some(Expect::Describe { hidden: true, .. }));
            expect_pop(&mut q, f, |e| matches!(e, Expect::Describe { .. }))?;
            if !hidden {
                out.extend_from_slice(&f.bytes);
            }
        }
        backend::ERROR_RESPONSE => {
            bs.copy_out = None;
            let code = backend::decode_error(f).ok().map(|e| e.code().to_string());
            let refusal = match q.front_mut() {
                // Simple Query: the error ends the query; ReadyForQuery follows.
                Some(Expect::Query { refusal, exec, .. }) => {
                    if exec.error.is_none() {
                        exec.error = code.clone();
                    }
                    refusal.take()
                }
                Some(Expect::Sync) | None => None,
                Some(_) => {
                    // Extended protocol: the failed message and everything up to Sync
                    // are skipped by the server.
                    let mut refusal = None;
                    while let Some(e) = q.front() {
                        if matches!(e, Expect::Sync) {
                            break;
                        }
                        match q.pop_front() {
                            Some(Expect::Parse { refusal: r } | Expect::Bind { refusal: r }) => {
                                refusal = refusal.or(r)
                            }
                            Some(Expect::Execute { exec, .. }) => {
                                end_exec(shared, info, bs, &exec, code.as_deref())
                            }
                            _ => {}
                        }
                    }
                    refusal
                }
            };
            match refusal {
                Some(r) => refusal_frame(out, &r),
                None => out.extend_from_slice(&f.bytes),
            }
        }
        backend::READY_FOR_QUERY => {
            if let Some(Expect::Query { exec, .. }) = q.front() {
                end_exec(shared, info, bs, exec, None);
            }
            expect_pop(&mut q, f, |e| matches!(e, Expect::Sync | Expect::Query { .. }))?;
            out.extend_from_slice(&f.bytes);
        }
        _ => out.extend_from_slice(&f.bytes),
    }
    Ok(())
}

fn desync(f: &Frame, e: Option<&Expect>) -> SessionError {
    SessionError::Desync(format!(
        "reply {:?} while expecting {:?}",
        f.tag as char,
        e.map(expect_name)
    ))
}

fn expect_name(e: &Expect) -> &'static str {
    match e {
        Expect::Query { .. } => "Query",
        Expect::Parse { .. } => "Parse",
        Expect::Bind { .. } => "Bind",
        Expect::Close => "Close",
        Expect::Describe { .. } => "Describe",
        Expect::Execute { .. } => "Execute",
        Expect::Sync => "Sync",
    }
}

fn expect_pop(q: &mut VecDeque<Expect>, f: &Frame, ok: impl Fn(&Expect) -> bool) -> Result<(), SessionError> {
    match q.front() {
        Some(e) if ok(e) => {
            q.pop_front();
            Ok(())
        }
        other => Err(desync(f, other)),
    }
}

/// Fails closed when a result column comes straight from a column the role may not see
/// in clear, unless pgveil masks that position itself.
fn check_fields(
    fields: &[backend::Field],
    masks: &[(usize, Arc<Mask>)],
    plan: &RolePlan,
) -> Result<(), SessionError> {
    for (i, field) in fields.iter().enumerate() {
        if field.table_oid == 0 {
            continue;
        }
        let Some(t) = plan.tables.get(&field.table_oid) else {
            continue;
        };
        let Some(c) = t.columns.iter().find(|c| c.attnum == field.attnum) else {
            return Err(SessionError::Leak(format!(
                "{}.{} attnum {} has no plan",
                t.schema, t.name, field.attnum
            )));
        };
        match &c.action {
            ColumnAction::Clear => {}
            ColumnAction::Mask(_) if masks.iter().any(|(p, _)| *p == i) => {}
            _ => return Err(SessionError::Leak(format!("{}.{}.{}", t.schema, t.name, c.name))),
        }
    }
    Ok(())
}

/// Rewrites one DataRow with pgveil's masks applied at their positions.
fn mask_row(
    body: &[u8],
    masks: &[(usize, Arc<Mask>)],
    formats: &[i16],
    out: &mut BytesMut,
    ranges: &mut Vec<Option<(usize, usize)>>,
    scratch: &mut Vec<u8>,
) -> Result<u64, WireError> {
    backend::data_row_ranges(body, ranges)?;
    let mut masked = 0;
    let start = backend::start_data_row(out, ranges.len() as u16);
    for (i, r) in ranges.iter().enumerate() {
        let value = r.map(|(a, b)| &body[a..b]);
        match (value, masks.iter().find(|(p, _)| *p == i)) {
            (Some(v), Some((_, m))) => {
                masked += 1;
                match m.apply(v, format_of(formats, i), scratch) {
                    Masked::Value => backend::put_value(out, Some(scratch)),
                    Masked::Null => backend::put_value(out, None),
                }
            }
            (v, _) => backend::put_value(out, v),
        }
    }
    backend::finish_data_row(out, start);
    Ok(masked)
}

/// Rewrites one COPY text row (a CopyData body) with pgveil's masks applied at their
/// positions. A row that is not exactly `columns` fields ends the session (fail closed):
/// pgveil never forwards a row it could not split.
fn mask_copy_row(
    body: &[u8],
    columns: u16,
    masks: &[(usize, Arc<Mask>)],
    out: &mut BytesMut,
    fields: &mut Vec<(usize, usize)>,
    value: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<u64, WireError> {
    copy::text_row_fields(body, fields)?;
    if fields.len() != usize::from(columns) || masks.iter().any(|(p, _)| *p >= fields.len()) {
        return Err(WireError::malformed(
            "COPY text row",
            format!("{} fields, {columns} announced", fields.len()),
        ));
    }
    let mut masked = 0;
    let mut m = BodyWriter::new(out, backend::COPY_DATA);
    for (i, &(a, b)) in fields.iter().enumerate() {
        if i > 0 {
            m.u8(b'\t');
        }
        let raw = &body[a..b];
        let Some((_, mask)) = masks.iter().find(|(p, _)| *p == i) else {
            m.bytes(raw);
            continue;
        };
        let shown = if copy::text_field_decode(raw, value) {
            masked += 1;
            match mask.apply(value, Format::Text, scratch) {
                Masked::Value => Some(scratch.as_slice()),
                Masked::Null => None,
            }
        } else {
            None
        };
        // `value` is free again: it holds the escaped form.
        value.clear();
        copy::text_field_encode(shown, value);
        m.bytes(value);
    }
    m.u8(b'\n');
    m.finish();
    Ok(masked)
}

#[cfg(test)]
mod tests {
    use super::parse_text_array;

    #[test]
    fn text_arrays() {
        assert_eq!(parse_text_array("{public}"), vec!["public"]);
        assert_eq!(parse_text_array("{}"), Vec::<String>::new());
        assert_eq!(
            parse_text_array(r#"{"a b",public,"x\"y"}"#),
            vec!["a b", "public", "x\"y"]
        );
    }
}
