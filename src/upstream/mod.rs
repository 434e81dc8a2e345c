//! The connection from pgveil to the real PostgreSQL: TCP, optional TLS (`sslmode`),
//! startup and authentication (trust, cleartext, MD5, SCRAM-SHA-256), up to the first
//! ReadyForQuery. After that the session owns the stream.
//!
//! SCRAM goes through [`scram::ScramClient`], which caches the PBKDF2 result per
//! (password, salt, iterations) so that only the first login with a password pays for it.
pub mod scram;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use self::scram::ScramClient;
use crate::net::{self, Stream};
use crate::wire::backend::{self, Auth, ErrorFields};
use crate::wire::frontend::PASSWORD;
use crate::wire::{startup, BodyWriter, FrameReader, WireError};

/// `sslmode` as libpq reads it (verify-ca is treated as verify-full: rustls always checks
/// the host name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

/// Where and how to reach the upstream. Built from `--upstream`.
#[derive(Clone)]
pub struct UpstreamConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for UpstreamConfig {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.display())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("invalid upstream URL: {0}")]
    Url(String),
    #[error("cannot connect to upstream {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("upstream {addr} did not answer within {secs} s")]
    Timeout { addr: String, secs: u64 },
    #[error("TLS to upstream: {0}")]
    Tls(String),
    #[error("upstream refused: {} ({})", .0.message(), .0.code())]
    Refused(ErrorFields),
    #[error("upstream asks for an authentication method pgveil does not support (code {0})")]
    UnsupportedAuth(i32),
    #[error("upstream asks for a password but none is configured for user {0:?}")]
    NoPassword(String),
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl UpstreamConfig {
    /// Parses `postgres://user:pass@host:port/db?sslmode=...&sslrootcert=...`.
    pub fn from_url(url: &str) -> Result<UpstreamConfig, UpstreamError> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut sslmode = SslMode::Prefer;
        let mut sslrootcert = None;
        let mut rest = Vec::new();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "sslmode" => {
                    sslmode = match v {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" | "verify-full" => SslMode::VerifyFull,
                        other => return Err(UpstreamError::Url(format!("unknown sslmode {other:?}"))),
                    }
                }
                "sslrootcert" => sslrootcert = Some(PathBuf::from(v)),
                _ => rest.push(kv),
            }
        }
        let stripped = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let cfg: tokio_postgres::Config = stripped.parse().map_err(|e| UpstreamError::Url(format!("{e}")))?;
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[allow(unreachable_patterns)]
            Some(_) => return Err(UpstreamError::Url("only TCP hosts are supported".into())),
            None => "localhost".to_string(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let user = cfg.get_user().unwrap_or("postgres").to_string();
        let password = cfg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let dbname = cfg.get_dbname().unwrap_or(&user).to_string();
        let tls = match sslmode {
            SslMode::Disable => None,
            SslMode::Prefer | SslMode::Require => {
                Some(net::client_config(None).map_err(|e| UpstreamError::Tls(e.to_string()))?)
            }
            SslMode::VerifyFull => {
                let root = sslrootcert.as_deref().ok_or_else(|| {
                    UpstreamError::Url(
                        "sslmode=verify-full needs sslrootcert=FILE (the CA that signed the server)".into(),
                    )
                })?;
                Some(net::client_config(Some(root)).map_err(|e| UpstreamError::Tls(e.to_string()))?)
            }
        };
        Ok(UpstreamConfig {
            host,
            port,
            user,
            password,
            dbname,
            sslmode,
            sslrootcert,
            tls,
        })
    }

    /// `user@host:port/db`, without the password, for messages and logs.
    pub fn display(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Opens a TCP connection and negotiates TLS as `sslmode` says.
    pub async fn open(&self) -> Result<Stream, UpstreamError> {
        let addr = self.addr();
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| UpstreamError::Timeout {
                addr: addr.clone(),
                secs: CONNECT_TIMEOUT.as_secs(),
            })?
            .map_err(|source| UpstreamError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let mut tcp = tcp;
        let mut req = BytesMut::new();
        startup::encode_ssl_request(&mut req);
        tcp.write_all(&req)
            .await
            .map_err(|source| UpstreamError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer)
            .await
            .map_err(|source| UpstreamError::Connect {
                addr: addr.clone(),
                source,
            })?;
        match answer[0] {
            b'S' => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| UpstreamError::Tls(format!("server name {:?}: {e}", self.host)))?;
                let tls = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| UpstreamError::Tls(e.to_string()))?;
                Ok(Stream::Client(Box::new(tls)))
            }
            b'N' if self.sslmode == SslMode::Prefer => Ok(Stream::Plain(tcp)),
            b'N' => Err(UpstreamError::Tls(format!(
                "upstream {addr} does not support TLS (sslmode requires it)"
            ))),
            other => Err(UpstreamError::Protocol(format!(
                "unexpected answer {:?} to SSLRequest",
                other as char
            ))),
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An authenticated upstream connection, ready for queries.
pub struct Upstream {
    pub reader: FrameReader<tokio::io::ReadHalf<Stream>>,
    pub writer: tokio::io::WriteHalf<Stream>,
    /// ParameterStatus values sent during startup, in order.
    pub params: Vec<(String, String)>,
    /// The upstream's BackendKeyData, for cancel requests.
    pub backend_key: (i32, i32),
    pub tls: bool,
}

/// Connects as `user` (with `password`) and sends the client's startup parameters
/// (`user` and `database` are set here).
pub async fn connect(
    cfg: &UpstreamConfig,
    user: &str,
    password: Option<&str>,
    params: &[(String, String)],
    max_message: usize,
) -> Result<Upstream, UpstreamError> {
    let stream = cfg.open().await?;
    let tls = stream.is_tls();
    let (r, mut w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r, max_message);
    let mut out = BytesMut::new();
    let mut all = vec![
        ("user".to_string(), user.to_string()),
        ("database".to_string(), cfg.dbname.clone()),
    ];
    all.extend(
        params
            .iter()
            .filter(|(k, _)| k != "user" && k != "database")
            .cloned(),
    );
    startup::encode_startup(&mut out, &all);
    let io = |source| UpstreamError::Connect {
        addr: cfg.addr(),
        source,
    };
    w.write_all(&out).await.map_err(io)?;

    let mut scram: Option<ScramClient> = None;
    let mut params_out = Vec::new();
    let mut key = (0, 0);
    loop {
        let frame = tokio::time::timeout(CONNECT_TIMEOUT, reader.next())
            .await
            .map_err(|_| UpstreamError::Timeout {
                addr: cfg.addr(),
                secs: CONNECT_TIMEOUT.as_secs(),
            })??
            .ok_or_else(|| UpstreamError::Protocol("connection closed during startup".into()))?;
        out.clear();
        match frame.tag {
            backend::AUTHENTICATION => match backend::decode_auth(&frame)? {
                Auth::Ok => {}
                Auth::Cleartext => {
                    let pw = password.ok_or_else(|| UpstreamError::NoPassword(user.to_string()))?;
                    let mut m = BodyWriter::new(&mut out, PASSWORD);
                    m.cstr(pw);
                    m.finish();
                }
                Auth::Md5 { salt } => {
                    let pw = password.ok_or_else(|| UpstreamError::NoPassword(user.to_string()))?;
                    let h = postgres_protocol::authentication::md5_hash(user.as_bytes(), pw.as_bytes(), salt);
                    let mut m = BodyWriter::new(&mut out, PASSWORD);
                    m.cstr(&h);
                    m.finish();
                }
                Auth::Sasl { mechanisms } => {
                    if !mechanisms.contains(&"SCRAM-SHA-256") {
                        return Err(UpstreamError::Protocol(format!(
                            "no supported SASL mechanism in {mechanisms:?}"
                        )));
                    }
                    let pw = password.ok_or_else(|| UpstreamError::NoPassword(user.to_string()))?;
                    // No channel binding (GS2 header `n,,`), as with postgres_protocol's
                    // `ChannelBinding::unsupported()` before.
                    let s = ScramClient::new(pw.as_bytes());
                    let mut m = BodyWriter::new(&mut out, PASSWORD);
                    m.cstr("SCRAM-SHA-256").value(Some(s.message()));
                    m.finish();
                    scram = Some(s);
                }
                Auth::SaslContinue(data) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| UpstreamError::Protocol("SASL continue without start".into()))?;
                    s.update(data)
                        .map_err(|e| UpstreamError::Protocol(format!("SCRAM: {e}")))?;
                    let mut m = BodyWriter::new(&mut out, PASSWORD);
                    m.bytes(s.message());
                    m.finish();
                }
                Auth::SaslFinal(data) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| UpstreamError::Protocol("SASL final without start".into()))?;
                    s.finish(data)
                        .map_err(|e| UpstreamError::Protocol(format!("SCRAM server signature: {e}")))?;
                }
                Auth::Other(code) => return Err(UpstreamError::UnsupportedAuth(code)),
            },
            backend::PARAMETER_STATUS => {
                let (k, v) = backend::decode_parameter_status(&frame)?;
                params_out.push((k.to_string(), v.to_string()));
            }
            backend::BACKEND_KEY_DATA => key = backend::decode_backend_key(&frame)?,
            backend::ERROR_RESPONSE => return Err(UpstreamError::Refused(backend::decode_error(&frame)?)),
            backend::NOTICE_RESPONSE | backend::NEGOTIATE_PROTOCOL_VERSION => {}
            backend::READY_FOR_QUERY => {
                return Ok(Upstream {
                    reader,
                    writer: w,
                    params: params_out,
                    backend_key: key,
                    tls,
                });
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message {:?} during startup",
                    other as char
                )))
            }
        }
        if !out.is_empty() {
            w.write_all(&out).await.map_err(io)?;
        }
    }
}

/// Sends a CancelRequest for an upstream backend on a new connection.
pub async fn cancel(cfg: &UpstreamConfig, pid: i32, secret: i32) -> Result<(), UpstreamError> {
    let mut s = cfg.open().await?;
    let mut out = BytesMut::new();
    startup::encode_cancel(&mut out, pid, secret);
    s.write_all(&out).await.map_err(|source| UpstreamError::Connect {
        addr: cfg.addr(),
        source,
    })?;
    let _ = s.shutdown().await;
    Ok(())
}

/// A tokio-postgres client over pgveil's own connection (same TLS rules as sessions),
/// for the catalog and other internal queries. The connection task is spawned.
pub async fn internal_client(cfg: &UpstreamConfig) -> Result<tokio_postgres::Client, UpstreamError> {
    let stream = cfg.open().await?;
    let mut pg = tokio_postgres::Config::new();
    pg.user(&cfg.user)
        .dbname(&cfg.dbname)
        .application_name("pgveil")
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    if let Some(p) = &cfg.password {
        pg.password(p);
    }
    let (client, conn) =
        pg.connect_raw(stream, tokio_postgres::NoTls)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => UpstreamError::Protocol(format!("{} ({})", db.message(), db.code().code())),
                None => UpstreamError::Protocol(e.to_string()),
            })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "internal upstream connection ended");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        let c =
            UpstreamConfig::from_url("postgres://u:p%40ss@db.example:6543/seller?sslmode=disable").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str(), c.dbname.as_str()),
            ("db.example", 6543, "u", "seller")
        );
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert_eq!(c.sslmode, SslMode::Disable);
        assert!(!format!("{c:?}").contains("p@ss"));
        assert!(UpstreamConfig::from_url("postgres://h/db?sslmode=verify-full").is_err());
        assert!(UpstreamConfig::from_url("postgres://h/db?sslmode=bogus").is_err());
    }
}
