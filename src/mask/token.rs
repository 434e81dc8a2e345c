//! Keyed masks: deterministic tokens (HMAC-SHA-256) and deterministic noise.
//!
//! Same input and key give the same token in every table and on every pgveil instance, so
//! joins and distinct counts keep working, and without the key a token cannot be reversed or
//! recomputed (an unkeyed hash of an 18-digit ID could simply be enumerated). The key never
//! reaches the database: these masks have no SQL twin and are applied by pgveil to result rows.
//!
//! Each format hashes with its own domain-separation tag, so the text and cn_id tokens of one
//! value are unrelated. Format-preserving variants map the 256-bit MAC onto a valid value:
//! - `cn_id`: real county code ([`super::regions`]), a birth date from 1950-01-01 to
//!   2005-12-31, a 3-digit sequence and the MOD 11-2 check character;
//! - `bank_card`: same digit count as the input (16 otherwise), first digit 1-9, Luhn-valid;
//! - `phone`: a real mainland carrier prefix and 8 digits.
//!
//! Inputs are normalised first where formats allow several spellings of one value (ID check
//! character `x`/`X`, mobile numbers with `+86` or separators), so they tokenise alike.
//!
//! Noise multiplies by `1 + ratio * u` with `u` in [-1, 1) derived from the MAC of the value:
//! repeating a query cannot average it away, but equal values stay equal.
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::regions::REGION_CODES;
use super::spec::TokenFormat;
use super::text::mobile_digits;
use super::validate::{id_check_byte, luhn_check_byte};
use super::{Keys, MaskError, MIN_KEY_BYTES};

type HmacSha256 = Hmac<Sha256>;

/// A keyed MAC ready to clone per value (the key schedule is computed once).
#[derive(Clone)]
struct Keyed {
    key_id: String,
    mac: HmacSha256,
}

impl std::fmt::Debug for Keyed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Keyed")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Keyed {
    fn new(key_id: &str, keys: &Keys) -> Result<Keyed, MaskError> {
        let key = keys
            .keys
            .get(key_id)
            .ok_or_else(|| MaskError::UnknownKey(key_id.to_string()))?;
        if key.len() < MIN_KEY_BYTES {
            return Err(MaskError::ShortKey {
                id: key_id.to_string(),
                len: key.len(),
            });
        }
        let mac = HmacSha256::new_from_slice(key).map_err(|e| MaskError::BadParam {
            mask: "token",
            reason: format!("key '{key_id}': {e}"),
        })?;
        Ok(Keyed {
            key_id: key_id.to_string(),
            mac,
        })
    }

    fn digest(&self, tag: &[u8], value: &[u8]) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(tag);
        m.update(value);
        let out = m.finalize().into_bytes();
        let mut d = [0u8; 32];
        d.copy_from_slice(&out);
        d
    }
}

fn u64_at(d: &[u8; 32], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[i..i + 8]);
    u64::from_le_bytes(b)
}

const TAG_TEXT: &[u8] = b"pgveil/token/text/v1\0";
const TAG_CN_ID: &[u8] = b"pgveil/token/cn_id/v1\0";
const TAG_CARD: &[u8] = b"pgveil/token/bank_card/v1\0";
const TAG_PHONE: &[u8] = b"pgveil/token/phone/v1\0";
const TAG_NOISE: &[u8] = b"pgveil/noise/v1\0";

/// Lower-case RFC 4648 base32 alphabet.
const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// base32 characters for 16 bytes (128 bits, no padding).
const TEXT_TOKEN_CHARS: usize = 26;

/// Mainland mobile prefixes in use (MIIT numbering plan).
const MOBILE_PREFIXES: &[u16] = &[
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 145, 147, 149, 150, 151, 152, 153, 155, 156, 157, 158,
    159, 162, 165, 166, 167, 170, 171, 172, 173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187,
    188, 189, 190, 191, 192, 193, 195, 196, 197, 198, 199,
];

/// Birth dates of resident-ID tokens: 1950-01-01 plus 0..BIRTH_DAYS days (to 2005-12-31).
const BIRTH_START: (u32, u32, u32) = (1950, 1, 1);
const BIRTH_DAYS: u64 = 20_454;

#[derive(Debug, Clone)]
pub(crate) struct TokenMask {
    keyed: Keyed,
    format: TokenFormat,
}

impl TokenMask {
    pub(crate) fn new(format: TokenFormat, key_id: &str, keys: &Keys) -> Result<TokenMask, MaskError> {
        if format == TokenFormat::Text
            && (key_id.is_empty()
                || key_id.len() > 32
                || !key_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        {
            return Err(MaskError::BadParam {
                mask: "token",
                reason: format!("key id {key_id:?} goes into text tokens: use 1-32 of [A-Za-z0-9_-]"),
            });
        }
        Ok(TokenMask {
            keyed: Keyed::new(key_id, keys)?,
            format,
        })
    }

    pub(crate) fn format_name(&self) -> &'static str {
        match self.format {
            TokenFormat::Text => "text",
            TokenFormat::CnId => "cn_id",
            TokenFormat::BankCard => "bank_card",
            TokenFormat::Phone => "phone",
        }
    }

    /// The fewest characters the column must allow.
    pub(crate) fn min_chars(&self) -> usize {
        match self.format {
            TokenFormat::Text => self.text_len(),
            TokenFormat::CnId => 18,
            TokenFormat::BankCard => 12,
            TokenFormat::Phone => 11,
        }
    }

    fn text_len(&self) -> usize {
        4 + self.keyed.key_id.len() + 1 + TEXT_TOKEN_CHARS
    }

    pub(crate) fn reveals(&self) -> String {
        format!(
            "equality only: equal values give equal {} tokens under key '{}' (joins and distinct counts work); not reversible without the key",
            self.format_name(),
            self.keyed.key_id
        )
    }

    /// Token of a UTF-8 value (already stripped of bpchar padding).
    pub(crate) fn apply_str(&self, s: &str, max_chars: Option<usize>, out: &mut Vec<u8>) {
        self.apply_bytes(s.as_bytes(), max_chars, out)
    }

    pub(crate) fn apply_bytes(&self, v: &[u8], max_chars: Option<usize>, out: &mut Vec<u8>) {
        match self.format {
            TokenFormat::Text => {
                let d = self.keyed.digest(TAG_TEXT, v);
                out.extend_from_slice(b"tok_");
                out.extend_from_slice(self.keyed.key_id.as_bytes());
                out.push(b'_');
                base32_16(&d, out);
            }
            TokenFormat::CnId => {
                let mut norm = [0u8; 18];
                let v = if v.len() == 18 && v[17] == b'x' {
                    norm.copy_from_slice(v);
                    norm[17] = b'X';
                    &norm[..]
                } else {
                    v
                };
                let d = self.keyed.digest(TAG_CN_ID, v);
                cn_id_from(&d, out);
            }
            TokenFormat::BankCard => {
                let n = if (12..=19).contains(&v.len()) && v.iter().all(u8::is_ascii_digit) {
                    v.len()
                } else {
                    16.min(max_chars.unwrap_or(16))
                };
                let d = self.keyed.digest(TAG_CARD, v);
                card_from(&d, n, out);
            }
            TokenFormat::Phone => {
                let mut digits = [0u8; 11];
                let d = if mobile_digits(v, &mut digits) {
                    self.keyed.digest(TAG_PHONE, &digits)
                } else {
                    self.keyed.digest(TAG_PHONE, v)
                };
                phone_from(&d, out);
            }
        }
    }
}

/// base32 of the first 16 bytes of `d`: 26 characters.
fn base32_16(d: &[u8; 32], out: &mut Vec<u8>) {
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in &d[..16] {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((acc >> bits) & 31) as usize]);
        }
    }
    if bits > 0 {
        out.push(B32[((acc << (5 - bits)) & 31) as usize]);
    }
}

fn push_num(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (0..width).rev() {
        out[start + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// A valid resident ID from a MAC.
fn cn_id_from(d: &[u8; 32], out: &mut Vec<u8>) {
    let start = out.len();
    let region = REGION_CODES[(u64_at(d, 0) % REGION_CODES.len() as u64) as usize];
    push_num(out, u64::from(region), 6);
    let (y, m, dd) = add_days(BIRTH_START, u64_at(d, 8) % BIRTH_DAYS);
    push_num(out, u64::from(y), 4);
    push_num(out, u64::from(m), 2);
    push_num(out, u64::from(dd), 2);
    push_num(out, u64_at(d, 16) % 1000, 3);
    let check = id_check_byte(&out[start..start + 17]);
    out.push(check);
}

/// Date `n` days after `start`.
fn add_days(start: (u32, u32, u32), n: u64) -> (u32, u32, u32) {
    let d0 = super::datetime::days_from_civil(i64::from(start.0), start.1, start.2);
    let (y, m, d) = super::datetime::civil_from_days(d0 + n as i64);
    (y as u32, m, d)
}

/// A Luhn-valid card number of `n` digits (n in 12..=19) from a MAC.
fn card_from(d: &[u8; 32], n: usize, out: &mut Vec<u8>) {
    let start = out.len();
    let mut a = u128::from_le_bytes(d[..16].try_into().unwrap_or([0; 16]));
    out.push(b'1' + (a % 9) as u8);
    a /= 9;
    for _ in 1..n - 1 {
        out.push(b'0' + (a % 10) as u8);
        a /= 10;
    }
    let c = luhn_check_byte(&out[start..]);
    out.push(c);
}

/// A valid mainland mobile number from a MAC.
fn phone_from(d: &[u8; 32], out: &mut Vec<u8>) {
    let p = MOBILE_PREFIXES[(u64_at(d, 0) % MOBILE_PREFIXES.len() as u64) as usize];
    push_num(out, u64::from(p), 3);
    push_num(out, u64_at(d, 8) % 100_000_000, 8);
}

#[derive(Debug, Clone)]
pub(crate) struct NoiseMask {
    keyed: Keyed,
    ratio: f64,
}

impl NoiseMask {
    pub(crate) fn new(ratio: f64, key_id: &str, keys: &Keys) -> Result<NoiseMask, MaskError> {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(MaskError::BadParam {
                mask: "noise",
                reason: format!("ratio must be in (0, 1], got {ratio}"),
            });
        }
        Ok(NoiseMask {
            keyed: Keyed::new(key_id, keys)?,
            ratio,
        })
    }

    /// The multiplier for a value (given by its canonical bytes).
    pub(crate) fn factor(&self, canonical: &[u8]) -> f64 {
        let d = self.keyed.digest(TAG_NOISE, canonical);
        let u = (u64_at(&d, 0) >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        1.0 + self.ratio * (2.0 * u - 1.0)
    }

    pub(crate) fn reveals(&self) -> String {
        format!(
            "the value within ±{}% (deterministic per value under key '{}'), and which values are equal",
            self.ratio * 100.0,
            self.keyed.key_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::validate::{is_valid_resident_id, luhn_valid};

    #[test]
    fn add_days_spans_range() {
        assert_eq!(add_days(BIRTH_START, 0), (1950, 1, 1));
        assert_eq!(add_days(BIRTH_START, 31), (1950, 2, 1));
        assert_eq!(add_days(BIRTH_START, BIRTH_DAYS - 1), (2005, 12, 31));
    }

    #[test]
    fn formats_are_valid() {
        for i in 0u8..=255 {
            let d = [i.wrapping_mul(37); 32];
            let mut d2 = d;
            d2[3] = i;
            d2[11] = i.wrapping_add(5);
            let mut o = Vec::new();
            cn_id_from(&d2, &mut o);
            assert!(is_valid_resident_id(std::str::from_utf8(&o).unwrap()), "{o:?}");
            for n in 12..=19 {
                o.clear();
                card_from(&d2, n, &mut o);
                assert_eq!(o.len(), n);
                assert!(luhn_valid(std::str::from_utf8(&o).unwrap()));
            }
            o.clear();
            phone_from(&d2, &mut o);
            assert_eq!(o.len(), 11);
        }
    }
}
