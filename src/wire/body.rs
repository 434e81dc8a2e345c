//! A strict cursor over a message body, and a writer that fills in the length.
use bytes::{BufMut, BytesMut};

use super::WireError;

/// Reads the fields of one message body. Every read checks bounds; [`Body::finish`]
/// checks that nothing is left over.
pub struct Body<'a> {
    what: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Body<'a> {
    pub fn new(what: &'static str, buf: &'a [u8]) -> Body<'a> {
        Body { what, buf, pos: 0 }
    }

    fn err(&self, problem: impl Into<String>) -> WireError {
        WireError::malformed(self.what, problem)
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("body ends before a byte field"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn i16(&mut self) -> Result<i16, WireError> {
        let s = self.bytes(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }

    pub fn i32(&mut self) -> Result<i32, WireError> {
        let s = self.bytes(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(self.err(format!("expected {n} more bytes, got {}", self.remaining())));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A count field (i16) that must not be negative.
    pub fn count16(&mut self) -> Result<usize, WireError> {
        let n = self.i16()?;
        usize::try_from(n).map_err(|_| self.err(format!("negative count {n}")))
    }

    /// A NUL-terminated string that must be valid UTF-8 (the server would reject invalid
    /// UTF-8 in a UTF-8 database; reading it lossily would be a differential).
    pub fn cstr(&mut self) -> Result<&'a str, WireError> {
        let rest = &self.buf[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err("string without terminating NUL"))?;
        let s = std::str::from_utf8(&rest[..end])
            .map_err(|e| self.err(format!("string is not valid UTF-8: {e}")))?;
        self.pos += end + 1;
        Ok(s)
    }

    /// A length-prefixed value (i32; -1 is NULL).
    pub fn value(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| self.err(format!("negative value length {len}")))?;
        self.bytes(len).map(Some)
    }

    /// The rest of the body.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Succeeds only when the whole body was read.
    pub fn finish(self) -> Result<(), WireError> {
        if self.remaining() != 0 {
            return Err(self.err(format!("{} unexpected trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

/// Writes one message: tag, a length placeholder, the fields; `finish` patches the length.
pub struct BodyWriter<'a> {
    out: &'a mut BytesMut,
    start: usize,
}

impl<'a> BodyWriter<'a> {
    /// Starts a tagged message (tag 0 = untagged, for startup-phase messages).
    pub fn new(out: &'a mut BytesMut, tag: u8) -> BodyWriter<'a> {
        if tag != 0 {
            out.put_u8(tag);
        }
        let start = out.len();
        out.put_i32(0);
        BodyWriter { out, start }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.out.put_u8(v);
        self
    }
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.out.put_i16(v);
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.out.put_i32(v);
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.out.put_slice(v);
        self
    }
    pub fn cstr(&mut self, s: &str) -> &mut Self {
        self.out.put_slice(s.as_bytes());
        self.out.put_u8(0);
        self
    }
    /// A length-prefixed value, `None` as -1.
    pub fn value(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.out.put_i32(-1),
            Some(v) => {
                self.out.put_i32(v.len() as i32);
                self.out.put_slice(v);
            }
        }
        self
    }
    pub fn finish(self) {
        let len = (self.out.len() - self.start) as i32;
        self.out[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
    }
}
