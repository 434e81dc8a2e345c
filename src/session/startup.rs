//! Session start: TLS negotiation, the StartupMessage, authentication, the upstream
//! connection, and the hand-over to the relay.
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::scram::{md5_matches, ScramError, ScramServer, Verifier};
use super::{relay, SessionError, Shared};
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
fn safe_encoding(e: &str) -> bool {
    let e = e.to_ascii_uppercase().replace(['-', '_'], "");
    matches!(e.as_str(), "UTF8" | "UNICODE" | "SQLASCII")
}

pub(super) async fn serve(tcp: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) -> Result<(), SessionError> {
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
                    let tls = tokio_rustls::TlsAcceptor::from(tls.clone()).accept(tcp).await.map_err(SessionError::Tls)?;
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
    if params.iter().any(|(k, v)| k == "replication" && v != "false" && v != "0") {
        let msg = "replication connections are not supported by pgveil";
        fatal(&mut stream, "0A000", msg, None).await;
        return Err(SessionError::Refused(msg.into()));
    }
    let (r, mut w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r, max);
    let mut out = BytesMut::new();

    // Protocol 3.x with x > 0, or `_pq_.` options: say what we speak (3.0), as PostgreSQL does.
    let pq_options: Vec<&str> = params.iter().filter(|(k, _)| k.starts_with("_pq_.")).map(|(k, _)| k.as_str()).collect();
    if minor > 0 || !pq_options.is_empty() {
        backend::encode_negotiate_version(&mut out, 0, &pq_options);
    }
    let params: Vec<(String, String)> = params.iter().filter(|(k, _)| !k.starts_with("_pq_.")).cloned().collect();

    let Some(user) = get("user") else {
        return fail(&mut w, &mut out, "28000", "no PostgreSQL user name specified in startup packet", None).await;
    };
    let policy = shared.policy.load();
    let login = policy.rules.logins.get(&user).cloned();

    // Authenticate. Unknown users go through the same exchange as known ones.
    if let Err(e) = authenticate(&mut reader, &mut w, &mut out, &user, login.as_ref(), shared).await {
        tracing::warn!(%peer, user = %user, reason = %e, "authentication failed");
        let msg = format!("password authentication failed for user \"{user}\"");
        return fail(&mut w, &mut out, "28P01", &msg, None).await;
    }
    let Some(login) = login else {
        return fail(&mut w, &mut out, "28P01", &format!("password authentication failed for user \"{user}\""), None).await;
    };
    if let Err(e) = login.check_window(chrono::Utc::now()) {
        tracing::warn!(%peer, user = %user, reason = %e, "login outside its validity window");
        return fail(&mut w, &mut out, "28000", &e.to_string(), Some("ask the data owner to renew the agreement")).await;
    }
    let Some(plan) = policy.plans.get(&login.role).cloned() else {
        let msg = format!("role {:?} of login {user:?} has no plan", login.role);
        return fail(&mut w, &mut out, "28000", &msg, None).await;
    };
    drop(policy);

    if let Some(db) = get("database") {
        if db != shared.upstream.dbname {
            let msg = format!("database \"{db}\" is not served by this pgveil (it serves \"{}\")", shared.upstream.dbname);
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
    let forwarded: Vec<(String, String)> = params.into_iter().filter(|(k, _)| k != "user" && k != "database").collect();
    let mut upstream = match crate::upstream::connect(cfg, &cfg.user, cfg.password.as_deref(), &forwarded, max).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(%peer, user = %user, error = %e, "upstream connection failed");
            let (code, msg) = match &e {
                crate::upstream::UpstreamError::Refused(f) => (f.code().to_string(), format!("upstream refused: {}", f.message())),
                other => ("08006".to_string(), format!("pgveil cannot reach the database: {other}")),
            };
            return fail(&mut w, &mut out, &code, &msg, None).await;
        }
    };

    let search_path = if plan.unrestricted {
        Vec::new()
    } else {
        match relay::fetch_search_path(&mut upstream).await {
            Ok(p) => p,
            Err(e) => return fail(&mut w, &mut out, "08006", &format!("pgveil cannot read the search path: {e}"), None).await,
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
    let _key_guard = KeyGuard { shared: shared.clone(), key };

    backend::encode_auth(&mut out, 0, &[]);
    for (k, v) in &upstream.params {
        backend::encode_parameter_status(&mut out, k, v);
    }
    backend::encode_backend_key(&mut out, key.0, key.1);
    backend::encode_ready(&mut out, b'I');
    w.write_all(&out).await.map_err(|e| SessionError::Client(e.into()))?;
    tracing::info!(%peer, user = %user, role = %plan.role, upstream_tls = upstream.tls, "session started");

    let ctx = relay::SessionInfo { user, login, plan: plan.clone(), search_path, peer };
    if plan.unrestricted {
        relay::unrestricted(reader, w, upstream, shared).await
    } else {
        relay::restricted(reader, w, upstream, shared, ctx).await
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

async fn read_password<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>) -> Result<crate::wire::Frame, AuthError> {
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
            let (Some(stored), true) = (&l.md5, l.legacy_md5) else { return Err(AuthError::NoCredential) };
            let salt: [u8; 4] = rand::random();
            backend::encode_auth(out, 5, &salt);
            send(w, out).await?;
            let f = read_password(reader).await?;
            let resp = frontend::decode_password(&f)?;
            return if md5_matches(stored, salt, resp) { Ok(()) } else { Err(AuthError::Md5) };
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
