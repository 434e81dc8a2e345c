//! The policy in force: rules, the upstream catalog and the compiled role plans, swapped
//! whole and atomically. Sessions read the current snapshot at every statement, so a
//! reload (a revoked login, a tightened rule) applies from their next statement.
//!
//! Invariant: a snapshot is only ever built from rules that loaded and compiled without
//! error; a failed reload leaves the previous snapshot in force.
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::catalog::Catalog;
use crate::policy::RolePlan;
use crate::rules::{self, RuleSet};
use crate::upstream::{self, UpstreamConfig};

/// One consistent policy snapshot.
pub struct Policy {
    pub rules: RuleSet,
    pub catalog: Arc<Catalog>,
    /// Role name -> plan.
    pub plans: HashMap<String, Arc<RolePlan>>,
}

/// Why a policy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("rules in {dir} are invalid:\n{errors}")]
    Rules { dir: String, errors: String },
    #[error("cannot read the upstream catalog: {0}")]
    Catalog(String),
}

/// Bumped by every load, so every snapshot has its own version. The analysis cache is keyed
/// by it: an analysis made under old rules can never be served under new ones.
static CATALOG_VERSION: AtomicU64 = AtomicU64::new(1);

/// Loads the rules directory and the upstream catalog, and compiles the role plans.
pub async fn load(rules_dir: &Path, upstream: &UpstreamConfig) -> Result<Policy, PolicyError> {
    let rule_errors = |errors: Vec<rules::RuleError>| PolicyError::Rules {
        dir: rules_dir.display().to_string(),
        errors: rules::format_errors(&errors),
    };
    let rules = rules::load_dir(rules_dir).map_err(rule_errors)?;
    for w in &rules.warnings {
        tracing::warn!(warning = %w, "rules");
    }
    let keys = rules::load_keys(&rules).map_err(rule_errors)?;
    let client = upstream::internal_client(upstream)
        .await
        .map_err(|e| PolicyError::Catalog(e.to_string()))?;
    let version = CATALOG_VERSION.fetch_add(1, Ordering::Relaxed);
    let catalog = crate::catalog::load::load(&client, version)
        .await
        .map_err(|e| PolicyError::Catalog(e.to_string()))?;
    let plans = crate::policy::compile::compile(&rules, &catalog, &keys).map_err(rule_errors)?;
    Ok(Policy {
        rules,
        catalog: Arc::new(catalog),
        plans,
    })
}

/// The current policy, replaceable while sessions run.
pub struct PolicyCell {
    current: ArcSwap<Policy>,
}

impl PolicyCell {
    pub fn new(p: Policy) -> PolicyCell {
        PolicyCell {
            current: ArcSwap::from_pointee(p),
        }
    }
    pub fn load(&self) -> Arc<Policy> {
        self.current.load_full()
    }
    pub fn store(&self, p: Policy) {
        self.current.store(Arc::new(p));
    }
}
