//! The relay between an authenticated client and its upstream connection.
//!
//! Two pumps run side by side in the session's task:
//! - the front pump reads client messages and forwards them upstream;
//! - the back pump reads upstream messages and forwards them to the client.
//!
//! Unrestricted roles: frames pass as they are (the back pump is a plain byte copy).
//!
//! Restricted roles: every Query and Parse is analysed before it leaves. A statement the
//! analyser refuses is replaced upstream by one that fails to parse, so that the refusal
//! arrives exactly where PostgreSQL's own error would: it aborts a transaction block like
//! any error, and the extended protocol's skip-until-Sync rule holds unchanged. The back
//! pump swaps that error for pgveil's refusal. A queue of [`Expect`]s, pushed by the front
//! pump in the order messages go upstream, tells the back pump what each reply answers.
//!
//! Invariants (restricted roles):
//! - no Query or Parse text reaches the upstream without having been analysed;
//! - a RowDescription field that points straight at a masked or denied column ends the
//!   session, unless pgveil itself masks that output position (keyed masks);
//! - both pumps move whole messages and write each batch before reading more, so a slow
//!   reader slows its writer (back-pressure) and memory stays bounded.
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

use super::{SessionError, Shared};
use crate::mask::{Format, Mask, Masked};
use crate::net::Stream;
use crate::policy::{ColumnAction, RolePlan};
use crate::rules::Login;
use crate::sql::{Analysis, Context, Refusal};
use crate::upstream::Upstream;
use crate::wire::backend::{self, Severity};
use crate::wire::frontend;
use crate::wire::{Frame, FrameReader, WireError};

type ClientReader = FrameReader<ReadHalf<Stream>>;
type ClientWriter = WriteHalf<Stream>;

/// Who is on the session, for decisions and logs.
pub(super) struct SessionInfo {
    pub user: String,
    pub login: Login,
    pub plan: Arc<RolePlan>,
    pub search_path: Vec<String>,
    pub peer: SocketAddr,
}

/// A statement text that PostgreSQL rejects with a syntax error: stands in for a refused
/// statement so the refusal takes the place of the server's error.
const REFUSED_PLACEHOLDER: &str = "pgveil_refused";

/// Reads `current_schemas(false)` on a fresh upstream connection: the search path the
/// session's statements will resolve names with.
pub(super) async fn fetch_search_path(up: &mut Upstream) -> Result<Vec<String>, String> {
    let mut out = BytesMut::new();
    frontend::encode_query(&mut out, "SELECT pg_catalog.current_schemas(false)::text");
    up.writer.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut value = None;
    loop {
        let f = up.reader.next().await.map_err(|e| e.to_string())?.ok_or("upstream closed")?;
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

/// Unrestricted roles: every message passes unchanged in both directions.
pub(super) async fn unrestricted(
    mut reader: ClientReader,
    mut w: ClientWriter,
    up: Upstream,
    _shared: &Arc<Shared>,
) -> Result<(), SessionError> {
    let Upstream { reader: mut up_reader, writer: mut up_w, .. } = up;
    let front = async {
        let mut out = BytesMut::with_capacity(64 * 1024);
        loop {
            let Some(f) = reader.next().await.map_err(SessionError::Client)? else { return Ok(()) };
            let terminate = f.tag == frontend::TERMINATE;
            out.extend_from_slice(&f.bytes);
            while !terminate {
                match reader.try_next().map_err(SessionError::Client)? {
                    Some(f) => out.extend_from_slice(&f.bytes),
                    None => break,
                }
            }
            up_w.write_all(&out).await.map_err(|e| SessionError::Upstream(e.into()))?;
            out.clear();
            if terminate {
                return Ok(());
            }
        }
    };
    let back = async {
        let mut out = BytesMut::with_capacity(64 * 1024);
        loop {
            let Some(f) = up_reader.next().await.map_err(SessionError::Upstream)? else { return Ok(false) };
            out.extend_from_slice(&f.bytes);
            while let Some(f) = up_reader.try_next().map_err(SessionError::Upstream)? {
                out.extend_from_slice(&f.bytes);
                if out.len() >= 64 * 1024 {
                    break;
                }
            }
            w.write_all(&out).await.map_err(|e| SessionError::Client(e.into()))?;
            out.clear();
        }
    };
    let res = tokio::select! {
        r = front => r.map(|_| true),
        r = back => r,
    };
    finish(&mut w, res).await
}

/// After the pumps: tells the client when the upstream vanished.
async fn finish(w: &mut ClientWriter, res: Result<bool, SessionError>) -> Result<(), SessionError> {
    match res {
        Ok(true) => Ok(()),
        Ok(false) => {
            let mut out = BytesMut::new();
            backend::encode_error(&mut out, Severity::Fatal, "08006", "the upstream database closed the connection", None);
            let _ = w.write_all(&out).await;
            let _ = w.shutdown().await;
            Ok(())
        }
        Err(e @ (SessionError::Upstream(_) | SessionError::Desync(_) | SessionError::Leak(_))) => {
            let mut out = BytesMut::new();
            let (code, msg) = match &e {
                SessionError::Leak(_) => ("42501", "pgveil stopped a result that would reveal a protected column"),
                SessionError::Desync(_) => ("08P01", "pgveil lost track of the protocol and ended the session"),
                _ => ("08006", "the connection to the upstream database failed"),
            };
            backend::encode_error(&mut out, Severity::Fatal, code, msg, None);
            let _ = w.write_all(&out).await;
            let _ = w.shutdown().await;
            Err(e)
        }
        Err(e) => {
            if let SessionError::Client(WireError::Malformed { .. } | WireError::TooLarge { .. } | WireError::BadLength { .. }) = &e {
                let mut out = BytesMut::new();
                backend::encode_error(&mut out, Severity::Fatal, "08P01", &format!("invalid message: {e}"), None);
                let _ = w.write_all(&out).await;
                let _ = w.shutdown().await;
            }
            Err(e)
        }
    }
}

/// What a reply from upstream answers, in the order requests went upstream.
#[derive(Debug)]
enum Expect {
    /// A Simple Query (or a refused FunctionCall): replies until ReadyForQuery.
    Query { refusal: Option<Refusal>, analysis: Option<Arc<Analysis>>, statement: usize },
    Parse { refusal: Option<Refusal> },
    Bind,
    Close,
    Describe { analysis: Option<Arc<Analysis>>, formats: Vec<i16> },
    Execute { analysis: Option<Arc<Analysis>>, formats: Vec<i16> },
    Sync,
}

/// A portal as the front pump knows it: its statement's analysis and result formats.
struct Portal {
    analysis: Option<Arc<Analysis>>,
    formats: Vec<i16>,
}

/// Restricted roles: analyse, rewrite or refuse on the way up; check and mask on the way back.
pub(super) async fn restricted(
    mut reader: ClientReader,
    mut w: ClientWriter,
    up: Upstream,
    shared: &Arc<Shared>,
    info: SessionInfo,
) -> Result<(), SessionError> {
    let Upstream { reader: mut up_reader, writer: mut up_w, .. } = up;
    let queue: Mutex<VecDeque<Expect>> = Mutex::new(VecDeque::new());
    let info = &info;
    let queue = &queue;
    let front = async {
        let mut statements: HashMap<String, Arc<Analysis>> = HashMap::new();
        let mut portals: HashMap<String, Portal> = HashMap::new();
        let mut out = BytesMut::with_capacity(16 * 1024);
        loop {
            let Some(f) = reader.next().await.map_err(SessionError::Client)? else { return Ok(()) };
            let mut next = Some(f);
            while let Some(f) = next.take() {
                if f.tag == frontend::TERMINATE {
                    out.extend_from_slice(&f.bytes);
                    up_w.write_all(&out).await.map_err(|e| SessionError::Upstream(e.into()))?;
                    return Ok(());
                }
                let expect = front_message(&f, &mut out, shared, info, &mut statements, &mut portals)?;
                if let Some(e) = expect {
                    lock(queue).push_back(e);
                }
                next = reader.try_next().map_err(SessionError::Client)?;
            }
            up_w.write_all(&out).await.map_err(|e| SessionError::Upstream(e.into()))?;
            out.clear();
        }
    };
    let back = async {
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut ranges = Vec::new();
        let mut scratch = Vec::new();
        loop {
            let Some(f) = up_reader.next().await.map_err(SessionError::Upstream)? else { return Ok(false) };
            let mut next = Some(f);
            while let Some(f) = next.take() {
                back_message(&f, &mut out, queue, info, &mut ranges, &mut scratch)?;
                if out.len() >= 64 * 1024 {
                    break;
                }
                next = up_reader.try_next().map_err(SessionError::Upstream)?;
            }
            w.write_all(&out).await.map_err(|e| SessionError::Client(e.into()))?;
            out.clear();
        }
    };
    let res = tokio::select! {
        r = front => r.map(|_| true),
        r = back => r,
    };
    finish(&mut w, res).await
}

fn lock(q: &Mutex<VecDeque<Expect>>) -> std::sync::MutexGuard<'_, VecDeque<Expect>> {
    // A poisoned lock means a pump panicked; the queue itself is still consistent data.
    q.lock().unwrap_or_else(|p| p.into_inner())
}

/// Judges one statement text for the session's role.
fn judge(sql: &str, shared: &Shared, info: &SessionInfo) -> Result<Arc<Analysis>, Refusal> {
    let policy = shared.policy.load();
    // A login revoked or expired since the session started ends at its next statement.
    match policy.rules.logins.get(&info.user) {
        Some(l) if l.role == info.plan.role => {
            if let Err(e) = l.check_window(chrono::Utc::now()) {
                return Err(Refusal { sqlstate: "28000", message: e.to_string(), hint: None });
            }
        }
        _ => {
            return Err(Refusal {
                sqlstate: "28000",
                message: format!("login {} has been revoked", info.user),
                hint: Some("the rules no longer grant this login; reconnect after the data owner restores it".into()),
            })
        }
    }
    let plan = policy.plans.get(&info.plan.role).cloned().unwrap_or_else(|| info.plan.clone());
    let ctx = Context { catalog: &policy.catalog, plan: &plan, search_path: &info.search_path };
    shared.analysis.analyze(sql, &ctx)
}

/// Handles one client message: forwards it (possibly rewritten) into `out` and says what
/// reply to expect.
fn front_message(
    f: &Frame,
    out: &mut BytesMut,
    shared: &Shared,
    info: &SessionInfo,
    statements: &mut HashMap<String, Arc<Analysis>>,
    portals: &mut HashMap<String, Portal>,
) -> Result<Option<Expect>, SessionError> {
    let e = match f.tag {
        frontend::QUERY => {
            let sql = frontend::decode_query(f).map_err(SessionError::Client)?;
            match judge(sql, shared, info) {
                Ok(a) => {
                    if a.sql == sql {
                        out.extend_from_slice(&f.bytes);
                    } else {
                        frontend::encode_query(out, &a.sql);
                    }
                    Expect::Query { refusal: None, analysis: Some(a), statement: 0 }
                }
                Err(r) => {
                    log_refusal(info, &r);
                    frontend::encode_query(out, REFUSED_PLACEHOLDER);
                    Expect::Query { refusal: Some(r), analysis: None, statement: 0 }
                }
            }
        }
        frontend::PARSE => {
            let p = frontend::decode_parse(f).map_err(SessionError::Client)?;
            match judge(p.sql, shared, info) {
                Ok(a) => {
                    if a.sql == p.sql {
                        out.extend_from_slice(&f.bytes);
                    } else {
                        frontend::encode_parse(out, p.name, &a.sql, p.param_types);
                    }
                    statements.insert(p.name.to_string(), a);
                    Expect::Parse { refusal: None }
                }
                Err(r) => {
                    log_refusal(info, &r);
                    statements.remove(p.name);
                    frontend::encode_parse(out, p.name, REFUSED_PLACEHOLDER, p.param_types);
                    Expect::Parse { refusal: Some(r) }
                }
            }
        }
        frontend::BIND => {
            let b = frontend::decode_bind(f).map_err(SessionError::Client)?;
            let analysis = statements.get(b.statement).cloned();
            portals.insert(b.portal.to_string(), Portal { analysis, formats: b.result_formats });
            out.extend_from_slice(&f.bytes);
            Expect::Bind
        }
        frontend::DESCRIBE => {
            let t = frontend::decode_target(f).map_err(SessionError::Client)?;
            let (analysis, formats) = if t.kind == b'S' {
                (statements.get(t.name).cloned(), Vec::new())
            } else {
                portals.get(t.name).map(|p| (p.analysis.clone(), p.formats.clone())).unwrap_or((None, Vec::new()))
            };
            out.extend_from_slice(&f.bytes);
            Expect::Describe { analysis, formats }
        }
        frontend::EXECUTE => {
            let (portal, _max_rows) = frontend::decode_execute(f).map_err(SessionError::Client)?;
            let (analysis, formats) =
                portals.get(portal).map(|p| (p.analysis.clone(), p.formats.clone())).unwrap_or((None, Vec::new()));
            out.extend_from_slice(&f.bytes);
            Expect::Execute { analysis, formats }
        }
        frontend::CLOSE => {
            let t = frontend::decode_target(f).map_err(SessionError::Client)?;
            if t.kind == b'S' {
                statements.remove(t.name);
            } else {
                portals.remove(t.name);
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
            // The fast-path interface calls a function by oid: nothing to analyse.
            let r = Refusal {
                sqlstate: "42501",
                message: "the function-call interface is not available to restricted roles".into(),
                hint: Some("call functions in a SELECT".into()),
            };
            log_refusal(info, &r);
            frontend::encode_query(out, REFUSED_PLACEHOLDER);
            Expect::Query { refusal: Some(r), analysis: None, statement: 0 }
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

fn log_refusal(info: &SessionInfo, r: &Refusal) {
    tracing::info!(peer = %info.peer, user = %info.user, role = %info.plan.role, sqlstate = r.sqlstate, reason = %r.message, "statement refused");
}

fn refusal_frame(out: &mut BytesMut, r: &Refusal) {
    backend::encode_error(out, Severity::Error, r.sqlstate, &r.message, r.hint.as_deref());
}

/// The proxy-side masks and formats for the result currently streaming.
fn current_masks(e: Option<&Expect>) -> (Option<&Arc<Analysis>>, usize, &[i16]) {
    match e {
        Some(Expect::Query { analysis, statement, .. }) => (analysis.as_ref(), *statement, &[]),
        Some(Expect::Execute { analysis, formats }) => (analysis.as_ref(), 0, formats),
        Some(Expect::Describe { analysis, formats }) => (analysis.as_ref(), 0, formats),
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

/// Handles one upstream message: checks it, masks it, swaps refusals, tracks the queue.
fn back_message(
    f: &Frame,
    out: &mut BytesMut,
    queue: &Mutex<VecDeque<Expect>>,
    info: &SessionInfo,
    ranges: &mut Vec<Option<(usize, usize)>>,
    scratch: &mut Vec<u8>,
) -> Result<(), SessionError> {
    let mut q = lock(queue);
    match f.tag {
        backend::DATA_ROW => {
            let (analysis, stmt, formats) = current_masks(q.front());
            let masks = analysis.and_then(|a| a.statements.get(stmt)).map(|s| s.proxy_masks.as_slice()).unwrap_or(&[]);
            if masks.is_empty() {
                out.extend_from_slice(&f.bytes);
            } else {
                mask_row(f.body(), masks, formats, out, ranges, scratch).map_err(SessionError::Upstream)?;
            }
        }
        backend::ROW_DESCRIPTION => {
            let (analysis, stmt, _) = current_masks(q.front());
            let masks = analysis.and_then(|a| a.statements.get(stmt)).map(|s| s.proxy_masks.as_slice()).unwrap_or(&[]);
            let fields = backend::decode_row_description(f).map_err(SessionError::Upstream)?;
            check_fields(&fields, masks, &info.plan)?;
            if matches!(q.front(), Some(Expect::Describe { .. })) {
                q.pop_front();
            }
            out.extend_from_slice(&f.bytes);
        }
        backend::COMMAND_COMPLETE | backend::EMPTY_QUERY => {
            match q.front_mut() {
                Some(Expect::Query { statement, .. }) => *statement += 1,
                Some(Expect::Execute { .. }) => {
                    q.pop_front();
                }
                other => {
                    let other = other.map(|e| &*e);
                    return Err(desync(f, other));
                }
            }
            out.extend_from_slice(&f.bytes);
        }
        backend::PORTAL_SUSPENDED => {
            expect_pop(&mut q, f, |e| matches!(e, Expect::Execute { .. }))?;
            out.extend_from_slice(&f.bytes);
        }
        backend::PARSE_COMPLETE => {
            expect_pop(&mut q, f, |e| matches!(e, Expect::Parse { .. }))?;
            out.extend_from_slice(&f.bytes);
        }
        backend::BIND_COMPLETE => {
            expect_pop(&mut q, f, |e| matches!(e, Expect::Bind))?;
            out.extend_from_slice(&f.bytes);
        }
        backend::CLOSE_COMPLETE => {
            expect_pop(&mut q, f, |e| matches!(e, Expect::Close))?;
            out.extend_from_slice(&f.bytes);
        }
        backend::NO_DATA => {
            expect_pop(&mut q, f, |e| matches!(e, Expect::Describe { .. }))?;
            out.extend_from_slice(&f.bytes);
        }
        backend::ERROR_RESPONSE => {
            let refusal = match q.front_mut() {
                // Simple Query: the error ends the query; ReadyForQuery follows.
                Some(Expect::Query { refusal, .. }) => refusal.take(),
                Some(Expect::Sync) | None => None,
                Some(_) => {
                    // Extended protocol: the failed message and everything up to Sync
                    // are skipped by the server.
                    let mut refusal = None;
                    while let Some(e) = q.front() {
                        if matches!(e, Expect::Sync) {
                            break;
                        }
                        if let Some(Expect::Parse { refusal: r }) = q.pop_front() {
                            refusal = refusal.or(r);
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
            expect_pop(&mut q, f, |e| matches!(e, Expect::Sync | Expect::Query { .. }))?;
            out.extend_from_slice(&f.bytes);
        }
        _ => out.extend_from_slice(&f.bytes),
    }
    Ok(())
}

fn desync(f: &Frame, e: Option<&Expect>) -> SessionError {
    SessionError::Desync(format!("reply {:?} while expecting {:?}", f.tag as char, e.map(expect_name)))
}

fn expect_name(e: &Expect) -> &'static str {
    match e {
        Expect::Query { .. } => "Query",
        Expect::Parse { .. } => "Parse",
        Expect::Bind => "Bind",
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
fn check_fields(fields: &[backend::Field], masks: &[(usize, Arc<Mask>)], plan: &RolePlan) -> Result<(), SessionError> {
    for (i, field) in fields.iter().enumerate() {
        if field.table_oid == 0 {
            continue;
        }
        let Some(t) = plan.tables.get(&field.table_oid) else { continue };
        let Some(c) = t.columns.iter().find(|c| c.attnum == field.attnum) else {
            return Err(SessionError::Leak(format!("{}.{} attnum {} has no plan", t.schema, t.name, field.attnum)));
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
) -> Result<(), WireError> {
    backend::data_row_ranges(body, ranges)?;
    let start = backend::start_data_row(out, ranges.len() as u16);
    for (i, r) in ranges.iter().enumerate() {
        let value = r.map(|(a, b)| &body[a..b]);
        match (value, masks.iter().find(|(p, _)| *p == i)) {
            (Some(v), Some((_, m))) => match m.apply(v, format_of(formats, i), scratch) {
                Masked::Value => backend::put_value(out, Some(scratch)),
                Masked::Null => backend::put_value(out, None),
            },
            (v, _) => backend::put_value(out, v),
        }
    }
    backend::finish_data_row(out, start);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_text_array;

    #[test]
    fn text_arrays() {
        assert_eq!(parse_text_array("{public}"), vec!["public"]);
        assert_eq!(parse_text_array("{}"), Vec::<String>::new());
        assert_eq!(parse_text_array(r#"{"a b",public,"x\"y"}"#), vec!["a b", "public", "x\"y"]);
    }
}
