//! `pgveil scan`: find the columns of the seller's database that hold personal data, and
//! draft the rules that protect them.
//!
//! - [`detect`] / [`name_hint`]: pure detectors over one value / one column name;
//! - [`judge`](judge::judge): one column from its name, type and sampled values;
//! - [`scan`]: reads the catalog and samples every table (see [`sample`]), one finding per
//!   flagged column;
//! - [`draft_rules`]: a `tables:` section with class, suggested mask and the evidence;
//! - [`coverage`]: flagged columns the current rules leave readable.
//!
//! Invariants:
//! - **no sampled value ever leaves this module**: values are counted by the detectors and
//!   dropped; findings, progress lines, notes and errors carry shares, detector names,
//!   column names and SQLSTATEs only;
//! - the load on the seller's database is bounded: one read-only transaction per table with
//!   a statement and a lock timeout, at most `sample` rows, each value cut to 1000 characters
//!   by the server; a table that cannot be read in time is judged by its column names.
mod detect;
mod draft;
pub mod judge;
mod lexicon;
mod sample;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use serde::Serialize;

use crate::rules::Class;

pub use detect::{
    contains_identifier, detect, find_identifiers, is_address, is_bank_card, is_cn_name, is_email,
    is_landline, is_mobile, is_passport, is_plate, is_resident_id, is_uscc, mask_identifiers, name_hint,
    name_hint_keyword, org_code_check_char, uscc_check_char, Detector,
};
pub use draft::{coverage, coverage_table, draft_rules, findings_table};
pub use judge::ValueKind;
pub use sample::scan;

/// What to scan and how hard.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The seller's database: `postgres://user:pass@host:port/db[?sslmode=...]`.
    pub upstream: String,
    /// Schemas to scan; empty means every user schema.
    pub schemas: Vec<String>,
    /// Rows sampled per table.
    pub sample: usize,
    /// Statement timeout per table; a slower table is skipped and judged by name.
    pub timeout: Duration,
    /// Rules to compare the findings with (the coverage table); not needed by [`scan`].
    pub rules_dir: Option<PathBuf>,
}

impl ScanOptions {
    /// Defaults: every user schema, 1000 rows per table, 30 s per table.
    pub fn new(upstream: impl Into<String>) -> ScanOptions {
        ScanOptions {
            upstream: upstream.into(),
            schemas: Vec::new(),
            sample: 1000,
            timeout: Duration::from_secs(30),
            rules_dir: None,
        }
    }
}

/// One column that looks sensitive. Carries evidence, never a value.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub schema: String,
    pub table: String,
    pub column: String,
    /// `format_type()` of the column, e.g. `character varying(18)`.
    pub type_name: String,
    pub detector: Detector,
    /// Share of sampled non-null values the detector matched (0 when judged by name only).
    pub share: f64,
    /// Whether the column name hints at the same kind of data.
    pub by_name: bool,
    #[serde(serialize_with = "ser_class")]
    pub suggested_class: Class,
    /// The suggested mask as written in rules (`cn_id`, `{ date_trunc: { to: year } }`);
    /// empty for class `secret`, which is denied and needs none.
    pub suggested_mask: String,
    /// Non-null values examined (0: not sampled).
    pub sampled: usize,
    /// The column-name keyword that matched (`sfzh`, `手机`).
    pub hint: Option<String>,
    /// Why the column was judged by name only (`table skipped: lock timeout`).
    pub note: Option<String>,
}

fn ser_class<S: serde::Serializer>(c: &Class, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.as_str())
}

impl Finding {
    /// `schema.table.column`.
    pub fn qualified(&self) -> String {
        format!("{}.{}.{}", self.schema, self.table, self.column)
    }

    /// `97% of 1000 sampled values cn_id (check char valid, ...), name hint 'sfzh'`.
    pub fn evidence(&self) -> String {
        self.evidence_text(true)
    }

    /// The evidence without naming the detector, for text that names it already:
    /// `97% of 1000 sampled values match (check char valid, ...), name hint 'sfzh'`.
    pub fn evidence_short(&self) -> String {
        self.evidence_text(false)
    }

    fn evidence_text(&self, name_detector: bool) -> String {
        let mut parts = Vec::new();
        let what = if name_detector {
            self.detector.as_str()
        } else {
            "match"
        };
        if self.share > 0.0 {
            parts.push(format!(
                "{} of {} sampled values {what} ({})",
                percent(self.share),
                self.sampled,
                self.detector.checks()
            ));
        }
        if let Some(h) = &self.hint {
            if self.share > 0.0 || !name_detector {
                parts.push(format!("name hint '{h}'"));
            } else {
                parts.push(format!("name hint '{h}' ({})", self.detector));
            }
        }
        if self.share == 0.0 {
            let why = match &self.note {
                Some(n) => n.clone(),
                None if !self.detector.content_checkable() => {
                    "judged by name (values cannot tell)".to_string()
                }
                None if self.sampled > 0 => format!("no match in {} sampled values", self.sampled),
                None => "no values sampled".to_string(),
            };
            parts.push(why);
        }
        parts.join(", ")
    }
}

/// `97%`, or `0.5%` below 1%.
pub(crate) fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p > 0.0 && p < 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{}%", p.round() as u32)
    }
}

/// The class and mask to suggest for a detector on a column of `kind`. Masks are chosen
/// so that they fit the column's type (text masks only on text columns), so the draft
/// compiles against the same database.
pub fn suggest(detector: Detector, kind: ValueKind) -> (Class, String) {
    let mask = |m: &str| (Class::Sensitive, m.to_string());
    match (detector, kind) {
        (Detector::Salary, _) => (Class::Secret, String::new()),
        (Detector::BirthDate, ValueKind::Date) => mask("{ date_trunc: { to: year } }"),
        (_, ValueKind::Json) => mask("null"),
        (_, ValueKind::Text) => match detector {
            Detector::CnId => mask("cn_id"),
            Detector::BankCard => mask("bank_card"),
            Detector::Mobile | Detector::Landline => mask("phone"),
            Detector::Email => mask("email"),
            Detector::CnName => mask("cn_name"),
            Detector::Address => mask("address"),
            Detector::Uscc => mask("uscc"),
            Detector::Plate => mask("{ partial: { keep_first: 2 } }"),
            _ => mask("redact"),
        },
        _ => mask("redact"),
    }
}

/// `pgveil scan`: scans, writes the draft to `out` (or returns it for standard output), and
/// compares the findings with the rules of `opts.rules_dir`. Progress goes to standard
/// error. Returns what belongs on standard output: with `out`, the findings and coverage
/// tables; without, the draft alone (so `pgveil scan > draft.yaml` works) while the tables
/// go to standard error.
pub async fn run(opts: &ScanOptions, out: Option<&Path>) -> anyhow::Result<String> {
    let rules = match &opts.rules_dir {
        Some(dir) => Some(crate::rules::load_dir(dir).map_err(|e| {
            anyhow!(
                "rules in {} are invalid:\n{}",
                dir.display(),
                crate::rules::format_errors(&e)
            )
        })?),
        None => None,
    };
    let findings = scan(opts, |line| eprintln!("{line}")).await?;
    let draft = draft_rules(&findings);
    let mut tables = findings_table(&findings);
    if let Some(rules) = &rules {
        tables.push('\n');
        tables.push_str(&coverage_table(&coverage(&findings, rules)));
    }
    match out {
        Some(path) => {
            std::fs::write(path, &draft).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("scan: draft rules written to {}", path.display());
            Ok(tables)
        }
        None => {
            eprint!("{tables}");
            Ok(draft)
        }
    }
}
