//! `pgveil check --rules DIR [--upstream URL]`: validate a rules directory and summarise it.
//!
//! Without an upstream only what the rules say on their own is checked. With one, the
//! catalog is loaded and the rules are compiled against it, so unknown tables and columns
//! and masks that do not fit their column's type are found too, and the summary lists
//! what each role gets per protected column.
//!
//! Keys: when a key named in the rules cannot be read here (the variable is set only where
//! pgveil serves), the problem is reported as a warning and a stand-in key is used so the
//! rest can still be checked. The stand-in never leaves this function.
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Context as _};

use super::{format_errors, load_dir, load_keys, RuleSet};
use crate::mask::Keys;
use crate::policy::compile::{compile, describe};

/// Loads and validates `dir` (and compiles it against `upstream`'s catalog when given).
/// Ok: a human summary, warnings included. Err: every error, one per line.
///
/// Blocking. The catalog is read on a thread of its own with its own runtime, so this may be
/// called from synchronous code and from inside an async runtime alike (it then blocks that
/// worker for the duration, which a one-shot CLI command can afford).
pub fn check_dir(dir: &Path, upstream: Option<&str>) -> anyhow::Result<String> {
    let rules = load_dir(dir).map_err(|e| anyhow!("{}", format_errors(&e)))?;
    let mut out = String::new();
    let mut warnings: Vec<String> = rules.warnings.iter().map(|w| format!("warning: {w}")).collect();
    let keys = match load_keys(&rules) {
        Ok(k) => k,
        Err(errs) => {
            warnings.extend(
                errs.iter()
                    .map(|e| format!("warning: {e} (needed where pgveil serves)")),
            );
            stand_in_keys(&rules)
        }
    };
    summary(&rules, &mut out);
    if let Some(url) = upstream {
        let url = url.to_string();
        let catalog = std::thread::scope(|s| {
            s.spawn(move || -> anyhow::Result<crate::catalog::Catalog> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(load_catalog(&url))
            })
            .join()
            .map_err(|_| anyhow!("the catalog loader thread panicked"))?
        })?;
        let plans = compile(&rules, &catalog, &keys).map_err(|e| anyhow!("{}", format_errors(&e)))?;
        let _ = writeln!(
            out,
            "\nagainst the upstream catalog ({} relations):",
            catalog.relations.len()
        );
        let mut names: Vec<&String> = plans.keys().collect();
        names.sort();
        for name in names {
            let plan = &plans[name];
            if plan.unrestricted {
                let _ = writeln!(out, "  {name}: unrestricted");
                continue;
            }
            let d = describe(plan);
            let _ = writeln!(
                out,
                "  {name}: {} protected relation(s), {} rule(s)",
                plan.tables.len(),
                d.len()
            );
            for (t, c, a) in d {
                if c.is_empty() {
                    let _ = writeln!(out, "    {t}: {a}");
                } else {
                    let _ = writeln!(out, "    {t}.{c}: {a}");
                }
            }
        }
    }
    for w in warnings {
        let _ = writeln!(out, "{w}");
    }
    Ok(out)
}

/// Reads the catalog over pgveil's own upstream connection (same URL syntax and TLS modes
/// as `pgveil serve --upstream`).
async fn load_catalog(url: &str) -> anyhow::Result<crate::catalog::Catalog> {
    let cfg = crate::upstream::UpstreamConfig::from_url(url).context("bad upstream URL")?;
    let client = crate::upstream::internal_client(&cfg)
        .await
        .context("cannot connect to the upstream")?;
    let catalog = crate::catalog::load::load(&client, 1)
        .await
        .context("cannot read the upstream catalog")?;
    Ok(catalog)
}

fn stand_in_keys(rules: &RuleSet) -> Keys {
    let mut k = Keys::default();
    for id in rules.keys.keys() {
        k.keys.insert(id.clone(), vec![0u8; 32]);
    }
    k
}

/// What the rules say, without the database.
fn summary(rules: &RuleSet, out: &mut String) {
    let columns: usize = rules.tables.values().map(|t| t.len()).sum();
    let _ = writeln!(
        out,
        "rules OK: {} file(s), {} table(s), {} column rule(s), {} role(s), {} login(s), {} key(s)",
        rules.files.len(),
        rules.tables.len(),
        columns,
        rules.roles.len(),
        rules.logins.len(),
        rules.keys.len()
    );
    for role in rules.roles.values() {
        let logins: Vec<&str> = rules
            .logins
            .values()
            .filter(|l| l.role == role.name)
            .map(|l| l.user.as_str())
            .collect();
        let what = if role.unrestricted {
            "unrestricted".to_string()
        } else {
            format!(
                "sees {}, default {}, {} override(s), {} row filter(s)",
                role.sees,
                match role.default {
                    super::DefaultAction::Clear => "clear",
                    super::DefaultAction::Mask => "mask",
                },
                role.masks.len(),
                role.row_filters.len()
            )
        };
        let _ = writeln!(
            out,
            "  role {}: {what}; logins: {}",
            role.name,
            if logins.is_empty() {
                "none".to_string()
            } else {
                logins.join(", ")
            }
        );
    }
    for l in rules.logins.values() {
        let mut extra = Vec::new();
        if let Some(a) = &l.agreement {
            extra.push(format!("agreement {a}"));
        }
        if let Some(f) = l.valid_from {
            extra.push(format!("from {}", f.format("%Y-%m-%d %H:%M UTC")));
        }
        if let Some(u) = l.valid_until {
            extra.push(format!("until {}", u.format("%Y-%m-%d %H:%M UTC")));
        }
        if l.md5.is_some() {
            extra.push("legacy md5".into());
        }
        let _ = writeln!(
            out,
            "  login {} -> {}{}",
            l.user,
            l.role,
            if extra.is_empty() {
                String::new()
            } else {
                format!(" ({})", extra.join(", "))
            }
        );
    }
}
