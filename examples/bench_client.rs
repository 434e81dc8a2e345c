//! Client-side helpers of the macro benchmark (`bench/run.sh`); not part of pgveil.
//!
//! ```text
//! bench_client binary  URL SQL                 # stream SQL's result in binary format
//! bench_client idle    URL N STOPFILE          # hold N idle sessions until STOPFILE exists
//! bench_client rewrite RULES_DIR URL ROLE SQL  # print the SQL pgveil sends for ROLE
//! ```
//!
//! - `binary` runs the statement through the extended protocol with every result column in
//!   binary format (tokio-postgres `query_raw`: Parse/Describe, then Bind with binary result
//!   formats and one Execute), streams the rows without buffering the result and touches every
//!   value's bytes without decoding them, as a libpq client reading `PQgetvalue` would.
//!   Prints `rows=<n> bytes=<n> seconds=<s>` on stdout.
//! - `idle` opens N sessions (8 at a time), prints `ready <n>` once all are open, holds them
//!   without sending anything until STOPFILE appears, then closes them.
//! - `rewrite` loads the rules and the database's catalog as pgveil does at start-up and prints
//!   the text pgveil forwards upstream for ROLE (the masking subqueries), so the benchmark can
//!   run that text directly and separate PostgreSQL's cost of computing masks from pgveil's.
//!
//! Errors end the process with a message and exit code 1: a benchmark step that failed must
//! not be reported as a figure.
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{pin_mut, StreamExt, TryStreamExt};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::NoTls;

/// Any column's raw wire bytes, undecoded.
struct Raw(usize);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Raw, Box<dyn std::error::Error + Sync + Send>> {
        // black_box: the value is "read" as a libpq client would, not optimised away.
        Ok(Raw(std::hint::black_box(raw).len()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connect(url: &str) -> Result<tokio_postgres::Client, BoxError> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("connecting to {}: {e}", redact(url)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

async fn binary(url: &str, sql: &str) -> Result<(), BoxError> {
    let client = connect(url).await?;
    let started = Instant::now();
    let stream = client
        .query_raw(sql, std::iter::empty::<i32>())
        .await
        .map_err(|e| format!("query: {e}"))?;
    pin_mut!(stream);
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(row) = stream
        .try_next()
        .await
        .map_err(|e| format!("fetching rows: {e}"))?
    {
        for i in 0..row.len() {
            let v: Option<Raw> = row.try_get(i).map_err(|e| format!("column {i}: {e}"))?;
            bytes += v.map_or(0, |r| r.0 as u64);
        }
        rows += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("rows={rows} bytes={bytes} seconds={seconds:.4}");
    Ok(())
}

async fn idle(url: &str, n: usize, stop: &Path) -> Result<(), BoxError> {
    let started = Instant::now();
    let clients: Vec<tokio_postgres::Client> = futures_util::stream::iter(0..n)
        .map(|_| connect(url))
        .buffer_unordered(8)
        .try_collect()
        .await?;
    println!(
        "ready {} in {:.2}s",
        clients.len(),
        started.elapsed().as_secs_f64()
    );
    while !stop.exists() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(clients);
    Ok(())
}

async fn rewrite(rules: &Path, url: &str, role: &str, sql: &str) -> Result<(), BoxError> {
    let upstream = pgveil::upstream::UpstreamConfig::from_url(url)?;
    let policy = pgveil::state::load(rules, &upstream).await?;
    let plan = policy
        .plans
        .get(role)
        .ok_or_else(|| format!("no role {role} in {}", rules.display()))?;
    let search_path = vec!["public".to_string()];
    let ctx = pgveil::sql::Context {
        catalog: &policy.catalog,
        plan,
        search_path: &search_path,
    };
    let analysis = pgveil::sql::analyze(sql, &ctx).map_err(|r| format!("refused: {r}"))?;
    println!("{}", analysis.sql);
    Ok(())
}

fn usage() -> BoxError {
    "usage: bench_client binary URL SQL | idle URL N STOPFILE | rewrite RULES_DIR URL ROLE SQL".into()
}

async fn run(args: &[String]) -> Result<(), BoxError> {
    match args.first().map(String::as_str) {
        Some("binary") if args.len() == 3 => binary(&args[1], &args[2]).await,
        Some("idle") if args.len() == 4 => {
            let n: usize = args[2].parse().map_err(|e| format!("N: {e}"))?;
            idle(&args[1], n, Path::new(&args[3])).await
        }
        Some("rewrite") if args.len() == 5 => {
            rewrite(Path::new(&args[1]), &args[2], &args[3], &args[4]).await
        }
        _ => Err(usage()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_client: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(&args)) {
        eprintln!("bench_client: {e}");
        std::process::exit(1);
    }
}
