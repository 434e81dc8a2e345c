//! `pgveil report`: who sees what, for a compliance reviewer (PIPL).
//!
//! For every role and its logins (agreement, validity window, status today): every ruled
//! table and column with its class and what the role gets (clear, which mask with its
//! parameters and what the masked value still reveals, or denied), the row filters, and the
//! columns a scan flags as sensitive that no rule covers. Markdown, self-contained printable
//! HTML (a page per role) or JSON.
//!
//! Two sources, one model ([`model::Report`]): with compiled plans (rules + the database
//! catalog) the report shows exactly what `policy::compile` decided, for every column of
//! every protected relation; without, it applies the same first-match order to the rules
//! alone (rules cannot know unruled columns, so those are summarised by the role's default).
//!
//! Invariants: the report never contains key material or login verifiers (it names key ids
//! and where pgveil reads them, nothing more), nor any value of the database.
mod model;
mod render;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use chrono::{DateTime, Utc};

use crate::catalog::Catalog;
use crate::policy::RolePlan;
use crate::rules::{self, RuleSet};
use crate::scan::{self, Finding, ScanOptions};

pub use model::Report;

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Html,
    Json,
}

/// The report as of now. `plans` may be empty (no catalog: the rules alone are described).
pub fn report(
    rules: &RuleSet,
    plans: &HashMap<String, Arc<RolePlan>>,
    catalog: Option<&Catalog>,
    findings: Option<&[Finding]>,
    format: Format,
) -> String {
    report_at(rules, plans, catalog, findings, format, Utc::now())
}

/// [`report`] with the instant login windows are judged at (tests pin it).
pub fn report_at(
    rules: &RuleSet,
    plans: &HashMap<String, Arc<RolePlan>>,
    catalog: Option<&Catalog>,
    findings: Option<&[Finding]>,
    format: Format,
    now: DateTime<Utc>,
) -> String {
    let model = model::build(rules, plans, catalog, findings, now);
    match format {
        Format::Md => render::markdown(&model),
        Format::Html => render::html(&model),
        Format::Json => render::json(&model),
    }
}

/// `pgveil report`: loads the rules and, with an upstream, the catalog (the rules are
/// compiled against it) and a scan for the columns the rules leave uncovered. Scan
/// progress goes to standard error.
///
/// Token keys that cannot be read here (they are set only where pgveil serves) are replaced
/// by a stand-in for compiling: masks are described by their spec and key id, never by key
/// bytes, so the report is the same.
pub async fn run_report(rules_dir: &Path, upstream: Option<&str>, format: Format) -> anyhow::Result<String> {
    let rules = rules::load_dir(rules_dir).map_err(|e| {
        anyhow!(
            "rules in {} are invalid:\n{}",
            rules_dir.display(),
            rules::format_errors(&e)
        )
    })?;
    let Some(url) = upstream else {
        return Ok(report(&rules, &HashMap::new(), None, None, format));
    };
    let cfg = crate::upstream::UpstreamConfig::from_url(url)?;
    let client = crate::upstream::internal_client(&cfg)
        .await
        .with_context(|| format!("cannot connect to {}", cfg.display()))?;
    let catalog = crate::catalog::load::load(&client, 1)
        .await
        .context("cannot read the upstream catalog")?;
    drop(client);
    let keys = rules::load_keys(&rules).unwrap_or_else(|_| stand_in_keys(&rules));
    let plans = crate::policy::compile::compile(&rules, &catalog, &keys)
        .map_err(|e| anyhow!("rules do not fit the database:\n{}", rules::format_errors(&e)))?;
    let findings = scan::scan(&ScanOptions::new(url), |line| eprintln!("{line}")).await?;
    Ok(report(&rules, &plans, Some(&catalog), Some(&findings), format))
}

/// A zero key per key id: lets masks be built to describe them. Never used to mask data
/// and never printed.
pub(crate) fn stand_in_keys(rules: &RuleSet) -> crate::mask::Keys {
    let mut k = crate::mask::Keys::default();
    for id in rules.keys.keys() {
        k.keys.insert(id.clone(), vec![0u8; 32]);
    }
    k
}
