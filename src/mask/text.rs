//! Masks over text values: `partial`, `email`, `phone`, `cn_id`, `bank_card`, `cn_name`,
//! `address`, `uscc`.
//!
//! Each mask has a Rust form (`apply`, writes into the caller's buffer, no allocation) and an
//! SQL form (`sql`, over `t`, the column as text, and `tc`, its `COLLATE "C"` copy) that
//! PostgreSQL computes to the very same text. The parsers are hand-written rather than
//! regex-based for speed, and each one accepts exactly the language of a regular expression
//! written next to it. The SQL twins test the same language, but not always with that
//! regular expression: PostgreSQL's cost for a regex grows with its automaton (a counted
//! repetition such as `[0-9]{17}` unrolls into many states), so where the format is fixed
//! (`cn_id`, `bank_card`, the plain 11-digit mobile, the usual one-`@` email) the twins test
//! byte lengths, `LIKE` patterns, byte-order comparisons and regexes without counts on the
//! `COLLATE "C"` copy instead, and build the output with one `overlay`/`lpad`/`rpad` call.
//! `tests/mask_sql_agreement.rs` holds both forms to the same output on a real PostgreSQL.
//!
//! Invariant: characters are Unicode scalar values (PostgreSQL's `char_length` in a UTF8
//! database); no output ever cuts a UTF-8 sequence.
use super::spec::MaskSpec;
use super::sqlgen::{all_digits, call, case, concat, len, like, lit, matches, octets, op, repeat, DIGITS};
use super::MaskError;

/// The redact constant for text, and the output for values a mask cannot parse where noted.
pub(crate) const REDACTED: &str = "****";

/// A text mask resolved from its spec.
#[derive(Debug, Clone)]
pub(crate) enum TextMask {
    Partial {
        keep_first: usize,
        keep_last: usize,
        fill: char,
        fixed: Option<usize>,
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
}

/// Compound (two-character) Chinese surnames kept whole by `cn_name`.
pub(crate) const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "夏侯", "令狐", "宇文",
    "司徒", "轩辕", "端木", "独孤", "南宫", "西门", "万俟", "闻人", "赫连", "澹台", "公冶", "宗政", "濮阳",
    "淳于", "单于", "太叔", "申屠", "钟离", "呼延", "百里", "东郭", "南门", "羊舌", "微生", "梁丘", "左丘",
    "东门", "第五", "拓跋", "公羊", "司空", "闾丘", "亓官", "司寇", "子车", "颛孙", "巫马", "公西", "漆雕",
    "乐正", "壤驷", "谷梁", "宰父", "夹谷", "段干", "鲜于", "完颜", "耶律", "公良", "仲孙", "叔孙", "西陵",
];

/// Province-level names as (short name, rest of the full name): an address may start with
/// either form (`广东` or `广东省`). The longest form that prefixes the address wins
/// (PostgreSQL's regex prefers the longest match too).
pub(crate) const PROVINCES: &[(&str, &str)] = &[
    ("北京", "市"),
    ("天津", "市"),
    ("上海", "市"),
    ("重庆", "市"),
    ("河北", "省"),
    ("山西", "省"),
    ("辽宁", "省"),
    ("吉林", "省"),
    ("黑龙江", "省"),
    ("江苏", "省"),
    ("浙江", "省"),
    ("安徽", "省"),
    ("福建", "省"),
    ("江西", "省"),
    ("山东", "省"),
    ("河南", "省"),
    ("湖北", "省"),
    ("湖南", "省"),
    ("广东", "省"),
    ("海南", "省"),
    ("四川", "省"),
    ("贵州", "省"),
    ("云南", "省"),
    ("陕西", "省"),
    ("甘肃", "省"),
    ("青海", "省"),
    ("台湾", "省"),
    ("内蒙古", "自治区"),
    ("广西", "壮族自治区"),
    ("西藏", "自治区"),
    ("宁夏", "回族自治区"),
    ("新疆", "维吾尔自治区"),
    ("香港", "特别行政区"),
    ("澳门", "特别行政区"),
];

/// Municipalities and SARs: province-level, so the address keeps only that level.
const MUNICIPALITIES: &[&str] = &["北京", "天津", "上海", "重庆", "香港", "澳门"];

/// Suffixes that end a prefecture-level name. `州` alone is not one: it sits inside city
/// names such as 福州市 and 杭州市.
const CITY_MARKERS: &[&str] = &["市", "自治州", "地区", "盟"];

/// Longest prefecture-level name, in characters, marker included (克孜勒苏柯尔克孜自治州).
const MAX_CITY_CHARS: usize = 11;

/// Two-digit ITU country codes (E.164); 1 and 7 are one digit, all others three.
const CC2: &[&[u8; 2]] = &[
    b"20", b"27", b"30", b"31", b"32", b"33", b"34", b"36", b"39", b"40", b"41", b"43", b"44", b"45", b"46",
    b"47", b"48", b"49", b"51", b"52", b"53", b"54", b"55", b"56", b"57", b"58", b"60", b"61", b"62", b"63",
    b"64", b"65", b"66", b"81", b"82", b"84", b"86", b"90", b"91", b"92", b"93", b"94", b"95", b"98",
];
/// The same table as a regex for the SQL twin.
const CC2_RE: &str = "^\\+(2[07]|3[0-469]|4[013-9]|5[1-8]|6[0-6]|8[1246]|9[0-58])";

/// The mainland mobile format the phone mask recognises (`+86 138-1234-5678` and friends).
const MOBILE_RE: &str = "^(\\+?86[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}$";

impl TextMask {
    pub(crate) fn new(spec: &MaskSpec) -> Result<TextMask, MaskError> {
        Ok(match spec {
            MaskSpec::Partial {
                keep_first,
                keep_last,
                fill,
                fixed_length,
            } => {
                let bad = |reason: String| MaskError::BadParam {
                    mask: "partial",
                    reason,
                };
                if *keep_first > 1000 || *keep_last > 1000 || fixed_length.is_some_and(|f| f > 1000) {
                    return Err(bad(
                        "keep_first, keep_last and fixed_length must be at most 1000".into()
                    ));
                }
                if *fill == '\0' {
                    return Err(bad("fill must not be NUL".into()));
                }
                TextMask::Partial {
                    keep_first: *keep_first as usize,
                    keep_last: *keep_last as usize,
                    fill: *fill,
                    fixed: fixed_length.map(|f| f as usize),
                }
            }
            MaskSpec::Email => TextMask::Email,
            MaskSpec::Phone => TextMask::Phone,
            MaskSpec::CnId { keep_birth_year } => TextMask::CnId {
                keep_birth_year: *keep_birth_year,
            },
            MaskSpec::BankCard { keep_bin } => TextMask::BankCard { keep_bin: *keep_bin },
            MaskSpec::CnName => TextMask::CnName,
            MaskSpec::Address => TextMask::Address,
            MaskSpec::Uscc => TextMask::Uscc,
            other => {
                return Err(MaskError::BadParam {
                    mask: other.name(),
                    reason: "not a text mask".into(),
                });
            }
        })
    }

    pub(crate) fn apply(&self, s: &str, out: &mut Vec<u8>) {
        match self {
            TextMask::Partial {
                keep_first,
                keep_last,
                fill,
                fixed,
            } => partial(s, *keep_first, *keep_last, *fill, *fixed, out),
            TextMask::Email => email(s, out),
            TextMask::Phone => phone(s, out),
            TextMask::CnId { keep_birth_year } => cn_id(s, *keep_birth_year, out),
            TextMask::BankCard { keep_bin } => bank_card(s, *keep_bin, out),
            TextMask::CnName => cn_name(s, out),
            TextMask::Address => address(s, out),
            TextMask::Uscc => uscc(s, out),
        }
    }

    pub(crate) fn sql(&self, t: &str, tc: &str) -> String {
        let n = len(t);
        let stars = || repeat("*", &n);
        match self {
            TextMask::Partial {
                keep_first,
                keep_last,
                fill,
                fixed,
            } => {
                let f = fill.to_string();
                let (kf, kl) = (*keep_first, *keep_last);
                let middle = match fixed {
                    Some(x) => repeat(&f, &x.to_string()),
                    None => repeat(&f, &op(&n, "-", &(kf + kl).to_string())),
                };
                let short = match fixed {
                    Some(x) => repeat(&f, &(kf + kl + x).to_string()),
                    None => repeat(&f, &n),
                };
                let long = concat(&[
                    call("left", &[t, &kf.to_string()]),
                    middle,
                    call("right", &[t, &kl.to_string()]),
                ]);
                case(&[(op(&n, ">", &(kf + kl).to_string()), long)], &short)
            }
            TextMask::Email => {
                // Two `LIKE`s (no allocation, no automaton) pick the usual shape: exactly one
                // `@`, not first. Then one overlay turns the local part after its first
                // character, and the `@`, into `*****@`. The rarer shapes follow: no `@`;
                // several (the last one is found from the end, and is not the first
                // character, so the local part is not empty); a lone `@` in front.
                let p = call("strpos", &[tc, &lit("@")]);
                let last_at_from_end = call("strpos", &[&call("reverse", &[tc]), &lit("@")]);
                let several = like(tc, "%@%@%");
                case(
                    &[
                        (
                            format!("({} AND NOT {several})", like(tc, "_%@%")),
                            call("overlay", &[t, &lit("*****@"), "2", &op(&p, "-", "1")]),
                        ),
                        (op(&p, "=", "0"), lit("*****")),
                        (
                            several,
                            call(
                                "overlay",
                                &[t, &lit("*****@"), "2", &op(&n, "-", &last_at_from_end)],
                            ),
                        ),
                    ],
                    &concat(&[lit("*****@"), call("substr", &[t, "2"])]),
                )
            }
            TextMask::Phone => {
                // 1. The plain 11-digit mobile (`1[3-9]` and 9 digits), by far the commonest
                //    shape: 11 bytes, between '13' and '2' in byte order, all digits (a cheap
                //    regex). The 4 digits after the carrier prefix go.
                let o = octets(t);
                let plain = format!(
                    "({} AND {} AND {} AND {})",
                    op(&o, "=", "11"),
                    op(tc, ">=", &lit("13")),
                    op(tc, "<", &lit("2")),
                    all_digits(tc)
                );
                // 2. Other mobile spellings ([`MOBILE_RE`], 11 to 17 bytes; the length test
                //    spares other values the dearer regex): the hidden digits end 4 or 5
                //    characters before the end (5 when a separator precedes the last 4
                //    digits: what `rtrim` leaves of the last 5 characters).
                let sep2 = octets(&call("rtrim", &[&call("right", &[tc, "5"]), &lit(DIGITS)]));
                let mobile = call(
                    "overlay",
                    &[t, &lit("****"), &op(&op(&n, "-", "7"), "-", &sep2), "4"],
                );
                // 3. `+` and a country code: keep them, stars for the rest (`rpad` of the
                //    kept prefix to the full length). The prefix length is computed once, and
                //    only for values starting with `+` (NULL otherwise: no prefix, all stars).
                let kept = case(
                    &[(
                        like(tc, "+%"),
                        case(
                            &[
                                (matches(tc, "^\\+[17]"), "2".into()),
                                (matches(tc, CC2_RE), "3".into()),
                                (matches(tc, "^\\+[0-9]{3}"), "4".into()),
                            ],
                            "NULL",
                        ),
                    )],
                    "NULL",
                );
                let intl = format!(
                    "COALESCE({}, {})",
                    call("rpad", &[&call("left", &[t, &kept]), &n, &lit("*")]),
                    stars()
                );
                case(
                    &[
                        (plain, call("overlay", &[t, &lit("****"), "4", "4"])),
                        (
                            format!(
                                "({} AND {} AND {})",
                                op(&o, ">=", "11"),
                                op(&o, "<=", "17"),
                                matches(tc, MOBILE_RE)
                            ),
                            mobile,
                        ),
                    ],
                    &intl,
                )
            }
            TextMask::CnId { keep_birth_year } => {
                // The length in bytes first (the formats are ASCII: a match has as many
                // characters as bytes), then a regex without counted repetition. Same
                // language as `^[0-9]{17}[0-9Xx]$` and `^[0-9]{15}$`, at a third of the cost.
                let (k18, k15) = if *keep_birth_year { (10, 8) } else { (6, 6) };
                let o = octets(t);
                let is18 = format!("({} AND {})", op(&o, "=", "18"), matches(tc, "^[0-9]*[0-9Xx]$"));
                let is15 = format!("({} AND {})", op(&o, "=", "15"), all_digits(tc));
                case(
                    &[
                        (
                            is18,
                            concat(&[call("left", &[t, &k18.to_string()]), lit(&"*".repeat(18 - k18))]),
                        ),
                        (
                            is15,
                            concat(&[call("left", &[t, &k15.to_string()]), lit(&"*".repeat(15 - k15))]),
                        ),
                    ],
                    &stars(),
                )
            }
            TextMask::BankCard { keep_bin } => {
                // 12 to 19 bytes, all digits (the language of `^[0-9]{12,19}$`); the kept
                // last 4 digits are padded on the left with stars to the length in one `lpad`.
                let o = octets(t);
                let is_card = format!(
                    "({} AND {} AND {})",
                    op(&o, ">=", "12"),
                    op(&o, "<=", "19"),
                    all_digits(tc)
                );
                let last4 = call("right", &[t, "4"]);
                let card = if *keep_bin {
                    concat(&[
                        call("left", &[t, "6"]),
                        call("lpad", &[&last4, &op(&o, "-", "6"), &lit("*")]),
                    ])
                } else {
                    call("lpad", &[&last4, &o, &lit("*")])
                };
                case(&[(is_card, card)], &stars())
            }
            TextMask::CnName => {
                let compound = format!(
                    "{} OPERATOR(pg_catalog.=) ANY (ARRAY[{}])",
                    call("left", &[tc, "2"]),
                    COMPOUND_SURNAMES
                        .iter()
                        .map(|s| lit(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let surname = case(
                    &[(
                        format!("({} AND {compound})", op(&n, ">=", "3")),
                        call("left", &[t, "2"]),
                    )],
                    &call("left", &[t, "1"]),
                );
                concat(&[surname, lit("**")])
            }
            TextMask::Address => address_sql(t, tc),
            TextMask::Uscc => case(
                &[(
                    matches(tc, "^[0-9A-Z]{18}$"),
                    concat(&[call("left", &[t, "8"]), lit("**********")]),
                )],
                &stars(),
            ),
        }
    }

    pub(crate) fn reveals(&self) -> String {
        match self {
            TextMask::Partial { keep_first, keep_last, fixed, .. } => {
                let len = if fixed.is_some() { "length hidden" } else { "and the length" };
                format!("first {keep_first} and last {keep_last} characters ({len}); values of at most {} characters are fully hidden", keep_first + keep_last)
            }
            TextMask::Email => "first character of the local part, and the domain".into(),
            TextMask::Phone => "mainland mobiles: the carrier prefix (first 3 digits), the last 4 digits, +86 and separators; other numbers: the country code and the length".into(),
            TextMask::CnId { keep_birth_year: false } => "region code (first 6 digits)".into(),
            TextMask::CnId { keep_birth_year: true } => "region code (first 6 digits) and birth year".into(),
            TextMask::BankCard { keep_bin: false } => "last 4 digits and the number of digits".into(),
            TextMask::BankCard { keep_bin: true } => "issuer BIN (first 6 digits), last 4 digits and the number of digits".into(),
            TextMask::CnName => "surname (compound surnames such as 欧阳 whole)".into(),
            TextMask::Address => "province and city (prefecture) only".into(),
            TextMask::Uscc => "registration authority, entity type and region code (first 8 characters)".into(),
        }
    }
}

fn push_char(out: &mut Vec<u8>, c: char, n: usize) {
    let mut buf = [0u8; 4];
    let bytes = c.encode_utf8(&mut buf).as_bytes();
    if bytes.len() == 1 {
        out.resize(out.len() + n, bytes[0]);
    } else {
        for _ in 0..n {
            out.extend_from_slice(bytes);
        }
    }
}

fn stars(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, b'*');
}

/// Byte offset after the first `n` characters (or the end).
fn byte_after_chars(s: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// Byte offset where the last `n` characters start (n <= char count).
fn byte_of_last_chars(s: &str, n: usize) -> usize {
    if n == 0 {
        return s.len();
    }
    s.char_indices().rev().nth(n - 1).map_or(0, |(i, _)| i)
}

fn char_count(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// `partial`: `keep_first` + fill + `keep_last`; values too short to hide anything are all fill.
fn partial(s: &str, kf: usize, kl: usize, fill: char, fixed: Option<usize>, out: &mut Vec<u8>) {
    let n = char_count(s);
    if n > kf + kl {
        let a = byte_after_chars(s, kf);
        let b = byte_of_last_chars(s, kl);
        out.extend_from_slice(&s.as_bytes()[..a]);
        push_char(out, fill, fixed.unwrap_or(n - kf - kl));
        out.extend_from_slice(&s.as_bytes()[b..]);
    } else {
        push_char(out, fill, fixed.map_or(n, |f| kf + f + kl));
    }
}

/// `email`: first character of the local part, five stars, `@`, the domain (after the last
/// `@`). No `@`: five stars.
fn email(s: &str, out: &mut Vec<u8>) {
    match s.rfind('@') {
        None => stars(out, 5),
        Some(at) => {
            if let Some(c) = s[..at].chars().next() {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            out.extend_from_slice(b"*****@");
            out.extend_from_slice(&s.as_bytes()[at + 1..]);
        }
    }
}

fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'-'
}

/// Parses the mobile format of [`MOBILE_RE`]; returns the byte range of the 4 hidden digits.
pub(crate) fn mobile_hidden_range(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    if b.starts_with(b"+86") {
        i = 3;
    } else if b.starts_with(b"86") {
        i = 2;
    }
    if i > 0 && b.len() > i && is_sep(b[i]) {
        i += 1;
    }
    let r = &b[i..];
    if r.len() < 11 || r[0] != b'1' || !(b'3'..=b'9').contains(&r[1]) || !r[2].is_ascii_digit() {
        return None;
    }
    let mut j = 3;
    if is_sep(r[j]) {
        j += 1;
    }
    let hidden = i + j;
    if r.len() < j + 4 || !r[j..j + 4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    j += 4;
    if r.len() > j && is_sep(r[j]) {
        j += 1;
    }
    if r.len() != j + 4 || !r[j..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((hidden, hidden + 4))
}

/// The 11 digits of a mainland mobile in the [`MOBILE_RE`] format, for token normalisation.
pub(crate) fn mobile_digits(b: &[u8], digits: &mut [u8; 11]) -> bool {
    let Some((h, _)) = mobile_hidden_range(b) else {
        return false;
    };
    // The 3 digits before the hidden part (skipping a separator) start the number.
    let start = if is_sep(b[h - 1]) { h - 4 } else { h - 3 };
    let mut k = 0;
    for &c in &b[start..] {
        if c.is_ascii_digit() {
            if k == 11 {
                return false;
            }
            digits[k] = c;
            k += 1;
        }
    }
    k == 11
}

/// Length of the E.164 country code after a leading `+`, or 0.
fn country_code_len(b: &[u8]) -> usize {
    if b.len() < 2 || b[0] != b'+' || !b[1].is_ascii_digit() {
        return 0;
    }
    if b[1] == b'1' || b[1] == b'7' {
        return 1;
    }
    if b.len() >= 3 && b[2].is_ascii_digit() && CC2.iter().any(|c| c[0] == b[1] && c[1] == b[2]) {
        return 2;
    }
    if b.len() >= 4 && b[2].is_ascii_digit() && b[3].is_ascii_digit() {
        return 3;
    }
    0
}

/// `phone`: mainland mobiles keep all but the 4 digits before the last 4; numbers with a
/// `+` keep `+` and the country code; anything else is all stars (per character).
fn phone(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    if let Some((h0, h1)) = mobile_hidden_range(b) {
        out.extend_from_slice(&b[..h0]);
        out.extend_from_slice(b"****");
        out.extend_from_slice(&b[h1..]);
        return;
    }
    let n = char_count(s);
    let cc = country_code_len(b);
    if cc > 0 {
        out.extend_from_slice(&b[..cc + 1]);
        stars(out, n - cc - 1);
    } else {
        stars(out, n);
    }
}

/// `cn_id`: 18-character IDs keep the 6-digit region (and the birth year on request);
/// 15-digit first-generation IDs likewise (2-digit year); anything else is all stars.
fn cn_id(s: &str, keep_birth_year: bool, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    let is18 = b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && (b[17].is_ascii_digit() || b[17] == b'X' || b[17] == b'x');
    let is15 = b.len() == 15 && b.iter().all(u8::is_ascii_digit);
    if is18 || is15 {
        let keep = match (keep_birth_year, is18) {
            (false, _) => 6,
            (true, true) => 10,
            (true, false) => 8,
        };
        out.extend_from_slice(&b[..keep]);
        stars(out, b.len() - keep);
    } else {
        stars(out, char_count(s));
    }
}

/// `bank_card`: 12-19 digit numbers keep the last 4 (and the 6-digit BIN on request).
fn bank_card(s: &str, keep_bin: bool, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    if (12..=19).contains(&b.len()) && b.iter().all(u8::is_ascii_digit) {
        let head = if keep_bin { 6 } else { 0 };
        out.extend_from_slice(&b[..head]);
        stars(out, b.len() - head - 4);
        out.extend_from_slice(&b[b.len() - 4..]);
    } else {
        stars(out, char_count(s));
    }
}

/// Binary search in a sorted copy of [`COMPOUND_SURNAMES`] (built once): ~7 comparisons
/// instead of a scan of the whole list.
fn is_compound_surname(two: &str) -> bool {
    static SORTED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let sorted = SORTED.get_or_init(|| {
        let mut v = COMPOUND_SURNAMES.to_vec();
        v.sort_unstable();
        v
    });
    sorted.binary_search(&two).is_ok()
}

/// `cn_name`: the surname (two characters for a compound surname when the name has at least
/// three) followed by a fixed `**`, so the length of the given name does not show.
fn cn_name(s: &str, out: &mut Vec<u8>) {
    let mut it = s.char_indices();
    let first_end = it.next().map_or(0, |(_, c)| c.len_utf8());
    let second_end = it.next().map(|(i, c)| i + c.len_utf8());
    let has_third = it.next().is_some();
    let keep = match second_end {
        Some(e) if has_third && is_compound_surname(&s[..e]) => e,
        _ => first_end,
    };
    out.extend_from_slice(&s.as_bytes()[..keep]);
    out.extend_from_slice(b"**");
}

/// `uscc`: 18 characters of [0-9A-Z] keep the first 8 (registration authority, entity type,
/// region code); anything else is all stars.
fn uscc(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    if b.len() == 18 && b.iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()) {
        out.extend_from_slice(&b[..8]);
        stars(out, 10);
    } else {
        stars(out, char_count(s));
    }
}

/// Byte length of the longest province name prefixing `s` (0 if none).
fn province_prefix(s: &str) -> usize {
    PROVINCES
        .iter()
        .filter(|(short, _)| s.starts_with(short))
        .map(|(short, rest)| {
            short.len()
                + if s[short.len()..].starts_with(rest) {
                    rest.len()
                } else {
                    0
                }
        })
        .max()
        .unwrap_or(0)
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// Byte length of the city (prefecture) name starting `rest`: the earliest-ending first
/// occurrence of a marker, at most [`MAX_CITY_CHARS`] characters, all CJK ideographs.
fn city_prefix(rest: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None; // (end in chars, end in bytes)
    for m in CITY_MARKERS {
        if let Some(pos) = rest.find(m) {
            let end_bytes = pos + m.len();
            let end_chars = char_count(&rest[..end_bytes]);
            if best.is_none_or(|(c, _)| end_chars < c) {
                best = Some((end_chars, end_bytes));
            }
        }
    }
    let (chars, bytes) = best?;
    (chars <= MAX_CITY_CHARS && rest[..bytes].chars().all(is_cjk)).then_some(bytes)
}

/// `address`: province and city only. Municipalities and SARs keep the province-level name
/// alone; an address without a known province keeps a leading city name if it has one; anything
/// else is `****`.
fn address(s: &str, out: &mut Vec<u8>) {
    let p = province_prefix(s);
    let keep = if p > 0 && MUNICIPALITIES.iter().any(|m| s.starts_with(m)) {
        p
    } else if let Some(c) = city_prefix(&s[p..]) {
        p + c
    } else if p > 0 {
        p
    } else {
        out.extend_from_slice(REDACTED.as_bytes());
        return;
    };
    out.extend_from_slice(&s.as_bytes()[..keep]);
}

fn address_sql(t: &str, tc: &str) -> String {
    // Each name spelled once, its full form optional: `^(北京(?:市)?|...)`, longest match.
    let alternatives: Vec<String> = PROVINCES
        .iter()
        .map(|(short, rest)| format!("{short}(?:{rest})?"))
        .collect();
    let prov_re = format!("^({})", alternatives.join("|"));
    // COALESCE and LEAST are syntax resolved without search_path.
    let p = format!("COALESCE({}, 0)", len(&call("substring", &[tc, &lit(&prov_re)])));
    let rest = call("substr", &[tc, &op(&p, "+", "1")]);
    // The city: the shortest run of ideographs ending with a marker. A non-greedy regex takes
    // the shortest match in PostgreSQL; the Rust side finds the earliest-ending marker and
    // checks the run, which is the same string.
    let markers = CITY_MARKERS.join("|");
    let city = call(
        "substring",
        &[&rest, &lit(&format!("^([\u{4e00}-\u{9fff}]*?(?:{markers}))"))],
    );
    let e = len(&city);
    let city_ok = op(&e, "<=", &MAX_CITY_CHARS.to_string());
    let muni = format!(
        "({} AND {} OPERATOR(pg_catalog.=) ANY (ARRAY[{}]))",
        op(&p, ">", "0"),
        call("left", &[tc, "2"]),
        MUNICIPALITIES
            .iter()
            .map(|m| lit(m))
            .collect::<Vec<_>>()
            .join(", ")
    );
    case(
        &[
            (muni, call("left", &[t, &p])),
            (city_ok, call("left", &[t, &op(&p, "+", &e)])),
            (op(&p, ">", "0"), call("left", &[t, &p])),
        ],
        &lit(REDACTED),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: &TextMask, s: &str) -> String {
        let mut out = Vec::new();
        m.apply(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn examples() {
        let p = TextMask::Partial {
            keep_first: 3,
            keep_last: 4,
            fill: '*',
            fixed: None,
        };
        assert_eq!(run(&p, "13812345678"), "138****5678");
        assert_eq!(run(&p, "短"), "*");
        assert_eq!(run(&p, "张三丰的名字很长很长"), "张三丰***很长很长");
        let pf = TextMask::Partial {
            keep_first: 1,
            keep_last: 1,
            fill: '#',
            fixed: Some(3),
        };
        assert_eq!(run(&pf, "abcdefgh"), "a###h");
        assert_eq!(run(&pf, "ab"), "#####");
        assert_eq!(
            run(&TextMask::Email, "zhang.san@example.com"),
            "z*****@example.com"
        );
        assert_eq!(run(&TextMask::Email, "a@b@c.cn"), "a*****@c.cn");
        assert_eq!(run(&TextMask::Email, "@x.cn"), "*****@x.cn");
        assert_eq!(run(&TextMask::Email, "none"), "*****");
        assert_eq!(run(&TextMask::Phone, "13812345678"), "138****5678");
        assert_eq!(run(&TextMask::Phone, "+86 138-1234-5678"), "+86 138-****-5678");
        assert_eq!(run(&TextMask::Phone, "+8613812345678"), "+86138****5678");
        assert_eq!(run(&TextMask::Phone, "+1 415 555 0100"), "+1*************");
        assert_eq!(run(&TextMask::Phone, "+44 20 7946 0958"), "+44*************");
        assert_eq!(run(&TextMask::Phone, "+852 2123 4567"), "+852**********");
        assert_eq!(run(&TextMask::Phone, "010-12345678"), "************");
        assert_eq!(run(&TextMask::Phone, "12812345678"), "***********");
        assert_eq!(
            run(
                &TextMask::CnId {
                    keep_birth_year: false
                },
                "11010519491231002X"
            ),
            "110105************"
        );
        assert_eq!(
            run(
                &TextMask::CnId {
                    keep_birth_year: true
                },
                "11010519491231002X"
            ),
            "1101051949********"
        );
        assert_eq!(
            run(
                &TextMask::CnId {
                    keep_birth_year: false
                },
                "110105491231002"
            ),
            "110105*********"
        );
        assert_eq!(
            run(
                &TextMask::CnId {
                    keep_birth_year: false
                },
                "bad"
            ),
            "***"
        );
        assert_eq!(
            run(&TextMask::BankCard { keep_bin: false }, "6222021234567890"),
            "************7890"
        );
        assert_eq!(
            run(&TextMask::BankCard { keep_bin: true }, "6222021234567890"),
            "622202******7890"
        );
        assert_eq!(run(&TextMask::CnName, "欧阳娜娜"), "欧阳**");
        assert_eq!(run(&TextMask::CnName, "张三"), "张**");
        assert_eq!(run(&TextMask::CnName, "司马"), "司**");
        assert_eq!(run(&TextMask::CnName, ""), "**");
        assert_eq!(
            run(&TextMask::Address, "广东省深圳市南山区科技园路1号"),
            "广东省深圳市"
        );
        assert_eq!(
            run(&TextMask::Address, "福建省福州市鼓楼区五四路"),
            "福建省福州市"
        );
        assert_eq!(run(&TextMask::Address, "北京市朝阳区建国路88号"), "北京市");
        assert_eq!(run(&TextMask::Address, "上海浦东新区"), "上海");
        assert_eq!(
            run(&TextMask::Address, "新疆维吾尔自治区伊犁哈萨克自治州伊宁市"),
            "新疆维吾尔自治区伊犁哈萨克自治州"
        );
        assert_eq!(
            run(&TextMask::Address, "内蒙古自治区锡林郭勒盟锡林浩特市"),
            "内蒙古自治区锡林郭勒盟"
        );
        assert_eq!(run(&TextMask::Address, "深圳市南山区"), "深圳市");
        assert_eq!(run(&TextMask::Address, "1600 Amphitheatre Pkwy"), "****");
        assert_eq!(run(&TextMask::Uscc, "91440300MA5EXAMPLE"), "91440300**********");
    }

    #[test]
    fn mobile_digits_normalise() {
        let mut d = [0u8; 11];
        assert!(mobile_digits(b"+86 138-1234-5678", &mut d));
        assert_eq!(&d, b"13812345678");
        assert!(mobile_digits(b"13812345678", &mut d));
        assert!(!mobile_digits(b"1381234567", &mut d));
    }
}
