//! Session start: TLS negotiation, the StartupMessage, authentication, the upstream
//! connection, and the hand-over to the relay.
//!
//! Running during a deal (issue 5): locked-out users and addresses are refused before any
//! password is checked, failures are slowed down and counted ([`super::lockout`]); every
//! attempt is audited (`login` record) and counted; the login's validity window, then the
//! role's `max_sessions`, are checked after authentication (so neither is revealed to a
//! wrong password); the role's `statement_timeout` becomes a startup parameter of the
//! upstream connection, replacing any the client sent.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::lockout::Scope;
use super::scram::{md5_matches, ScramError, ScramServer, Verifier};
use super::{relay, SessionError, Shared};
use crate::audit::{LoginAttempt, SessionMeta};
use crate::metrics::LoginResult;
use crate::net::Stream;
use crate::rules::Login;
use crate::wire::backend::{self, Severity};
use crate::wire::frame::read_startup_packet;
use crate::wire::frontend::{self, PASSWORD};
use crate::wire::startup::StartupPacket;
use crate::wire::{FrameReader, WireError};

/// Startup parameters a restricted role may set. Others (`options`, `search_path`,
/// `role`, ...) would change how names resolve or who the statement runs as.
const SAFE_PARAMS: &[&str] = &[
    "user",
    "database",
    "application_name",
    "client_encoding",
    "DateStyle",
    "datestyle",
    "TimeZone",
    "timezone",
    "IntervalStyle",
    "intervalstyle",
    "extra_float_digits",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "geqo",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
];

/// Client encodings in which the bytes pgveil parses are the bytes the server parses.
/// Multi-byte encodings such as GBK or SJIS have trailing bytes that look like `\` or `'`
/// to a UTF-8 reader: a parser differential.
/// Names are compared as PostgreSQL does (`clean_encoding_name`): case-insensitive, with
/// every non-alphanumeric character dropped, so asyncpg's `'utf-8'` is UTF8.
fn safe_encoding(e: &str) -> bool {
    let e: String = e
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(e.as_str(), "UTF8" | "UNICODE" | "SQLASCII")
}

pub(super) async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> Result<(), SessionError> {
    let max = shared.config.max_message_size;
    let mut stream = Stream::Plain(tcp);
    // SSLRequest / GSSENCRequest may come first, then the StartupMessage.
    let (minor, params) = loop {
        let body = match read_startup_packet(&mut stream, max).await {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(()),
            Err(e) => {
                let msg = format!("invalid startup packet: {e}");
                fatal(&mut stream, "08P01", &msg, None).await;
                return Err(SessionError::Client(e));
            }
        };
        match StartupPacket::decode(&body) {
            Ok(StartupPacket::SslRequest) => match (&shared.tls, stream) {
                (Some(tls), Stream::Plain(mut tcp)) => {
                    tcp.write_all(b"S").await.map_err(SessionError::Tls)?;
                    let tls = tokio_rustls::TlsAcceptor::from(tls.clone())
                        .accept(tcp)
                        .await
                        .map_err(SessionError::Tls)?;
                    stream = Stream::Server(Box::new(tls));
                }
                (_, mut s) => {
                    s.write_all(b"N").await.map_err(SessionError::Tls)?;
                    stream = s;
                }
            },
            Ok(StartupPacket::GssEncRequest) => {
                stream.write_all(b"N").await.map_err(SessionError::Tls)?;
            }
            Ok(StartupPacket::Cancel { pid, secret }) => {
                if let Some(up) = shared.cancel_keys.get(&(pid, secret)).map(|k| *k) {
                    if let Err(e) = crate::upstream::cancel(&shared.upstream, up.0, up.1).await {
                        tracing::warn!(%peer, error = %e, "forwarding a cancel request failed");
                    }
                }
                return Ok(());
            }
            Ok(StartupPacket::Startup { minor, params }) => break (minor, params),
            Err(e) => {
                fatal(&mut stream, "08P01", &format!("{e}"), None).await;
                return Err(SessionError::Client(e));
            }
        }
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if shared.config.require_tls && !stream.is_tls() {
        let msg = "pgveil requires TLS: connect with sslmode=require";
        fatal(&mut stream, "28000", msg, None).await;
        return Err(SessionError::Refused(msg.into()));
    }
    if params
        .iter()
        .any(|(k, v)| k == "replication" && v != "false" && v != "0")
    {
        let msg = "replication connections are not supported by pgveil";
        fatal(&mut stream, "0A000", msg, None).await;
        return Err(SessionError::Refused(msg.into()));
    }
    let (r, mut w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r, max);
    let mut out = BytesMut::new();

    // Protocol 3.x with x > 0, or `_pq_.` options: say what we speak (3.0), as PostgreSQL does.
    let pq_options: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.as_str())
        .collect();
    if minor > 0 || !pq_options.is_empty() {
        backend::encode_negotiate_version(&mut out, 0, &pq_options);
    }
    let params: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !k.starts_with("_pq_."))
        .cloned()
        .collect();

    let Some(user) = get("user") else {
        return fail(
            &mut w,
            &mut out,
            "28000",
            "no PostgreSQL user name specified in startup packet",
            None,
        )
        .await;
    };
    let policy = shared.policy.load();
    let login = policy.rules.logins.get(&user).cloned();
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let client = peer.to_string();
    let role_of = login.as_ref().map(|l| l.role.clone());
    let agreement_of = login.as_ref().and_then(|l| l.agreement.clone());
    let audit_login = |result: LoginResult, reason: Option<&str>| {
        shared.metrics.login(result);
        let attempt = LoginAttempt {
            session,
            user: &user,
            role: role_of.as_deref(),
            agreement: agreement_of.as_deref(),
            client: &client,
        };
        let rec = shared.audit.login_record(&attempt, result.as_str(), reason);
        shared.audit.send(vec![rec]);
    };

    // Locked users and addresses are refused before any password is checked.
    if let Err(l) = shared.lockout.check(&user, peer.ip(), Instant::now()) {
        let what = match l.scope {
            Scope::User => "this user",
            Scope::Address => "this client address",
        };
        let minutes = l.remaining.as_secs().div_ceil(60).max(1);
        tracing::warn!(%peer, user = %user, scope = what, "login attempt while locked out");
        audit_login(LoginResult::Locked, Some(what));
        let msg = format!("too many failed login attempts for {what}; try again in {minutes} minute(s)");
        return fail(
            &mut w,
            &mut out,
            "28000",
            &msg,
            Some("ask the pgveil operator if the lock is unexpected"),
        )
        .await;
    }

    // Authenticate. Unknown users go through the same exchange as known ones.
    let auth = authenticate(&mut reader, &mut w, &mut out, &user, login.as_ref(), shared).await;
    let login = match (auth, login) {
        (Ok(()), Some(login)) => login,
        (auth, _) => {
            let reason = match auth {
                Err(e) => e.to_string(),
                Ok(()) => "unknown user".to_string(),
            };
            let f = shared.lockout.failed(&user, peer.ip(), Instant::now());
            tracing::warn!(%peer, user = %user, reason = %reason, failures = f.user_failures, "authentication failed");
            if let Some(scope) = f.locked {
                shared.metrics.lockouts.fetch_add(1, Ordering::Relaxed);
                let cfg = shared.lockout.config();
                tracing::warn!(%peer, user = %user, scope = ?scope, failures = cfg.failures, lock_secs = cfg.duration.as_secs(), "locked out after repeated failed logins");
            }
            audit_login(LoginResult::Failed, Some(&reason));
            tokio::time::sleep(f.delay).await;
            let msg = format!("password authentication failed for user \"{user}\"");
            return fail(&mut w, &mut out, "28P01", &msg, None).await;
        }
    };
    shared.lockout.succeeded(&user);
    if let Err(e) = login.check_window(chrono::Utc::now()) {
        tracing::warn!(%peer, user = %user, reason = %e, "login outside its validity window");
        let msg = e.to_string();
        audit_login(LoginResult::Expired, Some(&msg));
        return fail(
            &mut w,
            &mut out,
            "28000",
            &msg,
            Some("ask the data owner to renew the agreement"),
        )
        .await;
    }
    let Some(plan) = policy.plans.get(&login.role).cloned() else {
        let msg = format!("role {:?} of login {user:?} has no plan", login.role);
        audit_login(LoginResult::Refused, Some(&msg));
        return fail(&mut w, &mut out, "28000", &msg, None).await;
    };
    drop(policy);

    // Per-role session limit: counted from here to the end of the session.
    let _role_slot = match RoleSlot::take(shared, &plan.role, plan.limits.max_sessions) {
        Some(slot) => slot,
        None => {
            shared.metrics.session_limit_hits.fetch_add(1, Ordering::Relaxed);
            let max = plan.limits.max_sessions.unwrap_or(0);
            let msg = format!(
                "too many connections for role \"{}\" (its limit is {max})",
                plan.role
            );
            tracing::warn!(%peer, user = %user, role = %plan.role, max, "session limit reached");
            audit_login(LoginResult::Refused, Some(&msg));
            return fail(
                &mut w,
                &mut out,
                "53300",
                &msg,
                Some("close another session of this role first"),
            )
            .await;
        }
    };

    if let Some(db) = get("database") {
        if db != shared.upstream.dbname {
            let msg = format!(
                "database \"{db}\" is not served by this pgveil (it serves \"{}\")",
                shared.upstream.dbname
            );
            return fail(&mut w, &mut out, "3D000", &msg, None).await;
        }
    }
    if !plan.unrestricted {
        for (k, v) in &params {
            if !SAFE_PARAMS.contains(&k.as_str()) {
                let msg = format!("startup parameter \"{k}\" is not allowed for role {}", plan.role);
                let hint = "restricted roles may set application_name, client_encoding, DateStyle, TimeZone, IntervalStyle and extra_float_digits";
                return fail(&mut w, &mut out, "42501", &msg, Some(hint)).await;
            }
            if k == "client_encoding" && !safe_encoding(v) {
                let msg = format!("client_encoding \"{v}\" is not allowed for role {}", plan.role);
                return fail(&mut w, &mut out, "42501", &msg, Some("use UTF8")).await;
            }
        }
    }

    let cfg = &shared.upstream;
    let mut forwarded: Vec<(String, String)> = params
        .into_iter()
        .filter(|(k, _)| k != "user" && k != "database")
        .collect();
    // The role's statement timeout is a startup parameter of the upstream connection; the
    // client's own value is dropped, and restricted roles cannot SET it later (sql::settings).
    if let Some(ms) = plan.limits.statement_timeout_ms {
        forwarded.retain(|(k, _)| !k.eq_ignore_ascii_case("statement_timeout"));
        forwarded.push(("statement_timeout".to_string(), ms.to_string()));
    }
    let mut upstream =
        match crate::upstream::connect(cfg, &cfg.user, cfg.password.as_deref(), &forwarded, max).await {
            Ok(u) => u,
            Err(e) => {
                shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
                audit_login(LoginResult::Refused, Some("upstream connection failed"));
                tracing::warn!(%peer, user = %user, error = %e, "upstream connection failed");
                let (code, msg) = match &e {
                    crate::upstream::UpstreamError::Refused(f) => {
                        (f.code().to_string(), format!("upstream refused: {}", f.message()))
                    }
                    other => (
                        "08006".to_string(),
                        format!("pgveil cannot reach the database: {other}"),
                    ),
                };
                return fail(&mut w, &mut out, &code, &msg, None).await;
            }
        };

    // pgveil parses with standard_conforming_strings on; an upstream that reads
    // backslashes in strings differently would see other statements than pgveil does.
    if !plan.unrestricted {
        let scs = upstream
            .params
            .iter()
            .find(|(k, _)| k == "standard_conforming_strings");
        if scs.map(|(_, v)| v.as_str()) != Some("on") {
            let msg = "the upstream database has standard_conforming_strings off: pgveil refuses restricted roles there";
            let hint = "set standard_conforming_strings = on for the upstream account (ALTER ROLE ... SET)";
            return fail(&mut w, &mut out, "0A000", msg, Some(hint)).await;
        }
    }
    let search_path = if plan.unrestricted {
        Vec::new()
    } else {
        match relay::fetch_search_path(&mut upstream).await {
            Ok(p) => p,
            Err(e) => {
                return fail(
                    &mut w,
                    &mut out,
                    "08006",
                    &format!("pgveil cannot read the search path: {e}"),
                    None,
                )
                .await
            }
        }
    };

    // The client gets its own cancel key, mapped to the upstream's for this session.
    let key: (i32, i32) = loop {
        let k = (rand::random::<i32>() & 0x7fff_ffff, rand::random::<i32>());
        if !shared.cancel_keys.contains_key(&k) {
            break k;
        }
    };
    shared.cancel_keys.insert(key, upstream.backend_key);
    let _key_guard = KeyGuard {
        shared: shared.clone(),
        key,
    };

    backend::encode_auth(&mut out, 0, &[]);
    for (k, v) in &upstream.params {
        backend::encode_parameter_status(&mut out, k, v);
    }
    backend::encode_backend_key(&mut out, key.0, key.1);
    backend::encode_ready(&mut out, b'I');
    w.write_all(&out)
        .await
        .map_err(|e| SessionError::Client(e.into()))?;
    tracing::info!(%peer, session, user = %user, role = %plan.role, upstream_tls = upstream.tls, "session started");
    audit_login(LoginResult::Ok, None);
    shared.metrics.sessions_total.fetch_add(1, Ordering::Relaxed);
    shared.metrics.sessions_active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(shared.clone());

    let meta = SessionMeta {
        session,
        user: user.clone(),
        role: plan.role.clone(),
        agreement: login.agreement.clone(),
        client,
    };
    let ctx = relay::SessionInfo {
        user,
        plan: plan.clone(),
        search_path,
        peer,
        meta,
    };
    let result = if plan.unrestricted {
        relay::unrestricted(reader, w, upstream, shared, &ctx).await
    } else {
        relay::restricted(reader, w, upstream, shared, &ctx).await
    };
    let reason = match &result {
        Ok(()) => "client closed the session".to_string(),
        Err(e) => e.to_string(),
    };
    shared
        .audit
        .send(vec![shared.audit.session_end_record(&ctx.meta, &reason)]);
    result
}

/// Counts the session in `pgveil_sessions_active` while it lives.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.metrics.sessions_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One of a role's `max_sessions` slots, given back when the session ends.
struct RoleSlot {
    shared: Arc<Shared>,
    role: String,
}

impl RoleSlot {
    /// Takes a slot, or None when the role already has `max` sessions.
    fn take(shared: &Arc<Shared>, role: &str, max: Option<u32>) -> Option<RoleSlot> {
        let mut n = shared.role_sessions.entry(role.to_string()).or_insert(0);
        if max.is_some_and(|m| *n >= m) {
            return None;
        }
        *n += 1;
        Some(RoleSlot {
            shared: shared.clone(),
            role: role.to_string(),
        })
    }
}

impl Drop for RoleSlot {
    fn drop(&mut self) {
        if let Some(mut n) = self.shared.role_sessions.get_mut(&self.role) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Removes the session's cancel key when it ends, however it ends.
struct KeyGuard {
    shared: Arc<Shared>,
    key: (i32, i32),
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.shared.cancel_keys.remove(&self.key);
    }
}

/// Why authentication failed (logged, never told to the client beyond 28P01).
#[derive(Debug, thiserror::Error)]
enum AuthError {
    #[error("{0}")]
    Scram(#[from] ScramError),
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("unknown user")]
    UnknownUser,
    #[error("client sent {0:?} where a password message was expected")]
    Unexpected(char),
    #[error("wrong mechanism {0:?}")]
    Mechanism(String),
    #[error("login has neither a SCRAM verifier nor a legacy MD5 hash")]
    NoCredential,
    #[error("wrong MD5 password")]
    Md5,
}

async fn read_password<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> Result<crate::wire::Frame, AuthError> {
    let f = reader.next().await?.ok_or(WireError::UnexpectedEof)?;
    if f.tag != PASSWORD {
        return Err(AuthError::Unexpected(f.tag as char));
    }
    Ok(f)
}

async fn authenticate<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    reader: &mut FrameReader<R>,
    w: &mut W,
    out: &mut BytesMut,
    user: &str,
    login: Option<&Login>,
    shared: &Shared,
) -> Result<(), AuthError> {
    // MD5 only for logins explicitly marked legacy and without a SCRAM verifier.
    if let Some(l) = login {
        if l.scram_verifier.is_none() {
            let (Some(stored), true) = (&l.md5, l.legacy_md5) else {
                return Err(AuthError::NoCredential);
            };
            let salt: [u8; 4] = rand::random();
            backend::encode_auth(out, 5, &salt);
            send(w, out).await?;
            let f = read_password(reader).await?;
            let resp = frontend::decode_password(&f)?;
            return if md5_matches(stored, salt, resp) {
                Ok(())
            } else {
                Err(AuthError::Md5)
            };
        }
    }
    let verifier = match login.and_then(|l| l.scram_verifier.as_deref()) {
        Some(v) => Verifier::parse(v)?,
        None => Verifier::decoy(user, &shared.decoy_secret),
    };
    backend::encode_auth(out, 10, b"SCRAM-SHA-256\0\0");
    send(w, out).await?;
    let f = read_password(reader).await?;
    let (mech, data) = frontend::decode_sasl_initial(&f)?;
    if mech != "SCRAM-SHA-256" {
        return Err(AuthError::Mechanism(mech.to_string()));
    }
    let (server, first) = ScramServer::start(verifier, data.unwrap_or_default())?;
    backend::encode_auth(out, 11, first.as_bytes());
    send(w, out).await?;
    let f = read_password(reader).await?;
    let fin = server.finish(f.body())?;
    if login.is_none() {
        return Err(AuthError::UnknownUser);
    }
    backend::encode_auth(out, 12, fin.as_bytes());
    send(w, out).await?;
    Ok(())
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, out: &mut BytesMut) -> Result<(), AuthError> {
    let data = out.split();
    w.write_all(&data).await.map_err(|e| AuthError::Wire(e.into()))
}

/// Sends a FATAL ErrorResponse (best effort: the peer may be gone).
async fn fatal<W: AsyncWrite + Unpin>(w: &mut W, code: &str, msg: &str, hint: Option<&str>) {
    let mut out = BytesMut::new();
    backend::encode_error(&mut out, Severity::Fatal, code, msg, hint);
    let _ = w.write_all(&out).await;
    let _ = w.flush().await;
}

/// Ends the startup with a FATAL error, flushing what `out` already holds.
async fn fail<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut BytesMut,
    code: &str,
    msg: &str,
    hint: Option<&str>,
) -> Result<(), SessionError> {
    backend::encode_error(out, Severity::Fatal, code, msg, hint);
    let _ = w.write_all(out).await;
    let _ = w.shutdown().await;
    Err(SessionError::Refused(msg.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodings_compare_like_postgresql() {
        for ok in ["UTF8", "utf-8", "'utf-8'", "Unicode", "SQL_ASCII"] {
            assert!(super::safe_encoding(ok), "{ok}");
        }
        for bad in ["GBK", "SJIS", "BIG5", "LATIN1", ""] {
            assert!(!super::safe_encoding(bad), "{bad}");
        }
    }
}
