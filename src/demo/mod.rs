//! The built-in demo (`pgveil demo`): a throwaway PostgreSQL with a sample seller database,
//! and pgveil in front of it with the sample rules of `rules/`.
//!
//! Invariants:
//! - Nothing outlives the demo: the cluster is owned by [`run_with`] and dropped (server
//!   stopped, directory removed) when it returns, whether pgveil stopped on Ctrl-C or failed;
//!   if the process is killed instead, the cluster's watchdog cleans up (see `cluster`).
//! - The token key the demo sets when `PGVEIL_TOKEN_KEY` is unset is public (it is in this
//!   file) and said to be so on screen: demo data only.
//! - The upstream is a fresh cluster on a free port with trust authentication on 127.0.0.1
//!   only; the demo never connects to anything else.
pub mod data;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cluster::Cluster;
use crate::config::ServeConfig;

/// The environment variable the demo rules read the token key from (`rules/roles.yaml`).
pub const TOKEN_KEY_ENV: &str = "PGVEIL_TOKEN_KEY";
/// The key used when [`TOKEN_KEY_ENV`] is unset. Public, hence for the demo only.
pub const DEMO_TOKEN_KEY: &str = "pgveil-demo-only-token-key-0f3c9a7e5b21d864-not-a-secret";
/// Seed of the demo data: the same customers on every run.
pub const DEMO_SEED: u64 = 20_261_203;
/// Customers in the demo database (each with about three orders).
pub const DEMO_CUSTOMERS: usize = 1000;
/// The demo database's name.
pub const DEMO_DB: &str = "seller";

/// What the demo runs with; [`DemoOptions::new`] gives the defaults of `pgveil demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub rules_dir: PathBuf,
    pub customers: usize,
    pub seed: u64,
}

impl DemoOptions {
    pub fn new(listen: SocketAddr) -> Self {
        DemoOptions {
            listen,
            rules_dir: default_rules_dir(),
            customers: DEMO_CUSTOMERS,
            seed: DEMO_SEED,
        }
    }
}

/// Where the running demo can be reached; handed to the `on_ready` callback.
#[derive(Debug, Clone)]
pub struct DemoReady {
    /// pgveil's address (the real port when the options asked for port 0).
    pub listen: SocketAddr,
    /// The throwaway PostgreSQL, direct (bypasses pgveil).
    pub upstream_url: String,
    /// The cluster's temporary directory, removed when the demo ends.
    pub cluster_dir: PathBuf,
    pub rules_dir: PathBuf,
    /// True when the demo set the public demo token key itself.
    pub demo_key: bool,
}

/// `rules/` of the working directory when there is one (the README runs the demo from the
/// repository root), else the one next to this crate's sources.
pub fn default_rules_dir() -> PathBuf {
    let here = PathBuf::from("rules");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// `pgveil demo`: runs until Ctrl-C (or SIGTERM), printing how to connect.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    run_with(DemoOptions::new(listen), print_banner, shutdown_signal()).await
}

/// Starts the cluster, loads the sample data, starts pgveil, calls `on_ready`, and serves until
/// `shutdown` completes; then stops pgveil and removes the cluster.
pub async fn run_with(
    opts: DemoOptions,
    on_ready: impl FnOnce(&DemoReady),
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let demo_key = std::env::var_os(TOKEN_KEY_ENV).is_none();
    if demo_key {
        // Set before any task reads the environment; the rules name this variable.
        std::env::set_var(TOKEN_KEY_ENV, DEMO_TOKEN_KEY);
    }
    eprintln!(
        "pgveil demo: starting a throwaway PostgreSQL and loading {} sample customers...",
        opts.customers
    );
    let (seed, customers) = (opts.seed, opts.customers);
    let cluster = tokio::task::spawn_blocking(move || -> anyhow::Result<Cluster> {
        let cluster = Cluster::start().context("cannot start the demo's PostgreSQL")?;
        cluster.create_db(DEMO_DB)?;
        data::load(&cluster, DEMO_DB, seed, customers).context("cannot load the demo data")?;
        Ok(cluster)
    })
    .await
    .context("the demo's set-up task failed")??;

    let served = serve(&opts, &cluster, demo_key, on_ready, shutdown).await;
    // Stopping the cluster blocks (pg_ctl stop); keep it off the async workers.
    let dir = cluster.socket_dir().to_path_buf();
    let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    if dir.exists() {
        eprintln!("pgveil demo: could not remove {}", dir.display());
    }
    served
}

async fn serve(
    opts: &DemoOptions,
    cluster: &Cluster,
    demo_key: bool,
    on_ready: impl FnOnce(&DemoReady),
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = ServeConfig::new(opts.listen, cluster.url(DEMO_DB), opts.rules_dir.clone());
    let server = crate::server::Server::bind(config).await.with_context(|| {
        format!(
            "cannot start pgveil on {} (is the port taken? try `pgveil demo --listen 127.0.0.1:6433`)",
            opts.listen
        )
    })?;
    on_ready(&DemoReady {
        listen: server.local_addr,
        upstream_url: cluster.url(DEMO_DB),
        cluster_dir: cluster.socket_dir().to_path_buf(),
        rules_dir: opts.rules_dir.clone(),
        demo_key,
    });
    server.run(shutdown).await
}

/// The address a client on this machine types for `listen` (an unspecified address such as
/// 0.0.0.0 is reachable as 127.0.0.1).
fn client_addr(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
    } else {
        listen
    }
}

/// The connection line for `user` (whose demo password is the user name).
pub fn psql_line(listen: SocketAddr, user: &str) -> String {
    format!(
        "psql \"postgres://{user}:{user}@{}/{DEMO_DB}\"",
        client_addr(listen)
    )
}

fn print_banner(r: &DemoReady) {
    let key_line = if r.demo_key {
        format!("{TOKEN_KEY_ENV} was unset: using a fixed, public demo key (demo only, never for real data)")
    } else {
        format!("{TOKEN_KEY_ENV} taken from the environment")
    };
    println!(
        "\npgveil demo is running\n\
         \x20 pgveil      {listen}, rules from {rules}/\n\
         \x20 PostgreSQL  {upstream}  (direct, bypasses pgveil; deleted on exit)\n\
         \x20 {key_line}\n\
         \n\
         Connect as the buyer's analyst (public columns clear, personal data masked,\n\
         only customers who consented to the transfer):\n\
         \x20 {analyst}\n\
         as the buyer's auditor (order amounts clear, ID numbers as stable tokens):\n\
         \x20 {auditor}\n\
         as the seller's DBA (no masking):\n\
         \x20 {dba}\n\
         \n\
         Then try:\n\
         \x20 SELECT id, name, id_number, phone, bank_card, city FROM customers ORDER BY id LIMIT 5;\n\
         \x20 SELECT city, count(*) FROM customers GROUP BY city ORDER BY 2 DESC;\n\
         \x20 SELECT c.name, o.order_no, o.amount FROM orders o JOIN customers c ON c.id = o.customer_id LIMIT 5;\n\
         \x20 SELECT name, salary FROM employees LIMIT 3;   -- refused for the analyst and the auditor\n\
         \x20 \\dt\n\
         \n\
         Press Ctrl-C to stop pgveil and delete the database.",
        listen = r.listen,
        rules = r.rules_dir.display().to_string().trim_end_matches('/'),
        upstream = r.upstream_url,
        analyst = psql_line(r.listen, "analyst"),
        auditor = psql_line(r.listen, "auditor"),
        dba = psql_line(r.listen, "dba"),
    );
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    eprintln!("\npgveil demo: stopping");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_lines_are_the_ones_the_readme_shows() {
        let listen: SocketAddr = "127.0.0.1:6432".parse().expect("addr");
        assert_eq!(
            psql_line(listen, "analyst"),
            r#"psql "postgres://analyst:analyst@127.0.0.1:6432/seller""#
        );
        let any: SocketAddr = "0.0.0.0:7000".parse().expect("addr");
        assert_eq!(
            psql_line(any, "dba"),
            r#"psql "postgres://dba:dba@127.0.0.1:7000/seller""#
        );
        assert!(default_rules_dir().join("logins.yaml").is_file());
    }

    /// The demo as a newcomer uses it: it comes up, the DBA sees clear data, the analyst does
    /// not, and stopping it removes the database.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_serves_masked_data_and_cleans_up() {
        let mut opts = DemoOptions::new("127.0.0.1:0".parse().expect("addr"));
        opts.customers = 50;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let demo = tokio::spawn(run_with(
            opts,
            move |r| {
                let _ = ready_tx.send(r.clone());
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        let ready = ready_rx.await.expect("demo ready");
        assert!(ready.cluster_dir.exists());

        let connect = |user: &'static str| {
            let url = format!("postgres://{user}:{user}@{}/{DEMO_DB}", ready.listen);
            async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
                tokio::spawn(conn);
                client
            }
        };
        let dba = connect("dba").await;
        let n: i64 = dba
            .query_one("SELECT count(*) FROM customers", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, 50);
        let clear: Vec<(i32, String)> = dba
            .query(
                "SELECT id, id_number FROM customers WHERE consent_transfer ORDER BY id",
                &[],
            )
            .await
            .expect("dba ids")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert!(!clear.is_empty());
        assert!(clear.iter().all(|(_, id)| crate::mask::is_valid_resident_id(id)));

        let analyst = connect("analyst").await;
        let seen: Vec<(i32, Option<String>)> = analyst
            .query("SELECT id, id_number FROM customers ORDER BY id", &[])
            .await
            .expect("analyst ids")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(
            seen.iter().map(|r| r.0).collect::<Vec<_>>(),
            clear.iter().map(|r| r.0).collect::<Vec<_>>(),
            "the analyst sees the consenting customers only"
        );
        for ((_, masked), (_, real)) in seen.iter().zip(&clear) {
            assert_ne!(
                masked.as_deref(),
                Some(real.as_str()),
                "an ID number passed in clear"
            );
        }
        drop((dba, analyst));

        let _ = stop_tx.send(());
        demo.await.expect("demo task").expect("demo result");
        assert!(
            !ready.cluster_dir.exists(),
            "the demo left {}",
            ready.cluster_dir.display()
        );
    }
}
