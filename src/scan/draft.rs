//! From findings to text: the draft rules file, the coverage table against the current
//! rules, and a findings table for the terminal.
//!
//! Invariant: the output holds names, shares, detectors and masks only (findings carry no
//! value), and the draft is a valid `tables:` section that `rules::load_dir` accepts.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Finding;
use crate::rules::{Class, Override, RuleSet, TableName};

/// A YAML mapping key, quoted when it is not a plain name (or could read as a boolean/null).
fn yaml_key(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        serde_json::Value::String(s.to_string()).to_string()
    }
}

/// The draft rules: a `tables:` section with one entry per finding, each preceded by its
/// evidence. Columns are grouped by table, in name order.
pub fn draft_rules(findings: &[Finding]) -> String {
    let mut out = String::new();
    out.push_str(
        "# Draft rules written by `pgveil scan`. Review every entry before use: the scan samples\n\
         # values and reads column names, it cannot know what a column means to the business.\n\
         # Each comment gives the evidence: the share of sampled values a detector recognised\n\
         # and/or the column-name hint. Merge the entries into rules/tables.yaml.\n",
    );
    let mut by_table: BTreeMap<(&str, &str), Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_table.entry((&f.schema, &f.table)).or_default().push(f);
    }
    if by_table.is_empty() {
        out.push_str("# Nothing sensitive-looking was found.\ntables:\n");
        return out;
    }
    out.push_str("tables:\n");
    for ((schema, table), cols) in by_table {
        let _ = writeln!(out, "  {}:", yaml_key(&format!("{schema}.{table}")));
        for f in cols {
            let _ = writeln!(out, "    # evidence: {}", f.evidence().replace('\n', " "));
            let rule = if f.suggested_mask.is_empty() {
                format!("{{ class: {} }}", f.suggested_class)
            } else {
                format!("{{ class: {}, mask: {} }}", f.suggested_class, f.suggested_mask)
            };
            let _ = writeln!(out, "    {}: {rule}", yaml_key(&f.column));
        }
    }
    out
}

/// Findings the rules leave readable: `(schema.table.column, why)`. A column is covered
/// when its rule's class is `sensitive` or `secret` and no restricted role's `masks:`
/// reads it clear.
pub fn coverage(findings: &[Finding], rules: &RuleSet) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in findings {
        let looks = format!("looks like {}: {}", f.detector, f.evidence_short());
        let table = TableName::new(f.schema.clone(), f.table.clone());
        let rule = rules.tables.get(&table).and_then(|t| t.get(&f.column));
        let why = match rule.map(|r| r.class) {
            None => Some(format!("no rule; {looks}")),
            Some(Class::Public) => Some(format!("class public, every role reads it clear; {looks}")),
            Some(Class::Internal) => Some(format!(
                "class internal, roles that see internal read it clear; {looks}"
            )),
            Some(Class::Sensitive | Class::Secret) => {
                let clear: Vec<&str> = rules
                    .roles
                    .values()
                    .filter(|r| !r.unrestricted)
                    .filter(|r| {
                        r.masks.iter().any(|(c, o)| {
                            c.table == table && c.column == f.column && matches!(o.action, Override::Clear)
                        })
                    })
                    .map(|r| r.name.as_str())
                    .collect();
                if clear.is_empty() {
                    None
                } else {
                    Some(format!(
                        "role(s) {} read it clear (masks: clear); {looks}",
                        clear.join(", ")
                    ))
                }
            }
        };
        if let Some(why) = why {
            out.push((f.qualified(), why));
        }
    }
    out.sort();
    out
}

/// The findings as an aligned table for the terminal.
pub fn findings_table(findings: &[Finding]) -> String {
    let rows: Vec<[String; 4]> = findings
        .iter()
        .map(|f| {
            let mask = if f.suggested_mask.is_empty() {
                "(denied)".to_string()
            } else {
                f.suggested_mask.clone()
            };
            [
                f.qualified(),
                f.detector.to_string(),
                format!("{} {mask}", f.suggested_class),
                f.evidence(),
            ]
        })
        .collect();
    table(["column", "detector", "suggested", "evidence"], &rows)
}

/// The coverage list as an aligned table for the terminal.
pub fn coverage_table(uncovered: &[(String, String)]) -> String {
    if uncovered.is_empty() {
        return "every sensitive-looking column is covered by the rules\n".to_string();
    }
    let rows: Vec<[String; 2]> = uncovered.iter().map(|(c, w)| [c.clone(), w.clone()]).collect();
    table(["not covered", "why"], &rows)
}

fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for (i, h) in head.iter().enumerate() {
        width[i] = h.chars().count();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                l.push_str(c);
            } else {
                let pad = width[i].saturating_sub(c.chars().count());
                let _ = write!(l, "{c}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(head.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_when_needed() {
        assert_eq!(yaml_key("public.customers"), "public.customers");
        assert_eq!(yaml_key("身份证号"), "身份证号");
        assert_eq!(yaml_key("no"), "\"no\"");
        assert_eq!(yaml_key("a b:c"), "\"a b:c\"");
        assert_eq!(yaml_key("2fa"), "\"2fa\"");
    }
}
