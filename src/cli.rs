//! The command line: `pgveil serve | check | hash-password | scan | report | demo`.
//!
//! Every flag of `serve` can also come from the environment (`PGVEIL_LISTEN`, ...), so
//! containers and service managers need no wrapper script.
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::ServeConfig;

#[derive(Parser, Debug)]
#[command(
    name = "pgveil",
    version,
    about = "A PostgreSQL proxy that masks protected columns for restricted roles"
)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "pretty",
        env = "PGVEIL_LOG_FORMAT"
    )]
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
    /// Find the columns that look like personal data and draft rules for them.
    ///
    /// Reads column names and samples each table in a read-only transaction with a timeout;
    /// never prints a sampled value. Writes a draft `tables:` section (to --out, else to
    /// standard output) and, with --rules, lists the findings those rules leave uncovered.
    /// Example: pgveil scan --upstream postgres://pgveil@db/seller --rules rules/ --out rules/draft.yaml
    Scan(ScanArgs),
    /// Who sees what: per role and login, every ruled column and what the role gets.
    ///
    /// For a compliance reviewer: logins with agreement and validity, each column's class
    /// and mask (and what the mask still reveals) or denial, row filters, and with
    /// --upstream the columns a scan flags that no rule covers.
    /// Example: pgveil report --rules rules/ --upstream postgres://pgveil@db/seller --format html > report.html
    Report {
        /// The rules directory.
        #[arg(long, env = "PGVEIL_RULES", default_value = "rules")]
        rules: PathBuf,
        /// The database: compile the rules against its catalog and scan it for uncovered columns.
        #[arg(long, env = "PGVEIL_UPSTREAM")]
        upstream: Option<String>,
        /// md (README, tickets), html (self-contained, printable: a page per role) or json.
        #[arg(long, value_enum, default_value = "md")]
        format: crate::report::Format,
    },
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run the built-in demo: a throwaway PostgreSQL with sample seller data, and pgveil in front.
    Demo {
        #[arg(long, default_value = "127.0.0.1:6432")]
        listen: SocketAddr,
    },
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// The database to scan: postgres://USER:PASS@HOST:PORT/DB[?sslmode=...]
    #[arg(long, env = "PGVEIL_UPSTREAM")]
    pub upstream: String,
    /// Schema to scan (repeat for several); default: every user schema.
    #[arg(long = "schema")]
    pub schemas: Vec<String>,
    /// Rows sampled per table.
    #[arg(long, default_value_t = 1000)]
    pub sample: usize,
    /// Seconds allowed per table; a slower or locked table is judged by column names only.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Current rules, to list the findings they do not cover.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Where to write the draft rules (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl ScanArgs {
    pub fn options(&self) -> crate::scan::ScanOptions {
        let mut o = crate::scan::ScanOptions::new(self.upstream.clone());
        o.schemas = self.schemas.clone();
        o.sample = self.sample;
        o.timeout = std::time::Duration::from_secs(self.timeout.max(1));
        o.rules_dir = self.rules.clone();
        o
    }
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain of audit files, given in order (rotated files first, the active
    /// file last). Exit code 1 and the first broken record when the chain is broken.
    ///
    /// Example: pgveil audit verify $(ls audit.jsonl.* | sort) audit.jsonl
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Parses `90s`, `15m`, `2h`, `500ms` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 15m, got {s:?}"))?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n.saturating_mul(1000),
        "m" | "min" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?} (use ms, s, m, h or d)"
            ))
        }
    };
    Ok(Duration::from_millis(ms))
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
    /// Audit trail file (JSON Lines, hash-chained). Without it nothing is audited.
    #[arg(long, env = "PGVEIL_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Rotate the audit file when it would grow past this many bytes.
    #[arg(long, env = "PGVEIL_AUDIT_MAX_BYTES")]
    pub audit_max_bytes: Option<u64>,
    /// Rotate the audit file when the UTC day changes.
    #[arg(long, env = "PGVEIL_AUDIT_ROTATE_DAILY")]
    pub audit_rotate_daily: bool,
    /// Record statement texts with their literals replaced by $n placeholders.
    #[arg(long, env = "PGVEIL_AUDIT_REDACT_LITERALS")]
    pub audit_redact_literals: bool,
    /// Skip fdatasync after audit writes (records survive a crash of pgveil, not of the machine).
    #[arg(long, env = "PGVEIL_AUDIT_NO_FSYNC")]
    pub audit_no_fsync: bool,
    /// Failed logins within --lockout-window that lock a user or a client address (0: never lock).
    #[arg(long, env = "PGVEIL_LOCKOUT_FAILURES", default_value_t = 5)]
    pub lockout_failures: u32,
    /// Window in which failed logins are counted.
    #[arg(long, env = "PGVEIL_LOCKOUT_WINDOW", default_value = "15m", value_parser = parse_duration)]
    pub lockout_window: Duration,
    /// How long a lock lasts.
    #[arg(long, env = "PGVEIL_LOCKOUT_DURATION", default_value = "15m", value_parser = parse_duration)]
    pub lockout_duration: Duration,
    /// Serve Prometheus metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9187).
    #[arg(long, env = "PGVEIL_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// Reload the catalog (and rules) this often even when nothing changed.
    #[arg(long, env = "PGVEIL_CATALOG_REFRESH", default_value = "60s", value_parser = parse_duration)]
    pub catalog_refresh: Duration,
    /// Threads serving sessions (default: one per CPU available). Each runs its sessions on
    /// its own event loop, so a session's client and upstream sockets stay on one thread.
    #[arg(long, env = "PGVEIL_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
}

impl ServeArgs {
    pub fn into_config(self) -> ServeConfig {
        let mut c = ServeConfig::new(self.listen, self.upstream, self.rules);
        c.tls_cert = self.tls_cert;
        c.tls_key = self.tls_key;
        c.require_tls = self.require_tls;
        c.max_message_size = self.max_message_size;
        c.audit = self.audit_log.map(|path| {
            let mut a = crate::audit::AuditConfig::new(path);
            a.max_bytes = self.audit_max_bytes;
            a.rotate_daily = self.audit_rotate_daily;
            a.redact_literals = self.audit_redact_literals;
            a.fsync = !self.audit_no_fsync;
            a
        });
        c.lockout.failures = self.lockout_failures;
        c.lockout.window = self.lockout_window;
        c.lockout.duration = self.lockout_duration;
        c.metrics = self.metrics;
        c.catalog_refresh = self.catalog_refresh.max(Duration::from_secs(1));
        if let Some(n) = self.workers {
            c.workers = usize::from(n);
        }
        c
    }
}

/// Sets up tracing: `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeConfig, clap::Error> {
        let mut argv = vec!["pgveil", "serve", "--upstream", "postgres://u@h/db"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(a) => Ok(a.into_config()),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn workers_default_to_the_cpus_available_and_must_be_at_least_one() {
        assert_eq!(
            serve(&[]).expect("parses").workers,
            crate::workers::default_count()
        );
        assert_eq!(serve(&["--workers", "3"]).expect("parses").workers, 3);
        assert!(serve(&["--workers", "0"]).is_err());
        assert!(serve(&["--workers", "many"]).is_err());
    }
}
