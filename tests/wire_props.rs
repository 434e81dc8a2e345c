//! Property tests of the protocol decoder: arbitrary bytes never panic, framing follows the
//! declared lengths exactly, and what pgveil encodes it decodes back unchanged.
use bytes::BytesMut;
use pgveil::wire::frame::Frame;
use pgveil::wire::startup::StartupPacket;
use pgveil::wire::{backend, frontend, BodyWriter, FrameReader};
use proptest::prelude::*;

/// A tagged message. (BodyWriter treats tag 0 as "untagged", for startup packets, so the
/// tag byte is written here by hand: any byte is a valid tag for framing.)
fn frame(tag: u8, body: &[u8]) -> Frame {
    let mut b = BytesMut::new();
    b.extend_from_slice(&[tag]);
    let mut w = BodyWriter::new(&mut b, 0);
    w.bytes(body);
    w.finish();
    Frame {
        tag,
        bytes: b.freeze(),
    }
}

/// A reader that hands out at most `chunk` bytes per read, to exercise every way a
/// message can be split across reads.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl tokio::io::AsyncRead for Chunked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len() - self.pos).min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        std::task::Poll::Ready(Ok(()))
    }
}

/// Splits a byte stream with FrameReader, feeding it in reads of at most `chunk` bytes.
fn split_frames(stream: &[u8], chunk: usize, max: usize) -> Result<Vec<Frame>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut r = FrameReader::new(
            Chunked {
                data: stream.to_vec(),
                pos: 0,
                chunk: chunk.max(1),
            },
            max,
        );
        let mut out = Vec::new();
        loop {
            match r.next().await {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return Ok(out),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(tag in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let f = frame(tag, &body);
        let _ = frontend::decode_query(&f);
        let _ = frontend::decode_parse(&f);
        let _ = frontend::decode_bind(&f);
        let _ = frontend::decode_target(&f);
        let _ = frontend::decode_execute(&f);
        let _ = frontend::decode_sasl_initial(&f);
        let _ = frontend::decode_password(&f);
        let _ = backend::decode_auth(&f);
        let _ = backend::decode_row_description(&f);
        let _ = backend::decode_error(&f);
        let _ = backend::decode_parameter_status(&f);
        let _ = backend::decode_backend_key(&f);
        let mut ranges = Vec::new();
        if backend::data_row_ranges(&body, &mut ranges).is_ok() {
            for (a, b) in ranges.into_iter().flatten() {
                prop_assert!(a <= b && b <= body.len());
            }
        }
        let _ = StartupPacket::decode(&body);
    }

    #[test]
    fn framing_follows_declared_lengths(
        msgs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20),
        chunk in 1usize..700,
    ) {
        let mut stream = Vec::new();
        for (t, b) in &msgs {
            stream.extend_from_slice(&frame(*t, b).bytes);
        }
        let frames = split_frames(&stream, chunk, 1 << 20).map_err(TestCaseError::fail)?;
        prop_assert_eq!(frames.len(), msgs.len());
        for (f, (t, b)) in frames.iter().zip(&msgs) {
            prop_assert_eq!(f.tag, *t);
            prop_assert_eq!(f.body(), &b[..]);
        }
    }

    #[test]
    fn arbitrary_streams_never_panic(stream in proptest::collection::vec(any::<u8>(), 0..2000), chunk in 1usize..100) {
        let _ = split_frames(&stream, chunk, 4096);
    }

    #[test]
    fn data_rows_round_trip(values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)), 0..30)) {
        let mut out = BytesMut::new();
        let start = backend::start_data_row(&mut out, values.len() as u16);
        for v in &values {
            backend::put_value(&mut out, v.as_deref());
        }
        backend::finish_data_row(&mut out, start);
        let f = Frame { tag: b'D', bytes: out.freeze() };
        let mut ranges = Vec::new();
        backend::data_row_ranges(f.body(), &mut ranges).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Vec<Option<Vec<u8>>> = ranges.iter().map(|r| r.map(|(a, b)| f.body()[a..b].to_vec())).collect();
        prop_assert_eq!(back, values);
    }

    #[test]
    fn query_and_parse_round_trip(sql in "[^\u{0}]{0,200}", name in "[a-z0-9_]{0,20}") {
        let mut out = BytesMut::new();
        frontend::encode_query(&mut out, &sql);
        let f = Frame { tag: b'Q', bytes: out.split().freeze() };
        prop_assert_eq!(frontend::decode_query(&f).map_err(|e| TestCaseError::fail(e.to_string()))?, sql.as_str());
        frontend::encode_parse(&mut out, &name, &sql, &[0, 1, 0, 0, 0, 23]);
        let f = Frame { tag: b'P', bytes: out.split().freeze() };
        let p = frontend::decode_parse(&f).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((p.name, p.sql, p.param_types), (name.as_str(), sql.as_str(), &[0u8, 1, 0, 0, 0, 23][..]));
    }
}

/// The corpus of hostile messages: each must be rejected, never read as something else.
#[test]
fn hostile_corpus_is_rejected() {
    // One Query holding two strings: PostgreSQL reads one statement; so must pgveil.
    assert!(frontend::decode_query(&frame(b'Q', b"SELECT 1\0SELECT 2\0")).is_err());
    // No terminator.
    assert!(frontend::decode_query(&frame(b'Q', b"SELECT 1")).is_err());
    // Invalid UTF-8 inside the text.
    assert!(frontend::decode_query(&frame(b'Q', b"SELECT '\xff'\0")).is_err());
    // Parse with a negative or short parameter count.
    assert!(frontend::decode_parse(&frame(b'P', b"\0SELECT 1\0\xff\xff")).is_err());
    assert!(frontend::decode_parse(&frame(b'P', b"\0SELECT 1\0\0\x02\0\0\0\x17")).is_err());
    // Bind whose parameter length runs past the body.
    assert!(frontend::decode_bind(&frame(b'B', b"\0\0\0\0\0\x01\0\0\0\x09ab\0\0")).is_err());
    // Describe of an unknown kind.
    assert!(frontend::decode_target(&frame(b'D', b"Xname\0")).is_err());
    // Execute with trailing bytes.
    assert!(frontend::decode_execute(&frame(b'E', b"\0\0\0\0\0!")).is_err());
    // Startup packets: unknown protocol, cancel with trailing bytes, unterminated parameters.
    assert!(StartupPacket::decode(&[0, 2, 0, 0]).is_err());
    assert!(StartupPacket::decode(&[4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2, 9]).is_err());
    assert!(StartupPacket::decode(b"\0\x03\0\0user\0bob").is_err());
    // Lengths below 4 and over the limit are errors before any allocation.
    assert!(split_frames(b"Q\0\0\0\x02", 8, 1024).is_err());
    assert!(split_frames(b"Q\x7f\xff\xff\xff", 8, 1024).is_err());
    // A message cut short by the end of the stream.
    assert!(split_frames(b"Q\0\0\0\x10SELECT", 8, 1024).is_err());
}
