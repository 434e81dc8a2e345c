//! The report as data, built once and rendered three ways (Markdown, HTML, JSON).
//!
//! Invariant: built from rule structure and plans only: login verifiers and key bytes are
//! never read into it (keys appear as their id and where pgveil reads them).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;

use crate::catalog::{Catalog, RelKind};
use crate::mask::{ColumnType, Mask, MaskSpec};
use crate::policy::{ColumnAction, RolePlan, RuleRef};
use crate::rules::{
    Class, ColumnName, DefaultAction, KeySource, Login, Override, RoleRule, RuleSet, Source, TableName,
};
use crate::scan::Finding;

/// Schemas whose relations the report does not list as "other relations".
const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `2026-12-03 09:00 UTC`: also the instant login statuses are judged at.
    pub generated_at: String,
    pub rules_dir: String,
    pub rules_files: Vec<String>,
    /// Relations in the catalog the rules were compiled against; None: rules alone.
    pub catalog_relations: Option<usize>,
    pub keys: Vec<KeyEntry>,
    pub roles: Vec<RoleEntry>,
    /// Columns a scan flagged (None: no scan ran).
    pub scan_findings: Option<usize>,
    /// Flagged columns the rules leave readable.
    pub uncovered: Vec<Uncovered>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyEntry {
    pub id: String,
    /// `environment variable PGVEIL_TOKEN_KEY` or `file /etc/pgveil/token.key`.
    pub read_from: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleEntry {
    pub name: String,
    pub unrestricted: bool,
    pub sees: String,
    /// What columns without a rule give this role.
    pub unruled_columns: String,
    pub limits: Vec<LimitEntry>,
    pub logins: Vec<LoginEntry>,
    pub row_filters: Vec<RowFilterEntry>,
    pub tables: Vec<TableEntry>,
    /// User tables every column of which is clear for this role (catalog known; views are
    /// read through the rules of their tables, so they are not listed).
    pub clear_relations: Vec<String>,
    pub counts: Counts,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub clear: usize,
    pub masked: usize,
    pub denied: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LimitEntry {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoginEntry {
    pub user: String,
    pub agreement: Option<String>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    /// `valid`, `expired` or `not yet valid`, at `generated_at`.
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowFilterEntry {
    pub table: String,
    /// As the DBA wrote it.
    pub filter: String,
    pub rule: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableEntry {
    pub table: String,
    pub row_filter: Option<String>,
    pub columns: Vec<ColumnEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gets {
    Clear,
    Masked,
    Denied,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnEntry {
    pub column: String,
    /// The column's class in `tables:` (None: no rule).
    pub class: Option<String>,
    pub gets: Gets,
    /// The mask with its parameters, as written in the rules.
    pub mask: Option<String>,
    /// What the masked value still shows (`Mask::reveals`).
    pub reveals: Option<String>,
    /// The rule deciding it, `file:line`.
    pub rule: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Uncovered {
    pub column: String,
    pub why: String,
}

fn source(s: &Source) -> String {
    if s.line == 0 {
        s.file.display().to_string()
    } else {
        format!("{}:{}", s.file.display(), s.line)
    }
}

fn rule_ref(r: &RuleRef) -> String {
    if r.line == 0 {
        r.file.clone()
    } else {
        format!("{}:{}", r.file, r.line)
    }
}

/// A date when the instant is the start (or, for `until`, the end) of a UTC day.
fn instant(t: DateTime<Utc>, end_of_day: bool) -> String {
    let day_edge = if end_of_day {
        t.hour() == 23 && t.minute() == 59 && t.second() == 59
    } else {
        t.hour() == 0 && t.minute() == 0 && t.second() == 0
    };
    if day_edge {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

fn duration_ms(ms: u64) -> String {
    match ms {
        0 => "0".to_string(),
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}min", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    }
}

fn login_entry(l: &Login, now: DateTime<Utc>) -> LoginEntry {
    let status = match l.check_window(now) {
        Ok(()) => "valid",
        Err(crate::rules::WindowError::NotYet { .. }) => "not yet valid",
        Err(crate::rules::WindowError::Expired { .. }) => "expired",
    };
    LoginEntry {
        user: l.user.clone(),
        agreement: l.agreement.clone(),
        valid_from: l.valid_from.map(|t| instant(t, false)),
        valid_until: l.valid_until.map(|t| instant(t, true)),
        status: status.to_string(),
    }
}

/// A column type a mask spec fits, to describe a mask when the catalog is unknown.
fn guess_type(spec: &MaskSpec) -> ColumnType {
    match spec {
        MaskSpec::DateTrunc { .. } => ColumnType::Date,
        MaskSpec::Bucket { .. } | MaskSpec::Round { .. } | MaskSpec::Noise { .. } => ColumnType::Numeric,
        _ => ColumnType::Text {
            oid: 25,
            max_chars: None,
        },
    }
}

/// What the rules say a role gets for one ruled column (the order `policy::compile` uses).
fn from_rules(
    rules: &RuleSet,
    role: &RoleRule,
    name: &ColumnName,
) -> (Gets, Option<(String, MaskSpec)>, Option<String>) {
    if let Some(ov) = role.masks.get(name) {
        return match &ov.action {
            Override::Clear => (Gets::Clear, None, Some(source(&ov.source))),
            Override::Deny => (Gets::Denied, None, Some(source(&ov.source))),
            Override::Mask(m) => (
                Gets::Masked,
                Some((m.text.clone(), m.spec.clone())),
                Some(source(&ov.source)),
            ),
        };
    }
    let Some(rule) = rules.tables.get(&name.table).and_then(|t| t.get(&name.column)) else {
        return (Gets::Clear, None, None);
    };
    let at = Some(source(&rule.source));
    if rule.class == Class::Secret {
        return (Gets::Denied, None, at);
    }
    if rule.class <= role.sees {
        return (Gets::Clear, None, at);
    }
    let mask = match &rule.mask {
        Some(m) => (m.text.clone(), m.spec.clone()),
        None => ("redact".to_string(), MaskSpec::Redact),
    };
    (Gets::Masked, Some(mask), at)
}

fn class_of(rules: &RuleSet, name: &ColumnName) -> Option<String> {
    rules
        .tables
        .get(&name.table)
        .and_then(|t| t.get(&name.column))
        .map(|r| r.class.to_string())
}

pub fn build(
    rules: &RuleSet,
    plans: &HashMap<String, Arc<RolePlan>>,
    catalog: Option<&Catalog>,
    findings: Option<&[Finding]>,
    now: DateTime<Utc>,
) -> Report {
    let keys = crate::report::stand_in_keys(rules);
    let roles = rules
        .roles
        .values()
        .map(|role| {
            let mut entry = role_header(rules, role, now);
            if !role.unrestricted {
                match plans.get(&role.name) {
                    Some(plan) => from_plan(rules, role, plan, catalog, &mut entry),
                    None => from_rules_only(rules, role, &keys, &mut entry),
                }
            }
            for t in &entry.tables {
                for c in &t.columns {
                    match c.gets {
                        Gets::Clear => entry.counts.clear += 1,
                        Gets::Masked => entry.counts.masked += 1,
                        Gets::Denied => entry.counts.denied += 1,
                    }
                }
            }
            entry
        })
        .collect();
    let uncovered = findings
        .map(|f| crate::scan::coverage(f, rules))
        .unwrap_or_default()
        .into_iter()
        .map(|(column, why)| Uncovered { column, why })
        .collect();
    Report {
        generated_at: now.format("%Y-%m-%d %H:%M UTC").to_string(),
        rules_dir: rules.dir.display().to_string(),
        rules_files: rules
            .files
            .iter()
            .map(|f| {
                f.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect(),
        catalog_relations: catalog.map(|c| c.relations.len()),
        keys: rules
            .keys
            .values()
            .map(|k| KeyEntry {
                id: k.id.clone(),
                read_from: match &k.from {
                    KeySource::Env(v) => format!("environment variable {v}"),
                    KeySource::File(p) => format!("file {}", p.display()),
                },
            })
            .collect(),
        roles,
        scan_findings: findings.map(|f| f.len()),
        uncovered,
        warnings: rules.warnings.iter().map(|w| w.to_string()).collect(),
    }
}

fn role_header(rules: &RuleSet, role: &RoleRule, now: DateTime<Utc>) -> RoleEntry {
    let mut limits = Vec::new();
    if let Some(ms) = role.limits.statement_timeout_ms {
        limits.push(LimitEntry {
            name: "statement_timeout".into(),
            value: duration_ms(ms),
        });
    }
    if let Some(n) = role.limits.max_rows {
        limits.push(LimitEntry {
            name: "max_rows".into(),
            value: n.to_string(),
        });
    }
    if let Some(n) = role.limits.max_sessions {
        limits.push(LimitEntry {
            name: "max_sessions".into(),
            value: n.to_string(),
        });
    }
    let unruled = if role.unrestricted {
        "clear (unrestricted: bypasses every rule)"
    } else {
        match role.default {
            DefaultAction::Clear => "clear",
            DefaultAction::Mask => {
                "masked with redact (null where redact does not fit the type, denied where neither does)"
            }
        }
    };
    RoleEntry {
        name: role.name.clone(),
        unrestricted: role.unrestricted,
        sees: if role.unrestricted {
            "everything".to_string()
        } else {
            role.sees.to_string()
        },
        unruled_columns: unruled.to_string(),
        limits,
        logins: rules
            .logins
            .values()
            .filter(|l| l.role == role.name)
            .map(|l| login_entry(l, now))
            .collect(),
        row_filters: if role.unrestricted {
            Vec::new()
        } else {
            role.row_filters
                .iter()
                .map(|(t, f)| RowFilterEntry {
                    table: t.to_string(),
                    filter: f.sql.trim().to_string(),
                    rule: source(&f.source),
                })
                .collect()
        },
        tables: Vec::new(),
        clear_relations: Vec::new(),
        counts: Counts::default(),
    }
}

/// Exactly what the compiled plan says, for every column of every protected relation.
fn from_plan(
    rules: &RuleSet,
    role: &RoleRule,
    plan: &RolePlan,
    catalog: Option<&Catalog>,
    entry: &mut RoleEntry,
) {
    let mut tables: Vec<_> = plan.tables.values().collect();
    tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    for t in tables {
        let table = TableName::new(t.schema.clone(), t.name.clone());
        let columns = t
            .columns
            .iter()
            .map(|c| {
                let name = ColumnName {
                    table: table.clone(),
                    column: c.name.clone(),
                };
                let (gets, mask, reveals) = match &c.action {
                    ColumnAction::Clear => (Gets::Clear, None, None),
                    ColumnAction::Deny => (Gets::Denied, None, None),
                    ColumnAction::Mask(m) => {
                        // The mask as written when a rule names the column; a view column
                        // inheriting its table's mask, or a default mask, by its name.
                        let written = match from_rules(rules, role, &name) {
                            (Gets::Masked, Some((text, _)), _) => text,
                            _ if c.rule.as_ref().is_some_and(|r| r.what.contains("default: mask")) => {
                                format!("{} (default: mask)", m.spec().name())
                            }
                            _ => m.spec().name().to_string(),
                        };
                        (Gets::Masked, Some(written), Some(m.reveals()))
                    }
                };
                ColumnEntry {
                    column: c.name.clone(),
                    class: class_of(rules, &name),
                    gets,
                    mask,
                    reveals,
                    rule: c.rule.as_ref().map(rule_ref),
                }
            })
            .collect();
        entry.tables.push(TableEntry {
            table: table.to_string(),
            // As the DBA wrote it when the role's rules name the table, else as compiled.
            row_filter: t.row_filter.as_ref().map(|(f, _)| {
                role.row_filters
                    .get(&table)
                    .map(|w| w.sql.trim().to_string())
                    .unwrap_or_else(|| f.clone())
            }),
            columns,
        });
    }
    if let Some(cat) = catalog {
        let protected: BTreeSet<u32> = plan.tables.keys().copied().collect();
        let mut clear: Vec<String> = cat
            .relations
            .values()
            .filter(|r| !protected.contains(&r.oid) && !SYSTEM_SCHEMAS.contains(&r.schema.as_str()))
            // Views are expanded by the analyser: the rules of the tables under them apply.
            .filter(|r| r.kind != RelKind::View)
            .filter(|r| !r.schema.starts_with("pg_"))
            .map(|r| r.qualified_name())
            .collect();
        clear.sort();
        entry.clear_relations = clear;
    }
}

/// The rules alone: every column a rule names for the role (tables, masks, row filters),
/// in the order the rules list them (file, line; role overrides of unruled columns after).
fn from_rules_only(rules: &RuleSet, role: &RoleRule, keys: &crate::mask::Keys, entry: &mut RoleEntry) {
    let mut columns: BTreeMap<TableName, BTreeMap<String, Source>> = BTreeMap::new();
    for (t, cols) in &rules.tables {
        let entry = columns.entry(t.clone()).or_default();
        for (c, rule) in cols {
            entry.insert(c.clone(), rule.source.clone());
        }
    }
    for (c, ov) in &role.masks {
        let table = columns.entry(c.table.clone()).or_default();
        table.entry(c.column.clone()).or_insert_with(|| ov.source.clone());
    }
    for t in role.row_filters.keys() {
        columns.entry(t.clone()).or_default();
    }
    for (table, cols) in columns {
        let mut cols: Vec<(String, Source)> = cols.into_iter().collect();
        cols.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        let entries = cols
            .into_iter()
            .map(|(column, _)| {
                let name = ColumnName {
                    table: table.clone(),
                    column: column.clone(),
                };
                let (gets, mask, rule) = from_rules(rules, role, &name);
                let reveals = mask
                    .as_ref()
                    .and_then(|(_, spec)| Mask::new(spec, &guess_type(spec), keys).ok())
                    .map(|m| m.reveals());
                ColumnEntry {
                    column,
                    class: class_of(rules, &name),
                    gets,
                    mask: mask.map(|(t, _)| t),
                    reveals,
                    rule,
                }
            })
            .collect();
        entry.tables.push(TableEntry {
            table: table.to_string(),
            row_filter: role.row_filters.get(&table).map(|f| f.sql.trim().to_string()),
            columns: entries,
        });
    }
}
