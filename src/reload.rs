//! Hot reload of the policy (rules + catalog + role plans) while sessions run.
//!
//! Triggers: SIGHUP; a change in the rules directory (polled every second: a file's name,
//! size or modification time, which works on every file system, network mounts included,
//! and needs no watcher crate); a timer (the catalog, every 60 s by default); and a DDL
//! statement run through pgveil by an unrestricted role (debounced by half a second, so a
//! migration script of a hundred statements costs one or two reloads).
//!
//! Invariants: reloads are serialised (one at a time); a policy is swapped in only when the
//! rules loaded and compiled against the fresh catalog (`state::load`); on failure the
//! policy in force stays, the error is logged with file:line, and
//! `pgveil_rules_reload_failures_total` counts it. Every successful load bumps the catalog
//! version (`state::load`), which keys the analysis cache: analyses made under the old
//! rules become unreachable.
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::session::Shared;
use crate::state::{self, PolicyError};

/// Why a reload ran (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    RulesChanged,
    Timer,
    Ddl,
    Manual,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::RulesChanged => "rules directory changed",
            Trigger::Timer => "catalog refresh timer",
            Trigger::Ddl => "DDL by an unrestricted role",
            Trigger::Manual => "requested",
        }
    }
}

/// Reloads the policy now. `Err` leaves the policy in force untouched.
pub async fn reload(shared: &Shared, trigger: Trigger) -> Result<(), PolicyError> {
    let _one_at_a_time = shared.reload_lock.lock().await;
    match state::load(&shared.config.rules_dir, &shared.upstream).await {
        Ok(p) => {
            let roles = p.plans.len();
            let version = p.catalog.version;
            shared.policy.store(p);
            shared.metrics.reloads.fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .policy_loaded_at
                .store(crate::metrics::unix_now(), Ordering::Relaxed);
            tracing::info!(
                trigger = trigger.as_str(),
                roles,
                catalog_version = version,
                "policy reloaded"
            );
            Ok(())
        }
        Err(e) => {
            shared.metrics.reload_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(trigger = trigger.as_str(), error = %e, "policy reload failed; the previous rules stay in force");
            Err(e)
        }
    }
}

/// What identifies the rules directory's content cheaply: every `*.yaml`/`*.yml` file's
/// name, size and modification time, in name order.
fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut out: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| {
                matches!(
                    e.path().extension().and_then(|x| x.to_str()),
                    Some("yaml" | "yml")
                )
            })
            .map(|e| {
                let m = e.metadata().ok();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    m.as_ref().map(|m| m.len()).unwrap_or(0),
                    m.and_then(|m| m.modified().ok()),
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Runs the reload triggers until the task is dropped (the server aborts it at shutdown).
pub async fn watch(shared: Arc<Shared>) {
    let poll = shared.config.rules_poll;
    let refresh = shared.config.catalog_refresh;
    let mut seen = fingerprint(&shared.config.rules_dir);
    let mut poll_tick = tokio::time::interval(poll);
    poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refresh_tick = tokio::time::interval_at(tokio::time::Instant::now() + refresh, refresh);
    refresh_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hup = hangup();
    loop {
        let trigger = tokio::select! {
            _ = poll_tick.tick() => {
                let now = fingerprint(&shared.config.rules_dir);
                if now == seen {
                    continue;
                }
                // An editor may still be writing: wait until the directory holds still.
                let mut settled = now;
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let again = fingerprint(&shared.config.rules_dir);
                    if again == settled {
                        break;
                    }
                    settled = again;
                }
                seen = settled;
                Trigger::RulesChanged
            }
            _ = refresh_tick.tick() => Trigger::Timer,
            _ = next_hangup(&mut hup) => Trigger::Signal,
            _ = shared.reload_wanted.notified() => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Trigger::Ddl
            }
        };
        if trigger != Trigger::RulesChanged {
            seen = fingerprint(&shared.config.rules_dir);
        }
        let _ = reload(&shared, trigger).await;
        refresh_tick.reset();
    }
}

/// Asks for a debounced reload (after DDL). Cheap; many requests coalesce into one.
pub fn request(shared: &Shared) {
    shared.reload_wanted.notify_one();
}

/// Whether a statement text of an unrestricted role changes the schema (a cheap prefix
/// test; a miss only delays the refresh to the timer).
pub fn looks_like_ddl(sql: &str) -> bool {
    let t = sql.trim_start_matches(|c: char| c.is_whitespace() || c == '(' || c == ';');
    let word: String = t.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    matches!(
        word.to_ascii_uppercase().as_str(),
        "CREATE" | "ALTER" | "DROP" | "COMMENT" | "GRANT" | "REVOKE" | "TRUNCATE" | "SECURITY"
    )
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup() -> Hangup {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by editing the rules directory");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(h: &mut Hangup) {
    match h {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) {
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::looks_like_ddl;

    #[test]
    fn ddl_prefixes() {
        for s in [
            "CREATE TABLE t (a int)",
            "  alter table t add b int",
            "\n(DROP VIEW v)",
            "comment on table t is 'x'",
            "grant select on t to x",
            "Revoke all on t from x",
        ] {
            assert!(looks_like_ddl(s), "{s}");
        }
        for s in ["SELECT 1", "insert into t values (1)", "", "created"] {
            assert!(!looks_like_ddl(s), "{s}");
        }
    }
}
