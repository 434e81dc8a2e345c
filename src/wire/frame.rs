//! Framing: cutting a byte stream into whole messages without interpreting them.
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::WireError;

/// One whole tagged message, exactly as received: `bytes[0]` is the tag, `bytes[1..5]` the
/// length, the rest the body. Forwarding `bytes` forwards the message byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub bytes: Bytes,
}

impl Frame {
    /// The body, after tag and length.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }
}

/// How much a read asks for at once: large enough to batch many small messages per
/// system call, small enough that a slow peer holds back the other side (back-pressure).
const READ_CHUNK: usize = 64 * 1024;

/// Reads tagged messages from a stream, buffering at most one partial message beyond
/// what has been read.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `max` bounds the declared length of a message before anything is allocated for it.
    pub fn new(inner: R, max: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            max,
        }
    }

    /// With bytes already read (e.g. what followed the startup packet).
    pub fn with_buffer(inner: R, max: usize, buf: BytesMut) -> Self {
        FrameReader { inner, buf, max }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Whether bytes of a next message are already buffered.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next whole message from the buffer, without reading. `Ok(None)`: need more bytes.
    pub fn try_next(&mut self) -> Result<Option<Frame>, WireError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let tag = self.buf[0];
        let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        if len < 4 {
            return Err(WireError::BadLength {
                tag: tag as char,
                len,
            });
        }
        let total = len as usize + 1;
        if total > self.max {
            return Err(WireError::TooLarge {
                tag: tag as char,
                len: total,
                max: self.max,
            });
        }
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let bytes = self.buf.split_to(total).freeze();
        Ok(Some(Frame { tag, bytes }))
    }

    /// The next whole message, reading as needed. `Ok(None)` on a clean end of stream
    /// between messages; [`WireError::UnexpectedEof`] in the middle of one.
    pub async fn next(&mut self) -> Result<Option<Frame>, WireError> {
        loop {
            if let Some(f) = self.try_next()? {
                return Ok(Some(f));
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(READ_CHUNK);
            }
            let n = self.inner.read_buf(&mut self.buf).await?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(WireError::UnexpectedEof)
                };
            }
        }
    }
}

/// Reads an untagged startup-phase packet (length, then body): returns the body.
pub async fn read_startup_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Bytes>, WireError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len);
    if len < 8 {
        return Err(WireError::BadLength { tag: '\0', len });
    }
    let len = len as usize;
    if len > max.min(10_000) {
        return Err(WireError::TooLarge {
            tag: '\0',
            len,
            max: max.min(10_000),
        });
    }
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::UnexpectedEof
        } else {
            e.into()
        }
    })?;
    Ok(Some(Bytes::from(body)))
}
