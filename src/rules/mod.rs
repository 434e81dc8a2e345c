//! The rules directory: what DBAs write (tables and their classes and masks, roles, logins,
//! keys, allowed functions), read and validated into a [`RuleSet`].
//!
//! - [`load_dir`] reads every `*.yaml`/`*.yml` file of a directory, merges them and returns
//!   either the rules or **every** error found, each naming file, line and column, with a
//!   hint where one helps (`rules/tables.yaml:12:5: unknown class 'sensitve' (hint: did you
//!   mean 'sensitive'?)`).
//! - [`load_keys`] reads the token keys the rules name (environment or file).
//! - [`check::check_dir`] is `pgveil check`.
//!
//! What can be checked without the database is checked here; what needs the catalog (tables,
//! columns, mask-vs-type) is checked by `policy::compile`. The reference for DBAs is
//! `rules/README.md`.
//!
//! Invariants: a RuleSet is only ever returned whole and valid (no partial rules on error, so
//! a reload with a broken file keeps the old rules in force); key material and passwords
//! never appear in an error, a log or a Debug output.
pub mod check;
mod filter;
mod read;
pub mod suggest;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::mask::{Keys, MaskSpec};
use crate::policy::Limits;

pub use filter::{check_row_filter, RowFilterCheck};
/// The names the loader accepts, per entry kind (the JSON Schema must list the same).
pub use read::{COLUMN_FIELDS, KEY_FIELDS, LIMIT_FIELDS, LOGIN_FIELDS, ROLE_FIELDS, SECTIONS};

/// Where an entry was written: file and 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in the rules, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}:{}: {}{}", .file.display(), .line, .column, .message,
        .hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
pub struct RuleError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl RuleError {
    pub fn at(source: &Source, message: impl Into<String>) -> RuleError {
        RuleError {
            file: source.file.clone(),
            line: source.line,
            column: source.column,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> RuleError {
        self.hint = Some(hint.into());
        self
    }

    /// Where the error is, as a [`Source`].
    pub fn source_location(&self) -> Source {
        Source {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
        }
    }
}

/// Sensitivity classes, ordered: a role that sees a class sees every class below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Public,
    Internal,
    Sensitive,
    /// Always denied to restricted roles, whatever they see (unless a role's `masks:` names
    /// the column explicitly).
    Secret,
}

impl Class {
    pub const NAMES: [&'static str; 4] = ["public", "internal", "sensitive", "secret"];

    pub fn parse(s: &str) -> Option<Class> {
        match s {
            "public" => Some(Class::Public),
            "internal" => Some(Class::Internal),
            "sensitive" => Some(Class::Sensitive),
            "secret" => Some(Class::Secret),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Class::NAMES[self as usize]
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `schema.table`, exactly as the catalog spells it (case-sensitive, no quoting). An
/// unqualified name in the rules means schema `public`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> TableName {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// `schema.table.column`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnName {
    pub table: TableName,
    pub column: String,
}

impl fmt::Display for ColumnName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// A mask as written, parsed into the masking library's spec.
#[derive(Debug, Clone)]
pub struct MaskRule {
    pub spec: MaskSpec,
    /// The spec as the DBA wrote it, compact (`cn_id`, `{"partial":{"keep_first":3}}`), for
    /// messages and `pgveil check`.
    pub text: String,
    /// Key ids the spec refers to (`key:` fields), checked against `keys:`.
    pub key_ids: Vec<String>,
    pub source: Source,
}

/// One column's rule under `tables:`.
#[derive(Debug, Clone)]
pub struct ColumnRule {
    pub column: ColumnName,
    pub class: Class,
    /// The mask used for roles that do not see the class (`redact` when None).
    pub mask: Option<MaskRule>,
    pub source: Source,
}

/// What a role's `masks:` entry says for one column.
#[derive(Debug, Clone)]
pub enum Override {
    Clear,
    Deny,
    Mask(MaskRule),
}

#[derive(Debug, Clone)]
pub struct ColumnOverride {
    pub action: Override,
    pub source: Source,
}

/// What a role gets for columns that no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Clear,
    /// Privacy by default: every unnamed column of a user table is masked with `redact`.
    Mask,
}

/// A row filter: a boolean SQL expression over the table's columns.
#[derive(Debug, Clone)]
pub struct RowFilter {
    /// As written by the DBA.
    pub sql: String,
    /// The expression as PostgreSQL's parser prints it back, in parentheses: no comments,
    /// nothing after it, safe to splice into a WHERE clause.
    pub canonical: String,
    /// Column names the expression references (checked against the catalog at compile).
    pub columns: Vec<String>,
    pub source: Source,
}

/// One entry under `roles:`.
#[derive(Debug, Clone)]
pub struct RoleRule {
    pub name: String,
    pub unrestricted: bool,
    pub sees: Class,
    pub default: DefaultAction,
    pub masks: BTreeMap<ColumnName, ColumnOverride>,
    pub row_filters: BTreeMap<TableName, RowFilter>,
    pub limits: Limits,
    pub source: Source,
    /// Where `default:` was written (the rule behind default masks).
    pub default_source: Source,
}

/// One entry under `logins:`: who may connect to pgveil, as which role, when.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub role: String,
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (PostgreSQL's format).
    pub scram_verifier: Option<String>,
    /// `md5` + hex(md5(password + user)); accepted only with `legacy_md5`.
    pub md5: Option<String>,
    pub legacy_md5: bool,
    /// The data-security agreement this access is granted under (audit and messages).
    pub agreement: Option<String>,
    /// First instant the login is valid (a date means 00:00:00 UTC that day).
    pub valid_from: Option<DateTime<Utc>>,
    /// Last instant the login is valid (a date means the whole day, to 23:59:59.999999999 UTC).
    pub valid_until: Option<DateTime<Utc>>,
    pub source: Source,
}

impl fmt::Debug for Login {
    /// Verifiers are not secrets in the strict sense but are kept out of logs all the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("role", &self.role)
            .field("scram_verifier", &self.scram_verifier.as_ref().map(|_| "<set>"))
            .field("md5", &self.md5.as_ref().map(|_| "<set>"))
            .field("legacy_md5", &self.legacy_md5)
            .field("agreement", &self.agreement)
            .field("valid_from", &self.valid_from)
            .field("valid_until", &self.valid_until)
            .field("source", &self.source)
            .finish()
    }
}

/// Why a login is outside its validity window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("login {user} is not valid before {from}{}", agreement_suffix(.agreement))]
    NotYet {
        user: String,
        from: DateTime<Utc>,
        agreement: Option<String>,
    },
    #[error("login {user} expired at {until}{}", agreement_suffix(.agreement))]
    Expired {
        user: String,
        until: DateTime<Utc>,
        agreement: Option<String>,
    },
}

fn agreement_suffix(a: &Option<String>) -> String {
    a.as_ref()
        .map(|a| format!(" (agreement {a})"))
        .unwrap_or_default()
}

impl Login {
    /// Whether the login may be used at `now` (both bounds inclusive).
    pub fn check_window(&self, now: DateTime<Utc>) -> Result<(), WindowError> {
        if let Some(from) = self.valid_from {
            if now < from {
                return Err(WindowError::NotYet {
                    user: self.user.clone(),
                    from,
                    agreement: self.agreement.clone(),
                });
            }
        }
        if let Some(until) = self.valid_until {
            if now > until {
                return Err(WindowError::Expired {
                    user: self.user.clone(),
                    until,
                    agreement: self.agreement.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Where a token key comes from. The key itself is never in the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct KeyRule {
    pub id: String,
    pub from: KeySource,
    pub source: Source,
}

/// A user function a role may call (`functions:`).
#[derive(Debug, Clone)]
pub struct FunctionGrant {
    /// `schema.name`.
    pub name: TableName,
    pub source: Source,
}

/// The whole rules directory, merged and validated.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub dir: PathBuf,
    /// Rules by table, then by column name.
    pub tables: BTreeMap<TableName, BTreeMap<String, ColumnRule>>,
    pub roles: BTreeMap<String, RoleRule>,
    pub logins: BTreeMap<String, Login>,
    pub keys: BTreeMap<String, KeyRule>,
    /// Role -> functions it may call.
    pub functions: BTreeMap<String, Vec<FunctionGrant>>,
    /// Problems that do not stop loading (a role without any login).
    pub warnings: Vec<RuleError>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

/// Reads, merges and validates every `*.yaml` / `*.yml` file of `dir` (not recursive, in
/// name order). Returns every error found, sorted by file and line.
pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<RuleError>> {
    let dir_source = Source {
        file: dir.to_path_buf(),
        line: 0,
        column: 0,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(vec![RuleError::at(
                &dir_source,
                format!("cannot read the rules directory: {e}"),
            )])
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(vec![RuleError::at(
            &dir_source,
            "no rules files (*.yaml) in the rules directory",
        )]);
    }
    let mut texts = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push((f.clone(), t)),
            Err(e) => errors.push(RuleError::at(
                &Source {
                    file: f.clone(),
                    line: 0,
                    column: 0,
                },
                format!("cannot read: {e}"),
            )),
        }
    }
    let mut reader = read::Reader::new(dir);
    for (file, text) in &texts {
        reader.read_file(file, text);
    }
    let (set, mut found) = reader.finish();
    errors.append(&mut found);
    if errors.is_empty() {
        let mut set = set;
        set.files = files;
        Ok(set)
    } else {
        errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        errors.dedup();
        Err(errors)
    }
}

/// Smallest key accepted (the masking library's bound: an HMAC key shorter than this is
/// guessable).
pub use crate::mask::MIN_KEY_BYTES;

/// Reads every key named under `keys:`. A key is the raw bytes of the environment variable
/// or of the file (one trailing newline removed), at least [`MIN_KEY_BYTES`] long. Errors
/// name the key id and where it should come from, never any of its bytes.
pub fn load_keys(rules: &RuleSet) -> Result<Keys, Vec<RuleError>> {
    let mut keys = Keys::default();
    let mut errors = Vec::new();
    for (id, k) in &rules.keys {
        let bytes = match &k.from {
            KeySource::Env(var) => match std::env::var_os(var) {
                Some(v) => v.into_encoded_bytes(),
                None => {
                    errors.push(
                        RuleError::at(
                            &k.source,
                            format!("key {id}: environment variable {var} is not set"),
                        )
                        .with_hint(format!(
                            "export {var}=$(openssl rand -hex 32) before starting pgveil"
                        )),
                    );
                    continue;
                }
            },
            KeySource::File(path) => match std::fs::read(path) {
                Ok(mut b) => {
                    if b.last() == Some(&b'\n') {
                        b.pop();
                        if b.last() == Some(&b'\r') {
                            b.pop();
                        }
                    }
                    b
                }
                Err(e) => {
                    errors.push(RuleError::at(
                        &k.source,
                        format!("key {id}: cannot read {}: {e}", path.display()),
                    ));
                    continue;
                }
            },
        };
        if bytes.len() < MIN_KEY_BYTES {
            errors.push(
                RuleError::at(
                    &k.source,
                    format!(
                        "key {id} is too short: {} bytes, need at least {MIN_KEY_BYTES}",
                        bytes.len()
                    ),
                )
                .with_hint("generate one with `openssl rand -hex 32`"),
            );
            continue;
        }
        keys.keys.insert(id.clone(), bytes);
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors)
    }
}

/// Formats a list of errors one per line (for logs and `pgveil check`).
pub fn format_errors(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
