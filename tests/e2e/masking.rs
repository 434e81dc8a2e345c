//! Masking through the running proxy with the demo rules: what analysts see, and the
//! protocol paths around pgveil's own (keyed) masks.
use bytes::BytesMut;
use pgveil::cluster::Cluster;

use crate::common::*;
use crate::raw::{self, Raw};

/// The demo database (200 customers) behind pgveil with the demo rules.
async fn demo_bed() -> (Cluster, Proxy) {
    // The demo rules' token key; every test of this binary that sets it sets this value.
    std::env::set_var("PGVEIL_TOKEN_KEY", "e2e-demo-token-key-0123456789");
    let cluster = tokio::task::spawn_blocking(|| {
        let c = Cluster::start().expect("PostgreSQL starts");
        c.create_db("seller").expect("db");
        pgveil::demo::data::load(&c, "seller", 7, 200).expect("demo data");
        c
    })
    .await
    .expect("join");
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let proxy = Proxy::start(&cluster.url("seller"), &rules).await;
    (cluster, proxy)
}

#[tokio::test]
async fn analyst_sees_masked_values_and_no_salary() {
    let (cluster, proxy) = demo_bed().await;
    let analyst = connect(&proxy.url("analyst", "analyst", "seller")).await;
    let direct = connect(&cluster.url("seller")).await;
    let rows = simple(
        &analyst,
        "SELECT id, id_number, phone FROM customers ORDER BY id LIMIT 20",
    )
    .await
    .expect("answered");
    assert_eq!(rows.len(), 21);
    for r in &rows[..20] {
        let id = r[0].as_deref().expect("id");
        let raw = simple(
            &direct,
            &format!("SELECT id_number, phone FROM customers WHERE id = {id}"),
        )
        .await
        .expect("direct");
        let (raw_id, masked_id) = (
            raw[0][0].as_deref().expect("raw id"),
            r[1].as_deref().expect("masked id"),
        );
        assert_eq!(masked_id.len(), 18);
        assert_eq!(&masked_id[..6], &raw_id[..6], "region code kept");
        assert!(masked_id[6..].chars().all(|c| c == '*'), "{masked_id}");
        if let (Some(p), Some(m)) = (raw[0][1].as_deref(), r[2].as_deref()) {
            assert_ne!(p, m);
            assert_eq!(&m[..3], &p[..3]);
            assert_eq!(&m[3..7], "****");
        }
    }
    // Binary format: the same masked text.
    let b = extended(
        &analyst,
        "SELECT id_number FROM customers ORDER BY id LIMIT 1",
        &[],
    )
    .await
    .expect("binary");
    assert_eq!(b[0][0], rows[0][1]);
    let e = simple(&analyst, "SELECT name, salary FROM employees")
        .await
        .unwrap_err();
    assert!(
        e.starts_with("42501: permission denied for column public.employees.salary"),
        "{e}"
    );
    // The consent filter: the analyst counts only consenting customers.
    let n = simple(&analyst, "SELECT count(*) FROM customers")
        .await
        .expect("count")[0][0]
        .clone();
    let want = simple(&direct, "SELECT count(*) FROM customers WHERE consent_transfer")
        .await
        .expect("count")[0][0]
        .clone();
    assert_eq!(n, want);
}

/// A statement prepared through the protocol can be run by SQL `EXECUTE`, whose own text
/// says nothing of the columns. A keyed (token) column must never come out raw that way:
/// not in a simple Query, and not through Parse/Bind/Execute without any Describe.
#[tokio::test]
async fn sql_execute_of_a_keyed_statement_never_leaks_raw_values() {
    let (cluster, proxy) = demo_bed().await;
    let direct = connect(&cluster.url("seller")).await;
    let raw_ids: Vec<String> = simple(&direct, "SELECT id_number FROM customers")
        .await
        .expect("ids")
        .into_iter()
        .filter_map(|r| r[0].clone())
        .filter(|v| !v.starts_with('#'))
        .collect();
    let addr = proxy.addr.to_string();
    for via_extended in [false, true] {
        let mut c = Raw::connect(&addr, "auditor", "auditor", "seller")
            .await
            .expect("auditor connects");
        let mut out = BytesMut::new();
        raw::parse(
            &mut out,
            "s",
            "SELECT id, id_number FROM customers ORDER BY id LIMIT 5",
        );
        raw::sync(&mut out);
        if via_extended {
            raw::parse(&mut out, "", "EXECUTE s");
            raw::bind(&mut out, "", "");
            raw::execute(&mut out, "", 0);
            raw::sync(&mut out);
        } else {
            raw::query(&mut out, "EXECUTE s");
        }
        c.send(&out).await;
        let mut seen = Vec::new();
        while let Some(f) = c.recv().await {
            seen.push(f.tag as char);
            assert!(
                !raw_ids
                    .iter()
                    .any(|id| f.bytes.windows(id.len()).any(|w| w == id.as_bytes())),
                "a raw ID number left pgveil (extended: {via_extended})"
            );
            if seen.iter().filter(|t| **t == 'Z').count() == 2 {
                break;
            }
        }
        assert!(seen.contains(&'E'), "the indirect read is stopped: {seen:?}");
    }
}

/// psql's `\d` family works for the analyst on protected tables, exactly as for the DBA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_of_protected_tables_matches_the_dba() {
    let (cluster, proxy) = demo_bed().await;
    let psql = |user: &str, cmd: &str| {
        let out = std::process::Command::new(cluster.bin("psql"))
            .args(["-X", &proxy.url(user, user, "seller"), "-c", cmd])
            .output()
            .expect("psql runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    for cmd in [
        "\\d customers",
        "\\d employees",
        "\\d customer_contacts",
        "\\dt",
        "\\d+ orders",
    ] {
        let dba = tokio::task::block_in_place(|| psql("dba", cmd));
        let analyst = tokio::task::block_in_place(|| psql("analyst", cmd));
        assert!(!dba.contains("ERROR"), "{dba}");
        assert_eq!(analyst, dba, "{cmd}");
    }
}

/// pgveil masks a column that is only selected (a plain output column of the statement's
/// own SELECT, `*` included, or of a COPY in text format) in the result rows itself, and
/// PostgreSQL only reads it; one query level down the same columns are masked by PostgreSQL
/// (the masks' SQL twins). The client must not be able to tell: same values in text, in
/// binary and in COPY, same column names and types.
#[tokio::test]
async fn masks_applied_by_pgveil_equal_masks_computed_in_the_database() {
    let (_cluster, proxy) = demo_bed().await;
    let analyst = connect(&proxy.url("analyst", "analyst", "seller")).await;
    let cols = "id, name, id_number, phone, email, bank_card, address, notes, city, vip_level";
    let pairs = [
        // (masked by pgveil, masked by PostgreSQL)
        (
            "SELECT * FROM customers ORDER BY id".to_string(),
            "SELECT * FROM (SELECT * FROM customers) s ORDER BY id".to_string(),
        ),
        (
            format!("SELECT {cols} FROM customers WHERE vip_level > 1 ORDER BY id LIMIT 50"),
            format!(
                "SELECT * FROM (SELECT {cols} FROM customers WHERE vip_level > 1) s ORDER BY id LIMIT 50"
            ),
        ),
        (
            "SELECT c.phone AS p, c.*, c.email FROM customers c ORDER BY c.id".to_string(),
            "SELECT * FROM (SELECT c.phone AS p, c.*, c.email FROM customers c) s ORDER BY id".to_string(),
        ),
    ];
    for (by_pgveil, by_sql) in &pairs {
        let a = simple(&analyst, by_pgveil).await.expect("text");
        let b = simple(&analyst, by_sql).await.expect("text");
        assert!(a.len() > 20, "{by_pgveil}: {a:?}");
        assert_eq!(a, b, "text: {by_pgveil}");
        let sa = analyst.prepare(by_pgveil).await.expect("prepare");
        let sb = analyst.prepare(by_sql).await.expect("prepare");
        let shape = |s: &tokio_postgres::Statement| -> Vec<(String, String)> {
            s.columns()
                .iter()
                .map(|c| (c.name().to_string(), c.type_().name().to_string()))
                .collect()
        };
        assert_eq!(shape(&sa), shape(&sb), "columns: {by_pgveil}");
        // The two paths really differ: a column pgveil masks still comes straight from the
        // table (RowDescription names it, as for a clear column); one PostgreSQL masks is
        // an expression.
        let from_table = |s: &tokio_postgres::Statement, name: &str| {
            s.columns()
                .iter()
                .any(|c| c.name() == name && c.table_oid().is_some_and(|o| o != 0))
        };
        assert!(
            from_table(&sa, "phone") && !from_table(&sb, "phone"),
            "{by_pgveil}"
        );
    }
    // Binary format (tokio-postgres asks for binary results).
    let by_pgveil = format!("SELECT {cols} FROM customers ORDER BY id");
    let by_sql = format!("SELECT * FROM (SELECT {cols} FROM customers) s ORDER BY id");
    let a = extended(&analyst, &by_pgveil, &[]).await.expect("binary");
    assert_eq!(a, extended(&analyst, &by_sql, &[]).await.expect("binary"));
    assert_eq!(
        a,
        simple(&analyst, &by_pgveil).await.expect("text")[..a.len()].to_vec(),
        "binary and text agree"
    );
    // COPY in text format, masked by pgveil row by row; with an option, by PostgreSQL.
    for (copy_pgveil, copy_sql) in [
        (
            format!("COPY (SELECT {cols}, birth_date FROM customers ORDER BY id) TO STDOUT"),
            format!(
                "COPY (SELECT * FROM (SELECT {cols}, birth_date FROM customers) s ORDER BY id) TO STDOUT"
            ),
        ),
        (
            "COPY customers TO STDOUT".to_string(),
            "COPY (SELECT * FROM (SELECT * FROM customers) s) TO STDOUT".to_string(),
        ),
        (
            "COPY customers (id, phone, notes) TO STDOUT".to_string(),
            "COPY customers (id, phone, notes) TO STDOUT (FORMAT text)".to_string(),
        ),
    ] {
        let a = copy_text(&analyst, &copy_pgveil)
            .await
            .unwrap_or_else(|e| panic!("{copy_pgveil}: {e}"));
        let b = copy_text(&analyst, &copy_sql)
            .await
            .unwrap_or_else(|e| panic!("{copy_sql}: {e}"));
        assert!(a.lines().count() > 20, "{copy_pgveil}: {a}");
        assert_eq!(a, b, "COPY: {copy_pgveil}");
    }
}
