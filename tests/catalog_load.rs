//! Loading the catalog from a real PostgreSQL 15 holding the demo schema, then compiling the
//! demo rules against it. Also checks that the demo logins' SCRAM verifiers are ones
//! PostgreSQL itself accepts for the documented passwords.
use std::path::Path;

use pgveil::catalog::load::load;
use pgveil::catalog::{Catalog, RelKind};
use pgveil::cluster::{Auth, Cluster, ClusterOptions};
use pgveil::mask::Keys;
use pgveil::policy::compile::compile;
use pgveil::policy::ColumnAction;
use pgveil::rules::load_dir;

const SCHEMA: &str = include_str!("../src/demo/schema.sql");

/// Extra relation kinds and corner cases beyond the demo schema.
const EXTRA: &str = "
CREATE SCHEMA hr;
CREATE TABLE hr.reviews (id int, score int, dropped_col text, comment text);
ALTER TABLE hr.reviews DROP COLUMN dropped_col;
CREATE TABLE measurements (at date NOT NULL, value float8) PARTITION BY RANGE (at);
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE MATERIALIZED VIEW city_counts AS SELECT city, count(*) AS n FROM customers GROUP BY city;
CREATE MATERIALIZED VIEW phone_copy AS SELECT id, phone AS tel FROM customers;
CREATE FUNCTION public.safe_fn(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1';
CREATE TEMP TABLE scratch (x int);
";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn start() -> Cluster {
    Cluster::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL for the test: {e}"))
}

async fn demo_catalog(cluster: &Cluster) -> Catalog {
    let client = connect(&cluster.url("postgres")).await.unwrap();
    client.batch_execute(SCHEMA).await.unwrap();
    client.batch_execute(EXTRA).await.unwrap();
    load(&client, 7).await.unwrap()
}

#[test]
fn catalog_of_the_demo_schema() {
    let cluster = start();
    let cat = rt().block_on(demo_catalog(&cluster));
    assert_eq!(cat.version, 7);

    let customers = cat.get("public", "customers").unwrap();
    assert_eq!(customers.kind, RelKind::Table);
    let names: Vec<&str> = customers.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "id_number",
            "phone",
            "email",
            "bank_card",
            "address",
            "birth_date",
            "city",
            "vip_level",
            "consent_transfer",
            "notes",
            "created_at"
        ]
    );
    let id_number = customers.column("id_number").unwrap();
    assert_eq!(
        (id_number.type_oid, id_number.typmod, id_number.type_name.as_str()),
        (1043, 22, "character varying(18)")
    );
    assert!(id_number.not_null);
    assert!(!customers.column("phone").unwrap().not_null);
    assert_eq!(customers.column("birth_date").unwrap().type_oid, 1082);
    assert_eq!(
        customers.column("created_at").unwrap().type_name,
        "timestamp without time zone"
    );
    assert!(customers.view_definition.is_none());
    assert_eq!(cat.by_oid(customers.oid).unwrap().name, "customers");

    let amount = cat.get("public", "orders").unwrap().column("amount").unwrap();
    assert_eq!(
        (amount.type_oid, amount.type_name.as_str()),
        (1700, "numeric(12,2)")
    );
    assert_eq!(amount.typmod, ((12 << 16) | 2) + 4);

    let view = cat.get("public", "customer_contacts").unwrap();
    assert_eq!(view.kind, RelKind::View);
    assert_eq!(view.columns.len(), 5);
    let def = view.view_definition.as_deref().unwrap();
    // Printed under search_path = pg_catalog: every user name is schema-qualified.
    assert!(def.contains("FROM public.customers"), "{def}");

    let mv = cat.get("public", "city_counts").unwrap();
    assert_eq!(mv.kind, RelKind::MaterializedView);
    assert!(mv.view_definition.as_deref().unwrap().contains("GROUP BY"));
    assert_eq!(
        cat.get("public", "measurements").unwrap().kind,
        RelKind::PartitionedTable
    );
    assert_eq!(
        cat.get("public", "measurements_2026").unwrap().kind,
        RelKind::Table
    );

    // Dropped columns are gone, their attnum gap stays.
    let reviews = cat.get("hr", "reviews").unwrap();
    let cols: Vec<(&str, i16)> = reviews
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.attnum))
        .collect();
    assert_eq!(cols, [("id", 1), ("score", 2), ("comment", 4)]);

    // Catalog relations are there (psql's \d reads them), toast and temp ones are not.
    assert_eq!(cat.get("pg_catalog", "pg_class").unwrap().kind, RelKind::Table);
    assert_eq!(
        cat.get("information_schema", "columns").unwrap().kind,
        RelKind::View
    );
    assert!(cat
        .relations
        .values()
        .all(|r| !r.schema.starts_with("pg_toast") && !r.schema.starts_with("pg_temp")));
    assert!(cat.relations.values().all(|r| r.name != "scratch"));
    // Resolution along a search path puts pg_catalog first.
    assert_eq!(
        cat.resolve(&["public".to_string()], "pg_class").unwrap().schema,
        "pg_catalog"
    );

    // Functions, by schema and name.
    assert!(cat.has_function("pg_catalog", "pg_read_file"));
    assert!(cat.has_function("public", "safe_fn"));
    assert!(!cat.has_function("public", "pg_read_file"));
}

#[test]
fn demo_rules_compile_against_the_real_catalog() {
    let cluster = start();
    let cat = rt().block_on(demo_catalog(&cluster));
    let rules = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap();
    let mut keys = Keys::default();
    keys.keys
        .insert("main".into(), b"0123456789abcdef0123456789abcdef".to_vec());
    let plans =
        compile(&rules, &cat, &keys).unwrap_or_else(|e| panic!("{}", pgveil::rules::format_errors(&e)));

    let analyst = &plans["analyst"];
    let customers = cat.get("public", "customers").unwrap();
    let plan = &analyst.tables[&customers.oid];
    assert!(matches!(
        plan.column("phone").unwrap().action,
        ColumnAction::Mask(_)
    ));
    assert!(matches!(plan.column("city").unwrap().action, ColumnAction::Clear));
    assert_eq!(plan.row_filter.as_ref().unwrap().0, "(consent_transfer)");
    let employees = cat.get("public", "employees").unwrap();
    assert!(matches!(
        analyst.tables[&employees.oid].column("salary").unwrap().action,
        ColumnAction::Deny
    ));
    // Views and materialized views get no plan: the analyser expands their definitions.
    for v in ["customer_contacts", "phone_copy", "city_counts"] {
        assert!(
            !analyst.tables.contains_key(&cat.get("public", v).unwrap().oid),
            "{v}"
        );
    }
    // Catalog relations are not protected.
    assert!(!analyst
        .tables
        .contains_key(&cat.get("pg_catalog", "pg_class").unwrap().oid));

    let auditor = &plans["auditor"];
    assert!(matches!(
        auditor.tables[&customers.oid].column("id_number").unwrap().action,
        ColumnAction::Mask(_)
    ));
    assert!(!auditor
        .tables
        .contains_key(&cat.get("public", "orders").unwrap().oid));
    assert!(plans["dba"].unrestricted);

    // A rule naming something the database lacks fails against the real catalog.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.yaml"),
        "tables:\n  public.customers:\n    fax: sensitive\nroles:\n  r: {}\n",
    )
    .unwrap();
    let e = compile(&load_dir(dir.path()).unwrap(), &cat, &keys).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].message, "unknown column 'fax' in public.customers");
}

/// The demo's verifiers are real: PostgreSQL accepts each user's name as its password.
#[test]
fn demo_scram_verifiers_are_accepted_by_postgresql() {
    let cluster = Cluster::start_with(ClusterOptions {
        auth: Auth::Scram,
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("cannot start PostgreSQL for the test: {e}"));
    let rules = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap();
    rt().block_on(async {
        let admin = connect(&cluster.url("postgres")).await.unwrap();
        for login in rules.logins.values() {
            let verifier = login.scram_verifier.as_deref().unwrap();
            admin
                .batch_execute(&format!(
                    "CREATE ROLE \"{}\" LOGIN PASSWORD '{verifier}'",
                    login.user
                ))
                .await
                .unwrap();
            let ok = connect(&cluster.url_as(&login.user, &login.user, "postgres")).await;
            assert!(ok.is_ok(), "{}: {:?}", login.user, ok.err());
            let bad = connect(&cluster.url_as(&login.user, "wrong", "postgres")).await;
            assert!(bad.is_err(), "{} accepted a wrong password", login.user);
        }
    });
}

/// `pgveil check --upstream`: the summary lists what each role gets per protected column.
#[test]
fn check_dir_against_the_upstream() {
    let cluster = start();
    let rt = rt();
    rt.block_on(demo_catalog(&cluster));
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    // Called from inside a runtime, as `pgveil check` does.
    let url = cluster.url("postgres");
    let out = rt
        .block_on(async { pgveil::rules::check::check_dir(&demo, Some(&url)) })
        .unwrap();
    assert!(out.contains("\nagainst the upstream catalog ("), "{out}");
    assert!(out.contains("  analyst: 4 protected relation(s)"), "{out}");
    assert!(out.contains("    public.customers.phone: mask phone\n"), "{out}");
    assert!(
        out.contains("    public.customers: rows where (consent_transfer)\n"),
        "{out}"
    );
    assert!(out.contains("    public.employees.salary: deny\n"), "{out}");
    assert!(out.contains("  dba: unrestricted\n"), "{out}");

    // An unknown column is reported against the real catalog.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.yaml"),
        "tables:\n  public.orders:\n    amout: internal\n",
    )
    .unwrap();
    let err = pgveil::rules::check::check_dir(dir.path(), Some(&cluster.url("postgres"))).unwrap_err();
    assert_eq!(
        err.to_string()
            .replace(&dir.path().display().to_string(), "rules"),
        "rules/t.yaml:3:5: unknown column 'amout' in public.orders (hint: did you mean 'amount'?)"
    );
}
