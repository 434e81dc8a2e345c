//! Real client drivers through pgveil, with the demo rules of `rules/` in force: psycopg 3,
//! asyncpg, SQLAlchemy + pandas (Python), node-postgres (Node) and pgjdbc (Java).
//!
//! One throwaway PostgreSQL 15 with the demo seller database, one pgveil in this process in
//! front of it (rules from `rules/`, `PGVEIL_TOKEN_KEY` set), shared by every test. Each test
//! runs one script of `tests/drivers/` as a subprocess, handing it pgveil's address and the
//! direct address in environment variables (`PGVEIL_HOST`, `PGVEIL_PORT`, `DIRECT_HOST`,
//! `DIRECT_PORT`, `DIRECT_USER`, `PGVEIL_DB`), and asserts it exits 0; its output (one line
//! per check) is printed when it does not. What the scripts compare is in their headers: the
//! same rows as direct on visible data, well-formed masked values that keep exactly what
//! `rules/MASKS.md` says on sensitive columns, SQLSTATE 42501 on denied ones.
//!
//! Invariants:
//! - A missing driver fails its test with the command that installs it (`.ci/run` installs
//!   them all); nothing is skipped.
//! - Scripts run one at a time (a lock), so that the connections they open never add up past
//!   the analyst role's session limit, and their timings are their own.
//! - Scripts never write into the repository (`PYTHONDONTWRITEBYTECODE`; Java compiles in memory
//!   with the single-file source launcher).
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use pgveil::cluster::Cluster;
use pgveil::config::ServeConfig;
use pgveil::server::Server;

/// The token key the auditor's `token` mask reads (rules/roles.yaml names the variable).
const TOKEN_KEY: &str = "pgveil-driver-tests-token-key-not-a-secret";
/// Customers in the test database (each with about three orders): enough for several fetch
/// batches and cursor pages, small enough to load in a second.
const CUSTOMERS: usize = 1000;
/// A script that runs longer than this is killed and fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
const PIP_HINT: &str =
    "python3 -m venv .venv-drivers && .venv-drivers/bin/pip install -r tests/drivers/python/requirements.txt";

/// PostgreSQL with the demo data and pgveil in front, for the whole test process.
struct Bed {
    cluster: &'static Cluster,
    proxy: SocketAddr,
}

fn bed() -> &'static Bed {
    static BED: OnceLock<Bed> = OnceLock::new();
    BED.get_or_init(|| {
        let cluster = Cluster::shared().unwrap_or_else(|e| panic!("PostgreSQL for the driver tests: {e}"));
        cluster
            .create_db(pgveil::demo::DEMO_DB)
            .expect("create the seller database");
        pgveil::demo::data::load(cluster, pgveil::demo::DEMO_DB, pgveil::demo::DEMO_SEED, CUSTOMERS)
            .expect("load the demo data");
        // Set before pgveil loads the rules, while no other test thread runs anything (they
        // all wait on this OnceLock).
        std::env::set_var(pgveil::demo::TOKEN_KEY_ENV, TOKEN_KEY);
        let rules = repo().join("rules");
        let upstream = cluster.url(pgveil::demo::DEMO_DB);
        let (tx, rx) = std::sync::mpsc::channel();
        // pgveil gets a runtime of its own on a thread that lives as long as the process, so
        // every test (each on its own thread) can use it.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let config = ServeConfig::new("127.0.0.1:0".parse().expect("addr"), upstream, rules);
                let server = match Server::bind(config).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                        return;
                    }
                };
                let _ = tx.send(Ok(server.local_addr));
                if let Err(e) = server.run(std::future::pending::<()>()).await {
                    eprintln!("pgveil stopped: {e:#}");
                }
            });
        });
        let proxy = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("pgveil starts within 2 minutes")
            .unwrap_or_else(|e| panic!("pgveil does not start with rules/: {e}"));
        Bed { cluster, proxy }
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn drivers_dir(sub: &str) -> PathBuf {
    repo().join("tests/drivers").join(sub)
}

/// Whether `program --version` runs.
fn runs(program: &Path) -> bool {
    version_runs(program, "--version")
}

/// The Python of the drivers' virtual environment (`PGVEIL_DRIVERS_PYTHON` overrides it).
fn python() -> PathBuf {
    let py = std::env::var_os("PGVEIL_DRIVERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-drivers/bin/python"));
    assert!(
        runs(&py),
        "the Python driver tests need {} (a virtual environment with the drivers): run .ci/run, or {PIP_HINT}",
        py.display()
    );
    py
}

fn node() -> PathBuf {
    let node = PathBuf::from("node");
    assert!(
        runs(&node),
        "the node-postgres test needs `node` on PATH: run .ci/run, or apt-get install nodejs npm"
    );
    let pg = drivers_dir("node/node_modules/pg/package.json");
    assert!(
        pg.is_file(),
        "the node-postgres test needs {}: run .ci/run, or (cd tests/drivers/node && npm ci)",
        pg.display()
    );
    node
}

/// `java` (with the compiler: the single-file source launcher needs `jdk.compiler`) and
/// pgjdbc's jar (`PGJDBC_JAR` overrides Debian's path).
fn java() -> (PathBuf, PathBuf) {
    let hint = "run .ci/run, or apt-get install default-jdk-headless libpostgresql-jdbc-java";
    let java = PathBuf::from("java");
    assert!(
        version_runs(&java, "-version") && version_runs(Path::new("javac"), "-version"),
        "the pgjdbc test needs a JDK (java and javac, 11 or later) on PATH: {hint}"
    );
    let jar = std::env::var_os("PGJDBC_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/postgresql.jar"));
    assert!(jar.is_file(), "the pgjdbc test needs {}: {hint}", jar.display());
    (java, jar)
}

/// Whether `program flag` runs and succeeds (Java's tools only know `-version` before 9).
fn version_runs(program: &Path, flag: &str) -> bool {
    Command::new(program)
        .arg(flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs one driver script against the shared bed and fails the test with its output unless
/// it exits 0.
fn run_script(label: &str, mut cmd: Command, dir: PathBuf) {
    let bed = bed();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    cmd.current_dir(&dir)
        .env("PGVEIL_HOST", bed.proxy.ip().to_string())
        .env("PGVEIL_PORT", bed.proxy.port().to_string())
        .env("DIRECT_HOST", bed.cluster.host())
        .env("DIRECT_PORT", bed.cluster.port().to_string())
        .env("DIRECT_USER", "postgres")
        .env("PGVEIL_DB", pgveil::demo::DEMO_DB)
        .env("TZ", "UTC")
        .env("PGTZ", "UTC")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{label}: cannot start {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the script") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" passed, "))
        .unwrap_or("(no summary line)");
    eprintln!("{label}: {summary} in {:.1}s", started.elapsed().as_secs_f64());
    let hint = if stdout.contains("ModuleNotFoundError") || stderr.contains("ModuleNotFoundError") {
        format!("\na Python driver is missing: run .ci/run, or {PIP_HINT}")
    } else {
        String::new()
    };
    match status {
        Some(s) if s.success() => {
            // A script that exits 0 must also have run checks and reported them.
            assert!(summary.contains(" 0 failed") && !summary.starts_with(" 0 passed"), "{label}: {summary}\n{stdout}");
        }
        Some(s) => panic!("{label} failed ({s}) in {dir:?}:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}{hint}"),
        None => panic!("{label} did not finish in {SCRIPT_TIMEOUT:?}:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"),
    }
}

fn python_script(script: &str) {
    let mut cmd = Command::new(python());
    cmd.arg(script);
    run_script(script, cmd, drivers_dir("python"));
}

#[test]
fn psycopg3_text_binary_server_side_cursors_and_copy() {
    python_script("psycopg_test.py");
}

#[test]
fn asyncpg_binary_prepared_cursors_and_pools() {
    python_script("asyncpg_test.py");
}

#[test]
fn sqlalchemy_reflection_and_pandas_read_sql() {
    python_script("sqlalchemy_pandas_test.py");
}

#[test]
fn node_postgres() {
    let mut cmd = Command::new(node());
    cmd.arg("pg_test.js");
    run_script("pg_test.js", cmd, drivers_dir("node"));
}

#[test]
fn pgjdbc_metadata_binary_prepared_and_fetch_size() {
    let (java, jar) = java();
    let mut cmd = Command::new(java);
    // The single-file source launcher compiles in memory: nothing is written to the tree.
    cmd.arg("-cp").arg(jar).arg("PgjdbcTest.java");
    run_script("PgjdbcTest.java", cmd, drivers_dir("java"));
}
