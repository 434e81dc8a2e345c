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
        }
    }
}
