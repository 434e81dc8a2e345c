//! COPY out: the CopyOutResponse header and the text format rows of `COPY ... TO STDOUT`.
//!
//! In the text format (COPY's default) PostgreSQL sends one row per CopyData message: the
//! row's fields in their text output form, separated by a tab, ended by a newline, with
//! `\N` for NULL. Inside a field a backslash, the delimiter and the control characters
//! backspace, form feed, newline, carriage return, tab and vertical tab are written as
//! backslash escapes (`CopyAttributeOutText` in PostgreSQL's `copyto.c`), so a raw tab is
//! always a field separator and a raw newline only ends the row.
//!
//! Only the defaults are read here (tab delimiter, `\N` for NULL): the caller must make sure
//! the COPY was written without options.
use bytes::BufMut;

use super::{Body, Frame, WireError};

/// What a CopyOutResponse announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOut {
    /// Overall format: 0 text (or csv), 1 binary.
    pub format: i8,
    /// Number of columns of each row.
    pub columns: u16,
}

pub fn decode_copy_out_response(f: &Frame) -> Result<CopyOut, WireError> {
    let mut b = Body::new("CopyOutResponse", f.body());
    let format = b.u8()? as i8;
    let columns = b.count16()?;
    let columns =
        u16::try_from(columns).map_err(|_| WireError::malformed("CopyOutResponse", "column count"))?;
    for _ in 0..columns {
        b.i16()?;
    }
    b.finish()?;
    Ok(CopyOut { format, columns })
}

/// Whether a backend message carries one result row: a DataRow, or a CopyData of a COPY
/// out (PostgreSQL sends one per row), except the 2-byte trailer that ends a binary COPY.
pub fn is_row(f: &Frame) -> bool {
    match f.tag {
        super::backend::DATA_ROW => true,
        super::backend::COPY_DATA => f.body() != b"\xff\xff",
        _ => false,
    }
}

/// The fields of one text-format row (`row` is a CopyData body): `(start, end)` of each
/// field as written (escaped), the final newline excluded. A row that does not end with a
/// newline is malformed.
pub fn text_row_fields(row: &[u8], out: &mut Vec<(usize, usize)>) -> Result<(), WireError> {
    out.clear();
    let Some(body) = row.strip_suffix(b"\n") else {
        return Err(WireError::malformed("COPY text row", "no final newline"));
    };
    if body.contains(&b'\n') {
        return Err(WireError::malformed(
            "COPY text row",
            "more than one row in one message",
        ));
    }
    let mut start = 0;
    for (i, &c) in body.iter().enumerate() {
        if c == b'\t' {
            out.push((start, i));
            start = i + 1;
        }
    }
    out.push((start, body.len()));
    Ok(())
}

/// Decodes one field into `out` (cleared first). `false` for NULL (`\N`).
pub fn text_field_decode(raw: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    if raw == b"\\N" {
        return false;
    }
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        i += 1;
        if c != b'\\' || i == raw.len() {
            out.push(c);
            continue;
        }
        let e = raw[i];
        i += 1;
        match e {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    true
}

/// Appends one field, escaped as PostgreSQL writes it (tab delimiter); `None` is `\N`.
pub fn text_field_encode(v: Option<&[u8]>, out: &mut impl BufMut) {
    let Some(v) = v else {
        out.put_slice(b"\\N");
        return;
    };
    for &c in v {
        match c {
            0x08 => out.put_slice(b"\\b"),
            0x0c => out.put_slice(b"\\f"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            b'\t' => out.put_slice(b"\\t"),
            0x0b => out.put_slice(b"\\v"),
            b'\\' => out.put_slice(b"\\\\"),
            c => out.put_u8(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn roundtrip(v: &[u8]) -> Vec<u8> {
        let mut enc = BytesMut::new();
        text_field_encode(Some(v), &mut enc);
        let mut dec = Vec::new();
        assert!(text_field_decode(&enc, &mut dec));
        dec
    }

    #[test]
    fn splits_rows_at_raw_tabs_only() {
        let mut f = Vec::new();
        let row = b"1\ta\\tb\t\\N\t\n";
        text_row_fields(row, &mut f).expect("row");
        let fields: Vec<&[u8]> = f.iter().map(|(a, b)| &row[*a..*b]).collect();
        assert_eq!(fields, vec![&b"1"[..], b"a\\tb", b"\\N", b""]);
        assert!(text_row_fields(b"1\t2", &mut f).is_err());
        assert!(text_row_fields(b"1\n2\n", &mut f).is_err());
    }

    #[test]
    fn escapes_read_back_as_written() {
        for v in [
            &b"plain"[..],
            b"tab\there",
            b"nl\nx\r\x08\x0c\x0b",
            b"back\\slash",
            b"\\N",
            "张三".as_bytes(),
        ] {
            assert_eq!(roundtrip(v), v);
        }
        let mut out = Vec::new();
        assert!(!text_field_decode(b"\\N", &mut out));
        assert!(text_field_decode(b"\\101\\x41\\q", &mut out));
        assert_eq!(out, b"AAq");
        let mut enc = BytesMut::new();
        text_field_encode(Some(b"a\tb\\"), &mut enc);
        assert_eq!(&enc[..], b"a\\tb\\\\");
    }
}
