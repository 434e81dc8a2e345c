//! [`MaskSpec`]: what a DBA writes under `mask:` in the rules, and how it is read from YAML.
//!
//! A spec is either a bare name (`email`) or a single-key map whose value holds parameters
//! (`{ partial: { keep_first: 3, keep_last: 4 } }`). Unknown mask names and unknown
//! parameters are errors, so a typo never silently weakens a mask. A spec says nothing about
//! the column yet: [`crate::mask::Mask::new`] checks it against the column's type.
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// What to generalise dates and timestamps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TruncUnit {
    Year,
    Month,
}

/// The shape a token takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    /// `tok_<key id>_<26 base32 chars>`: fixed length per key id.
    #[default]
    Text,
    /// A valid 18-character resident ID (real region code, real date, valid check character).
    CnId,
    /// Same number of digits as the card (16 when the input is not a card), passes Luhn.
    BankCard,
    /// A valid mainland mobile number (11 digits, real carrier prefix).
    Phone,
}

/// A positive decimal parameter (`width`, `step`), kept exact: `mant * 10^-scale`.
///
/// YAML numbers arrive as integers or floats; floats are read through their shortest decimal
/// form (`0.1` stays `0.1`), and strings (`"0.05"`) are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    /// Digits without the decimal point, always > 0.
    pub mant: i128,
    /// Digits after the decimal point (0..=18).
    pub scale: u32,
}

/// Largest mantissa a parameter may have: keeps every intermediate in `i128`.
const MAX_PARAM_MANT: i128 = 1_000_000_000_000_000_000; // 1e18

impl Decimal {
    /// Parses `123`, `0.5`, `1e3` is refused; must be > 0, < 1e18 and have at most 18 decimals.
    pub fn parse(s: &str) -> Result<Decimal, String> {
        let s = s.trim();
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty() && frac.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!("expected a positive decimal number, got {s:?}"));
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > 18 {
            return Err(format!("{s} has more than 18 decimals"));
        }
        let mut mant: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mant = mant * 10 + i128::from(b - b'0');
            if mant >= MAX_PARAM_MANT * 10 {
                return Err(format!("{s} is too large (at most 18 significant digits)"));
            }
        }
        if mant == 0 {
            return Err(format!("expected a number > 0, got {s}"));
        }
        if mant >= MAX_PARAM_MANT && frac.is_empty() {
            return Err(format!("{s} is too large (must be below 1e18)"));
        }
        Ok(Decimal {
            mant,
            scale: frac.len() as u32,
        })
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.mant);
        }
        let p = 10i128.pow(self.scale);
        write!(
            f,
            "{}.{:0width$}",
            self.mant / p,
            self.mant % p,
            width = self.scale as usize
        )
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
                Decimal::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
                Decimal::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
                if !v.is_finite() {
                    return Err(E::custom(format!("expected a finite number, got {v}")));
                }
                // Display gives the shortest decimal that reads back as `v`, never an exponent.
                Decimal::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
                Decimal::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// What a DBA writes under `mask:`.
///
/// Bare names: `redact`, `null`, `email`, `phone`, `cn_id`, `bank_card`, `cn_name`, `address`,
/// `uscc`, `token` (text token with key id `default`). Maps with parameters:
/// `{ partial: { keep_first: 3, keep_last: 4 } }`, `{ cn_id: { keep_birth_year: true } }`,
/// `{ bank_card: { keep_bin: true } }`, `{ token: { format: cn_id, key: main } }`,
/// `{ date_trunc: { to: year } }`, `{ bucket: { width: 10000 } }`, `{ round: { step: 100 } }`,
/// `{ regex: { pattern: "(\\d{3})(.*)", keep: [1] } }`, `{ noise: { ratio: 0.05, key: main } }`.
/// See `rules/MASKS.md` for what each one shows.
#[derive(Debug, Clone, PartialEq)]
pub enum MaskSpec {
    /// A constant of the column's type (`****`, 0, 1900-01-01, false, nil uuid).
    Redact,
    /// Always NULL.
    Null,
    /// Keep the first and last characters, fill the middle.
    Partial {
        keep_first: u32,
        keep_last: u32,
        /// One character; `*` by default.
        fill: char,
        /// When set, the middle is always this many fill characters (hides the length).
        fixed_length: Option<u32>,
    },
    Email,
    Phone,
    CnId {
        keep_birth_year: bool,
    },
    BankCard {
        keep_bin: bool,
    },
    CnName,
    Address,
    Uscc,
    /// Whole-value match of a restricted pattern; groups not in `keep` become `*` per char.
    Regex {
        pattern: String,
        keep: Vec<u32>,
    },
    DateTrunc {
        to: TruncUnit,
    },
    /// Lower bound of the bucket of `width` the value falls in.
    Bucket {
        width: Decimal,
    },
    /// Nearest multiple of `step` (halves away from zero).
    Round {
        step: Decimal,
    },
    /// Keyed deterministic token (HMAC-SHA-256).
    Token {
        format: TokenFormat,
        key: String,
    },
    /// Keyed deterministic multiplicative noise within ±`ratio`.
    Noise {
        ratio: f64,
        key: String,
    },
}

/// Key id used when a keyed mask names none.
pub const DEFAULT_KEY_ID: &str = "default";

impl MaskSpec {
    /// The name a DBA writes (`partial`, `date_trunc`...).
    pub fn name(&self) -> &'static str {
        match self {
            MaskSpec::Redact => "redact",
            MaskSpec::Null => "null",
            MaskSpec::Partial { .. } => "partial",
            MaskSpec::Email => "email",
            MaskSpec::Phone => "phone",
            MaskSpec::CnId { .. } => "cn_id",
            MaskSpec::BankCard { .. } => "bank_card",
            MaskSpec::CnName => "cn_name",
            MaskSpec::Address => "address",
            MaskSpec::Uscc => "uscc",
            MaskSpec::Regex { .. } => "regex",
            MaskSpec::DateTrunc { .. } => "date_trunc",
            MaskSpec::Bucket { .. } => "bucket",
            MaskSpec::Round { .. } => "round",
            MaskSpec::Token { .. } => "token",
            MaskSpec::Noise { .. } => "noise",
        }
    }

    /// All mask names, for error messages and documentation checks.
    pub const NAMES: &'static [&'static str] = &[
        "redact",
        "null",
        "partial",
        "email",
        "phone",
        "cn_id",
        "bank_card",
        "cn_name",
        "address",
        "uscc",
        "regex",
        "date_trunc",
        "bucket",
        "round",
        "token",
        "noise",
    ];

    /// The spec a bare name stands for, or why the name needs parameters.
    fn from_bare(name: &str) -> Result<MaskSpec, String> {
        Ok(match name {
            "redact" => MaskSpec::Redact,
            "null" => MaskSpec::Null,
            "email" => MaskSpec::Email,
            "phone" => MaskSpec::Phone,
            "cn_id" => MaskSpec::CnId {
                keep_birth_year: false,
            },
            "bank_card" => MaskSpec::BankCard { keep_bin: false },
            "cn_name" => MaskSpec::CnName,
            "address" => MaskSpec::Address,
            "uscc" => MaskSpec::Uscc,
            "token" => MaskSpec::Token {
                format: TokenFormat::Text,
                key: DEFAULT_KEY_ID.into(),
            },
            "partial" => {
                return Err(
                    "mask partial needs parameters, e.g. { partial: { keep_first: 3, keep_last: 4 } }".into(),
                )
            }
            "regex" => return Err(
                "mask regex needs parameters, e.g. { regex: { pattern: \"([0-9]{3})([0-9]*)\", keep: [1] } }"
                    .into(),
            ),
            "date_trunc" => {
                return Err("mask date_trunc needs parameters, e.g. { date_trunc: { to: year } }".into())
            }
            "bucket" => return Err("mask bucket needs parameters, e.g. { bucket: { width: 10000 } }".into()),
            "round" => return Err("mask round needs parameters, e.g. { round: { step: 100 } }".into()),
            "noise" => {
                return Err("mask noise needs parameters, e.g. { noise: { ratio: 0.05, key: main } }".into())
            }
            other => return Err(unknown_name(other)),
        })
    }
}

fn unknown_name(name: &str) -> String {
    format!(
        "unknown mask '{name}'; expected one of: {}",
        MaskSpec::NAMES.join(", ")
    )
}

fn star() -> char {
    '*'
}
fn default_key() -> String {
    DEFAULT_KEY_ID.to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialParams {
    #[serde(default)]
    keep_first: u32,
    #[serde(default)]
    keep_last: u32,
    #[serde(default = "star")]
    fill: char,
    #[serde(default)]
    fixed_length: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CnIdParams {
    #[serde(default)]
    keep_birth_year: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BankCardParams {
    #[serde(default)]
    keep_bin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegexParams {
    pattern: String,
    keep: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DateTruncParams {
    to: TruncUnit,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketParams {
    width: Decimal,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoundParams {
    step: Decimal,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenParams {
    #[serde(default)]
    format: TokenFormat,
    #[serde(default = "default_key")]
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoiseParams {
    ratio: f64,
    #[serde(default = "default_key")]
    key: String,
}

impl<'de> Deserialize<'de> for MaskSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SpecVisitor)
    }
}

struct SpecVisitor;

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = MaskSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mask name (e.g. `email`) or a single-key map (e.g. `{ partial: { keep_first: 3 } }`)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MaskSpec, E> {
        MaskSpec::from_bare(v).map_err(E::custom)
    }

    /// YAML `mask: null` (unquoted) is a null, not the string "null": it means the null mask.
    fn visit_unit<E: de::Error>(self) -> Result<MaskSpec, E> {
        Ok(MaskSpec::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<MaskSpec, E> {
        Ok(MaskSpec::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaskSpec, A::Error> {
        let Some(name) = map.next_key::<String>()? else {
            return Err(de::Error::custom("empty map: expected one mask name as the key"));
        };
        let spec = match name.as_str() {
            "partial" => {
                let p: PartialParams = map.next_value()?;
                if p.fill == '\0' {
                    return Err(de::Error::custom("partial: fill must not be NUL"));
                }
                MaskSpec::Partial {
                    keep_first: p.keep_first,
                    keep_last: p.keep_last,
                    fill: p.fill,
                    fixed_length: p.fixed_length,
                }
            }
            "cn_id" => {
                let p: Option<CnIdParams> = map.next_value()?;
                MaskSpec::CnId {
                    keep_birth_year: p.is_some_and(|p| p.keep_birth_year),
                }
            }
            "bank_card" => {
                let p: Option<BankCardParams> = map.next_value()?;
                MaskSpec::BankCard {
                    keep_bin: p.is_some_and(|p| p.keep_bin),
                }
            }
            "regex" => {
                let p: RegexParams = map.next_value()?;
                MaskSpec::Regex {
                    pattern: p.pattern,
                    keep: p.keep,
                }
            }
            "date_trunc" => {
                let p: DateTruncParams = map.next_value()?;
                MaskSpec::DateTrunc { to: p.to }
            }
            "bucket" => {
                let p: BucketParams = map.next_value()?;
                MaskSpec::Bucket { width: p.width }
            }
            "round" => {
                let p: RoundParams = map.next_value()?;
                MaskSpec::Round { step: p.step }
            }
            "token" => {
                let p: Option<TokenParams> = map.next_value()?;
                match p {
                    Some(p) => MaskSpec::Token {
                        format: p.format,
                        key: p.key,
                    },
                    None => MaskSpec::Token {
                        format: TokenFormat::Text,
                        key: default_key(),
                    },
                }
            }
            "noise" => {
                let p: NoiseParams = map.next_value()?;
                MaskSpec::Noise {
                    ratio: p.ratio,
                    key: p.key,
                }
            }
            "redact" | "null" | "email" | "phone" | "cn_name" | "address" | "uscc" => {
                let _: Option<NoParams> = map.next_value()?;
                MaskSpec::from_bare(&name).map_err(de::Error::custom)?
            }
            other => return Err(de::Error::custom(unknown_name(other))),
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "a mask is a single-key map; found a second key '{extra}' after '{name}'"
            )));
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<MaskSpec, String> {
        serde_saphyr::from_str::<MaskSpec>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn bare_names_and_maps() {
        assert_eq!(parse("email").unwrap(), MaskSpec::Email);
        assert_eq!(parse("null").unwrap(), MaskSpec::Null);
        assert_eq!(parse("'null'").unwrap(), MaskSpec::Null);
        assert_eq!(
            parse("cn_id").unwrap(),
            MaskSpec::CnId {
                keep_birth_year: false
            }
        );
        assert_eq!(
            parse("{ partial: { keep_first: 3, keep_last: 4 } }").unwrap(),
            MaskSpec::Partial {
                keep_first: 3,
                keep_last: 4,
                fill: '*',
                fixed_length: None
            }
        );
        assert_eq!(
            parse("partial:\n  keep_first: 1\n  fill: '#'\n  fixed_length: 3\n").unwrap(),
            MaskSpec::Partial {
                keep_first: 1,
                keep_last: 0,
                fill: '#',
                fixed_length: Some(3)
            }
        );
        assert_eq!(
            parse("{ cn_id: { keep_birth_year: true } }").unwrap(),
            MaskSpec::CnId {
                keep_birth_year: true
            }
        );
        assert_eq!(
            parse("{ token: { format: cn_id, key: main } }").unwrap(),
            MaskSpec::Token {
                format: TokenFormat::CnId,
                key: "main".into()
            }
        );
        assert_eq!(
            parse("{ date_trunc: { to: year } }").unwrap(),
            MaskSpec::DateTrunc { to: TruncUnit::Year }
        );
        assert_eq!(
            parse("{ bucket: { width: 10000 } }").unwrap(),
            MaskSpec::Bucket {
                width: Decimal {
                    mant: 10000,
                    scale: 0
                }
            }
        );
        assert_eq!(
            parse("{ round: { step: 0.05 } }").unwrap(),
            MaskSpec::Round {
                step: Decimal { mant: 5, scale: 2 }
            }
        );
        assert_eq!(
            parse("{ regex: { pattern: \"([0-9]{3})(.*)\", keep: [1] } }").unwrap(),
            MaskSpec::Regex {
                pattern: "([0-9]{3})(.*)".into(),
                keep: vec![1]
            }
        );
        assert_eq!(
            parse("{ noise: { ratio: 0.05, key: main } }").unwrap(),
            MaskSpec::Noise {
                ratio: 0.05,
                key: "main".into()
            }
        );
    }

    #[test]
    fn unknown_names_and_params_are_errors() {
        assert!(parse("emial").unwrap_err().contains("unknown mask 'emial'"));
        assert!(parse("{ partial: { keep_frist: 3 } }").is_err());
        assert!(parse("{ cn_id: { keep_birth_year: true, extra: 1 } }").is_err());
        assert!(parse("{ email: {}, phone: {} }")
            .unwrap_err()
            .contains("single-key"));
        assert!(parse("partial").unwrap_err().contains("needs parameters"));
        assert!(parse("{ bucket: { width: -5 } }").is_err());
        assert!(parse("{ bucket: { width: 0 } }").is_err());
        assert!(parse("{ date_trunc: { to: week } }").is_err());
    }

    #[test]
    fn decimal_display_round_trips() {
        for s in ["1", "0.5", "100", "0.05", "12.25"] {
            assert_eq!(Decimal::parse(s).unwrap().to_string(), s);
        }
    }
}
