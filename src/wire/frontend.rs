//! Typed views of the frontend (client -> server) messages pgveil needs to read or rewrite.
//! Each decoder consumes the body exactly.
use bytes::BytesMut;

use super::{Body, BodyWriter, Frame, WireError};

pub const QUERY: u8 = b'Q';
pub const PARSE: u8 = b'P';
pub const BIND: u8 = b'B';
pub const DESCRIBE: u8 = b'D';
pub const EXECUTE: u8 = b'E';
pub const CLOSE: u8 = b'C';
pub const SYNC: u8 = b'S';
pub const FLUSH: u8 = b'H';
pub const TERMINATE: u8 = b'X';
pub const COPY_DATA: u8 = b'd';
pub const COPY_DONE: u8 = b'c';
pub const COPY_FAIL: u8 = b'f';
pub const FUNCTION_CALL: u8 = b'F';
pub const PASSWORD: u8 = b'p';

/// Simple Query: one string, possibly several statements.
pub fn decode_query(f: &Frame) -> Result<&str, WireError> {
    let mut b = Body::new("Query", f.body());
    let sql = b.cstr()?;
    b.finish()?;
    Ok(sql)
}

pub fn encode_query(out: &mut BytesMut, sql: &str) {
    let mut w = BodyWriter::new(out, QUERY);
    w.cstr(sql);
    w.finish();
}

/// Parse: statement name, text, and the raw parameter type list (kept as bytes).
#[derive(Debug)]
pub struct Parse<'a> {
    pub name: &'a str,
    pub sql: &'a str,
    /// `i16 count` followed by the oids, exactly as sent.
    pub param_types: &'a [u8],
}

pub fn decode_parse(f: &Frame) -> Result<Parse<'_>, WireError> {
    let mut b = Body::new("Parse", f.body());
    let name = b.cstr()?;
    let sql = b.cstr()?;
    let start = f.body().len() - b.remaining();
    let n = b.count16()?;
    b.bytes(n * 4)?;
    b.finish()?;
    Ok(Parse {
        name,
        sql,
        param_types: &f.body()[start..],
    })
}

/// A Parse with another text and the same name and parameter types.
pub fn encode_parse(out: &mut BytesMut, name: &str, sql: &str, param_types: &[u8]) {
    let mut w = BodyWriter::new(out, PARSE);
    w.cstr(name).cstr(sql).bytes(param_types);
    w.finish();
}

/// What pgveil keeps of a Bind: names and the result format codes.
#[derive(Debug)]
pub struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    /// Result-column format codes: empty = all text, one = all columns, else per column.
    pub result_formats: Vec<i16>,
}

pub fn decode_bind(f: &Frame) -> Result<Bind<'_>, WireError> {
    let mut b = Body::new("Bind", f.body());
    let portal = b.cstr()?;
    let statement = b.cstr()?;
    let nf = b.count16()?;
    b.bytes(nf * 2)?;
    let np = b.count16()?;
    for _ in 0..np {
        b.value()?;
    }
    let nr = b.count16()?;
    let mut result_formats = Vec::with_capacity(nr);
    for _ in 0..nr {
        result_formats.push(b.i16()?);
    }
    b.finish()?;
    Ok(Bind {
        portal,
        statement,
        result_formats,
    })
}

/// Describe or Close: a kind ('S' statement, 'P' portal) and a name.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub kind: u8,
    pub name: &'a str,
}

pub fn decode_target(f: &Frame) -> Result<Target<'_>, WireError> {
    let what = if f.tag == DESCRIBE { "Describe" } else { "Close" };
    let mut b = Body::new(what, f.body());
    let kind = b.u8()?;
    if kind != b'S' && kind != b'P' {
        return Err(WireError::malformed(
            what,
            format!("kind {:?}, expected 'S' or 'P'", kind as char),
        ));
    }
    let name = b.cstr()?;
    b.finish()?;
    Ok(Target { kind, name })
}

pub fn encode_describe(out: &mut BytesMut, kind: u8, name: &str) {
    let mut w = BodyWriter::new(out, DESCRIBE);
    w.u8(kind).cstr(name);
    w.finish();
}

/// Execute: portal and row limit (0 = all).
pub fn decode_execute(f: &Frame) -> Result<(&str, i32), WireError> {
    let mut b = Body::new("Execute", f.body());
    let portal = b.cstr()?;
    let max_rows = b.i32()?;
    b.finish()?;
    Ok((portal, max_rows))
}

/// A message with an empty body (Sync, Flush, Terminate, CopyDone).
pub fn check_empty(f: &Frame, what: &'static str) -> Result<(), WireError> {
    Body::new(what, f.body()).finish()
}

/// SASLInitialResponse: mechanism and the initial client response.
pub fn decode_sasl_initial(f: &Frame) -> Result<(&str, Option<&[u8]>), WireError> {
    let mut b = Body::new("SASLInitialResponse", f.body());
    let mech = b.cstr()?;
    let data = b.value()?;
    b.finish()?;
    Ok((mech, data))
}

/// PasswordMessage (MD5 / cleartext): one string.
pub fn decode_password(f: &Frame) -> Result<&str, WireError> {
    let mut b = Body::new("PasswordMessage", f.body());
    let p = b.cstr()?;
    b.finish()?;
    Ok(p)
}
