//! Startup-phase packets: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.
use bytes::BytesMut;

use super::{Body, BodyWriter, WireError};

pub const SSL_REQUEST: i32 = 80877103;
pub const GSSENC_REQUEST: i32 = 80877104;
pub const CANCEL_REQUEST: i32 = 80877102;

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel {
        pid: i32,
        secret: i32,
    },
    /// Protocol 3.minor with its parameters, in the order sent.
    Startup {
        minor: u16,
        params: Vec<(String, String)>,
    },
}

impl StartupPacket {
    /// Decodes the body of an untagged startup packet (after the length).
    pub fn decode(body: &[u8]) -> Result<StartupPacket, WireError> {
        let mut b = Body::new("startup packet", body);
        let code = b.i32()?;
        match code {
            SSL_REQUEST => {
                b.finish()?;
                Ok(StartupPacket::SslRequest)
            }
            GSSENC_REQUEST => {
                b.finish()?;
                Ok(StartupPacket::GssEncRequest)
            }
            CANCEL_REQUEST => {
                let pid = b.i32()?;
                let secret = b.i32()?;
                b.finish()?;
                Ok(StartupPacket::Cancel { pid, secret })
            }
            _ if (code >> 16) == 3 => {
                let minor = (code & 0xffff) as u16;
                let mut params = Vec::new();
                loop {
                    let k = b.cstr()?;
                    if k.is_empty() {
                        break;
                    }
                    let v = b.cstr()?;
                    params.push((k.to_string(), v.to_string()));
                }
                b.finish()?;
                Ok(StartupPacket::Startup { minor, params })
            }
            _ => Err(WireError::malformed(
                "startup packet",
                format!("unsupported protocol {}.{}", code >> 16, code & 0xffff),
            )),
        }
    }
}

/// Encodes a protocol 3.0 StartupMessage.
pub fn encode_startup(out: &mut BytesMut, params: &[(String, String)]) {
    let mut w = BodyWriter::new(out, 0);
    w.i32(196608);
    for (k, v) in params {
        w.cstr(k).cstr(v);
    }
    w.u8(0);
    w.finish();
}

/// Encodes a CancelRequest.
pub fn encode_cancel(out: &mut BytesMut, pid: i32, secret: i32) {
    let mut w = BodyWriter::new(out, 0);
    w.i32(CANCEL_REQUEST).i32(pid).i32(secret);
    w.finish();
}

/// Encodes an SSLRequest.
pub fn encode_ssl_request(out: &mut BytesMut) {
    let mut w = BodyWriter::new(out, 0);
    w.i32(SSL_REQUEST);
    w.finish();
}
