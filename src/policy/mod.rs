//! Policy: rules + catalog compiled into one [`RolePlan`] per role.
//!
//! A plan says, for every column of every relation a restricted role can name, what the
//! role gets: the clear value, a masked value, or a refusal. Pure data: no I/O here.
//!
//! Invariant: a column of a protected relation that has no [`ColumnPlan`] is treated as
//! denied, never as clear.
pub mod compile;
pub mod guards;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::mask::Mask;

/// Where a decision comes from, so refusals can name the rule a DBA wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// Rules file, as given on the command line (e.g. `rules/tables.yaml`).
    pub file: String,
    /// 1-based line of the rule in that file (0 when the decision is a built-in default).
    pub line: usize,
    /// What the rule says, for humans: `public.employees.salary (class secret; role analyst sees public)`.
    pub what: String,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{} {}", self.file, self.what)
        } else {
            write!(f, "{}:{} {}", self.file, self.line, self.what)
        }
    }
}

/// What a role gets for one column.
#[derive(Debug, Clone)]
pub enum ColumnAction {
    /// The stored value, unchanged.
    Clear,
    /// The masked value: every use of the column computes on it.
    Mask(Arc<Mask>),
    /// Not visible at all: any statement touching the column is refused.
    Deny,
}

#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub name: String,
    pub attnum: i16,
    pub action: ColumnAction,
    /// The rule behind a Mask or Deny (None for Clear by default).
    pub rule: Option<RuleRef>,
}

/// The plan for one protected relation. Relations absent from [`RolePlan::tables`] are
/// unprotected for that role (every column clear, no row filter).
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// One entry per catalog column, in attnum order.
    pub columns: Vec<ColumnPlan>,
    /// Row filter: a boolean SQL expression over the table's columns; rows where it is not
    /// true do not exist for the role.
    pub row_filter: Option<(String, RuleRef)>,
}

impl TablePlan {
    pub fn column(&self, name: &str) -> Option<&ColumnPlan> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Per-role limits (issue 5); `None` means unlimited.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub statement_timeout_ms: Option<u64>,
    pub max_rows: Option<u64>,
    pub max_sessions: Option<u32>,
}

/// Everything the analyser and the session need to know about one role.
#[derive(Debug, Clone)]
pub struct RolePlan {
    pub role: String,
    /// Unrestricted roles bypass analysis entirely: their frames pass as they are.
    pub unrestricted: bool,
    /// Protected relations by oid.
    pub tables: HashMap<u32, TablePlan>,
    /// User functions (`schema.name`) a rule allows this role to call.
    pub allowed_functions: HashSet<String>,
    pub limits: Limits,
}

impl RolePlan {
    /// A plan that protects nothing (used for unrestricted roles and in tests).
    pub fn unrestricted(role: &str) -> RolePlan {
        RolePlan {
            role: role.to_string(),
            unrestricted: true,
            tables: HashMap::new(),
            allowed_functions: HashSet::new(),
            limits: Limits::default(),
        }
    }
}
