//! The listener: loads the policy, accepts client connections and hands each to a session
//! worker ([`crate::workers`]), until shutdown.
//!
//! Start-up fails early and clearly (rules invalid, upstream unreachable, port taken);
//! once running, a failing session never affects the listener or other sessions.
//!
//! Threads: the listener, the reloader and the metrics endpoint run on the caller's runtime;
//! sessions run on the workers, each a thread with its own single-threaded runtime, so that
//! a session's two sockets are always polled by the same thread.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dashmap::DashMap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::audit::Audit;
use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::session::lockout::Lockout;
use crate::session::Shared;
use crate::sql::AnalysisCache;
use crate::state::{self, PolicyCell};
use crate::upstream::UpstreamConfig;
use crate::workers::Workers;

/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 4096;

/// A bound, ready server.
pub struct Server {
    pub local_addr: SocketAddr,
    /// Where `/metrics` is served, when `--metrics` was given.
    pub metrics_addr: Option<SocketAddr>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shared: Arc<Shared>,
}

impl Server {
    /// Loads rules and catalog, binds the listener. Errors say what to fix.
    pub async fn bind(config: ServeConfig) -> anyhow::Result<Server> {
        let upstream = UpstreamConfig::from_url(&config.upstream)?;
        let policy = state::load(&config.rules_dir, &upstream)
            .await
            .with_context(|| format!("cannot start with upstream {}", upstream.display()))?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) => Some(crate::net::server_config(c, k)?),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        if config.require_tls && tls.is_none() {
            anyhow::bail!("--require-tls needs --tls-cert and --tls-key");
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let metrics_listener = match config.metrics {
            Some(addr) => Some(crate::metrics::bind(addr).await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let metrics = Arc::new(Metrics::new());
        let audit = match &config.audit {
            Some(a) => Audit::open(a, metrics.clone())?,
            None => {
                tracing::warn!("no --audit-log: statements and logins are not audited");
                Audit::disabled()
            }
        };
        let shared = Arc::new(Shared {
            lockout: Lockout::new(config.lockout.clone()),
            config,
            upstream,
            policy: PolicyCell::new(policy),
            tls,
            cancel_keys: DashMap::new(),
            decoy_secret: rand::random(),
            analysis: AnalysisCache::new(10_000),
            metrics,
            audit,
            role_sessions: DashMap::new(),
            // Start time × 10⁶: session ids stay unique across restarts in one audit trail.
            next_session: AtomicU64::new(crate::metrics::unix_now() * 1_000_000 + 1),
            reload_wanted: tokio::sync::Notify::new(),
            reload_lock: tokio::sync::Mutex::new(()),
        });
        Ok(Server {
            local_addr,
            metrics_addr,
            listener,
            metrics_listener,
            shared,
        })
    }

    /// The shared state (for reloads and tests).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` completes. Then the listener closes, the workers close the
    /// sessions still open, and this returns once they have (so does dropping this future).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut workers = Workers::start(self.shared.config.workers, &self.shared)
            .context("cannot start the session workers")?;
        tracing::info!(listen = %self.local_addr, upstream = %self.shared.upstream.display(), workers = workers.count(), "pgveil is serving");
        // Background tasks end with the server (aborted when their guards drop).
        let _reloader = AbortOnDrop(tokio::spawn(crate::reload::watch(self.shared.clone())));
        let _metrics = self.metrics_listener.map(|l| {
            if let Ok(a) = l.local_addr() {
                tracing::info!(metrics = %a, "serving /metrics, /healthz, /readyz");
            }
            AbortOnDrop(tokio::spawn(crate::metrics::serve(l, self.shared.clone())))
        });
        let _trim = AbortOnDrop(tokio::spawn(crate::workers::trim_memory(
            workers.ended_sessions(),
        )));
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        {
            let accept = async {
                let mut backoff = Duration::from_millis(5);
                loop {
                    let permit = match limit.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => return,
                    };
                    match self.listener.accept().await {
                        Ok((tcp, peer)) => {
                            backoff = Duration::from_millis(5);
                            // The permit travels with the session and is released when it ends.
                            workers.hand(tcp, peer, permit);
                        }
                        Err(e) => {
                            // Out of file descriptors and the like: wait and retry.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                        }
                    }
                }
            };
            tokio::select! {
                _ = accept => {}
                _ = shutdown => tracing::info!("shutting down"),
            }
        }
        drop(self.listener);
        workers.stop().await;
        Ok(())
    }
}

/// Aborts a background task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
