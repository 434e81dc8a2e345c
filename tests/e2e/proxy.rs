//! Issue 2: the proxy is transparent. Every check runs as the unrestricted `admin` and as
//! the restricted `reader` (analysed, nothing masked), and compares with a direct
//! connection: the restricted machinery must be invisible for what the rules allow.
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use pgveil::config::ServeConfig;
use tokio_postgres::NoTls;

use crate::common::*;
use crate::raw::{self, Raw};

const READS: &[&str] = &[
    "SELECT * FROM items ORDER BY id",
    "SELECT id, name, qty, price, flag, data, born::text, note FROM items WHERE id < 20 ORDER BY id DESC",
    "SELECT count(*), sum(qty), avg(price)::text FROM items",
    "SELECT flag, count(*) FROM items GROUP BY flag ORDER BY flag",
    "SELECT * FROM cheap ORDER BY id LIMIT 5",
    "SELECT 1; SELECT 'two', 2.5::text; SELECT NULL::text",
    "",
    "SELECT relname FROM pg_class WHERE relname IN ('items', 'sink') ORDER BY 1",
    "SHOW TimeZone",
    "SELECT current_database(), current_setting('server_encoding')",
    "BEGIN; SELECT count(*) FROM items; COMMIT",
    "WITH t AS (SELECT id FROM items WHERE id < 4) SELECT * FROM t ORDER BY id",
];

#[tokio::test]
async fn simple_protocol_matches_direct() {
    let bed = Bed::new().await;
    let direct = bed.direct().await;
    for c in [bed.admin().await, bed.reader().await] {
        for sql in READS {
            assert_eq!(simple(&c, sql).await, simple(&direct, sql).await, "{sql}");
        }
    }
}

#[tokio::test]
async fn extended_protocol_binary_matches_direct() {
    let bed = Bed::new().await;
    let direct = bed.direct().await;
    let cases: &[(&str, i32)] = &[
        (
            "SELECT id, name, qty, price, flag, data, note FROM items WHERE id > $1 ORDER BY id",
            150,
        ),
        ("SELECT id, name, note FROM items WHERE id = $1", 7),
        ("SELECT count(*) FROM items WHERE qty > $1::int4 * 10", 100),
    ];
    for c in [bed.admin().await, bed.reader().await] {
        for (sql, p) in cases {
            assert_eq!(
                extended(&c, sql, &[p]).await,
                extended(&direct, sql, &[p]).await,
                "{sql}"
            );
        }
        // Named statements, reused.
        let st = c
            .prepare("SELECT name FROM items WHERE id = $1")
            .await
            .expect("prepare");
        for id in [1i32, 2, 3] {
            let row = c.query_one(&st, &[&id]).await.expect("execute prepared");
            assert_eq!(row.get::<_, String>(0), format!("item {id}"));
        }
        // Errors in the extended protocol and after: the session stays usable.
        let e = extended(&c, "SELECT 1 / (id - id) FROM items", &[]).await;
        assert_eq!(e, extended(&direct, "SELECT 1 / (id - id) FROM items", &[]).await);
        assert!(e.unwrap_err().starts_with("22012"));
        assert_eq!(
            extended(&c, "SELECT 1::int4", &[]).await,
            Ok(vec![vec![Some("1".into())]])
        );
    }
}

#[tokio::test]
async fn errors_and_transactions_match_direct() {
    let bed = Bed::new().await;
    let direct = bed.direct().await;
    let script = [
        "BEGIN",
        "SELECT count(*) FROM items",
        "SELECT nonexistent FROM items",
        "SELECT 1",
        "ROLLBACK",
        "SELECT 2",
        "SELECT 'x'::int",
        "SELEC 1",
    ];
    for c in [bed.admin().await, bed.reader().await] {
        for sql in script {
            assert_eq!(simple(&c, sql).await, simple(&direct, sql).await, "{sql}");
        }
    }
}

/// A pipeline of extended-protocol messages with an error in the middle: the server
/// skips to Sync, and the replies are the same through pgveil as direct.
#[tokio::test]
async fn pipeline_with_error_in_the_middle() {
    let bed = Bed::new().await;
    let mut out = BytesMut::new();
    raw::parse(&mut out, "s1", "SELECT id FROM items WHERE id < 3 ORDER BY id");
    raw::bind(&mut out, "", "s1");
    raw::execute(&mut out, "", 0);
    raw::parse(&mut out, "", "SELECT 1/0");
    raw::bind(&mut out, "", "");
    raw::execute(&mut out, "", 0);
    raw::parse(&mut out, "s2", "SELECT 2");
    raw::sync(&mut out);
    raw::bind(&mut out, "p", "s1");
    raw::describe(&mut out, b'P', "p");
    raw::execute(&mut out, "p", 1);
    raw::execute(&mut out, "p", 1);
    raw::execute(&mut out, "p", 0);
    raw::parse(&mut out, "", "SELEC");
    raw::sync(&mut out);
    raw::describe(&mut out, b'S', "s1");
    raw::sync(&mut out);
    let direct_addr = format!("127.0.0.1:{}", bed.cluster.port());
    let mut d = Raw::connect(&direct_addr, "postgres", "", "test")
        .await
        .expect("direct");
    d.send(&out).await;
    let expected = d.until_ready(3).await;
    assert_eq!(
        expected.join(" "),
        "1 2 D D C 1 E:22012 Z 2 T D s D s C E:42601 Z t T Z",
        "direct reference"
    );
    for (user, pw) in [("admin", ADMIN_PW), ("reader", READER_PW)] {
        let mut p = Raw::connect(&bed.proxy.addr.to_string(), user, pw, "test")
            .await
            .expect("proxy");
        p.send(&out).await;
        assert_eq!(p.until_ready(3).await, expected, "{user}");
    }
}

#[tokio::test]
async fn copy_out_and_in() {
    let bed = Bed::new().await;
    let direct = bed.direct().await;
    let admin = bed.admin().await;
    let read_copy = |c: tokio_postgres::Client, sql: &'static str| async move {
        let s = c.copy_out(sql).await.map_err(err_string)?;
        let chunks: Vec<bytes::Bytes> = s.try_collect().await.map_err(err_string)?;
        Ok::<Vec<u8>, String>(chunks.concat())
    };
    for sql in [
        "COPY items TO STDOUT",
        "COPY (SELECT id, name FROM items WHERE id < 50) TO STDOUT (FORMAT csv)",
    ] {
        let want = read_copy(bed.direct().await, sql).await.expect("direct copy");
        assert!(!want.is_empty());
        assert_eq!(read_copy(bed.admin().await, sql).await.expect("admin copy"), want);
        assert_eq!(
            read_copy(bed.reader().await, sql).await.expect("reader copy"),
            want
        );
    }
    let sink = admin.copy_in("COPY sink FROM STDIN").await.expect("copy in");
    futures_util::pin_mut!(sink);
    for i in 0..1000 {
        sink.send(bytes::Bytes::from(format!("{i}\tline {i}\n")))
            .await
            .expect("copy data");
    }
    assert_eq!(sink.finish().await.expect("copy done"), 1000);
    assert_eq!(
        simple(&direct, "SELECT count(*) FROM sink").await.expect("count")[0][0].as_deref(),
        Some("1000")
    );
    // A restricted role may not write.
    let err = bed
        .reader()
        .await
        .copy_in::<_, bytes::Bytes>("COPY sink FROM STDIN")
        .await
        .map(|_| ())
        .map_err(err_string);
    assert!(err.is_err(), "reader COPY FROM must be refused");
}

/// LISTEN works for unrestricted roles. Restricted roles may not LISTEN: payloads that
/// the seller's applications NOTIFY are data no rule describes (fail closed).
#[tokio::test]
async fn listen_notify_reaches_the_listener() {
    let bed = Bed::new().await;
    let mut l = Raw::connect(&bed.proxy.addr.to_string(), "admin", ADMIN_PW, "test")
        .await
        .expect("connect");
    let mut out = BytesMut::new();
    raw::query(&mut out, "LISTEN news");
    l.send(&out).await;
    assert_eq!(l.until_ready(1).await.join(" "), "C Z");
    bed.direct()
        .await
        .simple_query("NOTIFY news, 'hello'")
        .await
        .expect("notify");
    let f = l.recv().await.expect("notification");
    assert_eq!(f.tag, b'A');
    assert!(f.body().ends_with(b"news\0hello\0"));

    let mut r = Raw::connect(&bed.proxy.addr.to_string(), "reader", READER_PW, "test")
        .await
        .expect("connect");
    r.send(&out).await;
    assert_eq!(r.until_ready(1).await.join(" "), "E:42501 Z");
}

#[tokio::test]
async fn cancel_request_cancels_the_running_query() {
    let bed = Bed::new().await;
    for c in [bed.admin().await, bed.reader().await] {
        let token = c.cancel_token();
        let started = Instant::now();
        let q = tokio::spawn(async move { c.simple_query("SELECT pg_sleep(30)").await.map_err(err_string) });
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.expect("cancel sent");
        let r = q.await.expect("join");
        assert!(r.as_ref().is_err_and(|e| e.starts_with("57014")), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

/// Issue 7: sessions run on per-thread runtimes (`--workers`). A CancelRequest comes on a
/// new connection, which the listener gives to the worker with fewer sessions: with two or
/// more workers, not the one running the query. It must cancel the query all the same.
#[tokio::test]
async fn cancel_request_reaches_a_session_on_another_worker() {
    let bed = Bed::new().await;
    for workers in [1, 2, 3] {
        let mut cfg = ServeConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            bed.cluster.url("test"),
            bed.rules.path(),
        );
        cfg.workers = workers;
        let proxy = Proxy::start_with(cfg).await;
        let c = connect(&proxy.url("reader", READER_PW, "test")).await;
        let token = c.cancel_token();
        let started = Instant::now();
        let q = tokio::spawn(async move { c.simple_query("SELECT pg_sleep(30)").await.map_err(err_string) });
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.expect("cancel sent");
        let r = q.await.expect("join");
        assert!(
            r.as_ref().is_err_and(|e| e.starts_with("57014")),
            "{workers} workers: {r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        // Sessions on every worker: more clients than workers, all served.
        let mut clients = Vec::new();
        for _ in 0..workers * 2 {
            clients.push(connect(&proxy.url("admin", ADMIN_PW, "test")).await);
        }
        for c in &clients {
            assert_eq!(
                simple(c, "SELECT 1").await,
                Ok(vec![vec![Some("1".into())], vec![Some("#1".into())]])
            );
        }
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let bed = Bed::new().await;
    let wrong = try_connect(&bed.proxy.url("admin", "nope", "test"))
        .await
        .map(|_| ())
        .map_err(err_string);
    let unknown = try_connect(&bed.proxy.url("mallory", "nope", "test"))
        .await
        .map(|_| ())
        .map_err(err_string);
    assert_eq!(
        wrong,
        Err("28P01: password authentication failed for user \"admin\"".to_string())
    );
    assert_eq!(
        unknown,
        Err("28P01: password authentication failed for user \"mallory\"".to_string())
    );
    // Other database: clear error.
    let other = try_connect(&bed.proxy.url("admin", ADMIN_PW, "postgres"))
        .await
        .map(|_| ())
        .map_err(err_string);
    assert!(other.as_ref().is_err_and(|e| e.starts_with("3D000")), "{other:?}");
    // And the listener still serves.
    assert_eq!(
        simple(&bed.admin().await, "SELECT 1").await.expect("works")[0][0].as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn malformed_input_ends_only_that_session() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bed = Bed::new().await;
    let keep = bed.reader().await;
    let hostile: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0, 0, 0, 3],
        vec![0xff; 64],
        vec![0, 0, 0, 8, 0, 3, 0, 0],
        vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
    ];
    for bytes in hostile {
        let mut s = tokio::net::TcpStream::connect(bed.proxy.addr)
            .await
            .expect("connect");
        let _ = s.write_all(&bytes).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("closed in time");
        if !buf.is_empty() {
            assert_eq!(buf[0], b'E', "an ErrorResponse or nothing");
        }
    }
    // After authentication: a Query with trailing bytes, an oversized length, a bad tag.
    for msg in [
        b"Q\0\0\0\x0eSELECT 1\0X".to_vec(),
        b"Q\x7f\xff\xff\xffSELECT".to_vec(),
        b"P\0\0\0\x05X".to_vec(),
        b"B\0\0\0\x08\0\0\xff\xff".to_vec(),
    ] {
        let mut r = Raw::connect(&bed.proxy.addr.to_string(), "reader", READER_PW, "test")
            .await
            .expect("connect");
        r.send(&msg).await;
        let tags = r.until_ready(1).await;
        assert!(
            tags.iter().any(|t| t.starts_with("E:08P01")) && tags.last().map(String::as_str) == Some("EOF"),
            "{tags:?}"
        );
    }
    assert_eq!(
        simple(&keep, "SELECT 42").await.expect("still fine")[0][0].as_deref(),
        Some("42")
    );
    assert_eq!(
        simple(&bed.admin().await, "SELECT 43")
            .await
            .expect("new session")[0][0]
            .as_deref(),
        Some("43")
    );
}

#[tokio::test]
async fn row_limits_suspend_portals() {
    let bed = Bed::new().await;
    for (user, pw) in [("admin", ADMIN_PW), ("reader", READER_PW)] {
        let c = connect(&bed.proxy.url(user, pw, "test")).await;
        let mut c = c;
        let tx = c.transaction().await.expect("begin");
        let st = tx
            .prepare("SELECT id FROM items ORDER BY id")
            .await
            .expect("prepare");
        let portal = tx.bind(&st, &[]).await.expect("bind");
        let mut seen = Vec::new();
        loop {
            let rows = tx.query_portal(&portal, 64).await.expect("fetch");
            if rows.is_empty() {
                break;
            }
            seen.extend(rows.iter().map(|r| r.get::<_, i32>(0)));
        }
        tx.commit().await.expect("commit");
        assert_eq!(seen, (1..=200).collect::<Vec<_>>(), "{user}");
    }
}

#[tokio::test]
async fn two_hundred_concurrent_sessions() {
    let bed = Bed::new().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = if i % 2 == 0 {
            bed.proxy.url("admin", ADMIN_PW, "test")
        } else {
            bed.proxy.url("reader", READER_PW, "test")
        };
        tasks.push(tokio::spawn(async move {
            let c = connect(&url).await;
            let r = simple(&c, &format!("SELECT {i} + count(*) FROM items"))
                .await
                .expect("query");
            tokio::time::sleep(Duration::from_millis(200)).await;
            r[0][0].clone()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.expect("join"), Some((i + 200).to_string()));
    }
}

/// A client that vanishes mid-result: its upstream backend goes away too.
#[tokio::test]
async fn client_killed_mid_stream_frees_the_upstream() {
    let bed = Bed::new().await;
    let direct = bed.direct().await;
    let mut r = Raw::connect(&bed.proxy.addr.to_string(), "reader", READER_PW, "test")
        .await
        .expect("connect");
    let mut out = BytesMut::new();
    raw::query(
        &mut out,
        "SELECT g, repeat('x', 200) FROM generate_series(1, 5000000) g",
    );
    r.send(&out).await;
    for _ in 0..100 {
        r.recv().await.expect("some rows");
    }
    drop(r);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = simple(&direct, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%generate_series(1, 5000000)%' AND pid <> pg_backend_pid()")
            .await
            .expect("count")[0][0]
            .clone();
        if n.as_deref() == Some("0") {
            break;
        }
        assert!(Instant::now() < deadline, "upstream backend still running");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        simple(&bed.reader().await, "SELECT 1").await.expect("ok")[0][0].as_deref(),
        Some("1")
    );
}

/// The upstream restarts: open sessions get an error, new sessions work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_restart() {
    let bed = Bed::new().await;
    let admin = bed.admin().await;
    let reader = bed.reader().await;
    let cluster = &bed.cluster;
    tokio::task::block_in_place(|| cluster.restart().expect("restart"));
    for c in [admin, reader] {
        let r = c.simple_query("SELECT 1").await;
        assert!(r.is_err(), "a session whose upstream restarted gets an error");
    }
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(c) = try_connect(&bed.proxy.url("reader", READER_PW, "test")).await {
            if simple(&c, "SELECT 1").await.is_ok() {
                ok = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "new sessions work after the restart");
}

/// 1,000,000 rows stream through pgveil (the real binary) with flat memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_rows_stream_with_flat_memory() {
    let bed = Bed::new().await;
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr")
    };
    let mut child = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            &listen.to_string(),
            "--upstream",
            &bed.cluster.url("test"),
            "--rules",
        ])
        .arg(bed.rules.path())
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn pgveil");
    let url = format!("postgres://admin:{ADMIN_PW}@{listen}/test?sslmode=disable");
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = try_connect(&url).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let proxied = client.expect("pgveil binary accepts connections");
    let direct = bed.direct().await;
    let sql = "SELECT g, 'name ' || g, g * 2, md5(g::text) FROM generate_series(1, 1000000) g";
    let mut rates = Vec::new();
    for c in [&direct, &proxied] {
        let start = Instant::now();
        let rows = c.query_raw(sql, std::iter::empty::<i32>()).await.expect("query");
        futures_util::pin_mut!(rows);
        let mut n = 0u64;
        while let Some(r) = rows.next().await {
            r.expect("row");
            n += 1;
        }
        assert_eq!(n, 1_000_000);
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    let rss = peak_rss_kib(child.id()).expect("VmHWM");
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "1M rows: direct {:.0} rows/s, pgveil {:.0} rows/s ({:.2} of direct), pgveil peak RSS {:.1} MiB",
        rates[0],
        rates[1],
        rates[1] / rates[0],
        rss as f64 / 1024.0
    );
    assert!(rss < 64 * 1024, "pgveil peak RSS {rss} KiB over 64 MiB");
}

/// NoticeResponse reaches the client where the server sends it.
#[tokio::test]
async fn notices_pass_through() {
    let bed = Bed::new().await;
    let mut out = BytesMut::new();
    raw::query(
        &mut out,
        "DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$",
    );
    let mut c = Raw::connect(&bed.proxy.addr.to_string(), "admin", ADMIN_PW, "test")
        .await
        .expect("connect");
    c.send(&out).await;
    let mut tags = Vec::new();
    loop {
        let f = c.recv().await.expect("reply");
        if f.tag == b'N' {
            let n = pgveil::wire::backend::decode_error(&f).expect("notice");
            assert_eq!(n.message(), "hello from plpgsql");
        }
        tags.push(f.tag as char);
        if f.tag == b'Z' {
            break;
        }
    }
    assert_eq!(tags, ['N', 'C', 'Z']);
}
