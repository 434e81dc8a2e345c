//! Throwaway PostgreSQL clusters for the integration tests, the demo and the benchmarks.
//!
//! [`Cluster::start`] runs `initdb` into a fresh temporary directory, starts the server on a free
//! TCP port of 127.0.0.1 (and a unix socket in the same directory) and hands back URLs that
//! tokio-postgres and libpq both accept. Dropping the [`Cluster`] stops the server
//! (`pg_ctl stop -m immediate`) and removes the directory, also when a test panics.
//!
//! Invariants:
//! - Every cluster is independent: its own directory, port, socket and watchdog, so tests running
//!   in parallel threads of one process never share server state.
//! - A cluster never outlives the process that started it. Drop is not enough (a test binary that
//!   is killed, or a cluster kept in a `static`, never runs it), so each cluster has a *watchdog*:
//!   a tiny `sh` child in its own process group that blocks reading a pipe whose only writer is
//!   this process. When the process exits for any reason, the kernel closes the write end, the
//!   read returns EOF, and the watchdog runs `pg_ctl stop -m immediate` and `rm -rf` on the
//!   directory. A pipe is used rather than polling the parent's pid because it wakes at once, is
//!   immune to pid reuse and zombie parents, and costs no periodic process. Rust opens pipes with
//!   `O_CLOEXEC`, so no other child (postgres itself, other watchdogs) inherits the write end.
//!   The watchdog and the server run in their own process groups, so a Ctrl-C at the terminal
//!   reaches only the test or demo process, which then shuts down in order.
//! - `initdb` refuses to run as root. When the effective uid is 0, the server-side tools
//!   (`initdb`, `pg_ctl`, and so the postmaster) run as the `postgres` OS user via `runuser`, and
//!   the directory is owned by that user. Client tools (`psql`) run as the caller.
//! - Unix-socket connections are always `trust`, whatever [`Auth`] says, so that the
//!   [`Cluster::psql`] helper needs no password; the chosen method applies to TCP connections,
//!   which is what clients of pgveil and pgveil itself use.
use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The exact text of [`ClusterError::NotInstalled`]; tests compare against it.
pub const NOT_INSTALLED_MESSAGE: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found in \
`pg_config --bindir`, PATH or /usr/lib/postgresql/*/bin: install them, e.g. apt-get install postgresql";

/// How TCP clients authenticate to the cluster (`host` lines of pg_hba.conf).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Auth {
    /// No password asked.
    #[default]
    Trust,
    /// Clear-text password over the wire (`password`), verifier stored as SCRAM.
    Password,
    /// MD5 challenge; passwords stored as MD5 (`password_encryption = md5`).
    Md5,
    /// SCRAM-SHA-256 (`password_encryption = scram-sha-256`).
    Scram,
}

/// Options for [`Cluster::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Authentication method for TCP connections.
    pub auth: Auth,
    /// Password of the `postgres` superuser. Defaults to `postgres` when `auth` is not `Trust`.
    pub superuser_password: Option<String>,
    /// Server certificate and key (PEM); turns `ssl = on`.
    pub ssl: Option<(PathBuf, PathBuf)>,
    /// Extra lines appended to postgresql.conf (after ours, so they win).
    pub extra_conf: Vec<String>,
}

/// Why a cluster could not be started or used.
#[derive(thiserror::Error, Debug)]
pub enum ClusterError {
    /// No directory holds initdb, pg_ctl and postgres together.
    #[error("{}", NOT_INSTALLED_MESSAGE)]
    NotInstalled,
    /// Running as root but there is no `postgres` OS user to run the server as.
    #[error(
        "running as root, and initdb refuses root; no OS user `postgres` to run the server as \
         ({detail}): create it, e.g. apt-get install postgresql"
    )]
    NoServiceUser { detail: String },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A PostgreSQL tool exited with a failure status.
    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    /// The server did not come up; `log_tail` is the end of its log.
    #[error("PostgreSQL did not start on port {port} (data dir {data_dir}): {reason}\n--- server log (tail) ---\n{log_tail}")]
    Start {
        port: u16,
        data_dir: String,
        reason: String,
        log_tail: String,
    },
    /// A statement run through [`Cluster::psql`] failed.
    #[error("psql on database `{db}` failed ({status}): {stderr}")]
    Psql {
        db: String,
        status: String,
        stderr: String,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// Ports handed to live clusters of this process, so two clusters started at the same instant
/// in parallel threads never try the same one.
static PORTS_IN_USE: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
/// Makes directory names unique within the process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many times `start` tries a new port when the chosen one was taken meanwhile.
const START_ATTEMPTS: usize = 8;

/// A running throwaway PostgreSQL cluster. See the module documentation.
#[derive(Debug)]
pub struct Cluster {
    /// Directory of initdb, pg_ctl, postgres (and, usually, psql and pgbench).
    bindir: PathBuf,
    /// The temporary directory: holds `data/` and the unix socket; removed on drop.
    root: PathBuf,
    /// The data directory (`root/data`).
    data: PathBuf,
    /// TCP port on 127.0.0.1 (also the socket's port number).
    port: u16,
    /// The superuser's password, when one was set.
    password: Option<String>,
    /// `Some` when we run as root and must run server tools as the `postgres` OS user.
    run_as: Option<ServiceUser>,
    /// The watchdog child; its stdin is the pipe whose EOF tells it to clean up.
    watchdog: Option<Child>,
}

/// The OS user the server runs as when we are root.
#[derive(Debug, Clone)]
struct ServiceUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl Cluster {
    /// Starts a cluster with trust authentication.
    pub fn start() -> Result<Cluster, ClusterError> {
        Cluster::start_with(ClusterOptions::default())
    }

    /// Starts a cluster with the given options.
    pub fn start_with(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        let bindir = find_bindir()?;
        let run_as = service_user()?;
        let root = make_root_dir(run_as.as_ref())?;
        let password = match (&opts.superuser_password, opts.auth) {
            (Some(p), _) => Some(p.clone()),
            (None, Auth::Trust) => None,
            (None, _) => Some("postgres".to_string()),
        };
        let mut cluster = Cluster {
            bindir,
            data: root.join("data"),
            root,
            port: 0,
            password,
            run_as,
            watchdog: None,
        };
        // From here on, any early return drops `cluster`, which cleans up what exists.
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        cluster.initdb()?;
        cluster.configure(&opts)?;
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let port = reserve_port()?;
            cluster.port = port;
            cluster.write_port_conf()?;
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    cluster.store_password_as_configured(opts.auth)?;
                    return Ok(cluster);
                }
                Err(e) => {
                    let collided = matches!(&e, ClusterError::Start { log_tail, .. }
                        if log_tail.contains("could not bind") || log_tail.contains("already in use"));
                    release_port(port);
                    cluster.port = 0;
                    if !collided {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ClusterError::Start {
            port: 0,
            data_dir: cluster.data.display().to_string(),
            reason: "no attempt made".into(),
            log_tail: String::new(),
        }))
    }

    /// One cluster for the whole process (trust auth), started on first use. It is never
    /// dropped: its watchdog stops and removes it when the process exits. For tests that need
    /// no server-level isolation; each should work in its own database ([`Cluster::create_unique_db`]).
    /// A failed start is not cached: the next call tries again.
    pub fn shared() -> Result<&'static Cluster, ClusterError> {
        static SHARED: Mutex<Option<&'static Cluster>> = Mutex::new(None);
        let mut guard = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = *guard {
            return Ok(c);
        }
        let c: &'static Cluster = Box::leak(Box::new(Cluster::start()?));
        *guard = Some(c);
        Ok(c)
    }

    /// Creates a database named `<prefix>_<n>`, unique within this cluster's life, and returns
    /// its name.
    pub fn create_unique_db(&self, prefix: &str) -> Result<String, ClusterError> {
        static DB_COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!("{prefix}_{}", DB_COUNTER.fetch_add(1, Ordering::Relaxed));
        self.create_db(&name)?;
        Ok(name)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host clients connect to.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The directory holding the unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The data directory (holds `server.log`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The superuser's password, if any.
    pub fn superuser_password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `postgres://postgres[:password]@127.0.0.1:PORT/db`, for tokio-postgres and libpq.
    pub fn url(&self, db: &str) -> String {
        match &self.password {
            Some(p) => self.url_as("postgres", p, db),
            None => format!(
                "postgres://postgres@{}:{}/{}",
                self.host(),
                self.port,
                percent_encode(db)
            ),
        }
    }

    /// `postgres://user:password@127.0.0.1:PORT/db`.
    pub fn url_as(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            percent_encode(user),
            percent_encode(password),
            self.host(),
            self.port,
            percent_encode(db)
        )
    }

    /// Connects with tokio-postgres (no TLS) as the superuser to `db`; the connection is driven
    /// by a task on the current tokio runtime and ends when the client is dropped.
    pub async fn connect(&self, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A client or server tool (`psql`, `pgbench`, `pg_dump`, ...) of the same installation;
    /// falls back to the one on PATH when the installation lacks it.
    pub fn bin(&self, tool: &str) -> PathBuf {
        let own = self.bindir.join(tool);
        if is_executable(&own) {
            return own;
        }
        path_dirs()
            .into_iter()
            .map(|d| d.join(tool))
            .find(|p| is_executable(p))
            .unwrap_or(own)
    }

    /// Creates database `name` (owned by `postgres`).
    pub fn create_db(&self, name: &str) -> Result<(), ClusterError> {
        self.psql("postgres", &format!("CREATE DATABASE {}", quote_ident(name)))
            .map(|_| ())
    }

    /// Runs `sql` with `psql -X -q -v ON_ERROR_STOP=1 -At` as the superuser over the unix socket
    /// and returns its standard output (rows `|`-separated, one per line). The script is fed on
    /// standard input, so psql meta-commands (`\copy`, `\d`) work and statements run one by one.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        let script = sql.as_bytes().to_vec();
        self.psql_feed(db, move |w| w.write_all(&script))
    }

    /// Like [`Cluster::psql`], but the script is written by `feed` into psql's standard input
    /// as psql reads it, so a script of any size (the demo data for a million customers) runs
    /// in flat memory.
    pub fn psql_feed<F>(&self, db: &str, feed: F) -> Result<String, ClusterError>
    where
        F: FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
    {
        let conninfo = format!(
            "host='{}' port={} user=postgres dbname='{}'",
            conninfo_escape(&self.root.display().to_string()),
            self.port,
            conninfo_escape(db)
        );
        let psql = self.bin("psql");
        let mut child = Command::new(&psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-d",
                &conninfo,
                "-f",
                "-",
            ])
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGCLIENTENCODING", "UTF8")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("running {}", psql.display())))?;
        // Feed stdin from a thread: a large script and a large result would otherwise deadlock.
        let stdin = child.stdin.take();
        let writer = std::thread::spawn(move || -> io::Result<()> {
            match stdin {
                Some(stdin) => {
                    let mut buffered = io::BufWriter::with_capacity(1 << 16, stdin);
                    feed(&mut buffered)?;
                    buffered.flush()
                }
                None => Ok(()),
            }
        });
        let out = child.wait_with_output().map_err(io_err("waiting for psql"))?;
        let write_result = writer.join();
        // psql's own error explains a broken pipe better than the writer's error does.
        if !out.status.success() {
            return Err(ClusterError::Psql {
                db: db.to_string(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
            });
        }
        match write_result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(io_err("writing the script to psql")(e)),
            Err(_) => {
                return Err(ClusterError::Io {
                    context: "writing the script to psql".into(),
                    source: io::Error::other("writer thread panicked"),
                })
            }
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `pg_ctl restart -m fast`: every session is cut, the server comes back on the same port.
    pub fn restart(&self) -> Result<(), ClusterError> {
        let log = self.log_path();
        let out = self.run_server_tool(
            "pg_ctl",
            &[
                "restart".as_ref(),
                "-D".as_ref(),
                self.data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-s".as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
            ],
        )?;
        self.check_started(out, "pg_ctl restart")
    }

    /// `pg_ctl stop -m fast`.
    pub fn stop(&self) -> Result<(), ClusterError> {
        let out = self.run_server_tool(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-D".as_ref(),
                self.data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-s".as_ref(),
            ],
        )?;
        check_status(out, "pg_ctl stop")
    }

    /// Starts the server again after [`Cluster::stop`], on the same port.
    pub fn start_again(&self) -> Result<(), ClusterError> {
        self.pg_ctl_start()
    }

    /// The server log (`data/server.log`).
    pub fn log_path(&self) -> PathBuf {
        self.data.join("server.log")
    }

    /// The last `lines` lines of the server log (empty if there is none yet).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        let log = self.log_path();
        let out = self.run_server_tool(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-D".as_ref(),
                self.data.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-s".as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
            ],
        )?;
        self.check_started(out, "pg_ctl start")
    }

    fn check_started(&self, out: Output, what: &str) -> Result<(), ClusterError> {
        if out.status.success() {
            return Ok(());
        }
        Err(ClusterError::Start {
            port: self.port,
            data_dir: self.data.display().to_string(),
            reason: format!(
                "`{what}` failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim_end(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            ),
            log_tail: self.log_tail(30),
        })
    }

    /// A command that runs server tool `tool`, as the service user when we are root. It gets
    /// its own process group (see the module doc) and the cluster directory as working directory
    /// (the caller's may not be readable by the service user).
    fn server_command(&self, tool: &str) -> Command {
        let path = self.bindir.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", &user.name, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.current_dir(&self.root).process_group(0);
        cmd
    }

    fn run_server_tool(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<Output, ClusterError> {
        self.server_command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(format!("running {tool}")))
    }

    /// The watchdog (see the module doc). It checks three times, a second apart, because the
    /// process may die while an orphaned `pg_ctl start` is still bringing the server up.
    fn spawn_watchdog(&self) -> Result<Child, ClusterError> {
        const SCRIPT: &str = r#"pgctl=$1; data=$2; root=$3; shift 3
trap '' INT HUP TERM PIPE QUIT
while read -r _; do :; done
for attempt in 1 2 3; do
  if [ -f "$data/postmaster.pid" ]; then "$@" "$pgctl" stop -D "$data" -m immediate -w -t 30 >/dev/null 2>&1; fi
  [ "$attempt" = 3 ] || sleep 1
done
rm -rf "$root""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("pgveil-cluster-watchdog")
            .arg(self.bindir.join("pg_ctl"))
            .arg(&self.data)
            .arg(&self.root);
        if let Some(user) = &self.run_as {
            cmd.args(["runuser", "-u", &user.name, "--"]);
        }
        cmd.current_dir(&self.root)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err("spawning the cluster watchdog (sh)"))
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "-D".into(),
            self.data.clone().into(),
            "-U".into(),
            "postgres".into(),
            "-E".into(),
            "UTF8".into(),
            "--locale=C.UTF-8".into(),
            "--auth=trust".into(),
            "--no-sync".into(),
            "--no-instructions".into(),
        ];
        let pwfile = self.root.join("pwfile");
        if let Some(p) = &self.password {
            write_owned(&pwfile, format!("{p}\n").as_bytes(), 0o600, self.run_as.as_ref())?;
            let mut a = std::ffi::OsString::from("--pwfile=");
            a.push(&pwfile);
            args.push(a);
        }
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let out = self.run_server_tool("initdb", &refs);
        let _ = fs::remove_file(&pwfile);
        check_status(out?, "initdb")
    }

    fn configure(&self, opts: &ClusterOptions) -> Result<(), ClusterError> {
        let method = match opts.auth {
            Auth::Trust => "trust",
            Auth::Password => "password",
            Auth::Md5 => "md5",
            Auth::Scram => "scram-sha-256",
        };
        let hba = format!(
            "# Written by pgveil's test cluster: unix socket trusted, TCP per the options.\n\
             local all all trust\n\
             host all all 127.0.0.1/32 {method}\n\
             host all all ::1/128 {method}\n"
        );
        write_owned(
            &self.data.join("pg_hba.conf"),
            hba.as_bytes(),
            0o600,
            self.run_as.as_ref(),
        )?;

        let mut conf = String::from("\n# --- pgveil test cluster ---\n");
        let socket = self.root.display().to_string().replace('\'', "''");
        let _ = writeln!(conf, "listen_addresses = '127.0.0.1'");
        let _ = writeln!(conf, "unix_socket_directories = '{socket}'");
        let _ = writeln!(conf, "include 'pgveil_port.conf'");
        for line in [
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "wal_level = minimal",
            "max_wal_senders = 0",
            "shared_buffers = 16MB",
            "max_connections = 300",
            "log_min_messages = warning",
            "log_line_prefix = '%m [%p] %u@%d '",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
        ] {
            let _ = writeln!(conf, "{line}");
        }
        let encryption = if opts.auth == Auth::Md5 {
            "md5"
        } else {
            "scram-sha-256"
        };
        let _ = writeln!(conf, "password_encryption = '{encryption}'");
        if let Some((cert, key)) = &opts.ssl {
            let cert_bytes = fs::read(cert).map_err(io_err(format!("reading {}", cert.display())))?;
            let key_bytes = fs::read(key).map_err(io_err(format!("reading {}", key.display())))?;
            write_owned(
                &self.data.join("server.crt"),
                &cert_bytes,
                0o600,
                self.run_as.as_ref(),
            )?;
            write_owned(
                &self.data.join("server.key"),
                &key_bytes,
                0o600,
                self.run_as.as_ref(),
            )?;
            let _ = writeln!(conf, "ssl = on");
            let _ = writeln!(conf, "ssl_cert_file = 'server.crt'");
            let _ = writeln!(conf, "ssl_key_file = 'server.key'");
        }
        for line in &opts.extra_conf {
            let _ = writeln!(conf, "{line}");
        }
        let path = self.data.join("postgresql.conf");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        f.write_all(conf.as_bytes())
            .map_err(io_err(format!("writing {}", path.display())))
    }

    /// initdb (PostgreSQL 15 has no `initdb -c`) stores the `--pwfile` password as SCRAM
    /// whatever postgresql.conf says; for MD5 it is set again once `password_encryption = md5`
    /// is in force, so that md5 authentication can succeed.
    fn store_password_as_configured(&self, auth: Auth) -> Result<(), ClusterError> {
        match (&self.password, auth) {
            (Some(p), Auth::Md5) => self
                .psql(
                    "postgres",
                    &format!("ALTER ROLE postgres PASSWORD {}", quote_literal(p)),
                )
                .map(|_| ()),
            _ => Ok(()),
        }
    }

    fn write_port_conf(&self) -> Result<(), ClusterError> {
        write_owned(
            &self.data.join("pgveil_port.conf"),
            format!("port = {}\n", self.port).as_bytes(),
            0o600,
            self.run_as.as_ref(),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The watchdog would do the same on EOF; stop it first so the two never race.
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let pid_file = self.data.join("postmaster.pid");
        if pid_file.exists() {
            let postmaster = postmaster_pid(&pid_file);
            let _ = self.run_server_tool(
                "pg_ctl",
                &[
                    "stop".as_ref(),
                    "-D".as_ref(),
                    self.data.as_os_str(),
                    "-m".as_ref(),
                    "immediate".as_ref(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "30".as_ref(),
                    "-s".as_ref(),
                ],
            );
            // A server too wedged for pg_ctl must still not outlive the test.
            if let Some(pid) = postmaster {
                // SAFETY: kill has no memory-safety preconditions; the pid is the postmaster we
                // started (its pid file is in our private directory).
                unsafe {
                    if libc::kill(pid, 0) == 0 {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        let _ = fs::remove_dir_all(&self.root);
        if self.port != 0 {
            release_port(self.port);
        }
    }
}

fn check_status(out: Output, command: &str) -> Result<(), ClusterError> {
    if out.status.success() {
        return Ok(());
    }
    Err(ClusterError::Command {
        command: command.to_string(),
        status: out.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .trim_end()
        .to_string(),
    })
}

/// Writes `path` with `mode`, owned by the service user when there is one.
fn write_owned(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<&ServiceUser>,
) -> Result<(), ClusterError> {
    fs::write(path, contents).map_err(io_err(format!("writing {}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))?;
    if let Some(u) = owner {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)).map_err(io_err(format!(
            "chown {} to {}",
            path.display(),
            u.name
        )))?;
    }
    Ok(())
}

/// The postmaster's pid: the first line of `postmaster.pid`.
fn postmaster_pid(pid_file: &Path) -> Option<libc::pid_t> {
    let text = fs::read_to_string(pid_file).ok()?;
    text.lines()
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|&p: &libc::pid_t| p > 0)
}

/// Where cluster directories go: `$TMPDIR`, unless the socket path would get too long for
/// `sun_path` (about 107 bytes) or, when the server runs as another user, that user could not
/// reach it (a private `$TMPDIR` of root's); `/tmp` then.
fn base_dir(owner: Option<&ServiceUser>) -> PathBuf {
    let tmp = std::env::temp_dir();
    let too_long = tmp.as_os_str().len() > 60;
    let unreachable = owner.is_some()
        && tmp.ancestors().any(|d| {
            fs::metadata(d)
                .map(|m| m.permissions().mode() & 0o001 == 0)
                .unwrap_or(true)
        });
    if too_long || unreachable {
        PathBuf::from("/tmp")
    } else {
        tmp
    }
}

/// Creates `<base>/pgveil-pg-<pid>-<n>-<nanos>`, mode 0700, owned by the service user.
fn make_root_dir(owner: Option<&ServiceUser>) -> Result<PathBuf, ClusterError> {
    let base = base_dir(owner);
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("pgveil-pg-{}-{n}-{nanos:x}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_err(format!("chmod {}", dir.display())))?;
                if let Some(u) = owner {
                    if let Err(e) = std::os::unix::fs::chown(&dir, Some(u.uid), Some(u.gid)) {
                        let _ = fs::remove_dir(&dir);
                        return Err(io_err(format!("chown {} to {}", dir.display(), u.name))(e));
                    }
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
        }
    }
    Err(ClusterError::Io {
        context: format!("creating a directory under {}", base.display()),
        source: io::Error::other("100 names taken"),
    })
}

/// `Some(postgres user)` when running as root, `None` otherwise.
fn service_user() -> Result<Option<ServiceUser>, ClusterError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, ClusterError> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| ClusterError::NoServiceUser {
                detail: format!("running `id {flag} postgres`: {e}"),
            })?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            return Err(ClusterError::NoServiceUser {
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        text.parse().map_err(|_| ClusterError::NoServiceUser {
            detail: format!("`id {flag} postgres` printed {text:?}, expected a number"),
        })
    };
    Ok(Some(ServiceUser {
        name: "postgres".into(),
        uid: id("-u")?,
        gid: id("-g")?,
    }))
}

/// A free TCP port on 127.0.0.1, not held by another cluster of this process.
fn reserve_port() -> Result<u16, ClusterError> {
    for _ in 0..50 {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(io_err("binding 127.0.0.1:0 to find a free port"))?;
        let port = listener
            .local_addr()
            .map_err(io_err("reading the bound port"))?
            .port();
        drop(listener);
        let mut guard = PORTS_IN_USE.lock().unwrap_or_else(|p| p.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(ClusterError::Io {
        context: "finding a free port".into(),
        source: io::Error::other("50 tries gave ports already in use by this process"),
    })
}

fn release_port(port: u16) {
    let mut guard = PORTS_IN_USE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(set) = guard.as_mut() {
        set.remove(&port);
    }
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// Where [`find_bindir`] looks, in order: `$PGVEIL_PG_BINDIR`, `pg_config --bindir`,
/// `/usr/lib/postgresql/*/bin` from the highest version down, then `PATH`.
pub fn default_search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("PGVEIL_PG_BINDIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !s.is_empty() {
            dirs.push(PathBuf::from(s));
        }
    }
    let mut versions: Vec<(Vec<u64>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect();
            (key, e.path().join("bin"))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    dirs.extend(versions.into_iter().map(|(_, p)| p));
    dirs.extend(path_dirs());
    dirs
}

/// The PostgreSQL server installation to use: see [`default_search_dirs`].
pub fn find_bindir() -> Result<PathBuf, ClusterError> {
    find_bindir_in(&default_search_dirs())
}

/// The first of `dirs` holding `initdb`, `pg_ctl` and `postgres` together. When they are
/// symlinks (e.g. `/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb`), the directory
/// they point into is returned instead, so that [`Cluster::bin`] finds psql and pgbench of the
/// same installation. [`ClusterError::NotInstalled`] when none qualifies.
pub fn find_bindir_in(dirs: &[PathBuf]) -> Result<PathBuf, ClusterError> {
    let complete = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|t| is_executable(&d.join(t)))
    };
    for d in dirs {
        if !complete(d) {
            continue;
        }
        if let Some(real) = fs::canonicalize(d.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            if complete(&real) {
                return Ok(real);
            }
        }
        return Ok(d.clone());
    }
    Err(ClusterError::NotInstalled)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL user, password, db).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Escapes a value for a single-quoted libpq conninfo value.
fn conninfo_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// Single-quotes an SQL string literal (standard_conforming_strings is on).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Double-quotes an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(percent_encode("a-b.c_d~9"), "a-b.c_d~9");
        assert_eq!(percent_encode("p@ss:w/d"), "p%40ss%3Aw%2Fd");
        assert_eq!(percent_encode("库"), "%E5%BA%93");
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }
}
