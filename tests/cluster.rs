//! Tests of the throwaway-cluster harness (`pgveil::cluster`) against the real PostgreSQL
//! binaries of this machine. Everything else builds on this harness, so these tests check what
//! the others silently rely on: clusters are independent, reachable with tokio-postgres and
//! psql, authenticate as configured, survive restarts, and vanish (server stopped, directory
//! removed) on drop — and even when the owning process is killed without running Drop.
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgveil::cluster::{find_bindir_in, Auth, Cluster, ClusterError, ClusterOptions, NOT_INSTALLED_MESSAGE};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Connects with tokio-postgres and returns the client (connection driven on the runtime).
async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

#[test]
fn two_clusters_start_at_once_and_are_independent() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Cluster::start);
        let b = s.spawn(Cluster::start);
        (
            a.join().expect("thread a").expect("cluster a"),
            b.join().expect("thread b").expect("cluster b"),
        )
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.socket_dir(), b.socket_dir());
    assert_eq!(a.host(), "127.0.0.1");
    assert!(a.url("postgres").starts_with("postgres://postgres@127.0.0.1:"));

    rt().block_on(async {
        let ca = connect(&a.url("postgres")).await.expect("connect a");
        let cb = b.connect("postgres").await.expect("connect b with the helper");
        ca.batch_execute("CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (7)")
            .await
            .expect("create in a");
        let n: i32 = ca
            .query_one("SELECT x FROM only_in_a", &[])
            .await
            .expect("select a")
            .get(0);
        assert_eq!(n, 7);
        let err = cb
            .query("SELECT x FROM only_in_a", &[])
            .await
            .expect_err("table must not exist in b");
        assert_eq!(
            err.as_db_error().map(|e| e.code().code()),
            Some("42P01"),
            "expected undefined_table, got {err}"
        );
        let version: String = cb
            .query_one("SHOW server_version", &[])
            .await
            .expect("version")
            .get(0);
        assert!(!version.is_empty());
        // max_connections is raised for the 200-session tests.
        let maxc: String = cb
            .query_one("SHOW max_connections", &[])
            .await
            .expect("max_connections")
            .get(0);
        assert_eq!(maxc, "300");
    });
}

#[test]
fn psql_returns_rows_and_reports_errors_with_stderr() {
    let c = Cluster::start().expect("cluster");
    c.create_db("seller db").expect("create db with a space");
    let out = c
        .psql(
            "seller db",
            "CREATE TABLE t (a int, b text);\nINSERT INTO t VALUES (1, '张三'), (2, 'x');\nSELECT a, b FROM t ORDER BY a;",
        )
        .expect("psql");
    assert_eq!(out, "1|张三\n2|x\n");
    let err = c
        .psql("seller db", "SELECT 1;\nSELECT no_such_column FROM t;\nSELECT 2;")
        .expect_err("must fail");
    match &err {
        ClusterError::Psql { db, stderr, .. } => {
            assert_eq!(db, "seller db");
            assert!(stderr.contains("no_such_column"), "stderr: {stderr}");
        }
        other => panic!("expected ClusterError::Psql, got {other:?}"),
    }
    // Meta-commands work because the script goes through stdin.
    let d = c.psql("seller db", "\\dt").expect("\\dt");
    assert!(d.contains("|t|table|postgres"), "\\dt printed {d:?}");
    assert!(c.bin("psql").ends_with("psql"));
    assert!(c.bin("pgbench").exists(), "pgbench beside the server binaries");
}

#[test]
fn drop_stops_the_server_and_removes_the_directory() {
    let c = Cluster::start().expect("cluster");
    let port = c.port();
    let dir = c.socket_dir().to_path_buf();
    assert!(dir.join("data").join("postmaster.pid").exists());
    assert!(port_open(port));
    drop(c);
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
    assert!(
        !port_open(port),
        "port {port} still accepts connections after drop"
    );
}

#[test]
fn drop_cleans_up_when_a_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let c = Cluster::start().expect("cluster");
        tx.send((c.port(), c.socket_dir().to_path_buf())).expect("send");
        panic!("simulated test failure");
    })
    .join();
    assert!(result.is_err(), "the thread panicked");
    let (port, dir) = rx.recv().expect("cluster details");
    assert!(!dir.exists(), "{} survived the panic", dir.display());
    assert!(!port_open(port));
}

/// One test playing two roles: run normally, it re-runs itself as a child process that starts
/// a cluster, reports it, and is then SIGKILLed (so no Drop runs). The watchdog must stop the
/// server and remove the directory.
#[test]
fn watchdog_cleans_up_after_the_process_is_killed() {
    const ROLE: &str = "PGVEIL_CLUSTER_TEST_CHILD";
    if std::env::var_os(ROLE).is_some() {
        let c = Cluster::start().expect("cluster in child");
        println!("CLUSTER {} {}", c.port(), c.socket_dir().display());
        std::mem::forget(c);
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "--exact",
            "watchdog_cleans_up_after_the_process_is_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test");
    let stdout = child.stdout.take().expect("child stdout");
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    let (port, dir) = loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read child");
        assert!(n > 0, "child exited without reporting a cluster");
        // libtest prints "test NAME ... " without a newline first, so search within the line.
        if let Some(rest) = line.find("CLUSTER ").map(|i| line[i + 8..].trim()) {
            let (p, d) = rest.split_once(' ').expect("port and dir");
            break (p.parse::<u16>().expect("port"), PathBuf::from(d));
        }
    };
    assert!(port_open(port), "child's cluster is up");
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    assert!(
        wait_until(Duration::from_secs(30), || !dir.exists() && !port_open(port)),
        "watchdog did not clean up: dir exists={}, port open={}",
        dir.exists(),
        port_open(port)
    );
}

#[test]
fn restart_and_stop_start_keep_the_port_and_the_data() {
    let c = Cluster::start().expect("cluster");
    c.psql(
        "postgres",
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42);",
    )
    .expect("setup");
    let port = c.port();
    rt().block_on(async {
        let client = connect(&c.url("postgres")).await.expect("connect");
        c.restart().expect("restart");
        assert!(
            client.simple_query("SELECT 1").await.is_err(),
            "a session from before the restart must be cut"
        );
        let again = connect(&c.url("postgres")).await.expect("reconnect");
        let x: i32 = again
            .query_one("SELECT x FROM kept", &[])
            .await
            .expect("q")
            .get(0);
        assert_eq!(x, 42);
    });
    assert_eq!(c.port(), port);
    c.stop().expect("stop");
    assert!(!port_open(port));
    c.start_again().expect("start again");
    assert_eq!(c.psql("postgres", "SELECT x FROM kept").expect("q"), "42\n");
}

#[test]
fn password_methods_accept_the_right_password_only() {
    for auth in [Auth::Scram, Auth::Md5, Auth::Password] {
        let c = Cluster::start_with(ClusterOptions {
            auth,
            superuser_password: Some("s3cr@t:/pw".into()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("cluster with {auth:?}: {e}"));
        assert_eq!(
            c.url("postgres"),
            format!(
                "postgres://postgres:s3cr%40t%3A%2Fpw@127.0.0.1:{}/postgres",
                c.port()
            )
        );
        rt().block_on(async {
            let client = connect(&c.url("postgres"))
                .await
                .unwrap_or_else(|e| panic!("{auth:?} with the right password: {e}"));
            let stored: String = client
                .query_one(
                    "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'",
                    &[],
                )
                .await
                .expect("read verifier")
                .get(0);
            let expected_prefix = if auth == Auth::Md5 {
                "md5"
            } else {
                "SCRAM-SHA-256$"
            };
            assert!(stored.starts_with(expected_prefix), "{auth:?}: stored {stored}");
            let err = connect(&c.url_as("postgres", "wrong", "postgres"))
                .await
                .err()
                .unwrap_or_else(|| panic!("{auth:?} accepted a wrong password"));
            assert_eq!(
                err.as_db_error().map(|e| e.code().code()),
                Some("28P01"),
                "{auth:?}: expected invalid_password, got {err}"
            );
        });
        // The unix socket stays trusted, so the helper works without a password.
        assert_eq!(c.psql("postgres", "SELECT 1").expect("psql"), "1\n");
    }
}

#[test]
fn ssl_option_turns_tls_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (tmp.path().join("server.crt"), tmp.path().join("server.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed for this test (apt-get install openssl)");
    assert!(status.success(), "openssl req failed");
    let c = Cluster::start_with(ClusterOptions {
        ssl: Some((cert, key)),
        ..Default::default()
    })
    .expect("cluster with ssl");
    let out = Command::new(c.bin("psql"))
        .args([
            "-X",
            "-At",
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .arg(format!("{}?sslmode=require", c.url("postgres")))
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "t\n");
}

#[test]
fn extra_conf_lines_are_applied() {
    let c = Cluster::start_with(ClusterOptions {
        extra_conf: vec!["work_mem = '7MB'".into()],
        ..Default::default()
    })
    .expect("cluster");
    assert_eq!(c.psql("postgres", "SHOW work_mem").expect("show"), "7MB\n");
}

#[test]
fn not_installed_names_what_to_install() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty");
    let partial = tmp.path().join("partial");
    std::fs::create_dir_all(&empty).expect("mkdir");
    std::fs::create_dir_all(&partial).expect("mkdir");
    // A directory with only some of the tools (like a client-only install) does not qualify.
    for tool in ["initdb", "pg_ctl"] {
        write_executable(&partial.join(tool));
    }
    let err = find_bindir_in(&[empty, partial.clone()]).expect_err("nothing complete");
    assert!(matches!(err, ClusterError::NotInstalled));
    assert_eq!(
        err.to_string(),
        "PostgreSQL server binaries (initdb, pg_ctl) not found in `pg_config --bindir`, PATH or \
         /usr/lib/postgresql/*/bin: install them, e.g. apt-get install postgresql"
    );
    assert_eq!(err.to_string(), NOT_INSTALLED_MESSAGE);

    // Once the third tool is there, the directory is chosen.
    write_executable(&partial.join("postgres"));
    assert_eq!(
        find_bindir_in(std::slice::from_ref(&partial)).expect("complete"),
        partial
    );
    // Symlinked tools resolve to the installation they point into.
    let links = tmp.path().join("links");
    std::fs::create_dir_all(&links).expect("mkdir");
    for tool in ["initdb", "pg_ctl", "postgres"] {
        std::os::unix::fs::symlink(partial.join(tool), links.join(tool)).expect("symlink");
    }
    let canonical = std::fs::canonicalize(&partial).expect("canonicalize");
    assert_eq!(find_bindir_in(&[links]).expect("links"), canonical);
}

fn write_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(p, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn the_shared_cluster_is_started_once_and_hands_out_separate_databases() {
    let a = Cluster::shared().expect("shared cluster");
    let b = Cluster::shared().expect("shared cluster again");
    assert!(std::ptr::eq(a, b));
    let d1 = a.create_unique_db("t").expect("db 1");
    let d2 = b.create_unique_db("t").expect("db 2");
    assert_ne!(d1, d2);
    a.psql(&d1, "CREATE TABLE x (i int)").expect("create in d1");
    assert!(a.psql(&d2, "SELECT * FROM x").is_err(), "databases are separate");
}

#[test]
fn a_start_failure_shows_the_server_log_and_leaves_nothing_behind() {
    let err = Cluster::start_with(ClusterOptions {
        extra_conf: vec!["shared_buffers = 'not a size'".into()],
        ..Default::default()
    })
    .expect_err("an invalid setting must stop the server from starting");
    match &err {
        ClusterError::Start {
            log_tail, data_dir, ..
        } => {
            assert!(log_tail.contains("shared_buffers"), "log tail: {log_tail}");
            let root = Path::new(data_dir).parent().expect("cluster dir");
            assert!(root.starts_with(std::env::temp_dir()) || root.starts_with("/tmp"));
            assert!(!root.exists(), "{} left behind", root.display());
        }
        other => panic!("expected ClusterError::Start, got {other:?}"),
    }
    assert!(err.to_string().contains("server log"), "{err}");
}
