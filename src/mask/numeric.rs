//! Number masks (`redact`, `bucket`, `round`, `noise`) over smallint, integer, bigint, numeric,
//! real and double precision, in text and binary format; and PostgreSQL's numeric wire format
//! (binary: base-10000 digits with weight, sign and display scale).
//!
//! `bucket` and `round` compute exactly in `i128` on values below 1e18 with at most 18
//! decimals; other numerics (NaN, ±Infinity, larger or finer values) give 0, and their SQL
//! twins say the same. The result's display scale is the larger of the value's and the
//! parameter's (PostgreSQL's own rule for `-` and `mod`), which for numeric(p,s) columns is `s`
//! because `Mask::new` refuses parameters finer than the column's scale. Results are clamped to
//! the column's range (smallint, numeric(p,s) precision...) so that the final cast never fails.
use super::spec::Decimal;
use super::sqlgen::{call, case};
use super::{ColumnType, Format, Kind};

/// Largest magnitude (exclusive) bucket/round compute on; beyond it the result is 0.
const SMALL_LIMIT: i128 = 1_000_000_000_000_000_000; // 1e18
const MAX_SMALL_SCALE: u32 = 18;

/// What a numeric result must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumTarget {
    Int {
        min: i64,
        max: i64,
        bytes: usize,
    },
    /// numeric; with a typmod, every value has `scale` decimals and at most
    /// `precision - scale` integer digits.
    Numeric {
        typmod: Option<(u32, u32)>,
    },
    Float,
}

impl NumTarget {
    pub(crate) fn of(ty: &ColumnType) -> NumTarget {
        match ty {
            ColumnType::Int2 => NumTarget::Int {
                min: i16::MIN.into(),
                max: i16::MAX.into(),
                bytes: 2,
            },
            ColumnType::Int4 => NumTarget::Int {
                min: i32::MIN.into(),
                max: i32::MAX.into(),
                bytes: 4,
            },
            ColumnType::Int8 => NumTarget::Int {
                min: i64::MIN,
                max: i64::MAX,
                bytes: 8,
            },
            ColumnType::NumericScaled { precision, scale } => NumTarget::Numeric {
                typmod: Some((*precision, (*scale).max(0) as u32)),
            },
            ColumnType::Numeric => NumTarget::Numeric { typmod: None },
            _ => NumTarget::Float,
        }
    }

    /// The display scale of every value of the column, when fixed.
    fn fixed_scale(&self) -> Option<u32> {
        match self {
            NumTarget::Int { .. } => Some(0),
            NumTarget::Numeric { typmod: Some((_, s)) } => Some(*s),
            _ => None,
        }
    }

    /// Largest magnitude, as a mantissa at the column's scale, that numeric(p,s) holds
    /// (p digits: 10^p - 1), when clamping can matter: results stay below 2e18 and have at
    /// most 18 decimals, so only columns with p - s <= 18 and s <= 18 need it.
    fn max_mant(&self, scale: u32) -> Option<i128> {
        match self {
            NumTarget::Numeric { typmod: Some((p, s)) }
                if *s == scale && *s <= MAX_SMALL_SCALE && p.saturating_sub(*s) <= 18 =>
            {
                Some(10i128.pow(*p) - 1)
            }
            _ => None,
        }
    }
}

/// Validates a `bucket`/`round` parameter for a column: `Err(None)` for a type mismatch.
pub(crate) fn check_step(mask: &str, ty: &ColumnType, d: &Decimal) -> Result<(), Option<String>> {
    match ty {
        ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8 => {
            if d.scale > 0 {
                return Err(Some(format!(
                    "{mask} {d} has decimals but the column holds integers"
                )));
            }
        }
        ColumnType::Numeric => {}
        ColumnType::NumericScaled { precision, scale } => {
            if *scale < 0 {
                return Err(Some("numeric with a negative scale supports only null".into()));
            }
            if d.scale > *scale as u32 {
                return Err(Some(format!(
                    "{mask} {d} is finer than the column's scale (numeric({precision},{scale}))"
                )));
            }
        }
        _ => return Err(None),
    }
    Ok(())
}

/// A decoded numeric value. `Fin::int` has no leading zeros (empty for 0); `frac` has exactly
/// the display scale's digits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Num {
    NaN,
    PosInf,
    NegInf,
    Fin { neg: bool, int: String, frac: String },
}

impl Num {
    pub(crate) fn parse_text(s: &str) -> Option<Num> {
        match s {
            "NaN" => return Some(Num::NaN),
            "Infinity" => return Some(Num::PosInf),
            "-Infinity" => return Some(Num::NegInf),
            _ => {}
        }
        let (neg, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        if body.contains('.') && frac.is_empty() {
            return None;
        }
        let int = int.trim_start_matches('0').to_string();
        let zero = int.is_empty() && frac.bytes().all(|b| b == b'0');
        Some(Num::Fin {
            neg: neg && !zero,
            int,
            frac: frac.to_string(),
        })
    }

    pub(crate) fn decode_binary(b: &[u8]) -> Option<Num> {
        if b.len() < 8 {
            return None;
        }
        let ndigits = u16::from_be_bytes([b[0], b[1]]) as usize;
        let weight = i16::from_be_bytes([b[2], b[3]]) as i32;
        let sign = u16::from_be_bytes([b[4], b[5]]);
        let dscale = u16::from_be_bytes([b[6], b[7]]) as usize;
        match sign {
            0xC000 => return Some(Num::NaN),
            0xD000 => return Some(Num::PosInf),
            0xF000 => return Some(Num::NegInf),
            0x0000 | 0x4000 => {}
            _ => return None,
        }
        if b.len() != 8 + 2 * ndigits || ndigits > 0x7fff || dscale > 0x3fff {
            return None;
        }
        let mut digits = Vec::with_capacity(ndigits);
        for k in 0..ndigits {
            let d = u16::from_be_bytes([b[8 + 2 * k], b[9 + 2 * k]]);
            if d >= 10000 {
                return None;
            }
            digits.push(d);
        }
        let group = |e: i32| -> u16 {
            // Group with base-10000 exponent e sits at index weight - e.
            let idx = weight - e;
            if idx >= 0 && (idx as usize) < digits.len() {
                digits[idx as usize]
            } else {
                0
            }
        };
        let mut int = String::new();
        if weight >= 0 {
            for e in (0..=weight).rev() {
                int.push_str(&format!("{:04}", group(e)));
            }
        }
        let int = int.trim_start_matches('0').to_string();
        let mut frac = String::with_capacity(dscale + 4);
        let mut e = -1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", group(e)));
            e -= 1;
        }
        frac.truncate(dscale);
        let zero = int.is_empty() && frac.bytes().all(|b| b == b'0');
        Some(Num::Fin {
            neg: sign == 0x4000 && !zero,
            int,
            frac,
        })
    }

    pub(crate) fn write_text(&self, out: &mut Vec<u8>) {
        match self {
            Num::NaN => out.extend_from_slice(b"NaN"),
            Num::PosInf => out.extend_from_slice(b"Infinity"),
            Num::NegInf => out.extend_from_slice(b"-Infinity"),
            Num::Fin { neg, int, frac } => {
                if *neg {
                    out.push(b'-');
                }
                if int.is_empty() {
                    out.push(b'0');
                } else {
                    out.extend_from_slice(int.as_bytes());
                }
                if !frac.is_empty() {
                    out.push(b'.');
                    out.extend_from_slice(frac.as_bytes());
                }
            }
        }
    }

    pub(crate) fn write_binary(&self, out: &mut Vec<u8>) {
        let (neg, int, frac) = match self {
            Num::NaN => return out.extend_from_slice(&[0, 0, 0, 0, 0xC0, 0, 0, 0]),
            Num::PosInf => return out.extend_from_slice(&[0, 0, 0, 0, 0xD0, 0, 0, 0]),
            Num::NegInf => return out.extend_from_slice(&[0, 0, 0, 0, 0xF0, 0, 0, 0]),
            Num::Fin { neg, int, frac } => (*neg, int.as_bytes(), frac.as_bytes()),
        };
        let ipad = (4 - int.len() % 4) % 4;
        let fpad = (4 - frac.len() % 4) % 4;
        let digit_at = |k: usize| -> u16 {
            // k-th decimal digit of the padded string "0"*ipad + int + frac + "0"*fpad.
            if k < ipad {
                0
            } else if k < ipad + int.len() {
                u16::from(int[k - ipad] - b'0')
            } else if k < ipad + int.len() + frac.len() {
                u16::from(frac[k - ipad - int.len()] - b'0')
            } else {
                0
            }
        };
        let total = ipad + int.len() + frac.len() + fpad;
        let mut groups: Vec<u16> = (0..total / 4)
            .map(|g| (0..4).fold(0u16, |acc, j| acc * 10 + digit_at(g * 4 + j)))
            .collect();
        let mut weight = ((ipad + int.len()) / 4) as i32 - 1;
        let lead = groups.iter().take_while(|&&g| g == 0).count();
        groups.drain(..lead);
        weight -= lead as i32;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        let (weight, sign) = if groups.is_empty() {
            (0, 0u16)
        } else {
            (weight, if neg { 0x4000 } else { 0 })
        };
        out.extend_from_slice(&(groups.len() as u16).to_be_bytes());
        out.extend_from_slice(&(weight as i16).to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&(frac.len() as u16).to_be_bytes());
        for g in groups {
            out.extend_from_slice(&g.to_be_bytes());
        }
    }

    /// `(mantissa, scale)` when below 1e18 in magnitude with at most 18 decimals.
    fn small(&self) -> Option<(i128, u32)> {
        let Num::Fin { neg, int, frac } = self else {
            return None;
        };
        if int.len() > 18 || frac.len() > MAX_SMALL_SCALE as usize {
            return None;
        }
        let mut m: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            m = m * 10 + i128::from(b - b'0');
        }
        Some((if *neg { -m } else { m }, frac.len() as u32))
    }

    fn from_small(m: i128, scale: u32) -> Num {
        let digits = m.unsigned_abs().to_string();
        let s = scale as usize;
        let (int, frac) = if digits.len() > s {
            let (i, f) = digits.split_at(digits.len() - s);
            (i.trim_start_matches('0').to_string(), f.to_string())
        } else {
            (
                String::new(),
                format!("{}{}", "0".repeat(s - digits.len()), digits),
            )
        };
        Num::Fin {
            neg: m < 0,
            int,
            frac,
        }
    }

    fn zero(scale: u32) -> Num {
        Num::Fin {
            neg: false,
            int: String::new(),
            frac: "0".repeat(scale as usize),
        }
    }

    /// Canonical bytes for keyed noise: equal values in text and binary give equal bytes.
    fn canonical(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_text(&mut v);
        v
    }

    fn to_f64(&self) -> f64 {
        match self {
            Num::NaN => f64::NAN,
            Num::PosInf => f64::INFINITY,
            Num::NegInf => f64::NEG_INFINITY,
            Num::Fin { .. } => {
                let mut v = Vec::new();
                self.write_text(&mut v);
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0.0)
            }
        }
    }
}

/// 10^k as i128 (k <= 36).
fn pow10(k: u32) -> i128 {
    10i128.pow(k)
}

/// Bucket lower bound or nearest multiple, on mantissas at a common scale.
fn step_small(m: i128, w: i128, round: bool) -> i128 {
    if round {
        let r = m % w;
        let base = m - r;
        if 2 * r.abs() >= w {
            base + m.signum() * w
        } else {
            base
        }
    } else {
        m - m.rem_euclid(w)
    }
}

/// Applies `bucket`/`round` to a small value: result mantissa and scale, clamped to the target.
fn step_value(m: i128, s: u32, d: &Decimal, round: bool, target: NumTarget) -> (i128, u32) {
    let scale = s.max(d.scale);
    let mm = m * pow10(scale - s);
    let w = d.mant * pow10(scale - d.scale);
    let mut r = step_small(mm, w, round);
    let mut scale = scale;
    // numeric(p,s): a value PostgreSQL sends always has scale s, so this only matters for
    // malformed input; the cast in the SQL twin rounds the same way (half away from zero).
    if let NumTarget::Numeric {
        typmod: Some((_, fixed)),
    } = target
    {
        if scale < fixed {
            r *= pow10(fixed - scale);
        } else if scale > fixed {
            let p = pow10(scale - fixed);
            let q = r / p;
            let rem = r % p;
            r = if 2 * rem.abs() >= p { q + r.signum() } else { q };
        }
        scale = fixed;
    }
    if let Some(max) = target.max_mant(scale) {
        r = r.clamp(-max, max);
    }
    (r, scale)
}

fn int_text(v: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(v.to_string().as_bytes());
}

fn int_binary(v: i64, bytes: usize, out: &mut Vec<u8>) {
    let be = v.to_be_bytes();
    out.extend_from_slice(&be[8 - bytes..]);
}

fn parse_int(value: &[u8], format: Format, bytes: usize, min: i64, max: i64) -> Option<i64> {
    let v = match format {
        Format::Text => std::str::from_utf8(value).ok()?.parse::<i64>().ok()?,
        Format::Binary => match (bytes, value.len()) {
            (2, 2) => i64::from(i16::from_be_bytes([value[0], value[1]])),
            (4, 4) => i64::from(i32::from_be_bytes([value[0], value[1], value[2], value[3]])),
            (8, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(value);
                i64::from_be_bytes(b)
            }
            _ => return None,
        },
    };
    (min..=max).contains(&v).then_some(v)
}

pub(crate) fn apply_int(kind: &Kind, ty: &ColumnType, value: &[u8], format: Format, out: &mut Vec<u8>) {
    let NumTarget::Int { min, max, bytes } = NumTarget::of(ty) else {
        return;
    };
    let result = match parse_int(value, format, bytes, min, max) {
        None => 0,
        Some(v) => match kind {
            Kind::Bucket(d) | Kind::Round(d) => {
                let r = step_small(i128::from(v), d.mant, matches!(kind, Kind::Round(_)));
                r.clamp(i128::from(min), i128::from(max)) as i64
            }
            Kind::Noise(n) => {
                let f = n.factor(&v.to_le_bytes());
                let x = (v as f64 * f).round();
                if x.is_nan() {
                    0
                } else {
                    (x.clamp(min as f64, max as f64)) as i64
                }
            }
            _ => 0,
        },
    };
    match format {
        Format::Text => int_text(result, out),
        Format::Binary => int_binary(result, bytes, out),
    }
}

pub(crate) fn apply_numeric(kind: &Kind, target: NumTarget, value: &[u8], format: Format, out: &mut Vec<u8>) {
    let input = match format {
        Format::Text => std::str::from_utf8(value).ok().and_then(Num::parse_text),
        Format::Binary => Num::decode_binary(value),
    };
    let zero = Num::zero(target.fixed_scale().unwrap_or(0));
    let result = match (kind, input) {
        (_, None) | (Kind::Redact, _) => zero,
        (Kind::Bucket(d) | Kind::Round(d), Some(n)) => match n.small() {
            Some((m, s)) => {
                let (r, scale) = step_value(m, s, d, matches!(kind, Kind::Round(_)), target);
                Num::from_small(r, scale)
            }
            None => zero,
        },
        (Kind::Noise(nm), Some(n)) => match n {
            Num::Fin { ref frac, .. } => {
                let scale = target.fixed_scale().unwrap_or(frac.len() as u32);
                let x = n.to_f64() * nm.factor(&n.canonical());
                let s = format!("{x:.prec$}", prec = scale as usize);
                let r = Num::parse_text(&s).unwrap_or_else(|| Num::zero(scale));
                match (target.max_mant(scale), r.small()) {
                    (Some(max), Some((m, sc))) => Num::from_small(m.clamp(-max, max), sc),
                    // Too large for the column: the column's extreme of the same sign.
                    (Some(max), None) => {
                        let neg = matches!(r, Num::Fin { neg: true, .. });
                        Num::from_small(if neg { -max } else { max }, scale)
                    }
                    (None, _) => r,
                }
            }
            other => other,
        },
        _ => zero,
    };
    match format {
        Format::Text => result.write_text(out),
        Format::Binary => result.write_binary(out),
    }
}

/// PostgreSQL-style shortest float text (`1e+20`, `1.5e-07`, `Infinity`).
fn float_text(x: f64, single: bool, out: &mut Vec<u8>) {
    if x.is_nan() {
        return out.extend_from_slice(b"NaN");
    }
    if x.is_infinite() {
        return out.extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" });
    }
    let sci = if single {
        format!("{:e}", x as f32)
    } else {
        format!("{x:e}")
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let limit = if single { 6 } else { 15 };
    if (-4..limit).contains(&exp) {
        let s = if single {
            format!("{}", x as f32)
        } else {
            format!("{x}")
        };
        out.extend_from_slice(s.as_bytes());
    } else {
        out.extend_from_slice(mant.as_bytes());
        out.extend_from_slice(format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()).as_bytes());
    }
}

pub(crate) fn apply_float(kind: &Kind, ty: &ColumnType, value: &[u8], format: Format, out: &mut Vec<u8>) {
    let single = matches!(ty, ColumnType::Float4);
    let input: Option<f64> = match format {
        Format::Text => std::str::from_utf8(value).ok().and_then(|s| {
            if single {
                s.parse::<f32>().ok().map(f64::from)
            } else {
                s.parse::<f64>().ok()
            }
        }),
        Format::Binary => match (single, value.len()) {
            (true, 4) => Some(f64::from(f32::from_be_bytes([
                value[0], value[1], value[2], value[3],
            ]))),
            (false, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(value);
                Some(f64::from_be_bytes(b))
            }
            _ => None,
        },
    };
    let result = match (kind, input) {
        (Kind::Noise(n), Some(x)) if x.is_finite() => {
            let y = x * n.factor(&x.to_bits().to_le_bytes());
            if single {
                f64::from(y as f32)
            } else {
                y
            }
        }
        (Kind::Noise(_), Some(x)) => x,
        _ => 0.0,
    };
    match format {
        Format::Text => float_text(result, single, out),
        Format::Binary if single => out.extend_from_slice(&(result as f32).to_be_bytes()),
        Format::Binary => out.extend_from_slice(&result.to_be_bytes()),
    }
}

/// SQL twin of `bucket` (`round` = false) and `round` over a numeric or integer column.
pub(crate) fn sql_bucket(d: &Decimal, target: NumTarget, col: &str, round: bool) -> String {
    let x = format!("CAST({col} AS pg_catalog.numeric)");
    let w = format!("'{d}'::pg_catalog.numeric");
    let m = |a: &str| call("mod", &[a, &w]);
    let sub = |a: &str, b: &str| format!("({a} OPERATOR(pg_catalog.-) {b})");
    let add = |a: &str, b: &str| format!("({a} OPERATOR(pg_catalog.+) {b})");
    let mul = |a: &str, b: &str| format!("({a} OPERATOR(pg_catalog.*) {b})");
    let value = if round {
        let r = m(&x);
        let base = sub(&x, &r);
        let away = add(&base, &mul(&call("sign", &[&x]), &w));
        case(
            &[(
                format!(
                    "({} OPERATOR(pg_catalog.>=) {w})",
                    mul(&call("abs", &[&r]), "2::pg_catalog.numeric")
                ),
                away,
            )],
            &base,
        )
    } else {
        sub(&x, &m(&add(&m(&x), &w)))
    };
    match target {
        NumTarget::Int { min, max, .. } => {
            format!("LEAST(GREATEST({value}, {min}::pg_catalog.numeric), {max}::pg_catalog.numeric)")
        }
        NumTarget::Numeric { typmod } => {
            let clamped = match (typmod, target.max_mant(typmod.map_or(0, |t| t.1))) {
                (Some((_, s)), Some(max)) => {
                    let max = Num::from_small(max, s);
                    let mut t = Vec::new();
                    max.write_text(&mut t);
                    let t = String::from_utf8_lossy(&t).into_owned();
                    format!("LEAST(GREATEST({value}, '-{t}'::pg_catalog.numeric), '{t}'::pg_catalog.numeric)")
                }
                _ => value,
            };
            let guard = format!(
                "({} OPERATOR(pg_catalog.<) '{SMALL_LIMIT}'::pg_catalog.numeric AND {} OPERATOR(pg_catalog.<=) {MAX_SMALL_SCALE})",
                call("abs", &[&x]),
                call("scale", &[&x])
            );
            case(&[(guard, clamped)], "0::pg_catalog.numeric")
        }
        NumTarget::Float => "0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) {
        let n = Num::parse_text(s).unwrap();
        let mut b = Vec::new();
        n.write_binary(&mut b);
        let back = Num::decode_binary(&b).unwrap();
        let mut t = Vec::new();
        back.write_text(&mut t);
        assert_eq!(String::from_utf8(t).unwrap(), s, "binary round trip of {s}");
    }

    #[test]
    fn numeric_binary_round_trip() {
        for s in [
            "0",
            "0.00",
            "1",
            "-1",
            "12345.678",
            "0.0001",
            "-0.00012",
            "10000",
            "99999999.99",
            "NaN",
            "Infinity",
            "-Infinity",
            "123456789012345678901234567890.5",
        ] {
            rt(s);
        }
    }

    #[test]
    fn known_binary_layout() {
        // 12345.678 = [1, 2345, 6780], weight 1, dscale 3.
        let mut b = Vec::new();
        Num::parse_text("12345.678").unwrap().write_binary(&mut b);
        assert_eq!(b, vec![0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C]);
    }

    #[test]
    fn clamp_bounds_follow_precision() {
        // numeric(5,2) holds up to 999.99; numeric(3,5) (scale > precision) up to 0.00999.
        assert_eq!(
            NumTarget::Numeric { typmod: Some((5, 2)) }.max_mant(2),
            Some(99_999)
        );
        assert_eq!(NumTarget::Numeric { typmod: Some((3, 5)) }.max_mant(5), Some(999));
        assert_eq!(
            NumTarget::Numeric {
                typmod: Some((40, 2))
            }
            .max_mant(2),
            None
        );
        let sql = sql_bucket(
            &Decimal { mant: 1, scale: 5 },
            NumTarget::Numeric { typmod: Some((3, 5)) },
            "v",
            true,
        );
        assert!(sql.contains("'0.00999'"), "{sql}");
    }

    #[test]
    fn steps() {
        assert_eq!(step_small(12345, 10000, false), 10000);
        assert_eq!(step_small(-1, 10000, false), -10000);
        assert_eq!(step_small(150, 100, true), 200);
        assert_eq!(step_small(-150, 100, true), -200);
        assert_eq!(step_small(149, 100, true), 100);
    }

    #[test]
    fn float_format() {
        let f = |x: f64| {
            let mut o = Vec::new();
            float_text(x, false, &mut o);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1.5e-7), "1.5e-07");
        assert_eq!(f(123.25), "123.25");
        assert_eq!(f(0.0), "0");
    }
}
