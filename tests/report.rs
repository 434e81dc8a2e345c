//! `pgveil report` on the demo rules: Markdown, HTML and JSON, from the rules alone and
//! compiled against the demo database (with a scan for uncovered columns); content checked
//! (masks with what they reveal, denials, the consent row filter, logins with agreement and
//! validity status), JSON parsed, HTML self-contained and printable, and no login verifier
//! or key material anywhere in the output.
use std::collections::HashMap;
use std::path::Path;

use chrono::{TimeZone, Utc};
use pgveil::cluster::Cluster;
use pgveil::report::{self, Format};
use serde_json::Value;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn demo_rules() -> pgveil::rules::RuleSet {
    pgveil::rules::load_dir(Path::new("rules")).expect("demo rules load")
}

/// Secrets that must never be printed: every part of every login verifier in the rules,
/// and the token key when one is set.
fn secrets(rules: &pgveil::rules::RuleSet) -> Vec<String> {
    let mut out = vec![
        "SCRAM-SHA-256$".to_string(),
        pgveil::demo::DEMO_TOKEN_KEY.to_string(),
    ];
    for l in rules.logins.values() {
        if let Some(v) = &l.scram_verifier {
            out.extend(v.split(['$', ':']).filter(|p| p.len() >= 16).map(str::to_string));
        }
        if let Some(m) = &l.md5 {
            out.push(m.clone());
        }
    }
    if let Ok(k) = std::env::var(pgveil::demo::TOKEN_KEY_ENV) {
        out.push(k);
    }
    assert!(out.len() >= 8, "{}", out.len());
    out
}

fn assert_no_secrets(rules: &pgveil::rules::RuleSet, what: &str, text: &str) {
    for s in secrets(rules) {
        assert!(
            !text.contains(&s),
            "{what} contains a verifier or key part ({} chars)",
            s.len()
        );
    }
}

fn role<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("role {name}"))
}

fn column<'a>(role: &'a Value, table: &str, column: &str) -> &'a Value {
    let t = role["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("{} has no table {table}", role["name"]));
    t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == column)
        .unwrap_or_else(|| panic!("{table}.{column}"))
}

#[test]
fn markdown_from_the_rules_alone() {
    let rules = demo_rules();
    let md = rt()
        .block_on(report::run_report(Path::new("rules"), None, Format::Md))
        .unwrap();
    println!("{md}");
    assert!(md.starts_with("# pgveil access report\n"));
    assert!(md.contains("rules only (no database catalog"), "{md}");
    // Summary line per role.
    assert!(md.contains("| analyst | analyst (valid) | public | 1 |"), "{md}");
    assert!(
        md.contains("| dba | dba (valid) | everything | 0 | 0 | 0 | 0 |"),
        "{md}"
    );
    // The analyst: masks with what they reveal, the secret denied, the consent filter.
    let analyst = &md[md.find("## Role `analyst`").unwrap()..md.find("## Role `auditor`").unwrap()];
    assert!(analyst.contains("Sees class **public** and below; columns without a rule: clear. Limits: statement_timeout 30s, max_rows 100000, max_sessions 5."), "{analyst}");
    assert!(
        analyst.contains("| analyst | DD-2026-017 | — | — | valid |"),
        "{analyst}"
    );
    assert!(
        analyst.contains("- `public.customers`: only rows where `consent_transfer` (rules/roles.yaml:"),
        "{analyst}"
    );
    assert!(analyst.contains("| `id_number` | sensitive | masked | `cn_id` | region code (first 6 digits) | rules/tables.yaml:"), "{analyst}");
    assert!(
        analyst.contains("| `salary` | secret | **denied** |"),
        "{analyst}"
    );
    assert!(
        analyst.contains("| `birth_date` | sensitive | masked |"),
        "{analyst}"
    );
    assert!(analyst.contains("| the year |"), "{analyst}");
    assert!(
        analyst.contains(
            "| `amount` | internal | masked | `redact` | nothing (a constant of the column's type) |"
        ),
        "{analyst}"
    );
    assert!(analyst.contains("| `city` | public | clear |"), "{analyst}");
    // The auditor: internal clear, resident IDs as keyed tokens (key named, not shown).
    let auditor = &md[md.find("## Role `auditor`").unwrap()..md.find("## Role `dba`").unwrap()];
    assert!(auditor.contains("| `amount` | internal | clear |"), "{auditor}");
    assert!(
        auditor.contains("| `id_number` | sensitive | masked | `"),
        "{auditor}"
    );
    assert!(auditor.contains("equality only"), "{auditor}");
    assert!(
        auditor.contains("| `salary` | secret | **denied** |"),
        "{auditor}"
    );
    assert!(!auditor.contains("Row filters"), "{auditor}");
    assert!(
        md.contains("- `main`: read by pgveil from the environment variable PGVEIL_TOKEN_KEY"),
        "{md}"
    );
    assert!(md.contains("No scan ran"), "{md}");
    assert_no_secrets(&rules, "markdown", &md);
}

#[test]
fn json_parses_and_login_status_follows_the_window() {
    // A copy of the demo rules with logins in and out of their validity window.
    let dir = tempfile::tempdir().unwrap();
    for f in ["tables.yaml", "roles.yaml"] {
        std::fs::copy(Path::new("rules").join(f), dir.path().join(f)).unwrap();
    }
    let v = |pw: &str| pgveil::session::scram::hash_password(pw);
    std::fs::write(
        dir.path().join("logins.yaml"),
        format!(
            "logins:\n\
             \x20 analyst:\n    role: analyst\n    scram: \"{}\"\n    agreement: \"DD-2026-017\"\n    valid_from: 2026-01-01\n    valid_until: 2026-12-31\n\
             \x20 newcomer:\n    role: analyst\n    scram: \"{}\"\n    agreement: \"DD-2027-001\"\n    valid_from: 2027-01-01\n\
             \x20 auditor:\n    role: auditor\n    scram: \"{}\"\n    agreement: \"DD-2026-017\"\n    valid_until: 2026-06-30\n\
             \x20 dba:\n    role: dba\n    scram: \"{}\"\n",
            v("a"),
            v("n"),
            v("u"),
            v("d")
        ),
    )
    .unwrap();
    let rules = pgveil::rules::load_dir(dir.path())
        .unwrap_or_else(|e| panic!("{}", pgveil::rules::format_errors(&e)));
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    let text = report::report_at(&rules, &HashMap::new(), None, None, Format::Json, now);
    let json: Value = serde_json::from_str(&text).expect("the JSON report parses");
    assert_eq!(json["generated_at"], "2026-12-03 09:00 UTC");
    let analyst = role(&json, "analyst");
    let logins: Vec<(&str, &str)> = analyst["logins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["user"].as_str().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert_eq!(logins, [("analyst", "valid"), ("newcomer", "not yet valid")]);
    assert_eq!(analyst["logins"][0]["valid_from"], "2026-01-01");
    assert_eq!(analyst["logins"][0]["valid_until"], "2026-12-31");
    assert_eq!(analyst["logins"][1]["agreement"], "DD-2027-001");
    assert_eq!(role(&json, "auditor")["logins"][0]["status"], "expired");
    let id = column(analyst, "public.customers", "id_number");
    assert_eq!(
        (id["class"].as_str(), id["gets"].as_str(), id["mask"].as_str()),
        (Some("sensitive"), Some("masked"), Some("cn_id"))
    );
    assert_eq!(id["reveals"], "region code (first 6 digits)");
    assert_eq!(column(analyst, "public.employees", "salary")["gets"], "denied");
    assert_eq!(analyst["row_filters"][0]["table"], "public.customers");
    assert_eq!(analyst["row_filters"][0]["filter"], "consent_transfer");
    assert_eq!(analyst["counts"]["denied"], 1);
    assert!(role(&json, "dba")["unrestricted"].as_bool().unwrap());
    assert_no_secrets(&rules, "json", &text);
}

#[test]
fn html_is_self_contained_and_printable() {
    let rules = demo_rules();
    let html = report::report(&rules, &HashMap::new(), None, None, Format::Html);
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("@media print") && html.contains("page-break-before:always"));
    assert_eq!(
        html.matches("<section class=\"role\">").count(),
        rules.roles.len() + 1,
        "a page per role, then coverage"
    );
    for external in ["<script", "<link", "src=", "http://", "https://", "@import"] {
        assert!(
            !html.contains(external),
            "HTML must be self-contained: found {external}"
        );
    }
    assert!(html.contains("<td><code>id_number</code></td><td>sensitive</td><td class=\"masked\">masked</td><td><code>cn_id</code></td>"), "{html}");
    assert!(html.contains("<td><code>salary</code></td><td>secret</td><td class=\"denied\">denied</td>"));
    assert!(html.contains("only rows where <code>consent_transfer</code>"));
    assert!(html.contains("<td>DD-2026-017</td>"));
    // Opening and closing tags balance for the structural elements.
    for tag in ["section", "table", "tr", "ul", "p"] {
        let open = html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
        assert_eq!(
            open,
            html.matches(&format!("</{tag}>")).count(),
            "<{tag}> balance"
        );
    }
    assert_no_secrets(&rules, "html", &html);
}

/// Against the demo database: every column of each protected table as compiled, the
/// relations left clear, the scan's uncovered columns (none for the demo rules, one when
/// a rule is removed), in all three formats.
#[test]
fn compiled_against_the_demo_database_with_a_scan() {
    let cluster = Cluster::start().expect("PostgreSQL 15 must be installed for this test");
    cluster.create_db("seller").unwrap();
    pgveil::demo::data::load(&cluster, "seller", 7, 120).unwrap();
    let url = cluster.url("seller");
    let rules = demo_rules();
    let rt = rt();
    let md = rt
        .block_on(report::run_report(Path::new("rules"), Some(&url), Format::Md))
        .unwrap();
    assert!(md.contains("compiled against the database catalog ("), "{md}");
    assert!(
        md.contains("None: the scan flagged 14 column(s), all covered."),
        "{md}"
    );
    let analyst = &md[md.find("## Role `analyst`").unwrap()..md.find("## Role `auditor`").unwrap()];
    assert!(
        analyst.contains("### `public.customers`\n\nRows: only where `consent_transfer`."),
        "{analyst}"
    );
    // Unruled columns of a protected table are listed too, as the plan has them.
    assert!(analyst.contains("| `id` | — | clear |"), "{analyst}");
    assert!(
        analyst.contains("| `id_number` | sensitive | masked | `cn_id` | region code (first 6 digits) |"),
        "{analyst}"
    );
    assert!(
        analyst.contains("| `salary` | secret | **denied** |"),
        "{analyst}"
    );
    assert!(
        !analyst.contains("Every column clear"),
        "every demo table is protected for the analyst, and the view reads through them: {analyst}"
    );
    assert_no_secrets(&rules, "markdown", &md);

    // One rule fewer: the scan's finding shows as uncovered.
    let dir = tempfile::tempdir().unwrap();
    for f in ["logins.yaml", "roles.yaml"] {
        std::fs::copy(Path::new("rules").join(f), dir.path().join(f)).unwrap();
    }
    let tables = std::fs::read_to_string("rules/tables.yaml").unwrap();
    let without: String = tables
        .lines()
        .filter(|l| !l.trim_start().starts_with("notes:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, tables);
    std::fs::write(dir.path().join("tables.yaml"), without).unwrap();
    let json = rt
        .block_on(report::run_report(dir.path(), Some(&url), Format::Json))
        .unwrap();
    let json: Value = serde_json::from_str(&json).unwrap();
    assert!(json["catalog_relations"].as_u64().unwrap() > 100);
    assert_eq!(json["scan_findings"], 14);
    let uncovered = json["uncovered"].as_array().unwrap();
    assert_eq!(uncovered.len(), 1, "{uncovered:?}");
    assert_eq!(uncovered[0]["column"], "public.customers.notes");
    assert!(uncovered[0]["why"]
        .as_str()
        .unwrap()
        .starts_with("no rule; looks like free_text: "));
    let analyst = role(&json, "analyst");
    assert_eq!(column(analyst, "public.customers", "notes")["gets"], "clear");
    let md = rt
        .block_on(report::run_report(dir.path(), Some(&url), Format::Md))
        .unwrap();
    println!("{md}");
    assert!(
        md.contains("| `public.customers.notes` | no rule; looks like free_text: "),
        "{md}"
    );
    let html = rt
        .block_on(report::run_report(dir.path(), Some(&url), Format::Html))
        .unwrap();
    assert!(
        html.contains("<tr><td><code>public.customers.notes</code></td><td>no rule; looks like free_text"),
        "{html}"
    );
    assert_no_secrets(&rules, "html", &html);
}
