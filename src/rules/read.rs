//! Reading YAML trees into rules, one section at a time, collecting every error.
//!
//! Each reader takes a node, checks its shape (mapping, known fields, scalar types) and
//! either records the entry with its [`Source`] or records errors and moves on, so that a
//! DBA sees all problems of a directory in one run. Cross-entry checks (a login's role
//! exists, a mask's key exists) run in [`Reader::finish`], after every file is read.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};

use super::suggest;
use super::yaml::{self, Key, Node, Pos, Value};
use super::{
    check_row_filter, Class, ColumnName, ColumnOverride, ColumnRule, DefaultAction, FunctionGrant, KeyRule,
    KeySource, Login, MaskRule, Override, RoleRule, RowFilter, RuleError, RuleSet, Source, TableName,
};
use crate::mask::MaskSpec;
use crate::policy::Limits;

/// Top-level sections of a rules file.
pub const SECTIONS: [&str; 5] = ["tables", "roles", "logins", "keys", "functions"];
pub const COLUMN_FIELDS: [&str; 2] = ["class", "mask"];
pub const ROLE_FIELDS: [&str; 6] = [
    "unrestricted",
    "sees",
    "default",
    "masks",
    "row_filters",
    "limits",
];
pub const LIMIT_FIELDS: [&str; 3] = ["max_rows", "statement_timeout", "max_sessions"];
/// `password` is listed so that it is reported as a clear-text password, not as unknown.
pub const LOGIN_FIELDS: [&str; 8] = [
    "role",
    "scram",
    "md5",
    "legacy_md5",
    "agreement",
    "valid_from",
    "valid_until",
    "password",
];
pub const KEY_FIELDS: [&str; 2] = ["env", "file"];

/// Accumulates rules and errors over the files of a directory.
pub struct Reader {
    set: RuleSet,
    errors: Vec<RuleError>,
    /// (key id, where the mask using it is, what uses it) for the check in `finish`.
    key_refs: Vec<(String, Source, String)>,
}

impl Reader {
    pub fn new(dir: &Path) -> Reader {
        Reader {
            set: RuleSet {
                dir: dir.to_path_buf(),
                ..RuleSet::default()
            },
            errors: Vec::new(),
            key_refs: Vec::new(),
        }
    }

    pub fn read_file(&mut self, file: &Path, text: &str) {
        let f = Ctx {
            file: file.to_path_buf(),
        };
        let (root, syntax) = yaml::parse(text);
        for e in syntax {
            self.errors.push(f.err(e.pos, e.message));
        }
        let Some(root) = root else { return };
        if root.is_null() {
            return; // an empty file (or comments only) is allowed
        }
        let Value::Map(sections) = &root.value else {
            self.errors.push(
                f.err(
                    root.pos,
                    format!("a rules file must be a mapping of sections, got {}", root.kind()),
                )
                .with_hint(format!("sections are: {}", SECTIONS.join(", "))),
            );
            return;
        };
        for (key, node) in sections {
            if node.is_null() {
                continue; // `functions:` with nothing under it
            }
            match key.text.as_str() {
                "tables" => self.tables(&f, node),
                "roles" => self.roles(&f, node),
                "logins" => self.logins(&f, node),
                "keys" => self.keys(&f, node),
                "functions" => self.functions(&f, node),
                other => self.errors.push(
                    f.err(key.pos, format!("unknown section '{other}'"))
                        .with_hint(suggest::hint(other, SECTIONS, "sections")),
                ),
            }
        }
    }

    /// Cross-entry checks, then the rules or the errors.
    pub fn finish(mut self) -> (RuleSet, Vec<RuleError>) {
        let roles: Vec<String> = self.set.roles.keys().cloned().collect();
        let role_names = || roles.iter().map(String::as_str);
        for login in self.set.logins.values() {
            if !login.role.is_empty() && !self.set.roles.contains_key(&login.role) {
                self.errors.push(
                    RuleError::at(
                        &login.source,
                        format!("login {} has unknown role '{}'", login.user, login.role),
                    )
                    .with_hint(suggest::hint(&login.role, role_names(), "roles")),
                );
            }
        }
        // A warning, not an error: revoking a deal's last login must never be blocked by
        // validation (a refused reload would keep the revoked login in force).
        for role in self.set.roles.values() {
            if !self.set.logins.values().any(|l| l.role == role.name) {
                self.set.warnings.push(
                    RuleError::at(&role.source, format!("role {} has no login", role.name))
                        .with_hint("add a login with this role under logins:, or remove the role"),
                );
            }
        }
        for (role, grants) in &self.set.functions {
            if !self.set.roles.contains_key(role) {
                if let Some(g) = grants.first() {
                    self.errors.push(
                        RuleError::at(&g.source, format!("functions: unknown role '{role}'"))
                            .with_hint(suggest::hint(role, role_names(), "roles")),
                    );
                }
            }
        }
        let key_ids: Vec<String> = self.set.keys.keys().cloned().collect();
        for (id, source, what) in &self.key_refs {
            if !self.set.keys.contains_key(id) {
                let hint = if id == crate::mask::DEFAULT_KEY_ID {
                    format!("a keyed mask without key: uses the key id '{id}': declare it under keys:, or write key: <id>")
                } else {
                    suggest::hint(id, key_ids.iter().map(String::as_str), "keys")
                };
                self.errors
                    .push(RuleError::at(source, format!("{what} uses unknown key '{id}'")).with_hint(hint));
            }
        }
        (self.set, self.errors)
    }

    // ---- tables -------------------------------------------------------------------------

    fn tables(&mut self, f: &Ctx, node: &Node) {
        let Some(tables) = self.map(f, node, "tables:") else {
            return;
        };
        for (tkey, tnode) in tables {
            let Some(table) = self.table_name(f, tkey) else {
                continue;
            };
            let Some(columns) = self.map(f, tnode, &format!("table {table}")) else {
                continue;
            };
            for (ckey, cnode) in columns {
                let column = ColumnName {
                    table: table.clone(),
                    column: ckey.text.clone(),
                };
                if let Some(rule) = self.column_rule(f, &column, ckey, cnode) {
                    let existing = self.set.tables.entry(table.clone()).or_default();
                    if let Some(first) = existing.get(&column.column) {
                        self.errors.push(
                            f.err(
                                ckey.pos,
                                format!("column {column} is ruled twice: here and at {}", first.source),
                            )
                            .with_hint("keep one rule per column"),
                        );
                    } else {
                        existing.insert(column.column.clone(), rule);
                    }
                }
            }
        }
    }

    fn column_rule(&mut self, f: &Ctx, column: &ColumnName, key: &Key, node: &Node) -> Option<ColumnRule> {
        let source = f.src(key.pos);
        // Shorthand: `city: public` is a class alone.
        if let Some(text) = node.as_str() {
            if node.is_null() {
                self.errors.push(
                    f.err(key.pos, format!("column {column} has no rule"))
                        .with_hint("write { class: public | internal | sensitive | secret, mask: ... }"),
                );
                return None;
            }
            let class = self.class(f, node.pos, text)?;
            return Some(ColumnRule {
                column: column.clone(),
                class,
                mask: None,
                source,
            });
        }
        let before = self.errors.len();
        let fields = self.fields(f, node, &COLUMN_FIELDS, &format!("column {column}"))?;
        let mut class = None;
        let mut mask = None;
        let mut ok = true;
        for (k, v) in fields {
            match k.text.as_str() {
                "class" => match self.scalar(f, v, "class") {
                    Some(t) => class = self.class(f, v.pos, t),
                    None => ok = false,
                },
                "mask" => match self.mask(f, v, &format!("mask of {column}")) {
                    Some(m) => mask = Some(m),
                    None => ok = false,
                },
                _ => {}
            }
        }
        let Some(class) = class else {
            // Only when nothing else is wrong with the entry: `clas: x` already says it.
            if ok && self.errors.len() == before {
                self.errors.push(
                    f.err(key.pos, format!("column {column} has no class"))
                        .with_hint("add class: public | internal | sensitive | secret"),
                );
            }
            return None;
        };
        if !ok {
            return None;
        }
        Some(ColumnRule {
            column: column.clone(),
            class,
            mask,
            source,
        })
    }

    fn class(&mut self, f: &Ctx, pos: Pos, text: &str) -> Option<Class> {
        match Class::parse(text) {
            Some(c) => Some(c),
            None => {
                self.errors.push(
                    f.err(pos, format!("unknown class '{text}'"))
                        .with_hint(suggest::hint(text, Class::NAMES, "classes")),
                );
                None
            }
        }
    }

    /// A mask spec, deserialized by the masking library from the node as written.
    fn mask(&mut self, f: &Ctx, node: &Node, what: &str) -> Option<MaskRule> {
        let json = node.to_json();
        let text = match &json {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match serde_json::from_value::<MaskSpec>(json.clone()) {
            Ok(spec) => {
                let key_ids = match &spec {
                    MaskSpec::Token { key, .. } | MaskSpec::Noise { key, .. } => vec![key.clone()],
                    _ => Vec::new(),
                };
                let source = f.src(node.pos);
                for id in &key_ids {
                    self.key_refs.push((id.clone(), source.clone(), what.to_string()));
                }
                Some(MaskRule {
                    spec,
                    text,
                    key_ids,
                    source,
                })
            }
            Err(e) => {
                let msg = e.to_string();
                let mut err = f.err(node.pos, format!("bad {what}: {msg}"));
                if let Some(h) = mask_hint(&msg) {
                    err = err.with_hint(h);
                }
                self.errors.push(err);
                None
            }
        }
    }

    // ---- roles --------------------------------------------------------------------------

    fn roles(&mut self, f: &Ctx, node: &Node) {
        let Some(roles) = self.map(f, node, "roles:") else {
            return;
        };
        for (rkey, rnode) in roles {
            let name = rkey.text.clone();
            if let Some(first) = self.set.roles.get(&name) {
                self.errors.push(f.err(
                    rkey.pos,
                    format!("role {name} is defined twice: here and at {}", first.source),
                ));
                continue;
            }
            // Kept even when it has errors (the load fails anyway), so that its logins are
            // not also reported as naming an unknown role.
            let role = self.role(f, rkey, rnode);
            self.set.roles.insert(name, role);
        }
    }

    fn role(&mut self, f: &Ctx, key: &Key, node: &Node) -> RoleRule {
        let name = key.text.clone();
        let what = format!("role {name}");
        let source = f.src(key.pos);
        let mut role = RoleRule {
            name: name.clone(),
            unrestricted: false,
            sees: Class::Public,
            default: DefaultAction::Clear,
            masks: BTreeMap::new(),
            row_filters: BTreeMap::new(),
            limits: Limits::default(),
            source: source.clone(),
            default_source: source.clone(),
        };
        if node.is_null() {
            return role; // `viewer:` alone: sees public, default clear
        }
        let Some(fields) = self.fields(f, node, &ROLE_FIELDS, &what) else {
            return role;
        };
        let mut restricted_fields = Vec::new();
        for (k, v) in fields {
            match k.text.as_str() {
                "unrestricted" => {
                    if let Some(b) = self.boolean(f, v, "unrestricted") {
                        role.unrestricted = b;
                    }
                }
                "sees" => {
                    restricted_fields.push(k);
                    if let Some(t) = self.scalar(f, v, "sees") {
                        if let Some(c) = self.class(f, v.pos, t) {
                            if c == Class::Secret {
                                self.errors.push(
                                    f.err(v.pos, format!("{what}: sees: secret has no effect, secret columns are denied to every restricted role"))
                                        .with_hint("use unrestricted: true, or name the column under masks: with clear"),
                                );
                            }
                            role.sees = c;
                        }
                    }
                }
                "default" => {
                    restricted_fields.push(k);
                    role.default_source = f.src(v.pos);
                    match self.scalar(f, v, "default") {
                        Some("clear") => role.default = DefaultAction::Clear,
                        Some("mask") => role.default = DefaultAction::Mask,
                        Some(other) => self.errors.push(
                            f.err(v.pos, format!("{what}: unknown default '{other}'"))
                                .with_hint(suggest::hint(other, ["clear", "mask"], "defaults")),
                        ),
                        None => {}
                    }
                }
                "masks" => {
                    restricted_fields.push(k);
                    self.overrides(f, v, &mut role);
                }
                "row_filters" => {
                    restricted_fields.push(k);
                    self.row_filters(f, v, &mut role);
                }
                "limits" => self.limits(f, v, &mut role.limits, &what),
                _ => {}
            }
        }
        if role.unrestricted {
            for k in restricted_fields {
                self.errors.push(
                    f.err(k.pos, format!("{what} is unrestricted: {} has no effect", k.text))
                        .with_hint("remove it, or remove unrestricted: true"),
                );
            }
        }
        role
    }

    fn overrides(&mut self, f: &Ctx, node: &Node, role: &mut RoleRule) {
        let what = format!("masks of role {}", role.name);
        let Some(entries) = self.map(f, node, &what) else {
            return;
        };
        for (k, v) in entries {
            let Some(column) = self.column_name(f, k) else {
                continue;
            };
            let action = match v.as_str() {
                Some("clear") if !v.is_null() => Override::Clear,
                Some("deny") => Override::Deny,
                _ => match self.mask(f, v, &format!("mask of {column} for role {}", role.name)) {
                    Some(m) => Override::Mask(m),
                    None => continue,
                },
            };
            role.masks.insert(
                column,
                ColumnOverride {
                    action,
                    source: f.src(k.pos),
                },
            );
        }
    }

    fn row_filters(&mut self, f: &Ctx, node: &Node, role: &mut RoleRule) {
        let what = format!("row_filters of role {}", role.name);
        let Some(entries) = self.map(f, node, &what) else {
            return;
        };
        for (k, v) in entries {
            let Some(table) = self.table_name(f, k) else {
                continue;
            };
            let Some(sql) = self.scalar(f, v, "row filter") else {
                continue;
            };
            match check_row_filter(&table, sql) {
                Ok(c) => {
                    role.row_filters.insert(
                        table,
                        RowFilter {
                            sql: sql.to_string(),
                            canonical: c.canonical,
                            columns: c.columns,
                            source: f.src(v.pos),
                        },
                    );
                }
                Err(msg) => self.errors.push(
                    f.err(
                        v.pos,
                        format!("bad row filter for {table} in role {}: {msg}", role.name),
                    )
                    .with_hint("a row filter is a boolean SQL expression over the table's own columns"),
                ),
            }
        }
    }

    fn limits(&mut self, f: &Ctx, node: &Node, limits: &mut Limits, what: &str) {
        let Some(fields) = self.fields(f, node, &LIMIT_FIELDS, &format!("limits of {what}")) else {
            return;
        };
        for (k, v) in fields {
            let Some(text) = self.scalar(f, v, &k.text) else {
                continue;
            };
            match k.text.as_str() {
                "max_rows" => match text.parse::<u64>() {
                    Ok(n) => limits.max_rows = Some(n),
                    Err(_) => self
                        .errors
                        .push(f.err(v.pos, format!("max_rows must be a whole number, got '{text}'"))),
                },
                "max_sessions" => match text.parse::<u32>() {
                    Ok(n) => limits.max_sessions = Some(n),
                    Err(_) => self.errors.push(f.err(
                        v.pos,
                        format!("max_sessions must be a whole number, got '{text}'"),
                    )),
                },
                "statement_timeout" => match parse_duration_ms(text) {
                    Some(ms) => limits.statement_timeout_ms = Some(ms),
                    None => self.errors.push(
                        f.err(
                            v.pos,
                            format!("statement_timeout must be a duration, got '{text}'"),
                        )
                        .with_hint("write e.g. 500ms, 30s, 5min or 1h"),
                    ),
                },
                _ => {}
            }
        }
    }

    // ---- logins -------------------------------------------------------------------------

    fn logins(&mut self, f: &Ctx, node: &Node) {
        let Some(logins) = self.map(f, node, "logins:") else {
            return;
        };
        for (ukey, unode) in logins {
            let user = ukey.text.clone();
            if let Some(first) = self.set.logins.get(&user) {
                self.errors.push(f.err(
                    ukey.pos,
                    format!("login {user} is defined twice: here and at {}", first.source),
                ));
                continue;
            }
            // Kept even when it has errors (the load fails anyway), so that its role is
            // checked too and every problem shows in one run.
            if let Some(login) = self.login(f, ukey, unode) {
                self.set.logins.insert(user, login);
            }
        }
    }

    fn login(&mut self, f: &Ctx, key: &Key, node: &Node) -> Option<Login> {
        let user = key.text.clone();
        let what = format!("login {user}");
        let fields = self.fields(f, node, &LOGIN_FIELDS, &what)?;
        let before = self.errors.len();
        let mut login = Login {
            user: user.clone(),
            role: String::new(),
            scram_verifier: None,
            md5: None,
            legacy_md5: false,
            agreement: None,
            valid_from: None,
            valid_until: None,
            source: f.src(key.pos),
        };
        let mut md5_pos = None;
        let mut from_at: Option<(Pos, String)> = None;
        let mut until_at: Option<(Pos, String)> = None;
        for (k, v) in fields {
            match k.text.as_str() {
                "password" => self.errors.push(
                    f.err(k.pos, format!("{what} has a clear-text password"))
                        .with_hint(
                        "never store passwords: run `pgveil hash-password` and paste its output as scram:",
                    ),
                ),
                "role" => login.role = self.scalar(f, v, "role").unwrap_or_default().to_string(),
                "scram" => {
                    if let Some(t) = self.scalar(f, v, "scram") {
                        match check_scram(t) {
                            Ok(()) => login.scram_verifier = Some(t.to_string()),
                            Err(m) => self.errors.push(
                                f.err(v.pos, format!("{what}: bad scram verifier: {m}"))
                                    .with_hint("paste the output of `pgveil hash-password`"),
                            ),
                        }
                    }
                }
                "md5" => {
                    if let Some(t) = self.scalar(f, v, "md5") {
                        md5_pos = Some(k.pos);
                        if t.len() == 35
                            && t.starts_with("md5")
                            && t[3..].bytes().all(|b| b.is_ascii_hexdigit())
                        {
                            login.md5 = Some(t.to_string());
                        } else {
                            self.errors.push(f.err(
                                v.pos,
                                format!("{what}: bad md5 verifier: expected 'md5' and 32 hex digits, got {} characters", t.len()),
                            ));
                        }
                    }
                }
                "legacy_md5" => login.legacy_md5 = self.boolean(f, v, "legacy_md5").unwrap_or(false),
                "agreement" => login.agreement = self.scalar(f, v, "agreement").map(str::to_string),
                "valid_from" => {
                    from_at = Some((v.pos, text_of(v)));
                    login.valid_from = self.instant(f, v, "valid_from", false);
                }
                "valid_until" => {
                    until_at = Some((v.pos, text_of(v)));
                    login.valid_until = self.instant(f, v, "valid_until", true);
                }
                _ => {}
            }
        }
        if let (Some(from), Some(until), Some((_, from_text)), Some((until_pos, until_text))) =
            (login.valid_from, login.valid_until, &from_at, &until_at)
        {
            if until < from {
                self.errors.push(f.err(
                    *until_pos,
                    format!("{what}: valid_until {until_text} is before valid_from {from_text}"),
                ));
            }
        }
        if login.role.is_empty() && self.errors.len() == before {
            self.errors.push(
                f.err(key.pos, format!("{what} has no role"))
                    .with_hint("add role: NAME"),
            );
        }
        if let (Some(_), false) = (&login.md5, login.legacy_md5) {
            self.errors.push(
                f.err(md5_pos.unwrap_or(key.pos), format!("{what} has an md5 verifier but not legacy_md5: true"))
                    .with_hint("MD5 is weak: prefer scram: (from `pgveil hash-password`); set legacy_md5: true only for clients that cannot do SCRAM"),
            );
        }
        if login.scram_verifier.is_none() && login.md5.is_none() && self.errors.len() == before {
            self.errors.push(
                f.err(key.pos, format!("{what} has no password verifier"))
                    .with_hint("run `pgveil hash-password` and paste its output as scram:"),
            );
        }
        Some(login)
    }

    /// A date (`2026-11-01`) or an RFC 3339 instant (`2026-11-01T09:00:00+08:00`).
    fn instant(&mut self, f: &Ctx, node: &Node, field: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
        let text = self.scalar(f, node, field)?;
        if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let t = if end_of_day {
                d.and_hms_nano_opt(23, 59, 59, 999_999_999)
            } else {
                d.and_hms_opt(0, 0, 0)
            };
            return t.map(|t| t.and_utc());
        }
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                self.errors.push(
                    f.err(node.pos, format!("{field} must be a date, got '{text}'"))
                        .with_hint("write YYYY-MM-DD (a whole day, UTC) or an RFC 3339 time such as 2026-11-01T09:00:00+08:00"),
                );
                None
            }
        }
    }

    // ---- keys and functions -------------------------------------------------------------

    fn keys(&mut self, f: &Ctx, node: &Node) {
        let Some(keys) = self.map(f, node, "keys:") else {
            return;
        };
        for (k, v) in keys {
            let id = k.text.clone();
            let source = f.src(k.pos);
            if let Some(first) = self.set.keys.get(&id) {
                self.errors.push(f.err(
                    k.pos,
                    format!("key {id} is defined twice: here and at {}", first.source),
                ));
                continue;
            }
            if !matches!(v.value, Value::Map(_)) {
                // Never echo the value: it may be the key itself.
                self.errors.push(
                    f.err(
                        k.pos,
                        format!(
                            "key {id} must say where the key is: {{ env: VARIABLE }} or {{ file: PATH }}"
                        ),
                    )
                    .with_hint("never write the key itself in the rules"),
                );
                continue;
            }
            let Some(fields) = self.fields(f, v, &KEY_FIELDS, &format!("key {id}")) else {
                continue;
            };
            let mut from = None;
            let mut both = false;
            for (fk, fv) in fields {
                let Some(t) = self.scalar(f, fv, &fk.text) else {
                    continue;
                };
                let src = match fk.text.as_str() {
                    "env" => KeySource::Env(t.to_string()),
                    _ => KeySource::File(PathBuf::from(t)),
                };
                both |= from.is_some();
                from = Some(src);
            }
            match (from, both) {
                (_, true) => self.errors.push(
                    f.err(k.pos, format!("key {id} has both env: and file:"))
                        .with_hint("keep one"),
                ),
                (None, _) => self.errors.push(
                    f.err(k.pos, format!("key {id} has neither env: nor file:"))
                        .with_hint("write { env: VARIABLE } or { file: /path/to/key }; never the key itself"),
                ),
                (Some(from), false) => {
                    self.set.keys.insert(id.clone(), KeyRule { id, from, source });
                }
            }
        }
    }

    fn functions(&mut self, f: &Ctx, node: &Node) {
        let Some(entries) = self.map(f, node, "functions:") else {
            return;
        };
        for (rk, rv) in entries {
            let role = rk.text.clone();
            if self.set.functions.contains_key(&role) {
                let first = self.set.functions[&role]
                    .first()
                    .map(|g| g.source.to_string())
                    .unwrap_or_default();
                self.errors.push(f.err(
                    rk.pos,
                    format!("functions of role {role} are listed twice: here and at {first}"),
                ));
                continue;
            }
            let Value::Seq(items) = &rv.value else {
                self.errors.push(
                    f.err(
                        rv.pos,
                        format!("functions of role {role} must be a list, got {}", rv.kind()),
                    )
                    .with_hint("write [schema.function, ...]"),
                );
                continue;
            };
            let mut grants = Vec::new();
            for item in items {
                let Some(t) = self.scalar(f, item, "function") else {
                    continue;
                };
                let key = Key {
                    text: t.to_string(),
                    pos: item.pos,
                };
                if let Some(name) = self.table_name(f, &key) {
                    grants.push(FunctionGrant {
                        name,
                        source: f.src(item.pos),
                    });
                }
            }
            if grants.is_empty() {
                continue;
            }
            self.set.functions.insert(role, grants);
        }
    }

    // ---- shapes -------------------------------------------------------------------------

    fn map<'a>(&mut self, f: &Ctx, node: &'a Node, what: &str) -> Option<&'a [(Key, Node)]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            _ => {
                self.errors
                    .push(f.err(node.pos, format!("{what} must be a mapping, got {}", node.kind())));
                None
            }
        }
    }

    /// The entries of a mapping whose keys must be among `allowed`; unknown ones are errors.
    fn fields<'a>(
        &mut self,
        f: &Ctx,
        node: &'a Node,
        allowed: &[&str],
        what: &str,
    ) -> Option<Vec<(&'a Key, &'a Node)>> {
        let entries = self.map(f, node, what)?;
        let mut out = Vec::new();
        for (k, v) in entries {
            if allowed.contains(&k.text.as_str()) {
                out.push((k, v));
            } else {
                self.errors.push(
                    f.err(k.pos, format!("unknown field '{}' in {what}", k.text))
                        .with_hint(suggest::hint(&k.text, allowed.iter().copied(), "fields")),
                );
            }
        }
        Some(out)
    }

    fn scalar<'a>(&mut self, f: &Ctx, node: &'a Node, field: &str) -> Option<&'a str> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => Some(text),
            _ => {
                self.errors.push(f.err(
                    node.pos,
                    format!("{field} must be a single value, got {}", node.kind()),
                ));
                None
            }
        }
    }

    fn boolean(&mut self, f: &Ctx, node: &Node, field: &str) -> Option<bool> {
        match self.scalar(f, node, field)? {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.errors
                    .push(f.err(node.pos, format!("{field} must be true or false, got '{other}'")));
                None
            }
        }
    }

    /// `schema.table`, or `table` in schema `public`.
    fn table_name(&mut self, f: &Ctx, key: &Key) -> Option<TableName> {
        let parts: Vec<&str> = key.text.split('.').collect();
        match parts.as_slice() {
            [t] if !t.is_empty() => Some(TableName::new("public", *t)),
            [s, t] if !s.is_empty() && !t.is_empty() => Some(TableName::new(*s, *t)),
            _ => {
                self.errors.push(
                    f.err(key.pos, format!("bad name '{}'", key.text))
                        .with_hint("write schema.name, e.g. public.customers"),
                );
                None
            }
        }
    }

    /// `schema.table.column`, or `table.column` in schema `public`.
    fn column_name(&mut self, f: &Ctx, key: &Key) -> Option<ColumnName> {
        let parts: Vec<&str> = key.text.split('.').collect();
        let (schema, table, column) = match parts.as_slice() {
            [t, c] => ("public", *t, *c),
            [s, t, c] => (*s, *t, *c),
            _ => ("", "", ""),
        };
        if schema.is_empty() || table.is_empty() || column.is_empty() {
            self.errors.push(
                f.err(key.pos, format!("bad column name '{}'", key.text))
                    .with_hint("write schema.table.column, e.g. public.customers.phone"),
            );
            return None;
        }
        Some(ColumnName {
            table: TableName::new(schema, table),
            column: column.to_string(),
        })
    }
}

/// The file being read, to locate errors.
struct Ctx {
    file: PathBuf,
}

impl Ctx {
    fn src(&self, pos: Pos) -> Source {
        Source {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
        }
    }
    fn err(&self, pos: Pos, message: impl Into<String>) -> RuleError {
        RuleError::at(&self.src(pos), message)
    }
}

fn text_of(node: &Node) -> String {
    node.as_str().unwrap_or("").to_string()
}

/// Did-you-mean for an unknown mask name (`unknown mask 'phnoe'; ...`) or parameter
/// (serde's `unknown field `keep_frist`, expected one of `keep_first`, ...`).
fn mask_hint(msg: &str) -> Option<String> {
    if let Some(i) = msg.find("unknown mask '") {
        let rest = &msg[i + "unknown mask '".len()..];
        let word = &rest[..rest.find('\'')?];
        return suggest::closest(word, MaskSpec::NAMES.iter().copied())
            .map(|c| format!("did you mean '{c}'?"));
    }
    let (word, rest) = if let Some(i) = msg.find("unknown variant `") {
        let rest = &msg[i + "unknown variant `".len()..];
        let end = rest.find('`')?;
        (&rest[..end], &rest[end + 1..])
    } else if let Some(i) = msg.find("unknown field `") {
        let rest = &msg[i + "unknown field `".len()..];
        let end = rest.find('`')?;
        (&rest[..end], &rest[end + 1..])
    } else {
        return None;
    };
    let names: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    suggest::closest(word, names.iter().copied()).map(|c| format!("did you mean '{c}'?"))
}

/// `30s`, `500ms`, `5min`, `5m`, `1h`, or a bare number of milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// PostgreSQL's SCRAM verifier: `SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>`.
fn check_scram(v: &str) -> Result<(), String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let rest = v
        .strip_prefix("SCRAM-SHA-256$")
        .ok_or("expected it to start with SCRAM-SHA-256$")?;
    let (iter_salt, keys) = rest
        .split_once('$')
        .ok_or("expected <iterations>:<salt>$<StoredKey>:<ServerKey>")?;
    let (iter, salt) = iter_salt
        .split_once(':')
        .ok_or("expected <iterations>:<salt> before the '$'")?;
    let iter: u32 = iter
        .parse()
        .map_err(|_| format!("iterations must be a number, got '{iter}'"))?;
    if iter < 4096 {
        return Err(format!("iterations must be at least 4096, got {iter}"));
    }
    b64.decode(salt)
        .map_err(|_| "the salt is not base64".to_string())?;
    let (stored, server) = keys
        .split_once(':')
        .ok_or("expected <StoredKey>:<ServerKey> after the '$'")?;
    for (name, k) in [("StoredKey", stored), ("ServerKey", server)] {
        let bytes = b64.decode(k).map_err(|_| format!("{name} is not base64"))?;
        if bytes.len() != 32 {
            return Err(format!("{name} must be 32 bytes, got {}", bytes.len()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("5min"), Some(300_000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("3 days"), None);
        assert_eq!(parse_duration_ms("s"), None);
    }

    #[test]
    fn mask_hints_from_serde_messages() {
        assert_eq!(
            mask_hint("unknown field `keep_frist`, expected one of `keep_first`, `keep_last`").as_deref(),
            Some("did you mean 'keep_first'?")
        );
        assert_eq!(
            mask_hint("unknown mask 'phnoe'; expected one of: redact, null, phone").as_deref(),
            Some("did you mean 'phone'?")
        );
        assert_eq!(mask_hint("invalid type: integer"), None);
    }

    #[test]
    fn scram_format() {
        let good = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$\
            AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(check_scram(good), Ok(()));
        assert!(check_scram("SCRAM-SHA-256$10:abc$x:y").is_err());
        assert!(check_scram("hunter2").is_err());
    }
}
