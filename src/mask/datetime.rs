//! Date and timestamp masks (`redact`, `date_trunc`) in text (DateStyle ISO) and binary
//! format (days or microseconds since 2000-01-01; `timestamptz` in UTC).
//!
//! Calendar: proleptic Gregorian with astronomical years (year 0 = 1 BC), as PostgreSQL.
//! `timestamptz` truncates in UTC (binary values carry no zone, so text and binary agree);
//! text results are rendered with the input's UTC offset. Results below the smallest value the
//! type holds (the first days of 4714 BC) become `-infinity`, as do their SQL twins, which
//! would otherwise fail with "timestamp out of range". `±infinity` stays as it is.
use super::spec::TruncUnit;
use super::sqlgen::{call, case, op};
use super::{ColumnType, Format, Kind};

const USECS_PER_DAY: i64 = 86_400_000_000;
/// 1970-01-01 to 2000-01-01.
const UNIX_TO_PG_DAYS: i64 = 10_957;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 2000-01-01.
fn pg_days(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) - UNIX_TO_PG_DAYS
}

/// First valid day of a truncation result: before it, the result would be out of range.
fn min_input_day(unit: TruncUnit) -> i64 {
    match unit {
        // 4713-01-01 BC: everything earlier truncates to 4714-01-01 BC, out of range.
        TruncUnit::Year => pg_days(-4712, 1, 1),
        // 4714-12-01 BC.
        TruncUnit::Month => pg_days(-4713, 12, 1),
    }
}

/// Truncates a day number; `None` means the result is out of range (-infinity).
fn trunc_day(days: i64, unit: TruncUnit) -> Option<i64> {
    if days < min_input_day(unit) {
        return None;
    }
    let (y, m, _) = civil_from_days(days + UNIX_TO_PG_DAYS);
    Some(match unit {
        TruncUnit::Year => pg_days(y, 1, 1),
        TruncUnit::Month => pg_days(y, m, 1),
    })
}

/// A parsed date or timestamp: day number or microseconds since 2000-01-01, or an infinity.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    At(i64),
    PosInf,
    NegInf,
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
}

/// `YYYY-MM-DD` (4+ digit year) → (astronomical-before-BC year, month, day, rest).
fn parse_ymd(s: &[u8]) -> Option<(i64, u32, u32, &[u8])> {
    let dash = s.iter().position(|&b| b == b'-')?;
    if dash < 4 || s.len() < dash + 6 || s[dash + 3] != b'-' {
        return None;
    }
    let y = digits(&s[..dash])?;
    let m = digits(&s[dash + 1..dash + 3])? as u32;
    let d = digits(&s[dash + 4..dash + 6])? as u32;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1 {
        return None;
    }
    Some((y, m, d, &s[dash + 6..]))
}

/// Splits a trailing ` BC`.
fn strip_bc(s: &[u8]) -> (&[u8], bool) {
    match s.strip_suffix(b" BC") {
        Some(r) => (r, true),
        None => (s, false),
    }
}

fn parse_date_text(s: &[u8]) -> Option<When> {
    match s {
        b"infinity" => return Some(When::PosInf),
        b"-infinity" => return Some(When::NegInf),
        _ => {}
    }
    let (s, bc) = strip_bc(s);
    let (y, m, d, rest) = parse_ymd(s)?;
    if !rest.is_empty() {
        return None;
    }
    let y = if bc { 1 - y } else { y };
    Some(When::At(pg_days(y, m, d)))
}

/// Parses `HH:MM:SS[.ffffff]` then, with `tz`, `±HH[:MM[:SS]]`. Returns (micros of day,
/// offset seconds east of UTC).
fn parse_time(s: &[u8], tz: bool) -> Option<(i64, i32)> {
    if s.len() < 9 || s[0] != b' ' || s[3] != b':' || s[6] != b':' {
        return None;
    }
    let h = digits(&s[1..3])?;
    let mi = digits(&s[4..6])?;
    let se = digits(&s[7..9])?;
    if h > 24 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 9;
    let mut micros = 0i64;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        let f = &s[start..i];
        if f.is_empty() || f.len() > 6 {
            return None;
        }
        micros = digits(f)? * 10i64.pow(6 - f.len() as u32);
    }
    let mut offset = 0i32;
    if tz {
        let sign = match s.get(i) {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return None,
        };
        i += 1;
        let mut parts = [0i64; 3];
        for (k, part) in parts.iter_mut().enumerate() {
            if k > 0 {
                if s.get(i) != Some(&b':') {
                    break;
                }
                i += 1;
            }
            *part = digits(s.get(i..i + 2)?)?;
            i += 2;
        }
        if parts[1] > 59 || parts[2] > 59 {
            return None;
        }
        offset = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]) as i32;
    }
    if i != s.len() {
        return None;
    }
    Some(((h * 3600 + mi * 60 + se) * 1_000_000 + micros, offset))
}

/// Parses a timestamp (local wall time for `timestamptz`, with its offset).
fn parse_ts_text(s: &[u8], tz: bool) -> Option<(When, i32)> {
    match s {
        b"infinity" => return Some((When::PosInf, 0)),
        b"-infinity" => return Some((When::NegInf, 0)),
        _ => {}
    }
    let (s, bc) = strip_bc(s);
    let (y, m, d, rest) = parse_ymd(s)?;
    let (tod, offset) = parse_time(rest, tz)?;
    let y = if bc { 1 - y } else { y };
    let days = pg_days(y, m, d);
    let local = days.checked_mul(USECS_PER_DAY)?.checked_add(tod)?;
    Some((When::At(local), offset))
}

/// Appends `v` in decimal, zero-padded to at least `width` digits (no allocation).
fn push_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend_from_slice(&buf[start..]);
}

fn write_ymd(days: i64, out: &mut Vec<u8>) -> bool {
    let (y, m, d) = civil_from_days(days + UNIX_TO_PG_DAYS);
    let (yy, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    push_padded(out, yy.unsigned_abs(), 4);
    out.push(b'-');
    push_padded(out, u64::from(m), 2);
    out.push(b'-');
    push_padded(out, u64::from(d), 2);
    bc
}

fn write_date_text(w: When, out: &mut Vec<u8>) {
    match w {
        When::PosInf => out.extend_from_slice(b"infinity"),
        When::NegInf => out.extend_from_slice(b"-infinity"),
        When::At(days) => {
            if write_ymd(days, out) {
                out.extend_from_slice(b" BC");
            }
        }
    }
}

/// Writes a local wall-clock timestamp, with `±HH[:MM[:SS]]` when `offset` is given.
fn write_ts_text(w: When, offset: Option<i32>, out: &mut Vec<u8>) {
    let local = match w {
        When::PosInf => return out.extend_from_slice(b"infinity"),
        When::NegInf => return out.extend_from_slice(b"-infinity"),
        When::At(us) => us,
    };
    let days = local.div_euclid(USECS_PER_DAY);
    let tod = local.rem_euclid(USECS_PER_DAY);
    let bc = write_ymd(days, out);
    let secs = tod / 1_000_000;
    let frac = tod % 1_000_000;
    let secs = secs as u64;
    out.push(b' ');
    push_padded(out, secs / 3600, 2);
    out.push(b':');
    push_padded(out, secs / 60 % 60, 2);
    out.push(b':');
    push_padded(out, secs % 60, 2);
    if frac != 0 {
        out.push(b'.');
        let start = out.len();
        push_padded(out, frac as u64, 6);
        while out.len() > start && out[out.len() - 1] == b'0' {
            out.pop();
        }
    }
    if let Some(off) = offset {
        let a = u64::from(off.unsigned_abs());
        out.push(if off < 0 { b'-' } else { b'+' });
        push_padded(out, a / 3600, 2);
        if a % 3600 != 0 {
            out.push(b':');
            push_padded(out, a / 60 % 60, 2);
            if a % 60 != 0 {
                out.push(b':');
                push_padded(out, a % 60, 2);
            }
        }
    }
    if bc {
        out.extend_from_slice(b" BC");
    }
}

/// Redact constants: 1900-01-01 for date and timestamp; the Unix epoch for timestamptz
/// (1900 would render with odd local-mean-time offsets in many zones).
fn redact_day(ty: &ColumnType) -> i64 {
    match ty {
        ColumnType::Timestamptz => pg_days(1970, 1, 1),
        _ => pg_days(1900, 1, 1),
    }
}

/// PostgreSQL's range of dates (days since 2000-01-01): Julian day 0 to 5874897-12-31.
const DATE_MIN: i64 = -2_451_545;
const DATE_MAX: i64 = 2_145_031_948;
/// PostgreSQL's range of timestamps (µs since 2000-01-01): 4714-11-24 BC to 294277-01-01
/// (exclusive; timestamp(p) rounding may store exactly that end, see the SQL twin).
const TS_MIN: i64 = DATE_MIN * USECS_PER_DAY;
const TS_END: i64 = 106_751_983 * USECS_PER_DAY;

fn in_range(w: When, per_day: i64) -> bool {
    match w {
        When::At(v) if per_day == 1 => (DATE_MIN..=DATE_MAX).contains(&v),
        When::At(v) => (TS_MIN..=TS_END).contains(&v),
        _ => true,
    }
}

fn mask_when(kind: &Kind, ty: &ColumnType, w: Option<When>, per_day: i64) -> When {
    // Values PostgreSQL cannot hold are malformed input: they get the redact constant.
    let w = w.filter(|w| in_range(*w, per_day));
    match (kind, w) {
        (Kind::DateTrunc(unit), Some(When::At(v))) => {
            let days = v.div_euclid(per_day);
            match trunc_day(days, *unit) {
                Some(d) => When::At(d * per_day),
                None => When::NegInf,
            }
        }
        (Kind::DateTrunc(_), Some(inf)) => inf,
        _ => When::At(redact_day(ty) * per_day),
    }
}

pub(crate) fn apply(kind: &Kind, ty: &ColumnType, value: &[u8], format: Format, out: &mut Vec<u8>) {
    match (ty, format) {
        (ColumnType::Date, Format::Text) => {
            let w = mask_when(kind, ty, parse_date_text(value), 1);
            write_date_text(w, out);
        }
        (ColumnType::Date, Format::Binary) => {
            let w = <[u8; 4]>::try_from(value)
                .ok()
                .map(|b| match i32::from_be_bytes(b) {
                    i32::MAX => When::PosInf,
                    i32::MIN => When::NegInf,
                    d => When::At(i64::from(d)),
                });
            let v = match mask_when(kind, ty, w, 1) {
                When::PosInf => i32::MAX,
                When::NegInf => i32::MIN,
                When::At(d) => d as i32,
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
        (ColumnType::Timestamp | ColumnType::Timestamptz, Format::Text) => {
            let tz = matches!(ty, ColumnType::Timestamptz);
            let parsed = parse_ts_text(value, tz);
            let offset_us = parsed.map_or(0, |(_, o)| i64::from(o) * 1_000_000);
            // To UTC (timestamptz), mask, back to the input's wall clock.
            let utc = parsed.map(|(w, _)| match w {
                When::At(l) => When::At(l - offset_us),
                other => other,
            });
            let w = match mask_when(kind, ty, utc, USECS_PER_DAY) {
                When::At(u) => When::At(u + offset_us),
                other => other,
            };
            write_ts_text(w, tz.then_some(parsed.map_or(0, |(_, o)| o)), out);
        }
        (ColumnType::Timestamp | ColumnType::Timestamptz, Format::Binary) => {
            let w = <[u8; 8]>::try_from(value)
                .ok()
                .map(|b| match i64::from_be_bytes(b) {
                    i64::MAX => When::PosInf,
                    i64::MIN => When::NegInf,
                    u => When::At(u),
                });
            let v = match mask_when(kind, ty, w, USECS_PER_DAY) {
                When::PosInf => i64::MAX,
                When::NegInf => i64::MIN,
                When::At(u) => u,
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
        _ => {}
    }
}

/// SQL twin of `date_trunc`.
pub(crate) fn sql(unit: TruncUnit, ty: &ColumnType, col: &str) -> String {
    // Mirrors `min_input_day`.
    let min = match unit {
        TruncUnit::Year => "4713-01-01",
        TruncUnit::Month => "4714-12-01",
    };
    let unit_name = match unit {
        TruncUnit::Year => "year",
        TruncUnit::Month => "month",
    };
    let (tname, min_lit, max_lit, trunc) = match ty {
        ColumnType::Date => {
            // extract(), not date_part(): date_part(text, date) goes through timestamp and
            // fails for dates beyond 294276 AD.
            let part = if unit == TruncUnit::Year { "doy" } else { "day" };
            let n = format!(
                "CAST({} AS pg_catalog.int4)",
                call("extract", &[&format!("'{part}'"), col])
            );
            (
                "pg_catalog.date",
                format!("'{min} BC'"),
                None,
                op(col, "-", &op(&n, "-", "1")),
            )
        }
        ColumnType::Timestamp => (
            "pg_catalog.timestamp",
            format!("'{min} 00:00:00 BC'"),
            Some("'294276-12-31 23:59:59.999999'"),
            call("date_trunc", &[&format!("'{unit_name}'"), col]),
        ),
        _ => (
            "pg_catalog.timestamptz",
            format!("'{min} 00:00:00+00 BC'"),
            Some("'294276-12-31 23:59:59.999999+00'"),
            call("date_trunc", &[&format!("'{unit_name}'"), col, "'UTC'"]),
        ),
    };
    let mut whens = vec![
        (format!("NOT {}", call("isfinite", &[col])), col.to_string()),
        (
            op(col, "<", &format!("{min_lit}::{tname}")),
            format!("'-infinity'::{tname}"),
        ),
    ];
    if let Some(max) = max_lit {
        // timestamp(p) rounding can store 294277-01-01 00:00:00, one tick past the range, on
        // which date_trunc fails; it is its own truncation.
        whens.push((op(col, ">", &format!("{max}::{tname}")), col.to_string()));
    }
    case(&whens, &trunc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(kind: &Kind, ty: &ColumnType, s: &str) -> String {
        let mut out = Vec::new();
        apply(kind, ty, s.as_bytes(), Format::Text, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn civil_round_trip() {
        for d in [-2_451_545i64, -1, 0, 1, 10_957, 2_000_000, -1_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(pg_days(2000, 1, 1), 0);
        // PostgreSQL's smallest date, Julian day 0.
        assert_eq!(pg_days(-4713, 11, 24), -2_451_545);
    }

    #[test]
    fn range_constants() {
        assert_eq!(pg_days(5_874_897, 12, 31), DATE_MAX);
        assert_eq!(pg_days(294_277, 1, 1), 106_751_983);
    }

    #[test]
    fn truncation_text() {
        let y = Kind::DateTrunc(TruncUnit::Year);
        let m = Kind::DateTrunc(TruncUnit::Month);
        assert_eq!(text(&y, &ColumnType::Date, "2023-05-06"), "2023-01-01");
        assert_eq!(text(&m, &ColumnType::Date, "0044-03-15 BC"), "0044-03-01 BC");
        assert_eq!(text(&y, &ColumnType::Date, "4714-11-24 BC"), "-infinity");
        assert_eq!(text(&y, &ColumnType::Date, "infinity"), "infinity");
        assert_eq!(
            text(&y, &ColumnType::Timestamp, "2023-05-06 12:34:56.789"),
            "2023-01-01 00:00:00"
        );
        assert_eq!(
            text(&m, &ColumnType::Timestamptz, "2023-05-06 12:34:56+08"),
            "2023-05-01 08:00:00+08"
        );
        assert_eq!(
            text(&y, &ColumnType::Timestamptz, "2023-01-01 03:00:00+08"),
            "2022-01-01 08:00:00+08"
        );
        assert_eq!(
            text(
                &Kind::Redact,
                &ColumnType::Timestamptz,
                "2023-01-01 03:00:00+05:30"
            ),
            "1970-01-01 05:30:00+05:30"
        );
        assert_eq!(text(&Kind::Redact, &ColumnType::Date, "garbage"), "1900-01-01");
        assert_eq!(text(&y, &ColumnType::Date, "garbage"), "1900-01-01");
    }
}
