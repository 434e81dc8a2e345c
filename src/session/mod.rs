//! One client connection, from the first byte to the last.
//!
//! 1. Startup ([`startup`]): SSLRequest/GSSENCRequest, TLS, the StartupMessage, SCRAM
//!    authentication against the logins in the rules, the login's validity window.
//! 2. The upstream connection, as the role's account, with the client's safe parameters.
//! 3. The relay ([`relay`]): unrestricted roles get frames forwarded as they are;
//!    restricted roles get every statement analysed before it leaves and every reply
//!    checked on its way back.
//!
//! Invariant: whatever happens to one session (bad bytes, a vanished client, a dead
//! upstream) ends that session only; nothing here panics on input.
pub mod lockout;
mod relay;
pub mod scram;
mod startup;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::net::TcpStream;

use crate::audit::Audit;
use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::sql::AnalysisCache;
use crate::state::PolicyCell;
use crate::upstream::UpstreamConfig;

/// What every session shares.
pub struct Shared {
    pub config: ServeConfig,
    pub upstream: UpstreamConfig,
    /// The rules, catalog and role plans in force; swapped whole on reload.
    pub policy: PolicyCell,
    /// Acceptor for clients that send SSLRequest; None: pgveil answers 'N'.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Client cancel key -> upstream cancel key. Each client gets its own random key so
    /// one client can never cancel another's upstream backend by guessing.
    pub cancel_keys: DashMap<(i32, i32), (i32, i32)>,
    /// Makes decoy SCRAM salts for unknown users stable within this process.
    pub decoy_secret: [u8; 32],
    /// Analyses of restricted statements, by (role, catalog version, search path, text).
    pub analysis: AnalysisCache,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The audit trail (disabled without `--audit-log`).
    pub audit: Audit,
    /// Failed-login counters and locks, per user and per client address.
    pub lockout: lockout::Lockout,
    /// Open sessions per role, for `max_sessions`.
    pub role_sessions: DashMap<String, u32>,
    /// Session ids for logs and the audit trail: the start time in seconds × 10⁶ plus a
    /// counter, so ids do not repeat across restarts.
    pub next_session: AtomicU64,
    /// Wakes the reloader after DDL by an unrestricted role.
    pub reload_wanted: tokio::sync::Notify,
    /// Serialises policy reloads.
    pub reload_lock: tokio::sync::Mutex<()>,
}

/// Runs one session to its end and logs how it ended.
pub async fn run(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    match startup::serve(tcp, peer, &shared).await {
        Ok(()) => tracing::debug!(%peer, "session ended"),
        Err(e) => tracing::info!(%peer, error = %e, "session ended with an error"),
    }
}

/// Why a session ended abnormally. Messages never carry cell values or secrets.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("client: {0}")]
    Client(crate::wire::WireError),
    #[error("upstream: {0}")]
    Upstream(crate::wire::WireError),
    #[error("upstream: {0}")]
    UpstreamConnect(#[from] crate::upstream::UpstreamError),
    #[error("refused at startup: {0}")]
    Refused(String),
    #[error("TLS handshake with client failed: {0}")]
    Tls(std::io::Error),
    #[error("protocol tracking lost: {0}")]
    Desync(String),
    #[error("result would reveal a protected column: {0}")]
    Leak(String),
    /// The session was ended by pgveil: a revoked or expired login, an audit trail that
    /// could not record a statement. The client gets a FATAL with this SQLSTATE and message.
    #[error("ended: {message} ({sqlstate})")]
    Ended { sqlstate: &'static str, message: String },
}
