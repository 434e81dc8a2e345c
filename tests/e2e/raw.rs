//! A minimal raw-protocol client for tests that need exact control of the bytes
//! (pipelines, row limits, malformed messages, notifications).
#![allow(dead_code)]
use bytes::BytesMut;
use pgveil::wire::backend;
use pgveil::wire::frame::Frame;
use pgveil::wire::{startup, BodyWriter, FrameReader};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub struct Raw {
    pub reader: FrameReader<tokio::net::tcp::OwnedReadHalf>,
    pub w: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    /// Connects and authenticates (trust or SCRAM), up to the first ReadyForQuery.
    pub async fn connect(addr: &str, user: &str, password: &str, db: &str) -> Result<Raw, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (r, w) = tcp.into_split();
        let mut raw = Raw {
            reader: FrameReader::new(r, 1 << 30),
            w,
        };
        let mut out = BytesMut::new();
        startup::encode_startup(
            &mut out,
            &[("user".into(), user.into()), ("database".into(), db.into())],
        );
        raw.send(&out).await;
        let mut scram = None;
        loop {
            let f = raw.recv().await.ok_or("closed during startup")?;
            match f.tag {
                b'R' => match backend::decode_auth(&f).map_err(|e| e.to_string())? {
                    backend::Auth::Ok => {}
                    backend::Auth::Sasl { .. } => {
                        let s = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                        let mut out = BytesMut::new();
                        let mut m = BodyWriter::new(&mut out, b'p');
                        m.cstr("SCRAM-SHA-256").value(Some(s.message()));
                        m.finish();
                        raw.send(&out).await;
                        scram = Some(s);
                    }
                    backend::Auth::SaslContinue(d) => {
                        let s = scram.as_mut().ok_or("no scram")?;
                        s.update(d).map_err(|e| e.to_string())?;
                        let mut out = BytesMut::new();
                        let mut m = BodyWriter::new(&mut out, b'p');
                        m.bytes(s.message());
                        m.finish();
                        raw.send(&out).await;
                    }
                    backend::Auth::SaslFinal(d) => {
                        scram
                            .as_mut()
                            .ok_or("no scram")?
                            .finish(d)
                            .map_err(|e| e.to_string())?;
                    }
                    other => return Err(format!("unsupported auth {other:?}")),
                },
                b'E' => {
                    return Err(backend::decode_error(&f)
                        .map_err(|e| e.to_string())?
                        .message()
                        .to_string())
                }
                b'Z' => return Ok(raw),
                _ => {}
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.expect("send");
    }

    pub async fn recv(&mut self) -> Option<Frame> {
        tokio::time::timeout(std::time::Duration::from_secs(20), self.reader.next())
            .await
            .expect("reply within 20 s")
            .ok()
            .flatten()
    }

    /// Reads until `n` ReadyForQuery; returns the tags, with SQLSTATEs of errors as `E:code`.
    pub async fn until_ready(&mut self, n: usize) -> Vec<String> {
        let mut tags = Vec::new();
        let mut seen = 0;
        while seen < n {
            let Some(f) = self.recv().await else {
                tags.push("EOF".into());
                break;
            };
            match f.tag {
                b'E' => tags.push(format!("E:{}", backend::decode_error(&f).expect("error").code())),
                b'Z' => {
                    seen += 1;
                    tags.push("Z".into())
                }
                b'S' | b'N' => {}
                t => tags.push((t as char).to_string()),
            }
        }
        tags
    }
}

pub fn parse(out: &mut BytesMut, name: &str, sql: &str) {
    let mut m = BodyWriter::new(out, b'P');
    m.cstr(name).cstr(sql).i16(0);
    m.finish();
}

pub fn bind(out: &mut BytesMut, portal: &str, stmt: &str) {
    let mut m = BodyWriter::new(out, b'B');
    m.cstr(portal).cstr(stmt).i16(0).i16(0).i16(0);
    m.finish();
}

pub fn describe(out: &mut BytesMut, kind: u8, name: &str) {
    let mut m = BodyWriter::new(out, b'D');
    m.u8(kind).cstr(name);
    m.finish();
}

pub fn execute(out: &mut BytesMut, portal: &str, max_rows: i32) {
    let mut m = BodyWriter::new(out, b'E');
    m.cstr(portal).i32(max_rows);
    m.finish();
}

pub fn sync(out: &mut BytesMut) {
    BodyWriter::new(out, b'S').finish();
}

pub fn query(out: &mut BytesMut, sql: &str) {
    let mut m = BodyWriter::new(out, b'Q');
    m.cstr(sql);
    m.finish();
}
