//! TLS on both hops, and every upstream authentication method.
use std::path::Path;
use std::process::Command;

use pgveil::cluster::{Auth, Cluster, ClusterOptions};
use pgveil::config::ServeConfig;

use crate::common::*;

/// A CA and a server certificate for 127.0.0.1 / localhost, made with openssl.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=pgveil test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

fn psql(cluster: &Cluster, url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cluster.bin("psql"))
        .arg("-X")
        .arg(url)
        .args(args)
        .env_remove("PGPASSWORD")
        .output()
        .expect("psql runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_both_hops() {
    let certs = tempfile::tempdir().expect("tmp");
    make_certs(certs.path());
    let opts = ClusterOptions {
        ssl: Some((certs.path().join("server.crt"), certs.path().join("server.key"))),
        ..Default::default()
    };
    let cluster = tokio::task::spawn_blocking(move || {
        let c = Cluster::start_with(opts).expect("PostgreSQL with TLS starts");
        c.create_db("test").expect("db");
        c
    })
    .await
    .expect("join");
    let rules = fidelity_rules();
    let upstream = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        cluster.url("test"),
        certs.path().join("ca.crt").display()
    );
    let mut cfg = ServeConfig::new("127.0.0.1:0".parse().expect("addr"), upstream, rules.path());
    cfg.tls_cert = Some(certs.path().join("server.crt"));
    cfg.tls_key = Some(certs.path().join("server.key"));
    cfg.require_tls = true;
    let proxy = Proxy::start_with(cfg).await;
    let base = format!("postgres://admin:{ADMIN_PW}@127.0.0.1:{}/test", proxy.addr.port());

    // Client hop: psql negotiates TLS with pgveil; upstream hop: pg_stat_ssl says TLS.
    let (ok, out, err) = psql(
        &cluster,
        &format!(
            "{base}?sslmode=verify-full&sslrootcert={}",
            certs.path().join("ca.crt").display()
        ),
        &[
            "-At",
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            "-c",
            "\\conninfo",
        ],
    );
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("t"), "upstream hop is encrypted: {out}");
    assert!(out.contains("SSL connection"), "client hop is encrypted: {out}");

    // A clear-text client is refused.
    let (ok, _, err) = psql(&cluster, &format!("{base}?sslmode=disable"), &["-c", "SELECT 1"]);
    assert!(!ok && err.contains("pgveil requires TLS"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_auth_method() {
    for auth in [Auth::Trust, Auth::Password, Auth::Md5, Auth::Scram] {
        let cluster = tokio::task::spawn_blocking(move || {
            let opts = ClusterOptions {
                auth,
                superuser_password: Some("upstream-secret".into()),
                ..Default::default()
            };
            let c = Cluster::start_with(opts).expect("cluster");
            c.create_db("test").expect("db");
            c
        })
        .await
        .expect("join");
        let rules = fidelity_rules();
        let proxy = Proxy::start(
            &cluster.url_as("postgres", "upstream-secret", "test"),
            rules.path(),
        )
        .await;
        for (user, pw) in [("admin", ADMIN_PW), ("reader", READER_PW)] {
            let c = connect(&proxy.url(user, pw, "test")).await;
            let r = simple(&c, "SELECT current_user").await.expect("query");
            assert_eq!(r[0][0].as_deref(), Some("postgres"), "{auth:?} {user}");
        }
        if auth != Auth::Trust {
            // A wrong upstream password: pgveil cannot start (it reads the catalog first)...
            let bad = pgveil::server::Server::bind(ServeConfig::new(
                "127.0.0.1:0".parse().expect("addr"),
                cluster.url_as("postgres", "wrong", "test"),
                rules.path(),
            ))
            .await;
            let msg = format!("{:#}", bad.err().expect("refused"));
            assert!(msg.contains("password authentication failed"), "{msg}");
            assert!(
                !msg.contains("wrong"),
                "the password never appears in messages: {msg}"
            );
        }
    }
}
