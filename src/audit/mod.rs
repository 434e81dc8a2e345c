//! The audit trail: who connected, and what each statement was, how pgveil decided it and
//! what it returned. JSON Lines, append-only, hash-chained (`pgveil audit verify`).
//!
//! Records (one JSON object per line; `seq` and `prev` are added by the writer):
//! - `login`: every login attempt, with `result` ok / failed / locked / expired / refused;
//! - `statement`: every Query or Parse, written **before** the statement leaves pgveil;
//! - `statement_end`: rows, bytes, duration and error SQLSTATE of each execution;
//! - `session_end`: when a session ends, and why;
//! - `audit_gap`: written first after the trail recovers from a write failure, with the
//!   number of records that could not be written.
//!
//! Fail closed: for a restricted role, a statement is forwarded only after the writer has
//! acknowledged its `statement` record (group commit: the front pump awaits one
//! acknowledgement per batch of messages, the writer writes everything pending in one
//! `write`). When the trail cannot be written, statements of restricted roles are refused
//! with 58030 until a write succeeds again; unrestricted roles (the seller's own staff)
//! keep working and every failure is logged at error level and counted.
//!
//! Invariants: the trail holds statement texts (literals replaced with
//! `--audit-redact-literals`) and decisions, never a cell value or a secret; tracing logs
//! never hold a restricted role's statement text; `seq` increases by one per record across
//! rotated files and `prev` is the SHA-256 of the previous record's line.
mod verify;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::metrics::Metrics;
pub use verify::{verify_files, Broken, VerifyReport};

/// `--audit-*` settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The active file; rotated files are `PATH.<UTC time>`.
    pub path: PathBuf,
    /// Rotate when the active file would grow past this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate when the UTC day changes.
    pub rotate_daily: bool,
    /// Replace literals in statement texts with `$n` placeholders.
    pub redact_literals: bool,
    /// `fdatasync` after every group write (survives power loss, not only a crash).
    pub fsync: bool,
}

impl AuditConfig {
    pub fn new(path: impl Into<PathBuf>) -> AuditConfig {
        AuditConfig {
            path: path.into(),
            max_bytes: None,
            rotate_daily: false,
            redact_literals: false,
            fsync: true,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("audit trail unavailable: {0}")]
    Write(String),
    #[error("audit writer has stopped")]
    Stopped,
}

/// SQLSTATE and message a restricted role's statement gets while the trail is down.
pub const UNAVAILABLE_SQLSTATE: &str = "58030";
pub const UNAVAILABLE_MESSAGE: &str =
    "audit trail unavailable; statements of restricted roles are refused until it is restored";

/// Longest statement text recorded; longer texts are cut and their length and SHA-256 noted.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// A batch of record bodies for the writer, with an optional acknowledgement.
struct Job {
    bodies: Vec<String>,
    ack: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

/// The handle sessions use. Cheap to share; a disabled trail accepts and drops everything.
pub struct Audit {
    tx: Option<std::sync::mpsc::Sender<Job>>,
    healthy: Arc<AtomicBool>,
    redact: bool,
}

/// Who a session is, as the audit trail names it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionMeta {
    pub session: u64,
    pub user: String,
    pub role: String,
    pub agreement: Option<String>,
    pub client: String,
}

/// Who is trying to log in, for `login` records.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    pub session: u64,
    pub user: &'a str,
    /// The login's role and agreement, when the user name is a known login.
    pub role: Option<&'a str>,
    pub agreement: Option<&'a str>,
    pub client: &'a str,
}

/// How a statement was decided, for its `statement` record.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'a> {
    /// Forwarded as written.
    Passed,
    /// Rewritten and/or masked by pgveil.
    Masked,
    /// Refused: SQLSTATE and reason.
    Refused { sqlstate: &'a str, reason: &'a str },
    /// An unrestricted role's statement (not analysed).
    Unrestricted,
}

#[derive(Serialize)]
struct LoginRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    session: u64,
    user: &'a str,
    role: Option<&'a str>,
    agreement: Option<&'a str>,
    client: &'a str,
    result: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct StatementRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    #[serde(flatten)]
    meta: &'a SessionMeta,
    stmt: u64,
    sql: &'a str,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sqlstate: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    tables: &'a [String],
    masked_columns: &'a [String],
}

#[derive(Serialize)]
struct EndRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    session: u64,
    user: &'a str,
    stmt: u64,
    rows: u64,
    bytes: u64,
    duration_ms: f64,
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct SessionEndRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    session: u64,
    user: &'a str,
    reason: &'a str,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn to_body<T: Serialize>(r: &T) -> String {
    // Serialising these plain structs cannot fail (string keys, no maps with other keys).
    serde_json::to_string(r).unwrap_or_else(|_| String::from("{\"type\":\"unserialisable\"}"))
}

impl Audit {
    /// A trail that records nothing (no `--audit-log`).
    pub fn disabled() -> Audit {
        Audit {
            tx: None,
            healthy: Arc::new(AtomicBool::new(true)),
            redact: false,
        }
    }

    /// Opens (or continues) the trail at `cfg.path` and starts its writer thread.
    pub fn open(cfg: &AuditConfig, metrics: Arc<Metrics>) -> Result<Audit, AuditError> {
        let healthy = Arc::new(AtomicBool::new(true));
        let w = writer::Writer::open(cfg, healthy.clone(), metrics)?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("pgveil-audit".into())
            .spawn(move || w.run(rx))
            .map_err(|e| AuditError::Open {
                path: cfg.path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(Audit {
            tx: Some(tx),
            healthy,
            redact: cfg.redact_literals,
        })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// False after a failed write, until a write succeeds again.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Queues records without waiting (login, ends, unrestricted statements).
    pub fn send(&self, bodies: Vec<String>) {
        if bodies.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            if tx.send(Job { bodies, ack: None }).is_err() {
                self.healthy.store(false, Ordering::Release);
                tracing::error!("audit writer has stopped; records are being lost");
            }
        }
    }

    /// Writes records and waits until they are written (group commit). `Ok` when the trail
    /// is disabled.
    pub async fn commit(&self, bodies: Vec<String>) -> Result<(), AuditError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        if bodies.is_empty() {
            return Ok(());
        }
        let (ack, rx) = tokio::sync::oneshot::channel();
        tx.send(Job {
            bodies,
            ack: Some(ack),
        })
        .map_err(|_| AuditError::Stopped)?;
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(AuditError::Write(e)),
            Ok(Err(_)) => Err(AuditError::Stopped),
            Err(_) => Err(AuditError::Write(
                "the audit writer did not answer within 30 s".into(),
            )),
        }
    }

    /// A `login` record.
    pub fn login_record(&self, attempt: &LoginAttempt<'_>, result: &str, reason: Option<&str>) -> String {
        to_body(&LoginRecord {
            kind: "login",
            time: now(),
            session: attempt.session,
            user: attempt.user,
            role: attempt.role,
            agreement: attempt.agreement,
            client: attempt.client,
            result,
            reason,
        })
    }

    /// A `statement` record; the text is cut to [`MAX_SQL_BYTES`] and, with
    /// `--audit-redact-literals`, has its literals replaced.
    pub fn statement_record(
        &self,
        meta: &SessionMeta,
        stmt: u64,
        sql: &str,
        verdict: Verdict<'_>,
        tables: &[String],
        masked_columns: &[String],
    ) -> String {
        let text = self.statement_text(sql);
        let (decision, sqlstate, reason) = match verdict {
            Verdict::Passed => ("passed", None, None),
            Verdict::Masked => ("masked", None, None),
            Verdict::Refused { sqlstate, reason } => ("refused", Some(sqlstate), Some(reason)),
            Verdict::Unrestricted => ("unrestricted", None, None),
        };
        to_body(&StatementRecord {
            kind: "statement",
            time: now(),
            meta,
            stmt,
            sql: &text,
            decision,
            sqlstate,
            reason,
            tables,
            masked_columns,
        })
    }

    /// A `statement_end` record.
    pub fn end_record(
        &self,
        meta: &SessionMeta,
        stmt: u64,
        rows: u64,
        bytes: u64,
        duration: Duration,
        error: Option<&str>,
    ) -> String {
        to_body(&EndRecord {
            kind: "statement_end",
            time: now(),
            session: meta.session,
            user: &meta.user,
            stmt,
            rows,
            bytes,
            duration_ms: (duration.as_secs_f64() * 1e6).round() / 1e3,
            error,
        })
    }

    /// A `session_end` record.
    pub fn session_end_record(&self, meta: &SessionMeta, reason: &str) -> String {
        to_body(&SessionEndRecord {
            kind: "session_end",
            time: now(),
            session: meta.session,
            user: &meta.user,
            reason,
        })
    }

    fn statement_text(&self, sql: &str) -> String {
        let text = if self.redact {
            match pg_query::normalize(sql) {
                Ok(t) => t,
                Err(_) => {
                    return format!(
                        "<{} bytes that do not parse; withheld (--audit-redact-literals)>",
                        sql.len()
                    )
                }
            }
        } else {
            sql.to_string()
        };
        if text.len() <= MAX_SQL_BYTES {
            return text;
        }
        let mut end = MAX_SQL_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let digest = verify::sha256_hex(sql.as_bytes());
        format!(
            "{}… [cut: {} bytes in all, sha256 {digest}]",
            &text[..end],
            sql.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SessionMeta {
        SessionMeta {
            session: 7,
            user: "ana".into(),
            role: "analyst".into(),
            agreement: Some("DD-1".into()),
            client: "10.0.0.1:5000".into(),
        }
    }

    #[test]
    fn statement_records_carry_the_decision_and_redact_literals() {
        let a = Audit {
            tx: None,
            healthy: Arc::new(AtomicBool::new(true)),
            redact: true,
        };
        let body = a.statement_record(
            &meta(),
            3,
            "SELECT * FROM t WHERE phone = '13812345678'",
            Verdict::Refused {
                sqlstate: "42501",
                reason: "no",
            },
            &["public.t".into()],
            &[],
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "statement");
        assert_eq!(v["decision"], "refused");
        assert_eq!(v["sqlstate"], "42501");
        assert_eq!(v["agreement"], "DD-1");
        assert_eq!(v["sql"], "SELECT * FROM t WHERE phone = $1");
        assert!(!body.contains("13812345678"));
        assert!(body.starts_with("{\"type\":\"statement\""));
        let bad = a.statement_record(&meta(), 4, "SELEC '13812345678'", Verdict::Passed, &[], &[]);
        assert!(!bad.contains("13812345678"), "{bad}");
    }

    #[test]
    fn long_statements_are_cut_with_their_digest() {
        let a = Audit::disabled();
        let sql = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES + 10));
        let body = a.statement_record(&meta(), 1, &sql, Verdict::Passed, &[], &[]);
        assert!(body.len() < MAX_SQL_BYTES + 1000);
        assert!(body.contains(&verify::sha256_hex(sql.as_bytes())));
    }
}
