//! Shared test bed: a throwaway PostgreSQL, a rules directory, pgveil in front, clients.
#![allow(dead_code)]
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgveil::cluster::Cluster;
use pgveil::config::ServeConfig;
use pgveil::server::Server;
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls, Row, SimpleQueryMessage};

pub const ADMIN_PW: &str = "admin-pw";
pub const READER_PW: &str = "reader-pw";

/// Rules for fidelity tests: `admin` unrestricted, `reader` restricted with nothing masked
/// (so every statement goes through analysis and the restricted relay, and must behave
/// exactly as PostgreSQL does).
pub fn fidelity_rules() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = pgveil::session::scram::hash_password(ADMIN_PW);
    let reader = pgveil::session::scram::hash_password(READER_PW);
    std::fs::write(
        dir.path().join("rules.yaml"),
        format!(
            "roles:\n  admin: {{ unrestricted: true }}\n  reader: {{ sees: public, default: clear }}\nlogins:\n  admin: {{ role: admin, scram: \"{admin}\" }}\n  reader: {{ role: reader, scram: \"{reader}\" }}\n"
        ),
    )
    .expect("write rules");
    dir
}

/// A running pgveil in this process.
pub struct Proxy {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub shared: Arc<pgveil::session::Shared>,
}

impl Proxy {
    pub async fn start(upstream: &str, rules: &Path) -> Proxy {
        Self::start_with(ServeConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            upstream,
            rules,
        ))
        .await
    }

    pub async fn start_with(config: ServeConfig) -> Proxy {
        let server = Server::bind(config).await.expect("pgveil starts");
        let addr = server.local_addr;
        let shared = server.shared();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
        });
        Proxy {
            addr,
            stop: Some(tx),
            task: Some(task),
            shared,
        }
    }

    pub fn url(&self, user: &str, pw: &str, db: &str) -> String {
        format!(
            "postgres://{user}:{pw}@{}:{}/{db}?sslmode=disable",
            self.addr.ip(),
            self.addr.port()
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A cluster with a `test` database holding the fidelity fixture, and pgveil in front.
pub struct Bed {
    pub cluster: Cluster,
    pub proxy: Proxy,
    pub rules: tempfile::TempDir,
}

pub const FIXTURE: &str = "
CREATE TABLE items (id int PRIMARY KEY, name text, qty int8, price float8, flag bool, data bytea, born date, note varchar(20));
INSERT INTO items SELECT g, 'item ' || g, g * 10, g / 3.0, g % 2 = 0, decode(md5(g::text), 'hex'), date '2020-01-01' + g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 200) g;
CREATE TABLE sink (id int, body text);
CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10;
";

impl Bed {
    pub async fn new() -> Bed {
        let cluster = tokio::task::spawn_blocking(|| {
            let c = Cluster::start().expect("PostgreSQL starts");
            c.create_db("test").expect("create db");
            c.psql("test", FIXTURE).expect("fixture loads");
            c
        })
        .await
        .expect("join");
        let rules = fidelity_rules();
        let proxy = Proxy::start(&cluster.url("test"), rules.path()).await;
        Bed {
            cluster,
            proxy,
            rules,
        }
    }

    pub async fn direct(&self) -> Client {
        connect(&self.cluster.url("test")).await
    }
    pub async fn admin(&self) -> Client {
        connect(&self.proxy.url("admin", ADMIN_PW, "test")).await
    }
    pub async fn reader(&self) -> Client {
        connect(&self.proxy.url("reader", READER_PW, "test")).await
    }
}

pub async fn try_connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

pub async fn connect(url: &str) -> Client {
    match try_connect(url).await {
        Ok(c) => c,
        Err(e) => panic!("connect {url}: {e:?}"),
    }
}

/// Rows of a simple query as strings (None for NULL); CommandComplete as `#n`.
pub async fn simple(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let msgs = c.simple_query(sql).await.map_err(err_string)?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            SimpleQueryMessage::CommandComplete(n) => Some(vec![Some(format!("#{n}"))]),
            _ => None,
        })
        .collect())
}

/// The whole output of a `COPY ... TO STDOUT`, or the error that ended it.
pub async fn copy_text(c: &Client, sql: &str) -> Result<String, String> {
    use futures_util::StreamExt;
    let stream = c.copy_out(sql).await.map_err(err_string)?;
    futures_util::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(err_string)?);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// SQLSTATE and message of an error.
pub fn err_string(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => format!("{e}"),
    }
}

/// A row of a binary-format result as strings, for the types the fixture uses.
pub fn row_strings(row: &Row) -> Vec<Option<String>> {
    use tokio_postgres::types::Type;
    (0..row.len())
        .map(|i| {
            let t = row.columns()[i].type_().clone();
            match t {
                Type::INT2 => row.get::<_, Option<i16>>(i).map(|v| v.to_string()),
                Type::INT4 => row.get::<_, Option<i32>>(i).map(|v| v.to_string()),
                Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
                Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(|v| v.to_string()),
                Type::BOOL => row.get::<_, Option<bool>>(i).map(|v| v.to_string()),
                Type::BYTEA => row.get::<_, Option<Vec<u8>>>(i).map(|v| format!("{v:?}")),
                Type::OID => row.get::<_, Option<u32>>(i).map(|v| v.to_string()),
                Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => row.get::<_, Option<String>>(i),
                other => panic!("row_strings: add type {other}"),
            }
        })
        .collect()
}

/// Extended-protocol (binary results) query as strings.
pub async fn extended(
    c: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Vec<Option<String>>>, String> {
    let rows = c.query(sql, params).await.map_err(err_string)?;
    Ok(rows.iter().map(row_strings).collect())
}

/// Peak resident memory (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgveil"))
}
