//! Typed views of the backend (server -> client) messages pgveil reads or writes.
use bytes::{BufMut, BytesMut};

use super::{Body, BodyWriter, Frame, WireError};

pub const AUTHENTICATION: u8 = b'R';
pub const PARAMETER_STATUS: u8 = b'S';
pub const BACKEND_KEY_DATA: u8 = b'K';
pub const READY_FOR_QUERY: u8 = b'Z';
pub const ROW_DESCRIPTION: u8 = b'T';
pub const DATA_ROW: u8 = b'D';
pub const ERROR_RESPONSE: u8 = b'E';
pub const NOTICE_RESPONSE: u8 = b'N';
pub const COMMAND_COMPLETE: u8 = b'C';
pub const EMPTY_QUERY: u8 = b'I';
pub const PORTAL_SUSPENDED: u8 = b's';
pub const PARSE_COMPLETE: u8 = b'1';
pub const BIND_COMPLETE: u8 = b'2';
pub const CLOSE_COMPLETE: u8 = b'3';
pub const NO_DATA: u8 = b'n';
pub const PARAMETER_DESCRIPTION: u8 = b't';
pub const COPY_IN: u8 = b'G';
pub const COPY_OUT: u8 = b'H';
pub const COPY_BOTH: u8 = b'W';
pub const COPY_DATA: u8 = b'd';
pub const COPY_DONE: u8 = b'c';
pub const NOTIFICATION: u8 = b'A';
pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';

/// An Authentication request, by its code.
#[derive(Debug, PartialEq, Eq)]
pub enum Auth<'a> {
    Ok,
    Cleartext,
    Md5 { salt: [u8; 4] },
    Sasl { mechanisms: Vec<&'a str> },
    SaslContinue(&'a [u8]),
    SaslFinal(&'a [u8]),
    Other(i32),
}

pub fn decode_auth(f: &Frame) -> Result<Auth<'_>, WireError> {
    let mut b = Body::new("Authentication", f.body());
    let code = b.i32()?;
    let a = match code {
        0 => Auth::Ok,
        3 => Auth::Cleartext,
        5 => {
            let s = b.bytes(4)?;
            Auth::Md5 {
                salt: [s[0], s[1], s[2], s[3]],
            }
        }
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let m = b.cstr()?;
                if m.is_empty() {
                    break;
                }
                mechanisms.push(m);
            }
            Auth::Sasl { mechanisms }
        }
        11 => Auth::SaslContinue(b.rest()),
        12 => Auth::SaslFinal(b.rest()),
        other => {
            b.rest();
            Auth::Other(other)
        }
    };
    b.finish()?;
    Ok(a)
}

pub fn encode_auth(out: &mut BytesMut, code: i32, data: &[u8]) {
    let mut w = BodyWriter::new(out, AUTHENTICATION);
    w.i32(code).bytes(data);
    w.finish();
}

pub fn decode_parameter_status(f: &Frame) -> Result<(&str, &str), WireError> {
    let mut b = Body::new("ParameterStatus", f.body());
    let k = b.cstr()?;
    let v = b.cstr()?;
    b.finish()?;
    Ok((k, v))
}

pub fn encode_parameter_status(out: &mut BytesMut, k: &str, v: &str) {
    let mut w = BodyWriter::new(out, PARAMETER_STATUS);
    w.cstr(k).cstr(v);
    w.finish();
}

pub fn decode_backend_key(f: &Frame) -> Result<(i32, i32), WireError> {
    let mut b = Body::new("BackendKeyData", f.body());
    let pid = b.i32()?;
    let secret = b.i32()?;
    b.finish()?;
    Ok((pid, secret))
}

pub fn encode_backend_key(out: &mut BytesMut, pid: i32, secret: i32) {
    let mut w = BodyWriter::new(out, BACKEND_KEY_DATA);
    w.i32(pid).i32(secret);
    w.finish();
}

pub fn encode_ready(out: &mut BytesMut, status: u8) {
    let mut w = BodyWriter::new(out, READY_FOR_QUERY);
    w.u8(status);
    w.finish();
}

pub fn decode_ready(f: &Frame) -> Result<u8, WireError> {
    let mut b = Body::new("ReadyForQuery", f.body());
    let s = b.u8()?;
    b.finish()?;
    Ok(s)
}

pub fn encode_negotiate_version(out: &mut BytesMut, minor: i32, unsupported: &[&str]) {
    let mut w = BodyWriter::new(out, NEGOTIATE_PROTOCOL_VERSION);
    w.i32(196608 + minor).i32(unsupported.len() as i32);
    for o in unsupported {
        w.cstr(o);
    }
    w.finish();
}

/// One field of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub table_oid: u32,
    pub attnum: i16,
    pub type_oid: u32,
    pub type_len: i16,
    pub typmod: i32,
    pub format: i16,
}

pub fn decode_row_description(f: &Frame) -> Result<Vec<Field>, WireError> {
    let mut b = Body::new("RowDescription", f.body());
    let n = b.count16()?;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        fields.push(Field {
            name: b.cstr()?.to_string(),
            table_oid: b.i32()? as u32,
            attnum: b.i16()?,
            type_oid: b.i32()? as u32,
            type_len: b.i16()?,
            typmod: b.i32()?,
            format: b.i16()?,
        });
    }
    b.finish()?;
    Ok(fields)
}

/// The value ranges of a DataRow body: `Some((start, end))` into the body, `None` for NULL.
pub fn data_row_ranges(body: &[u8], out: &mut Vec<Option<(usize, usize)>>) -> Result<(), WireError> {
    out.clear();
    let mut b = Body::new("DataRow", body);
    let n = b.count16()?;
    for _ in 0..n {
        let before = body.len() - b.remaining();
        match b.value()? {
            None => out.push(None),
            Some(v) => out.push(Some((before + 4, before + 4 + v.len()))),
        }
    }
    b.finish()
}

/// Starts a DataRow of `n` columns; values are appended with [`put_value`], then
/// [`finish_data_row`] patches the length.
pub fn start_data_row(out: &mut BytesMut, n: u16) -> usize {
    out.put_u8(DATA_ROW);
    let start = out.len();
    out.put_i32(0);
    out.put_u16(n);
    start
}

pub fn put_value(out: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        None => out.put_i32(-1),
        Some(v) => {
            out.put_i32(v.len() as i32);
            out.put_slice(v);
        }
    }
}

pub fn finish_data_row(out: &mut BytesMut, start: usize) {
    let len = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// The fields of an ErrorResponse or NoticeResponse, by field code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub fields: Vec<(u8, String)>,
}

impl ErrorFields {
    pub fn get(&self, code: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }
    pub fn code(&self) -> &str {
        self.get(b'C').unwrap_or("XX000")
    }
    pub fn message(&self) -> &str {
        self.get(b'M').unwrap_or("")
    }
}

pub fn decode_error(f: &Frame) -> Result<ErrorFields, WireError> {
    let mut b = Body::new("ErrorResponse", f.body());
    let mut fields = Vec::new();
    loop {
        let code = b.u8()?;
        if code == 0 {
            break;
        }
        // Server messages are in the server encoding (UTF-8 is required for upstreams
        // of restricted roles); decode leniently here: this view is only for logging.
        let rest = b.rest();
        let end = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| WireError::malformed("ErrorResponse", "field without NUL"))?;
        fields.push((code, String::from_utf8_lossy(&rest[..end]).into_owned()));
        b = Body::new("ErrorResponse", &rest[end + 1..]);
    }
    b.finish()?;
    Ok(ErrorFields { fields })
}

/// Severity of an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

/// Encodes an ErrorResponse with severity, SQLSTATE, message and optional hint.
pub fn encode_error(out: &mut BytesMut, severity: Severity, code: &str, message: &str, hint: Option<&str>) {
    let sev = match severity {
        Severity::Error => "ERROR",
        Severity::Fatal => "FATAL",
    };
    let mut w = BodyWriter::new(out, ERROR_RESPONSE);
    w.u8(b'S')
        .cstr(sev)
        .u8(b'V')
        .cstr(sev)
        .u8(b'C')
        .cstr(code)
        .u8(b'M')
        .cstr(message);
    if let Some(h) = hint {
        w.u8(b'H').cstr(h);
    }
    w.u8(0);
    w.finish();
}
