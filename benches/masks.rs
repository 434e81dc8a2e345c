//! Nanoseconds per value of each mask on realistic values (`cargo bench --bench masks`).
//!
//! Each benchmark cycles through 64 distinct values so that branch predictors and caches see
//! a realistic mix, and writes into one reused buffer, as the session does per DataRow cell.
//! Targets on the 2-core reference machine: partial/phone/cn_id/bank_card < 100 ns, token
//! < 1 µs, format-preserving tokens < 2 µs.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pgveil::mask::{numeric_text_to_binary, ColumnType, Format, Keys, Mask, MaskSpec};

fn keys() -> Keys {
    let mut k = Keys::default();
    k.keys
        .insert("main".into(), b"bench-key-0123456789abcdef012345".to_vec());
    k
}

/// 64 values made by `f(i)`.
fn values(f: impl Fn(u64) -> String) -> Vec<Vec<u8>> {
    (0..64).map(|i| f(i).into_bytes()).collect()
}

/// A tiny deterministic mixer for digits.
fn mix(i: u64, salt: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    x ^= x >> 29;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

fn bench_one(c: &mut Criterion, name: &str, spec: &str, ty: ColumnType, format: Format, vals: &[Vec<u8>]) {
    let spec: MaskSpec = serde_saphyr::from_str(spec).expect("spec");
    let m = Mask::new(&spec, &ty, &keys()).expect("mask");
    let mut out = Vec::with_capacity(128);
    let mut i = 0usize;
    c.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) & 63;
            black_box(m.apply(black_box(&vals[i]), format, &mut out));
        })
    });
}

fn masks(c: &mut Criterion) {
    let text = ColumnType::Text {
        oid: 25,
        max_chars: None,
    };
    let varchar18 = ColumnType::Text {
        oid: 1043,
        max_chars: Some(18),
    };
    let phones = values(|i| format!("1{}{:09}", 3 + i % 7, mix(i, 1) % 1_000_000_000));
    let ids = values(|i| {
        format!(
            "{:06}{}{:02}{:02}{:03}X",
            110101 + i % 50,
            1950 + i % 50,
            1 + i % 12,
            1 + i % 28,
            i
        )
    });
    let cards = values(|i| format!("62{:014}", mix(i, 2) % 100_000_000_000_000));
    let names =
        values(|i| ["张三", "李四光", "欧阳娜娜", "王小明", "司马相如", "赵敏"][i as usize % 6].to_string());
    let emails = values(|i| format!("user{}.name@example{}.com", mix(i, 3) % 10_000, i % 7));
    let addrs = values(|i| {
        [
            "广东省深圳市南山区科技园路1号",
            "北京市朝阳区建国路88号",
            "浙江省杭州市西湖区文三路",
            "新疆维吾尔自治区伊犁哈萨克自治州伊宁市",
        ][i as usize % 4]
            .to_string()
    });
    let usccs = values(|i| format!("9144030{}MA5EXAMP{}", i % 10, i % 10));
    let dates = values(|i| format!("{}-{:02}-{:02}", 1950 + i, 1 + i % 12, 1 + i % 28));
    let tss = values(|i| {
        format!(
            "{}-{:02}-{:02} 12:34:{:02}.{:06}",
            1990 + i % 30,
            1 + i % 12,
            1 + i % 28,
            i % 60,
            i * 1000
        )
    });
    let salaries = values(|i| format!("{}.{:02}", 5000 + mix(i, 4) % 95_000, i % 100));
    let ints = values(|i| (mix(i, 5) % 1_000_000).to_string());

    bench_one(
        c,
        "partial(3,4)/phone text",
        "{ partial: { keep_first: 3, keep_last: 4 } }",
        text.clone(),
        Format::Text,
        &phones,
    );
    bench_one(
        c,
        "partial(1,1,fixed)/name",
        "{ partial: { keep_first: 1, keep_last: 0, fixed_length: 2 } }",
        text.clone(),
        Format::Text,
        &names,
    );
    bench_one(c, "phone", "phone", text.clone(), Format::Text, &phones);
    bench_one(c, "cn_id", "cn_id", varchar18.clone(), Format::Text, &ids);
    bench_one(c, "bank_card", "bank_card", text.clone(), Format::Text, &cards);
    bench_one(c, "email", "email", text.clone(), Format::Text, &emails);
    bench_one(c, "cn_name", "cn_name", text.clone(), Format::Text, &names);
    bench_one(c, "address", "address", text.clone(), Format::Text, &addrs);
    bench_one(c, "uscc", "uscc", text.clone(), Format::Text, &usccs);
    bench_one(c, "redact text", "redact", text.clone(), Format::Text, &names);
    bench_one(
        c,
        "regex",
        "{ regex: { pattern: '([0-9]{6})([0-9]{8})([0-9]{3}[0-9X])', keep: [1] } }",
        text.clone(),
        Format::Text,
        &ids,
    );
    bench_one(
        c,
        "token text",
        "{ token: { key: main } }",
        text.clone(),
        Format::Text,
        &ids,
    );
    bench_one(
        c,
        "token cn_id",
        "{ token: { format: cn_id, key: main } }",
        varchar18.clone(),
        Format::Text,
        &ids,
    );
    bench_one(
        c,
        "token bank_card",
        "{ token: { format: bank_card, key: main } }",
        text.clone(),
        Format::Text,
        &cards,
    );
    bench_one(
        c,
        "token phone",
        "{ token: { format: phone, key: main } }",
        text.clone(),
        Format::Text,
        &phones,
    );
    bench_one(
        c,
        "date_trunc year/date text",
        "{ date_trunc: { to: year } }",
        ColumnType::Date,
        Format::Text,
        &dates,
    );
    bench_one(
        c,
        "date_trunc month/timestamp text",
        "{ date_trunc: { to: month } }",
        ColumnType::Timestamp,
        Format::Text,
        &tss,
    );
    let bin_dates: Vec<Vec<u8>> = (0..64i32)
        .map(|i| (i * 397 - 9000).to_be_bytes().to_vec())
        .collect();
    bench_one(
        c,
        "date_trunc year/date binary",
        "{ date_trunc: { to: year } }",
        ColumnType::Date,
        Format::Binary,
        &bin_dates,
    );
    bench_one(
        c,
        "bucket int4 text",
        "{ bucket: { width: 10000 } }",
        ColumnType::Int4,
        Format::Text,
        &ints,
    );
    bench_one(
        c,
        "round numeric(12,2) text",
        "{ round: { step: 100 } }",
        ColumnType::from_catalog(1700, (12 << 16 | 2) + 4),
        Format::Text,
        &salaries,
    );
    let bin_salaries: Vec<Vec<u8>> = salaries
        .iter()
        .map(|s| numeric_text_to_binary(std::str::from_utf8(s).expect("utf8")).expect("numeric"))
        .collect();
    bench_one(
        c,
        "bucket numeric binary",
        "{ bucket: { width: 10000 } }",
        ColumnType::Numeric,
        Format::Binary,
        &bin_salaries,
    );
    bench_one(
        c,
        "noise int4 text",
        "{ noise: { ratio: 0.05, key: main } }",
        ColumnType::Int4,
        Format::Text,
        &ints,
    );
    bench_one(
        c,
        "noise numeric text",
        "{ noise: { ratio: 0.05, key: main } }",
        ColumnType::Numeric,
        Format::Text,
        &salaries,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_millis(900))
        .sample_size(30);
    targets = masks
}
criterion_main!(benches);
