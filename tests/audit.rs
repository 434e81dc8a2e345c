//! Issue 5, the audit trail: what a real session writes, `pgveil audit verify` on real logs
//! (intact, edited, deleted, swapped, rotated, continued after a restart), literal
//! redaction, and failing closed when the trail cannot be written.
#[path = "e2e/common.rs"]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{err_string, simple, FIXTURE};
use pgveil::audit::AuditConfig;
use pgveil::cluster::Cluster;
use pgveil::config::ServeConfig;
use pgveil::server::Server;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_postgres::Client;

const ADMIN_PW: &str = "admin-pw";
const READER_PW: &str = "reader-pw";

fn rules() -> &'static String {
    static R: OnceLock<String> = OnceLock::new();
    R.get_or_init(|| {
        let a = pgveil::session::scram::hash_password(ADMIN_PW);
        let r = pgveil::session::scram::hash_password(READER_PW);
        format!(
            "tables:\n  public.items:\n    name: {{ class: sensitive, mask: redact }}\nroles:\n  admin: {{ unrestricted: true }}\n  reader: {{ sees: public, default: clear }}\nlogins:\n  admin: {{ role: admin, scram: \"{a}\" }}\n  reader: {{ role: reader, scram: \"{r}\", agreement: \"DD-AUDIT-7\" }}\n"
        )
    })
}

struct Proxy {
    addr: SocketAddr,
    db: String,
    shared: Arc<pgveil::session::Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _rules: tempfile::TempDir,
}

impl Proxy {
    async fn start(db: &str, audit: AuditConfig) -> Proxy {
        Proxy::start_with(db, audit, rules(), |_| {}).await
    }

    async fn start_with(
        db: &str,
        audit: AuditConfig,
        rules: &str,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> Proxy {
        let cluster = shared_cluster().await;
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("rules.yaml"), rules).expect("rules");
        let mut cfg = ServeConfig::new("127.0.0.1:0".parse().expect("addr"), cluster.url(db), dir.path());
        cfg.audit = Some(audit);
        tweak(&mut cfg);
        let server = Server::bind(cfg).await.expect("pgveil starts");
        let (addr, shared) = (server.local_addr, server.shared());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = rx.await;
                })
                .await;
        });
        Proxy {
            addr,
            db: db.to_string(),
            shared,
            stop: Some(tx),
            task,
            _rules: dir,
        }
    }

    async fn try_login(&self, user: &str, pw: &str) -> Result<Client, String> {
        let url = format!(
            "postgres://{user}:{pw}@{}:{}/{}?sslmode=disable",
            self.addr.ip(),
            self.addr.port(),
            self.db
        );
        common::try_connect(&url).await.map_err(err_string)
    }

    async fn login(&self, user: &str, pw: &str) -> Client {
        self.try_login(user, pw)
            .await
            .unwrap_or_else(|e| panic!("login {user}: {e}"))
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

async fn shared_cluster() -> &'static Cluster {
    tokio::task::spawn_blocking(|| {
        Cluster::shared().expect("PostgreSQL starts (binaries in /usr/lib/postgresql/15/bin)")
    })
    .await
    .expect("join")
}

async fn fresh_db() -> String {
    let c = shared_cluster().await;
    tokio::task::spawn_blocking(move || {
        let db = c.create_unique_db("audit").expect("create db");
        c.psql(&db, FIXTURE).expect("fixture");
        db
    })
    .await
    .expect("join")
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits until the audit file holds a record matching `pred`.
async fn wait_for(path: &Path, what: &str, pred: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    while !records(path).iter().any(&pred) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {what} record in {}",
            std::fs::read_to_string(path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `pgveil audit verify FILES...`: (exit code, stdout + stderr).
fn verify(files: &[PathBuf]) -> (i32, String) {
    let out = std::process::Command::new(common::bin())
        .arg("audit")
        .arg("verify")
        .args(files)
        .output()
        .expect("run pgveil");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn config(path: &Path) -> AuditConfig {
    let mut a = AuditConfig::new(path);
    a.fsync = false;
    a
}

#[tokio::test]
async fn a_real_session_is_audited_and_verify_catches_tampering() {
    let db = fresh_db().await;
    let dir = tempfile::tempdir().expect("temp");
    let log = dir.path().join("audit.jsonl");
    let p = Proxy::start(&db, config(&log)).await;

    assert!(p.try_login("reader", "wrong").await.is_err());
    let reader = p.login("reader", READER_PW).await;
    let masked = simple(&reader, "SELECT id, name FROM items WHERE id = 3")
        .await
        .expect("masked select");
    assert_ne!(masked[0][1].as_deref(), Some("item 3"));
    simple(&reader, "SELECT 1").await.expect("plain");
    assert!(simple(&reader, "DELETE FROM items").await.is_err());
    let rows = reader
        .query("SELECT id FROM items WHERE id < $1", &[&6i32])
        .await
        .expect("extended");
    assert_eq!(rows.len(), 5);
    let admin = p.login("admin", ADMIN_PW).await;
    simple(&admin, "SELECT name FROM items WHERE id = 3")
        .await
        .expect("admin");
    drop(reader);
    drop(admin);
    wait_for(&log, "session_end", |r| {
        r["type"] == "session_end" && r["user"] == "admin"
    })
    .await;
    wait_for(&log, "session_end", |r| {
        r["type"] == "session_end" && r["user"] == "reader"
    })
    .await;

    let recs = records(&log);
    let text = std::fs::read_to_string(&log).expect("read log");
    assert!(!text.contains("item 3\""), "no cell value in the audit trail");
    let find = |pred: &dyn Fn(&Value) -> bool| {
        recs.iter()
            .position(pred)
            .unwrap_or_else(|| panic!("missing record in {text}"))
    };

    let failed = &recs[find(&|r| r["type"] == "login" && r["result"] == "failed")];
    assert_eq!(
        (
            failed["user"].as_str(),
            failed["client"].as_str().map(|c| c.starts_with("127.0.0.1:"))
        ),
        (Some("reader"), Some(true))
    );
    let ok = &recs[find(&|r| r["type"] == "login" && r["result"] == "ok" && r["user"] == "reader")];
    assert_eq!(
        (ok["role"].as_str(), ok["agreement"].as_str()),
        (Some("reader"), Some("DD-AUDIT-7"))
    );
    let session = ok["session"].as_u64().expect("session id");

    let m = find(&|r| r["type"] == "statement" && r["decision"] == "masked");
    assert_eq!(recs[m]["sql"], "SELECT id, name FROM items WHERE id = 3");
    assert_eq!(recs[m]["session"].as_u64(), Some(session));
    assert_eq!(recs[m]["agreement"], "DD-AUDIT-7");
    assert_eq!(recs[m]["tables"], serde_json::json!(["public.items"]));
    assert_eq!(
        recs[m]["masked_columns"],
        serde_json::json!(["public.items.name"])
    );
    let stmt = recs[m]["stmt"].clone();
    let end = find(&|r| {
        r["type"] == "statement_end" && r["stmt"] == stmt && r["session"].as_u64() == Some(session)
    });
    assert!(end > m, "the statement is recorded before its end");
    assert_eq!(recs[end]["rows"], 1);
    assert!(recs[end]["bytes"].as_u64().unwrap_or(0) > 0);
    assert!(recs[end]["duration_ms"].as_f64().is_some());
    assert_eq!(recs[end]["error"], Value::Null);

    let refused = &recs[find(&|r| r["type"] == "statement" && r["decision"] == "refused")];
    assert_eq!(refused["sql"], "DELETE FROM items");
    assert!(
        refused["sqlstate"].as_str().is_some_and(|s| s.len() == 5),
        "{refused}"
    );
    assert!(refused["reason"].as_str().is_some_and(|s| !s.is_empty()));

    let parse = find(&|r| r["type"] == "statement" && r["sql"] == "SELECT id FROM items WHERE id < $1");
    let pstmt = recs[parse]["stmt"].clone();
    let pend = find(&|r| {
        r["type"] == "statement_end" && r["stmt"] == pstmt && r["session"].as_u64() == Some(session)
    });
    assert_eq!(recs[pend]["rows"], 5);
    find(&|r| r["type"] == "statement" && r["decision"] == "unrestricted" && r["user"] == "admin");

    // Sequence numbers run 1..n and the chain verifies.
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["seq"].as_u64(), Some(i as u64 + 1));
    }
    let (code, out) = verify(std::slice::from_ref(&log));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{} records", recs.len())), "{out}");

    // Tampering: an edited, a deleted and a swapped record are each caught, with the line.
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write");
        path
    };
    let mut edited = lines.clone();
    edited[end] = edited[end].replace("\"rows\":1", "\"rows\":0");
    assert_ne!(edited[end], lines[end]);
    let (code, out) = verify(&[write("edited", &edited)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("edited:{}:", end + 2))
            && out.contains(&format!("line {}", end + 1))
            && out.contains("altered"),
        "{out}"
    );

    let mut deleted = lines.clone();
    deleted.remove(m);
    let (code, out) = verify(&[write("deleted", &deleted)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("deleted:{}:", m + 1)) && out.contains("removed"),
        "{out}"
    );

    let mut swapped = lines.clone();
    swapped.swap(m, m + 1);
    let (code, out) = verify(&[write("swapped", &swapped)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("swapped:{}:", m + 1)) && out.contains("reordered"),
        "{out}"
    );
    p.stop().await;
}

#[tokio::test]
async fn rotation_redaction_and_restart_keep_one_chain() {
    let db = fresh_db().await;
    let dir = tempfile::tempdir().expect("temp");
    let log = dir.path().join("audit.jsonl");
    let mut cfg = config(&log);
    cfg.max_bytes = Some(2000);
    cfg.redact_literals = true;
    let p = Proxy::start(&db, cfg.clone()).await;
    let reader = p.login("reader", READER_PW).await;
    for i in 0..20 {
        simple(
            &reader,
            &format!("SELECT id FROM items WHERE note = 'secret-literal-{i}'"),
        )
        .await
        .expect("select");
    }
    drop(reader);
    wait_for(&log, "session_end", |r| r["type"] == "session_end").await;
    p.stop().await;

    // Restart on the same file: the chain continues.
    let p = Proxy::start(&db, cfg).await;
    let reader = p.login("reader", READER_PW).await;
    simple(&reader, "SELECT 'after restart'").await.expect("select");
    drop(reader);
    wait_for(&log, "session_end", |r| r["type"] == "session_end").await;
    p.stop().await;

    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit.jsonl."))
        })
        .collect();
    rotated.sort();
    assert!(rotated.len() >= 3, "rotated by size: {rotated:?}");
    let mut all = rotated.clone();
    all.push(log.clone());
    let mut redacted = 0;
    for f in &all {
        let t = std::fs::read_to_string(f).expect("read");
        assert!(
            t.len() <= 2000 || t.lines().count() == 1,
            "{} holds {} bytes",
            f.display(),
            t.len()
        );
        assert!(
            !t.contains("secret-literal") && !t.contains("after restart"),
            "literals are redacted: {t}"
        );
        redacted += t.matches("WHERE note = $1").count();
    }
    assert_eq!(redacted, 20);
    let (code, out) = verify(&all);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("unchecked"), "the chain starts at seq 1: {out}");
    // Out of order, or with a file missing, the chain breaks.
    let mut reversed = all.clone();
    reversed.swap(0, 1);
    assert_eq!(verify(&reversed).0, 1);
    let mut missing = all.clone();
    missing.remove(1);
    let (code, out) = verify(&missing);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("removed"), "{out}");
}

#[tokio::test]
async fn a_full_audit_disk_stops_restricted_roles_only() {
    let db = fresh_db().await;
    let p = Proxy::start(&db, config(Path::new("/dev/full"))).await;
    let reader = p.login("reader", READER_PW).await;
    // The login record already failed to be written.
    let start = Instant::now();
    while p.shared.audit.healthy() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the write failure was noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..2 {
        let e = simple(&reader, "SELECT id FROM items WHERE id = 1")
            .await
            .expect_err("refused");
        assert_eq!(
            e,
            "58030: audit trail unavailable; statements of restricted roles are refused until it is restored"
        );
    }
    // The seller's own staff keep working; failures are counted.
    let admin = p.login("admin", ADMIN_PW).await;
    assert_eq!(
        simple(&admin, "SELECT 1").await,
        Ok(vec![vec![Some("1".into())], vec![Some("#1".into())]])
    );
    assert!(
        p.shared
            .metrics
            .audit_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert!(p
        .shared
        .metrics
        .render()
        .contains("pgveil_refusals_total{sqlstate=\"58030\"} 2"));
    p.stop().await;
}

#[tokio::test]
async fn each_statement_is_recorded_before_its_result_arrives() {
    // The front pump forwards a restricted statement only once the writer acknowledged its
    // record, so by the time a result is in the client's hands the record is in the file.
    let db = fresh_db().await;
    let dir = tempfile::tempdir().expect("temp");
    let log = dir.path().join("audit.jsonl");
    let p = Proxy::start(&db, config(&log)).await;
    let reader = p.login("reader", READER_PW).await;
    for i in 0..5 {
        let sql = format!("SELECT id FROM items WHERE id = {}", i + 1);
        let rows = simple(&reader, &sql).await.expect("select");
        assert_eq!(rows.len(), 2);
        let recs = records(&log);
        assert!(
            recs.iter()
                .any(|r| r["type"] == "statement" && r["sql"] == sql.as_str()),
            "recorded before the result arrived"
        );
    }
    p.stop().await;
}

#[tokio::test]
async fn locked_out_and_expired_logins_are_audited() {
    let db = fresh_db().await;
    let dir = tempfile::tempdir().expect("temp");
    let log = dir.path().join("audit.jsonl");
    let expired = rules().replace(
        "agreement: \"DD-AUDIT-7\"",
        "agreement: \"DD-AUDIT-7\", valid_until: 2021-01-31",
    );
    let p = Proxy::start_with(&db, config(&log), &expired, |c| {
        c.lockout.failures = 2;
        c.lockout.delay_step = Duration::from_millis(1);
    })
    .await;
    let e = p.try_login("reader", READER_PW).await.expect_err("expired");
    assert!(e.contains("expired at 2021-01-31"), "{e}");
    for _ in 0..2 {
        assert!(p.try_login("admin", "wrong").await.is_err());
    }
    let e = p.try_login("admin", ADMIN_PW).await.expect_err("locked");
    assert!(e.starts_with("28000: too many failed login attempts"), "{e}");
    wait_for(&log, "locked login", |r| {
        r["type"] == "login" && r["result"] == "locked"
    })
    .await;
    let recs = records(&log);
    let results: Vec<(&str, &str)> = recs
        .iter()
        .filter(|r| r["type"] == "login")
        .map(|r| {
            (
                r["user"].as_str().unwrap_or(""),
                r["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![
            ("reader", "expired"),
            ("admin", "failed"),
            ("admin", "failed"),
            ("admin", "locked")
        ]
    );
    let expired = recs
        .iter()
        .find(|r| r["result"] == "expired")
        .expect("expired record");
    assert_eq!(expired["agreement"], "DD-AUDIT-7");
    assert!(
        expired["reason"]
            .as_str()
            .is_some_and(|r| r.contains("2021-01-31")),
        "{expired}"
    );
    p.stop().await;
}
