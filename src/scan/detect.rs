//! Pure detectors: does one value look like personal data, and does a column name hint at it?
//!
//! [`detect`] judges a single value by its *structure*, with the checks that make look-alikes
//! fail: a resident ID needs its MOD 11-2 check character, a real birth date and an existing
//! province+city code; a bank card needs the Luhn check, a card length and a card BIN range;
//! a mobile number needs a carrier prefix; a USCC its GB 32100-2015 check character. An
//! 18-digit order number, an EAN-13 barcode, a `400` hotline or epoch milliseconds therefore
//! do not match. Text that merely *contains* an ID, mobile number, card or email is
//! [`Detector::FreeText`].
//!
//! [`name_hint`] reads a column name in English (snake_case or camelCase), pinyin (full or
//! initials: `sfzh`, `shouji`, `yhk`) and hanzi (`身份证`, `手机`).
//!
//! Invariants: pure, no I/O, never panics on any input; no function here formats or returns
//! the value it was given (callers keep sampled values out of logs and messages).
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use super::lexicon;

/// What a value (or a column) looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// PRC resident identity number (GB 11643).
    CnId,
    /// Payment card number.
    BankCard,
    /// Mainland mobile number (11 digits, optionally +86).
    Mobile,
    /// Mainland landline with area code (`0755-12345678`).
    Landline,
    Email,
    Ipv4,
    Ipv6,
    /// PRC passport number.
    Passport,
    /// Unified social credit code of an organisation (GB 32100-2015).
    Uscc,
    /// Vehicle licence plate (`京A12345`, new-energy `粤BD12345`).
    Plate,
    /// Chinese personal name (known surname + 1-2 characters).
    CnName,
    /// Postal address (province or city name + street-level words).
    Address,
    /// Free text that contains an ID, mobile number, card number or email.
    FreeText,
    /// Date of birth: judged by column name only (a date alone says nothing).
    BirthDate,
    /// Salary or income: judged by column name only.
    Salary,
}

impl Detector {
    pub const ALL: [Detector; 15] = [
        Detector::CnId,
        Detector::BankCard,
        Detector::Mobile,
        Detector::Landline,
        Detector::Email,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::Passport,
        Detector::Uscc,
        Detector::Plate,
        Detector::CnName,
        Detector::Address,
        Detector::FreeText,
        Detector::BirthDate,
        Detector::Salary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Detector::CnId => "cn_id",
            Detector::BankCard => "bank_card",
            Detector::Mobile => "mobile",
            Detector::Landline => "landline",
            Detector::Email => "email",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::Passport => "passport",
            Detector::Uscc => "uscc",
            Detector::Plate => "plate",
            Detector::CnName => "cn_name",
            Detector::Address => "address",
            Detector::FreeText => "free_text",
            Detector::BirthDate => "birth_date",
            Detector::Salary => "salary",
        }
    }

    /// What a content match of this detector checked, for the evidence comment.
    pub fn checks(self) -> &'static str {
        match self {
            Detector::CnId => "check char valid, real date and region",
            Detector::BankCard => "Luhn valid, card length and BIN",
            Detector::Mobile => "carrier prefix",
            Detector::Landline => "area code",
            Detector::Email => "address syntax",
            Detector::Ipv4 | Detector::Ipv6 => "address syntax",
            Detector::Passport => "passport number format",
            Detector::Uscc => "check char valid",
            Detector::Plate => "province and plate format",
            Detector::CnName => "surname list",
            Detector::Address => "place names and street words",
            Detector::FreeText => "contains an ID, mobile, card or email",
            Detector::BirthDate | Detector::Salary => "column name",
        }
    }

    /// Whether a column's content can confirm or contradict this detector (dates of birth
    /// and salaries look like any other date or amount).
    pub fn content_checkable(self) -> bool {
        !matches!(self, Detector::BirthDate | Detector::Salary)
    }

    /// Detectors that stand for the same kind of data (a phone column mixes mobiles and
    /// landlines; an IP column mixes v4 and v6).
    pub fn family(self) -> u8 {
        match self {
            Detector::Mobile | Detector::Landline => 1,
            Detector::Ipv4 | Detector::Ipv6 => 2,
            other => 10 + other as u8,
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies one value: the whole value first (most specific detector wins), then
/// identifiers embedded in longer text. `None` when nothing personal is recognised.
pub fn detect(value: &str) -> Option<Detector> {
    let v = value.trim();
    if v.is_empty() || v.len() > 4000 {
        return None;
    }
    whole(v).or_else(|| {
        if contains_identifier(v) {
            Some(Detector::FreeText)
        } else {
            None
        }
    })
}

/// Whole-value detectors, most specific first.
fn whole(v: &str) -> Option<Detector> {
    if is_resident_id(v) {
        return Some(Detector::CnId);
    }
    if id_shaped(v) {
        // The layout of a resident ID (real region, real date) with a wrong check
        // character: an order number or a typo, not a card or a USCC that happens to pass
        // their own (weaker) checks.
        return None;
    }
    if is_uscc(v) {
        return Some(Detector::Uscc);
    }
    if is_bank_card(v) {
        return Some(Detector::BankCard);
    }
    if is_mobile(v) {
        return Some(Detector::Mobile);
    }
    if is_landline(v) {
        return Some(Detector::Landline);
    }
    if is_email(v) {
        return Some(Detector::Email);
    }
    if v.parse::<Ipv4Addr>().is_ok() {
        return Some(Detector::Ipv4);
    }
    if v.contains(':') && v.parse::<Ipv6Addr>().is_ok() {
        return Some(Detector::Ipv6);
    }
    if is_passport(v) {
        return Some(Detector::Passport);
    }
    if is_plate(v) {
        return Some(Detector::Plate);
    }
    if is_cn_name(v) {
        return Some(Detector::CnName);
    }
    if is_address(v) {
        return Some(Detector::Address);
    }
    None
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns are constants of this file, checked by the tests: compiling cannot fail.
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|e| unreachable!("bad built-in pattern: {e}")))
}

/// An 18-character resident ID: check character, a real date (not in the future), and a
/// province + city prefix that exists in GB/T 2260.
pub fn is_resident_id(v: &str) -> bool {
    if v.len() != 18 {
        return false;
    }
    let upper = v.to_ascii_uppercase();
    if !crate::mask::is_valid_resident_id(&upper) {
        return false;
    }
    let b = upper.as_bytes();
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
    // The validator accepts years up to 2099; nobody alive was born after this year.
    let year = num(6..10);
    if !(1900..=current_year()).contains(&year) {
        return false;
    }
    lexicon::city_prefix_exists(num(0..4))
}

/// 17 digits and any check character, with a real province+city prefix and a real birth
/// date where a resident ID has them.
fn id_shaped(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) || !(b[17].is_ascii_digit() || b[17] == b'X')
    {
        return false;
    }
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
    let (y, m, d) = (num(6..10), num(10..12), num(12..14));
    let date_ok = chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some();
    date_ok && (1900..=current_year()).contains(&y) && lexicon::city_prefix_exists(num(0..4))
}

fn current_year() -> u32 {
    use chrono::Datelike;
    chrono::Utc::now().year().max(2000) as u32
}

/// Characters of a USCC, in value order (no I, O, Z, S, V).
const USCC_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// The GB 32100-2015 check character for the first 17 characters, or `None` when they
/// are not USCC characters.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in b.iter().zip(USCC_WEIGHTS) {
        let v = USCC_CHARS.iter().position(|x| x == c)? as u32;
        sum += v * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(USCC_CHARS[check as usize] as char)
}

/// A unified social credit code: registration authority, organisation category, a 6-digit
/// region code of a real province, and the check character.
pub fn is_uscc(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 18 || !b.iter().all(|c| USCC_CHARS.contains(c)) {
        return false;
    }
    // Registration authorities (GB 32100 table 1) and the category digit.
    if !b"123456789ANY".contains(&b[0]) || !(b'1'..=b'9').contains(&b[1]) {
        return false;
    }
    if !b[2..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let province = u32::from(b[2] - b'0') * 10 + u32::from(b[3] - b'0');
    if !(11..=82).contains(&province) {
        return false;
    }
    // The embedded organisation code carries its own GB 11714 check character.
    org_code_check_char(&v[8..16]) == Some(b[16] as char) && uscc_check_char(&v[..17]) == Some(b[17] as char)
}

/// The GB 11714 check character of an 8-character organisation code body (`0`-`9`, `X`),
/// or `None` when the body is not 8 digits or upper-case letters.
pub fn org_code_check_char(body8: &str) -> Option<char> {
    const WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let b = body8.as_bytes();
    if b.len() != 8 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in b.iter().zip(WEIGHTS) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return None,
        };
        sum += v * w;
    }
    Some(match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        d => char::from(b'0' + d as u8),
    })
}

/// Digits of `v` with single spaces or dashes between digit groups removed; `None` when
/// anything else is in it.
fn digits_only(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut prev_sep = true;
    for c in v.chars() {
        if c.is_ascii_digit() {
            out.push(c);
            prev_sep = false;
        } else if (c == ' ' || c == '-') && !prev_sep {
            prev_sep = true;
        } else {
            return None;
        }
    }
    if prev_sep && !out.is_empty() {
        return None; // trailing separator
    }
    Some(out)
}

/// Card number lengths by BIN range (UnionPay 62, Visa 4, Mastercard 51-55 and 2221-2720,
/// Amex 34/37, JCB 35, Diners 30/36/38).
fn card_bin_fits(d: &str) -> bool {
    let b = d.as_bytes();
    let n = b.len();
    let p2: u32 = d.get(..2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let p4: u32 = d.get(..4).and_then(|s| s.parse().ok()).unwrap_or(0);
    match b.first() {
        Some(b'4') => matches!(n, 13 | 16 | 19),
        Some(b'5') => (51..=55).contains(&p2) && n == 16,
        Some(b'2') => (2221..=2720).contains(&p4) && n == 16,
        Some(b'6') => p2 == 62 && (16..=19).contains(&n),
        Some(b'3') => match p2 {
            34 | 37 => n == 15,
            35 => (16..=19).contains(&n),
            30 | 36 | 38 => n == 14,
            _ => false,
        },
        _ => false,
    }
}

/// A payment card number: 13-19 digits (groups of digits separated by spaces or dashes
/// allowed), Luhn valid, with a length that fits its BIN range.
pub fn is_bank_card(v: &str) -> bool {
    let Some(d) = digits_only(v) else { return false };
    (13..=19).contains(&d.len()) && card_bin_fits(&d) && crate::mask::luhn_valid(&d)
}

/// Mainland mobile prefixes (first three digits) in use.
fn mobile_prefix_ok(d: &[u8]) -> bool {
    if d.len() != 11 || d[0] != b'1' {
        return false;
    }
    match (d[1], d[2]) {
        (b'3', _) | (b'8', _) => true,
        (b'4', c) => b"56789".contains(&c),
        (b'5', c) => c != b'4',
        (b'6', c) => b"2567".contains(&c),
        (b'7', c) => c != b'9',
        (b'9', c) => c != b'4',
        _ => false,
    }
}

/// A mainland mobile number: 11 digits with a carrier prefix, optionally written with
/// `+86` / `0086` / `86 ` in front and spaces or dashes between groups.
pub fn is_mobile(v: &str) -> bool {
    let rest = v
        .strip_prefix("+86")
        .or_else(|| v.strip_prefix("0086"))
        .or_else(|| v.strip_prefix("86 "))
        .or_else(|| v.strip_prefix("86-"))
        .map(|r| r.trim_start_matches([' ', '-']))
        .unwrap_or(v);
    match digits_only(rest) {
        Some(d) => mobile_prefix_ok(d.as_bytes()),
        None => false,
    }
}

/// A landline with a real-shaped area code (010, 02x, 0[3-9]xx) and a local number that
/// does not start with 0 or 1; an extension may follow.
pub fn is_landline(v: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    re(
        &RE,
        r"^(?:\+86[- ]?)?\(?0(?:10|2\d|[3-9]\d{2})\)?[- ]?[2-9]\d{6,7}(?:(?:-|转|ext\.?)\d{1,6})?$",
    )
    .is_match(v)
}

pub fn is_email(v: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    re(&RE, r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}$")
        .is_match(v)
}

/// PRC passports: E + 8 digits, E + letter + 7 digits (2012 series), G + 8 digits (older
/// ordinary), D/S/P (+E) + 7 digits (diplomatic, service, public affairs).
pub fn is_passport(v: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    re(&RE, r"^(?:E[0-9A-HJ-NP-Z]\d{7}|G\d{8}|[DSP]E?\d{7})$").is_match(v)
}

/// Licence plates: province abbreviation, issuing-office letter, then 5 characters
/// (ordinary; last may be 挂/学/警) or 6 (new energy: D/F first or last).
pub fn is_plate(v: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    re(
        &RE,
        r"^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-HJ-NP-Z]·?(?:[DF][A-HJ-NP-Z0-9]\d{4}|\d{5}[DF]|[A-HJ-NP-Z0-9]{4}[A-HJ-NP-Z0-9挂学警])$",
    )
    .is_match(v)
}

fn is_han(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// 2-4 hanzi starting with a known surname (compound surnames need 3-4), the rest not an
/// organisational suffix (部, 市, 店...).
pub fn is_cn_name(v: &str) -> bool {
    let chars: Vec<char> = v.chars().collect();
    if !(2..=4).contains(&chars.len()) || !chars.iter().all(|c| is_han(*c)) {
        return false;
    }
    let given_start = if chars.len() >= 3 && lexicon::is_compound_surname(chars[0], chars[1]) {
        2
    } else if lexicon::is_surname(chars[0]) && chars.len() <= 3 {
        1
    } else {
        return false;
    };
    let given = &chars[given_start..];
    !given.is_empty() && !given.iter().any(|c| lexicon::NOT_IN_NAMES.contains(*c))
}

/// An address: 8+ characters naming a province, a big city or an `X省`/`X市`, followed by
/// street-level words (路, 街, 号, 区, 村...).
pub fn is_address(v: &str) -> bool {
    if v.chars().count() < 8 || v.chars().filter(|c| is_han(*c)).count() < 6 {
        return false;
    }
    let place = lexicon::PLACES.iter().any(|p| v.contains(p)) || {
        static RE: OnceLock<Regex> = OnceLock::new();
        re(&RE, r"\p{Han}{2,3}[省市]").is_match(v)
    };
    place && lexicon::STREET_WORDS.iter().filter(|w| v.contains(*w)).count() >= 2
}

/// Whether longer text contains a resident ID, a mobile number, a card number or an email.
pub fn contains_identifier(v: &str) -> bool {
    !find_identifiers(v).is_empty()
}

/// The identifiers inside free text: byte ranges (on character boundaries) and what each
/// is ([`Detector::CnId`], [`Detector::Mobile`], [`Detector::BankCard`] at 16 or 19 digits,
/// [`Detector::Email`]), in order and non-overlapping. The building block of content masking
/// (`scan_content`, see [`mask_identifiers`]).
pub fn find_identifiers(v: &str) -> Vec<(Range<usize>, Detector)> {
    static DIGITS: OnceLock<Regex> = OnceLock::new();
    static EMAIL: OnceLock<Regex> = OnceLock::new();
    let mut found: Vec<(Range<usize>, Detector)> = Vec::new();
    // Runs of digits (with the usual group separators), bounded by non-alphanumerics.
    let runs = re(&DIGITS, r"(?:\+86[- ]?)?\d[\d -]{9,22}[\dXx]");
    for m in runs.find_iter(v) {
        let before = v[..m.start()].chars().next_back();
        let after = v[m.end()..].chars().next();
        if before.is_some_and(|c| c.is_ascii_alphanumeric())
            || after.is_some_and(|c| c.is_ascii_alphanumeric())
        {
            continue;
        }
        let raw = m.as_str();
        let s = raw.trim_matches([' ', '-']);
        let start = m.start() + (raw.len() - raw.trim_start_matches([' ', '-']).len());
        // The run as a whole (`138 1234 5678`), else each space-separated part of it
        // (`2024 13812345678`).
        if let Some(d) = embedded_identifier(s) {
            found.push((start..start + s.len(), d));
            continue;
        }
        let mut offset = start;
        for part in s.split(' ') {
            if let Some(d) = embedded_identifier(part) {
                found.push((offset..offset + part.len(), d));
            }
            offset += part.len() + 1;
        }
    }
    if v.contains('@') {
        let emails = re(
            &EMAIL,
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        );
        for m in emails.find_iter(v) {
            found.push((m.range(), Detector::Email));
        }
    }
    found.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut out: Vec<(Range<usize>, Detector)> = Vec::with_capacity(found.len());
    for (r, d) in found {
        if out.last().is_none_or(|(last, _)| r.start >= last.end) {
            out.push((r, d));
        }
    }
    out
}

/// One run of digits inside text: a resident ID, a mobile, or a card at the common
/// lengths only (16, 19), so that 18-digit order numbers mentioned in notes do not count.
fn embedded_identifier(s: &str) -> Option<Detector> {
    if is_resident_id(s) {
        return Some(Detector::CnId);
    }
    if is_mobile(s) {
        return Some(Detector::Mobile);
    }
    let d = digits_only(s)?;
    (matches!(d.len(), 16 | 19) && card_bin_fits(&d) && crate::mask::luhn_valid(&d))
        .then_some(Detector::BankCard)
}

/// Free text with every identifier [`find_identifiers`] sees replaced by its masked form
/// (the `cn_id`, `phone`, `bank_card` and `email` masks), the rest unchanged:
/// `请联系13812345678` -> `请联系138****5678`. A candidate for a `scan_content` mask: pure,
/// never panics; what it reveals is what those masks reveal, plus all the text around.
pub fn mask_identifiers(v: &str) -> String {
    use crate::mask::{ColumnType, Format, Keys, Mask, MaskSpec, Masked};
    let found = find_identifiers(v);
    if found.is_empty() {
        return v.to_string();
    }
    let ty = ColumnType::Text {
        oid: 25,
        max_chars: None,
    };
    let mut out = String::with_capacity(v.len());
    let mut at = 0;
    let mut buf = Vec::new();
    for (r, d) in found {
        out.push_str(&v[at..r.start]);
        let spec = match d {
            Detector::CnId => MaskSpec::CnId {
                keep_birth_year: false,
            },
            Detector::Mobile => MaskSpec::Phone,
            Detector::BankCard => MaskSpec::BankCard { keep_bin: false },
            _ => MaskSpec::Email,
        };
        let masked = Mask::new(&spec, &ty, &Keys::default())
            .ok()
            .filter(|m| m.apply(v[r.clone()].as_bytes(), Format::Text, &mut buf) == Masked::Value)
            .and_then(|_| String::from_utf8(std::mem::take(&mut buf)).ok());
        // Unreachable for these masks on text; the constant keeps the value hidden anyway.
        out.push_str(masked.as_deref().unwrap_or("****"));
        at = r.end;
    }
    out.push_str(&v[at..]);
    out
}

/// A column name hint: the detector it suggests and the keyword that matched.
pub fn name_hint_keyword(column: &str) -> Option<(Detector, &'static str)> {
    // Hanzi first: they are unambiguous.
    for (kw, d) in lexicon::HANZI_HINTS {
        if column.contains(kw) {
            return Some((*d, kw));
        }
    }
    let tokens = tokens(column);
    if tokens.is_empty() {
        return None;
    }
    let joined: String = tokens.concat();
    // N-grams of consecutive tokens, joined (`id`,`no` -> `idno`).
    let mut grams: Vec<String> = Vec::new();
    for n in 1..=3 {
        for w in tokens.windows(n) {
            grams.push(w.concat());
        }
    }
    let not_person = tokens.iter().any(|t| lexicon::NOT_PERSON.contains(&t.as_str()));
    for (kw, d) in lexicon::TOKEN_HINTS {
        if *d == Detector::CnName && not_person {
            continue;
        }
        if grams.iter().any(|g| g == kw) {
            return Some((*d, kw));
        }
    }
    for (kw, d) in lexicon::SUBSTRING_HINTS {
        if *d == Detector::CnName && not_person {
            continue;
        }
        if joined.contains(kw) {
            return Some((*d, kw));
        }
    }
    None
}

/// The detector a column name suggests (see [`name_hint_keyword`]).
pub fn name_hint(column: &str) -> Option<Detector> {
    name_hint_keyword(column).map(|(d, _)| d)
}

/// Lower-case ASCII word tokens of a name: split on non-alphanumerics, camelCase humps and
/// letter/digit boundaries (`customerIdNo2` -> `customer`, `id`, `no`, `2`).
fn tokens(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev = None;
            continue;
        }
        if let Some(p) = prev {
            let hump = p.is_ascii_lowercase() && c.is_ascii_uppercase();
            // `IDNumber`: the N starts a word when followed by a lower-case letter.
            let acronym_end = p.is_ascii_uppercase()
                && c.is_ascii_uppercase()
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let digit_edge = p.is_ascii_digit() != c.is_ascii_digit();
            if (hump || acronym_end || digit_edge) && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c.to_ascii_lowercase());
        prev = Some(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_camel_and_snake() {
        assert_eq!(tokens("customerIdNo"), ["customer", "id", "no"]);
        assert_eq!(tokens("IDNumber"), ["id", "number"]);
        assert_eq!(tokens("contact_phone2"), ["contact", "phone", "2"]);
        assert_eq!(tokens("身份证号"), Vec::<String>::new());
    }

    #[test]
    fn uscc_check_char_known_value() {
        // A published example code (check char computed by GB 32100's algorithm).
        assert_eq!(uscc_check_char("91350100M000100Y4"), Some('3'));
        assert!(is_uscc("91350100M000100Y43"));
        assert!(!is_uscc("91350100M000100Y44"));
        assert_eq!(uscc_check_char("91350100M000100YI"), None);
        assert_eq!(org_code_check_char("M000100Y"), Some('4'));
        // Right USCC check char, wrong organisation-code check char.
        let mut bad = String::from("91350100M000100Y5");
        bad.push(uscc_check_char(&bad).unwrap());
        assert!(!is_uscc(&bad));
    }

    #[test]
    fn identifiers_in_text_are_found_and_masked_in_place() {
        let text =
            "请联系13812345678或 a.b@example.com，身份证11010519491231002X，卡号6222 0212 3456 7890 123";
        let kinds: Vec<Detector> = find_identifiers(text).into_iter().map(|(_, d)| d).collect();
        assert_eq!(kinds, [Detector::Mobile, Detector::Email, Detector::CnId]);
        let masked = mask_identifiers(text);
        assert!(masked.starts_with("请联系138****5678或 "), "{masked}");
        assert!(
            !masked.contains("13812345678") && !masked.contains("a.b@") && !masked.contains("19491231002X"),
            "{masked}"
        );
        assert!(
            masked.contains("110105"),
            "the cn_id mask keeps the region: {masked}"
        );
        assert_eq!(
            mask_identifiers("订单202601151234567890已退款"),
            "订单202601151234567890已退款"
        );
        let mut card = String::from("622202123456789012");
        card.push(crate::mask::luhn_check_digit(&card).unwrap());
        let masked = mask_identifiers(&format!("卡{card}。"));
        assert!(
            masked.starts_with('卡') && masked.ends_with('。') && masked.contains(&card[15..]),
            "{masked}"
        );
        assert!(!masked.contains(&card[..10]), "{masked}");
    }

    #[test]
    fn every_builtin_pattern_compiles_and_matches() {
        // Each `re(..)` pattern is used at least once here, so a typo fails a test, not a scan.
        assert!(
            is_address("湖州市吴兴区红旗路88号3栋"),
            "a city outside the list, by its 市"
        );
        assert!(!is_address("湖州市吴兴区"));
        assert!(is_landline("0571-87654321") && is_landline("(010)62345678-123"));
        assert!(is_email("a.b+c@mail.example.cn") && !is_email("a@b"));
        assert!(is_passport("E12345678") && is_passport("EA1234567") && !is_passport("E1234567"));
        assert!(
            is_plate("京A12345") && is_plate("粤BD12345") && is_plate("沪A1234D") && !is_plate("京I12345")
        );
        assert!(contains_identifier("x a@b.cn y") && contains_identifier("tel 13912345678."));
    }

    #[test]
    fn embedded_identifiers() {
        assert!(contains_identifier("客户说请联系13812345678，下午方便"));
        assert!(contains_identifier("call +86 138-1234-5678 after 5pm"));
        assert!(contains_identifier("身份证11010519491231002X已核验"));
        assert!(contains_identifier("mail me: a.b@example.com"));
        assert!(!contains_identifier("订单号202601151234567890已发货"));
        assert!(!contains_identifier("客服热线400-820-8820"));
        assert!(!contains_identifier("SKU138123456789X"));
        assert!(contains_identifier("2024 13812345678 回访"));
    }
}
