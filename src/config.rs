//! Run-time configuration of `pgveil serve`, built by the CLI from flags and environment.
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything `pgveil serve` needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address clients connect to.
    pub listen: SocketAddr,
    /// The real PostgreSQL: `postgres://user:pass@host:port/db?sslmode=...`.
    pub upstream: String,
    /// The rules directory.
    pub rules_dir: PathBuf,
    /// Client-side TLS certificate chain and key (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Refuse clients that do not negotiate TLS.
    pub require_tls: bool,
    /// Largest message accepted from a client, in bytes.
    pub max_message_size: usize,
    /// The audit trail (issue 5); None: no audit (a warning at start-up).
    pub audit: Option<crate::audit::AuditConfig>,
    /// Failed-login throttling and lockout.
    pub lockout: crate::session::lockout::LockoutConfig,
    /// Where to serve Prometheus metrics, /healthz and /readyz.
    pub metrics: Option<SocketAddr>,
    /// How often the rules directory is checked for changes.
    pub rules_poll: std::time::Duration,
    /// How often the catalog (and rules) are reloaded even without a change.
    pub catalog_refresh: std::time::Duration,
    /// Threads serving sessions, each with its own single-threaded runtime (at least 1; see
    /// [`crate::workers`]). Default: one per CPU available to the process.
    pub workers: usize,
}

impl ServeConfig {
    /// A configuration with defaults for everything but the three required settings.
    pub fn new(listen: SocketAddr, upstream: impl Into<String>, rules_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            listen,
            upstream: upstream.into(),
            rules_dir: rules_dir.into(),
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            max_message_size: 64 * 1024 * 1024,
            audit: None,
            lockout: Default::default(),
            metrics: None,
            rules_poll: std::time::Duration::from_secs(1),
            catalog_refresh: std::time::Duration::from_secs(60),
            workers: crate::workers::default_count(),
        }
    }
}
