//! Runs the statement analyser N times on one statement, for profiling (callgrind, perf).
//!
//! ```text
//! bench_analyze ROLE N SQL      # demo schema in a throwaway cluster, demo rules (rules/)
//! valgrind --tool=callgrind --toggle-collect='pgveil::sql::analyze*' \
//!   target/release/examples/bench_analyze analyst 200 "SELECT ..."
//! ```
//!
//! Same setup as `benches/analysis.rs`: the catalog of the demo schema read from a real
//! PostgreSQL, plans compiled from the demo rules. Prints the mean wall time per analysis and
//! the rewritten text once. A refused statement is an error (exit code 1).
use std::path::Path;
use std::time::Instant;

use pgveil::cluster::Cluster;
use pgveil::sql::{analyze, Context};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn run(role: &str, n: usize, sql: &str) -> Result<(), BoxError> {
    let cluster = Cluster::start()?;
    cluster.create_db("seller")?;
    cluster.psql("seller", pgveil::demo::data::SCHEMA_SQL)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let catalog = rt.block_on(async {
        let client = cluster.connect("seller").await?;
        pgveil::catalog::load::load(&client, 1).await
    })?;
    if std::env::var_os(pgveil::demo::TOKEN_KEY_ENV).is_none() {
        std::env::set_var(pgveil::demo::TOKEN_KEY_ENV, pgveil::demo::DEMO_TOKEN_KEY);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = pgveil::rules::load_dir(&dir).map_err(|e| pgveil::rules::format_errors(&e))?;
    let keys = pgveil::rules::load_keys(&rules).map_err(|e| pgveil::rules::format_errors(&e))?;
    let plans = pgveil::policy::compile::compile(&rules, &catalog, &keys)
        .map_err(|e| pgveil::rules::format_errors(&e))?;
    let plan = plans
        .get(role)
        .ok_or_else(|| format!("no role {role} in the demo rules"))?;
    let search_path = vec!["public".to_string()];
    let ctx = Context {
        catalog: &catalog,
        plan,
        search_path: &search_path,
    };
    let first = analyze(sql, &ctx).map_err(|r| format!("refused: {r}"))?;
    println!("{}", first.sql);
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(analyze(std::hint::black_box(sql), &ctx).map_err(|r| format!("refused: {r}"))?);
    }
    let per = started.elapsed().as_secs_f64() / n.max(1) as f64;
    println!("{n} analyses, {:.1} µs each", per * 1e6);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [role, n, sql] => match n.parse() {
            Ok(n) => run(role, n, sql),
            Err(e) => Err(format!("N: {e}").into()),
        },
        _ => Err("usage: bench_analyze ROLE N SQL".into()),
    };
    if let Err(e) = result {
        eprintln!("bench_analyze: {e}");
        std::process::exit(1);
    }
}
