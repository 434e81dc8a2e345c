//! Keeps the packaging honest without Docker: `docker-compose.yml`, `Dockerfile`,
//! `.dockerignore`, `deploy/prometheus.yml` and `deploy/seller-init/` are read and checked
//! against each other and against the repository, and the init scripts the compose file feeds
//! to `postgres:15` are run on a real PostgreSQL 15 with pgveil in front, through the
//! least-privileged account the compose file gives pgveil.
//!
//! Invariants checked:
//! - every service the README's `docker compose up` needs exists, with the ports the demo's psql
//!   line and Prometheus use; every file or directory the compose file mounts or builds from,
//!   and every `COPY` source of the Dockerfile, exists and is not excluded by `.dockerignore`;
//! - the environment of the `pgveil` service agrees with the database service (host, port,
//!   database, account and password created by the init scripts) and with the image (rules
//!   directory, metrics port scraped by Prometheus);
//! - `deploy/seller-init/` holds the demo database exactly (schema of `src/demo/schema.sql`, the
//!   data `pgveil demo` loads); `PGVEIL_REGENERATE=1 cargo test --test compose` rewrites the data
//!   file after a change of the generator.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use pgveil::cluster::{Auth, Cluster, ClusterOptions};
use serde_json::Value;

/// Customers in the compose demo's database: the demo's own number, so the same queries give
/// the same answers as `pgveil demo`.
const COMPOSE_CUSTOMERS: usize = pgveil::demo::DEMO_CUSTOMERS;
/// Largest generated file committed to the repository.
const MAX_INIT_BYTES: usize = 1_000_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_saphyr::from_str::<Value>(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn compose() -> Value {
    yaml("docker-compose.yml")
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    c.get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("docker-compose.yml has no service `{name}`"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A service's environment, whether written as a map or as `KEY=VALUE` items.
fn environment(svc: &Value) -> BTreeMap<String, String> {
    match svc.get("environment") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|s| s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `${VAR:-default}` as compose resolves it when VAR is unset.
fn compose_default(v: &str) -> String {
    match v
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|r| r.split_once(":-"))
    {
        Some((_, default)) => default.to_string(),
        None => v.to_string(),
    }
}

/// Bind mounts `./host:/container[:mode]` of a service as (host path, container path).
fn bind_mounts(svc: &Value) -> Vec<(String, String)> {
    strings(svc.get("volumes"))
        .into_iter()
        .filter(|v| v.starts_with("./") || v.starts_with('/'))
        .map(|v| {
            let mut parts = v.splitn(3, ':');
            let host = parts.next().unwrap_or_default().to_string();
            let target = parts
                .next()
                .unwrap_or_else(|| panic!("volume `{v}` has no target"))
                .to_string();
            (host, target)
        })
        .collect()
}

/// Container ports published by a service (`[ip:]host:container`).
fn published(svc: &Value) -> Vec<(u16, u16)> {
    strings(svc.get("ports"))
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.rsplitn(3, ':').collect();
            let container = parts[0].parse().unwrap_or_else(|_| panic!("port `{p}`"));
            let host = parts
                .get(1)
                .unwrap_or(&parts[0])
                .parse()
                .unwrap_or_else(|_| panic!("port `{p}`"));
            (host, container)
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{addr}`"))
}

/// The parts of a `postgres://user:password@host:port/db?params` URL.
struct PgUrl {
    user: String,
    password: String,
    host: String,
    port: u16,
    db: String,
    query: String,
}

fn parse_pg_url(url: &str) -> PgUrl {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"));
    let rest = rest.unwrap_or_else(|| panic!("`{url}` is not a postgres:// URL"));
    let (auth, rest) = rest
        .split_once('@')
        .unwrap_or_else(|| panic!("`{url}` has no user"));
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, rest) = rest
        .split_once('/')
        .unwrap_or_else(|| panic!("`{url}` has no database"));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    let (db, query) = rest.split_once('?').unwrap_or((rest, ""));
    PgUrl {
        user: user.into(),
        password: password.into(),
        host: host.into(),
        port: port.parse().unwrap_or_else(|_| panic!("port in `{url}`")),
        db: db.into(),
        query: query.into(),
    }
}

/// Dockerfile instructions as (INSTRUCTION, arguments), continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in read("Dockerfile").lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (ins, args) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        out.push((ins.to_ascii_uppercase(), args.trim().to_string()));
        cur.clear();
    }
    assert!(cur.is_empty(), "Dockerfile ends with a continuation line");
    out
}

fn dockerignore() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn compose_services_ports_and_mounted_files_exist() {
    let c = compose();
    let services: Vec<&String> = c
        .get("services")
        .and_then(Value::as_object)
        .expect("services")
        .keys()
        .collect();
    for s in ["seller-db", "pgveil", "prometheus"] {
        assert!(
            services.iter().any(|k| *k == s),
            "service {s} missing: {services:?}"
        );
    }
    // Every bind mount's host side exists.
    for name in &services {
        for (host, target) in bind_mounts(service(&c, name)) {
            assert!(
                repo().join(&host).exists(),
                "service {name} mounts {host} (to {target}), which does not exist"
            );
        }
    }

    let db = service(&c, "seller-db");
    let image = db.get("image").and_then(Value::as_str).expect("seller-db image");
    assert!(
        image.starts_with("postgres:15"),
        "the tests run against PostgreSQL 15; seller-db uses {image}"
    );
    let init = bind_mounts(db)
        .into_iter()
        .find(|(_, t)| t == "/docker-entrypoint-initdb.d")
        .expect("seller-db mounts its init scripts on /docker-entrypoint-initdb.d");
    assert!(repo().join(&init.0).is_dir(), "{} is a directory", init.0);
    let db_env = environment(db);
    assert!(
        db_env.contains_key("POSTGRES_PASSWORD"),
        "postgres:15 needs POSTGRES_PASSWORD"
    );
    let db_name = db_env
        .get("POSTGRES_DB")
        .expect("POSTGRES_DB names the seller database");

    let proxy = service(&c, "pgveil");
    let build = proxy.get("build").expect("pgveil is built from this repository");
    let context = build.get("context").and_then(Value::as_str).unwrap_or(".");
    let dockerfile = build
        .get("dockerfile")
        .and_then(Value::as_str)
        .unwrap_or("Dockerfile");
    assert!(
        repo().join(context).join(dockerfile).is_file(),
        "build {context}/{dockerfile}"
    );
    assert!(
        strings(proxy.get("depends_on")).contains(&"seller-db".to_string())
            || proxy.get("depends_on").and_then(|d| d.get("seller-db")).is_some(),
        "pgveil depends on seller-db"
    );
    let env = environment(proxy);
    let upstream = parse_pg_url(env.get("PGVEIL_UPSTREAM").expect("PGVEIL_UPSTREAM"));
    assert_eq!(
        upstream.host, "seller-db",
        "pgveil's upstream is the seller-db service"
    );
    assert_eq!(
        upstream.port, 5432,
        "postgres:15 listens on 5432 inside the network"
    );
    assert_eq!(
        &upstream.db, db_name,
        "pgveil's upstream database is the one POSTGRES_DB creates"
    );
    let account = read("deploy/seller-init/03-pgveil-account.sql");
    assert!(
        account.contains(&format!(
            "CREATE ROLE {} LOGIN PASSWORD '{}'",
            upstream.user, upstream.password
        )),
        "the upstream account {} and its password are created by deploy/seller-init/03-pgveil-account.sql",
        upstream.user
    );
    assert!(
        !compose_default(
            env.get("PGVEIL_TOKEN_KEY")
                .expect("PGVEIL_TOKEN_KEY (rules/roles.yaml reads it)")
        )
        .is_empty(),
        "PGVEIL_TOKEN_KEY has a value"
    );
    // The rules the image reads are the repository's rules/, mounted read-only.
    let rules = bind_mounts(proxy)
        .into_iter()
        .find(|(h, _)| h == "./rules")
        .expect("./rules is mounted");
    assert_eq!(
        rules.1,
        image_env("PGVEIL_RULES"),
        "rules mounted where the image reads them"
    );
    let ports = published(proxy);
    let listen = port_of(
        &env.get("PGVEIL_LISTEN")
            .cloned()
            .unwrap_or_else(|| image_env("PGVEIL_LISTEN")),
    );
    let metrics = port_of(
        &env.get("PGVEIL_METRICS")
            .cloned()
            .unwrap_or_else(|| image_env("PGVEIL_METRICS")),
    );
    assert!(
        ports.contains(&(6432, listen)),
        "pgveil published on 6432 (the demo's psql line): {ports:?}"
    );
    assert!(
        ports.iter().any(|(_, c)| *c == metrics),
        "metrics port {metrics} published: {ports:?}"
    );

    let prom = service(&c, "prometheus");
    let conf = bind_mounts(prom)
        .into_iter()
        .find(|(_, t)| t == "/etc/prometheus/prometheus.yml")
        .expect("prometheus mounts its configuration");
    let p = yaml(conf.0.trim_start_matches("./"));
    let jobs = p
        .get("scrape_configs")
        .and_then(Value::as_array)
        .expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j.get("job_name").and_then(Value::as_str) == Some("pgveil"))
        .expect("a pgveil scrape job");
    assert_eq!(
        job.get("metrics_path")
            .and_then(Value::as_str)
            .unwrap_or("/metrics"),
        "/metrics"
    );
    let targets: Vec<String> = job
        .get("static_configs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|s| strings(s.get("targets")))
        .collect();
    assert_eq!(
        targets,
        vec![format!("pgveil:{metrics}")],
        "Prometheus scrapes the pgveil service's metrics port"
    );
}

/// The value the Dockerfile's runtime stage gives an environment variable.
fn image_env(name: &str) -> String {
    let mut value = None;
    for (ins, args) in dockerfile() {
        if ins == "FROM" {
            value = None;
        }
        if ins == "ENV" {
            for kv in args.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    if k == name {
                        value = Some(v.trim_matches('"').to_string());
                    }
                }
            }
        }
    }
    value.unwrap_or_else(|| panic!("the Dockerfile's runtime stage sets no {name}"))
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_copies_files_that_exist() {
    let ins = dockerfile();
    let froms: Vec<&String> = ins.iter().filter(|(i, _)| i == "FROM").map(|(_, a)| a).collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage: {froms:?}");
    assert!(
        froms[0].starts_with("rust:") && froms[0].contains("bookworm") && froms[0].ends_with(" AS build"),
        "{}",
        froms[0]
    );
    assert!(
        froms[1].starts_with("debian:bookworm-slim"),
        "small runtime image: {}",
        froms[1]
    );
    let runs: Vec<&String> = ins.iter().filter(|(i, _)| i == "RUN").map(|(_, a)| a).collect();
    assert!(
        runs.iter().any(|r| r.contains("libclang-dev")),
        "pg_query's bindgen needs libclang-dev"
    );
    assert!(
        runs.iter().any(|r| r.contains("cargo build --release --locked")),
        "release build from Cargo.lock"
    );
    let runtime_start = ins.iter().rposition(|(i, _)| i == "FROM").expect("FROM");
    let runtime = &ins[runtime_start..];
    let user = runtime
        .iter()
        .rfind(|(i, _)| i == "USER")
        .map(|(_, a)| a.as_str());
    assert_eq!(
        user,
        Some("pgveil"),
        "the runtime runs as the non-root user pgveil"
    );
    assert!(
        runs.iter().any(|r| r.contains("useradd") && r.contains("pgveil")),
        "user pgveil is created"
    );
    let exposed: Vec<u16> = runtime
        .iter()
        .filter(|(i, _)| i == "EXPOSE")
        .flat_map(|(_, a)| {
            a.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        exposed.contains(&6432) && exposed.contains(&9187),
        "EXPOSE 6432 9187: {exposed:?}"
    );
    assert_eq!(port_of(&image_env("PGVEIL_LISTEN")), 6432);
    assert_eq!(port_of(&image_env("PGVEIL_METRICS")), 9187);
    let entry = runtime
        .iter()
        .rfind(|(i, _)| i == "ENTRYPOINT")
        .map(|(_, a)| a.clone())
        .expect("ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(&entry).expect("ENTRYPOINT in exec (JSON) form");
    assert_eq!(entry, ["pgveil", "serve"]);

    // Every COPY source (from the build context) exists and is not ignored.
    let ignored = dockerignore();
    assert!(
        ignored.iter().any(|p| p == "target"),
        ".dockerignore keeps target/ out of the build context"
    );
    let mut copied = Vec::new();
    for (i, args) in &ins {
        if i != "COPY" && i != "ADD" {
            continue;
        }
        let words: Vec<&str> = args.split_whitespace().collect();
        if words.iter().any(|w| w.starts_with("--from=")) {
            continue;
        }
        let sources: Vec<&str> = words.iter().copied().filter(|w| !w.starts_with("--")).collect();
        let (dest, sources) = sources.split_last().expect("COPY has a destination");
        for s in sources {
            assert!(repo().join(s).exists(), "COPY {s} {dest}: {s} does not exist");
            let first = s.trim_start_matches("./").split('/').next().unwrap_or(s);
            assert!(
                !ignored.iter().any(|p| p == first),
                "COPY {s}: excluded by .dockerignore"
            );
            copied.push(first.to_string());
        }
    }
    // What cargo needs to build: the manifest, the lock file, the sources, and the files of
    // every explicitly declared target (cargo refuses a manifest whose targets are missing).
    for need in ["Cargo.toml", "Cargo.lock", "src", "rules"] {
        assert!(copied.iter().any(|c| c == need), "the Dockerfile copies {need}");
    }
    let manifest = read("Cargo.toml");
    if manifest.contains("[[bench]]") {
        assert!(
            copied.iter().any(|c| c == "benches"),
            "Cargo.toml declares benches: the Dockerfile copies benches/"
        );
    }
    assert!(
        !repo().join("build.rs").exists() || copied.iter().any(|c| c == "build.rs"),
        "build.rs is copied"
    );
    // Files the sources embed at compile time must be inside what the Dockerfile copies.
    let embedded = embedded_files(&repo().join("src"));
    assert!(
        embedded.iter().any(|(_, f)| f.ends_with("src/demo/schema.sql")),
        "the scan finds src/demo/data.rs's include_str!(\"schema.sql\"): {embedded:?}"
    );
    for (file, included) in embedded {
        let root = std::fs::canonicalize(repo()).expect("repository path");
        let rel = included
            .strip_prefix(&root)
            .unwrap_or_else(|_| panic!("{file:?} embeds {included:?}, outside the repository"));
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            copied.contains(&first),
            "{file:?} embeds {rel:?}, which the Dockerfile does not copy"
        );
    }
    let rules_dest = ins
        .iter()
        .find(|(i, a)| i == "COPY" && a.split_whitespace().next() == Some("rules"))
        .map(|(_, a)| a.split_whitespace().last().unwrap_or_default().to_string())
        .expect("COPY rules");
    assert_eq!(rules_dest, image_env("PGVEIL_RULES"));
    assert_eq!(rules_dest, "/etc/pgveil/rules");
}

/// Every `include_str!` / `include_bytes!` of the `.rs` files under `dir`, as (file, resolved
/// path of the embedded file).
fn embedded_files(dir: &std::path::Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {d:?}: {e}")) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                    for (at, _) in text.match_indices(macro_name) {
                        let rest = &text[at + macro_name.len()..];
                        let Some(end) = rest.find('"') else { continue };
                        let target = path.parent().expect("parent").join(&rest[..end]);
                        let resolved = std::fs::canonicalize(&target).unwrap_or(target);
                        out.push((path.clone(), resolved));
                    }
                }
            }
        }
    }
    out
}

/// `deploy/seller-init/02-data.sql` as it must be: the demo data.
fn demo_data_sql() -> String {
    pgveil::demo::data::generate_sql(pgveil::demo::DEMO_SEED, COMPOSE_CUSTOMERS)
}

#[test]
fn seller_init_scripts_hold_the_demo_database() {
    let dir = repo().join("deploy/seller-init");
    let data_path = dir.join("02-data.sql");
    let want = demo_data_sql();
    assert!(
        want.len() < MAX_INIT_BYTES,
        "generated data is {} bytes: too big to commit",
        want.len()
    );
    if std::env::var_os("PGVEIL_REGENERATE").is_some() {
        std::fs::write(&data_path, &want).expect("write 02-data.sql");
        std::fs::write(dir.join("01-schema.sql"), pgveil::demo::data::SCHEMA_SQL)
            .expect("write 01-schema.sql");
    }
    assert_eq!(
        read("deploy/seller-init/01-schema.sql"),
        pgveil::demo::data::SCHEMA_SQL,
        "deploy/seller-init/01-schema.sql differs from src/demo/schema.sql: run PGVEIL_REGENERATE=1 cargo test --test compose"
    );
    let got = std::fs::read_to_string(&data_path).unwrap_or_default();
    assert!(
        got == want,
        "deploy/seller-init/02-data.sql is not what src/demo/data.rs generates ({} vs {} bytes): run PGVEIL_REGENERATE=1 cargo test --test compose",
        got.len(),
        want.len()
    );
    // postgres:15 runs *.sql (and *.sh) of the directory in name order.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read deploy/seller-init")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["01-schema.sql", "02-data.sql", "03-pgveil-account.sql"]);
}

/// Runs the init scripts as the postgres image does (psql, ON_ERROR_STOP, as the superuser on
/// the POSTGRES_DB database), then pgveil with the compose file's upstream account and rules;
/// the demo's psql line works, masks apply, and Prometheus's scrape path answers.
#[test]
fn seller_init_scripts_load_and_pgveil_serves_them_through_the_service_account() {
    let c = compose();
    let db_name = environment(service(&c, "seller-db"))
        .get("POSTGRES_DB")
        .cloned()
        .expect("POSTGRES_DB");
    let env = environment(service(&c, "pgveil"));
    let upstream = parse_pg_url(env.get("PGVEIL_UPSTREAM").expect("PGVEIL_UPSTREAM"));
    let cluster = Cluster::start_with(ClusterOptions {
        auth: Auth::Scram,
        superuser_password: Some("seller-superuser".into()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    cluster.create_db(&db_name).expect("create the database");
    for f in ["01-schema.sql", "02-data.sql", "03-pgveil-account.sql"] {
        cluster
            .psql(&db_name, &read(&format!("deploy/seller-init/{f}")))
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    // The compose URL, pointed at this cluster instead of the seller-db service.
    let url = format!(
        "postgres://{}:{}@{}:{}/{}{}",
        upstream.user,
        upstream.password,
        cluster.host(),
        cluster.port(),
        upstream.db,
        if upstream.query.is_empty() {
            String::new()
        } else {
            format!("?{}", upstream.query)
        }
    );
    std::env::set_var(
        "PGVEIL_TOKEN_KEY",
        compose_default(env.get("PGVEIL_TOKEN_KEY").expect("key")),
    );
    let metrics_addr = {
        let l = TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr")
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut config =
            pgveil::config::ServeConfig::new("127.0.0.1:0".parse().expect("addr"), url, repo().join("rules"));
        config.metrics = Some(metrics_addr);
        let server = pgveil::server::Server::bind(config)
            .await
            .unwrap_or_else(|e| panic!("pgveil with the compose upstream account: {e:#}"));
        let addr = server.local_addr;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        let connect = |user: &str| {
            let url = format!(
                "postgres://{user}:{user}@{}:{}/{db_name}?sslmode=disable",
                addr.ip(),
                addr.port()
            );
            async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("{url}: {e}"));
                tokio::spawn(conn);
                client
            }
        };
        let analyst = connect("analyst").await;
        let rows = analyst
            .simple_query(
                "SELECT id, name, id_number, phone, bank_card, city FROM customers ORDER BY id LIMIT 5",
            )
            .await
            .expect("the demo's first query");
        let phones: Vec<String> = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(3).map(str::to_string),
                _ => None,
            })
            .collect();
        assert_eq!(phones.len(), 5);
        let re = regex::Regex::new(r"^1[3-9]\d\*{4}\d{4}$").expect("regex");
        assert!(phones.iter().all(|p| re.is_match(p)), "masked phones: {phones:?}");
        let err = analyst
            .simple_query("SELECT name, salary FROM employees LIMIT 3")
            .await
            .expect_err("salary is secret");
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err:?}");
        let dba = connect("dba").await;
        let n: i64 = dba
            .query_one("SELECT count(*) FROM customers", &[])
            .await
            .expect("dba reads")
            .get(0);
        assert_eq!(n as usize, COMPOSE_CUSTOMERS);
        // The least-privileged account cannot write, even for the unrestricted role.
        let err = dba
            .simple_query("DELETE FROM orders")
            .await
            .expect_err("pgveil_svc has SELECT only");
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err:?}");

        let body = tokio::task::spawn_blocking(move || http_get(metrics_addr, "/metrics"))
            .await
            .expect("join");
        assert!(
            body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
            "{body}"
        );
        assert!(
            body.contains("pgveil_"),
            "Prometheus text with pgveil metrics: {body}"
        );
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    });
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("metrics on {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn compose_urls_parse() {
    // The helpers above judge the real files; make sure they read what they claim.
    let u = parse_pg_url("postgres://svc:pw@seller-db:5432/seller?sslmode=disable");
    assert_eq!(
        (
            u.user.as_str(),
            u.password.as_str(),
            u.host.as_str(),
            u.port,
            u.db.as_str(),
            u.query.as_str()
        ),
        ("svc", "pw", "seller-db", 5432, "seller", "sslmode=disable")
    );
    assert_eq!(compose_default("${PGVEIL_TOKEN_KEY:-abc}"), "abc");
    assert_eq!(compose_default("plain"), "plain");
    assert_eq!(port_of("0.0.0.0:9187"), 9187);
    let svc: Value = serde_json::json!({"ports": ["127.0.0.1:6432:6432", "9187:9187", "9090"], "volumes": ["./rules:/etc/pgveil/rules:ro", "data:/var/lib"]});
    assert_eq!(published(&svc), vec![(6432, 6432), (9187, 9187), (9090, 9090)]);
    assert_eq!(
        bind_mounts(&svc),
        vec![("./rules".to_string(), "/etc/pgveil/rules".to_string())]
    );
}
