//! Issue 5, running during a deal: hot reload, revocation and expiry of open sessions,
//! login lockout, per-role limits and metrics, against a real PostgreSQL through pgveil.
#[path = "e2e/common.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{copy_text, err_string, simple, FIXTURE};
use pgveil::cluster::Cluster;
use pgveil::config::ServeConfig;
use pgveil::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls};

const ADMIN_PW: &str = "admin-pw";
const READER_PW: &str = "reader-pw";

/// SCRAM verifiers, computed once (4096 iterations each).
fn verifiers() -> &'static (String, String) {
    static V: OnceLock<(String, String)> = OnceLock::new();
    V.get_or_init(|| {
        (
            pgveil::session::scram::hash_password(ADMIN_PW),
            pgveil::session::scram::hash_password(READER_PW),
        )
    })
}

/// Rules text with `{admin}` / `{reader}` replaced by the verifiers.
fn rules_text(template: &str) -> String {
    let (a, r) = verifiers();
    template.replace("{admin}", a).replace("{reader}", r)
}

const BASE_RULES: &str = r#"
tables:
  public.items:
    name: { class: sensitive, mask: redact }
roles:
  admin: { unrestricted: true }
  reader: { sees: public, default: clear }
logins:
  admin: { role: admin, scram: "{admin}" }
  admin2: { role: admin, scram: "{admin}" }
  reader: { role: reader, scram: "{reader}", agreement: "DD-TEST-1" }
"#;

/// pgveil in front of a fresh database of the shared cluster.
struct Deal {
    cluster: &'static Cluster,
    db: String,
    rules: tempfile::TempDir,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shared: Arc<pgveil::session::Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Deal {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn deal(rules: &str, tweak: impl FnOnce(&mut ServeConfig)) -> Deal {
    let (cluster, db) = tokio::task::spawn_blocking(|| {
        let c = Cluster::shared().expect("PostgreSQL starts (binaries in /usr/lib/postgresql/15/bin)");
        let db = c.create_unique_db("ops").expect("create db");
        c.psql(&db, FIXTURE).expect("fixture loads");
        (c, db)
    })
    .await
    .expect("join");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yaml"), rules_text(rules)).expect("write rules");
    let mut cfg = ServeConfig::new("127.0.0.1:0".parse().expect("addr"), cluster.url(&db), dir.path());
    cfg.metrics = Some("127.0.0.1:0".parse().expect("addr"));
    cfg.rules_poll = Duration::from_millis(200);
    tweak(&mut cfg);
    let server = Server::bind(cfg).await.expect("pgveil starts");
    let (addr, metrics_addr, shared) = (server.local_addr, server.metrics_addr, server.shared());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server
            .run(async {
                let _ = rx.await;
            })
            .await;
    });
    Deal {
        cluster,
        db,
        rules: dir,
        addr,
        metrics_addr,
        shared,
        stop: Some(tx),
    }
}

impl Deal {
    fn url(&self, user: &str, pw: &str) -> String {
        format!(
            "postgres://{user}:{pw}@{}:{}/{}?sslmode=disable",
            self.addr.ip(),
            self.addr.port(),
            self.db
        )
    }
    async fn try_login(&self, user: &str, pw: &str) -> Result<Client, String> {
        common::try_connect(&self.url(user, pw)).await.map_err(err_string)
    }
    async fn login(&self, user: &str, pw: &str) -> Client {
        self.try_login(user, pw)
            .await
            .unwrap_or_else(|e| panic!("login {user}: {e}"))
    }
    fn write_rules(&self, rules: &str) {
        std::fs::write(self.rules.path().join("rules.yaml"), rules_text(rules)).expect("write rules");
    }
    async fn scrape(&self, path: &str) -> (u16, String) {
        http_get(self.metrics_addr.expect("metrics enabled"), path).await
    }
    async fn metric(&self, name: &str) -> f64 {
        metric_value(&self.scrape("/metrics").await.1, name)
    }
}

/// Logs in from a given local address (127.0.0.2 is a second client address on loopback).
async fn login_from(d: &Deal, from: &str, user: &str, pw: &str) -> Result<Client, String> {
    let sock = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    sock.bind(format!("{from}:0").parse().expect("addr"))
        .map_err(|e| e.to_string())?;
    let tcp = sock.connect(d.addr).await.map_err(|e| e.to_string())?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(user).password(pw).dbname(&d.db);
    let (client, conn) = cfg.connect_raw(tcp, NoTls).await.map_err(err_string)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics connect");
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut buf = String::new();
    tcp.read_to_string(&mut buf).await.expect("read");
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one sample (`name` includes labels, e.g. `x{a="b"}`); 0 when absent.
fn metric_value(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn reload_with_a_broken_file_keeps_the_old_rules_then_applies_good_ones() {
    let d = deal(BASE_RULES, |_| {}).await;
    let reader = d.login("reader", READER_PW).await;
    let masked = simple(&reader, "SELECT name FROM items WHERE id = 1")
        .await
        .expect("select");
    assert_ne!(
        masked[0][0].as_deref(),
        Some("item 1"),
        "name is masked under the first rules"
    );

    // A broken file: the watcher notices, the reload fails and is counted, nothing changes.
    d.write_rules(&format!("{BASE_RULES}\n  bogus: [unclosed\n"));
    eventually("a failed reload", || {
        d.shared
            .metrics
            .reload_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    assert!(d.metric("pgveil_rules_reload_failures_total").await >= 1.0);
    assert_eq!(
        simple(&reader, "SELECT name FROM items WHERE id = 1")
            .await
            .expect("select"),
        masked
    );
    // The error names the file and line.
    let e = pgveil::reload::reload(&d.shared, pgveil::reload::Trigger::Manual)
        .await
        .expect_err("still broken");
    assert!(e.to_string().contains("rules.yaml:"), "{e}");

    // Good rules that unmask the column apply to the open session's next statement.
    let before = d
        .shared
        .metrics
        .reloads
        .load(std::sync::atomic::Ordering::Relaxed);
    d.write_rules(&BASE_RULES.replace("name: { class: sensitive, mask: redact }", "name: public"));
    eventually("a successful reload", || {
        d.shared
            .metrics
            .reloads
            .load(std::sync::atomic::Ordering::Relaxed)
            > before
    })
    .await;
    assert_eq!(
        simple(&reader, "SELECT name FROM items WHERE id = 1").await,
        Ok(vec![vec![Some("item 1".into())], vec![Some("#1".into())]])
    );
    // The rules tightened again: the open session's next statements see the mask, and a
    // statement prepared under the looser rules is refused rather than run unmasked.
    let prepared = reader
        .prepare("SELECT name FROM items WHERE id = $1")
        .await
        .expect("prepare");
    d.write_rules(BASE_RULES);
    pgveil::reload::reload(&d.shared, pgveil::reload::Trigger::Manual)
        .await
        .expect("reload");
    assert_eq!(
        simple(&reader, "SELECT name FROM items WHERE id = 1")
            .await
            .expect("select"),
        masked
    );
    let e = reader
        .query(&prepared, &[&1i32])
        .await
        .map_err(err_string)
        .expect_err("stale");
    assert_eq!(
        e,
        "0A000: the rules changed since this statement was prepared; prepare it again"
    );
    let fresh = reader
        .prepare("SELECT name FROM items WHERE id = $1")
        .await
        .expect("prepare again");
    let row = reader.query_one(&fresh, &[&1i32]).await.expect("masked");
    assert_eq!(Some(row.get::<_, String>(0)), masked[0][0].clone());
    // A statement whose rewrite did not change survives a reload.
    let plain = reader
        .prepare("SELECT id FROM items WHERE id = $1")
        .await
        .expect("prepare");
    pgveil::reload::reload(&d.shared, pgveil::reload::Trigger::Manual)
        .await
        .expect("reload");
    assert_eq!(
        reader
            .query_one(&plain, &[&4i32])
            .await
            .expect("still valid")
            .get::<_, i32>(0),
        4
    );
}

#[tokio::test]
async fn ddl_by_an_unrestricted_role_refreshes_the_catalog() {
    let d = deal(BASE_RULES, |_| {}).await;
    let admin = d.login("admin", ADMIN_PW).await;
    let reader = d.login("reader", READER_PW).await;
    let version = d.shared.policy.load().catalog.version;
    simple(
        &admin,
        "CREATE TABLE fresh (id int); INSERT INTO fresh VALUES (42)",
    )
    .await
    .expect("ddl");
    eventually("a catalog reload after DDL", || {
        d.shared.policy.load().catalog.version > version
    })
    .await;
    assert_eq!(
        simple(&reader, "SELECT id FROM fresh").await,
        Ok(vec![vec![Some("42".into())], vec![Some("#1".into())]])
    );
}

#[tokio::test]
async fn revoked_logins_are_stopped_at_their_next_statement() {
    let d = deal(BASE_RULES, |_| {}).await;
    let reader = d.login("reader", READER_PW).await;
    let admin = d.login("admin", ADMIN_PW).await;
    let admin2 = d.login("admin2", ADMIN_PW).await;
    simple(&reader, "SELECT 1").await.expect("works before");
    simple(&admin2, "SELECT 1").await.expect("works before");

    let revoked = BASE_RULES
        .replace("  admin2: { role: admin, scram: \"{admin}\" }\n", "")
        .replace(
            "  reader: { role: reader, scram: \"{reader}\", agreement: \"DD-TEST-1\" }\n",
            "",
        );
    d.write_rules(&revoked);
    pgveil::reload::reload(&d.shared, pgveil::reload::Trigger::Manual)
        .await
        .expect("reload");

    // Restricted and unrestricted sessions alike end with a clear FATAL.
    let e = simple(&reader, "SELECT 1").await.expect_err("revoked");
    assert_eq!(e, "28000: login reader has been revoked; the session is closed");
    assert!(simple(&reader, "SELECT 1").await.is_err(), "the session is gone");
    let e = simple(&admin2, "SELECT 1").await.expect_err("revoked");
    assert!(e.starts_with("28000: login admin2 has been revoked"), "{e}");
    assert!(reader.is_closed() || simple(&reader, "SELECT 1").await.is_err());
    // Others carry on, and the revoked login cannot come back.
    assert!(simple(&admin, "SELECT 1").await.is_ok());
    assert!(d
        .try_login("reader", READER_PW)
        .await
        .expect_err("revoked")
        .starts_with("28P01"));
    assert!(d.metric("pgveil_sessions_revoked_total").await >= 2.0);
}

#[tokio::test]
async fn expired_logins_are_refused_and_expiry_ends_open_sessions() {
    let d = deal(
        &BASE_RULES.replace(
            "agreement: \"DD-TEST-1\"",
            "agreement: \"DD-TEST-1\", valid_until: 2020-06-30",
        ),
        |_| {},
    )
    .await;
    let e = d.try_login("reader", READER_PW).await.expect_err("expired");
    assert!(
        e.starts_with("28000: login reader expired at 2020-06-30 23:59:59"),
        "{e}"
    );
    assert!(e.contains("DD-TEST-1"), "{e}");
    let e = d.try_login("reader", "wrong").await.expect_err("wrong password");
    assert!(
        e.starts_with("28P01"),
        "the window is only revealed to the right password: {e}"
    );

    // An expiry reached while the session is open ends it at its next statement.
    let until = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    d.write_rules(&BASE_RULES.replace(
        "agreement: \"DD-TEST-1\"",
        &format!("agreement: \"DD-TEST-1\", valid_until: \"{until}\""),
    ));
    pgveil::reload::reload(&d.shared, pgveil::reload::Trigger::Manual)
        .await
        .expect("reload");
    let reader = d.login("reader", READER_PW).await;
    simple(&reader, "SELECT 1").await.expect("still valid");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let e = simple(&reader, "SELECT 1").await.expect_err("expired now");
    assert!(e.starts_with("28000: login reader expired at"), "{e}");
    assert!(e.contains("the session is closed"), "{e}");
}

#[tokio::test]
async fn lockout_after_repeated_failures_per_user_and_per_address() {
    let d = deal(BASE_RULES, |c| {
        c.lockout.failures = 3;
        c.lockout.delay_step = Duration::from_millis(20);
    })
    .await;
    // Failures are slowed down.
    let t = Instant::now();
    for _ in 0..3 {
        let e = d.try_login("reader", "wrong").await.expect_err("wrong password");
        assert!(e.starts_with("28P01"), "{e}");
    }
    assert!(
        t.elapsed() >= Duration::from_millis(20 + 40 + 60),
        "failed logins are delayed"
    );
    // Now locked: even the right password is refused, with a clear reason.
    let e = d.try_login("reader", READER_PW).await.expect_err("locked");
    assert!(e.starts_with("28000: too many failed login attempts"), "{e}");
    // The user is locked from another address too; another user there is not affected.
    let e = login_from(&d, "127.0.0.2", "reader", READER_PW)
        .await
        .expect_err("user locked");
    assert!(e.contains("too many failed login attempts for this user"), "{e}");
    let admin = login_from(&d, "127.0.0.2", "admin", ADMIN_PW)
        .await
        .expect("another user from another address");
    simple(&admin, "SELECT 1").await.expect("works");
    // The first address is locked for everyone (an unknown user counts as well).
    let e = d.try_login("admin", ADMIN_PW).await.expect_err("address locked");
    assert!(e.contains("for this client address"), "{e}");
    assert!(d.metric("pgveil_lockouts_total").await >= 1.0);
    assert!(d.metric("pgveil_logins_total{result=\"locked\"}").await >= 3.0);
}

#[tokio::test]
async fn per_role_limits_rows_sessions_and_timeout() {
    let rules = BASE_RULES
        .replace(
            "reader: { sees: public, default: clear }",
            "reader: { sees: public, default: clear, limits: { max_rows: 50, max_sessions: 2, statement_timeout: 1500ms } }",
        )
        .replace("admin: { unrestricted: true }", "admin: { unrestricted: true, limits: { max_rows: 150 } }");
    let d = deal(&rules, |_| {}).await;
    let reader = d.login("reader", READER_PW).await;

    // max_rows: an error, not a silent truncation; the session stays usable.
    let e = simple(&reader, "SELECT id, name FROM items ORDER BY id")
        .await
        .expect_err("over the limit");
    assert_eq!(
        e,
        "54000: row limit of 50 rows per statement exceeded for role reader"
    );
    assert_eq!(
        simple(&reader, "SELECT count(*) FROM items").await,
        Ok(vec![vec![Some("200".into())], vec![Some("#1".into())]])
    );
    assert_eq!(
        simple(&reader, "SELECT id FROM items LIMIT 50")
            .await
            .expect("at the limit")
            .len(),
        51
    );
    let e = reader
        .query("SELECT id FROM items WHERE id > $1", &[&0i32])
        .await
        .map_err(err_string)
        .expect_err("extended too");
    assert!(e.starts_with("54000"), "{e}");
    assert_eq!(
        reader
            .query("SELECT id FROM items WHERE id > $1", &[&190i32])
            .await
            .map_err(err_string)
            .expect("fits")
            .len(),
        10
    );
    // COPY out rows count like result rows: bulk export cannot go around the limit.
    let e = copy_text(&reader, "COPY (SELECT id, name FROM items ORDER BY id) TO STDOUT")
        .await
        .expect_err("COPY over the limit");
    assert!(e.starts_with("54000: row limit of 50 rows"), "{e}");
    let fits = copy_text(
        &reader,
        "COPY (SELECT id FROM items ORDER BY id LIMIT 50) TO STDOUT",
    )
    .await
    .expect("COPY at the limit");
    assert_eq!(fits.lines().count(), 50, "{fits}");
    // A large result is cancelled upstream rather than streamed to its end, and the
    // cancellation does not hit the next statement.
    let t = Instant::now();
    let e = simple(&reader, "SELECT generate_series(1, 50000000) AS g")
        .await
        .expect_err("over the limit");
    assert!(e.starts_with("54000"), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(1400),
        "cancelled early, not stopped by the timeout: {:?}",
        t.elapsed()
    );
    assert_eq!(
        simple(&reader, "SELECT 2").await,
        Ok(vec![vec![Some("2".into())], vec![Some("#1".into())]])
    );
    // Inside a transaction block the session stays usable.
    simple(&reader, "BEGIN").await.expect("begin");
    assert!(simple(&reader, "SELECT * FROM items").await.is_err());
    simple(&reader, "ROLLBACK").await.expect("rollback");
    // An unrestricted role's own limit applies to its frames too.
    let admin = d.login("admin", ADMIN_PW).await;
    let e = simple(&admin, "SELECT * FROM items")
        .await
        .expect_err("over the admin limit");
    assert_eq!(
        e,
        "54000: row limit of 150 rows per statement exceeded for role admin"
    );
    assert_eq!(
        simple(&admin, "SELECT * FROM items LIMIT 150")
            .await
            .expect("fits")
            .len(),
        151
    );
    let e = copy_text(&admin, "COPY items TO STDOUT")
        .await
        .expect_err("COPY over the admin limit");
    assert!(e.starts_with("54000: row limit of 150 rows"), "{e}");
    assert_eq!(
        simple(&admin, "SELECT count(*) FROM items")
            .await
            .expect("usable")[0],
        vec![Some("200".to_string())]
    );

    // statement_timeout: set upstream at session start; the client cannot change it.
    let show = simple(&reader, "SHOW statement_timeout").await.expect("show");
    assert_eq!(show[0], vec![Some("1500ms".to_string())]);
    let e = simple(&reader, "SET statement_timeout = 0")
        .await
        .expect_err("refused");
    assert!(e.starts_with("42501"), "{e}");
    let e = simple(&reader, "SELECT count(*) FROM generate_series(1, 1000000000)")
        .await
        .expect_err("timeout");
    assert!(e.starts_with("57014"), "{e}");

    // max_sessions: the third concurrent session is refused, a freed slot is reusable.
    let second = d.login("reader", READER_PW).await;
    let e = d.try_login("reader", READER_PW).await.expect_err("third session");
    assert_eq!(
        e,
        "53300: too many connections for role \"reader\" (its limit is 2)"
    );
    drop(second);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(c) = d.try_login("reader", READER_PW).await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a closed session frees its slot");
    assert!(d.metric("pgveil_row_limit_exceeded_total").await >= 3.0);
}

#[tokio::test]
async fn metrics_move_as_statements_run() {
    let d = deal(BASE_RULES, |_| {}).await;
    assert_eq!(d.scrape("/healthz").await.0, 200);
    let (code, body) = d.scrape("/readyz").await;
    assert_eq!((code, body.as_str()), (200, "ready\n"));
    assert_eq!(d.scrape("/nope").await.0, 404);

    let before = d.scrape("/metrics").await.1;
    let reader = d.login("reader", READER_PW).await;
    simple(&reader, "SELECT id, name FROM items WHERE id <= 10")
        .await
        .expect("masked select");
    simple(&reader, "SELECT 1").await.expect("plain select");
    assert!(simple(&reader, "DELETE FROM items").await.is_err());
    let _ = d.try_login("reader", "wrong").await;
    let after = d.scrape("/metrics").await.1;

    let delta = |name: &str| metric_value(&after, name) - metric_value(&before, name);
    assert_eq!(delta("pgveil_sessions_active"), 1.0, "{after}");
    assert_eq!(delta("pgveil_sessions_total"), 1.0);
    assert_eq!(delta("pgveil_statements_total{decision=\"masked\"}"), 1.0);
    assert!(delta("pgveil_statements_total{decision=\"passed\"}") >= 1.0);
    assert_eq!(delta("pgveil_statements_total{decision=\"refused\"}"), 1.0);
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("pgveil_refusals_total{sqlstate=")),
        "{after}"
    );
    assert!(delta("pgveil_rows_out_total") >= 11.0);
    assert!(delta("pgveil_bytes_out_total") > 0.0);
    assert!(delta("pgveil_statements_rewritten_total") >= 1.0);
    assert!(delta("pgveil_statement_duration_seconds_count") >= 2.0);
    assert_eq!(delta("pgveil_logins_total{result=\"failed\"}"), 1.0);
    assert!(after.contains("# TYPE pgveil_statement_duration_seconds histogram"));
    drop(reader);
    eventually_async_metric(
        &d,
        "pgveil_sessions_active",
        metric_value(&before, "pgveil_sessions_active"),
    )
    .await;
}

async fn eventually_async_metric(d: &Deal, name: &str, want: f64) {
    let start = Instant::now();
    while d.metric(name).await != want {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name} never returned to {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readyz_fails_when_the_upstream_is_down() {
    let cluster = tokio::task::spawn_blocking(|| {
        let c = Cluster::start().expect("PostgreSQL starts");
        c.create_db("test").expect("db");
        c
    })
    .await
    .expect("join");
    let dir = tempfile::tempdir().expect("temp");
    std::fs::write(
        dir.path().join("rules.yaml"),
        rules_text(
            BASE_RULES
                .replace(
                    "tables:\n  public.items:\n    name: { class: sensitive, mask: redact }\n",
                    "",
                )
                .as_str(),
        ),
    )
    .expect("rules");
    let mut cfg = ServeConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        cluster.url("test"),
        dir.path(),
    );
    cfg.metrics = Some("127.0.0.1:0".parse().expect("addr"));
    let server = Server::bind(cfg).await.expect("starts");
    let maddr = server.metrics_addr.expect("metrics");
    let (_tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    assert_eq!(http_get(maddr, "/readyz").await.0, 200);
    tokio::task::spawn_blocking(move || {
        cluster.stop().expect("stop");
        cluster
    })
    .await
    .expect("join");
    let (code, body) = http_get(maddr, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("upstream"), "{body}");
    assert_eq!(http_get(maddr, "/healthz").await.0, 200);
}

#[test]
fn sighup_reloads_the_binary() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let d = rt.block_on(deal(BASE_RULES, |_| {}));
    // The binary, with its own metrics port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let mport = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = std::process::Command::new(common::bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            &d.cluster.url(&d.db),
        ])
        .args([
            "--rules",
            &d.rules.path().display().to_string(),
            "--metrics",
            &format!("127.0.0.1:{mport}"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn pgveil");
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().expect("addr");
    let page = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            match tokio::net::TcpStream::connect(maddr).await {
                Ok(_) => Some(http_get(maddr, "/metrics").await.1),
                Err(_) => None,
            }
        })
    };
    let start = Instant::now();
    let mut first = page(&rt);
    while first.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pgveil serve did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
        first = page(&rt);
    }
    // The handler is installed once serving; give the watcher task a moment to start.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        metric_value(&first.unwrap_or_default(), "pgveil_rules_reloads_total"),
        0.0
    );
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    assert_eq!(rc, 0);
    let start = Instant::now();
    loop {
        let p = page(&rt).expect("still serving after SIGHUP");
        if metric_value(&p, "pgveil_rules_reloads_total") == 1.0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "SIGHUP did not reload: {p}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(d);
}
