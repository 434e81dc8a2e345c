//! A bounded, shared cache in front of [`analyze`](super::analyze).
//!
//! Parsing and rewriting on every statement would halve a proxy's throughput; clients send
//! the same texts again and again (prepared statements, ORMs, dashboards). The key is
//! everything the result depends on: the role (and which plan object it has, so a rules
//! reload is a miss), the catalog version, the search path and the text. Refusals are
//! cached too: a client retrying a refused statement costs a lookup.
//!
//! Invariants: a hit is only returned when the whole key compares equal (the u64 hash only
//! picks the slot); the map never holds more than `capacity` entries.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use dashmap::DashMap;

use super::{analyze, Analysis, Context, Refusal};

struct Slot {
    role: String,
    plan: usize,
    version: u64,
    search_path: Vec<String>,
    sql: String,
    result: Result<Arc<Analysis>, Refusal>,
}

impl Slot {
    fn matches(&self, sql: &str, ctx: &Context, plan: usize) -> bool {
        self.version == ctx.catalog.version
            && self.plan == plan
            && self.sql == sql
            && self.role == ctx.plan.role
            && self.search_path.as_slice() == ctx.search_path
    }
}

/// Cache of analyses keyed by (role, plan, catalog version, search_path, text). Send + Sync.
pub struct AnalysisCache {
    map: DashMap<u64, Slot>,
    capacity: usize,
}

impl AnalysisCache {
    /// A cache holding at most `capacity` analyses (at least 1).
    pub fn new(capacity: usize) -> Self {
        AnalysisCache {
            map: DashMap::new(),
            capacity: capacity.max(1),
        }
    }

    fn key(sql: &str, ctx: &Context, plan: usize) -> u64 {
        let mut h = DefaultHasher::new();
        sql.hash(&mut h);
        ctx.plan.role.hash(&mut h);
        plan.hash(&mut h);
        ctx.catalog.version.hash(&mut h);
        ctx.search_path.hash(&mut h);
        h.finish()
    }

    /// [`analyze`] through the cache.
    pub fn analyze(&self, sql: &str, ctx: &Context) -> Result<Arc<Analysis>, Refusal> {
        let plan = ctx.plan as *const _ as usize;
        let key = Self::key(sql, ctx, plan);
        if let Some(slot) = self.map.get(&key) {
            if slot.matches(sql, ctx, plan) {
                return slot.result.clone();
            }
        }
        let result = analyze(sql, ctx).map(Arc::new);
        if self.map.len() >= self.capacity {
            self.evict();
        }
        self.map.insert(
            key,
            Slot {
                role: ctx.plan.role.clone(),
                plan,
                version: ctx.catalog.version,
                search_path: ctx.search_path.to_vec(),
                sql: sql.to_string(),
                result: result.clone(),
            },
        );
        result
    }

    /// Drop every entry (call after a rules reload).
    pub fn clear(&self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drop about half the entries (those with an odd hash: arbitrary but cheap, and keys are
    /// uniformly hashed).
    fn evict(&self) {
        let mut n = 0usize;
        self.map.retain(|k, _| {
            n += 1;
            k % 2 == 0 && n < self.capacity / 2
        });
    }
}
