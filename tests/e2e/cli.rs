//! The binary's commands as a DBA uses them.
use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;

#[test]
fn hash_password_reads_stdin_and_prints_a_verifier() {
    let mut child = Command::new(bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"s3cret\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).expect("utf8");
    assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
    assert!(!v.contains("s3cret"));
    assert!(pgveil::session::scram::Verifier::parse(v.trim()).is_ok());
}

#[test]
fn serve_with_upstream_down_says_so_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--rules", "rules"])
        .arg("--upstream")
        .arg(format!("postgres://svc:TopSecret@127.0.0.1:{port}/seller"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PGVEIL_TOKEN_KEY", "test-key-0123456789abcdef")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot connect to upstream"), "{err}");
    assert!(!err.contains("TopSecret"), "no password in messages: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

#[test]
fn serve_with_broken_rules_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "roles:\n  analyst: { sees: publik }\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["check", "--rules"])
        .arg(dir.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bad.yaml:2"), "{err}");
}
