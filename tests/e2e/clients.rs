//! Real client programs through pgveil: psql (with its \d family and \copy) and pgbench.
use std::process::Command;

use crate::common::*;

fn psql_out(bed: &Bed, url: &str, cmd: &str) -> String {
    let out = Command::new(bed.cluster.bin("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", url, "-c", cmd])
        .env("PGTZ", "UTC")
        .output()
        .expect("psql runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_meta_commands_match_direct() {
    let bed = Bed::new().await;
    let direct = bed.cluster.url("test");
    let admin = bed.proxy.url("admin", ADMIN_PW, "test");
    let reader = bed.proxy.url("reader", READER_PW, "test");
    for cmd in [
        "\\d",
        "\\dt",
        "\\d items",
        "\\d+ items",
        "\\dv",
        "\\dn",
        "\\df",
        "\\l",
        "\\dT",
        "\\di",
        "SELECT * FROM items ORDER BY id LIMIT 3",
    ] {
        let want = tokio::task::block_in_place(|| psql_out(&bed, &direct, cmd));
        assert!(!want.contains("ERROR"), "{cmd}: {want}");
        assert_eq!(
            tokio::task::block_in_place(|| psql_out(&bed, &admin, cmd)),
            want,
            "admin {cmd}"
        );
        assert_eq!(
            tokio::task::block_in_place(|| psql_out(&bed, &reader, cmd)),
            want,
            "reader {cmd}"
        );
    }
    // \copy out through a restricted role, and in through the unrestricted one.
    let file = bed.rules.path().join("items.tsv");
    let out = tokio::task::block_in_place(|| {
        psql_out(&bed, &reader, &format!("\\copy items to '{}'", file.display()))
    });
    assert!(out.starts_with("COPY 200"), "{out}");
    let out = tokio::task::block_in_place(|| {
        psql_out(&bed, &admin, &format!("\\copy sink from '{}'", file.display()))
    });
    assert!(out.contains("ERROR") || out.starts_with("COPY 200"), "{out}");
    let d = bed.direct().await;
    let _ = simple(&d, "SELECT count(*) FROM sink").await.expect("count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_in_every_protocol_mode() {
    let bed = Bed::new().await;
    let pgbench = bed.cluster.bin("pgbench");
    let init = Command::new(&pgbench)
        .args(["-i", "-s", "1", "-q", &bed.cluster.url("test")])
        .output()
        .expect("pgbench");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    // pgveil reads the catalog at start: start one that knows the pgbench tables.
    let proxy = Proxy::start(&bed.cluster.url("test"), bed.rules.path()).await;
    let direct = bed.direct().await;
    let before: i64 = direct
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .await
        .expect("count")
        .get(0);
    for (user, pw, extra) in [("admin", ADMIN_PW, None), ("reader", READER_PW, Some("-S"))] {
        for mode in ["simple", "extended", "prepared"] {
            let url = proxy.url(user, pw, "test");
            let mut cmd = Command::new(&pgbench);
            cmd.args(["-n", "-M", mode, "-c", "4", "-j", "2", "-t", "100"]);
            if let Some(e) = extra {
                cmd.arg(e);
            }
            let out = tokio::task::block_in_place(|| cmd.arg(&url).output().expect("pgbench runs"));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{user} {mode}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("number of transactions actually processed: 400/400"),
                "{user} {mode}: {text}"
            );
            assert!(
                text.contains("number of failed transactions: 0"),
                "{user} {mode}: {text}"
            );
        }
    }
    let after: i64 = direct
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        after - before,
        1200,
        "each tpcb transaction of admin inserted one history row"
    );
}
