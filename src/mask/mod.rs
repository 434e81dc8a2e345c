//! The masking library: pure functions, no I/O.
//!
//! A [`MaskSpec`] is what a DBA writes under `mask:`; [`Mask::new`] checks it against the
//! column's [`ColumnType`] and resolves keys, so a mask that cannot produce a value of the
//! column's type is a load error, never a runtime surprise.
//!
//! Every mask has two equivalent forms:
//! - [`Mask::apply`]: Rust, over the wire value (text or binary format), used in DataRow;
//! - [`Mask::sql`]: an SQL expression PostgreSQL computes inside rewritten statements,
//!   so that filters, joins and sorts compute on masked values. Keyed masks (`token`,
//!   `noise`) have none: their key never reaches the database.
//!
//! Invariants:
//! - `apply` never panics and always produces a value well-formed for the column's type and
//!   format (malformed input gives a documented constant, usually the `redact` value);
//! - for unkeyed masks, `sql` evaluated by PostgreSQL 15 gives the same text as `apply` in
//!   text format (tested against a real server in `tests/mask_sql_agreement.rs`), never raises
//!   an error, and names every function, operator and type through `pg_catalog`;
//! - a mask hides what `rules/MASKS.md` says: inputs equal on the kept parts give equal
//!   outputs (property-tested in `tests/mask_properties.rs`).
//!
//! `apply` in text format assumes the session's `client_encoding` is UTF8 and its `DateStyle`
//! ISO (a date in another style is malformed input and gets the redact constant); the SQL twin
//! has no such assumption, PostgreSQL renders its result. Text-format `timestamptz` results
//! are rendered with the input's UTC offset, which equals PostgreSQL's rendering when the
//! session time zone has a fixed offset (UTC, Asia/Shanghai after 1991).
use std::collections::HashMap;
use std::fmt;

mod datetime;
mod numeric;
mod regex_mask;
pub mod regions;
mod spec;
mod sqlgen;
mod text;
mod token;
mod validate;

pub use spec::{Decimal, MaskSpec, TokenFormat, TruncUnit, DEFAULT_KEY_ID};
pub use validate::{is_valid_resident_id, luhn_check_digit, luhn_valid, resident_id_check_char};

use numeric::NumTarget;

/// Wire format of a value (`0` text, `1` binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Binary,
}

/// The column types masks know how to produce. Built from the catalog's type oid and typmod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// text, varchar(n), bpchar(n), name: `max_chars` from the typmod when bounded.
    Text {
        oid: u32,
        max_chars: Option<u32>,
    },
    Int2,
    Int4,
    Int8,
    /// numeric without a typmod.
    Numeric,
    /// numeric(precision, scale): every stored value has exactly `scale` decimals and at most
    /// `precision - scale` integer digits, and a value cast to the type is rounded to it.
    /// Added by the masking library so that masked values keep the column's scale.
    NumericScaled {
        precision: u32,
        scale: i32,
    },
    Float4,
    Float8,
    Date,
    Timestamp,
    Timestamptz,
    Bool,
    Uuid,
    /// Anything else: only `null` applies.
    Other {
        oid: u32,
    },
}

impl ColumnType {
    /// From `pg_attribute.atttypid` and `atttypmod`.
    pub fn from_catalog(type_oid: u32, typmod: i32) -> ColumnType {
        match type_oid {
            25 | 19 => ColumnType::Text {
                oid: type_oid,
                max_chars: None,
            },
            1043 | 1042 => ColumnType::Text {
                oid: type_oid,
                max_chars: if typmod >= 4 {
                    Some((typmod - 4) as u32)
                } else {
                    None
                },
            },
            21 => ColumnType::Int2,
            23 => ColumnType::Int4,
            20 => ColumnType::Int8,
            1700 if typmod >= 4 => {
                let t = typmod - 4;
                // PostgreSQL 15 packs the scale as an 11-bit signed number.
                let raw = t & 0x7ff;
                let scale = if raw & 0x400 != 0 { raw - 0x800 } else { raw };
                ColumnType::NumericScaled {
                    precision: ((t >> 16) & 0xffff) as u32,
                    scale,
                }
            }
            1700 => ColumnType::Numeric,
            700 => ColumnType::Float4,
            701 => ColumnType::Float8,
            1082 => ColumnType::Date,
            1114 => ColumnType::Timestamp,
            1184 => ColumnType::Timestamptz,
            16 => ColumnType::Bool,
            2950 => ColumnType::Uuid,
            oid => ColumnType::Other { oid },
        }
    }

    fn is_integer(&self) -> bool {
        matches!(self, ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8)
    }

    fn is_numeric(&self) -> bool {
        matches!(self, ColumnType::Numeric | ColumnType::NumericScaled { .. })
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Text {
                oid: 1043,
                max_chars: Some(n),
            } => write!(f, "varchar({n})"),
            ColumnType::Text {
                oid: 1043,
                max_chars: None,
            } => f.write_str("varchar"),
            ColumnType::Text {
                oid: 1042,
                max_chars: Some(n),
            } => write!(f, "char({n})"),
            ColumnType::Text {
                oid: 1042,
                max_chars: None,
            } => f.write_str("bpchar"),
            ColumnType::Text { oid: 19, .. } => f.write_str("name"),
            ColumnType::Text { .. } => f.write_str("text"),
            ColumnType::Int2 => f.write_str("smallint"),
            ColumnType::Int4 => f.write_str("integer"),
            ColumnType::Int8 => f.write_str("bigint"),
            ColumnType::Numeric => f.write_str("numeric"),
            ColumnType::NumericScaled { precision, scale } => write!(f, "numeric({precision},{scale})"),
            ColumnType::Float4 => f.write_str("real"),
            ColumnType::Float8 => f.write_str("double precision"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Timestamp => f.write_str("timestamp"),
            ColumnType::Timestamptz => f.write_str("timestamptz"),
            ColumnType::Bool => f.write_str("boolean"),
            ColumnType::Uuid => f.write_str("uuid"),
            ColumnType::Other { oid } => write!(f, "type oid {oid}"),
        }
    }
}

/// Secret keys for keyed masks, by key id. Loaded by the rules module from the environment
/// or a file; never printed (Debug shows ids only).
#[derive(Clone, Default)]
pub struct Keys {
    pub keys: HashMap<String, Vec<u8>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.keys()).finish()
    }
}

/// Keys shorter than this are refused: a keyed mask is only as strong as its key.
pub const MIN_KEY_BYTES: usize = 16;

/// Why a mask cannot be built for a column.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum MaskError {
    /// The mask produces values of another kind than the column holds.
    #[error("mask {mask} does not fit column type {ty}; {hint}")]
    TypeMismatch {
        mask: &'static str,
        ty: String,
        hint: &'static str,
    },
    /// The mask's output is longer than the column allows.
    #[error("{what} ({len} chars) does not fit {ty}")]
    TooLong { what: String, len: usize, ty: String },
    #[error("unknown key id '{0}' (keys are loaded from the environment or a key file, never the rules)")]
    UnknownKey(String),
    #[error("key '{id}' is {len} bytes; keyed masks need at least {MIN_KEY_BYTES} bytes")]
    ShortKey { id: String, len: usize },
    #[error("mask {mask}: {reason}")]
    BadParam { mask: &'static str, reason: String },
}

/// What [`Mask::apply`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masked {
    /// `out` holds the masked value.
    Value,
    /// The masked value is SQL NULL (`out` is empty).
    Null,
}

/// How a text result is fitted to the column, exactly as an explicit cast does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextFit {
    /// text, unbounded varchar, unbounded bpchar.
    None,
    /// varchar(n): truncated to n characters.
    Truncate(usize),
    /// char(n): truncated to n characters, then blank-padded to n.
    Pad(usize),
    /// name: truncated to 63 bytes on a character boundary.
    Name,
}

/// The resolved form of a spec for one column.
#[derive(Debug)]
enum Kind {
    Redact,
    Null,
    Text(text::TextMask),
    Regex(regex_mask::RegexMask),
    DateTrunc(spec::TruncUnit),
    Bucket(spec::Decimal),
    Round(spec::Decimal),
    Token(token::TokenMask),
    Noise(token::NoiseMask),
}

/// A mask ready to apply to one column's values. Cheap to share (`Arc<Mask>`).
#[derive(Debug)]
pub struct Mask {
    spec: MaskSpec,
    ty: ColumnType,
    kind: Kind,
    fit: TextFit,
    /// bpchar values are compared and converted to text without their trailing blanks.
    strip_blanks: bool,
}

const TEXT_ONLY: &str = "it applies to text, varchar and char columns";
const NUMBERS_ONLY: &str = "it applies to smallint, integer, bigint and numeric columns";
const DATES_ONLY: &str = "it applies to date, timestamp and timestamptz columns";

impl Mask {
    /// Checks `spec` against the column type and resolves its key.
    pub fn new(spec: &MaskSpec, ty: &ColumnType, keys: &Keys) -> Result<Mask, MaskError> {
        let mismatch = |hint: &'static str| MaskError::TypeMismatch {
            mask: spec.name(),
            ty: ty.to_string(),
            hint,
        };
        let is_text = matches!(ty, ColumnType::Text { .. });
        let kind = match spec {
            MaskSpec::Null => Kind::Null,
            MaskSpec::Redact => {
                if matches!(ty, ColumnType::Other { .. }) {
                    return Err(mismatch("redact has no constant for this type; use null"));
                }
                if let ColumnType::NumericScaled { scale, .. } = ty {
                    if *scale < 0 {
                        return Err(mismatch("numeric with a negative scale supports only null"));
                    }
                }
                Kind::Redact
            }
            MaskSpec::Partial { .. }
            | MaskSpec::Email
            | MaskSpec::Phone
            | MaskSpec::CnId { .. }
            | MaskSpec::BankCard { .. }
            | MaskSpec::CnName
            | MaskSpec::Address
            | MaskSpec::Uscc => {
                if !is_text {
                    return Err(mismatch(TEXT_ONLY));
                }
                Kind::Text(text::TextMask::new(spec)?)
            }
            MaskSpec::Regex { pattern, keep } => {
                if !is_text {
                    return Err(mismatch(TEXT_ONLY));
                }
                Kind::Regex(regex_mask::RegexMask::new(pattern, keep)?)
            }
            MaskSpec::DateTrunc { to } => {
                if !matches!(
                    ty,
                    ColumnType::Date | ColumnType::Timestamp | ColumnType::Timestamptz
                ) {
                    return Err(mismatch(DATES_ONLY));
                }
                Kind::DateTrunc(*to)
            }
            MaskSpec::Bucket { width: d } | MaskSpec::Round { step: d } => {
                numeric::check_step(spec.name(), ty, d).map_err(|e| match e {
                    None => mismatch(NUMBERS_ONLY),
                    Some(reason) => MaskError::BadParam {
                        mask: spec.name(),
                        reason,
                    },
                })?;
                if matches!(spec, MaskSpec::Bucket { .. }) {
                    Kind::Bucket(*d)
                } else {
                    Kind::Round(*d)
                }
            }
            MaskSpec::Token { format, key } => {
                if !is_text {
                    return Err(mismatch(TEXT_ONLY));
                }
                let t = token::TokenMask::new(*format, key, keys)?;
                if let ColumnType::Text {
                    max_chars: Some(n), ..
                } = ty
                {
                    let need = t.min_chars();
                    if need > *n as usize {
                        return Err(MaskError::TooLong {
                            what: format!("{} token output", t.format_name()),
                            len: need,
                            ty: ty.to_string(),
                        });
                    }
                }
                Kind::Token(t)
            }
            MaskSpec::Noise { ratio, key } => {
                if !(ty.is_integer()
                    || ty.is_numeric()
                    || matches!(ty, ColumnType::Float4 | ColumnType::Float8))
                {
                    return Err(mismatch(
                        "it applies to integer, numeric and floating-point columns",
                    ));
                }
                if let ColumnType::NumericScaled { scale, .. } = ty {
                    if *scale < 0 {
                        return Err(mismatch("numeric with a negative scale supports only null"));
                    }
                }
                Kind::Noise(token::NoiseMask::new(*ratio, key, keys)?)
            }
        };
        let (fit, strip_blanks) = match ty {
            ColumnType::Text {
                oid: 1042,
                max_chars: Some(n),
            } => (TextFit::Pad(*n as usize), true),
            ColumnType::Text {
                oid: 1042,
                max_chars: None,
            } => (TextFit::None, true),
            ColumnType::Text {
                oid: 1043,
                max_chars: Some(n),
            } => (TextFit::Truncate(*n as usize), false),
            ColumnType::Text { oid: 19, .. } => (TextFit::Name, false),
            _ => (TextFit::None, false),
        };
        Ok(Mask {
            spec: spec.clone(),
            ty: ty.clone(),
            kind,
            fit,
            strip_blanks,
        })
    }

    /// The spec this mask was built from.
    pub fn spec(&self) -> &MaskSpec {
        &self.spec
    }

    /// The column type this mask was built for.
    pub fn column_type(&self) -> &ColumnType {
        &self.ty
    }

    /// True for masks whose key must never reach the database (`token`, `noise`): they have
    /// no SQL form and pgveil applies them to result rows itself.
    pub fn is_keyed(&self) -> bool {
        matches!(self.kind, Kind::Token(_) | Kind::Noise(_))
    }

    /// Masks one non-NULL wire value of the column (text or binary format) into `out`
    /// (cleared first). Never panics: malformed input gives a defined, well-formed output.
    pub fn apply(&self, value: &[u8], format: Format, out: &mut Vec<u8>) -> Masked {
        out.clear();
        if let Kind::Null = self.kind {
            return Masked::Null;
        }
        match &self.ty {
            // Text types have the same bytes in both formats.
            ColumnType::Text { .. } => self.apply_text(value, out),
            ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8 => {
                numeric::apply_int(&self.kind, &self.ty, value, format, out)
            }
            ColumnType::Numeric | ColumnType::NumericScaled { .. } => {
                numeric::apply_numeric(&self.kind, NumTarget::of(&self.ty), value, format, out)
            }
            ColumnType::Float4 | ColumnType::Float8 => {
                numeric::apply_float(&self.kind, &self.ty, value, format, out)
            }
            ColumnType::Date | ColumnType::Timestamp | ColumnType::Timestamptz => {
                datetime::apply(&self.kind, &self.ty, value, format, out)
            }
            ColumnType::Bool => {
                // Only redact reaches here.
                match format {
                    Format::Text => out.push(b'f'),
                    Format::Binary => out.push(0),
                }
            }
            ColumnType::Uuid => match format {
                Format::Text => out.extend_from_slice(b"00000000-0000-0000-0000-000000000000"),
                Format::Binary => out.extend_from_slice(&[0u8; 16]),
            },
            // Only null is accepted for other types; handled above.
            ColumnType::Other { .. } => return Masked::Null,
        }
        Masked::Value
    }

    fn apply_text(&self, value: &[u8], out: &mut Vec<u8>) {
        // PostgreSQL text never holds NUL: such input is malformed like non-UTF-8 input.
        let utf8 = if value.contains(&0) {
            None
        } else {
            std::str::from_utf8(value).ok()
        };
        let s = match utf8 {
            Some(s) if self.strip_blanks => s.trim_end_matches(' '),
            Some(s) => s,
            None => {
                // Malformed: tokens still work on the bytes, everything else redacts.
                match &self.kind {
                    Kind::Token(t) => t.apply_bytes(value, self.max_chars(), out),
                    _ => out.extend_from_slice(text::REDACTED.as_bytes()),
                }
                self.fit_text(out);
                return;
            }
        };
        match &self.kind {
            Kind::Redact => out.extend_from_slice(text::REDACTED.as_bytes()),
            Kind::Text(m) => m.apply(s, out),
            Kind::Regex(m) => m.apply(s, out),
            Kind::Token(t) => t.apply_str(s, self.max_chars(), out),
            // Other kinds are refused by `new` for text columns.
            _ => out.extend_from_slice(text::REDACTED.as_bytes()),
        }
        self.fit_text(out);
    }

    fn max_chars(&self) -> Option<usize> {
        match self.fit {
            TextFit::Truncate(n) | TextFit::Pad(n) => Some(n),
            TextFit::Name => Some(63),
            TextFit::None => None,
        }
    }

    /// Fits a text result to the column exactly as `CAST(x AS column_type)` does.
    fn fit_text(&self, out: &mut Vec<u8>) {
        match self.fit {
            TextFit::None => {}
            TextFit::Truncate(n) => {
                truncate_chars(out, n);
            }
            TextFit::Pad(n) => {
                let len = truncate_chars(out, n);
                out.resize(out.len() + (n - len), b' ');
            }
            TextFit::Name => {
                if out.len() > 63 {
                    let mut cut = 63;
                    while cut > 0 && (out[cut] & 0xC0) == 0x80 {
                        cut -= 1;
                    }
                    out.truncate(cut);
                }
            }
        }
    }

    /// SQL twin of [`Mask::apply`] (text format) over `column_expr`, cast to the column's
    /// type (`sql_type` is its `format_type()`). `None` for keyed masks.
    pub fn sql(&self, column_expr: &str, sql_type: &str) -> Option<String> {
        let target = sqlgen::cast_target(&self.ty, sql_type);
        let col = format!("({column_expr})");
        let body = match &self.kind {
            Kind::Null => return Some(format!("CAST(NULL AS {target})")),
            Kind::Token(_) | Kind::Noise(_) => return None,
            Kind::Redact => sqlgen::redact_literal(&self.ty),
            Kind::Text(m) => {
                let (t, tc) = sqlgen::text_forms(&col);
                m.sql(&t, &tc)
            }
            Kind::Regex(m) => {
                let (t, tc) = sqlgen::text_forms(&col);
                m.sql(&t, &tc)
            }
            Kind::DateTrunc(unit) => datetime::sql(*unit, &self.ty, &col),
            Kind::Bucket(d) => numeric::sql_bucket(d, NumTarget::of(&self.ty), &col, false),
            Kind::Round(d) => numeric::sql_bucket(d, NumTarget::of(&self.ty), &col, true),
        };
        Some(format!(
            "CAST(CASE WHEN {col} IS NULL THEN NULL ELSE {body} END AS {target})"
        ))
    }

    /// For reports: what the masked value still shows.
    pub fn reveals(&self) -> String {
        match &self.kind {
            Kind::Null => "nothing (always NULL)".into(),
            Kind::Redact => "nothing (a constant of the column's type)".into(),
            Kind::Text(m) => m.reveals(),
            Kind::Regex(m) => m.reveals(),
            Kind::DateTrunc(spec::TruncUnit::Year) => "the year".into(),
            Kind::DateTrunc(spec::TruncUnit::Month) => "the year and month".into(),
            Kind::Bucket(d) => format!("the bucket of width {d} holding the value (its lower bound)"),
            Kind::Round(d) => format!("the value rounded to the nearest multiple of {d}"),
            Kind::Token(t) => t.reveals(),
            Kind::Noise(n) => n.reveals(),
        }
    }
}

/// PostgreSQL's text form of a numeric in binary wire format, or `None` when malformed.
pub fn numeric_binary_to_text(b: &[u8]) -> Option<String> {
    let n = numeric::Num::decode_binary(b)?;
    let mut out = Vec::new();
    n.write_text(&mut out);
    String::from_utf8(out).ok()
}

/// The binary wire format of a numeric given in PostgreSQL's text form (`-12.50`, `NaN`,
/// `Infinity`), or `None` when it is not one.
pub fn numeric_text_to_binary(s: &str) -> Option<Vec<u8>> {
    let n = numeric::Num::parse_text(s)?;
    let mut out = Vec::new();
    n.write_binary(&mut out);
    Some(out)
}

/// Truncates UTF-8 `out` to at most `n` characters; returns the resulting character count.
fn truncate_chars(out: &mut Vec<u8>, n: usize) -> usize {
    if out.len() <= n {
        // Every character is at least one byte: already short enough.
        return out.iter().filter(|&&b| (b & 0xC0) != 0x80).count();
    }
    let mut chars = 0;
    for (i, &b) in out.iter().enumerate() {
        if (b & 0xC0) != 0x80 {
            if chars == n {
                out.truncate(i);
                return n;
            }
            chars += 1;
        }
    }
    chars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Mask>();
        check::<MaskSpec>();
    }

    #[test]
    fn numeric_typmod_decoding() {
        assert_eq!(
            ColumnType::from_catalog(1700, (10 << 16 | 2) + 4),
            ColumnType::NumericScaled {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(ColumnType::from_catalog(1700, -1), ColumnType::Numeric);
        // PostgreSQL 15 allows negative scales: numeric(2,-3).
        assert_eq!(
            ColumnType::from_catalog(1700, ((2 << 16) | (0x800 - 3)) + 4),
            ColumnType::NumericScaled {
                precision: 2,
                scale: -3
            }
        );
    }

    #[test]
    fn fitting_follows_casts() {
        let mut v = "张三丰abc".as_bytes().to_vec();
        assert_eq!(truncate_chars(&mut v, 4), 4);
        assert_eq!(v, "张三丰a".as_bytes());
        let m = Mask::new(
            &MaskSpec::Redact,
            &ColumnType::Text {
                oid: 1042,
                max_chars: Some(6),
            },
            &Keys::default(),
        )
        .expect("redact on char(6)");
        let mut out = Vec::new();
        m.apply(b"abc   ", Format::Text, &mut out);
        assert_eq!(out, b"****  ");
    }
}
