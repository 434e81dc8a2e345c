//! Property tests of the masking library (no database; `mask_sql_agreement.rs` covers SQL).
//!
//! - Each mask hides what it says: two inputs equal on every kept part give the same output.
//! - Arbitrary bytes, in text and binary format, never panic and give a value well-formed for
//!   the column's type (valid UTF-8 that fits varchar(n)/char(n), integers in range, numerics
//!   PostgreSQL's format accepts, dates...).
//! - Masks are deterministic; tokens depend on the key and format-preserving tokens are valid.
//! - `Mask::new` refuses a mask that cannot produce the column's type, with a clear message.
use pgveil::mask::{
    is_valid_resident_id, luhn_valid, numeric_binary_to_text, numeric_text_to_binary, ColumnType, Format,
    Keys, Mask, MaskError, MaskSpec, Masked,
};
use proptest::prelude::*;

fn keys() -> Keys {
    let mut k = Keys::default();
    k.keys
        .insert("main".into(), b"0123456789abcdef0123456789abcdef".to_vec());
    k.keys
        .insert("other".into(), b"fedcba9876543210fedcba9876543210".to_vec());
    k.keys.insert("short".into(), b"tooshort".to_vec());
    k.keys
        .insert("default".into(), b"default-key-0123456789".to_vec());
    k
}

fn y(s: &str) -> MaskSpec {
    serde_saphyr::from_str(s).expect("mask yaml")
}

fn text_ty() -> ColumnType {
    ColumnType::Text {
        oid: 25,
        max_chars: None,
    }
}

fn mask(spec: &str, ty: &ColumnType) -> Mask {
    Mask::new(&y(spec), ty, &keys()).expect("mask builds")
}

fn run(m: &Mask, s: &str) -> Option<String> {
    let mut out = Vec::new();
    match m.apply(s.as_bytes(), Format::Text, &mut out) {
        Masked::Value => Some(String::from_utf8(out).expect("text output is UTF-8")),
        Masked::Null => None,
    }
}

fn chars_from(set: &'static str) -> impl Strategy<Value = char> {
    let v: Vec<char> = set.chars().collect();
    prop::sample::select(v)
}

fn string_of(
    set: &'static str,
    len: impl Into<prop::collection::SizeRange>,
) -> impl Strategy<Value = String> {
    prop::collection::vec(chars_from(set), len).prop_map(String::from_iter)
}

const MIXED: &str = "abcXYZ019 -+@._*'\\\n\t张三欧阳省市区州盟地😀é\u{301}";
const DIGITS: &str = "0123456789";
const CJK: &str = "张王李赵刘陈杨黄明华伟芳娜秀英敏静丽强磊军洋勇艳杰涛路号楼室村镇街道园";

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn partial_hides_the_middle(
        kf in 0usize..5, kl in 0usize..5, m in 1usize..20,
        a in string_of(MIXED, 10), b in string_of(MIXED, 10),
        mid1 in string_of(MIXED, 20), mid2 in string_of(MIXED, 20),
    ) {
        let head: String = a.chars().take(kf).collect();
        let tail: String = b.chars().take(kl).collect();
        prop_assume!(head.chars().count() == kf && tail.chars().count() == kl);
        let m1: String = mid1.chars().take(m).collect();
        let m2: String = mid2.chars().take(m).collect();
        let p = mask(&format!("{{ partial: {{ keep_first: {kf}, keep_last: {kl} }} }}"), &text_ty());
        let o1 = run(&p, &format!("{head}{m1}{tail}"));
        prop_assert_eq!(&o1, &run(&p, &format!("{head}{m2}{tail}")));
        // Kept parts show, the middle does not.
        let o1 = o1.unwrap_or_default();
        prop_assert!(o1.starts_with(&head) && o1.ends_with(&tail));
        prop_assert_eq!(o1.chars().count(), kf + m + kl);
        // With fixed_length even the middle's length is hidden.
        let pf = mask(&format!("{{ partial: {{ keep_first: {kf}, keep_last: {kl}, fixed_length: 4 }} }}"), &text_ty());
        let m3: String = mid2.chars().take(1 + m / 2).collect();
        prop_assert_eq!(run(&pf, &format!("{head}{m1}{tail}")), run(&pf, &format!("{head}{m3}{tail}")));
    }

    #[test]
    fn email_hides_the_local_part(
        c in chars_from("abcxyz0九"), r1 in string_of("abc.+@_张", 0..12), r2 in string_of("abc.+@_张", 0..12),
        domain in string_of("abc.-例子", 0..12),
    ) {
        let e = mask("email", &text_ty());
        prop_assert_eq!(run(&e, &format!("{c}{r1}@{domain}")), run(&e, &format!("{c}{r2}@{domain}")));
        prop_assert_eq!(run(&e, &format!("{c}{r1}@{domain}")), Some(format!("{c}*****@{domain}")));
    }

    #[test]
    fn phone_hides_four_middle_digits(
        prefix in prop::sample::select(vec!["", "+86", "86", "+86 ", "86-", "+86-"]),
        second in chars_from("3456789"), third in chars_from(DIGITS),
        sep1 in prop::sample::select(vec!["", " ", "-"]), sep2 in prop::sample::select(vec!["", " ", "-"]),
        mid1 in string_of(DIGITS, 4), mid2 in string_of(DIGITS, 4), last in string_of(DIGITS, 4),
    ) {
        let p = mask("phone", &text_ty());
        let n1 = format!("{prefix}1{second}{third}{sep1}{mid1}{sep2}{last}");
        let n2 = format!("{prefix}1{second}{third}{sep1}{mid2}{sep2}{last}");
        prop_assert_eq!(run(&p, &n1), run(&p, &n2));
        prop_assert_eq!(run(&p, &n1), Some(format!("{prefix}1{second}{third}{sep1}****{sep2}{last}")));
    }

    #[test]
    fn phone_keeps_only_the_country_code(
        cc in prop::sample::select(vec!["+1", "+44", "+852", "+7", "+33"]),
        r1 in string_of("0123456789 -", 14),
        r2 in string_of("0123456789 -", 14),
        n in 4usize..14,
    ) {
        let (r1, r2) = (&r1[..n], &r2[..n]);
        let p = mask("phone", &text_ty());
        prop_assert_eq!(run(&p, &format!("{cc}{r1}")), run(&p, &format!("{cc}{r2}")));
    }

    #[test]
    fn cn_id_keeps_region_and_optionally_year(
        region in string_of(DIGITS, 6), year in string_of(DIGITS, 4),
        r1 in string_of(DIGITS, 7), r2 in string_of(DIGITS, 7),
        c1 in chars_from("0123456789Xx"), c2 in chars_from("0123456789Xx"),
        y2 in string_of(DIGITS, 4),
    ) {
        let m = mask("cn_id", &text_ty());
        let out = run(&m, &format!("{region}{year}{r1}{c1}"));
        prop_assert_eq!(&out, &run(&m, &format!("{region}{y2}{r2}{c2}")));
        prop_assert_eq!(out, Some(format!("{region}************")));
        let k = mask("{ cn_id: { keep_birth_year: true } }", &text_ty());
        prop_assert_eq!(run(&k, &format!("{region}{year}{r1}{c1}")), run(&k, &format!("{region}{year}{r2}{c2}")));
    }

    #[test]
    fn bank_card_keeps_last_four_and_bin(
        n in 12usize..=19, bin in string_of(DIGITS, 6), last in string_of(DIGITS, 4),
        r1 in string_of(DIGITS, 9), r2 in string_of(DIGITS, 9),
    ) {
        let mid = n - 10;
        let c1 = format!("{bin}{}{last}", &r1[..mid]);
        let c2 = format!("{bin}{}{last}", &r2[..mid]);
        let m = mask("bank_card", &text_ty());
        prop_assert_eq!(run(&m, &c1), Some(format!("{}{last}", "*".repeat(n - 4))));
        let k = mask("{ bank_card: { keep_bin: true } }", &text_ty());
        prop_assert_eq!(run(&k, &c1), run(&k, &c2));
        // Other first digits: same without keep_bin.
        let c3 = format!("{}{last}", &format!("{r2}{r1}")[..n - 4]);
        prop_assert_eq!(run(&m, &c1), run(&m, &c3));
    }

    #[test]
    fn cn_name_keeps_only_the_surname(
        surname in prop::sample::select(vec!["张", "王", "李", "赵", "欧阳", "司马", "诸葛", "上官", "慕容"]),
        g1 in string_of(CJK, 1..4), g2 in string_of(CJK, 1..4),
    ) {
        let m = mask("cn_name", &text_ty());
        let o = run(&m, &format!("{surname}{g1}"));
        prop_assert_eq!(&o, &run(&m, &format!("{surname}{g2}")));
        if surname.chars().count() == 1 || g1.chars().count() >= 1 {
            prop_assert_eq!(o, Some(format!("{surname}**")));
        }
    }

    #[test]
    fn address_keeps_province_and_city(
        head in prop::sample::select(vec![
            "广东省深圳市", "福建省福州市", "北京市", "上海市", "重庆市", "内蒙古自治区锡林郭勒盟",
            "新疆维吾尔自治区伊犁哈萨克自治州", "黑龙江省大兴安岭地区", "浙江省杭州市", "广西壮族自治区南宁市",
        ]),
        s1 in string_of("南山区科技园路号楼室0123456789-#", 0..20),
        s2 in string_of("南山区科技园路号楼室0123456789-#", 0..20),
    ) {
        let m = mask("address", &text_ty());
        let o = run(&m, &format!("{head}{s1}"));
        prop_assert_eq!(&o, &run(&m, &format!("{head}{s2}")));
        prop_assert_eq!(o, Some(head.to_string()));
    }

    #[test]
    fn uscc_keeps_first_eight(head in string_of("0123456789ABCDEFGHJKLMNPQRTUWXY", 8),
        r1 in string_of("0123456789ABCDEFGHJKLMNPQRTUWXY", 10), r2 in string_of("0123456789ABCDEFGHJKLMNPQRTUWXY", 10)) {
        let m = mask("uscc", &text_ty());
        prop_assert_eq!(run(&m, &format!("{head}{r1}")), run(&m, &format!("{head}{r2}")));
    }

    #[test]
    fn regex_shows_kept_groups_only(g1 in string_of("ABCXYZ", 2), d1 in string_of(DIGITS, 1..8), tail in string_of(DIGITS, 2)) {
        let m = mask("{ regex: { pattern: '([A-Z]{2})([0-9]+)(-[0-9]{2})', keep: [1, 3] } }", &text_ty());
        let d2: String = d1.chars().rev().collect();
        prop_assert_eq!(run(&m, &format!("{g1}{d1}-{tail}")), run(&m, &format!("{g1}{d2}-{tail}")));
        prop_assert_eq!(run(&m, &format!("{g1}{d1}-{tail}")), Some(format!("{g1}{}-{tail}", "*".repeat(d1.len()))));
    }

    #[test]
    fn date_trunc_keeps_year_or_month(y in 1i32..=9999, m1 in 1u32..=12, m2 in 1u32..=12, d1 in 1u32..=28, d2 in 1u32..=28,
        h1 in 0u32..24, h2 in 0u32..24, us in 0u32..1_000_000) {
        let year = mask("{ date_trunc: { to: year } }", &ColumnType::Timestamp);
        let a = format!("{y:04}-{m1:02}-{d1:02} {h1:02}:00:00.{us:06}");
        let b = format!("{y:04}-{m2:02}-{d2:02} {h2:02}:59:59");
        prop_assert_eq!(run(&year, &a), Some(format!("{y:04}-01-01 00:00:00")));
        prop_assert_eq!(run(&year, &a), run(&year, &b));
        let month = mask("{ date_trunc: { to: month } }", &ColumnType::Date);
        prop_assert_eq!(run(&month, &format!("{y:04}-{m1:02}-{d1:02}")), run(&month, &format!("{y:04}-{m1:02}-{d2:02}")));
        // Text and binary agree: days since 2000-01-01 of the result.
        let d = month_days(y, m1);
        let mut out = Vec::new();
        let bin_in = (d + i64::from(d1) - 1) as i32;
        month.apply(&bin_in.to_be_bytes(), Format::Binary, &mut out);
        prop_assert_eq!(out, (d as i32).to_be_bytes().to_vec());
    }

    #[test]
    fn bucket_and_round_hide_within_a_step(k in -1000i64..1000, o1 in 0i64..10000, o2 in 0i64..10000, h1 in 0i64..50, h2 in 0i64..50) {
        let b = mask("{ bucket: { width: 10000 } }", &ColumnType::Int8);
        prop_assert_eq!(run(&b, &(k * 10000 + o1).to_string()), Some((k * 10000).to_string()));
        prop_assert_eq!(run(&b, &(k * 10000 + o1).to_string()), run(&b, &(k * 10000 + o2).to_string()));
        let r = mask("{ round: { step: 100 } }", &ColumnType::Int4);
        let base = k.abs() * 100;
        prop_assert_eq!(run(&r, &(base + h1).to_string()), run(&r, &(base + h2).to_string()));
        prop_assert_eq!(run(&r, &(base + h1).to_string()), Some(base.to_string()));
        // numeric, in hundredths: the lower bound of the 0.5-wide bucket, at scale 2.
        let n = mask("{ bucket: { width: 0.5 } }", &ColumnType::Numeric);
        let x = k * 100 + h1;
        prop_assert_eq!(run(&n, &hundredths(x)), Some(hundredths(x.div_euclid(50) * 50)));
        prop_assert_eq!(run(&n, &hundredths(x)), run(&n, &hundredths(x.div_euclid(50) * 50 + h2 % 50)));
    }

    #[test]
    fn arbitrary_bytes_give_well_formed_values(bytes in prop::collection::vec(any::<u8>(), 0..40), text in string_of(MIXED, 0..30)) {
        for (spec, ty) in matrix() {
            let Ok(m) = Mask::new(&spec, &ty, &keys()) else { continue };
            for (input, format) in [
                (bytes.as_slice(), Format::Text), (bytes.as_slice(), Format::Binary),
                (text.as_bytes(), Format::Text), (text.as_bytes(), Format::Binary),
            ] {
                let mut out = Vec::new();
                let r = m.apply(input, format, &mut out);
                if r == Masked::Null {
                    prop_assert!(out.is_empty());
                    continue;
                }
                if let Err(why) = well_formed(&ty, format, &out) {
                    return Err(TestCaseError::fail(format!("{spec:?} on {ty} ({format:?}) input {input:?} gave {out:?}: {why}")));
                }
                // Deterministic, also across instances.
                let mut again = Vec::new();
                Mask::new(&spec, &ty, &keys()).expect("builds twice").apply(input, format, &mut again);
                prop_assert_eq!(&out, &again);
            }
        }
    }

    #[test]
    fn tokens_depend_on_the_key_and_are_valid(s in string_of(MIXED, 0..24), digits in string_of(DIGITS, 12..=19)) {
        for format in ["text", "cn_id", "bank_card", "phone"] {
            let a = mask(&format!("{{ token: {{ format: {format}, key: main }} }}"), &text_ty());
            let b = mask(&format!("{{ token: {{ format: {format}, key: other }} }}"), &text_ty());
            for input in [s.as_str(), digits.as_str()] {
                let ta = run(&a, input).unwrap_or_default();
                let tb = run(&b, input).unwrap_or_default();
                prop_assert_ne!(&ta, &tb, "format {} input {:?}", format, input);
                match format {
                    "text" => {
                        prop_assert!(ta.starts_with("tok_main_") && ta.len() == 9 + 26);
                        prop_assert!(ta[9..].bytes().all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
                    }
                    "cn_id" => prop_assert!(is_valid_resident_id(&ta), "{}", ta),
                    "bank_card" => {
                        prop_assert!(luhn_valid(&ta), "{}", ta);
                        let want = if input == digits { digits.len() } else { 16 };
                        prop_assert_eq!(ta.len(), want);
                    }
                    _ => {
                        let b = ta.as_bytes();
                        prop_assert!(b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && b.iter().all(u8::is_ascii_digit), "{}", ta);
                    }
                }
            }
        }
    }
}

/// A number of hundredths as numeric text with scale 2 (`-1.05`).
fn hundredths(x: i64) -> String {
    format!(
        "{}{}.{:02}",
        if x < 0 { "-" } else { "" },
        x.abs() / 100,
        x.abs() % 100
    )
}

/// Days since 2000-01-01 of the first of a month (for the binary date check).
fn month_days(y: i32, m: u32) -> i64 {
    let (y, m) = (i64::from(y), i64::from(m));
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 - 10_957
}

/// Every mask on every type it might apply to (refusals are skipped by the caller).
fn matrix() -> Vec<(MaskSpec, ColumnType)> {
    let specs = [
        "redact",
        "null",
        "{ partial: { keep_first: 2, keep_last: 2 } }",
        "{ partial: { keep_first: 1, keep_last: 1, fill: '长', fixed_length: 3 } }",
        "email",
        "phone",
        "cn_id",
        "bank_card",
        "cn_name",
        "address",
        "uscc",
        "{ regex: { pattern: '(.)(.*)', keep: [1] } }",
        "{ date_trunc: { to: year } }",
        "{ date_trunc: { to: month } }",
        "{ bucket: { width: 1000 } }",
        "{ round: { step: 5 } }",
        "{ bucket: { width: 0.05 } }",
        "token",
        "{ token: { format: cn_id, key: main } }",
        "{ token: { format: bank_card, key: main } }",
        "{ token: { format: phone, key: main } }",
        "{ token: { key: main } }",
        "{ noise: { ratio: 0.2, key: main } }",
    ];
    let types = [
        ColumnType::Text {
            oid: 25,
            max_chars: None,
        },
        ColumnType::Text {
            oid: 1043,
            max_chars: Some(5),
        },
        ColumnType::Text {
            oid: 1043,
            max_chars: Some(40),
        },
        ColumnType::Text {
            oid: 1042,
            max_chars: Some(20),
        },
        ColumnType::Text {
            oid: 19,
            max_chars: None,
        },
        ColumnType::Int2,
        ColumnType::Int4,
        ColumnType::Int8,
        ColumnType::Numeric,
        ColumnType::from_catalog(1700, (10 << 16 | 2) + 4),
        ColumnType::Float4,
        ColumnType::Float8,
        ColumnType::Date,
        ColumnType::Timestamp,
        ColumnType::Timestamptz,
        ColumnType::Bool,
        ColumnType::Uuid,
        ColumnType::Other { oid: 3802 },
    ];
    let mut v = Vec::new();
    for s in specs {
        for t in &types {
            v.push((y(s), t.clone()));
        }
    }
    v
}

fn is_date_text(s: &str) -> bool {
    if s == "infinity" || s == "-infinity" {
        return true;
    }
    let s = s.strip_suffix(" BC").unwrap_or(s);
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && parts[0].len() >= 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[1].len() == 2
        && parts[2].len() == 2
}

fn is_ts_text(s: &str, tz: bool) -> bool {
    if s == "infinity" || s == "-infinity" {
        return true;
    }
    let bc = s.ends_with(" BC");
    let s = s.strip_suffix(" BC").unwrap_or(s);
    let Some((d, t)) = s.split_once(' ') else {
        return false;
    };
    let d = if bc { format!("{d} BC") } else { d.to_string() };
    if !is_date_text(&d) || t.len() < 8 || &t[2..3] != ":" || &t[5..6] != ":" {
        return false;
    }
    let rest = &t[8..];
    !tz || rest.starts_with('+') || rest.starts_with('-')
}

fn well_formed(ty: &ColumnType, format: Format, out: &[u8]) -> Result<(), String> {
    let text = || std::str::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"));
    match (ty, format) {
        (ColumnType::Text { oid, max_chars }, _) => {
            let s = text()?;
            if s.contains('\0') {
                return Err("contains NUL".into());
            }
            let n = s.chars().count();
            match (oid, max_chars) {
                (1043, Some(m)) if n > *m as usize => Err(format!("{n} chars > varchar({m})")),
                (1042, Some(m)) if n != *m as usize => Err(format!("{n} chars != char({m})")),
                (19, _) if out.len() > 63 => Err("name longer than 63 bytes".into()),
                _ => Ok(()),
            }
        }
        (ColumnType::Int2, Format::Text) => text()?.parse::<i16>().map(|_| ()).map_err(|e| e.to_string()),
        (ColumnType::Int4, Format::Text) => text()?.parse::<i32>().map(|_| ()).map_err(|e| e.to_string()),
        (ColumnType::Int8, Format::Text) => text()?.parse::<i64>().map(|_| ()).map_err(|e| e.to_string()),
        (ColumnType::Int2, Format::Binary) if out.len() == 2 => Ok(()),
        (ColumnType::Int4, Format::Binary) if out.len() == 4 => Ok(()),
        (
            ColumnType::Int8 | ColumnType::Float8 | ColumnType::Timestamp | ColumnType::Timestamptz,
            Format::Binary,
        ) if out.len() == 8 => Ok(()),
        (ColumnType::Float4 | ColumnType::Date, Format::Binary) if out.len() == 4 => Ok(()),
        (ColumnType::Numeric | ColumnType::NumericScaled { .. }, Format::Text) => {
            let s = text()?;
            numeric_text_to_binary(s).ok_or("not a numeric")?;
            if let ColumnType::NumericScaled { precision, scale } = ty {
                if s != "NaN" {
                    let (i, f) = s.trim_start_matches('-').split_once('.').unwrap_or((s, ""));
                    if f.len() != *scale as usize
                        || i.trim_start_matches('0').len() > (*precision as i32 - scale) as usize
                    {
                        return Err(format!("does not fit numeric({precision},{scale})"));
                    }
                }
            }
            Ok(())
        }
        (ColumnType::Numeric | ColumnType::NumericScaled { .. }, Format::Binary) => {
            numeric_binary_to_text(out)
                .map(|_| ())
                .ok_or_else(|| "not a binary numeric".into())
        }
        (ColumnType::Float4 | ColumnType::Float8, Format::Text) => {
            text()?.parse::<f64>().map(|_| ()).map_err(|e| e.to_string())
        }
        (ColumnType::Date, Format::Text) => is_date_text(text()?)
            .then_some(())
            .ok_or_else(|| "not a date".into()),
        (ColumnType::Timestamp, Format::Text) => is_ts_text(text()?, false)
            .then_some(())
            .ok_or_else(|| "not a timestamp".into()),
        (ColumnType::Timestamptz, Format::Text) => is_ts_text(text()?, true)
            .then_some(())
            .ok_or_else(|| "not a timestamptz".into()),
        (ColumnType::Bool, Format::Text) if out == b"f" => Ok(()),
        (ColumnType::Bool, Format::Binary) if out == [0] => Ok(()),
        (ColumnType::Uuid, Format::Text) if out.len() == 36 => Ok(()),
        (ColumnType::Uuid, Format::Binary) if out.len() == 16 => Ok(()),
        _ => Err(format!("unexpected output for {ty}")),
    }
}

#[test]
fn refusals_explain_themselves() {
    let k = keys();
    let err = |spec: &str, ty: ColumnType| {
        Mask::new(&y(spec), &ty, &k)
            .expect_err("must be refused")
            .to_string()
    };
    assert!(err("email", ColumnType::Int4).starts_with("mask email does not fit column type integer"));
    assert_eq!(
        err(
            "{ token: { key: main } }",
            ColumnType::Text {
                oid: 1043,
                max_chars: Some(18)
            }
        ),
        "text token output (35 chars) does not fit varchar(18)"
    );
    assert_eq!(
        err(
            "{ token: { format: cn_id, key: main } }",
            ColumnType::Text {
                oid: 1043,
                max_chars: Some(15)
            }
        ),
        "cn_id token output (18 chars) does not fit varchar(15)"
    );
    assert!(err("{ token: { key: x } }", text_ty()).starts_with("unknown key id 'x'"));
    assert!(err("{ token: { key: short } }", text_ty()).contains("at least 16 bytes"));
    assert!(err("{ bucket: { width: 0.5 } }", ColumnType::Int4).contains("has decimals"));
    assert!(err(
        "{ round: { step: 0.001 } }",
        ColumnType::from_catalog(1700, (10 << 16 | 2) + 4)
    )
    .contains("finer than the column's scale"));
    assert!(
        err("{ date_trunc: { to: year } }", text_ty()).contains("date_trunc does not fit column type text")
    );
    assert!(err("redact", ColumnType::Other { oid: 3802 }).contains("use null"));
    assert!(err("{ regex: { pattern: '(a|b)', keep: [1] } }", text_ty()).contains("alternation"));
    assert!(err("{ noise: { ratio: 2, key: main } }", ColumnType::Int4).contains("ratio"));
    assert!(matches!(
        Mask::new(&y("phone"), &ColumnType::Date, &k),
        Err(MaskError::TypeMismatch { mask: "phone", .. })
    ));
    // Null fits everything.
    assert!(Mask::new(&y("null"), &ColumnType::Other { oid: 3802 }, &k).is_ok());
}

#[test]
fn keys_never_show_in_debug_output() {
    let m = mask("{ token: { format: cn_id, key: main } }", &text_ty());
    let dbg = format!("{m:?} {:?}", keys());
    assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
    assert!(dbg.contains("main"));
}

#[test]
fn token_normalisation_and_determinism() {
    let p = mask("{ token: { format: phone, key: main } }", &text_ty());
    assert_eq!(run(&p, "+86 138-1234-5678"), run(&p, "13812345678"));
    assert_ne!(run(&p, "13812345678"), run(&p, "13812345679"));
    let c = mask("{ token: { format: cn_id, key: main } }", &text_ty());
    assert_eq!(run(&c, "11010519491231002x"), run(&c, "11010519491231002X"));
    // char(n) padding does not change a token.
    let padded = Mask::new(
        &y("{ token: { key: main } }"),
        &ColumnType::Text {
            oid: 1042,
            max_chars: Some(40),
        },
        &keys(),
    )
    .expect("builds");
    let t = run(&padded, "abc                ").expect("value");
    assert_eq!(
        t.trim_end(),
        run(&mask("{ token: { key: main } }", &text_ty()), "abc").expect("value")
    );
    // Text and binary formats of a text column are the same bytes.
    let mut a = Vec::new();
    let mut b = Vec::new();
    c.apply("11010519491231002X".as_bytes(), Format::Text, &mut a);
    c.apply("11010519491231002X".as_bytes(), Format::Binary, &mut b);
    assert_eq!(a, b);
}

#[test]
fn reveals_describes_each_mask() {
    for (spec, ty) in matrix() {
        if let Ok(m) = Mask::new(&spec, &ty, &keys()) {
            assert!(!m.reveals().is_empty());
            assert_eq!(m.spec(), &spec);
        }
    }
    assert_eq!(
        mask("cn_id", &text_ty()).reveals(),
        "region code (first 6 digits)"
    );
}

/// A column type by the name the reference uses.
fn type_named(name: &str) -> ColumnType {
    let typmod_of = |inner: &str| -> i32 { inner.trim_end_matches(')').parse::<i32>().unwrap_or(0) + 4 };
    match name {
        "text" => text_ty(),
        "integer" => ColumnType::Int4,
        "smallint" => ColumnType::Int2,
        "bigint" => ColumnType::Int8,
        "numeric" => ColumnType::Numeric,
        "date" => ColumnType::Date,
        "timestamp" => ColumnType::Timestamp,
        "timestamptz" => ColumnType::Timestamptz,
        "boolean" => ColumnType::Bool,
        "uuid" => ColumnType::Uuid,
        n if n.starts_with("varchar(") => ColumnType::from_catalog(1043, typmod_of(&n[8..])),
        n if n.starts_with("numeric(") => {
            let (p, s) = n[8..]
                .trim_end_matches(')')
                .split_once(',')
                .expect("numeric(p,s)");
            let (p, s): (i32, i32) = (p.parse().expect("p"), s.parse().expect("s"));
            ColumnType::from_catalog(1700, ((p << 16) | s) + 4)
        }
        other => panic!("rules/MASKS.md uses an unknown type name {other:?}"),
    }
}

/// Every example row of the masks reference is what the library really does.
#[test]
fn masks_reference_examples_are_real() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/MASKS.md");
    let doc = std::fs::read_to_string(path).expect("rules/MASKS.md");
    let mut k = keys();
    k.keys
        .insert("docs".into(), b"pgveil documentation key, never use it".to_vec());
    let mut rows = 0;
    let mut wrong = Vec::new();
    let mut seen_masks = std::collections::BTreeSet::new();
    for line in doc.lines() {
        let Some(body) = line.strip_prefix("| `").map(|b| format!("`{b}")) else {
            continue;
        };
        let cells: Vec<&str> = body.trim_end_matches('|').split(" | ").map(str::trim).collect();
        if cells.len() != 4 || !cells[2].starts_with('`') {
            continue;
        }
        let unquote = |s: &str| s.trim_start_matches('`').trim_end_matches('`').to_string();
        let spec = y(&unquote(cells[0]));
        seen_masks.insert(spec.name());
        let ty = type_named(cells[1]);
        let m = Mask::new(&spec, &ty, &k).unwrap_or_else(|e| panic!("{line}: {e}"));
        let mut out = Vec::new();
        let got = match m.apply(unquote(cells[2]).as_bytes(), Format::Text, &mut out) {
            Masked::Null => "NULL".to_string(),
            Masked::Value => format!("`{}`", String::from_utf8_lossy(&out)),
        };
        rows += 1;
        if got != cells[3] {
            wrong.push(format!("{line}\n    library gives {got}"));
        }
    }
    assert!(rows >= 60, "only {rows} example rows found");
    for name in MaskSpec::NAMES {
        assert!(
            seen_masks.contains(name),
            "rules/MASKS.md has no example of {name}"
        );
    }
    assert!(
        wrong.is_empty(),
        "{} wrong examples:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// SQL twins stay small enough to inline into every statement that reads the column, and
/// keyed masks have none.
#[test]
fn sql_twins_are_bounded() {
    for (spec, ty) in matrix() {
        let Ok(m) = Mask::new(&spec, &ty, &keys()) else {
            continue;
        };
        match m.sql("\"c\"", &ty.to_string()) {
            Some(sql) => {
                assert!(!m.is_keyed());
                assert!(sql.len() < 8_000, "{spec:?} on {ty}: {} bytes of SQL", sql.len());
                assert!(spec == MaskSpec::Null || sql.contains("\"c\""), "{sql}");
            }
            None => assert!(m.is_keyed(), "{spec:?} on {ty} has no SQL but is not keyed"),
        }
    }
}
