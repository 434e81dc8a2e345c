//! Failed-login throttling and lockout, per user name and per client address.
//!
//! Each failed authentication is remembered under two keys: the user name the client gave
//! (known or not: an attacker learns nothing from the difference) and the client's IP
//! address. A failure is answered only after a delay that grows with the failures of the
//! window (`delay_step` × failures, capped), so guessing is slow even before the lock.
//! When either key reaches `failures` failures within `window`, it is locked for
//! `duration`: attempts under a locked key are refused before any password is checked.
//!
//! Decision: a locked-out attempt is answered `28000` "too many failed login attempts ...",
//! not `28P01`. The lock is not a secret worth hiding (any attacker who caused it knows it),
//! and the DBA or analyst who meets it must understand why a correct password fails.
//! Nothing about whether the user exists is revealed: unknown names lock the same way.
//!
//! A success clears the user's failures, not the address's (one valid login must not
//! launder an address that is guessing other users' passwords).
//!
//! Invariants: the table is bounded (expired entries are pruned when it grows past
//! [`MAX_ENTRIES`]; a key beyond that while the table is full of live entries is not
//! tracked, and the address key still is since it is checked first); user keys are cut to
//! 64 bytes, as PostgreSQL cuts role names.
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Lockout settings (`serve --lockout-failures --lockout-window --lockout-duration`).
#[derive(Debug, Clone)]
pub struct LockoutConfig {
    /// Failures within `window` that lock a user or an address; 0 disables locking.
    pub failures: u32,
    pub window: Duration,
    /// How long a lock lasts.
    pub duration: Duration,
    /// Delay before answering a failed attempt, per failure in the window.
    pub delay_step: Duration,
    /// Upper bound of that delay.
    pub delay_cap: Duration,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            failures: 5,
            window: Duration::from_secs(15 * 60),
            duration: Duration::from_secs(15 * 60),
            delay_step: Duration::from_millis(200),
            delay_cap: Duration::from_secs(2),
        }
    }
}

/// Bound on tracked keys.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

#[derive(Default)]
struct Entry {
    /// Failure instants within the window, oldest first.
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Entry {
    fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.failures.pop_front();
        }
        if self.locked_until.is_some_and(|u| u <= now) {
            self.locked_until = None;
        }
    }
    fn dead(&self) -> bool {
        self.failures.is_empty() && self.locked_until.is_none()
    }
}

/// What is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    Address,
}

/// An attempt refused because of a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub scope: Scope,
    /// Time left on the lock.
    pub remaining: Duration,
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Failures of this user within the window (including this one).
    pub user_failures: u32,
    /// Set when this failure locked the user or the address.
    pub locked: Option<Scope>,
}

/// The failure table. Send + Sync; one per server.
pub struct Lockout {
    cfg: LockoutConfig,
    entries: DashMap<Key, Entry>,
}

fn user_key(user: &str) -> Key {
    let mut end = user.len().min(64);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    Key::User(user[..end].to_string())
}

impl Lockout {
    pub fn new(cfg: LockoutConfig) -> Lockout {
        Lockout {
            cfg,
            entries: DashMap::new(),
        }
    }

    pub fn config(&self) -> &LockoutConfig {
        &self.cfg
    }

    /// Whether an attempt for `user` from `addr` may proceed to authentication.
    pub fn check(&self, user: &str, addr: IpAddr, now: Instant) -> Result<(), Locked> {
        if self.cfg.failures == 0 {
            return Ok(());
        }
        for (key, scope) in [(Key::Addr(addr), Scope::Address), (user_key(user), Scope::User)] {
            if let Some(mut e) = self.entries.get_mut(&key) {
                e.expire(now, self.cfg.window);
                if let Some(until) = e.locked_until {
                    return Err(Locked {
                        scope,
                        remaining: until.saturating_duration_since(now),
                    });
                }
            }
        }
        Ok(())
    }

    /// Records a failed attempt; says how long to wait before answering and whether it locked.
    pub fn failed(&self, user: &str, addr: IpAddr, now: Instant) -> Failure {
        if self.entries.len() >= MAX_ENTRIES {
            let window = self.cfg.window;
            self.entries.retain(|_, e| {
                e.expire(now, window);
                !e.dead()
            });
        }
        let mut locked = None;
        let mut counts = [0u32; 2];
        for (i, (key, scope)) in [(Key::Addr(addr), Scope::Address), (user_key(user), Scope::User)]
            .into_iter()
            .enumerate()
        {
            if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
                continue;
            }
            let mut e = self.entries.entry(key).or_default();
            e.expire(now, self.cfg.window);
            e.failures.push_back(now);
            counts[i] = u32::try_from(e.failures.len()).unwrap_or(u32::MAX);
            if self.cfg.failures > 0 && counts[i] >= self.cfg.failures && e.locked_until.is_none() {
                e.locked_until = Some(now + self.cfg.duration);
                e.failures.clear();
                locked = locked.or(Some(scope));
            }
        }
        let n = counts[0].max(counts[1]).max(1);
        let delay = self.cfg.delay_step.saturating_mul(n).min(self.cfg.delay_cap);
        Failure {
            delay,
            user_failures: counts[1],
            locked,
        }
    }

    /// Records a successful login: the user's failures are forgiven.
    pub fn succeeded(&self, user: &str) {
        self.entries.remove(&user_key(user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LockoutConfig {
        LockoutConfig {
            failures: 3,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(600),
            delay_step: Duration::from_millis(100),
            delay_cap: Duration::from_millis(250),
        }
    }

    #[test]
    fn locks_user_and_address_after_n_failures_then_expires() {
        let l = Lockout::new(cfg());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(l.failed("bob", a, t0).delay, Duration::from_millis(100));
        assert_eq!(l.failed("bob", a, t0).delay, Duration::from_millis(200));
        let third = l.failed("bob", a, t0);
        assert_eq!(third.delay, Duration::from_millis(250), "capped");
        assert!(third.locked.is_some());
        // The user is locked from anywhere; the address for anyone.
        assert_eq!(l.check("bob", b, t0).map_err(|e| e.scope), Err(Scope::User));
        assert_eq!(l.check("alice", a, t0).map_err(|e| e.scope), Err(Scope::Address));
        assert_eq!(l.check("alice", b, t0), Ok(()));
        // Until the lock runs out.
        let later = t0 + Duration::from_secs(601);
        assert_eq!(l.check("bob", a, later), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_count_and_success_forgives_the_user() {
        let l = Lockout::new(cfg());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        l.failed("bob", a, t0);
        l.failed("bob", a, t0);
        let t1 = t0 + Duration::from_secs(61);
        assert!(
            l.failed("bob", a, t1).locked.is_none(),
            "the first two have expired"
        );
        l.succeeded("bob");
        assert_eq!(l.failed("bob", "10.0.0.9".parse().unwrap(), t1).user_failures, 1);
    }

    #[test]
    fn zero_failures_disables_locking() {
        let l = Lockout::new(LockoutConfig { failures: 0, ..cfg() });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(l.failed("bob", a, t0).locked.is_none());
        }
        assert_eq!(l.check("bob", a, t0), Ok(()));
    }

    #[test]
    fn long_user_names_share_a_key_cut_at_64_bytes() {
        let long = "é".repeat(40);
        assert!(matches!(user_key(&long), Key::User(s) if s.len() == 64));
    }
}
