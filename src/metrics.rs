//! Operational metrics in the Prometheus text format, and the tiny HTTP server that serves
//! them with `/healthz` and `/readyz` (`pgveil serve --metrics ADDR`).
//!
//! Hand-rendered over atomics rather than the `metrics` crates: the set is small and fixed,
//! the hot path is one relaxed `fetch_add` (sessions add their row and byte counts once per
//! batch, not per row), and nothing here allocates per statement except the labelled
//! refusal counter, which only moves on refusals.
//!
//! Invariants: a metric never carries a statement text, a user name or a cell value (labels
//! are fixed words and SQLSTATEs only); the HTTP server answers GET only, reads at most 8 KiB
//! of a request and never blocks the proxy (its own task, a 5 s deadline per connection).
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::session::Shared;

/// How a statement was decided (the `decision` label of `pgveil_statements_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Analysed and forwarded unchanged.
    Passed,
    /// Analysed and rewritten (masking subqueries) or masked by pgveil itself.
    Masked,
    /// Refused by pgveil.
    Refused,
    /// An unrestricted role: forwarded without analysis.
    Unrestricted,
}

impl Decision {
    const ALL: [Decision; 4] = [
        Decision::Passed,
        Decision::Masked,
        Decision::Refused,
        Decision::Unrestricted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Passed => "passed",
            Decision::Masked => "masked",
            Decision::Refused => "refused",
            Decision::Unrestricted => "unrestricted",
        }
    }
}

/// Outcome of a login attempt (the `result` label of `pgveil_logins_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Ok,
    Failed,
    Locked,
    Expired,
    Refused,
}

impl LoginResult {
    const ALL: [LoginResult; 5] = [
        LoginResult::Ok,
        LoginResult::Failed,
        LoginResult::Locked,
        LoginResult::Expired,
        LoginResult::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::Failed => "failed",
            LoginResult::Locked => "locked",
            LoginResult::Expired => "expired",
            LoginResult::Refused => "refused",
        }
    }
}

/// Upper bounds (seconds) of the statement latency histogram buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A cumulative histogram over fixed buckets.
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds (integer, so an atomic add suffices).
    sum_us: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Non-cumulative per bucket here; rendering accumulates.
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// Every metric of one server. Shared by all sessions through [`Shared`].
pub struct Metrics {
    pub sessions_active: AtomicI64,
    pub sessions_total: AtomicU64,
    logins: [AtomicU64; LoginResult::ALL.len()],
    statements: [AtomicU64; Decision::ALL.len()],
    /// Refusals by SQLSTATE (pgveil's own refusals, including row limits and audit outages).
    refusals: Mutex<BTreeMap<String, u64>>,
    pub rows_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Values masked by pgveil itself (keyed masks applied to DataRows).
    pub masked_values: AtomicU64,
    /// Statements forwarded rewritten (the database computes the masks).
    pub statements_rewritten: AtomicU64,
    latency: Histogram,
    pub upstream_errors: AtomicU64,
    pub row_limit_hits: AtomicU64,
    pub session_limit_hits: AtomicU64,
    pub sessions_revoked: AtomicU64,
    pub lockouts: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Unix time of the policy in force (seconds).
    pub policy_loaded_at: AtomicU64,
    pub audit_records: AtomicU64,
    pub audit_failures: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            sessions_active: AtomicI64::new(0),
            sessions_total: AtomicU64::new(0),
            logins: std::array::from_fn(|_| AtomicU64::new(0)),
            statements: std::array::from_fn(|_| AtomicU64::new(0)),
            refusals: Mutex::new(BTreeMap::new()),
            rows_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            masked_values: AtomicU64::new(0),
            statements_rewritten: AtomicU64::new(0),
            latency: Histogram::new(),
            upstream_errors: AtomicU64::new(0),
            row_limit_hits: AtomicU64::new(0),
            session_limit_hits: AtomicU64::new(0),
            sessions_revoked: AtomicU64::new(0),
            lockouts: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            policy_loaded_at: AtomicU64::new(unix_now()),
            audit_records: AtomicU64::new(0),
            audit_failures: AtomicU64::new(0),
        }
    }

    pub fn login(&self, r: LoginResult) {
        self.logins[r as usize].fetch_add(1, Relaxed);
    }

    pub fn statement(&self, d: Decision) {
        self.statements[d as usize].fetch_add(1, Relaxed);
    }

    /// Counts a refused statement under its SQLSTATE (and as a `refused` decision).
    pub fn refusal(&self, sqlstate: &str) {
        self.statement(Decision::Refused);
        self.refusal_code(sqlstate);
    }

    /// Counts a refusal under its SQLSTATE only: for statements already counted under
    /// another decision and stopped later (row limit, audit failure, stale prepared statement).
    pub fn refusal_code(&self, sqlstate: &str) {
        let mut m = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(sqlstate.to_string()).or_insert(0) += 1;
    }

    pub fn observe_latency(&self, d: Duration) {
        self.latency.observe(d);
    }

    /// Current value of a statement-decision counter (tests and `/metrics`).
    pub fn statements_of(&self, d: Decision) -> u64 {
        self.statements[d as usize].load(Relaxed)
    }

    /// Renders every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = write!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n");
        };
        let _ = write!(
            s,
            "# HELP pgveil_sessions_active Client sessions open now.\n# TYPE pgveil_sessions_active gauge\npgveil_sessions_active {}\n",
            self.sessions_active.load(Relaxed)
        );
        counter(
            &mut s,
            "pgveil_sessions_total",
            "Client sessions started (authenticated).",
            self.sessions_total.load(Relaxed),
        );
        s.push_str(
            "# HELP pgveil_logins_total Login attempts by result.\n# TYPE pgveil_logins_total counter\n",
        );
        for r in LoginResult::ALL {
            let _ = writeln!(
                s,
                "pgveil_logins_total{{result=\"{}\"}} {}",
                r.as_str(),
                self.logins[r as usize].load(Relaxed)
            );
        }
        s.push_str("# HELP pgveil_statements_total Statements (Query or Parse messages) by decision.\n# TYPE pgveil_statements_total counter\n");
        for d in Decision::ALL {
            let _ = writeln!(
                s,
                "pgveil_statements_total{{decision=\"{}\"}} {}",
                d.as_str(),
                self.statements[d as usize].load(Relaxed)
            );
        }
        s.push_str("# HELP pgveil_refusals_total Statements refused by pgveil, by SQLSTATE.\n# TYPE pgveil_refusals_total counter\n");
        {
            let m = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
            for (code, n) in m.iter() {
                let _ = writeln!(s, "pgveil_refusals_total{{sqlstate=\"{code}\"}} {n}");
            }
        }
        counter(
            &mut s,
            "pgveil_rows_out_total",
            "Data rows sent to clients.",
            self.rows_out.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_bytes_out_total",
            "Bytes sent to clients after startup.",
            self.bytes_out.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_masked_values_total",
            "Values masked by pgveil itself (keyed masks).",
            self.masked_values.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_statements_rewritten_total",
            "Statements forwarded rewritten so that the database computes on masked values.",
            self.statements_rewritten.load(Relaxed),
        );
        s.push_str("# HELP pgveil_statement_duration_seconds Time from pgveil receiving a statement (restricted roles) to its completion.\n# TYPE pgveil_statement_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.latency.buckets[i].load(Relaxed);
            let _ = writeln!(
                s,
                "pgveil_statement_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.latency.count.load(Relaxed);
        let _ = writeln!(
            s,
            "pgveil_statement_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "pgveil_statement_duration_seconds_sum {}",
            self.latency.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "pgveil_statement_duration_seconds_count {count}");
        counter(
            &mut s,
            "pgveil_upstream_errors_total",
            "Upstream connections that failed or broke.",
            self.upstream_errors.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_row_limit_exceeded_total",
            "Statements ended by a role's max_rows.",
            self.row_limit_hits.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_session_limit_refusals_total",
            "Logins refused by a role's max_sessions.",
            self.session_limit_hits.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_sessions_revoked_total",
            "Open sessions ended because their login was revoked or expired.",
            self.sessions_revoked.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_lockouts_total",
            "Users or client addresses locked out after failed logins.",
            self.lockouts.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_rules_reloads_total",
            "Successful policy reloads (rules and catalog).",
            self.reloads.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_rules_reload_failures_total",
            "Failed policy reloads (the previous policy stayed in force).",
            self.reload_failures.load(Relaxed),
        );
        let _ = write!(
            s,
            "# HELP pgveil_policy_loaded_timestamp_seconds When the policy in force was loaded.\n# TYPE pgveil_policy_loaded_timestamp_seconds gauge\npgveil_policy_loaded_timestamp_seconds {}\n",
            self.policy_loaded_at.load(Relaxed)
        );
        counter(
            &mut s,
            "pgveil_audit_records_total",
            "Audit records written.",
            self.audit_records.load(Relaxed),
        );
        counter(
            &mut s,
            "pgveil_audit_failures_total",
            "Audit write failures.",
            self.audit_failures.load(Relaxed),
        );
        s
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Binds the metrics address (start-up fails early and clearly when it is taken).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (mut tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(&mut tcp, &shared)).await;
            let _ = tcp.shutdown().await;
        });
    }
}

/// Reads one request (up to the end of its headers, at most 8 KiB) and answers it.
async fn answer(tcp: &mut tokio::net::TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    while n < buf.len() {
        let got = tcp.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || buf[..n].windows(2).any(|w| w == b"\n\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = if method != "GET" && method != "HEAD" {
        ("405 Method Not Allowed", "text/plain", "GET only\n".to_string())
    } else {
        match path {
            "/metrics" => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                shared.metrics.render(),
            ),
            "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
            "/readyz" => match ready(shared).await {
                Ok(()) => ("200 OK", "text/plain", "ready\n".to_string()),
                Err(why) => (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("not ready: {why}\n"),
                ),
            },
            _ => (
                "404 Not Found",
                "text/plain",
                "not found: try /metrics, /healthz, /readyz\n".to_string(),
            ),
        }
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        resp.push_str(&body);
    }
    tcp.write_all(resp.as_bytes()).await
}

/// Ready: rules are loaded (always true once serving: start-up fails otherwise) and the
/// upstream accepts a connection (TCP, and TLS per sslmode) within 2 s. The probe then sends
/// a CancelRequest with a key no backend has and waits for the server to close: PostgreSQL
/// answers that without a backend, an authentication or a line in its log (a bare connect
/// would log "incomplete startup packet" at every probe).
async fn ready(shared: &Shared) -> Result<(), String> {
    let policy = shared.policy.load();
    if policy.plans.is_empty() {
        return Err("no role plans loaded".into());
    }
    let probe = async {
        let mut s = shared
            .upstream
            .open()
            .await
            .map_err(|e| format!("upstream unreachable: {e}"))?;
        let mut out = bytes::BytesMut::new();
        crate::wire::startup::encode_cancel(&mut out, 0, 0);
        s.write_all(&out)
            .await
            .map_err(|e| format!("upstream unreachable: {e}"))?;
        let mut b = [0u8; 1];
        let _ = s.read(&mut b).await;
        Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(r) => r,
        Err(_) => Err("upstream did not answer within 2 s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_and_histogram() {
        let m = Metrics::new();
        m.statement(Decision::Passed);
        m.refusal("42501");
        m.refusal("42501");
        m.observe_latency(Duration::from_millis(3));
        m.observe_latency(Duration::from_secs(20));
        let t = m.render();
        assert!(
            t.contains("pgveil_statements_total{decision=\"passed\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("pgveil_statements_total{decision=\"refused\"} 2\n"),
            "{t}"
        );
        assert!(t.contains("pgveil_refusals_total{sqlstate=\"42501\"} 2\n"), "{t}");
        assert!(
            t.contains("pgveil_statement_duration_seconds_bucket{le=\"0.0025\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("pgveil_statement_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("pgveil_statement_duration_seconds_bucket{le=\"10\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("pgveil_statement_duration_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{t}"
        );
        assert!(t.contains("pgveil_statement_duration_seconds_count 2\n"), "{t}");
    }
}
