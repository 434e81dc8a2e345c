//! Loading and validating the rules directory, and compiling it against a hand-built catalog
//! of the demo schema.
//!
//! Every validation error has a test asserting its exact message (file, line, column, text,
//! hint). Files are written into a fresh temporary directory; in messages the directory is
//! replaced by `rules` so that expectations read like what a DBA sees.
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use pgveil::catalog::{Catalog, Column, RelKind, Relation};
use pgveil::mask::Keys;
use pgveil::policy::compile::compile;
use pgveil::policy::{ColumnAction, RolePlan};
use pgveil::rules::{load_dir, load_keys, Class, RuleError, RuleSet, TableName};
use tempfile::TempDir;

const SCRAM: &str = "SCRAM-SHA-256$4096:l1eymrmHeyXq/nQoImTbPg==$/HtXDyRtjiVqG1NkgxCCNFOZlOnTxYoZyWQU6nnxDxc=:K2cRVRdXtyyArm16+Rdt4m7fs0UPbCXi5QvwuanmWgQ=";

/// A role and a login for it, so that tests of one section raise no other error.
fn base() -> String {
    format!(
        "roles:\n  analyst: {{ sees: public }}\nlogins:\n  alice: {{ role: analyst, scram: \"{SCRAM}\" }}\n"
    )
}

fn write(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn show(dir: &Path, e: &RuleError) -> String {
    e.to_string().replace(&dir.display().to_string(), "rules")
}

/// Loads `files` and returns the error messages (the load must fail).
fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let dir = write(files);
    match load_dir(dir.path()) {
        Ok(_) => panic!("rules loaded but errors were expected"),
        Err(errs) => errs.iter().map(|e| show(dir.path(), e)).collect(),
    }
}

fn ok(files: &[(&str, &str)]) -> RuleSet {
    let dir = write(files);
    match load_dir(dir.path()) {
        Ok(r) => r,
        Err(errs) => panic!(
            "unexpected errors:\n{}",
            errs.iter()
                .map(|e| show(dir.path(), e))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

// ---- one test per validation error ----------------------------------------------------------

#[test]
fn yaml_syntax_error_names_the_line() {
    let e = errors(&[(
        "t.yaml",
        "tables:\n  public.customers:\n    phone: { class: sensitive\n    email: x\n",
    )]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0], "rules/t.yaml:4:10: YAML syntax error: while parsing a flow mapping, did not find expected ',' or '}'");
}

#[test]
fn unknown_section() {
    let e = errors(&[("t.yaml", "tabels:\n  public.customers:\n    phone: sensitive\n")]);
    assert_eq!(
        e,
        ["rules/t.yaml:1:1: unknown section 'tabels' (hint: did you mean 'tables'?)"]
    );
}

#[test]
fn unknown_field() {
    let e = errors(&[(
        "t.yaml",
        "tables:\n  public.customers:\n    phone: { clas: sensitive, mask: phone }\n",
    )]);
    assert_eq!(
        e,
        ["rules/t.yaml:3:14: unknown field 'clas' in column public.customers.phone (hint: did you mean 'class'?)"]
    );
}

#[test]
fn unknown_field_in_a_role_lists_the_fields_when_nothing_is_close() {
    let text = base().replace("{ sees: public }", "{ sees: public, colour: blue }");
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:2:28: unknown field 'colour' in role analyst (hint: fields are: unrestricted, sees, default, masks, row_filters, limits)"]
    );
}

#[test]
fn unknown_class_with_did_you_mean() {
    let e = errors(&[(
        "t.yaml",
        "tables:\n  public.customers:\n    phone:\n      class: sensitve\n",
    )]);
    assert_eq!(
        e,
        ["rules/t.yaml:4:14: unknown class 'sensitve' (hint: did you mean 'sensitive'?)"]
    );
}

#[test]
fn column_without_class() {
    let e = errors(&[(
        "t.yaml",
        "tables:\n  public.customers:\n    phone: { mask: phone }\n",
    )]);
    assert_eq!(
        e,
        ["rules/t.yaml:3:5: column public.customers.phone has no class (hint: add class: public | internal | sensitive | secret)"]
    );
}

#[test]
fn unknown_mask_name() {
    let e = errors(&[(
        "t.yaml",
        "tables:\n  public.customers:\n    phone: { class: sensitive, mask: phnoe }\n",
    )]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("rules/t.yaml:3:38: bad mask of public.customers.phone: unknown mask 'phnoe'; expected one of: redact, null,"),
        "{}",
        e[0]
    );
    assert!(e[0].ends_with("(hint: did you mean 'phone'?)"), "{}", e[0]);
}

#[test]
fn bad_mask_parameters() {
    let e = errors(&[(
        "t.yaml",
        "tables:\n  public.customers:\n    phone: { class: sensitive, mask: { partial: { keep_frist: 3, keep_last: 4 } } }\n",
    )]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("rules/t.yaml:3:38: bad mask of public.customers.phone: "),
        "{}",
        e[0]
    );
    assert!(e[0].contains("keep_frist"), "{}", e[0]);
}

#[test]
fn column_ruled_twice_across_files_names_both_places() {
    let e = errors(&[
        (
            "a.yaml",
            "tables:\n  public.customers:\n    phone: { class: sensitive, mask: phone }\n",
        ),
        (
            "b.yaml",
            "tables:\n  customers:\n    email: sensitive\n    phone: internal\n",
        ),
    ]);
    assert_eq!(
        e,
        ["rules/b.yaml:4:5: column public.customers.phone is ruled twice: here and at rules/a.yaml:3:5 (hint: keep one rule per column)"]
    );
}

#[test]
fn column_ruled_twice_in_one_mapping() {
    let e = errors(&[(
        "a.yaml",
        "tables:\n  public.customers:\n    phone: sensitive\n    phone: internal\n",
    )]);
    assert_eq!(e, ["rules/a.yaml:4:5: duplicate key 'phone' (first at line 3)"]);
}

#[test]
fn login_with_unknown_role() {
    let text = base().replace("role: analyst", "role: analist");
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:4:3: login alice has unknown role 'analist' (hint: did you mean 'analyst'?)"]
    );
}

#[test]
fn role_without_login_is_a_warning() {
    // A warning so that revoking the last login of a role is never refused on reload.
    let text = base().replace("roles:\n", "roles:\n  auditor: { sees: internal }\n");
    let dir = write(&[("t.yaml", &text)]);
    let rules = load_dir(dir.path()).unwrap();
    let w: Vec<String> = rules.warnings.iter().map(|w| show(dir.path(), w)).collect();
    assert_eq!(
        w,
        ["rules/t.yaml:2:3: role auditor has no login (hint: add a login with this role under logins:, or remove the role)"]
    );
}

#[test]
fn clear_text_password_is_refused() {
    let text = base().replace(&format!("scram: \"{SCRAM}\""), "password: hunter2");
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:4:27: login alice has a clear-text password (hint: never store passwords: run `pgveil hash-password` and paste its output as scram:)"]
    );
    assert!(!e[0].contains("hunter2"));
}

#[test]
fn md5_without_legacy_flag() {
    let text = base().replace(
        &format!("scram: \"{SCRAM}\""),
        "md5: md5a3556571e93b0d20722ba62be61e8c2d",
    );
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:4:27: login alice has an md5 verifier but not legacy_md5: true (hint: MD5 is weak: prefer scram: (from `pgveil hash-password`); set legacy_md5: true only for clients that cannot do SCRAM)"]
    );
    let text = base().replace(
        &format!("scram: \"{SCRAM}\""),
        "md5: md5a3556571e93b0d20722ba62be61e8c2d, legacy_md5: true",
    );
    let rules = ok(&[("t.yaml", &text)]);
    assert!(rules.logins["alice"].legacy_md5);
}

#[test]
fn valid_until_before_valid_from() {
    let text = base().replace(
        "role: analyst,",
        "role: analyst, valid_from: 2026-11-01, valid_until: 2026-03-31,",
    );
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:4:64: login alice: valid_until 2026-03-31 is before valid_from 2026-11-01"]
    );
}

#[test]
fn login_window_and_agreement() {
    let text = base().replace(
        "role: analyst,",
        "role: analyst, agreement: DD-2026-017, valid_from: 2026-11-01, valid_until: 2027-03-31,",
    );
    let rules = ok(&[("t.yaml", &text)]);
    let l = &rules.logins["alice"];
    assert_eq!(l.agreement.as_deref(), Some("DD-2026-017"));
    assert_eq!(l.scram_verifier.as_deref(), Some(SCRAM));
    assert!(l
        .check_window(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap())
        .is_ok());
    assert!(l
        .check_window(Utc.with_ymd_and_hms(2027, 3, 31, 23, 59, 59).unwrap())
        .is_ok());
    let early = l
        .check_window(Utc.with_ymd_and_hms(2026, 10, 31, 23, 59, 59).unwrap())
        .unwrap_err();
    assert_eq!(
        early.to_string(),
        "login alice is not valid before 2026-11-01 00:00:00 UTC (agreement DD-2026-017)"
    );
    let late = l
        .check_window(Utc.with_ymd_and_hms(2027, 4, 1, 0, 0, 0).unwrap())
        .unwrap_err();
    assert_eq!(
        late.to_string(),
        "login alice expired at 2027-03-31 23:59:59.999999999 UTC (agreement DD-2026-017)"
    );
    // Debug never shows the verifier.
    assert!(!format!("{l:?}").contains("SCRAM-SHA-256$"));
}

#[test]
fn unknown_key_referenced_by_a_token_mask() {
    let text = base()
        + "keys:\n  main: { env: PGVEIL_TEST_KEY_X }\n"
        + "tables:\n  public.customers:\n    id_number: { class: sensitive, mask: { token: { format: cn_id, key: mian } } }\n";
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:9:42: mask of public.customers.id_number uses unknown key 'mian' (hint: did you mean 'main'?)"]
    );
}

#[test]
fn key_with_neither_env_nor_file() {
    let text = base() + "keys:\n  main: { path: /etc/key }\n";
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        [
            "rules/t.yaml:6:3: key main has neither env: nor file: (hint: write { env: VARIABLE } or { file: /path/to/key }; never the key itself)",
            "rules/t.yaml:6:11: unknown field 'path' in key main (hint: fields are: env, file)",
        ]
    );
}

#[test]
fn key_written_inline_is_refused_without_echoing_it() {
    let text = base() + "keys:\n  main: s3cr3t-k3y-b4d\n";
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:6:3: key main must say where the key is: { env: VARIABLE } or { file: PATH } (hint: never write the key itself in the rules)"]
    );
}

#[test]
fn bad_row_filter_sql() {
    let text = base().replace(
        "{ sees: public }",
        "{ sees: public, row_filters: { public.customers: \"consent_transfer = \" } }",
    );
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:2:61: bad row filter for public.customers in role analyst: not a valid SQL expression: syntax error at end of input (hint: a row filter is a boolean SQL expression over the table's own columns)"]
    );
    let text = base().replace(
        "{ sees: public }",
        "{ sees: public, row_filters: { public.customers: \"true UNION SELECT 1 FROM x\" } }",
    );
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("must be a boolean expression only"), "{}", e[0]);
}

#[test]
fn bad_limit_values() {
    let text = base().replace(
        "{ sees: public }",
        "{ sees: public, limits: { statement_timeout: 3 days, max_rows: lots } }",
    );
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        [
            "rules/t.yaml:2:57: statement_timeout must be a duration, got '3 days' (hint: write e.g. 500ms, 30s, 5min or 1h)",
            "rules/t.yaml:2:75: max_rows must be a whole number, got 'lots'",
        ]
    );
}

#[test]
fn every_error_of_every_file_is_reported() {
    let e = errors(&[
        (
            "a.yaml",
            "tables:\n  public.customers:\n    phone: { class: sensitve }\n    email: { class: secrett }\n",
        ),
        ("b.yaml", "tabels: {}\n"),
        ("c.yaml", "logins:\n  bob: { role: ghost, password: x }\n"),
    ]);
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(e[0].starts_with("rules/a.yaml:3:"));
    assert!(e[1].starts_with("rules/a.yaml:4:"));
    assert!(e[2].starts_with("rules/b.yaml:1:1: unknown section"));
    assert!(e[3].starts_with("rules/c.yaml:2:"));
}

#[test]
fn empty_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_dir(dir.path()).unwrap_err();
    assert_eq!(e[0].message, "no rules files (*.yaml) in the rules directory");
}

// ---- keys ----------------------------------------------------------------------------------

#[test]
fn keys_from_env_and_file_never_shown() {
    let dir = write(&[]);
    let key_file = dir.path().join("token.key");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::write(dir.path().join("short.key"), "short\n").unwrap();
    let text = format!(
        "{}keys:\n  f: {{ file: {} }}\n  e: {{ env: PGVEIL_TEST_KEY_UNSET_1 }}\n  s: {{ file: {} }}\n",
        base(),
        key_file.display(),
        dir.path().join("short.key").display()
    );
    std::fs::write(dir.path().join("t.yaml"), text).unwrap();
    let rules = load_dir(dir.path()).unwrap();
    let e: Vec<String> = load_keys(&rules)
        .unwrap_err()
        .iter()
        .map(|e| show(dir.path(), e))
        .collect();
    assert_eq!(
        e,
        [
            "rules/t.yaml:7:3: key e: environment variable PGVEIL_TEST_KEY_UNSET_1 is not set (hint: export PGVEIL_TEST_KEY_UNSET_1=$(openssl rand -hex 32) before starting pgveil)",
            "rules/t.yaml:8:3: key s is too short: 5 bytes, need at least 16 (hint: generate one with `openssl rand -hex 32`)",
        ]
    );
    let text = format!("{}keys:\n  f: {{ file: {} }}\n", base(), key_file.display());
    std::fs::write(dir.path().join("t.yaml"), text).unwrap();
    let keys = load_keys(&load_dir(dir.path()).unwrap()).unwrap();
    assert_eq!(keys.keys["f"], b"0123456789abcdef0123456789abcdef");
    assert!(!format!("{keys:?}").contains("0123"));
}

// ---- the demo rules ------------------------------------------------------------------------

fn demo_rules() -> RuleSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    match load_dir(&dir) {
        Ok(r) => r,
        Err(e) => panic!("demo rules do not load:\n{}", pgveil::rules::format_errors(&e)),
    }
}

#[test]
fn demo_rules_load() {
    let rules = demo_rules();
    assert!(rules.warnings.is_empty(), "{:?}", rules.warnings);
    assert_eq!(
        rules.roles.keys().collect::<Vec<_>>(),
        ["analyst", "auditor", "dba"]
    );
    assert_eq!(
        rules.logins.keys().collect::<Vec<_>>(),
        ["analyst", "auditor", "dba"]
    );
    let customers = &rules.tables[&TableName::new("public", "customers")];
    assert_eq!(customers["id_number"].class, Class::Sensitive);
    assert_eq!(customers["city"].class, Class::Public);
    assert_eq!(
        rules.tables[&TableName::new("public", "employees")]["salary"].class,
        Class::Secret
    );
    let analyst = &rules.roles["analyst"];
    assert_eq!(analyst.limits.max_rows, Some(100_000));
    assert_eq!(analyst.limits.statement_timeout_ms, Some(30_000));
    assert_eq!(analyst.limits.max_sessions, Some(5));
    assert_eq!(
        analyst.row_filters[&TableName::new("public", "customers")].canonical,
        "(consent_transfer)"
    );
    assert!(rules.roles["dba"].unrestricted);
    for l in rules.logins.values() {
        assert!(l
            .scram_verifier
            .as_deref()
            .is_some_and(|v| v.starts_with("SCRAM-SHA-256$4096:")));
    }
}

/// The demo schema (src/demo/schema.sql) as the catalog loader would read it.
pub fn demo_catalog() -> Catalog {
    fn col(attnum: i16, name: &str, ty: &str) -> Column {
        let (type_oid, typmod, type_name) = match ty {
            "int" => (23, -1, "integer".to_string()),
            "text" => (25, -1, "text".to_string()),
            "date" => (1082, -1, "date".to_string()),
            "bool" => (16, -1, "boolean".to_string()),
            "ts" => (1114, -1, "timestamp without time zone".to_string()),
            t if t.starts_with("varchar") => {
                let n: i32 = t[7..].parse().unwrap();
                (1043, n + 4, format!("character varying({n})"))
            }
            t if t.starts_with("numeric") => {
                let (p, s) = t[7..].split_once(',').unwrap();
                let (p, s): (i32, i32) = (p.parse().unwrap(), s.parse().unwrap());
                (1700, ((p << 16) | s) + 4, format!("numeric({p},{s})"))
            }
            other => panic!("type {other}"),
        };
        Column {
            name: name.into(),
            attnum,
            type_oid,
            type_name,
            typmod,
            not_null: false,
        }
    }
    fn rel(oid: u32, name: &str, kind: RelKind, cols: &[(&str, &str)], view: Option<&str>) -> Relation {
        Relation {
            oid,
            schema: "public".into(),
            name: name.into(),
            kind,
            columns: cols
                .iter()
                .enumerate()
                .map(|(i, (n, t))| col(i as i16 + 1, n, t))
                .collect(),
            view_definition: view.map(str::to_string),
            primary_key: Vec::new(),
        }
    }
    let mut c = Catalog {
        version: 1,
        ..Catalog::default()
    };
    c.insert(rel(
        16400,
        "customers",
        RelKind::Table,
        &[
            ("id", "int"),
            ("name", "text"),
            ("id_number", "varchar18"),
            ("phone", "varchar20"),
            ("email", "text"),
            ("bank_card", "varchar19"),
            ("address", "text"),
            ("birth_date", "date"),
            ("city", "text"),
            ("vip_level", "int"),
            ("consent_transfer", "bool"),
            ("notes", "text"),
            ("created_at", "ts"),
        ],
        None,
    ));
    c.insert(rel(
        16410,
        "orders",
        RelKind::Table,
        &[
            ("id", "int"),
            ("customer_id", "int"),
            ("order_no", "varchar18"),
            ("amount", "numeric12,2"),
            ("status", "text"),
            ("ordered_at", "ts"),
        ],
        None,
    ));
    c.insert(rel(
        16420,
        "employees",
        RelKind::Table,
        &[
            ("id", "int"),
            ("name", "text"),
            ("department", "text"),
            ("salary", "numeric10,2"),
            ("id_number", "varchar18"),
            ("phone", "varchar20"),
            ("hired_on", "date"),
        ],
        None,
    ));
    c.insert(rel(
        16430,
        "suppliers",
        RelKind::Table,
        &[
            ("id", "int"),
            ("name", "text"),
            ("uscc", "varchar18"),
            ("contact_phone", "varchar20"),
        ],
        None,
    ));
    c.insert(rel(
        16440,
        "customer_contacts",
        RelKind::View,
        &[
            ("id", "int"),
            ("name", "text"),
            ("phone", "varchar20"),
            ("email", "text"),
            ("city", "text"),
        ],
        Some(" SELECT id,\n    name,\n    phone,\n    email,\n    city\n   FROM customers;"),
    ));
    c.insert_function("public".into(), "safe_fn".into());
    c
}

fn demo_keys() -> Keys {
    let mut k = Keys::default();
    k.keys
        .insert("main".into(), b"demo-key-demo-key-demo-key-0123".to_vec());
    k
}

fn action(plan: &RolePlan, table: &str, column: &str) -> &'static str {
    // A relation without a plan is unprotected: every column clear.
    let Some(t) = plan.tables.values().find(|t| t.name == table) else {
        return "clear";
    };
    match &t.column(column).unwrap().action {
        ColumnAction::Clear => "clear",
        ColumnAction::Mask(_) => "mask",
        ColumnAction::Deny => "deny",
    }
}

fn what<'a>(plan: &'a RolePlan, table: &str, column: &str) -> &'a str {
    let t = plan.tables.values().find(|t| t.name == table).unwrap();
    t.column(column)
        .unwrap()
        .rule
        .as_ref()
        .map(|r| r.what.as_str())
        .unwrap_or("")
}

#[test]
fn demo_rules_compile_to_the_expected_plans() {
    let plans = compile(&demo_rules(), &demo_catalog(), &demo_keys()).unwrap_or_else(|e| panic!("{e:#?}"));
    let analyst: &Arc<RolePlan> = &plans["analyst"];
    assert!(!analyst.unrestricted);
    assert_eq!(action(analyst, "customers", "phone"), "mask");
    assert_eq!(action(analyst, "customers", "id_number"), "mask");
    assert_eq!(action(analyst, "customers", "city"), "clear");
    assert_eq!(action(analyst, "customers", "id"), "clear");
    assert_eq!(action(analyst, "employees", "salary"), "deny");
    assert_eq!(action(analyst, "orders", "amount"), "mask");
    assert_eq!(action(analyst, "orders", "order_no"), "clear");
    assert_eq!(
        what(analyst, "customers", "phone"),
        "public.customers.phone (class sensitive, mask phone; role analyst sees public)"
    );
    let customers = analyst.tables.values().find(|t| t.name == "customers").unwrap();
    let (filter, rule) = customers.row_filter.as_ref().unwrap();
    assert_eq!(filter, "(consent_transfer)");
    assert!(rule.file.ends_with("rules/roles.yaml"), "{}", rule.file);
    assert_eq!(rule.line, 11);
    // Every column of a protected relation is in its plan, in attnum order.
    assert_eq!(customers.columns.len(), 13);
    assert!(customers.columns.windows(2).all(|w| w[0].attnum < w[1].attnum));
    // The view over customers gets no plan of its own: the analyser expands it, so the
    // masks and the row filter of customers apply through it.
    assert!(analyst.tables.values().all(|t| t.name != "customer_contacts"));
    assert_eq!(analyst.limits.max_rows, Some(100_000));

    let auditor = &plans["auditor"];
    assert_eq!(action(auditor, "customers", "id_number"), "mask");
    assert!(
        what(auditor, "customers", "id_number").contains("role auditor masks: {\"token\""),
        "{}",
        what(auditor, "customers", "id_number")
    );
    assert_eq!(action(auditor, "orders", "amount"), "clear");
    assert_eq!(action(auditor, "customers", "phone"), "mask");
    assert_eq!(action(auditor, "employees", "salary"), "deny");
    assert!(auditor.tables.values().all(|t| t.row_filter.is_none()));

    let dba = &plans["dba"];
    assert!(dba.unrestricted);
    assert!(dba.tables.is_empty());
}

// ---- errors found against the catalog ------------------------------------------------------

fn compile_errors(extra: &str) -> Vec<String> {
    let text = base() + extra;
    let dir = write(&[("t.yaml", &text)]);
    let rules = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    match compile(&rules, &demo_catalog(), &demo_keys()) {
        Ok(_) => panic!("compiled but errors were expected"),
        Err(errs) => errs.iter().map(|e| show(dir.path(), e)).collect(),
    }
}

#[test]
fn unknown_table() {
    let e = compile_errors("tables:\n  public.custmers:\n    phone: sensitive\n");
    assert_eq!(
        e,
        ["rules/t.yaml:7:5: unknown table public.custmers (hint: did you mean 'public.customers'?)"]
    );
}

#[test]
fn unknown_column() {
    let e = compile_errors("tables:\n  public.customers:\n    phon: { class: sensitive, mask: phone }\n");
    assert_eq!(
        e,
        ["rules/t.yaml:7:5: unknown column 'phon' in public.customers (hint: did you mean 'phone'?)"]
    );
}

#[test]
fn mask_that_does_not_fit_the_column_type() {
    let e = compile_errors("tables:\n  public.orders:\n    amount: { class: sensitive, mask: cn_id }\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("rules/t.yaml:7:39: column public.orders.amount (numeric(12,2)): mask cn_id does not fit column type "),
        "{}",
        e[0]
    );
}

#[test]
fn override_and_row_filter_name_real_columns() {
    let text = base().replace(
        "{ sees: public }",
        "{ sees: public, masks: { public.customers.phnoe: deny }, row_filters: { public.orders: \"statsu = 'paid'\" } }",
    );
    let dir = write(&[("t.yaml", &text)]);
    let rules = load_dir(dir.path()).unwrap();
    let e: Vec<String> = compile(&rules, &demo_catalog(), &demo_keys())
        .unwrap_err()
        .iter()
        .map(|e| show(dir.path(), e))
        .collect();
    assert_eq!(
        e,
        [
            "rules/t.yaml:2:37: unknown column 'phnoe' in public.customers (hint: did you mean 'phone'?)",
            "rules/t.yaml:2:99: row filter of role analyst reads unknown column 'statsu' of public.orders (hint: did you mean 'status'?)",
        ]
    );
}

#[test]
fn unknown_function() {
    let e = compile_errors("functions:\n  analyst: [public.safe_fn, public.unsafe_fn]\n");
    assert_eq!(e, ["rules/t.yaml:6:29: unknown function public.unsafe_fn"]);
}

#[test]
fn privacy_by_default_masks_unnamed_columns_of_user_tables_only() {
    let text = base().replace("{ sees: public }", "{ sees: public, default: mask }")
        + "tables:\n  public.customers:\n    city: public\n";
    let dir = write(&[("t.yaml", &text)]);
    let rules = load_dir(dir.path()).unwrap();
    let mut cat = demo_catalog();
    cat.insert(Relation {
        oid: 1259,
        schema: "pg_catalog".into(),
        name: "pg_class".into(),
        kind: RelKind::Table,
        columns: vec![Column {
            name: "relname".into(),
            attnum: 2,
            type_oid: 19,
            type_name: "name".into(),
            typmod: -1,
            not_null: true,
        }],
        view_definition: None,
        primary_key: Vec::new(),
    });
    let plans = compile(&rules, &cat, &demo_keys()).unwrap();
    let a = &plans["analyst"];
    assert_eq!(action(a, "customers", "city"), "clear");
    assert_eq!(action(a, "customers", "vip_level"), "mask");
    assert_eq!(action(a, "suppliers", "name"), "mask");
    assert!(!a.tables.contains_key(&1259), "pg_catalog must stay clear");
    assert!(
        !a.tables.contains_key(&16440),
        "views are expanded, not masked by default"
    );
    assert_eq!(
        what(a, "orders", "status"),
        "public.orders.status (role analyst default: mask, redact)"
    );
}

#[test]
fn explicit_override_wins_over_class() {
    let text = base().replace(
        "{ sees: public }",
        "{ sees: public, masks: { public.employees.salary: clear, public.customers.city: deny } }",
    )
        + "tables:\n  public.employees:\n    salary: secret\n  public.customers:\n    city: public\n";
    let dir = write(&[("t.yaml", &text)]);
    let plans = compile(&load_dir(dir.path()).unwrap(), &demo_catalog(), &demo_keys()).unwrap();
    let a = &plans["analyst"];
    assert_eq!(action(a, "employees", "salary"), "clear");
    assert_eq!(action(a, "customers", "city"), "deny");
    assert!(plans["analyst"].allowed_functions.is_empty());
}

// ---- more validation ------------------------------------------------------------------------

#[test]
fn sees_secret_and_unrestricted_with_masks_are_refused() {
    let text = format!(
        "roles:\n  analyst: {{ sees: secret }}\n  dba: {{ unrestricted: true, masks: {{ public.customers.phone: deny }} }}\n\
         logins:\n  alice: {{ role: analyst, scram: \"{SCRAM}\" }}\n  bob: {{ role: dba, scram: \"{SCRAM}\" }}\n"
    );
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        [
            "rules/t.yaml:2:20: role analyst: sees: secret has no effect, secret columns are denied to every restricted role (hint: use unrestricted: true, or name the column under masks: with clear)",
            "rules/t.yaml:3:30: role dba is unrestricted: masks has no effect (hint: remove it, or remove unrestricted: true)",
        ]
    );
}

#[test]
fn malformed_scram_verifier() {
    let text = base().replace(
        &format!("scram: \"{SCRAM}\""),
        "scram: \"SCRAM-SHA-256$10:c2FsdA==$AAAA:AAAA\"",
    );
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:4:34: login alice: bad scram verifier: iterations must be at least 4096, got 10 (hint: paste the output of `pgveil hash-password`)"]
    );
}

#[test]
fn check_dir_summarises_the_demo_rules_and_lists_errors() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let out = pgveil::rules::check::check_dir(&demo, None).unwrap();
    assert!(
        out.starts_with(
            "rules OK: 3 file(s), 4 table(s), 19 column rule(s), 3 role(s), 3 login(s), 1 key(s)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "  role analyst: sees public, default clear, 0 override(s), 1 row filter(s); logins: analyst\n"
        ),
        "{out}"
    );
    assert!(out.contains("  role dba: unrestricted; logins: dba\n"), "{out}");
    assert!(
        out.contains("  login analyst -> analyst (agreement DD-2026-017)\n"),
        "{out}"
    );

    let dir = write(&[("t.yaml", "tabels: {}\nroles:\n  r: { sees: sensitve }\n")]);
    let err = pgveil::rules::check::check_dir(dir.path(), None)
        .unwrap_err()
        .to_string();
    let err = err.replace(&dir.path().display().to_string(), "rules");
    assert_eq!(
        err,
        "rules/t.yaml:1:1: unknown section 'tabels' (hint: did you mean 'tables'?)\n\
         rules/t.yaml:3:14: unknown class 'sensitve' (hint: did you mean 'sensitive'?)"
    );
}

#[test]
fn rules_on_a_view_over_a_protected_table_are_refused() {
    let e = compile_errors(
        "tables:\n  public.customers:\n    phone: { class: sensitive, mask: phone }\n  public.customer_contacts:\n    email: sensitive\n",
    );
    assert_eq!(
        e,
        ["rules/t.yaml:9:5: view public.customer_contacts reads public.customers, which has rules: rules on the view would replace them (hint: rule the tables under the view; pgveil applies their rules when the view is read)"]
    );
    // A view over unprotected data may be ruled.
    let text = base() + "tables:\n  public.customer_contacts:\n    email: sensitive\n";
    let dir = write(&[("t.yaml", &text)]);
    let plans = compile(&load_dir(dir.path()).unwrap(), &demo_catalog(), &demo_keys()).unwrap();
    assert_eq!(action(&plans["analyst"], "customer_contacts", "email"), "mask");
}

/// What `pgveil hash-password` prints is what `scram:` accepts.
#[test]
fn hash_password_output_is_a_valid_scram_field() {
    let verifier = pgveil::session::scram::hash_password("correct horse");
    let text = base().replace(SCRAM, &verifier);
    let rules = ok(&[("t.yaml", &text)]);
    assert_eq!(
        rules.logins["alice"].scram_verifier.as_deref(),
        Some(verifier.as_str())
    );
}

#[test]
fn bare_token_needs_the_default_key() {
    let text = base().replace(
        "{ sees: public }",
        "{ sees: public, masks: { public.customers.email: token } }",
    );
    let e = errors(&[("t.yaml", &text)]);
    assert_eq!(
        e,
        ["rules/t.yaml:2:61: mask of public.customers.email for role analyst uses unknown key 'default' (hint: a keyed mask without key: uses the key id 'default': declare it under keys:, or write key: <id>)"]
    );
}

/// rules/rules.schema.json (for editors) lists exactly the sections, fields and masks the
/// loader accepts, so an editor never suggests what pgveil refuses or flags what it takes.
#[test]
fn json_schema_matches_the_loader() {
    use pgveil::rules::{COLUMN_FIELDS, KEY_FIELDS, LIMIT_FIELDS, LOGIN_FIELDS, ROLE_FIELDS, SECTIONS};
    use serde_json::Value;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/rules.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v["properties"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let sorted = |a: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let p = &schema["properties"];
    assert_eq!(keys(&schema), sorted(&SECTIONS));
    assert_eq!(
        keys(&p["tables"]["additionalProperties"]["additionalProperties"]["oneOf"][1]),
        sorted(&COLUMN_FIELDS)
    );
    let role = &p["roles"]["additionalProperties"]["oneOf"][1];
    assert_eq!(keys(role), sorted(&ROLE_FIELDS));
    assert_eq!(keys(&role["properties"]["limits"]), sorted(&LIMIT_FIELDS));
    assert_eq!(keys(&p["logins"]["additionalProperties"]), sorted(&LOGIN_FIELDS));
    assert_eq!(keys(&p["keys"]["additionalProperties"]), sorted(&KEY_FIELDS));
    // Every mask name is offered, bare or with parameters.
    let mask = &schema["definitions"]["mask"]["oneOf"];
    let mut names: Vec<String> = mask[0]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for m in mask.as_array().unwrap().iter().skip(2) {
        names.extend(keys(m));
    }
    names.sort();
    names.dedup();
    assert_eq!(names, sorted(pgveil::mask::MaskSpec::NAMES));
}
