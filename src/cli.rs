//! The command line: `pgveil serve | check | hash-password | demo`.
//!
//! Every flag of `serve` can also come from the environment (`PGVEIL_LISTEN`, ...), so
//! containers and service managers need no wrapper script.
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::ServeConfig;

#[derive(Parser, Debug)]
#[command(name = "pgveil", version, about = "A PostgreSQL proxy that masks protected columns for restricted roles")]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "pretty", env = "PGVEIL_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy.
    ///
    /// Example: pgveil serve --listen 127.0.0.1:6432 --upstream postgres://pgveil:secret@db:5432/seller --rules rules/
    Serve(ServeArgs),
    /// Validate a rules directory (and, with --upstream, check it against the database).
    ///
    /// Example: pgveil check --rules rules/ --upstream postgres://pgveil@db/seller
    Check {
        #[arg(long, env = "PGVEIL_RULES", default_value = "rules")]
        rules: PathBuf,
        #[arg(long, env = "PGVEIL_UPSTREAM")]
        upstream: Option<String>,
    },
    /// Turn a password into the SCRAM-SHA-256 verifier to paste into a login rule.
    ///
    /// Reads the password from the terminal (not echoed) or from standard input.
    /// Example: echo -n 's3cret' | pgveil hash-password
    HashPassword,
    /// Run the built-in demo: a throwaway PostgreSQL with sample seller data, and pgveil in front.
    Demo {
        #[arg(long, default_value = "127.0.0.1:6432")]
        listen: SocketAddr,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PGVEIL_LISTEN", default_value = "127.0.0.1:6432")]
    pub listen: SocketAddr,
    /// The real PostgreSQL: postgres://USER:PASS@HOST:PORT/DB[?sslmode=disable|prefer|require|verify-full&sslrootcert=FILE]
    #[arg(long, env = "PGVEIL_UPSTREAM")]
    pub upstream: String,
    /// The rules directory.
    #[arg(long, env = "PGVEIL_RULES", default_value = "rules")]
    pub rules: PathBuf,
    /// TLS certificate chain for clients (PEM).
    #[arg(long, env = "PGVEIL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key for clients (PEM).
    #[arg(long, env = "PGVEIL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Refuse clients that do not use TLS.
    #[arg(long, env = "PGVEIL_REQUIRE_TLS")]
    pub require_tls: bool,
    /// Largest message accepted from a client, in bytes.
    #[arg(long, env = "PGVEIL_MAX_MESSAGE", default_value_t = 64 * 1024 * 1024)]
    pub max_message_size: usize,
}

impl ServeArgs {
    pub fn into_config(self) -> ServeConfig {
        let mut c = ServeConfig::new(self.listen, self.upstream, self.rules);
        c.tls_cert = self.tls_cert;
        c.tls_key = self.tls_key;
        c.require_tls = self.require_tls;
        c.max_message_size = self.max_message_size;
        c
    }
}

/// Sets up tracing: `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Reads a password from the terminal without echo, or one line from standard input.
pub fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let p = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(p == again, "the two passwords differ");
        Ok(p)
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
