//! Judging one column from its name, its type and a sample of its values.
//!
//! Content first: a whole-value detector wins when it matches at least half of the sampled
//! non-null values (60% and varied values for names, which are the fuzziest); text that
//! contains identifiers in a few percent of the values is free text. The column name then
//! confirms (`by_name`) or, alone, flags the column — except when enough sampled values
//! clearly contradict the hint (`name` over company names, `客服电话` over `400` hotlines).
//! Dates of birth and salaries are judged by name only: their values look like any other.
//!
//! Invariant: pure; the values are only counted, never copied into the verdict.
use std::collections::{HashMap, HashSet};

use super::detect::{detect, name_hint_keyword, Detector};

/// What kind of values a column holds, from its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// text, varchar, char, name, citext and domains over them.
    Text,
    /// json, jsonb and arrays: only embedded identifiers can show.
    Json,
    /// date, timestamp, timestamptz.
    Date,
    /// bigint and numeric (can hold a phone or card number, or an amount).
    BigNumber,
    /// smallint, integer, real, double precision: amounts, never an identifier.
    SmallNumber,
    /// Anything else (boolean, uuid, bytea, arrays...): never flagged.
    Other,
}

impl ValueKind {
    /// From `pg_type.oid` and `typcategory`.
    pub fn from_type(oid: u32, category: &str) -> ValueKind {
        match oid {
            114 | 3802 => ValueKind::Json,
            1082 | 1114 | 1184 => ValueKind::Date,
            20 | 1700 => ValueKind::BigNumber,
            21 | 23 | 700 | 701 | 790 => ValueKind::SmallNumber,
            _ if category == "S" => ValueKind::Text,
            // Arrays print as `{a,b}`: identifiers inside show as embedded ones.
            _ if category == "A" => ValueKind::Json,
            _ => ValueKind::Other,
        }
    }

    /// Whether pgveil scan reads values of this kind (the others are judged by name).
    pub fn sampled(self) -> bool {
        matches!(self, ValueKind::Text | ValueKind::Json | ValueKind::BigNumber)
    }

    /// Whether a hint of `d` is plausible for a column of this kind.
    fn fits(self, d: Detector) -> bool {
        match self {
            ValueKind::Text => true,
            ValueKind::Json => d.content_checkable(),
            ValueKind::Date => d == Detector::BirthDate,
            ValueKind::BigNumber => {
                matches!(
                    d,
                    Detector::Salary | Detector::Mobile | Detector::BankCard | Detector::CnId
                )
            }
            ValueKind::SmallNumber => d == Detector::Salary,
            ValueKind::Other => false,
        }
    }
}

/// The judgement on one column.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub detector: Detector,
    /// Share of sampled non-null values matching the detector (0 when judged by name only).
    pub share: f64,
    /// Non-null values examined.
    pub sampled: usize,
    /// The column-name keyword that agrees with the detector, if any.
    pub hint: Option<&'static str>,
}

impl Verdict {
    pub fn by_name(&self) -> bool {
        self.hint.is_some()
    }
    pub fn by_content(&self) -> bool {
        self.share > 0.0
    }
}

/// Minimum sampled values for content to overrule a name hint.
const CONTRADICT_MIN: usize = 20;
/// Below this share, sampled content contradicts the name hint.
const CONTRADICT_SHARE: f64 = 0.10;

/// Judges a column. `values` is `None` when the column was not sampled (type not sampled,
/// table skipped); an empty slice means the table is empty.
pub fn judge(column: &str, kind: ValueKind, values: Option<&[String]>) -> Option<Verdict> {
    if kind == ValueKind::Other {
        return None;
    }
    let hint = name_hint_keyword(column).filter(|(d, _)| kind.fits(*d));
    let Some(values) = values.filter(|_| kind.sampled()) else {
        return hint.map(|(d, kw)| Verdict {
            detector: d,
            share: 0.0,
            sampled: 0,
            hint: Some(kw),
        });
    };
    let mut counts: HashMap<Detector, usize> = HashMap::new();
    let mut n = 0usize;
    let mut distinct_names: HashSet<&str> = HashSet::new();
    for v in values {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        n += 1;
        if let Some(d) = detect(v) {
            *counts.entry(d).or_default() += 1;
            if d == Detector::CnName {
                distinct_names.insert(v);
            }
        }
    }
    let hint_agrees = |d: Detector| hint.filter(|(h, _)| h.family() == d.family()).map(|(_, kw)| kw);
    if n > 0 {
        let share = |c: usize| c as f64 / n as f64;
        let family_count = |d: Detector| -> usize {
            counts
                .iter()
                .filter(|(k, _)| k.family() == d.family())
                .map(|(_, c)| c)
                .sum()
        };
        // The best whole-value detector (most matches; ties by detector order).
        let best = counts
            .iter()
            .filter(|(d, _)| **d != Detector::FreeText)
            .max_by(|a, b| {
                family_count(*a.0)
                    .cmp(&family_count(*b.0))
                    .then(a.1.cmp(b.1))
                    .then(b.0.cmp(a.0))
            })
            .map(|(d, _)| *d);
        if let Some(d) = best {
            let c = family_count(d);
            let enough = match d {
                Detector::CnName => share(c) >= 0.6 && distinct_names.len() as f64 >= 0.3 * c as f64,
                _ => share(c) >= 0.5,
            };
            if enough {
                return Some(Verdict {
                    detector: d,
                    share: share(c),
                    sampled: n,
                    hint: hint_agrees(d),
                });
            }
        }
        // Free text: values holding an identifier somewhere (or being one).
        let holding: usize = counts
            .iter()
            .filter(|(d, _)| {
                matches!(
                    d,
                    Detector::FreeText
                        | Detector::CnId
                        | Detector::Mobile
                        | Detector::BankCard
                        | Detector::Email
                )
            })
            .map(|(_, c)| c)
            .sum();
        let min_hits = if n < 50 { 1 } else { 2 };
        if holding >= min_hits && share(holding) >= 0.02 {
            return Some(Verdict {
                detector: Detector::FreeText,
                share: share(holding),
                sampled: n,
                hint: hint.map(|(_, kw)| kw),
            });
        }
    }
    let (d, kw) = hint?;
    let matching: usize = counts
        .iter()
        .filter(|(k, _)| k.family() == d.family())
        .map(|(_, c)| c)
        .sum();
    let share = if n > 0 { matching as f64 / n as f64 } else { 0.0 };
    if d.content_checkable() && n >= CONTRADICT_MIN && share < CONTRADICT_SHARE {
        return None;
    }
    Some(Verdict {
        detector: d,
        share,
        sampled: n,
        hint: Some(kw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn content_wins_and_name_confirms() {
        let ids = v(&["11010519491231002X"; 30]);
        let got = judge("sfzh", ValueKind::Text, Some(&ids)).unwrap();
        assert_eq!(got.detector, Detector::CnId);
        assert_eq!(got.hint, Some("sfzh"));
        assert!((got.share - 1.0).abs() < 1e-9);
        let got = judge("col7", ValueKind::Text, Some(&ids)).unwrap();
        assert_eq!((got.detector, got.hint), (Detector::CnId, None));
    }

    #[test]
    fn contradicted_hint_is_dropped_unsampled_hint_is_kept() {
        let companies: Vec<String> = (0..40).map(|i| format!("深圳市第{i}科技有限公司")).collect();
        assert_eq!(judge("name", ValueKind::Text, Some(&companies)), None);
        let got = judge("name", ValueKind::Text, None).unwrap();
        assert_eq!((got.detector, got.share), (Detector::CnName, 0.0));
        assert_eq!(
            judge("salary", ValueKind::SmallNumber, None).unwrap().detector,
            Detector::Salary
        );
        assert_eq!(
            judge("birth_date", ValueKind::Date, None).unwrap().detector,
            Detector::BirthDate
        );
        assert_eq!(judge("hired_on", ValueKind::Date, None), None);
        assert_eq!(judge("name_changed_at", ValueKind::Date, None), None);
    }

    #[test]
    fn free_text_needs_a_few_hits() {
        let mut notes: Vec<String> = (0..100).map(|i| format!("第{i}次回访，客户满意")).collect();
        assert_eq!(judge("notes", ValueKind::Text, Some(&notes)), None);
        notes[3] = "客户要求改用13812345678联系".into();
        notes[40] = "备用电话 139-1234-5678".into();
        notes[77] = "13712345678".into();
        let got = judge("notes", ValueKind::Text, Some(&notes)).unwrap();
        assert_eq!(got.detector, Detector::FreeText);
        assert!((got.share - 0.03).abs() < 1e-9);
    }
}
