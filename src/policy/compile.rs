//! Compiling rules + catalog into one [`RolePlan`] per role.
//!
//! This is where rules meet the real database: every table and column a rule names must
//! exist, every mask must fit its column's type ([`Mask::new`] decides), every row filter may
//! only read its table's columns, every allowed function must exist. All problems are
//! collected and returned together, each pointing at the rule's file and line.
//!
//! How a restricted role's action for a column is chosen, first match wins:
//! 1. the role's `masks:` entry for the column (clear, deny or a mask);
//! 2. the column's rule under `tables:`: `secret` is denied; a class the role sees is clear;
//!    a class above it is masked with the rule's mask, or `redact` when none is given;
//! 3. no rule: clear, or with `default: mask` (privacy by default) `redact` for columns of
//!    user schemas (`pg_catalog` and `information_schema` stay clear so that psql and
//!    drivers keep working), falling back to `null` and then to deny when redact does not
//!    fit the column's type.
//!
//! Invariants: pure (no I/O); a relation gets a [`TablePlan`] whenever any of its columns is
//! not clear or it has a row filter, and the plan lists every column of the relation.
//!
//! Views: the statement analyser expands a view's definition, so the rules of the tables
//! under it apply when it is read. A plan on a view would instead make it read like a table
//! with its own masks, so views get no plan from `default: mask`, and rules naming a view
//! that reads a protected table are an error (they would replace the table's rules).
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::catalog::{Catalog, Column, RelKind, Relation};
use crate::mask::{ColumnType, Keys, Mask, MaskSpec};
use crate::rules::{
    suggest, Class, ColumnName, DefaultAction, MaskRule, Override, RoleRule, RuleError, RuleSet, Source,
};

use super::{ColumnAction, ColumnPlan, Limits, RolePlan, RuleRef, TablePlan};

/// Schemas whose relations `default: mask` leaves clear.
const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

fn rule_ref(source: &Source, what: String) -> RuleRef {
    RuleRef {
        file: source.file.display().to_string(),
        line: source.line,
        what,
    }
}

/// A built-in mask by name (`redact`, `null`), through the masking library's own parser so
/// that this module does not depend on the spec's variant names.
fn builtin(name: &str) -> Option<MaskSpec> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

fn column_type(c: &Column) -> ColumnType {
    ColumnType::from_catalog(c.type_oid, c.typmod)
}

/// Compiles the rules against the catalog. Keys must hold every key a token mask names.
pub fn compile(
    rules: &RuleSet,
    catalog: &Catalog,
    keys: &Keys,
) -> Result<HashMap<String, Arc<RolePlan>>, Vec<RuleError>> {
    let mut c = Compiler {
        rules,
        catalog,
        keys,
        errors: Vec::new(),
        table_masks: HashMap::new(),
        redact: builtin("redact"),
        default_masks: HashMap::new(),
        null: builtin("null"),
    };
    c.check_tables();
    let mut plans = HashMap::new();
    for role in rules.roles.values() {
        c.check_role(role);
        plans.insert(role.name.clone(), Arc::new(c.plan(role)));
    }
    if c.errors.is_empty() {
        Ok(plans)
    } else {
        let mut errors = c.errors;
        errors.sort_by(|a, b| {
            (&a.file, a.line, a.column, &a.message).cmp(&(&b.file, b.line, b.column, &b.message))
        });
        errors.dedup();
        Err(errors)
    }
}

/// A built-in mask with its name (`redact`, `null`).
type LabelledMask = (Arc<Mask>, &'static str);

struct Compiler<'a> {
    rules: &'a RuleSet,
    catalog: &'a Catalog,
    keys: &'a Keys,
    errors: Vec<RuleError>,
    /// The mask of each `tables:` column rule (its own or redact), built once and shared by
    /// every role that masks the column. Absent when it failed (an error is recorded).
    table_masks: HashMap<ColumnName, Arc<Mask>>,
    redact: Option<MaskSpec>,
    null: Option<MaskSpec>,
    /// `default: mask` masks by column type (type oid, typmod), built once per type: a
    /// large catalog has many columns but few types.
    default_masks: HashMap<(u32, i32), Option<LabelledMask>>,
}

impl<'a> Compiler<'a> {
    fn relation(&mut self, table: &crate::rules::TableName, source: &Source) -> Option<&'a Relation> {
        let cat: &'a Catalog = self.catalog;
        match cat.get(&table.schema, &table.name) {
            Some(r) => Some(r),
            None => {
                let names: Vec<String> = cat
                    .relations
                    .values()
                    .filter(|r| !SYSTEM_SCHEMAS.contains(&r.schema.as_str()))
                    .map(Relation::qualified_name)
                    .collect();
                let wanted = table.to_string();
                let mut e = RuleError::at(source, format!("unknown table {wanted}"));
                match suggest::closest(&wanted, names.iter().map(String::as_str)) {
                    Some(s) => e = e.with_hint(format!("did you mean '{s}'?")),
                    None => {
                        e = e.with_hint("names are case-sensitive and schema-qualified (public.customers)")
                    }
                }
                self.errors.push(e);
                None
            }
        }
    }

    fn column<'r>(&mut self, rel: &'r Relation, name: &str, source: &Source) -> Option<&'r Column> {
        match rel.column(name) {
            Some(c) => Some(c),
            None => {
                self.errors.push(
                    RuleError::at(
                        source,
                        format!("unknown column '{name}' in {}", rel.qualified_name()),
                    )
                    .with_hint(suggest::hint(
                        name,
                        rel.columns.iter().map(|c| c.name.as_str()),
                        "columns",
                    )),
                );
                None
            }
        }
    }

    fn build_mask(&mut self, rule: &MaskRule, rel: &Relation, col: &Column) -> Option<Arc<Mask>> {
        match Mask::new(&rule.spec, &column_type(col), self.keys) {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                self.errors.push(RuleError::at(
                    &rule.source,
                    format!(
                        "column {}.{} ({}): {e}",
                        rel.qualified_name(),
                        col.name,
                        col.type_name
                    ),
                ));
                None
            }
        }
    }

    /// Every `tables:` rule names a real column, and its mask fits the column's type.
    fn check_tables(&mut self) {
        let rules = self.rules;
        for (table, columns) in &rules.tables {
            let Some(first) = columns.values().map(|c| &c.source).min() else {
                continue;
            };
            let Some(rel) = self.relation(table, first) else {
                continue;
            };
            for rule in columns.values() {
                let Some(col) = self.column(rel, &rule.column.column, &rule.source) else {
                    continue;
                };
                let mask = match (&rule.mask, rule.class) {
                    (Some(m), _) => self.build_mask(m, rel, col),
                    // Only internal and sensitive columns are ever masked by class.
                    (None, Class::Internal | Class::Sensitive) => match &self.redact {
                        Some(spec) => match Mask::new(spec, &column_type(col), self.keys) {
                            Ok(m) => Some(Arc::new(m)),
                            Err(e) => {
                                self.errors.push(
                                    RuleError::at(
                                        &rule.source,
                                        format!(
                                            "column {} ({}) has no mask and redact does not fit it: {e}",
                                            rule.column, col.type_name
                                        ),
                                    )
                                    .with_hint("give the column a mask that fits its type"),
                                );
                                None
                            }
                        },
                        None => None,
                    },
                    (None, _) => None,
                };
                if let Some(m) = mask {
                    self.table_masks.insert(rule.column.clone(), m);
                }
            }
        }
    }

    /// A role's overrides, row filters and functions name real things.
    fn check_role(&mut self, role: &RoleRule) {
        for (name, ov) in &role.masks {
            let Some(rel) = self.relation(&name.table, &ov.source) else {
                continue;
            };
            let Some(col) = self.column(rel, &name.column, &ov.source) else {
                continue;
            };
            if let Override::Mask(m) = &ov.action {
                self.build_mask(m, rel, col);
            }
        }
        for (table, filter) in &role.row_filters {
            let Some(rel) = self.relation(table, &filter.source) else {
                continue;
            };
            for c in &filter.columns {
                if rel.column(c).is_none() {
                    self.errors.push(
                        RuleError::at(
                            &filter.source,
                            format!(
                                "row filter of role {} reads unknown column '{c}' of {table}",
                                role.name
                            ),
                        )
                        .with_hint(suggest::hint(
                            c,
                            rel.columns.iter().map(|c| c.name.as_str()),
                            "columns",
                        )),
                    );
                }
            }
        }
        if let Some(grants) = self.rules.functions.get(&role.name) {
            for g in grants {
                let exists = self.catalog.has_function(&g.name.schema, &g.name.name);
                if !exists {
                    self.errors
                        .push(RuleError::at(&g.source, format!("unknown function {}", g.name)));
                }
            }
        }
    }

    fn plan(&mut self, role: &RoleRule) -> RolePlan {
        let allowed_functions: HashSet<String> = self
            .rules
            .functions
            .get(&role.name)
            .map(|gs| gs.iter().map(|g| g.name.to_string()).collect())
            .unwrap_or_default();
        let limits = Limits {
            ..role.limits.clone()
        };
        if role.unrestricted {
            let mut p = RolePlan::unrestricted(&role.name);
            p.limits = limits;
            p.allowed_functions = allowed_functions;
            return p;
        }
        let mut tables = HashMap::new();
        let cat = self.catalog;
        // Relations some rule of this role names; with `default: clear` all others are
        // unprotected and skipped without building their column plans.
        let ruled: HashSet<crate::rules::TableName> = self
            .rules
            .tables
            .keys()
            .cloned()
            .chain(role.masks.keys().map(|c| c.table.clone()))
            .chain(role.row_filters.keys().cloned())
            .collect();
        for rel in cat.relations.values() {
            if role.default == DefaultAction::Clear
                && !ruled.contains(&crate::rules::TableName::new(
                    rel.schema.clone(),
                    rel.name.clone(),
                ))
            {
                continue;
            }
            let mut columns = Vec::with_capacity(rel.columns.len());
            for col in &rel.columns {
                let (action, rule) = self.action(role, rel, col);
                columns.push(ColumnPlan {
                    name: col.name.clone(),
                    attnum: col.attnum,
                    action,
                    rule,
                });
            }
            let row_filter = role
                .row_filters
                .get(&crate::rules::TableName::new(
                    rel.schema.clone(),
                    rel.name.clone(),
                ))
                .map(|f| {
                    (
                        f.canonical.clone(),
                        rule_ref(
                            &f.source,
                            format!("row filter of role {} on {}", role.name, rel.qualified_name()),
                        ),
                    )
                });
            let protected =
                row_filter.is_some() || columns.iter().any(|c| !matches!(c.action, ColumnAction::Clear));
            if protected {
                tables.insert(
                    rel.oid,
                    TablePlan {
                        oid: rel.oid,
                        schema: rel.schema.clone(),
                        name: rel.name.clone(),
                        columns,
                        row_filter,
                    },
                );
            }
        }
        self.check_views(role, &tables);
        RolePlan {
            role: role.name.clone(),
            unrestricted: false,
            tables,
            allowed_functions,
            limits,
        }
    }

    /// A plan on a view makes the analyser read the view as a table, masking its columns
    /// by the view's own plan instead of expanding its definition; the masks and row filter
    /// of the tables under it would then not apply. So a view may only be ruled when what it
    /// reads is unprotected for the role.
    fn check_views(&mut self, role: &RoleRule, tables: &HashMap<u32, TablePlan>) {
        let cat = self.catalog;
        for plan in tables.values() {
            let Some(rel) = cat.by_oid(plan.oid) else { continue };
            if !matches!(rel.kind, RelKind::View | RelKind::MaterializedView) {
                continue;
            }
            let reads = view_reads(cat, rel);
            let protected: Vec<String> = match &reads {
                None => vec!["(an unparsable definition)".to_string()],
                Some(rs) => rs
                    .iter()
                    .filter(|r| tables.contains_key(&r.oid))
                    .map(|r| r.qualified_name())
                    .collect(),
            };
            if protected.is_empty() {
                continue;
            }
            let name = crate::rules::TableName::new(rel.schema.clone(), rel.name.clone());
            let source = self
                .rules
                .tables
                .get(&name)
                .and_then(|cols| cols.values().map(|c| &c.source).min())
                .or_else(|| {
                    role.masks
                        .iter()
                        .filter(|(c, _)| c.table == name)
                        .map(|(_, o)| &o.source)
                        .min()
                })
                .or_else(|| role.row_filters.get(&name).map(|f| &f.source))
                .cloned()
                .unwrap_or_else(|| role.source.clone());
            self.errors.push(
                RuleError::at(
                    &source,
                    format!(
                        "view {name} reads {}, which has rules: rules on the view would replace them",
                        protected.join(", ")
                    ),
                )
                .with_hint(
                    "rule the tables under the view; pgveil applies their rules when the view is read",
                ),
            );
        }
    }

    fn action(&mut self, role: &RoleRule, rel: &Relation, col: &Column) -> (ColumnAction, Option<RuleRef>) {
        let name = ColumnName {
            table: crate::rules::TableName::new(rel.schema.clone(), rel.name.clone()),
            column: col.name.clone(),
        };
        if let Some(ov) = role.masks.get(&name) {
            let what = |a: &str| format!("{name} (role {} masks: {a})", role.name);
            return match &ov.action {
                Override::Clear => (ColumnAction::Clear, Some(rule_ref(&ov.source, what("clear")))),
                Override::Deny => (ColumnAction::Deny, Some(rule_ref(&ov.source, what("deny")))),
                Override::Mask(m) => match Mask::new(&m.spec, &column_type(col), self.keys) {
                    Ok(mask) => (
                        ColumnAction::Mask(Arc::new(mask)),
                        Some(rule_ref(&ov.source, what(&m.text))),
                    ),
                    // Already reported by check_role; deny so the plan stays closed.
                    Err(_) => (ColumnAction::Deny, Some(rule_ref(&ov.source, what(&m.text)))),
                },
            };
        }
        if let Some(rule) = self.rules.tables.get(&name.table).and_then(|t| t.get(&col.name)) {
            if rule.class == Class::Secret {
                let what = format!("{name} (class secret; denied to restricted roles)");
                return (ColumnAction::Deny, Some(rule_ref(&rule.source, what)));
            }
            if rule.class <= role.sees {
                let what = format!(
                    "{name} (class {}; role {} sees {})",
                    rule.class, role.name, role.sees
                );
                return (ColumnAction::Clear, Some(rule_ref(&rule.source, what)));
            }
            let mask_text = rule.mask.as_ref().map(|m| m.text.as_str()).unwrap_or("redact");
            let what = format!(
                "{name} (class {}, mask {mask_text}; role {} sees {})",
                rule.class, role.name, role.sees
            );
            return match self.table_masks.get(&name) {
                Some(m) => (ColumnAction::Mask(m.clone()), Some(rule_ref(&rule.source, what))),
                None => (ColumnAction::Deny, Some(rule_ref(&rule.source, what))),
            };
        }
        // Views are left out of privacy by default: the analyser expands them, so the
        // default masks of the tables under them apply.
        let is_view = matches!(rel.kind, RelKind::View | RelKind::MaterializedView);
        if role.default == DefaultAction::Mask && !is_view && !SYSTEM_SCHEMAS.contains(&rel.schema.as_str()) {
            let default_mask = match self.default_masks.get(&(col.type_oid, col.typmod)) {
                Some(m) => m.clone(),
                None => {
                    let ty = column_type(col);
                    let built = [(&self.redact, "redact"), (&self.null, "null")]
                        .into_iter()
                        .find_map(|(spec, label)| {
                            let m = Mask::new(spec.as_ref()?, &ty, self.keys).ok()?;
                            Some((Arc::new(m), label))
                        });
                    self.default_masks
                        .insert((col.type_oid, col.typmod), built.clone());
                    built
                }
            };
            if let Some((mask, label)) = default_mask {
                let what = format!("{name} (role {} default: mask, {label})", role.name);
                return (
                    ColumnAction::Mask(mask),
                    Some(rule_ref(&role.default_source, what)),
                );
            }
            let what = format!(
                "{name} (role {} default: mask; no mask fits {})",
                role.name, col.type_name
            );
            return (ColumnAction::Deny, Some(rule_ref(&role.default_source, what)));
        }
        (ColumnAction::Clear, None)
    }
}

/// Relations a view or materialized view definition reads (as printed by PostgreSQL:
/// unqualified names resolve in the view's schema, then `public`). None when unparsable.
fn view_reads<'c>(cat: &'c Catalog, rel: &Relation) -> Option<Vec<&'c Relation>> {
    let def = rel.view_definition.as_deref()?;
    let names = pg_query::parse(def, 0).ok()?.tables();
    Some(
        names
            .iter()
            .filter_map(|n| match n.split_once('.') {
                Some((s, t)) => cat.get(s, t),
                None => cat.get(&rel.schema, n).or_else(|| cat.get("public", n)),
            })
            .collect(),
    )
}

/// Per role: (relation, column, action) for every non-clear column, sorted, for summaries
/// (`pgveil check`) and tests.
pub fn describe(plan: &RolePlan) -> Vec<(String, String, String)> {
    let mut out = BTreeMap::new();
    for t in plan.tables.values() {
        for c in &t.columns {
            let a = match &c.action {
                ColumnAction::Clear => continue,
                ColumnAction::Deny => "deny".to_string(),
                ColumnAction::Mask(m) => format!("mask {}", m.spec().name()),
            };
            out.insert((format!("{}.{}", t.schema, t.name), c.name.clone()), a);
        }
        if let Some((f, _)) = &t.row_filter {
            out.insert(
                (format!("{}.{}", t.schema, t.name), String::new()),
                format!("rows where {f}"),
            );
        }
    }
    out.into_iter().map(|((t, c), a)| (t, c, a)).collect()
}
